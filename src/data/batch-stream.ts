import type * as tf from '@tensorflow/tfjs';

/**
 * Batches that arrive one at a time, e.g. from a tf.data pipeline larger than memory: the
 * trainer walks `batches()` once per epoch, the teacher runs on every batch (there is no row to
 * cache its outputs under), and the order is the stream's own.
 */
export interface BatchStream {
  readonly kind: 'stream';
  numClasses: number;
  sampleShape: number[];
  /** One pass over the data; each batch's tensors belong to the iterator, which frees them when it moves on. */
  batches(): AsyncIterable<{ x: tf.Tensor; y: tf.Tensor1D }>;
  /** Batches in one pass, when known (the cosine schedule needs it). */
  batchesPerEpoch?: number;
}

export function isBatchStream(data: object): data is BatchStream {
  return (data as Partial<BatchStream>).kind === 'stream';
}
