import type * as tf from '@tensorflow/tfjs';
import { encodeModelArtifacts, savedSizes, WEIGHT_ENCODINGS } from '../io/quantize.js';
import { countParams } from '../models/common.js';
import type { ByteSizes } from './types.js';

export interface ModelSize {
  /** All weights, trainable and not (`countParams`). */
  params: number;
  /**
   * Bytes on disk per weight encoding: `weights.bin` (the encoded weight data, exact) plus
   * `model.json` (topology + weights manifest with its quantization fields + sha256), i.e.
   * exactly the two files `saveEncodedModel` / the `file://` handler writes.
   */
  bytes: ByteSizes;
  /** The weight data alone, per encoding. */
  weightBytes: ByteSizes;
  /** model.json alone, per encoding (its manifest differs slightly by encoding). */
  modelJsonBytes: ByteSizes;
}

export interface ModelSizeOptions {
  model: tf.LayersModel;
}

/** Parameter count and the real serialized size of `model` in float32, float16 and uint8. */
export function modelSize({ model }: ModelSizeOptions): ModelSize {
  const bytes = {} as ByteSizes;
  const weightBytes = {} as ByteSizes;
  const modelJsonBytes = {} as ByteSizes;
  for (const encoding of WEIGHT_ENCODINGS) {
    const s = savedSizes(encodeModelArtifacts({ model, encoding }));
    weightBytes[encoding] = s.weights;
    modelJsonBytes[encoding] = s.modelJson;
    bytes[encoding] = s.weights + s.modelJson;
  }
  return { params: countParams(model), bytes, weightBytes, modelJsonBytes };
}
