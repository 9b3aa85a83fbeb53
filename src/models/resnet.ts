import * as tf from '@tensorflow/tfjs';
import type { z } from 'zod';
import { Builder, type ModelContext, modelArgs, modelOptions, positiveInt, positiveInts } from './common.js';

/** The options of `resnet` (beside `width` and `init`): names, types, ranges and defaults, defined once. */
export const resnetOptions = modelOptions.extend({
  /** Filters of each stage (before the width multiplier); the stem uses the first. Default `[16, 32, 64]`. */
  stages: positiveInts.default([16, 32, 64]),
  /** Residual blocks per stage. Default 2 (ResNet-14 with the default 3 stages). */
  blocksPerStage: positiveInt.default(2),
  /** Stride of the stem conv: 1 for small images (default), 2 for large ones. */
  stemStride: positiveInt.default(1),
});
export type ResnetOptions = ModelContext & z.input<typeof resnetOptions>;

/**
 * Small ResNet (He et al. 2016, CIFAR-style basic blocks): a 3×3 conv stem, then stages of
 * basic residual blocks [3×3 conv → BN → ReLU → 3×3 conv → BN] + shortcut → ReLU. Every
 * stage after the first halves H×W in its first block (stride 2). The shortcut is the
 * identity when shape is kept, else a projection (1×1 conv, stride, → BN). Then global
 * average pooling and linear logits.
 *
 * Layer names (s = 1 … stages.length, k = 0 … blocksPerStage−1, as torchvision's layer1.0):
 * - `input`, stem `conv1`, `conv1_bn`, `conv1_relu`
 * - `stage{s}_block{k}_conv1`, `…_conv1_bn`, `…_conv1_relu`, `…_conv2`, `…_conv2_bn`
 * - `stage{s}_block{k}_shortcut`, `…_shortcut_bn` (projection blocks only)
 * - `stage{s}_block{k}_add` (Add), `stage{s}_block{k}_out` (ReLU: the block output)
 * - `features` (GlobalAveragePooling2D: the penultimate vector), `logits` (Dense, linear)
 *
 * Param counts, [28,28,1] → 10 classes, defaults: width 1 = 176,090;
 * width 0.5 = 44,786; width 0.25 = 11,582.
 */
export function resnet(options: ResnetOptions): tf.LayersModel {
  const { context, o } = modelArgs('resnet', resnetOptions, options);
  const b = new Builder('resnet', context, o, true);
  const { stages, blocksPerStage: perStage, stemStride } = o;
  const input = b.input();
  let x = b.convBnRelu(input, 'conv1', b.units(stages[0]!), 3, stemStride);
  let channels = b.units(stages[0]!);
  stages.forEach((f, si) => {
    const filters = b.units(f);
    for (let k = 0; k < perStage; k++) {
      const name = `stage${si + 1}_block${k}`;
      const strides = si > 0 && k === 0 ? 2 : 1;
      let y = b.convBnRelu(x, `${name}_conv1`, filters, 3, strides);
      y = b.convBnRelu(y, `${name}_conv2`, filters, 3, 1, false);
      const shortcut =
        strides === 1 && channels === filters ? x : b.convBnRelu(x, `${name}_shortcut`, filters, 1, strides, false);
      y = tf.layers.add({ name: `${name}_add` }).apply([y, shortcut]) as tf.SymbolicTensor;
      x = tf.layers.reLU({ name: `${name}_out` }).apply(y) as tf.SymbolicTensor;
      channels = filters;
    }
  });
  const features = tf.layers.globalAveragePooling2d({ name: 'features' }).apply(x) as tf.SymbolicTensor;
  return b.finish(input, features);
}
