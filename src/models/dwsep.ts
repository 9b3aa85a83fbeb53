import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { BATCH_NORM, Builder, positiveInt, type ModelOptions } from './common.js';

/** One depthwise-separable block: output filters (before the width multiplier) and stride. */
export interface DwsepBlock {
  filters: number;
  /** Stride of the depthwise conv. Default 1. */
  stride?: number;
}

export interface DwsepOptions extends ModelOptions {
  /** Filters of the stem conv (before the width multiplier). Default 32. */
  stemFilters?: number;
  /** Stride of the stem conv: 1 for small images (default), 2 for large ones. */
  stemStride?: number;
  /** Blocks in order. Default 64/s1, 128/s2, 128/s1, 256/s2. */
  blocks?: DwsepBlock[];
}

const DEFAULT_BLOCKS: DwsepBlock[] = [
  { filters: 64, stride: 1 }, { filters: 128, stride: 2 }, { filters: 128, stride: 1 }, { filters: 256, stride: 2 },
];

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
  const b = new Builder('dwsep', options, true);
  const blocks = options.blocks ?? DEFAULT_BLOCKS;
  if (!Array.isArray(blocks) || blocks.length === 0) {
    throw new UserError(`dwsep: blocks must be a non-empty list of { filters, stride? }, got ${JSON.stringify(blocks)}`);
  }
  const stemStride = positiveInt('dwsep', 'stemStride', options.stemStride ?? 1);
  const input = b.input();
  let x = b.convBnRelu(input, 'conv1', b.units(positiveInt('dwsep', 'stemFilters', options.stemFilters ?? 32)), 3, stemStride);
  blocks.forEach((block, k) => {
    const name = `block${k + 1}`;
    const filters = positiveInt('dwsep', `blocks[${k}].filters`, block?.filters);
    const strides = positiveInt('dwsep', `blocks[${k}].stride`, block?.stride ?? 1);
    x = tf.layers.depthwiseConv2d({
      name: `${name}_dw`, kernelSize: 3, strides, padding: 'same', useBias: false,
      depthwiseInitializer: b.init(x, 3, true).kernelInitializer,
    }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: `${name}_dw_bn`, ...BATCH_NORM }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU({ name: `${name}_dw_relu` }).apply(x) as tf.SymbolicTensor;
    x = b.convBnRelu(x, `${name}_pw`, b.units(filters), 1);
  });
  const features = tf.layers.globalAveragePooling2d({ name: 'features' }).apply(x) as tf.SymbolicTensor;
  return b.finish(input, features);
}
