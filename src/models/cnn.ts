import * as tf from '@tensorflow/tfjs';
import type { z } from 'zod';
import {
  Builder,
  dropoutRate,
  type ModelContext,
  modelArgs,
  modelOptions,
  positiveInt,
  positiveInts,
} from './common.js';

/** The options of `cnn` (beside `width` and `init`): names, types, ranges and defaults, defined once. */
export const cnnOptions = modelOptions.extend({
  /** Filters of each conv block (before the width multiplier). Default `[32, 64]`. */
  blocks: positiveInts.default([32, 64]),
  /** 3×3 convs per block. Default 2. */
  convsPerBlock: positiveInt.default(2),
  /** Units of the hidden dense layer (before the width multiplier). Default 256. */
  dense: positiveInt.default(256),
  /** Dropout rate after each pooled block and before the logits (0 = none). Default 0.25. */
  dropout: dropoutRate.default(0.25),
});
export type CnnOptions = ModelContext & z.input<typeof cnnOptions>;

/**
 * Small VGG-style CNN: blocks of [3×3 conv (no bias) → BatchNorm → ReLU] × convsPerBlock,
 * then 2×2 max-pool ('same' padding, so any H×W works) and dropout; then flatten →
 * Dense → ReLU → dropout → linear logits. At width 1 this is the Fashion-MNIST teacher
 * (conv32-conv32-pool-conv64-conv64-pool-dense256); width 0.25 is a ~16× smaller student.
 *
 * Layer names (b = 1 … blocks.length, i = 1 … convsPerBlock):
 * - `input`
 * - `block{b}_conv{i}` (Conv2D), `block{b}_conv{i}_bn`, `block{b}_conv{i}_relu`
 * - `block{b}_pool` (MaxPooling2D), `block{b}_drop` (only when dropout > 0)
 * - `flatten`, `fc` (Dense, linear), `features` (ReLU: the penultimate vector),
 *   `fc_drop` (only when dropout > 0), `logits` (Dense(numClasses), linear)
 *
 * Param counts, [28,28,1] → 10 classes, defaults (BN adds 4 per channel, 2 of them
 * non-trainable moving statistics):
 * - width 1:    convs 288+9,216+18,432+36,864, BN 768, fc 3,136·256+256, logits 2,570 = 871,210
 * - width 0.5:  convs 144+2,304+4,608+9,216, BN 384, fc 1,568·128+128, logits 1,290 = 218,778
 * - width 0.25: convs 72+576+1,152+2,304, BN 192, fc 784·64+64, logits 650 = 55,186 (15.8× smaller)
 */
export function cnn(options: CnnOptions): tf.LayersModel {
  const { context, o } = modelArgs('cnn', cnnOptions, options);
  const b = new Builder('cnn', context, o, true);
  const { blocks, convsPerBlock: convs, dense, dropout } = o;
  const input = b.input();
  let x = input;
  blocks.forEach((filters, k) => {
    const name = `block${k + 1}`;
    for (let i = 1; i <= convs; i++) x = b.convBnRelu(x, `${name}_conv${i}`, b.units(filters));
    x = tf.layers
      .maxPooling2d({ name: `${name}_pool`, poolSize: 2, strides: 2, padding: 'same' })
      .apply(x) as tf.SymbolicTensor;
    if (dropout > 0) x = tf.layers.dropout({ name: `${name}_drop`, rate: dropout }).apply(x) as tf.SymbolicTensor;
  });
  x = tf.layers.flatten({ name: 'flatten' }).apply(x) as tf.SymbolicTensor;
  x = b.dense(x, 'fc', b.units(dense));
  x = tf.layers.reLU({ name: 'features' }).apply(x) as tf.SymbolicTensor;
  if (dropout > 0) x = tf.layers.dropout({ name: 'fc_drop', rate: dropout }).apply(x) as tf.SymbolicTensor;
  return b.finish(input, x);
}
