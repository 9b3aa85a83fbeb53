import * as tf from '@tensorflow/tfjs';
import { strongView } from '../data/augment.js';
import { type BatchStream, isBatchStream } from '../data/batch-stream.js';
import type { Batch, Dataset } from '../data/dataset.js';
import { Rng } from '../data/rng.js';
import { UserError } from '../errors.js';
import { CachedTeacher } from '../teachers/cached.js';
import type { Teacher } from '../teachers/types.js';
import { cosineRate, createOptimizer, isOptimizer, learningRateOf, setLearningRate } from './optimizers.js';
import { withSeededMathRandom } from './seeded-random.js';
import { createStep, offlineTeacher, tapsNeeded } from './step.js';
import type { EpochRecord, TrainOptions, TrainResult } from './types.js';

/**
 * Bumped whenever a default changes what the same configuration trains (initialization,
 * schedule…), so caches of trained teachers made by an older version are not reused.
 * 2: zoo init `pytorch`, cosine per step. 3: zoo batch norm momentum 0.9 (PyTorch's).
 */
export const TRAINING_VERSION = 3;

/** Accuracy and mean cross-entropy of a model on a dataset's labeled rows (inference mode). */
export function evaluateAccuracy(
  model: tf.LayersModel,
  data: Dataset,
  batchSize = 256,
): { accuracy: number; loss: number } {
  let correct = 0;
  let loss = 0;
  for (const { x, y } of data.batches({ batchSize })) {
    const [c, l] = tf.tidy(() => {
      const logits = model.predict(x, { batchSize: x.shape[0] }) as tf.Tensor2D;
      const ce = tf.losses.softmaxCrossEntropy(tf.oneHot(y, logits.shape[1]), logits, undefined, 0, tf.Reduction.SUM);
      return [logits.argMax(1).equal(y).sum().dataSync()[0]!, ce.dataSync()[0]!];
    });
    correct += c;
    loss += l;
  }
  const n = Math.max(1, data.labeledSize);
  return { accuracy: correct / n, loss: loss / n };
}

function checkOptions(o: TrainOptions): void {
  if (o.learners.length === 0) throw new UserError('training needs at least one student model');
  if (!Number.isInteger(o.epochs) || o.epochs < 1)
    throw new UserError(`epochs must be a positive integer, got ${o.epochs}`);
  if (!isBatchStream(o.train) && (!Number.isInteger(o.batchSize) || o.batchSize < 1))
    throw new UserError(`batchSize must be a positive integer, got ${o.batchSize}`);
  const qad = o.quantizationAware;
  if (qad !== undefined && !(Number.isInteger(qad.lastEpochs) && qad.lastEpochs >= 1))
    throw new UserError(`quantizationAware.lastEpochs must be a positive integer, got ${qad.lastEpochs}`);
  if (qad?.granularity !== undefined && qad.granularity !== 'tensor' && qad.granularity !== 'channel')
    throw new UserError(`quantizationAware.granularity must be tensor or channel, got ${qad.granularity}`);
  for (const l of o.learners) {
    const out = l.model.outputs[0]!.shape[1];
    if (out !== o.train.numClasses) {
      throw new UserError(
        `student ${l.name} has ${out} outputs but the data has ${o.train.numClasses} classes; build the student with numClasses: ${o.train.numClasses}`,
      );
    }
    if (l.terms.length === 0) throw new UserError(`student ${l.name} has no loss terms; add at least ce`);
  }
  if (o.teacher && o.teacher.numClasses !== o.train.numClasses) {
    throw new UserError(
      `teacher has ${o.teacher.numClasses} classes but the data has ${o.train.numClasses}; use a teacher trained on the same classes`,
    );
  }
  if (isBatchStream(o.train)) {
    if (o.augment) throw new UserError('augment needs the data in memory; it cannot shift a streamed dataset');
    if (o.schedule === 'cosine' && o.train.batchesPerEpoch === undefined)
      throw new UserError(
        'the cosine schedule needs the number of batches per epoch of a streamed dataset; give batchesPerEpoch',
      );
  }
  const shape = o.train.sampleShape.join(',');
  if (o.teacher && o.teacher.inputShape.join(',') !== shape) {
    throw new UserError(
      `teacher input shape [${o.teacher.inputShape.join(',')}] differs from the data's sample shape [${shape}]`,
    );
  }
}

/**
 * Early stopping's state after some epochs' validation accuracies: the best one and the epochs
 * since it (an epoch counts as better when it beats the best by more than `minDelta`). A
 * resumed run derives it from its history, so the checkpoint needs nothing more.
 */
export function earlyStoppingState(
  accuracies: readonly (number | undefined)[],
  minDelta = 0,
): { best: number; sinceBest: number } {
  let best = -Infinity;
  let sinceBest = 0;
  for (const a of accuracies) {
    if (a === undefined) continue;
    if (a > best + minDelta) {
      best = a;
      sinceBest = 0;
    } else {
      sinceBest++;
    }
  }
  return { best, sinceBest };
}

/**
 * The one training loop: offline, online and self-distillation all run through it. It
 * batches the data (seeded), asks the teacher outside the tape (awaiting async teachers),
 * runs the shared step, logs each loss term per epoch, validates, and calls back.
 */
/** A loss that is NaN or ±Infinity: training stops at that batch (the weights are already poisoned). */
function diverged(learner: string, loss: string, value: number, epoch: number, batch: number): UserError {
  return new UserError(
    `training diverged: loss \`${loss}\` of ${learner} is ${value} in epoch ${epoch + 1}, batch ${batch + 1}; lower the learning rate (optimizer.kwargs.learningRate) or the term's weight and start again (checkpoints of earlier epochs are kept)`,
  );
}

/** The batch followed by its strong view (`src/data/augment.ts`): 2B rows, labels and indices repeated. */
function withStrongView(batch: Batch, rng: Rng): Batch {
  const shape = batch.x.shape as [number, number, number, number];
  if (shape.length !== 4)
    throw new UserError(
      `a term that learns from a strong view (mlkd) needs image samples [height, width, channels], got [${shape.slice(1)}]`,
    );
  const strong = strongView(batch.x.dataSync() as Float32Array, shape, rng);
  return tf.tidy(() => ({
    x: tf.concat([batch.x, tf.tensor(strong, shape)]),
    y: tf.concat([batch.y, batch.y]) as tf.Tensor1D,
    indices: Int32Array.from([...batch.indices, ...batch.indices]),
  }));
}

/** A stream's batches as the loop's Batch (indices: positions in this pass, for counting only). */
async function* streamed(stream: BatchStream): AsyncGenerator<Batch, void, undefined> {
  let at = 0;
  for await (const { x, y } of stream.batches()) {
    const n = x.shape[0]!;
    yield { x, y, indices: Int32Array.from({ length: n }, (_, i) => at + i) };
    at += n;
  }
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  checkOptions(options);
  const { learners, train: data, validation, epochs, batchSize, callbacks = {} } = options;
  const streaming = isBatchStream(data);
  const optimizer = createOptimizer(options.optimizer);
  const baseRate = learningRateOf(optimizer);
  const rng = options.rng ?? new Rng(options.seed);
  const teacherTaps = tapsNeeded(learners).teacher;
  // mlkd: every step on the batch and its strong view; the teacher sees both (no cache)
  const twoViews = learners.some((l) => l.terms.some(({ term }) => term.needs.views === 'weak+strong'));
  let teacher: Teacher | undefined = options.teacher;
  if (
    teacher &&
    options.cacheTeacher !== false &&
    !options.augment &&
    !twoViews &&
    teacherTaps.length === 0 &&
    !(teacher instanceof CachedTeacher) &&
    !streaming
  ) {
    const cached = new CachedTeacher({
      size: data.size,
      numClasses: teacher.numClasses,
      inputShape: teacher.inputShape,
      source: teacher,
    });
    // every row up front, in row order: the same logits whether the phase runs whole or resumed
    await cached.fill(data);
    teacher = cached;
  }
  const step = createStep(
    learners,
    optimizer,
    options.selectTeacher ?? offlineTeacher,
    options.teacher,
    options.teacherTapShapes,
  );
  const history: Record<string, EpochRecord[]> = Object.fromEntries(learners.map((l) => [l.name, []]));
  const started = performance.now();
  // the monitored accuracies so far; early stopping's state is derived from them (one rule)
  const monitoredSoFar = [...(options.earlyStopping?.previous ?? [])];
  let bestWeights: tf.Tensor[][] | undefined;
  let stoppedEarly = false;
  await callbacks.onTrainBegin?.();
  // cosine decays per step, as PyTorch users schedule it (per epoch, the last epoch kept 2–10 % of the rate)
  const stepsPerEpoch = streaming ? (data.batchesPerEpoch ?? 0) : data.countBatches({ batchSize });
  const qad = options.quantizationAware;
  // quantization-aware distillation: the last K epochs (all of them when the phase is shorter)
  const quantizeFrom = qad !== undefined ? Math.max(0, epochs - qad.lastEpochs) : Infinity;
  try {
    for (let epoch = options.initialEpoch ?? 0; epoch < epochs; epoch++) {
      for (const l of learners) for (const { term } of l.terms) term.onEpochBegin?.(epoch);
      await callbacks.onEpochBegin?.(epoch);
      const fakeQuantize = epoch >= quantizeFrom ? (qad?.granularity ?? 'tensor') : undefined;
      const epochStart = performance.now();
      const sums = learners.map(() => ({}) as Record<string, number>);
      const correct = learners.map(() => 0);
      let seen = 0;
      let batchIndex = 0;
      const source = streaming
        ? streamed(data)
        : data.batches({ batchSize, shuffle: options.shuffle ?? true, rng, augment: options.augment });
      for await (const batch of source) {
        await callbacks.onBatchBegin?.(batchIndex);
        if (options.schedule === 'cosine') {
          setLearningRate(optimizer, cosineRate(baseRate, epoch * stepsPerEpoch + batchIndex, epochs * stepsPerEpoch));
        }
        const viewed = twoViews ? withStrongView(batch, rng) : batch;
        // a streamed batch has no dataset rows: nothing to look cached outputs or memory slots up by
        const rows = streaming ? undefined : viewed.indices;
        const taught = teacher
          ? await teacher.predict(viewed.x, {
              indices: options.augment || twoViews ? undefined : rows,
              taps: teacherTaps,
            })
          : undefined;
        const n = viewed.indices.length;
        const result = withSeededMathRandom(rng, () => step(viewed.x, viewed.y, taught, rows, fakeQuantize));
        if (taught) tf.dispose([taught.logits, ...Object.values(taught.taps)]);
        if (viewed !== batch) tf.dispose([viewed.x, viewed.y]);
        result.losses.forEach((losses, i) => {
          for (const [name, v] of Object.entries(losses)) {
            if (!Number.isFinite(v)) throw diverged(learners[i]!.name, name, v, epoch, batchIndex);
            sums[i]![name] = (sums[i]![name] ?? 0) + v * n;
          }
          correct[i]! += result.correct[i]!;
        });
        seen += n;
        // counted outside the callback's arguments: `f?.(…)` does not evaluate them when there is
        // no callback, and the cosine schedule reads this count (it once froze within each epoch)
        const index = batchIndex++;
        await callbacks.onBatchEnd?.({
          batch: index,
          size: n,
          losses: Object.fromEntries(learners.map((l, i) => [l.name, result.losses[i]!])),
        });
      }
      const seconds = (performance.now() - epochStart) / 1000;
      const records: Record<string, EpochRecord> = {};
      learners.forEach((l, i) => {
        const losses = Object.fromEntries(Object.entries(sums[i]!).map(([k, v]) => [k, v / seen]));
        const record: EpochRecord = { epoch: epoch + 1, seconds, losses, trainAccuracy: correct[i]! / seen };
        const state = Object.assign({}, ...l.terms.map(({ term }) => term.describeState?.() ?? {}));
        if (Object.keys(state).length > 0) record.termState = state;
        if (validation) {
          const v = evaluateAccuracy(l.model, validation);
          record.valAccuracy = v.accuracy;
          record.valLoss = v.loss;
        }
        records[l.name] = record;
        history[l.name]!.push(record);
      });
      await callbacks.onEpochEnd?.(epoch, records);
      if (options.stopRequested?.()) {
        stoppedEarly = true;
        break;
      }
      const stop = options.earlyStopping;
      const monitored = records[learners[0]!.name]!.valAccuracy;
      if (stop && monitored !== undefined) {
        monitoredSoFar.push(monitored);
        const { sinceBest } = earlyStoppingState(monitoredSoFar, stop.minDelta);
        if (sinceBest === 0) {
          if (stop.restoreBest) {
            bestWeights?.flat().forEach((t) => t.dispose());
            bestWeights = learners.map((l) => l.model.getWeights().map((w) => w.clone()));
          }
        } else if (sinceBest >= stop.patience) {
          stoppedEarly = true;
          break;
        }
      }
    }
  } catch (e) {
    // A failed step (a diverged loss, an aborted callback): free what this call made, keep the models.
    bestWeights?.flat().forEach((t) => t.dispose());
    if (!isOptimizer(options.optimizer)) optimizer.dispose();
    throw e;
  }
  if (bestWeights) {
    learners.forEach((l, i) => l.model.setWeights(bestWeights![i]!));
    bestWeights.flat().forEach((t) => t.dispose());
  }
  if (!isOptimizer(options.optimizer)) optimizer.dispose();
  await callbacks.onTrainEnd?.(history);
  return { history, seconds: (performance.now() - started) / 1000, stoppedEarly };
}
