/** DROPOUT_MASK_KERNEL: dropout's mask (src/backend/dropout.ts) drawn in C into a recycled buffer. */
import { dropoutDraw } from '../dropout.js';
import type { NativeBackend } from './backend.js';
import type { KernelArgs, KernelFn } from './util.js';

export function makeDropoutMaskKernel(backend: NativeBackend): KernelFn {
  return (args: KernelArgs) => {
    const { shape, rate, seed } = args.attrs as unknown as { shape: number[]; rate: number; seed: number };
    const out = backend.makeOutputF32(shape);
    const { threshold, scale, state } = dropoutDraw(rate, seed);
    backend.addon.dropoutMask(out.values, threshold, scale, ...state);
    return out.info;
  };
}
