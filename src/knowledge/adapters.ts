/**
 * Adapters Φ_s: map a tapped student output onto the shape of the teacher's, so a feature
 * loss L_F(Φ_s(f_s), f_t) can compare them (FitNets' "regressor"). Made by a term's
 * `prepare` from the tap shapes (without the batch axis):
 * - equal shapes → `identity` (no parameters);
 * - vectors [D_s] → [D_t] → `dense`: x·W + b, W [D_s, D_t];
 * - feature maps [H_s, W_s, C] → [H_t, W_t, C] → `resize` (no parameters);
 * - feature maps [H_s, W_s, C_s] → [H_t, W_t, C_t] → `conv1x1`: spatial resize when
 *   H, W differ, then a 1×1 convolution (kernel [1, 1, C_s, C_t] + bias).
 * Resizing shrinks by average pooling when the factor is a whole number (as
 * RepDistiller's adaptive average pooling), otherwise bilinearly. Kernels and biases start
 * U(±1/√fan_in) from `seed`, as the zoo's layers and PyTorch's nn.Linear / nn.Conv2d. Adapters live in the term,
 * never in the
 * student model: the exported student carries no adapter weights.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { layerInit } from '../models/init.js';
import type { KnowledgeTerm } from './types.js';

export type AdapterKind = 'identity' | 'resize' | 'dense' | 'conv1x1';

export interface Adapter {
  readonly kind: AdapterKind;
  readonly from: readonly number[];
  readonly to: readonly number[];
  /** Trainable variables (empty for identity and resize). */
  readonly variables: tf.Variable[];
  /** Φ(x) for a batch x of shape [B, ...from]; the result has shape [B, ...to]. */
  apply(x: tf.Tensor): tf.Tensor;
  dispose(): void;
}

export interface AdapterOptions {
  /** Student tap shape without the batch axis. */
  from: readonly number[];
  /** Teacher tap shape without the batch axis. */
  to: readonly number[];
  /** Seed of the kernel initializer. Default 0. */
  seed?: number;
  /** Prefix of the variable names (made unique). Default `adapter`. */
  name?: string;
}

let created = 0;
const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Resizes a batch of [H, W, C] maps to [h, w, C]: average pooling by a whole factor, else bilinear. */
export function resizeSpatial(x: tf.Tensor4D, h: number, w: number): tf.Tensor4D {
  const [, H, W] = x.shape;
  if (H === h && W === w) return x;
  if (H >= h && W >= w && H % h === 0 && W % w === 0) return tf.avgPool(x, [H / h, W / w], [H / h, W / w], 'valid');
  return tf.image.resizeBilinear(x, [h, w]);
}

/**
 * PyTorch's `adaptive_avg_pool2d`: [B, H, W, C] → [B, l, l, C], cell (i, j) averaging rows
 * ⌊iH/l⌋ … ⌈(i+1)H/l⌉ − 1 and the same columns: one average pooling when l divides H and W,
 * else two batched products with averaging matrices (no transposes, no strided slices: both
 * are slow in tfjs-cpu).
 */
export function adaptiveAvgPool(x: tf.Tensor4D, l: number): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  if (h % l === 0 && w % l === 0) return tf.avgPool(x, [h / l, w / l], [h / l, w / l], 'valid');
  const averaging = (n: number) => {
    const m = new Float32Array(l * n);
    for (let i = 0; i < l; i++) {
      const [from, to] = [Math.floor((i * n) / l), Math.ceil(((i + 1) * n) / l)];
      for (let k = from; k < to; k++) m[i * n + k] = 1 / (to - from);
    }
    return tf.tensor3d(m, [1, l, n]);
  };
  return tf.tidy(() => {
    const cols = tf.matMul(averaging(w), x.reshape([b * h, w, c])); // [B·H, l, C]
    const rows = tf.matMul(averaging(h), cols.reshape([b, h, l * c])); // [B, l, l·C]
    return rows.reshape([b, l, l, c]) as tf.Tensor4D;
  });
}

/** `name` made unique among the variables this module creates (TF.js refuses a repeated name). */
export function uniqueName(name: string): string {
  return `${name}_${created++}`;
}

/**
 * A variable `${prefix}/${kind}` initialized as the zoo's layers (PyTorch's default for a layer
 * with `fanIn` inputs per output).
 */
export function initVariable(
  kind: 'kernel' | 'bias',
  shape: number[],
  fanIn: number,
  seed: number,
  prefix: string,
): tf.Variable {
  const init = layerInit('pytorch', fanIn, seed);
  const initializer = kind === 'kernel' ? init.kernelInitializer : init.biasInitializer;
  return tf.tidy(() => tf.variable(initializer.apply(shape) as tf.Tensor, true, `${prefix}/${kind}`));
}

/** The number of scalars in a list of variables. */
export function paramCount(variables: readonly tf.Variable[]): number {
  return variables.reduce((n, v) => n + v.size, 0);
}

/** Parameters a term trains beside the student (its adapters, embedding heads): for training logs. */
export function termParamCount(term: KnowledgeTerm): number {
  return paramCount(term.trainableVariables());
}

/**
 * Kernel and bias variables of a layer with `fanIn` inputs per output, initialized as the zoo's layers (PyTorch's
 * default).
 */
function kernelAndBias(
  kernelShape: number[],
  units: number,
  fanIn: number,
  seed: number,
  prefix: string,
): [tf.Variable, tf.Variable] {
  return [initVariable('kernel', kernelShape, fanIn, seed, prefix), initVariable('bias', [units], fanIn, seed, prefix)];
}

function owned(
  kind: AdapterKind,
  from: readonly number[],
  to: readonly number[],
  variables: tf.Variable[],
  apply: (x: tf.Tensor) => tf.Tensor,
): Adapter {
  return { kind, from: [...from], to: [...to], variables, apply, dispose: () => variables.forEach((v) => v.dispose()) };
}

/** A dense layer [D_in] → [D_out], x·W + b, whatever the sizes (also CRD's embedding heads). */
export function denseLayer(inputs: number, units: number, seed = 0, name = 'dense'): Adapter {
  const id = uniqueName(name);
  const [kernel, b] = kernelAndBias([inputs, units], units, inputs, seed, id);
  return owned('dense', [inputs], [units], [kernel, b], (x) => tf.add(tf.matMul(x as tf.Tensor2D, kernel), b));
}

/** The adapter Φ_s from `from` to `to`; shapes of different kinds (map vs vector) are a UserError. */
export function createAdapter({ from, to, seed = 0, name = 'adapter' }: AdapterOptions): Adapter {
  if (same(from, to)) return owned('identity', from, to, [], (x) => x);
  if (from.length === 1 && to.length === 1) return denseLayer(from[0]!, to[0]!, seed, name);
  const prefix = uniqueName(name);
  if (from.length === 3 && to.length === 3) {
    const [h, w, cs] = from as [number, number, number];
    const [ht, wt, ct] = to as [number, number, number];
    const resize = (x: tf.Tensor) => resizeSpatial(x as tf.Tensor4D, ht, wt);
    if (cs === ct) return owned('resize', from, to, [], resize);
    const [kernel, b] = kernelAndBias([1, 1, cs, ct], ct, cs, seed, prefix);
    const conv = (x: tf.Tensor) => tf.add(tf.conv2d(x as tf.Tensor4D, kernel as tf.Tensor4D, 1, 'valid'), b);
    return owned('conv1x1', from, to, [kernel, b], h === ht && w === wt ? conv : (x) => conv(resize(x)));
  }
  throw new UserError(
    `cannot adapt a student output [${from.join(',')}] to a teacher output [${to.join(',')}]; tap two vectors or two [H,W,C] feature maps`,
  );
}
