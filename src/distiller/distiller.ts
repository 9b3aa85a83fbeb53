/**
 * The Keras-style entry point (after Keras 3's `keras.distillation.Distiller`): a teacher, a
 * student and the knowledge to transfer; then `fit(xs, ys, {epochs, batchSize, validationSplit,
 * callbacks})` as on any `tf.LayersModel`, or `fitDataset` on a `tf.data.Dataset`. It runs the
 * same training loop as `train()` (one learner, the frozen teacher, its outputs cached per row),
 * so the same data order and seed give the same weights. Callbacks follow tfjs-layers: plain
 * `{ onEpochEnd(epoch, logs) … }` objects, `tf.Callback` instances, `tf.callbacks.earlyStopping()`
 * (it stops training through `student.stopTraining`). Logs carry `loss` (the total), `acc`,
 * each term's loss by key (`kd`, `ce`, …) and, with validation data, `val_loss` and `val_acc`.
 */
import * as tf from '@tensorflow/tfjs';
import { type BatchStream, isBatchStream } from '../data/batch-stream.js';
import { Dataset } from '../data/dataset.js';
import { UserError } from '../errors.js';
import { createTerm } from '../knowledge/index.js';
import { layersTeacher } from '../teachers/layers.js';
import type { Teacher } from '../teachers/types.js';
import { evaluateAccuracy, train } from '../train/trainer.js';
import type { EpochRecord, OptimizerSpec, TrainCallbacks, WeightedTerm } from '../train/types.js';

export interface KnowledgeNode {
  key: string;
  weight?: number;
  kwargs?: Record<string, unknown>;
}

export interface DistillerOptions {
  /** The frozen teacher: a LayersModel that outputs logits, or any `Teacher` (ONNX, cached logits, several). */
  teacher: tf.LayersModel | Teacher;
  /** The model that learns; it outputs logits. */
  student: tf.LayersModel;
  /** What it learns, as in an experiment file. Default `[{ key: 'kd' }]` (Hinton's T = 4, α = 0.9). */
  knowledge?: KnowledgeNode[];
  /** A `tf.Optimizer` (kept across `fit` calls), or a registry node / key. Default Adam 1e-3. */
  optimizer?: tf.Optimizer | OptimizerSpec | string;
  /** `cosine` decays the rate per step to 0 at the end of each `fit`. Default constant. */
  schedule?: 'constant' | 'cosine';
  /** Seeds shuffling and dropout. Default 1. */
  seed?: number;
}

type AnyCallback = tf.CustomCallbackArgs | tf.Callback;

export interface DistillerFitArgs {
  /** Default 1 (as `model.fit`). */
  epochs?: number;
  /** Default 32 (as `model.fit`). */
  batchSize?: number;
  /** The last fraction of the rows (before shuffling) held out for validation, as tfjs-layers does. */
  validationSplit?: number;
  validationData?: [tf.Tensor, tf.Tensor];
  /** Default true. */
  shuffle?: boolean;
  callbacks?: AnyCallback | AnyCallback[];
  /** 1: a line per epoch on stderr. Default 0. */
  verbose?: 0 | 1;
}

export interface DistillerFitDatasetArgs {
  epochs?: number;
  validationData?: tf.data.Dataset<tf.TensorContainer> | [tf.Tensor, tf.Tensor];
  callbacks?: AnyCallback | AnyCallback[];
  /** Reshuffle the rows read into memory each epoch. Default true; a stream keeps its own order. */
  shuffle?: boolean;
  verbose?: 0 | 1;
  /**
   * Stream the dataset instead of reading it into memory: each epoch iterates it afresh (as
   * `model.fitDataset` does), the teacher runs on every batch, and nothing of the data is kept.
   * For pipelines larger than memory. Default false (read once, teacher outputs cached per row).
   */
  stream?: boolean;
  /**
   * With `stream`: batches per epoch, taken from one iterator that carries on across epochs (as
   * in `model.fitDataset`); a new iterator starts when the dataset ends. Needed by the cosine schedule.
   */
  batchesPerEpoch?: number;
}

/** What `fit` returns: the shape of tfjs-layers' `tf.History`. */
export interface DistillerHistory {
  epoch: number[];
  history: Record<string, number[]>;
  params: Record<string, unknown>;
}

/** Class indices from `[n]` labels or `[n, classes]` one-hot (or probability) rows. */
function labelsOf(y: tf.Tensor, rows: number): Int32Array {
  if (y.shape[0] !== rows) throw new UserError(`x has ${rows} rows but y has ${y.shape[0]}; give one label per row`);
  if (y.rank === 1) return Int32Array.from(y.dataSync());
  if (y.rank === 2) return tf.tidy(() => y.argMax(1).dataSync() as Int32Array).slice();
  throw new UserError(`y must be class indices [n] or one-hot rows [n, classes], got shape [${y.shape.join(',')}]`);
}

function datasetOf(x: tf.Tensor, y: tf.Tensor, numClasses: number, from = 0, to = x.shape[0]!): Dataset {
  const all = labelsOf(y, x.shape[0]!);
  const size = x.shape.slice(1).reduce((a, b) => a * b, 1);
  return new Dataset({
    features: (x.dataSync() as Float32Array).slice(from * size, to * size),
    labels: all.slice(from, to),
    sampleShape: x.shape.slice(1),
    numClasses,
  });
}

/** The [xs, ys] batch of a tf.data element: `{xs, ys}` or `[xs, ys]`. */
function elementOf(el: tf.TensorContainer): [tf.Tensor, tf.Tensor] {
  const e = el as { xs?: tf.Tensor; ys?: tf.Tensor } | [tf.Tensor, tf.Tensor];
  const [x, y] = Array.isArray(e) ? e : [e.xs, e.ys];
  if (!(x instanceof tf.Tensor) || !(y instanceof tf.Tensor))
    throw new UserError('fitDataset: each element must be {xs, ys} (or [xs, ys]) batches of tensors');
  return [x, y];
}

function logsOf(r: EpochRecord): tf.Logs {
  const logs: tf.Logs = { loss: r.losses['loss'] ?? 0, acc: r.trainAccuracy ?? 0 };
  for (const [k, v] of Object.entries(r.losses)) if (k !== 'loss') logs[k] = v;
  if (r.valLoss !== undefined) logs['val_loss'] = r.valLoss;
  if (r.valAccuracy !== undefined) logs['val_acc'] = r.valAccuracy;
  return logs;
}

const LEARNER = 'student';

export class Distiller {
  readonly teacher: Teacher;
  readonly student: tf.LayersModel;
  private readonly knowledge: KnowledgeNode[];
  private readonly optimizer: tf.Optimizer | OptimizerSpec;
  private readonly options: DistillerOptions;

  constructor(options: DistillerOptions) {
    this.options = options;
    this.student = options.student;
    this.teacher =
      options.teacher instanceof tf.LayersModel ? layersTeacher({ model: options.teacher }) : options.teacher;
    const classes = this.student.outputs[0]!.shape[1];
    if (classes !== this.teacher.numClasses)
      throw new UserError(
        `the student has ${classes} outputs but the teacher ${this.teacher.numClasses}; they must match`,
      );
    this.knowledge = options.knowledge ?? [{ key: 'kd' }];
    if (this.knowledge.length === 0)
      throw new UserError('knowledge is empty; give at least one term, e.g. [{ key: "kd" }]');
    // Each term is validated now (a bad option fails here, not in fit).
    for (const t of this.terms()) t.term.dispose();
    const o = options.optimizer ?? { key: 'adam', kwargs: { learningRate: 1e-3 } };
    this.optimizer = typeof o === 'string' ? { key: o } : o;
  }

  private terms(): WeightedTerm[] {
    return this.knowledge.map((k) => ({ term: createTerm(k.key, k.kwargs ?? {}), weight: k.weight ?? 1 }));
  }

  /** Distils into the student from tensors; see the module comment. */
  async fit(x: tf.Tensor, y: tf.Tensor, args: DistillerFitArgs = {}): Promise<DistillerHistory> {
    const rows = x.shape[0]!;
    const numClasses = this.teacher.numClasses;
    let train: Dataset;
    let validation: Dataset | undefined;
    const split = args.validationSplit;
    if (split !== undefined) {
      if (!(split > 0 && split < 1)) throw new UserError(`validationSplit must be in (0, 1), got ${split}`);
      if (args.validationData) throw new UserError('give validationSplit or validationData, not both');
      const cut = Math.floor(rows * (1 - split));
      train = datasetOf(x, y, numClasses, 0, cut);
      validation = datasetOf(x, y, numClasses, cut, rows);
    } else {
      train = datasetOf(x, y, numClasses);
      if (args.validationData) validation = datasetOf(args.validationData[0], args.validationData[1], numClasses);
    }
    return this.run(train, validation, args.batchSize ?? 32, args);
  }

  /**
   * Distils from a `tf.data.Dataset` of `{xs, ys}` batches (or `[xs, ys]` pairs). The dataset is
   * read into memory once (so the teacher's outputs are cached per row); its batch size is kept,
   * and rows are reshuffled each epoch with the Distiller's seed unless `shuffle: false`.
   */
  async fitDataset(
    dataset: tf.data.Dataset<tf.TensorContainer>,
    args: DistillerFitDatasetArgs = {},
  ): Promise<DistillerHistory> {
    const read = async (ds: tf.data.Dataset<tf.TensorContainer>) => {
      const xs: tf.Tensor[] = [];
      const ys: tf.Tensor[] = [];
      await ds.forEachAsync((el) => {
        const [x, y] = elementOf(el);
        // tf.data disposes each element once this callback returns: keep copies.
        xs.push(tf.keep(x.clone()));
        ys.push(tf.keep(y.clone()));
      });
      if (xs.length === 0) throw new UserError('fitDataset: the dataset is empty');
      const x = tf.concat(xs);
      const y = tf.concat(ys);
      const batchSize = xs[0]!.shape[0]!;
      tf.dispose([...xs, ...ys]);
      return { x, y, batchSize };
    };
    if (args.stream) return this.stream(dataset, args, read);
    if (args.batchesPerEpoch !== undefined) throw new UserError('batchesPerEpoch goes with stream: true');
    const data = await read(dataset);
    let val: { x: tf.Tensor; y: tf.Tensor } | undefined;
    try {
      const v = args.validationData;
      if (v) val = Array.isArray(v) ? { x: v[0], y: v[1] } : await read(v);
      const numClasses = this.teacher.numClasses;
      const train = datasetOf(data.x, data.y, numClasses);
      const validation = val && datasetOf(val.x, val.y, numClasses);
      return await this.run(train, validation, data.batchSize, args);
    } finally {
      tf.dispose([data.x, data.y]);
      if (val && !Array.isArray(args.validationData)) tf.dispose([val.x, val.y]);
    }
  }

  /** fitDataset with `stream: true`: see DistillerFitDatasetArgs.stream. */
  private async stream(
    dataset: tf.data.Dataset<tf.TensorContainer>,
    args: DistillerFitDatasetArgs,
    read: (ds: tf.data.Dataset<tf.TensorContainer>) => Promise<{ x: tf.Tensor; y: tf.Tensor }>,
  ): Promise<DistillerHistory> {
    const per = args.batchesPerEpoch;
    if (per !== undefined && !(Number.isInteger(per) && per > 0))
      throw new UserError(`batchesPerEpoch must be a positive integer, got ${per}`);
    const { numClasses, inputShape } = this.teacher;
    let iterator: Awaited<ReturnType<typeof dataset.iterator>> | undefined;
    const source: BatchStream = {
      kind: 'stream',
      numClasses,
      sampleShape: [...inputShape],
      ...(per !== undefined && { batchesPerEpoch: per }),
      async *batches() {
        if (per === undefined) iterator = undefined;
        for (let taken = 0; per === undefined || taken < per; taken++) {
          iterator ??= await dataset.iterator();
          const next = await iterator.next();
          if (next.done) {
            iterator = undefined;
            if (taken === 0) throw new UserError('fitDataset: the dataset is empty');
            return;
          }
          const [x, y] = elementOf(next.value);
          const shape = x.shape.slice(1);
          if (shape.join(',') !== inputShape.join(','))
            throw new UserError(
              `fitDataset: a batch has samples of shape [${shape}], the teacher takes [${inputShape}]`,
            );
          const batch = tf.tidy(() => ({
            x: x.toFloat(),
            y: tf.tensor1d(labelsOf(y, x.shape[0]!), 'int32'),
          }));
          tf.dispose([x, y]);
          try {
            yield batch;
          } finally {
            tf.dispose([batch.x, batch.y]);
          }
        }
      },
    };
    const v = args.validationData;
    const val = v && (Array.isArray(v) ? { x: v[0], y: v[1] } : await read(v));
    try {
      const validation = val && datasetOf(val.x, val.y, numClasses);
      return await this.run(source, validation, undefined, args);
    } finally {
      if (val && !Array.isArray(v)) tf.dispose([val.x, val.y]);
    }
  }

  /** The student's predictions (logits). */
  predict(x: tf.Tensor, args?: Parameters<tf.LayersModel['predict']>[1]): tf.Tensor | tf.Tensor[] {
    return this.student.predict(x, args);
  }

  /** `[loss, accuracy]` of the student (softmax cross-entropy of its logits), as `model.evaluate` returns them. */
  evaluate(x: tf.Tensor, y: tf.Tensor, args: { batchSize?: number } = {}): [tf.Scalar, tf.Scalar] {
    const r = evaluateAccuracy(this.student, datasetOf(x, y, this.teacher.numClasses), args.batchSize ?? 32);
    return [tf.scalar(r.loss), tf.scalar(r.accuracy)];
  }

  /** `batchSize` undefined: a stream's own batches (unknown in size until they come). */
  private async run(
    trainSet: Dataset | BatchStream,
    validation: Dataset | undefined,
    batchSize: number | undefined,
    args: { epochs?: number; callbacks?: AnyCallback | AnyCallback[]; shuffle?: boolean; verbose?: 0 | 1 },
  ): Promise<DistillerHistory> {
    const epochs = args.epochs ?? 1;
    const list = args.callbacks === undefined ? [] : Array.isArray(args.callbacks) ? args.callbacks : [args.callbacks];
    // tfjs-layers' params; a stream's: no sample count, its steps when given
    const params = {
      epochs,
      initialEpoch: 0,
      ...(isBatchStream(trainSet)
        ? trainSet.batchesPerEpoch !== undefined && { steps: trainSet.batchesPerEpoch }
        : { samples: trainSet.size }),
      ...(batchSize !== undefined && { batchSize }),
      verbose: args.verbose ?? 0,
      doValidation: validation !== undefined,
      metrics: ['loss', 'acc', ...(validation ? ['val_loss', 'val_acc'] : [])],
    };
    for (const cb of list) {
      if (cb instanceof tf.Callback || typeof (cb as tf.Callback).setModel === 'function') {
        (cb as tf.Callback).setModel(this.student);
        (cb as tf.Callback).setParams(params);
      }
    }
    const each = async (fn: (cb: Record<string, unknown>) => unknown) => {
      for (const cb of list) await fn(cb as unknown as Record<string, unknown>);
    };
    const call = (name: string, ...a: unknown[]) =>
      each((cb) =>
        typeof cb[name] === 'function' ? (cb[name] as (...x: unknown[]) => unknown).call(cb, ...a) : undefined,
      );
    const out: DistillerHistory = { epoch: [], history: {}, params };
    const callbacks: TrainCallbacks = {
      onTrainBegin: () => call('onTrainBegin', {}),
      onEpochBegin: (epoch) => call('onEpochBegin', epoch, {}),
      onBatchBegin: (batch) => call('onBatchBegin', batch, { batch, size: batchSize }),
      onBatchEnd: (logs) => {
        const losses = logs.losses[LEARNER] ?? {};
        return call('onBatchEnd', logs.batch, { batch: logs.batch, size: logs.size, ...losses });
      },
      onEpochEnd: async (epoch, records) => {
        const logs = logsOf(records[LEARNER]!);
        out.epoch.push(epoch);
        for (const [k, v] of Object.entries(logs)) {
          out.history[k] = [...(out.history[k] ?? []), v as number];
        }
        if (args.verbose === 1)
          process.stderr.write(
            `Epoch ${epoch + 1} / ${epochs}: ${Object.entries(logs)
              .map(([k, v]) => `${k}=${(v as number).toFixed(4)}`)
              .join(' ')}\n`,
          );
        await call('onEpochEnd', epoch, logs);
      },
      onTrainEnd: () => call('onTrainEnd', {}),
    };
    // An uncompiled tf.Sequential makes its inner model only when built, and refuses stopTraining until then.
    if (this.student instanceof tf.Sequential && !this.student.built) this.student.build();
    this.student.stopTraining = false;
    const terms = this.terms();
    try {
      await train({
        learners: [{ name: LEARNER, model: this.student, terms }],
        train: trainSet,
        ...(validation && { validation }),
        teacher: this.teacher,
        epochs,
        // a stream brings its own batches (train() ignores batchSize then)
        batchSize: batchSize ?? 0,
        optimizer: this.optimizer,
        schedule: this.options.schedule ?? 'constant',
        seed: this.options.seed ?? 1,
        shuffle: args.shuffle ?? true,
        callbacks,
        stopRequested: () => this.student.stopTraining === true,
      });
    } finally {
      for (const t of terms) t.term.dispose();
    }
    return out;
  }
}
