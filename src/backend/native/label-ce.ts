/** The native `TfjsDistillLabelCe` (src/backend/loss-kernels.ts): tdn_label_ce in the addon. */
import type { NativeBackend } from './backend.js';
import { scaleInPlace } from '../loss-kernels.js';
import type { KernelArgs, KernelFn } from './util.js';

export function makeLabelCeKernel(backend: NativeBackend): KernelFn {
  return (args: KernelArgs) => {
    const { s, labels } = args.inputs;
    const [rows, cols] = s.shape as [number, number];
    const loss = backend.makeOutputF32([], 1);
    const grad = backend.makeOutputF32(s.shape);
    const smoothing = Number(args.attrs?.smoothing);
    backend.addon.labelCe(backend.f32(s), backend.i32(labels), rows, cols, smoothing, loss.values, grad.values);
    scaleInPlace(Number(args.attrs?.scale ?? 1), loss.values, grad.values);
    return [loss.info, grad.info];
  };
}
