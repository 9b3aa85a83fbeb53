/**
 * The label cross-entropy (the `ce` term, and the label part of kd and most response terms) as one
 * native kernel that also returns its gradient with respect to the logits: (softmax(s)·Σ target −
 * target) / labeled rows. Composed from tfjs ops it is ~15 kernels forward and ~15 backward on [B, classes]
 * tensors, each a few µs of engine overhead for almost no arithmetic.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBackend } from './backend.js';
import { lossWithKernelGradient, scaleInPlace, type KernelArgs, type KernelFn } from './util.js';

export const LABEL_CE_KERNEL = 'TfjsDistillLabelCe';

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

/**
 * `scale` × the label cross-entropy of [B, classes] float32 logits through the native kernel,
 * differentiable in the logits. Undefined when the active backend is not `native` or the inputs
 * do not fit.
 */
export function nativeLabelCe(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  smoothing: number,
  backendName: string,
  scale = 1,
): tf.Scalar | undefined {
  if (
    tf.getBackend() !== backendName ||
    logits.rank !== 2 ||
    logits.dtype !== 'float32' ||
    labels.dtype !== 'int32' ||
    labels.shape[0] !== logits.shape[0] ||
    logits.shape[0] === 0 ||
    !(smoothing >= 0)
  )
    return undefined;
  return lossWithKernelGradient(LABEL_CE_KERNEL, logits, { labels }, { smoothing, scale });
}
