import type * as tf from '@tensorflow/tfjs';
import { Dataset } from '../src/data/dataset.js';

/** max |a − b| / max |b|: the relative error the backend tests compare against 1e-4. */
export function relativeError(a: tf.TypedArray, b: tf.TypedArray): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / Math.max(scale, 1e-12);
}

/** Four blobs in 6-D (class c is `separation` high on feature c), seeded noise: learnable in a few epochs. */
export function blobs(size: number, seed: number, separation = 2): Dataset {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const features = new Float32Array(size * 6);
  const labels = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    labels[i] = i % 4;
    for (let d = 0; d < 6; d++) features[i * 6 + d] = (d % 4 === i % 4 ? separation : 0) + (rand() - 0.5);
  }
  return new Dataset({ features, labels, sampleShape: [6], numClasses: 4 });
}
