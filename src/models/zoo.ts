import type * as tf from '@tensorflow/tfjs';
import { Registry } from '../registry.js';
import type { ModelOptions } from './common.js';
import { cnn, type CnnOptions } from './cnn.js';
import { dwsep, type DwsepOptions } from './dwsep.js';
import { mlp, type MlpOptions } from './mlp.js';
import { resnet, type ResnetOptions } from './resnet.js';

/** A model builder: one options object in, a LayersModel with linear `logits` out. */
export type ModelBuilder = (options: ModelOptions & Record<string, unknown>) => tf.LayersModel;

/** The model zoo, keyed `cnn`, `dwsep`, `mlp`, `resnet`. */
export const models = new Registry<ModelBuilder>('model')
  .register('mlp', mlp as ModelBuilder)
  .register('cnn', cnn as ModelBuilder)
  .register('resnet', resnet as ModelBuilder)
  .register('dwsep', dwsep as ModelBuilder);

/** Options of `buildModel`: a zoo key plus that builder's options. */
export type BuildModelOptions =
  | ({ kind: 'mlp' } & MlpOptions)
  | ({ kind: 'cnn' } & CnnOptions)
  | ({ kind: 'resnet' } & ResnetOptions)
  | ({ kind: 'dwsep' } & DwsepOptions);

/** Builds `kind` from the `models` registry; an unknown kind lists the known ones. */
export function buildModel(options: BuildModelOptions | ({ kind: string } & ModelOptions & Record<string, unknown>)): tf.LayersModel {
  const { kind, ...rest } = options;
  return models.get(kind)(rest as ModelOptions & Record<string, unknown>);
}
