import type * as tf from '@tensorflow/tfjs';
import type { z } from 'zod';
import { Registry } from '../registry.js';
import { cnn, cnnOptions } from './cnn.js';
import type { ModelContext } from './common.js';
import { dwsep, dwsepOptions } from './dwsep.js';
import { mlp, mlpOptions } from './mlp.js';
import { resnet, resnetOptions } from './resnet.js';

/** A model builder: the run's context and the model's options in, a LayersModel with linear `logits` out. */
export type ModelBuilder = (options: ModelContext & Record<string, unknown>) => tf.LayersModel;

/** A registered model: its options schema (validates a config's kwargs) and its builder. */
export interface ModelEntry {
  kwargs: z.ZodType<Record<string, unknown>>;
  build: ModelBuilder;
}

/** A registry entry from a model's options schema and its builder. */
export function defineModel<S extends z.ZodType<Record<string, unknown>>>(
  kwargs: S,
  build: (options: ModelContext & z.input<S>) => tf.LayersModel,
): ModelEntry {
  return { kwargs, build: build as ModelBuilder };
}

/** The model zoo, keyed `cnn`, `dwsep`, `mlp`, `resnet`. */
export const models = new Registry<ModelEntry>('model')
  .register('mlp', defineModel(mlpOptions, mlp))
  .register('cnn', defineModel(cnnOptions, cnn))
  .register('resnet', defineModel(resnetOptions, resnet))
  .register('dwsep', defineModel(dwsepOptions, dwsep));

/** The options of each zoo model, by key (what `kwargs` takes in `buildModel` and in a config). */
export interface ModelKwargs {
  mlp: z.input<typeof mlpOptions>;
  cnn: z.input<typeof cnnOptions>;
  resnet: z.input<typeof resnetOptions>;
  dwsep: z.input<typeof dwsepOptions>;
}

/** `buildModel`'s argument: the config's `{ key, kwargs }` node and the run's context. */
export type BuildModelOptions = ModelContext &
  (
    | { [K in keyof ModelKwargs]: { key: K; kwargs?: ModelKwargs[K] } }[keyof ModelKwargs]
    | {
        key: string;
        kwargs?: Record<string, unknown>;
      }
  );

/**
 * Builds the model `key` of the `models` registry with `kwargs`, as a config's `{ key, kwargs }`
 * node does, e.g. `buildModel({ key: 'cnn', kwargs: { width: 0.25 }, inputShape: [28, 28, 1], numClasses: 10 })`.
 * Unknown keys list the known ones; bad kwargs name the option.
 */
export function buildModel(options: BuildModelOptions): tf.LayersModel {
  const { key, kwargs, ...context } = options;
  return models.get(key).build({ ...(kwargs ?? {}), ...context });
}
