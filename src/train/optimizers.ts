import * as tf from '@tensorflow/tfjs';
import { Registry } from '../registry.js';
import type { OptimizerSpec } from './types.js';

type Factory = (spec: OptimizerSpec) => tf.Optimizer;

export const optimizers = new Registry<Factory>('optimizer')
  .register('adam', (s) => tf.train.adam(s.learningRate ?? 1e-3))
  .register('sgd', (s) => tf.train.sgd(s.learningRate ?? 1e-2))
  .register('momentum', (s) => tf.train.momentum(s.learningRate ?? 1e-2, s.momentum ?? 0.9, true))
  .register('rmsprop', (s) => tf.train.rmsprop(s.learningRate ?? 1e-3));

export function isOptimizer(value: unknown): value is tf.Optimizer {
  return typeof value === 'object' && value !== null && 'applyGradients' in value;
}

export function createOptimizer(spec: OptimizerSpec | tf.Optimizer = { key: 'adam' }): tf.Optimizer {
  return isOptimizer(spec) ? spec : optimizers.get(spec.key)(spec);
}

/** Sets the learning rate of a TF.js optimizer (its field is read on every step). */
export function setLearningRate(optimizer: tf.Optimizer, rate: number): void {
  (optimizer as unknown as { learningRate: number }).learningRate = rate;
}

export function learningRateOf(optimizer: tf.Optimizer): number {
  return (optimizer as unknown as { learningRate: number }).learningRate;
}

/** Cosine decay from the base rate at step 0 towards 0 at step `steps` (Loshchilov & Hutter, SGDR, without restarts). */
export function cosineRate(base: number, step: number, steps: number): number {
  return 0.5 * base * (1 + Math.cos((Math.PI * step) / steps));
}
