/**
 * The two losses every response term is built on, each as one kernel that returns the loss and
 * its gradient with respect to the logits s, [loss, ∂loss/∂s]:
 * - `TfjsDistillSoftKl`: KL(softmax(t/T) ‖ softmax(s/T)) averaged over the rows (kd's core);
 *   gradient (softmax(s/T) − softmax(t/T)) / (T·rows);
 * - `TfjsDistillLabelCe`: the cross-entropy with int32 labels, targets (1 − ε)·onehot + ε/K,
 *   averaged over the labeled rows (−1: unlabeled, adds nothing; a label ≥ K has an all-zero
 *   one-hot, as tf.oneHot gives it); gradient (softmax(s)·Σ target − target) / labeled rows.
 * Composed from tfjs ops each is ~15 kernels forward and ~20 backward on a [B, classes] tensor,
 * each a dispatch for almost no arithmetic. A backend that registers them (native: in the addon;
 * wasm: `softKlRows` / `labelCeRows` over its heap) runs one; the others compose the ops.
 */
import * as tf from '@tensorflow/tfjs';

export const SOFT_KL_KERNEL = 'TfjsDistillSoftKl';
export const LABEL_CE_KERNEL = 'TfjsDistillLabelCe';

const registered = (kernelName: string) => tf.getKernel(kernelName, tf.getBackend()) !== undefined;

/**
 * The scalar loss of `kernelName`, whose outputs are [loss, ∂loss/∂s], differentiable in s alone:
 * `constants` (teacher logits, labels) are kernel inputs but no inputs of the gradient.
 */
function lossWithKernelGradient(
  kernelName: string,
  s: tf.Tensor,
  constants: Record<string, tf.Tensor>,
  attrs: tf.NamedAttrMap,
): tf.Scalar {
  const loss = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [sIn, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const [value, grad] = tf.engine().runKernel(kernelName, { s: sIn, ...constants }, attrs) as tf.Tensor[];
    save([grad!]);
    return {
      value: value as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(saved[0]!, dy)],
    };
  });
  return loss(s) as tf.Scalar;
}

/**
 * `scale` × batch-mean KL(softmax(t/T) ‖ softmax(s/T)) through the active backend's kernel,
 * differentiable in s (t is a constant: teachers' and peers' logits get no gradient). Undefined
 * when the backend has none or the logits are not float32 [B, classes] of one shape.
 */
export function softKlByKernel(s: tf.Tensor2D, t: tf.Tensor2D, temperature: number, scale = 1): tf.Scalar | undefined {
  if (
    !registered(SOFT_KL_KERNEL) ||
    s.rank !== 2 ||
    s.dtype !== 'float32' ||
    t.dtype !== 'float32' ||
    !tf.util.arraysEqual(s.shape, t.shape) ||
    s.shape[0] === 0
  )
    return undefined;
  return lossWithKernelGradient(SOFT_KL_KERNEL, s, { t }, { temperature, scale });
}

/**
 * `scale` × the label cross-entropy of [B, classes] float32 logits through the active backend's
 * kernel, differentiable in the logits. Undefined when the backend has none or the inputs do not fit.
 */
export function labelCeByKernel(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  smoothing: number,
  scale = 1,
): tf.Scalar | undefined {
  if (
    !registered(LABEL_CE_KERNEL) ||
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

/** A loss kernel's outputs, the loss and its gradient, times `scale` (a term's weight: a multiply fewer each way). */
export function scaleInPlace(scale: number, loss: Float32Array, grad: Float32Array): void {
  if (scale === 1) return;
  loss[0] = loss[0]! * scale;
  for (let i = 0; i < grad.length; i++) grad[i] = grad[i]! * scale;
}

/** log Σ exp(x[o + k] · inv) over k < cols, and its max, for one row. */
function logSumExp(x: Float32Array, o: number, cols: number, inv: number): number {
  let m = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < cols; k++) m = Math.max(m, x[o + k]! * inv);
  let z = 0;
  for (let k = 0; k < cols; k++) z += Math.exp(x[o + k]! * inv - m);
  return m + Math.log(z);
}

/** `TfjsDistillSoftKl` on arrays (s, t: [rows, cols] row-major), in double precision. */
export function softKlRows(
  s: Float32Array,
  t: Float32Array,
  rows: number,
  cols: number,
  temperature: number,
  loss: Float32Array,
  grad: Float32Array,
): void {
  const inv = 1 / temperature,
    scale = 1 / (temperature * rows);
  let total = 0;
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    const ls = logSumExp(s, o, cols, inv),
      lt = logSumExp(t, o, cols, inv);
    for (let k = o; k < o + cols; k++) {
      const logPs = s[k]! * inv - ls,
        logPt = t[k]! * inv - lt,
        pt = Math.exp(logPt);
      total += pt * (logPt - logPs);
      grad[k] = (Math.exp(logPs) - pt) * scale;
    }
  }
  loss[0] = total / rows;
}

/** `TfjsDistillLabelCe` on arrays (s: [rows, cols] row-major, labels: [rows]), in double precision. */
export function labelCeRows(
  s: Float32Array,
  labels: Int32Array,
  rows: number,
  cols: number,
  smoothing: number,
  loss: Float32Array,
  grad: Float32Array,
): void {
  let labeled = 0;
  for (let r = 0; r < rows; r++) labeled += labels[r]! >= 0 ? 1 : 0;
  const scale = 1 / Math.max(labeled, 1),
    uniform = smoothing / cols;
  let total = 0;
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    const y = labels[r]!;
    if (y < 0) {
      grad.fill(0, o, o + cols);
      continue;
    }
    const lse = logSumExp(s, o, cols, 1);
    const mass = (y < cols ? 1 - smoothing : 0) + smoothing;
    for (let k = 0; k < cols; k++) {
      const logP = s[o + k]! - lse,
        target = (k === y ? 1 - smoothing : 0) + uniform;
      total -= target * logP;
      grad[o + k] = (Math.exp(logP) * mass - target) * scale;
    }
  }
  loss[0] = total * scale;
}
