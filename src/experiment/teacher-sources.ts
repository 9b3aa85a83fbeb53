/**
 * Where an experiment's teacher comes from (`teacher: { key, kwargs }`):
 * - `file`: a trained teacher — a TF.js model.json (LayersModel or GraphModel) or an `.onnx`
 *   file — optionally with its logits on the training rows precomputed by
 *   `distill cache-teacher` (`logits`), so training never runs the teacher;
 * - `train`: a zoo model trained on the labels here, once per run (checkpointed like any
 *   phase), optionally kept in a cache folder and reused by later runs with the same
 *   teacher, data and training settings;
 * - `none`: no external teacher, for schemes that make their own (online and self
 *   distillation); the report's teacher column is then the scheme's own teacher.
 * `prepare` runs before anything is written (a missing file or bad model fails first);
 * `obtain` gives the frozen teacher, training it if needed.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { modelNode } from '../config/components.js';
import type { ExperimentConfig } from '../config/experiment.js';
import type { ConfigPath } from '../config/source.js';
import { type ExperimentData, STUDENT_LABEL_OPTIONS } from '../data/sources.js';
import { UserError } from '../errors.js';
import { modelPredictFn, teacherPredictFn, type EvaluatedTeacher } from '../eval/evaluate.js';
import { classificationMetrics, predictLogits, type PredictFn } from '../eval/metrics.js';
import { modelSize } from '../eval/size.js';
import type { ByteSizes, ReportSection } from '../eval/types.js';
import { parseOptions } from '../options.js';
import {
  combineLogits,
  ensembleTeacher,
  normalizeWeights,
  sampleWeights,
  TEACHER_WEIGHTINGS,
  type TeacherWeighting,
} from '../teachers/ensemble.js';
import { removeStaleTemps, tempTag } from '../io/atomic.js';
import { fileSystem, loadLayersModelFile, registerFileRouters } from '../io/file-handler.js';
import { createTerm } from '../knowledge/index.js';
import { buildModel, models } from '../models/zoo.js';
import { type CopiedHead, layerNames, layersAfter } from '../models/taps.js';
import { Registry } from '../registry.js';
import { CachedTeacher } from '../teachers/cached.js';
import { datasetFingerprint, readTeacherCache } from '../teachers/cache-file.js';
import { layersTeacher } from '../teachers/layers.js';
import { loadTeacher } from '../teachers/load.js';
import type { Teacher } from '../teachers/types.js';
import type { Fit } from '../train/fit.js';
import type { EpochRecord } from '../train/types.js';
import { TRAINING_VERSION } from '../train/trainer.js';

export interface TeacherPrepareContext {
  data: ExperimentData;
  config: ExperimentConfig;
  /** Runs `fn`; a `UserError` it throws is re-thrown located at `teacher.kwargs.<path>`. */
  located<T>(path: ConfigPath, fn: () => Promise<T>): Promise<T>;
}

export interface TeacherRunContext {
  /** The checkpointed loop, for a teacher that trains here (phase id `teacher`). */
  fit: Fit;
  /** `<run>/teacher`: where a teacher trained here is saved. */
  dir: string;
  /** Creates the run folder before the first write. */
  beforeWrite(): Promise<void>;
  log(line: string): void;
}

export interface ObtainedTeacher {
  /** Frozen, for training (answers by training row); absent for `none`. */
  teacher?: Teacher;
  /** For evaluation on the test set; absent for `none` (the scheme's own teacher is the reference). */
  evaluated?: EvaluatedTeacher;
  method: string;
  trainSeconds?: number;
  history?: EpochRecord[];
  /** Where it came from, for the report. */
  origin: string;
  /** Extra report tables about the teacher (e.g. each member of a multi-teacher). */
  tables?: ReportSection[];
}

export interface PreparedTeacher {
  /** Layers (or nodes) a term may tap, with their shapes. */
  tapNames(): Array<{ name: string; shape: readonly (number | null)[] }>;
  /** Copies of the teacher's layers after a tap (TF.js LayersModel teachers), for `simkd`'s check before training. */
  layersAfter?(tap: string): CopiedHead;
  obtain(ctx: TeacherRunContext): Promise<ObtainedTeacher>;
  dispose(): void;
}

export interface TeacherSource {
  describe: string;
  kwargs: z.ZodType<Record<string, unknown>>;
  prepare(kwargs: Record<string, unknown>, ctx: TeacherPrepareContext): Promise<PreparedTeacher>;
}

const path = z
  .string()
  .min(1)
  .transform((p) => resolve(p));

const fileKwargs = z.strictObject({
  /** model.json (LayersModel or GraphModel, or its folder) or an .onnx file. */
  path,
  /** `distill cache-teacher` output for the training rows (same data, split and seed). */
  logits: path.optional(),
  layout: z.enum(['NCHW', 'NHWC']).optional(),
  inputName: z.string().min(1).optional(),
  outputName: z.string().min(1).optional(),
});

/** A LayersModel model.json at `p` (or `p/model.json`), else undefined. */
function layersModelJson(p: string): string | undefined {
  const json = existsSync(p) && statSync(p).isDirectory() ? join(p, 'model.json') : p;
  if (!json.endsWith('.json') || !existsSync(json)) return undefined;
  try {
    const parsed = JSON.parse(readFileSync(json, 'utf8')) as {
      format?: string;
      modelTopology?: { node?: unknown; class_name?: unknown; model_config?: unknown };
    };
    const layers =
      parsed.format === 'layers-model' ||
      (parsed.modelTopology !== undefined &&
        !Array.isArray(parsed.modelTopology.node) &&
        (parsed.modelTopology.class_name !== undefined || parsed.modelTopology.model_config !== undefined));
    return layers ? json : undefined;
  } catch {
    return undefined;
  }
}

function checkFits(
  teacher: { inputShape: readonly number[]; numClasses: number },
  data: ExperimentData,
  p: string,
): void {
  const want = data.train.sampleShape.join(',');
  if (teacher.inputShape.join(',') !== want) {
    throw new UserError(
      `teacher ${p} takes inputs of shape [${teacher.inputShape.join(',')}] but the data's samples are [${want}]`,
    );
  }
  if (teacher.numClasses !== data.train.numClasses) {
    throw new UserError(`teacher ${p} has ${teacher.numClasses} classes but the data has ${data.train.numClasses}`);
  }
}

async function prepareFile(raw: Record<string, unknown>, ctx: TeacherPrepareContext): Promise<PreparedTeacher> {
  const k = raw as z.output<typeof fileKwargs>;
  const { data } = ctx;
  let model: tf.LayersModel | undefined;
  let teacher: Teacher;
  const layersJson = layersModelJson(k.path);
  if (layersJson !== undefined) {
    registerFileRouters();
    model = await ctx.located(['path'], () => loadLayersModelFile(layersJson));
    teacher = layersTeacher({ model });
    await ctx.located(['path'], async () => checkFits(teacher, data, k.path));
  } else {
    teacher = await ctx.located(['path'], () =>
      loadTeacher({
        path: k.path,
        data: data.train,
        layout: k.layout,
        inputName: k.inputName,
        outputName: k.outputName,
      }),
    );
    if (teacher.kind === 'cached') {
      teacher.dispose();
      throw new UserError(
        'cached logits cannot be evaluated on the test set; give the teacher model as path (model.json or .onnx) and the cache as logits',
      );
    }
  }
  let training: Teacher = teacher;
  if (k.logits !== undefined) {
    const cache = await ctx.located(['logits'], () =>
      readTeacherCache({ path: k.logits!, expectedFingerprint: datasetFingerprint(data.train) }),
    );
    if (cache.numClasses !== data.train.numClasses) {
      throw new UserError(
        `cached logits ${k.logits} have ${cache.numClasses} classes but the data has ${data.train.numClasses}`,
      );
    }
    training = new CachedTeacher({
      size: cache.size,
      numClasses: cache.numClasses,
      inputShape: data.train.sampleShape,
      logits: cache.logits,
      source: teacher,
    });
  }
  const evaluated: EvaluatedTeacher = model
    ? { name: 'teacher', predict: modelPredictFn(model), model }
    : { name: 'teacher', predict: teacherPredictFn(teacher) };
  return {
    tapNames: () => teacher.tapNames(),
    ...(teacher.layersAfter && { layersAfter: (tap: string) => teacher.layersAfter!(tap) }),
    obtain: async () => ({ teacher: training, evaluated, method: 'pre-trained', origin: k.path }),
    dispose: () => teacher.dispose(),
  };
}

const trainKwargs = z.strictObject({
  /** The zoo model to train, e.g. `{ key: cnn, kwargs: { width: 1 } }`. */
  model: modelNode(models),
  /** Default: the experiment's epochs. */
  epochs: z.int().positive().optional(),
  /** Seed of the teacher's initial weights, data order and dropout. Default: the run's first seed. */
  seed: z.int().optional(),
  /** A folder where the trained teacher is kept and reused by runs with the same settings. */
  cache: path.optional(),
});

async function prepareTrain(raw: Record<string, unknown>, ctx: TeacherPrepareContext): Promise<PreparedTeacher> {
  const k = raw as z.output<typeof trainKwargs>;
  const { config, data } = ctx;
  const seed = k.seed ?? config.seeds[0]!;
  const epochs = k.epochs ?? config.epochs;
  const spec = {
    model: k.model,
    epochs,
    seed,
    // Which labels a student sees does not change the teacher: it learns from every label there is.
    data: {
      key: config.data.key,
      kwargs: Object.fromEntries(
        Object.entries(config.data.kwargs).filter(
          ([name]) => !(STUDENT_LABEL_OPTIONS as readonly string[]).includes(name),
        ),
      ),
    },
    batchSize: config.batchSize,
    optimizer: config.optimizer,
    schedule: config.schedule,
    shape: data.train.sampleShape,
    classes: data.train.numClasses,
    training: TRAINING_VERSION,
  };
  const key = createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
  const cached = k.cache !== undefined ? join(k.cache, `teacher-${key}`) : undefined;
  registerFileRouters();
  let model: tf.LayersModel;
  let fromCache = false;
  if (cached !== undefined && existsSync(join(cached, 'model.json'))) {
    model = await ctx.located(['cache'], () => loadLayersModelFile(cached));
    fromCache = true;
  } else {
    model = await ctx.located(['model'], async () =>
      buildModel({
        key: k.model.key,
        kwargs: k.model.kwargs,
        inputShape: data.train.sampleShape,
        numClasses: data.train.numClasses,
        seed,
        name: 'teacher',
      }),
    );
  }
  const describe = `${k.model.key}(${Object.entries(k.model.kwargs)
    .map(([a, b]) => `${a}=${JSON.stringify(b)}`)
    .join(', ')})`;
  return {
    tapNames: () => layerNames(model),
    layersAfter: (tap) => layersAfter(model, tap, 'teacher'),
    dispose: () => model.dispose(),
    async obtain(run) {
      const done = {
        teacher: layersTeacher({ model }),
        evaluated: { name: 'teacher', predict: modelPredictFn(model), model },
      };
      if (fromCache) {
        run.log(`teacher: ${describe} loaded from ${cached}`);
        return { ...done, method: `labels, ${epochs} epoch${epochs === 1 ? '' : 's'} (cached)`, origin: cached! };
      }
      run.log(`teacher: training ${describe} on the labels for ${epochs} epochs`);
      const terms = [{ term: createTerm('ce'), weight: 1 }];
      const r = await run.fit({
        id: 'teacher',
        label: 'teacher',
        learners: [{ name: 'teacher', model, terms }],
        train: data.teacherTrain ?? data.train.labeledOnly(),
        epochs,
        seed,
      });
      await run.beforeWrite();
      await model.save(fileSystem(run.dir));
      if (cached !== undefined && !existsSync(join(cached, 'model.json'))) {
        const tmp = `${cached}.tmp-${tempTag()}`;
        removeStaleTemps(cached);
        await rm(tmp, { recursive: true, force: true });
        await model.save(fileSystem(tmp));
        await rename(tmp, cached).catch(async () => rm(tmp, { recursive: true, force: true }));
        run.log(`teacher: kept in ${cached} for later runs`);
      }
      return {
        ...done,
        method: `labels, ${epochs} epoch${epochs === 1 ? '' : 's'}`,
        trainSeconds: r.seconds,
        history: r.history['teacher'] ?? [],
        origin: join(run.dir, 'model.json'),
      };
    },
  };
}

const multiKwargs = z.strictObject({
  /** The teachers, each a teacher source node: `{ key: train | file, kwargs }`. */
  teachers: z
    .array(z.strictObject({ key: z.string().min(1), kwargs: z.record(z.string(), z.unknown()).default({}) }))
    .min(1),
  /** How their logits are combined per sample (see src/teachers/ensemble.ts). Default `fixed`. */
  weighting: z.enum(TEACHER_WEIGHTINGS as [TeacherWeighting, ...TeacherWeighting[]]).default('fixed'),
  /** `fixed` weights, one per teacher (normalized to sum 1). Default equal. */
  weights: z.array(z.number().min(0)).optional(),
});

/**
 * Several teachers of any source as one (`ensembleTeacher`): each is prepared and obtained as on
 * its own (a `train` member trains in its own phase `teacher-<i>` and folder `teacher/member-<i>`),
 * training sees their per-sample weighted logits, and the report's teacher column is the ensemble
 * on the test set, where labels are not used: `confidence` is evaluated with equal weights there.
 * A table lists each teacher and the ensemble.
 */
async function prepareMulti(raw: Record<string, unknown>, ctx: TeacherPrepareContext): Promise<PreparedTeacher> {
  const k = raw as z.output<typeof multiKwargs>;
  const fixed = await ctx.located(['weights'], async () =>
    normalizeWeights(k.weights, k.teachers.length, 'teacher weights'),
  );
  if (k.weights !== undefined && k.weighting !== 'fixed') {
    throw new UserError(`teacher.kwargs.weights are the fixed weighting's; remove them or use weighting: fixed`);
  }
  if (k.weighting === 'confidence' && ctx.data.train.labeledSize < ctx.data.train.size) {
    throw new UserError(
      'confidence weighting needs every training row labeled, and some are unlabeled; use weighting: entropy or fixed',
    );
  }
  const prepared: PreparedTeacher[] = [];
  try {
    for (const [i, member] of k.teachers.entries()) {
      const at = ['teachers', i] as const;
      const source = await ctx.located([...at, 'key'], async () => {
        if (member.key === 'none' || member.key === 'multi') {
          throw new UserError(`a member is a trained teacher (file or train), not \`${member.key}\``);
        }
        return teacherSources.get(member.key);
      });
      const kwargs = await ctx.located([...at, 'kwargs'], async () =>
        parseOptions(`teacher \`${member.key}\``, source.kwargs, member.kwargs),
      );
      prepared.push(
        await source.prepare(kwargs, { ...ctx, located: (p, fn) => ctx.located([...at, 'kwargs', ...p], fn) }),
      );
    }
  } catch (e) {
    for (const p of prepared) p.dispose();
    throw e;
  }
  const { data } = ctx;
  return {
    tapNames: () => [],
    dispose: () => prepared.forEach((p) => p.dispose()),
    async obtain(run) {
      const obtained: ObtainedTeacher[] = [];
      for (const [i, p] of prepared.entries()) {
        obtained.push(
          await p.obtain({
            ...run,
            dir: join(run.dir, `member-${i + 1}`),
            fit: (phase) => run.fit({ ...phase, id: `${phase.id}-${i + 1}`, label: `${phase.label} ${i + 1}` }),
            log: (line) => run.log(line.replace(/^teacher:/, `teacher ${i + 1}:`)),
          }),
        );
      }
      const members = obtained.map((o, i) => {
        if (!o.teacher || !o.evaluated) throw new UserError(`teacher.kwargs.teachers[${i}] gave no teacher`);
        return { teacher: o.teacher, evaluated: o.evaluated, method: o.method };
      });
      const training = ensembleTeacher({
        members: members.map((m) => m.teacher),
        weighting: k.weighting,
        weights: fixed,
        labels: data.train.labels,
      });
      // on the test set: no labels, so `confidence` becomes equal weights
      const testWeighting: TeacherWeighting = k.weighting === 'entropy' ? 'entropy' : 'fixed';
      const testFixed = k.weighting === 'confidence' ? fixed.map(() => 1 / fixed.length) : fixed;
      const combine = (logits: tf.Tensor2D[]) =>
        tf.tidy(() => combineLogits(logits, sampleWeights(logits, testWeighting, testFixed)));
      const predict: PredictFn = async (x) => {
        const logits = await Promise.all(members.map((m) => m.evaluated.predict(x)));
        const combined = combine(logits);
        tf.dispose(logits);
        return combined;
      };
      const sizes = members.map((m) => (m.evaluated.model ? modelSize({ model: m.evaluated.model }) : m.evaluated));
      const params = sizes.every((s) => s.params !== undefined) ? sizes.reduce((a, s) => a + s.params!, 0) : undefined;
      const bytes = sizes.every((s) => s.bytes)
        ? (Object.fromEntries(
            (['float32', 'float16', 'uint8'] as const).map((d) => [d, sizes.reduce((a, s) => a + s.bytes![d], 0)]),
          ) as unknown as ByteSizes)
        : undefined;
      const evaluated: EvaluatedTeacher = {
        name: 'teacher ensemble',
        predict,
        ...(params !== undefined && { params }),
        ...(bytes !== undefined && { bytes }),
      };
      const method = `${members.length} teachers, ${k.weighting} weights`;
      const { labels, numClasses, size } = data.test;
      const accuracy = (logits: Float32Array) => classificationMetrics({ logits, labels, numClasses }).accuracy;
      // each teacher's test logits once; the ensemble's combined from them
      const testLogits: Float32Array[] = [];
      for (const m of members) testLogits.push(await predictLogits({ predict: m.evaluated.predict, data: data.test }));
      const ensembleLogits = tf.tidy(
        () => combine(testLogits.map((l) => tf.tensor2d(l, [size, numClasses]))).dataSync() as Float32Array,
      );
      const rows: Array<{ teacher: string; method: string; params: number | null; accuracy: number; weight: string }> =
        members.map((m, i) => ({
          teacher: `teacher ${i + 1}`,
          method: m.method,
          params: sizes[i]!.params ?? null,
          accuracy: accuracy(testLogits[i]!),
          weight: k.weighting === 'fixed' ? fixed[i]!.toFixed(3) : `per sample (${k.weighting})`,
        }));
      rows.push({
        teacher: 'ensemble',
        method,
        params: params ?? null,
        accuracy: accuracy(ensembleLogits),
        weight: '',
      });
      const table: ReportSection = {
        title: 'Teachers',
        note:
          'Each teacher alone and the ensemble that taught, on the test set' +
          (k.weighting === 'confidence' ? ' (the ensemble row with equal weights: confidence needs the labels)' : ''),
        columns: ['teacher', 'trained with', 'params', 'accuracy (%)', 'weight'],
        rows: rows.map((r) => [
          r.teacher,
          r.method,
          r.params === null ? '—' : r.params.toLocaleString('en-US'),
          (100 * r.accuracy).toFixed(2),
          r.weight,
        ]),
        data: rows.map((r) => ({ ...r })),
      };
      const trainSeconds = obtained.reduce((a, o) => a + (o.trainSeconds ?? 0), 0);
      return {
        teacher: training,
        evaluated,
        method,
        ...(trainSeconds > 0 && { trainSeconds }),
        origin: obtained.map((o) => o.origin).join(' + '),
        tables: [table],
      };
    },
  };
}

/** The teacher-source registry: `file`, `train`, `multi`, `none`. */
export const teacherSources = new Registry<TeacherSource>('teacher source')
  .register('none', {
    describe:
      "no external teacher: the scheme makes its own (online and self-distillation); it is the report's teacher column",
    kwargs: z.strictObject({}),
    prepare: async () => ({
      tapNames: () => [],
      obtain: async () => ({ method: 'none', origin: "none (the scheme's own teacher is the reference)" }),
      dispose: () => {},
    }),
  })
  .register('file', {
    describe: 'a trained model.json or .onnx file (and optionally its cached logits)',
    kwargs: fileKwargs,
    prepare: prepareFile,
  })
  .register('train', {
    describe: 'a zoo model trained on the labels in this run (optionally cached)',
    kwargs: trainKwargs,
    prepare: prepareTrain,
  })
  .register('multi', {
    describe: 'several teachers (file or train) combined per sample: fixed, confidence or entropy weights',
    kwargs: multiKwargs,
    prepare: prepareMulti,
  });
