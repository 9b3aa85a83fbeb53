/**
 * The kd loss's core, KL(softmax(t/T) ‖ softmax(s/T)) averaged over the batch, as one native
 * kernel that also returns its gradient with respect to s: (softmax(s/T) − softmax(t/T)) / (T·B).
 * Composed from tfjs ops it is ~15 kernels forward and ~20 backward on a [B, classes] tensor,
 * each a few µs of engine overhead for almost no arithmetic: 4-6 % of a cached offline-KD epoch.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBackend } from './backend.js';
import { lossWithKernelGradient, scaleInPlace, type KernelArgs, type KernelFn } from './util.js';

export const SOFT_KL_KERNEL = 'TfjsDistillSoftKl';

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

/**
 * `scale` × batch-mean KL(softmax(t/T) ‖ softmax(s/T)) through the native kernel, differentiable
 * in s (t gets no gradient: teachers' and peers' logits are constants, so t is not an input of the
 * gradient at all). Undefined when the active backend is not `native` or the logits are not
 * float32 [B, classes] of one shape.
 */
export function nativeSoftKl(
  s: tf.Tensor2D,
  t: tf.Tensor2D,
  temperature: number,
  backendName: string,
  scale = 1,
): tf.Scalar | undefined {
  if (
    tf.getBackend() !== backendName ||
    s.rank !== 2 ||
    s.dtype !== 'float32' ||
    t.dtype !== 'float32' ||
    !tf.util.arraysEqual(s.shape, t.shape) ||
    s.shape[0] === 0
  )
    return undefined;
  return lossWithKernelGradient(SOFT_KL_KERNEL, s, { t }, { temperature, scale });
}
