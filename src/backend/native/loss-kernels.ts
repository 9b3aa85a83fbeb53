/**
 * The native loss kernels of src/backend/loss-kernels.ts: `TfjsDistillSoftKl` (tdn_soft_kl in the
 * addon) and `TfjsDistillLabelCe` (tdn_label_ce), each the loss and its gradient in one call,
 * scaled by the `scale` attribute.
 */
import { scaleInPlace } from '../loss-kernels.js';
import type { NativeBackend } from './backend.js';
import type { KernelArgs, KernelFn } from './util.js';

/** Runs `fill(rows, cols, loss, grad)` into new outputs [loss scalar, gradient shaped like s], then scales both. */
function lossKernel(
  backend: NativeBackend,
  fill: (args: KernelArgs, rows: number, cols: number, loss: Float32Array, grad: Float32Array) => void,
): KernelFn {
  return (args: KernelArgs) => {
    const { s } = args.inputs;
    const [rows, cols] = s.shape as [number, number];
    const loss = backend.makeOutputF32([], 1);
    const grad = backend.makeOutputF32(s.shape);
    fill(args, rows, cols, loss.values, grad.values);
    scaleInPlace(Number(args.attrs?.scale ?? 1), loss.values, grad.values);
    return [loss.info, grad.info];
  };
}

export const makeSoftKlKernel = (backend: NativeBackend): KernelFn =>
  lossKernel(backend, ({ inputs, attrs }, rows, cols, loss, grad) =>
    backend.addon.softKl(
      backend.f32(inputs.s),
      backend.f32(inputs.t),
      rows,
      cols,
      Number(attrs?.temperature),
      loss,
      grad,
    ),
  );

export const makeLabelCeKernel = (backend: NativeBackend): KernelFn =>
  lossKernel(backend, ({ inputs, attrs }, rows, cols, loss, grad) =>
    backend.addon.labelCe(
      backend.f32(inputs.s),
      backend.i32(inputs.labels),
      rows,
      cols,
      Number(attrs?.smoothing),
      loss,
      grad,
    ),
  );
