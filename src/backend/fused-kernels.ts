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

/**
 * inputs {x, gamma, beta}, attrs {epsilon}, x [batch, height, width, channels] with even height and
 * width → [p, batch mean, batch variance]: p = maxPool2x2(relu(batchNorm(x))) as tfjs-layers'
 * BatchNormalization (training) → ReLU → MaxPooling2D({poolSize: 2}) compute it, without writing
 * the full-size maps between them. Gradient: BN_RELU_POOL_TRAIN_GRAD_KERNEL.
 */
export const BN_RELU_POOL_TRAIN_KERNEL = 'TfjsDistillBnReluPoolTrain';
/** inputs {dy, x, p, mean, variance, gamma} (p: the forward's output, dy: its gradient), attrs {epsilon} → [dx, dGamma, dBeta] */
export const BN_RELU_POOL_TRAIN_GRAD_KERNEL = 'TfjsDistillBnReluPoolTrainGrad';

/** no inputs, attrs {shape, rate, seed} → dropout's multiplier (src/backend/dropout.ts) */
export const DROPOUT_MASK_KERNEL = 'TfjsDistillDropoutMask';

/**
 * inputs {dy, input, output?} (input: a ReLU's output), attrs of MaxPoolGrad → dx already passed through
 * that ReLU (a window whose maximum is 0 passes nothing: the ReLU's mask at the position that gets
 * the gradient). The backend records dx in `reluMaskedGradients` with the per-channel Σ of what
 * passed. One pass instead of the max pool's and the ReLU's two full-size backward passes.
 */
export const MAX_POOL_RELU_GRAD_KERNEL = 'TfjsDistillMaxPoolReluGrad';

/**
 * inputs {dy, filter, y} (y: the conv's input, a ReLU's output), attrs of Conv2DBackpropInput →
 * the input's gradient already passed through that ReLU, recorded in `reluMaskedGradients` like
 * MAX_POOL_RELU_GRAD_KERNEL's (the mask is applied per sample while its dx is in cache).
 */
export const CONV2D_BACKPROP_INPUT_RELU_KERNEL = 'TfjsDistillConv2DBackpropInputRelu';

/** Data ids of tensors a backend knows to be ReLU outputs (Relu, or a conv / matmul fused with relu). */
export const reluOutputs = new WeakSet<object>();
/**
 * Data ids of gradients already passed through the ReLU whose output they are the gradient of,
 * each with Σ over all but the last axis (the gradient of a bias added before that ReLU). The
 * ReLU's own backward then passes them unchanged.
 */
export const reluMaskedGradients = new WeakMap<object, Float32Array>();
