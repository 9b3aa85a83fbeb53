import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { Builder, dropoutRate, type ModelContext, modelArgs, modelOptions, positiveInt } from './common.js';

/** The options of `mlp` (beside `width` and `init`): names, types, ranges and defaults, defined once. */
export const mlpOptions = modelOptions.extend({
  /** Hidden layer sizes before the width multiplier. Default `[256, 128]`; `[]` = linear model. */
  hidden: z.array(positiveInt).default([256, 128]),
  /** Dropout rate after each hidden ReLU (0 = none). Default 0. */
  dropout: dropoutRate.default(0),
});
export type MlpOptions = ModelContext & z.input<typeof mlpOptions>;

/**
 * Multi-layer perceptron: the input (any shape) is flattened, then Dense → ReLU per hidden
 * size, then linear logits (no softmax).
 *
 * Layer names (i = 1 … hidden.length):
 * - `input`, `flatten` (Flatten; an identity Reshape for rank-1 inputs)
 * - `fc{i}` (Dense, linear), `fc{i}_relu` (ReLU), `fc{i}_drop` (only when dropout > 0)
 * - `features`: the penultimate vector. It is the last hidden ReLU (so there is no
 *   `fc{N}_relu`), or the flattened input when `hidden` is `[]`.
 * - `logits`: Dense(numClasses), linear.
 *
 * Param counts, [28,28,1] → 10 classes, default hidden [256, 128]:
 * width 1: 784·256+256 + 256·128+128 + 128·10+10 = 235,146;
 * width 0.5: 784·128+128 + 128·64+64 + 64·10+10 = 109,386;
 * width 0.25: 784·64+64 + 64·32+32 + 32·10+10 = 52,650.
 */
export function mlp(options: MlpOptions): tf.LayersModel {
  const { context, o } = modelArgs('mlp', mlpOptions, options);
  const b = new Builder('mlp', context, o, false);
  const { hidden, dropout } = o;
  const input = b.input();
  const name = hidden.length === 0 ? 'features' : 'flatten';
  const size = options.inputShape.reduce((a, d) => a * d, 1);
  // tf.layers.flatten needs rank ≥ 2 per example; a rank-1 input gets an identity reshape.
  let x = (
    options.inputShape.length > 1 ? tf.layers.flatten({ name }) : tf.layers.reshape({ name, targetShape: [size] })
  ).apply(input) as tf.SymbolicTensor;
  hidden.forEach((units, k) => {
    const i = k + 1;
    const last = i === hidden.length;
    x = b.dense(x, `fc${i}`, b.units(units));
    x = tf.layers.reLU({ name: last ? 'features' : `fc${i}_relu` }).apply(x) as tf.SymbolicTensor;
    if (dropout > 0) x = tf.layers.dropout({ name: `fc${i}_drop`, rate: dropout }).apply(x) as tf.SymbolicTensor;
  });
  return b.finish(input, x);
}
