/**
 * Names of the kernels tfjs-distill adds to the backends that train (no tfjs twin). A caller
 * runs one when `tf.getKernel(name, tf.getBackend())` is registered, else composes tfjs ops.
 */

/** inputs {dy, y} (y = relu(z + bias), channels last) → [dz = dy·[y > 0], Σ dz over all but the last axis] */
export const BIAS_RELU_GRAD_KERNEL = 'TfjsDistillBiasReluGrad';

/** inputs {dy, x} → dz = dy·[x > 0] (the gradient of relu(x)) */
export const RELU_GRAD_KERNEL = 'TfjsDistillReluGrad';

/**
 * inputs {x, gamma, beta}, attrs {epsilon}, channels last → [y, batch mean, batch (population)
 * variance]: tfjs-layers' batch norm in training; its gradient runs BATCH_NORM_TRAIN_GRAD_KERNEL.
 */
export const BATCH_NORM_TRAIN_KERNEL = 'TfjsDistillBatchNormTrain';
/** inputs {x, dy, mean, variance, gamma}, attrs {epsilon} → [dx, dGamma, dBeta] */
export const BATCH_NORM_TRAIN_GRAD_KERNEL = 'TfjsDistillBatchNormTrainGrad';
