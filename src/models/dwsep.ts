import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { BATCH_NORM, Builder, type ModelContext, modelArgs, modelOptions, positiveInt } from './common.js';

/** One depthwise-separable block: output filters (before the width multiplier) and stride. */
const dwsepBlock = z.strictObject({
  filters: positiveInt,
  /** Stride of the depthwise conv. Default 1. */
  stride: positiveInt.default(1),
});
export type DwsepBlock = z.input<typeof dwsepBlock>;

/** The options of `dwsep` (beside `width` and `init`): names, types, ranges and defaults, defined once. */
export const dwsepOptions = modelOptions.extend({
  /** Filters of the stem conv (before the width multiplier). Default 32. */
  stemFilters: positiveInt.default(32),
  /** Stride of the stem conv: 1 for small images (default), 2 for large ones. */
  stemStride: positiveInt.default(1),
  /** Blocks in order. Default 64/s1, 128/s2, 128/s1, 256/s2. */
  blocks: z
    .array(dwsepBlock)
    .min(1)
    .default([
      { filters: 64, stride: 1 },
      { filters: 128, stride: 2 },
      { filters: 128, stride: 1 },
      { filters: 256, stride: 2 },
    ]),
});
export type DwsepOptions = ModelContext & z.input<typeof dwsepOptions>;

/**
 * MobileNet-style network (Howard et al. 2017): a 3×3 conv stem → BN → ReLU, then
 * depthwise-separable blocks [3×3 depthwise conv (stride) → BN → ReLU → 1×1 conv → BN →
 * ReLU], then global average pooling and linear logits. A depthwise-separable block costs
 * ~1/k² + 1/filters of a full k×k conv: the survey's "efficient student" building block.
 *
 * Layer names (b = 1 … blocks.length):
 * - `input`, stem `conv1`, `conv1_bn`, `conv1_relu`
 * - `block{b}_dw` (DepthwiseConv2D), `block{b}_dw_bn`, `block{b}_dw_relu`
 * - `block{b}_pw` (1×1 Conv2D), `block{b}_pw_bn`, `block{b}_pw_relu` (the block output)
 * - `features` (GlobalAveragePooling2D: the penultimate vector), `logits` (Dense, linear)
 *
 * Param counts, [28,28,1] → 10 classes, defaults: width 1 = 69,258;
 * width 0.5 = 19,786; width 0.25 = 6,186.
 */
export function dwsep(options: DwsepOptions): tf.LayersModel {
  const { context, o } = modelArgs('dwsep', dwsepOptions, options);
  const b = new Builder('dwsep', context, o, true);
  const { blocks, stemStride } = o;
  const input = b.input();
  let x = b.convBnRelu(input, 'conv1', b.units(o.stemFilters), 3, stemStride);
  blocks.forEach((block, k) => {
    const name = `block${k + 1}`;
    const { filters, stride: strides } = block;
    x = tf.layers
      .depthwiseConv2d({
        name: `${name}_dw`,
        kernelSize: 3,
        strides,
        padding: 'same',
        useBias: false,
        depthwiseInitializer: b.init(x, 3, true).kernelInitializer,
      })
      .apply(x) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: `${name}_dw_bn`, ...BATCH_NORM }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU({ name: `${name}_dw_relu` }).apply(x) as tf.SymbolicTensor;
    x = b.convBnRelu(x, `${name}_pw`, b.units(filters), 1);
  });
  const features = tf.layers.globalAveragePooling2d({ name: 'features' }).apply(x) as tf.SymbolicTensor;
  return b.finish(input, features);
}
