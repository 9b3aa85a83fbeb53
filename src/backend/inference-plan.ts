/**
 * A feed-forward Keras-style model's inference as one call into the native addon
 * (native/src/plan.c): no tfjs-layers graph walk, no tensor per layer, batch norm folded into the
 * preceding convolution or dense layer, activations fused into their epilogues. tfjs-layers'
 * `predict` costs 5-10 µs per layer before any arithmetic; for a small student at batch 1 that
 * overhead is most of its latency (measured in `npm run bench`, beside onnxruntime-node).
 *
 * The plan holds a copy of the weights taken when it is compiled: compile it after training,
 * and again if the weights change. Models that are not a single chain of supported layers (a
 * residual `add`, a custom layer, channels-first data) get the reason instead of a plan;
 * `model.predict` then serves them as before.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { NATIVE_BACKEND_NAME } from './native.js';
import type { NativeBackend } from './native/backend.js';
import { type OpCodes, type PLAN_OPS, activationCode } from './native/op-codes.js';
import { geometry } from './native/util.js';

/** Words per op in the plan (TDN_PLAN_WORDS in native/src/plan.h). */
const WORDS = 24;
/** Layers that are the identity at inference. */
const IDENTITY = new Set([
  'InputLayer',
  'Dropout',
  'SpatialDropout1D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
]);

export interface InferencePlan {
  /** One entry per native op: the layers folded into it, e.g. `block1_conv1+block1_conv1_bn+block1_conv1_relu`. */
  readonly ops: readonly string[];
  /** The model's output for a batch of inputs of the model's input shape (float32). */
  predict(x: tf.Tensor): tf.Tensor;
}

interface Op {
  kind: keyof typeof PLAN_OPS;
  layers: string[];
  /** conv / depthwise / pool geometry (batch 1) */
  geom?: Int32Array;
  /** dense: inner size; gap: pixels; others: 0 */
  inner: number;
  /** last axis of the output */
  cols: number;
  weight?: Float32Array;
  bias?: Float32Array;
  activation: string;
  alpha: number;
  isMax: boolean;
  inElems: number;
  outElems: number;
}

type Config = Record<string, unknown>;

const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [v[0], v[1] ?? v[0]] : [Number(v), Number(v)]);

/** Plain float32 copies of a layer's weights, in `getWeights()` order. */
function weightsOf(layer: tf.layers.Layer): Float32Array[] {
  return layer.getWeights().map((w) => Float32Array.from(w.dataSync()));
}

/** Folds y = (x − mean)·γ/√(var+ε) + β into the op's weights along its output channels. */
function foldBatchNorm(op: Op, bn: Float32Array[], config: Config): void {
  let k = 0;
  const gamma = config['scale'] === false ? undefined : bn[k++];
  const beta = config['center'] === false ? undefined : bn[k++];
  const [mean, variance] = [bn[k]!, bn[k + 1]!];
  const eps = Number(config['epsilon'] ?? 1e-3);
  const scale = mean.map((_, c) => (gamma ? gamma[c]! : 1) / Math.sqrt(variance[c]! + eps));
  const shift = mean.map((m, c) => (beta ? beta[c]! : 0) - m * scale[c]!);
  const w = op.weight!;
  const n = op.cols;
  for (let i = 0; i < w.length; i++) w[i] = w[i]! * scale[i % n]!;
  op.bias = op.bias ? op.bias.map((b, c) => b * scale[c]! + shift[c]!) : shift;
}

function activationOf(name: string, ops: OpCodes, where: string): string {
  const key = name.toLowerCase();
  if (key === 'softmax' || activationCode({ ops }, key) !== undefined) return key;
  throw new PlanError(`${where}: activation '${name}' is not supported by the inference plan`);
}

class PlanError extends Error {}

function compileLayers(model: tf.LayersModel, ops: OpCodes): Op[] {
  if (model.inputs.length !== 1 || model.outputs.length !== 1)
    throw new PlanError('the model has several inputs or outputs');
  let shape = model.inputs[0]!.shape.slice(1);
  if (shape.some((d) => d === null)) throw new PlanError('the input shape is not fully defined');
  const plan: Op[] = [];
  const size = (s: readonly (number | null)[]) => s.reduce<number>((a, d) => a * d!, 1);
  type NewOp = Pick<Op, 'kind' | 'layers' | 'cols'> & Partial<Op>;
  const push = (op: NewOp, outShape: number[]) => {
    plan.push({
      inner: 0,
      activation: 'linear',
      alpha: 0,
      isMax: false,
      inElems: size(shape),
      ...op,
      outElems: size(outShape),
    });
    shape = outShape;
  };
  /** The last op, when an activation or batch norm may still be fused into it. */
  const open = () => {
    const last = plan.at(-1);
    return last &&
      last.activation === 'linear' &&
      ['conv', 'depthwise', 'dense', 'scaleShift', 'activation'].includes(last.kind)
      ? last
      : undefined;
  };
  const activate = (layer: string, activation: string, alpha = 0) => {
    if (activation === 'linear') return;
    if (activation === 'softmax') {
      push({ kind: 'softmax', layers: [layer], cols: shape.at(-1)! }, shape as number[]);
      return;
    }
    const last = open();
    if (last) {
      last.activation = activation;
      last.alpha = alpha;
      if (last.layers.at(-1) !== layer) last.layers.push(layer);
    } else push({ kind: 'activation', layers: [layer], cols: shape.at(-1)!, activation, alpha }, shape as number[]);
  };
  for (const [i, layer] of model.layers.entries()) {
    const name = layer.name;
    const type = layer.getClassName();
    if (i > 0) {
      const inbound = layer.inboundNodes;
      if (
        inbound.length !== 1 ||
        inbound[0]!.inboundLayers.length !== 1 ||
        inbound[0]!.inboundLayers[0] !== model.layers[i - 1]
      )
        throw new PlanError(`layer ${name} does not follow the previous layer alone (the model is not a chain)`);
    }
    const config = layer.getConfig() as Config;
    if (config['dataFormat'] === 'channelsFirst') throw new PlanError(`layer ${name} is channels-first`);
    if (IDENTITY.has(type)) continue;
    const [h, w, c] = shape as number[];
    switch (type) {
      case 'Flatten':
      case 'Reshape':
        shape = (layer.outputShape as (number | null)[]).slice(1);
        break;
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        if (shape.length !== 3) throw new PlanError(`layer ${name} needs images`);
        const weights = weightsOf(layer);
        const kernel = layer.getWeights()[0]!.shape as [number, number, number, number];
        const depthwise = type === 'DepthwiseConv2D';
        const info = tf.backend_util.computeConv2DInfo(
          [1, h!, w!, c!],
          kernel,
          pair(config['strides']),
          // tfjs-layers' DepthwiseConv2D ignores its dilationRate (convolutional_depthwise.js): as predict does
          depthwise ? 1 : pair(config['dilationRate']),
          config['padding'] as 'same' | 'valid',
          undefined,
          depthwise,
        );
        const useBias = config['useBias'] !== false;
        push(
          {
            kind: depthwise ? 'depthwise' : 'conv',
            layers: [name],
            geom: geometry(info),
            cols: info.outChannels,
            weight: weights[0],
            bias: useBias ? weights[1] : undefined,
          },
          [info.outHeight, info.outWidth, info.outChannels],
        );
        activate(name, activationOf(String(config['activation'] ?? 'linear'), ops, name));
        break;
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        if (shape.length !== 3) throw new PlanError(`layer ${name} needs images`);
        const poolSize = pair(config['poolSize']);
        const info = tf.backend_util.computePool2DInfo(
          [1, h!, w!, c!],
          poolSize,
          pair(config['strides'] ?? poolSize),
          1,
          config['padding'] as 'same' | 'valid',
        );
        push({ kind: 'pool', layers: [name], geom: geometry(info), cols: c!, isMax: type === 'MaxPooling2D' }, [
          info.outHeight,
          info.outWidth,
          c!,
        ]);
        break;
      }
      case 'GlobalAveragePooling2D':
        if (shape.length !== 3 || config['keepDims'] === true)
          throw new PlanError(`layer ${name}: only 2-D pooling to vectors`);
        push({ kind: 'globalAveragePool', layers: [name], inner: h! * w!, cols: c! }, [c!]);
        break;
      case 'Dense': {
        if (shape.length !== 1) throw new PlanError(`layer ${name}: a dense layer on rank-${shape.length} examples`);
        const weights = weightsOf(layer);
        const units = Number(config['units']);
        push(
          {
            kind: 'dense',
            layers: [name],
            inner: shape[0]!,
            cols: units,
            weight: weights[0],
            bias: config['useBias'] !== false ? weights[1] : undefined,
          },
          [units],
        );
        activate(name, activationOf(String(config['activation'] ?? 'linear'), ops, name));
        break;
      }
      case 'BatchNormalization': {
        const axis = Number(config['axis'] ?? -1);
        if (axis !== -1 && axis !== shape.length) throw new PlanError(`layer ${name}: batch norm over axis ${axis}`);
        const last = open();
        const weights = weightsOf(layer);
        if (last?.weight) {
          foldBatchNorm(last, weights, config);
          last.layers.push(name);
        } else {
          const cols = shape.at(-1)!;
          const op = { kind: 'scaleShift' as const, layers: [name], cols, weight: new Float32Array(cols).fill(1) };
          foldBatchNorm(op as Op, weights, config);
          push(op, shape as number[]);
        }
        break;
      }
      case 'ReLU': {
        const max = config['maxValue'];
        if (max !== null && max !== undefined && max !== 6) throw new PlanError(`layer ${name}: ReLU capped at ${max}`);
        activate(name, max === 6 ? 'relu6' : 'relu');
        break;
      }
      case 'LeakyReLU':
        activate(name, 'leakyrelu', Number(config['alpha'] ?? 0.3));
        break;
      case 'Activation':
        activate(name, activationOf(String(config['activation']), ops, name));
        break;
      case 'Softmax':
        if (Number(config['axis'] ?? -1) !== -1)
          throw new PlanError(`layer ${name}: softmax over axis ${config['axis']}`);
        activate(name, 'softmax');
        break;
      default:
        throw new PlanError(`layer ${name} (${type}) is not supported by the inference plan`);
    }
  }
  // A model of identity layers only: one op that copies.
  if (plan.length === 0) push({ kind: 'activation', layers: [], cols: shape.at(-1) ?? 1 }, shape as number[]);
  return plan;
}

function encode(plan: Op[], ops: OpCodes): { words: Int32Array; weights: Float32Array[] } {
  const words = new Int32Array(plan.length * WORDS);
  const floats = new Float32Array(words.buffer);
  const weights: Float32Array[] = [];
  const index = (w: Float32Array | undefined) => (w ? weights.push(w) - 1 : -1);
  for (const [i, op] of plan.entries()) {
    const o = i * WORDS;
    words[o] = ops.plan[op.kind];
    if (op.geom) words.set(op.geom.subarray(1), o + 1);
    else {
      words[o + 1] = op.inner;
      words[o + 2] = op.cols;
    }
    words[o + 16] = index(op.weight);
    words[o + 17] = index(op.bias);
    words[o + 18] = op.kind === 'softmax' ? 0 : activationCode({ ops }, op.activation)!;
    floats[o + 19] = op.alpha;
    words[o + 20] = op.inElems;
    words[o + 21] = op.outElems;
    words[o + 22] = op.isMax ? 1 : 0;
  }
  return { words, weights };
}

/**
 * Compiles `model` for inference on the native backend (which must be active), or says why it
 * cannot: the model is not a chain of supported layers, or the backend is not `native`.
 */
export function compileInference(model: tf.LayersModel): InferencePlan | { reason: string } {
  if (tf.getBackend() !== NATIVE_BACKEND_NAME)
    return { reason: `the inference plan runs on the native backend (active: ${tf.getBackend()})` };
  const backend = tf.backend() as NativeBackend;
  let plan: Op[];
  try {
    plan = compileLayers(model, backend.ops);
  } catch (e) {
    if (e instanceof PlanError) return { reason: e.message };
    throw e;
  }
  const { words, weights } = encode(plan, backend.ops);
  const inShape = model.inputs[0]!.shape.slice(1) as number[];
  const outShape = (model.outputs[0]!.shape.slice(1) as number[]).map((d) => d ?? 1);
  const outElems = plan.at(-1)!.outElems;
  return {
    ops: plan.map((op) => op.layers.join('+')),
    predict(x: tf.Tensor): tf.Tensor {
      if (x.rank !== inShape.length + 1 || x.shape.slice(1).some((d, i) => d !== inShape[i]))
        throw new UserError(
          `inference plan: input of shape [${x.shape}] for a model of input [null,${inShape}]; give a batch of [${inShape}] examples`,
        );
      const batch = x.shape[0]!;
      const input = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
      try {
        const out = new Float32Array(batch * outElems);
        if (batch > 0) backend.addon.runPlan(words, weights, backend.f32(input), out, batch);
        return tf.tensor(out, [batch, ...outShape]);
      } finally {
        if (input !== x) input.dispose();
      }
    },
  };
}
