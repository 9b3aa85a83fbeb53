import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { ExperimentConfig } from '../config/experiment.js';
import type { ExperimentData } from '../data/sources.js';
import { UserError } from '../errors.js';
import { evaluateModels, modelPredictFn } from '../eval/evaluate.js';
import { loadExported } from '../eval/exported.js';
import type { ReportModel, RunReport } from '../eval/types.js';
import { saveEncodedModel } from '../io/quantize.js';
import { countParams } from '../models/common.js';
import { writeReport } from '../report/write.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { Scheme, StudentFactory } from '../schemes/index.js';
import type { ProducedModel, SchemeReference, SchemeResult } from '../schemes/types.js';
import { createFit, type FitSettings } from '../train/fit.js';
import type { LoadedExperiment } from './load.js';
import type { ObtainedTeacher } from './teacher-sources.js';

/** The report's teacher column: the experiment's teacher, else the scheme's own (a new one every seed). */
function teacherColumn(obtained: ObtainedTeacher, reference: SchemeReference | undefined, scheme: string) {
  if (obtained.evaluated !== undefined) {
    const { evaluated, method, trainSeconds, history } = obtained;
    return { evaluated, method, trainSeconds, history };
  }
  if (reference?.kind === 'model') {
    const { name, model, method, trainSeconds, history } = reference.produced;
    return { evaluated: { name, predict: modelPredictFn(model), model }, method, trainSeconds, history };
  }
  if (reference?.kind === 'ensemble') {
    const { evaluated, method, trainSeconds } = reference;
    return { evaluated, method, trainSeconds, history: undefined };
  }
  throw new UserError(
    `scheme \`${scheme}\` made no teacher of its own; give the experiment a teacher (teacher: {key: file, …} or {key: train, …})`,
  );
}

/** One seed's report: the teacher column, then every student row, with the run's settings. */
function seedReport(r: {
  config: ExperimentConfig;
  dataName: string;
  sizes: [train: number, test: number];
  /** Labeled training rows, when some are unlabeled. */
  labeled?: number;
  seed: number;
  evaluation: Awaited<ReturnType<typeof evaluateModels>>;
  column: ReturnType<typeof teacherColumn>;
  students: ProducedModel[];
  origin: string;
  tables: SchemeResult['tables'];
}): RunReport {
  const { config, column } = r;
  const [t, ...rest] = r.evaluation.models;
  const models: ReportModel[] = [
    {
      ...t!,
      method: column.method,
      ...(column.trainSeconds !== undefined && { trainSeconds: column.trainSeconds }),
      ...(column.history !== undefined && { history: column.history }),
    },
    ...rest.map((e, i) => {
      const m = r.students[i]!;
      return {
        ...e,
        method: m.method,
        ...(m.baseline && { baseline: true }),
        trainSeconds: m.trainSeconds,
        history: m.history,
      };
    }),
  ];
  return {
    title: `${config.name}: ${config.scheme.key} distillation on ${r.dataName} (seed ${r.seed})`,
    createdAt: new Date().toISOString(),
    backend: r.evaluation.backend,
    dataset: {
      name: r.dataName,
      train: r.sizes[0],
      test: r.sizes[1],
      ...(r.labeled !== undefined && { labeled: r.labeled }),
    },
    settings: {
      experiment: config.name,
      seed: r.seed,
      scheme: config.scheme,
      knowledge: config.knowledge,
      students: config.students,
      teacher: r.origin,
      epochs: config.epochs,
      batchSize: config.batchSize,
      optimizer: config.optimizer,
      schedule: config.schedule,
    },
    models,
    ...(r.tables !== undefined && r.tables.length > 0 && { tables: r.tables }),
  };
}

/** What every seed of a run shares. */
export interface SeedContext {
  config: ExperimentConfig;
  loaded: LoadedExperiment;
  data: ExperimentData;
  scheme: Scheme;
  obtained: ObtainedTeacher;
  student: (i: number, seed: number) => StudentFactory;
  method: { short: string; long: string };
  common: Omit<FitSettings, 'seed' | 'checkpointDir'>;
  beforeWrite: () => Promise<void>;
  log: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * One seed: the scheme trains (checkpointed), the students are exported (and re-encoded and loaded
 * back for `export.evaluate`), teacher and students are evaluated on the test set (the external
 * teacher's test logits are computed once and reused), and the report and `done.json` written.
 */
export async function runSeed(
  c: SeedContext,
  seed: number,
  seedDir: string,
  cachedTeacherLogits?: Float32Array,
): Promise<{ report: RunReport; teacherLogits?: Float32Array }> {
  const { config, data, obtained, log } = c;
  const fit = createFit({
    ...c.common,
    seed,
    checkpointDir: join(seedDir, 'checkpoints'),
    jsonFields: { seed },
    progressPrefix: config.seeds.length > 1 ? `seed ${seed} · ` : '',
    // every phase of the seed (students, baselines); the experiment's teacher trains in its own fit
    ...(config.quantizationAware !== undefined && { quantizationAware: config.quantizationAware }),
  });
  const params = teacherParams(obtained);
  const result = await c.scheme.run({
    seed,
    data,
    teacher: obtained.teacher,
    ...(params !== undefined && { teacherParams: params }),
    students: config.students.map((_, i) => c.student(i, seed)),
    createTerms: c.loaded.createTerms,
    method: c.method,
    baseline: config.baseline,
    epochs: config.epochs,
    kwargs: config.scheme.kwargs,
    fit,
    log,
    signal: c.signal,
  });
  const reference = result.reference;
  // The scheme's own teacher is the teacher column without an external one, else the first student row.
  const produced = reference?.kind === 'model' ? [reference.produced, ...result.models] : result.models;
  // students loaded back from their exported files (`export.evaluate`)
  const reloaded: tf.LayersModel[] = [];
  try {
    const column = teacherColumn(obtained, reference, config.scheme.key);
    // With an external teacher an ensemble reference has no row of its own (its scheme's table has it).
    const students = obtained.evaluated !== undefined || reference?.kind !== 'model' ? produced : produced.slice(1);
    // Exported before the evaluation: the rows of `export.evaluate` are the written files, loaded back.
    await c.beforeWrite();
    const written = new Map<string, Awaited<ReturnType<typeof saveEncodedModel>>>();
    for (const m of produced) {
      const path = join(seedDir, 'students', m.id);
      written.set(m.id, await saveEncodedModel({ model: m.model, encoding: config.export.dtype, path }));
    }
    // After each student, its exports in the listed encodings (`small (kd) · uint8`): no history; a
    // baseline's exports are baselines too, so a uint8 student is judged against the uint8 baseline.
    const rows: Array<{ m: ProducedModel; bytes?: NonNullable<ReportModel['bytes']> }> = [];
    if (config.export.evaluate.length > 0) {
      for (const m of students) {
        rows.push({ m });
        for (const encoding of config.export.evaluate) {
          const id = `${m.id}-${encoding}`;
          if (produced.some((p) => p.id === id))
            throw new UserError(
              `the ${encoding} export of \`${m.id}\` would overwrite the student \`${id}\`; rename that student`,
            );
          const files =
            encoding === config.export.dtype
              ? written.get(m.id)!
              : await saveEncodedModel({ model: m.model, encoding, path: join(seedDir, 'students', id) });
          const exported = await loadExported({ files, encoding });
          reloaded.push(exported.model);
          const method = `${encoding} export of ${m.method}`;
          const name = `${m.name} · ${encoding}`;
          rows.push({
            m: {
              id,
              name,
              model: exported.model,
              method,
              history: [],
              trainSeconds: m.trainSeconds,
              ...(m.baseline && { baseline: true }),
            },
            bytes: exported.bytes,
          });
        }
      }
    } else {
      rows.push(...students.map((m) => ({ m })));
    }
    log(`seed ${seed}: evaluating on the test set (accuracy, agreement, KL, ECE, size, latency)…`);
    const external = obtained.evaluated !== undefined;
    const evaluation = await evaluateModels({
      teacher: column.evaluated,
      students: rows.map(({ m, bytes }) => ({ name: m.name, model: m.model, ...(bytes !== undefined && { bytes }) })),
      test: data.test,
      batchSize: config.evaluation.batchSize,
      latency: config.evaluation.latency,
      teacherLogits: external ? cachedTeacherLogits : undefined,
    });
    const report = seedReport({
      config,
      dataName: data.name,
      sizes: [data.train.size, data.test.size],
      ...(data.train.labeledSize < data.train.size && { labeled: data.train.labeledSize }),
      seed,
      evaluation,
      column,
      students: rows.map(({ m }) => m),
      origin: obtained.origin,
      tables: [...(obtained.tables ?? []), ...(result.tables ?? [])],
    });
    await writeReport({ outDir: seedDir, report });
    await writeFileAtomic(
      join(seedDir, 'done.json'),
      `${JSON.stringify({ seed, finishedAt: new Date().toISOString() })}\n`,
    );
    return { report, teacherLogits: external ? evaluation.teacherLogits : cachedTeacherLogits };
  } finally {
    reloaded.forEach((m) => m.dispose());
    // Models sharing layers (early exits) free only their own, before their network.
    [...produced].reverse().forEach((m) => (m.dispose ? m.dispose() : (m.model as tf.LayersModel).dispose()));
  }
}

function teacherParams(obtained: ObtainedTeacher): number | undefined {
  const e = obtained.evaluated;
  return e?.model !== undefined ? countParams(e.model) : e?.params;
}
