/** The native `TfjsDistillSoftKl` (src/backend/loss-kernels.ts): tdn_soft_kl in the addon. */
import type { NativeBackend } from './backend.js';
import { scaleInPlace } from '../loss-kernels.js';
import type { KernelArgs, KernelFn } from './util.js';

export function makeSoftKlKernel(backend: NativeBackend): KernelFn {
  return (args: KernelArgs) => {
    const { s, t } = args.inputs;
    const [rows, cols] = s.shape as [number, number];
    const loss = backend.makeOutputF32([], 1);
    const grad = backend.makeOutputF32(s.shape);
    backend.addon.softKl(
      backend.f32(s),
      backend.f32(t),
      rows,
      cols,
      Number(args.attrs?.temperature),
      loss.values,
      grad.values,
    );
    scaleInPlace(Number(args.attrs?.scale ?? 1), loss.values, grad.values);
    return [loss.info, grad.info];
  };
}
