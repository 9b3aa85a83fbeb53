/**
 * How Conv2D, Dense and BatchNormalization layers run while gradients are recorded. tfjs-layers calls
 * `tf.fused.conv2d` / `tf.fused.matMul`, which then either run unfused (any activation but linear:
 * a conv or matmul, a bias Add and a Relu kernel forward; Step, Mul and Sum backward) or fused
 * with a gradient that computes the input's gradient eagerly, whether it is needed or not. For
 * the first layer of a network it never is (nobody trains the images): a wasted backward
 * convolution or matmul on every step, 8% of a small CNN student's step on `native`.
 * Here, while gradients are recorded, a layer with a linear or ReLU activation runs as one fused
 * kernel (bias and ReLU in the conv's or matmul's epilogue) whose registered gradient is lazy
 * per input, and whose ReLU and bias part is one native pass on `native` (fused-kernels.ts; on
 * wasm, where a JS pass over the heap is 3× slower than the stock ops, tfjs ops): the bench CNN
 * step 29.4 → 27.5 ms (2,180 → 2,330 samples/s). Inference keeps tfjs-layers' own path.
 * BatchNormalization in training mode, where the backend has the kernels (`native`), runs as one
 * kernel forward and one backward (native/batchnorm-train.ts) instead of tf.moments, the
 * normalization and their ~12 gradient kernels. A ReLU conv whose output is the next conv's
 * input gets that input's gradient already through its ReLU where the backend can
 * (CONV2D_BACKPROP_INPUT_RELU_KERNEL), and so skips its own mask pass. A BatchNormalization whose
 * only consumer is a ReLU whose only consumer is a 2×2 max pool (the usual CNN block), inside a
 * model being run whose outputs (taps included) are neither of the first two, runs with both as one
 * kernel each way (BN_RELU_POOL_TRAIN_KERNEL): the BN layer returns the pooled output and the ReLU
 * and pool layers pass it on. Dropout draws its mask in one loop (dropout.ts), not through
 * tf.randomUniform's per-element generator. Installed once, for every backend.
 */
import * as tf from '@tensorflow/tfjs';
import { dropoutMask, dropoutSeed } from './dropout.js';
import {
  BATCH_NORM_TRAIN_GRAD_KERNEL,
  BATCH_NORM_TRAIN_KERNEL,
  BIAS_RELU_GRAD_KERNEL,
  BN_RELU_POOL_TRAIN_GRAD_KERNEL,
  BN_RELU_POOL_TRAIN_KERNEL,
  CONV2D_BACKPROP_INPUT_RELU_KERNEL,
  reluMaskedGradients,
  reluOutputs,
} from './fused-kernels.js';

type LayerInstance = tf.layers.Layer & {
  activation: { getClassName(): string };
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  rank?: number;
  dataFormat?: string;
  padding?: string;
  strides?: number[];
  dilationRate?: number | number[];
  invokeCallHook?(inputs: unknown, kwargs: unknown): void;
  // BatchNormalization
  axis?: number;
  momentum?: number;
  epsilon?: number;
  gamma?: tf.LayerVariable | null;
  beta?: tf.LayerVariable | null;
  movingMean?: tf.LayerVariable;
  movingVariance?: tf.LayerVariable;
  // ReLU, MaxPooling2D
  maxValue?: number | null;
  poolSize?: number[];
};
type Call = (this: LayerInstance, inputs: tf.Tensor | tf.Tensor[], kwargs: object) => tf.Tensor | tf.Tensor[];
type Activation = 'linear' | 'relu';

let installed = false;

/** The layer's activation when it is one the fused path handles. */
function fusable(layer: LayerInstance): Activation | undefined {
  const name = layer.activation.getClassName();
  return name === 'linear' || name === 'relu' ? name : undefined;
}

function single(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | undefined {
  if (!Array.isArray(inputs)) return inputs;
  return inputs.length === 1 ? inputs[0] : undefined;
}

function patch(
  className: string,
  replacement: (
    layer: LayerInstance,
    x: tf.Tensor,
    kwargs: { training?: boolean } | undefined,
  ) => tf.Tensor | undefined,
): void {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  const proto = (entry?.[0] as { prototype?: { call?: Call } } | undefined)?.prototype;
  const original = proto?.call;
  if (!proto || !original) return;
  proto.call = function (this: LayerInstance, inputs, kwargs) {
    const x = single(inputs);
    if (x === undefined || tf.engine().state.gradientDepth === 0) return original.call(this, inputs, kwargs);
    const y = tf.tidy(() => replacement(this, x, kwargs));
    return y ?? original.call(this, inputs, kwargs);
  };
}

/** Σ over every axis but the last (a bias's gradient). */
function sumToLastAxis(t: tf.Tensor): tf.Tensor {
  return tf.sum(t, [...Array(t.rank - 1).keys()]);
}

/** dz = ∂loss/∂(conv or matmul + bias) and the bias's gradient, from dy and the layer's output y. */
function activationGradient(dy: tf.Tensor, y: tf.Tensor, activation: unknown): [tf.Tensor, () => tf.Tensor] {
  if (activation === 'linear') return [dy, () => sumToLastAxis(dy)];
  if (activation !== 'relu') throw new Error(`no gradient for a fused ${String(activation)} activation`);
  const passedBias = reluMaskedGradients.get(dy.dataId);
  if (passedBias !== undefined && passedBias.length === y.shape[y.rank - 1]) return [dy, () => tf.tensor1d(passedBias)];
  if (tf.getKernel(BIAS_RELU_GRAD_KERNEL, tf.getBackend()) && dy.dtype === 'float32' && y.size > 0) {
    const [dz, dBias] = tf.engine().runKernel(BIAS_RELU_GRAD_KERNEL, { dy, y }) as tf.Tensor[];
    return [dz!, () => dBias!];
  }
  const dz = tf.mul(dy, tf.step(y));
  return [dz, () => sumToLastAxis(dz)];
}

/** Lazy gradients of the fused kernels as this file runs them (NHWC, no dilation, no transposes). */
function registerFusedGradients(): void {
  tf.registerGradient({
    kernelName: 'FusedConv2D',
    inputsToSave: ['x', 'filter'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, filter, y] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
      const { strides, pad, dataFormat, dimRoundingMode, dilations, activation } =
        attrs as unknown as tf.FusedConv2DAttrs;
      if (!tf.backend_util.eitherStridesOrDilationsAreOne(1, dilations) || dataFormat !== 'NHWC') {
        throw new Error('the FusedConv2D gradient takes NHWC without dilation');
      }
      const [dz, dBias] = activationGradient(dy as tf.Tensor, y, activation);
      const common = { strides, pad, dataFormat, dimRoundingMode };
      // when x is a ReLU's output, its gradient passes that ReLU in the same kernel where the backend can
      const throughRelu = reluOutputs.has(x.dataId) && tf.getKernel(CONV2D_BACKPROP_INPUT_RELU_KERNEL, tf.getBackend());
      return {
        x: () =>
          tf
            .engine()
            .runKernel(
              throughRelu ? CONV2D_BACKPROP_INPUT_RELU_KERNEL : 'Conv2DBackpropInput',
              { dy: dz, filter, ...(throughRelu ? { y: x } : {}) },
              { ...common, inputShape: x.shape },
            ) as tf.Tensor,
        filter: () =>
          tf
            .engine()
            .runKernel('Conv2DBackpropFilter', { x, dy: dz }, { ...common, filterShape: filter.shape }) as tf.Tensor,
        bias: dBias,
      };
    },
  });
  tf.registerGradient({
    kernelName: '_FusedMatMul',
    inputsToSave: ['a', 'b'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [a, b, y] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      const { transposeA, transposeB, activation } = attrs as unknown as tf.BatchMatMulAttrs & { activation: string };
      if (transposeA || transposeB) throw new Error('the _FusedMatMul gradient takes untransposed operands');
      const [dz, dBias] = activationGradient(dy as tf.Tensor, y, activation);
      return {
        a: () => tf.matMul(dz as tf.Tensor2D, b, false, true),
        b: () => tf.matMul(a, dz as tf.Tensor2D, true, false),
        bias: dBias,
      };
    },
  });
}

/** Runs Conv2D / Dense (linear, ReLU) and BatchNormalization layers as fused kernels while recording. */
export function installTrainingLayers(): void {
  if (installed) return;
  installed = true;
  registerFusedGradients();
  registerBatchNormGradients();
  patch('Conv2D', (layer, x) => {
    const activation = fusable(layer);
    if (activation === undefined) return undefined;
    const dilations = layer.dilationRate ?? 1;
    const undilated = (Array.isArray(dilations) ? dilations : [dilations]).every((d) => d === 1);
    if (layer.rank !== 2 || layer.dataFormat !== 'channelsLast' || x.rank !== 4 || !undilated) return undefined;
    const pad = layer.padding === 'same' ? 'same' : 'valid';
    const filter = layer.kernel.read();
    if (activation === 'linear' && !layer.bias)
      return tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, layer.strides as [number, number], pad);
    return tf
      .engine()
      .runKernel(
        'FusedConv2D',
        { x, filter, ...(layer.bias ? { bias: layer.bias.read() } : {}) },
        { strides: layer.strides ?? [1, 1], pad, dataFormat: 'NHWC', dilations: [1, 1], activation },
      ) as tf.Tensor;
  });
  patch('Dense', (layer, x, kwargs) => {
    const activation = fusable(layer);
    if (x.rank !== 2 || activation === undefined) return undefined;
    layer.invokeCallHook?.(x, kwargs);
    const kernel = layer.kernel.read();
    if (activation === 'linear' && !layer.bias) return tf.matMul(x, kernel);
    return tf
      .engine()
      .runKernel(
        '_FusedMatMul',
        { a: x, b: kernel, ...(layer.bias ? { bias: layer.bias.read() } : {}) },
        { transposeA: false, transposeB: false, activation },
      ) as tf.Tensor;
  });
  patch('BatchNormalization', (layer, x, kwargs) => {
    const { gamma, beta } = layer;
    const lastAxis = layer.axis === -1 || layer.axis === x.rank - 1;
    if (
      kwargs?.training !== true ||
      !tf.getKernel(BATCH_NORM_TRAIN_KERNEL, tf.getBackend()) ||
      !lastAxis ||
      x.rank < 2 ||
      x.dtype !== 'float32' ||
      x.size === 0 ||
      !gamma ||
      !beta ||
      !layer.movingMean ||
      !layer.movingVariance
    )
      return undefined;
    const inputs = { x, gamma: gamma.read(), beta: beta.read() };
    const group = bnReluPoolGroup(layer, x);
    const kernel = group ? BN_RELU_POOL_TRAIN_KERNEL : BATCH_NORM_TRAIN_KERNEL;
    const [y, mean, variance] = tf.engine().runKernel(kernel, inputs, { epsilon: layer.epsilon! }) as [
      tf.Tensor,
      tf.Tensor1D,
      tf.Tensor1D,
    ];
    updateMovingStatistics(layer, mean, variance);
    if (group) for (const passing of group) running.at(-1)!.passOn.set(passing, y.dataId);
    return y;
  });
  patch('Dropout', (layer, x, kwargs) => {
    const { rate, noiseShape, seed } = layer as LayerInstance & { rate: number; noiseShape?: unknown; seed?: number };
    if (kwargs?.training !== true || !(rate > 0 && rate < 1) || noiseShape != null || x.dtype !== 'float32')
      return undefined;
    layer.invokeCallHook?.(x, kwargs);
    return tf.mul(x, dropoutMask(x.shape, rate, seed ?? dropoutSeed()));
  });
  // the ReLU and max pool of a fused group pass the BN layer's (already pooled) output on
  const passOn: Parameters<typeof patch>[1] = (layer, x) =>
    running.at(-1)?.passOn.get(layer) === x.dataId ? x : undefined;
  for (const className of ['ReLU', 'Activation', 'MaxPooling2D']) patch(className, passOn);
  trackRunningModels();
}

/** The moving averages, as tfjs-layers updates them: v ← v − (v − batch value)·(1 − momentum). */
function updateMovingStatistics(layer: LayerInstance, mean: tf.Tensor, variance: tf.Tensor): void {
  for (const [variable, value] of [
    [layer.movingMean!, mean],
    [layer.movingVariance!, variance],
  ] as const) {
    tf.tidy(() => {
      const current = variable.read();
      variable.write(tf.sub(current, tf.mul(tf.sub(current, value), 1 - layer.momentum!)));
    });
  }
}

/** Models being run (innermost last), each with the layers told to pass a fused group's output on. */
const running: { model: tf.LayersModel; passOn: Map<object, object> }[] = [];

/** Keeps `running`: a functional model's `call` (Sequential calls its inner one) runs its graph. */
function trackRunningModels(): void {
  const proto = Object.getPrototypeOf(tf.LayersModel.prototype) as { call: Call };
  const original = proto.call;
  proto.call = function (this: LayerInstance, inputs, kwargs) {
    running.push({ model: this as unknown as tf.LayersModel, passOn: new Map() });
    try {
      return original.call(this, inputs, kwargs);
    } finally {
      running.pop();
    }
  };
}

/** The layer that alone consumes `layer`'s only output, itself called once. */
function soleConsumer(layer: tf.layers.Layer): LayerInstance | undefined {
  if (layer.inboundNodes.length !== 1 || layer.outboundNodes.length !== 1) return undefined;
  const next = layer.outboundNodes[0]!.outboundLayer as LayerInstance;
  return next.inboundNodes.length === 1 ? next : undefined;
}

/**
 * [ReLU, MaxPooling2D] when batch norm `bn`, applied to x, is followed by a plain ReLU and a 2×2
 * stride-2 max pool that can run with it as one kernel: x is [batch, even, even, channels], the backend
 * has the kernel, and the running model outputs neither the BN's nor the ReLU's map.
 */
function bnReluPoolGroup(bn: LayerInstance, x: tf.Tensor): [LayerInstance, LayerInstance] | undefined {
  const model = running.at(-1)?.model;
  if (!model || x.rank !== 4 || x.shape[1]! % 2 || x.shape[2]! % 2) return undefined;
  if (!tf.getKernel(BN_RELU_POOL_TRAIN_KERNEL, tf.getBackend())) return undefined;
  const relu = soleConsumer(bn);
  const plainRelu =
    relu?.getClassName() === 'ReLU'
      ? relu.maxValue == null
      : relu?.getClassName() === 'Activation' && relu.activation.getClassName() === 'relu';
  const pool = relu && plainRelu ? soleConsumer(relu) : undefined;
  if (
    pool?.getClassName() !== 'MaxPooling2D' ||
    pool.dataFormat !== 'channelsLast' ||
    pool.poolSize?.join() !== '2,2' ||
    pool.strides?.join() !== '2,2'
  )
    return undefined;
  const between = [bn, relu!].map((layer) => layer.inboundNodes[0]!.outputTensors[0]!.id);
  return model.outputs.some((o) => between.includes(o.id)) ? undefined : [relu!, pool];
}

/** Gradients of the training batch-norm kernels (with the ReLU and pool or without): one kernel each. */
function registerBatchNormGradients(): void {
  for (const [kernelName, gradKernel, pooled] of [
    [BATCH_NORM_TRAIN_KERNEL, BATCH_NORM_TRAIN_GRAD_KERNEL, false],
    [BN_RELU_POOL_TRAIN_KERNEL, BN_RELU_POOL_TRAIN_GRAD_KERNEL, true],
  ] as const) {
    tf.registerGradient({
      kernelName,
      inputsToSave: ['x', 'gamma'],
      // the pooled output carries the pool's argmax
      outputsToSave: [pooled, true, true],
      gradFunc: (dys, saved, attrs) => {
        const dy = (Array.isArray(dys) ? dys[0] : dys)!;
        const [x, gamma] = saved as tf.Tensor[];
        const [mean, variance] = saved.slice(-2) as tf.Tensor[];
        const [dx, dGamma, dBeta] = tf
          .engine()
          .runKernel(
            gradKernel,
            { x: x!, dy, mean: mean!, variance: variance!, gamma: gamma!, ...(pooled ? { p: saved[2]! } : {}) },
            { epsilon: attrs.epsilon as number },
          ) as tf.Tensor[];
        return { x: () => dx!, gamma: () => dGamma!, beta: () => dBeta! };
      },
    });
  }
}
