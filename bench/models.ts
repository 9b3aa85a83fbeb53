import * as tf from '@tensorflow/tfjs';

/** The benchmark models, the same as bench/pytorch_reference.py builds. */
export function benchMlp(sizes: number[]): tf.LayersModel {
  const m = tf.sequential();
  sizes.slice(1).forEach((units, i) =>
    m.add(
      tf.layers.dense({
        units,
        activation: i === sizes.length - 2 ? 'linear' : 'relu',
        ...(i === 0 ? { inputShape: [sizes[0]!] } : {}),
      }),
    ),
  );
  return m;
}

/** conv32-conv64-maxpool-dense128-dense10 on 28×28×1, 'valid' 3×3 convs. */
export function benchCnn(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu' }),
      tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 128, activation: 'relu' }),
      tf.layers.dense({ units: 10 }),
    ],
  });
}
