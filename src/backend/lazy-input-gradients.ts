/**
 * tfjs-layers runs Conv2D and Dense layers with a linear activation through `tf.fused.conv2d`
 * / `tf.fused.matMul` even while gradients are recorded, and the gradient of those fused ops
 * computes the input's gradient eagerly, whether it is needed or not. For the first layer of a
 * network it never is (nobody trains the images): a wasted backward convolution or matmul on
 * every step, 8% of a small CNN student's step on `native`. While gradients are recorded these
 * two layers here run the unfused ops, whose registered gradients compute only what the tape
 * asks for; same kernels, same values. Inference keeps the fused path. Installed once, for
 * every backend.
 */
import * as tf from '@tensorflow/tfjs';

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
};
type Call = (this: LayerInstance, inputs: tf.Tensor | tf.Tensor[], kwargs: object) => tf.Tensor | tf.Tensor[];

let installed = false;

function recordingLinear(layer: LayerInstance): boolean {
  return tf.engine().state.gradientDepth > 0 && layer.activation.getClassName() === 'linear';
}

function single(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | undefined {
  if (!Array.isArray(inputs)) return inputs;
  return inputs.length === 1 ? inputs[0] : undefined;
}

function patch(
  className: string,
  unfused: (layer: LayerInstance, x: tf.Tensor, kwargs: object) => tf.Tensor | undefined,
): void {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  const proto = (entry?.[0] as { prototype?: { call?: Call } } | undefined)?.prototype;
  const original = proto?.call;
  if (!proto || !original) return;
  proto.call = function (this: LayerInstance, inputs, kwargs) {
    const x = single(inputs);
    if (x === undefined || !recordingLinear(this)) return original.call(this, inputs, kwargs);
    const y = tf.tidy(() => unfused(this, x, kwargs));
    return y ?? original.call(this, inputs, kwargs);
  };
}

/** Runs linear Conv2D / Dense layers unfused while gradients are recorded (see the file's doc). */
export function installLazyInputGradients(): void {
  if (installed) return;
  installed = true;
  patch('Conv2D', (layer, x) => {
    if (layer.rank !== 2 || layer.dataFormat !== 'channelsLast' || x.rank !== 4) return undefined;
    const pad = layer.padding === 'same' ? 'same' : 'valid';
    const dilations = (layer.dilationRate ?? 1) as number | [number, number];
    const y = tf.conv2d(
      x as tf.Tensor4D,
      layer.kernel.read() as tf.Tensor4D,
      layer.strides as [number, number],
      pad,
      'NHWC',
      dilations,
    );
    return layer.bias ? tf.add(y, layer.bias.read()) : y;
  });
  patch('Dense', (layer, x, kwargs) => {
    if (x.rank !== 2) return undefined;
    layer.invokeCallHook?.(x, kwargs);
    const y = tf.matMul(x, layer.kernel.read());
    return layer.bias ? tf.add(y, layer.bias.read()) : y;
  });
}
