/** Shared fixtures of the scheme tests (not a test file: no `.test.` in the name). */
import * as tf from '@tensorflow/tfjs';
import { Dataset } from '../src/data/dataset.js';
import { createFit, mergeCallbacks, type Fit, type FitSettings } from '../src/train/fit.js';
import type { KnowledgeTerm } from '../src/knowledge/index.js';
import { buildModel } from '../src/models/index.js';
import { lcg } from './helpers.js';

/** Four noisy blobs in 6-D (or as [2, 3, 1] images… any shape of 6 values). */
export function blobs(size: number, seed: number, sampleShape: number[] = [6]): Dataset {
  const rand = lcg(seed);
  const d = sampleShape.reduce((a, b) => a * b, 1);
  const features = new Float32Array(size * d);
  const labels = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    labels[i] = i % 4;
    for (let j = 0; j < d; j++) features[i * d + j] = (j % 4 === i % 4 ? 1 : 0) + (rand() - 0.5);
  }
  return new Dataset({ features, labels, sampleShape, numClasses: 4 });
}

export const mlp = (seed: number, hidden = [8], dropout = 0) =>
  buildModel({ key: 'mlp', kwargs: { hidden, dropout }, inputShape: [6], numClasses: 4, seed });

/** A small CNN on 8×8×1 images: two blocks (8, 16 filters), dense 16, no dropout. */
export const smallCnn = (seed: number) =>
  buildModel({
    key: 'cnn',
    kwargs: { blocks: [8, 16], convsPerBlock: 1, dense: 16, dropout: 0 },
    inputShape: [8, 8, 1],
    numClasses: 4,
    seed,
  });

export const weightsOf = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

/** Trainable weights by variable name, as arrays. */
export function trainable(m: tf.LayersModel): Record<string, number[]> {
  return Object.fromEntries(m.trainableWeights.map((w) => [w.originalName, Array.from(w.read().dataSync())]));
}

export const data = { name: 'blobs', train: blobs(64, 1), validation: blobs(16, 2), test: blobs(32, 3) };

export function settings(dir: string, signal?: AbortSignal, overrides: Partial<FitSettings> = {}): FitSettings {
  return {
    seed: 4,
    data,
    epochs: 2,
    batchSize: 16,
    schedule: 'cosine',
    optimizer: { key: 'adam', kwargs: { learningRate: 0.01 } },
    checkpointDir: dir,
    progress: 'quiet',
    signal,
    ...overrides,
  };
}

/** A fit that aborts `controller` after `batches` batches in all (counted over every phase). */
export function abortingFit(s: FitSettings, controller: AbortController, batches: number): Fit {
  const fit = createFit({ ...s, signal: controller.signal });
  let seen = 0;
  return (phase) =>
    fit({
      ...phase,
      callbacks: mergeCallbacks(phase.callbacks, {
        onBatchEnd: () => {
          if (++seen === batches) controller.abort();
        },
      }),
    });
}

/**
 * A term that, unlike the stock ones, would let a gradient reach its teacher — amplified 1000×: selectors must
 * detach.
 */
export function leakyTeacherKd(): KnowledgeTerm {
  const amplify = tf.customGrad((t) => ({
    value: (t as tf.Tensor).clone(),
    gradFunc: (dy: tf.Tensor) => dy.mul(1000),
  }));
  return {
    key: 'leaky',
    needs: { teacher: true },
    compute: ({ studentLogits, teacherLogits }) => ({
      leaky: tf.losses.softmaxCrossEntropy(
        tf.softmax(amplify(teacherLogits!) as tf.Tensor2D),
        studentLogits,
      ) as tf.Scalar,
    }),
    trainableVariables: () => [],
    dispose: () => {},
  };
}
