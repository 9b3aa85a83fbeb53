/**
 * Fake quantization for quantization-aware distillation (QAD): during the last epochs of a
 * phase the forward pass sees q(w) = dequant(quant(w)), the weights as the `uint8` export
 * will store them, and the gradient at q(w) updates the float weights w (the straight-through
 * estimator, Bengio et al. 2013, "Estimating or Propagating Gradients Through Stochastic
 * Neurons"; quantization-aware training as in Jacob et al. 2018, "Quantization and Training
 * of Neural Networks for Efficient Integer-Arithmetic-Only Inference").
 *
 * q uses the exporter's own rule (`toUint8` / `fromUint8` in `src/io/quantize.ts`: affine,
 * zero nudged to an exact code, decoded in double precision and rounded to float32 as
 * `tf.io.decodeWeights` does), so with `granularity: tensor` the training forward pass sees
 * bit for bit the weights `tf.loadLayersModel` gets from the uint8 files. `channel` quantizes
 * each output channel of a kernel with its own min and scale (as TFLite's or ONNX's int8
 * kernels do); the TF.js format stores one min/scale per tensor, so the uint8 export is per
 * tensor and matches `tensor` only.
 */
import * as tf from '@tensorflow/tfjs';
import { fromUint8, toUint8 } from '../io/quantize.js';

/** One min/scale per tensor (what the TF.js uint8 export stores) or per output channel of each kernel. */
export type QuantGranularity = 'tensor' | 'channel';

/**
 * Output channels of a weight for per-channel quantization: a kernel's last axis (Dense
 * `[in, out]`, Conv2D `[kh, kw, in, out]`), a depthwise kernel's last two (`[kh, kw, in, mult]`:
 * in·mult outputs); 1 (per tensor) for vectors: biases and batch-norm γ, β.
 */
export function outputChannels(shape: readonly number[], name = ''): number {
  if (shape.length < 2) return 1;
  const last = shape[shape.length - 1]!;
  return /depthwise_kernel$/.test(name) ? last * shape[shape.length - 2]! : last;
}

/**
 * q(values): each group of `channels` interleaved values (channel c = the elements with
 * index ≡ c mod `channels`, the layout of a channels-last kernel) quantized to uint8 with the
 * export's rule and decoded as a loader decodes it. `channels` 1: the whole tensor, as exported.
 */
export function fakeQuantizeValues(values: Float32Array, channels = 1): Float32Array {
  if (channels <= 1) return fromUint8(toUint8(values));
  if (values.length % channels !== 0) {
    throw new Error(`fakeQuantizeValues: ${values.length} values do not split into ${channels} channels`);
  }
  const n = values.length / channels;
  const out = new Float32Array(values.length);
  const slice = new Float32Array(n);
  const decoded = new Float32Array(n);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < n; i++) slice[i] = values[i * channels + c]!;
    fromUint8(toUint8(slice), decoded);
    for (let i = 0; i < n; i++) out[i * channels + c] = decoded[i]!;
  }
  return out;
}

export interface FakeQuantizeOptions {
  tensor: tf.Tensor;
  granularity?: QuantGranularity;
  /** The weight's name: a depthwise kernel (`…/depthwise_kernel`) has in·mult output channels. */
  name?: string;
}

/** A new float32 tensor holding q(`tensor`) (see `fakeQuantizeValues`). */
export function fakeQuantize({ tensor, granularity = 'tensor', name }: FakeQuantizeOptions): tf.Tensor {
  const channels = granularity === 'channel' ? outputChannels(tensor.shape, name) : 1;
  return tf.tensor(fakeQuantizeValues(tensor.dataSync() as Float32Array, channels), tensor.shape, 'float32');
}

/** A weight fake quantization swaps: its variable and its name (for the depthwise layout). */
export interface QuantizedWeight {
  variable: tf.Variable;
  name: string;
}

/**
 * The weights QAD fake-quantizes: every trainable float32 weight of the models (kernels,
 * biases, batch-norm γ and β: the uint8 export quantizes them all), each variable once even
 * when models share layers. Batch-norm moving statistics are not trainable and a training
 * forward pass does not read them; the export quantizes them, QAD cannot.
 */
export function quantizedWeights(models: readonly tf.LayersModel[]): QuantizedWeight[] {
  const seen = new Set<tf.Variable>();
  const out: QuantizedWeight[] = [];
  for (const model of models) {
    for (const w of model.trainableWeights) {
      const variable = w.read() as tf.Variable;
      if (variable.dtype !== 'float32' || seen.has(variable)) continue;
      seen.add(variable);
      out.push({ variable, name: w.originalName });
    }
  }
  return out;
}

/**
 * Gives every weight its fake-quantized value and returns the function that puts the float
 * values back. Between the two a forward pass and its gradients see q(w); applying those
 * gradients after the restore updates the float weights: the straight-through estimator.
 * Call inside `tf.tidy` (the quantized values are freed with it); restore exactly once.
 */
export function swapInFakeQuantized(weights: readonly QuantizedWeight[], granularity: QuantGranularity): () => void {
  const floats = weights.map(({ variable, name }) => {
    const float = variable.clone(); // keeps the float values alive while the variable holds q(w)
    variable.assign(fakeQuantize({ tensor: float, granularity, name }));
    return float;
  });
  return () => {
    weights.forEach(({ variable }, i) => {
      variable.assign(floats[i]!);
      // the variable is again the only owner of its values (the fused native Adam updates them in place)
      floats[i]!.dispose();
    });
  };
}
