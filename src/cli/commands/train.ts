import { join, resolve } from 'node:path';
import { useBestBackend } from '../../backend/index.js';
import { parseWith } from '../../config/issues.js';
import { parseConfigSource, sourceData } from '../../config/source.js';
import { UserError } from '../../errors.js';
import { registerFileRouters } from '../../io/file-handler.js';
import { saveEncodedModel } from '../../io/quantize.js';
import { createTerm } from '../../knowledge/index.js';
import { buildModel, models } from '../../models/zoo.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { optimizers } from '../../train/optimizers.js';
import { evaluateAccuracy, train } from '../../train/trainer.js';
import { selectTrainValidation, type DataOptions } from '../data-options.js';
import { progressCallbacks, type ProgressMode } from '../../train/progress.js';

export interface TrainCommandOptions extends Omit<DataOptions, 'split'> {
  model: string;
  width?: number;
  modelKwargs?: string;
  epochs: number;
  batchSize: number;
  optimizer: string;
  lr?: number;
  schedule: string;
  augmentShift?: number;
  out: string;
  backend?: string;
  progress: ProgressMode;
}

/**
 * `distill train`: a zoo model (a teacher, or any model) trained from scratch on the labels,
 * saved as model.json + weights.bin with `training.json` (settings and history) beside it.
 */
export async function trainCommand(
  o: TrainCommandOptions,
): Promise<{ path: string; valAccuracy?: number; seconds: number }> {
  if (!models.has(o.model)) models.get(o.model);
  if (!optimizers.has(o.optimizer)) optimizers.get(o.optimizer);
  if (o.schedule !== 'constant' && o.schedule !== 'cosine')
    throw new UserError(`unknown schedule \`${o.schedule}\`; known: constant, cosine`);
  let kwargs: Record<string, unknown> = {};
  if (o.modelKwargs !== undefined) {
    const source = parseConfigSource({ text: o.modelKwargs, file: '--model-kwargs' });
    kwargs = (sourceData(source) ?? {}) as Record<string, unknown>;
    kwargs = parseWith(models.get(o.model).kwargs, kwargs, { source });
  }
  if (o.width !== undefined) kwargs = { ...kwargs, width: o.width };
  const { train: data, validation } = selectTrainValidation(o);
  const backend = await useBestBackend({ backend: o.backend });
  process.stderr.write(
    `backend: ${backend.name} (${backend.reason}); data: ${data.size} train / ${validation?.size ?? 0} validation\n`,
  );
  registerFileRouters();
  const seed = o.seed ?? 1;
  const model = buildModel({
    key: o.model,
    kwargs,
    inputShape: data.sampleShape,
    numClasses: data.numClasses,
    seed,
    name: o.model,
  });
  try {
    const result = await train({
      learners: [{ name: o.model, model, terms: [{ term: createTerm('ce'), weight: 1 }] }],
      train: data,
      validation,
      epochs: o.epochs,
      batchSize: o.batchSize,
      seed,
      optimizer: { key: o.optimizer, kwargs: o.lr !== undefined ? { learningRate: o.lr } : {} },
      schedule: o.schedule,
      ...(o.augmentShift !== undefined && o.augmentShift > 0 && { augment: { shift: o.augmentShift } }),
      callbacks: progressCallbacks({ mode: o.progress, label: o.model, epochs: o.epochs, samplesPerEpoch: data.size }),
    });
    const out = resolve(o.out);
    const saved = await saveEncodedModel({ model, encoding: 'float32', path: out });
    const history = result.history[o.model] ?? [];
    await writeFileAtomic(
      join(out, 'training.json'),
      `${JSON.stringify(
        {
          model: { key: o.model, kwargs },
          data: o.csv ?? o.data ?? 'fashion-mnist',
          subset: o.subset,
          validationFraction: o.validationFraction,
          seed,
          epochs: o.epochs,
          batchSize: o.batchSize,
          optimizer: o.optimizer,
          learningRate: o.lr,
          schedule: o.schedule,
          augmentShift: o.augmentShift,
          backend: backend.name,
          seconds: result.seconds,
          history,
        },
        null,
        2,
      )}\n`,
    );
    const valAccuracy = validation ? evaluateAccuracy(model, validation).accuracy : undefined;
    return { path: saved.modelJsonPath, seconds: result.seconds, ...(valAccuracy !== undefined && { valAccuracy }) };
  } finally {
    model.dispose();
  }
}
