import type * as tf from '@tensorflow/tfjs';

/**
 * Multiply-add FLOPs (2 per multiply-add) of one sample through the dense and convolution layers
 * of `model` (batch norm, pooling and activations are left out: small beside them).
 */
export function forwardFlops(model: tf.LayersModel): number[] {
  return model.layers.map((layer) => {
    const cls = layer.getClassName();
    const out = (layer.outputShape as number[]).slice(1);
    const weights = layer.getWeights();
    if (cls === 'Dense') {
      const [inputs, units] = weights[0]!.shape as [number, number];
      return 2 * inputs * units * (out.length > 1 ? out.slice(0, -1).reduce((a, b) => a * b, 1) : 1);
    }
    if (cls === 'Conv2D' || cls === 'DepthwiseConv2D' || cls === 'SeparableConv2D') {
      const [h, w] = out as [number, number, number];
      return weights
        .filter((k) => k.rank === 4)
        .reduce((sum, k) => {
          const [kh, kw, cin, cout] = k.shape as [number, number, number, number];
          return sum + 2 * kh * kw * cin * cout * h * w;
        }, 0);
    }
    return 0;
  });
}

/**
 * FLOPs of one training sample: forward, the weights' gradients (as much again) and the
 * inputs' gradients (as much again, except for the first layer with weights, whose input is data).
 */
export function trainFlops(model: tf.LayersModel): number {
  const per = forwardFlops(model).filter((f) => f > 0);
  const sum = per.reduce((a, b) => a + b, 0);
  return 3 * sum - (per[0] ?? 0);
}

export function inferenceFlops(model: tf.LayersModel): number {
  return forwardFlops(model).reduce((a, b) => a + b, 0);
}
