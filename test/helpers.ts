import assert from 'node:assert/strict';
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

/** Central finite differences of f at x. */
export const finiteDiff = (f: (x: number[]) => number, x: number[], h = 1e-5): number[] => x.map((_, i) => {
  const [p, m] = [[...x], [...x]];
  p[i]! += h;
  m[i]! -= h;
  return (f(p) - f(m)) / (2 * h);
});

/** |actual − expected| ≤ tol · max(1, |expected|). */
export function close(actual: number, expected: number, tol: number, what = ''): void {
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

export function closeAll(a: number[], e: number[], tol: number, what = ''): void {
  assert.equal(a.length, e.length);
  a.forEach((v, i) => close(v, e[i]!, tol, `${what}[${i}]`));
}
