import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../options.js';
import { Registry } from '../registry.js';
import type { OptimizerSpec } from './types.js';

const learningRate = (fallback: number) => z.number().positive().default(fallback);

/** Each optimizer's options: the one definition of their names, ranges and defaults. */
export const adamOptions = z.strictObject({ learningRate: learningRate(1e-3) });
export const sgdOptions = z.strictObject({ learningRate: learningRate(1e-2) });
/** Nesterov momentum. */
export const momentumOptions = z.strictObject({
  learningRate: learningRate(1e-2),
  momentum: z.number().min(0).lt(1).default(0.9),
});
export const rmspropOptions = z.strictObject({ learningRate: learningRate(1e-3) });

/** A registered optimizer: its options schema (validates a config's kwargs) and its factory. */
export interface OptimizerEntry {
  kwargs: z.ZodType<Record<string, unknown>>;
  create(options: Record<string, unknown>): tf.Optimizer;
}

/** A registry entry from an optimizer's options schema and a factory of the parsed options. */
export function defineOptimizer<S extends z.ZodType<Record<string, unknown>>>(
  key: string,
  kwargs: S,
  create: (o: z.output<S>) => tf.Optimizer,
): OptimizerEntry {
  return { kwargs, create: (o) => create(parseOptions(`optimizer \`${key}\``, kwargs, o)) };
}

export const optimizers = new Registry<OptimizerEntry>('optimizer')
  .register(
    'adam',
    defineOptimizer('adam', adamOptions, (o) => tf.train.adam(o.learningRate)),
  )
  .register(
    'sgd',
    defineOptimizer('sgd', sgdOptions, (o) => tf.train.sgd(o.learningRate)),
  )
  .register(
    'momentum',
    defineOptimizer('momentum', momentumOptions, (o) => tf.train.momentum(o.learningRate, o.momentum, true)),
  )
  .register(
    'rmsprop',
    defineOptimizer('rmsprop', rmspropOptions, (o) => tf.train.rmsprop(o.learningRate)),
  );

export function isOptimizer(value: unknown): value is tf.Optimizer {
  return typeof value === 'object' && value !== null && 'applyGradients' in value;
}

/** An optimizer from a config's `{ key, kwargs }` node (e.g. `{ key: 'adam', kwargs: { learningRate: 2e-3 } }`), or as given. */
export function createOptimizer(spec: OptimizerSpec | tf.Optimizer = { key: 'adam' }): tf.Optimizer {
  return isOptimizer(spec) ? spec : optimizers.get(spec.key).create(spec.kwargs ?? {});
}

/** Sets the learning rate of a TF.js optimizer (its field is read on every step). */
export function setLearningRate(optimizer: tf.Optimizer, rate: number): void {
  (optimizer as unknown as { learningRate: number }).learningRate = rate;
}

export function learningRateOf(optimizer: tf.Optimizer): number {
  return (optimizer as unknown as { learningRate: number }).learningRate;
}

/**
 * Cosine decay from the base rate at step 0 towards 0 at step `steps` (Loshchilov & Hutter, SGDR, without restarts).
 */
export function cosineRate(base: number, step: number, steps: number): number {
  return 0.5 * base * (1 + Math.cos((Math.PI * step) / steps));
}
