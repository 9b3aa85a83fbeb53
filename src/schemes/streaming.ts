/**
 * Streaming online distillation — the survey's online scheme with data that keeps coming
 * (Gou et al. 2021, §4.2: "as new data becomes available, the teacher model is updated in
 * real-time, and the student model learns from the teacher's updated output"):
 *
 *   for each chunk D_c:  teacher ← train(teacher, CE on D_c)
 *                        student ← train(student, terms(student, teacher) on D_c)
 *
 * Both models carry over from chunk to chunk and see each chunk only then (no replay); the
 * teacher is frozen while the student learns from it. After every chunk both (and, with
 * `alone`, the same student trained on the chunks' labels only) are measured on held-out
 * data: the per-chunk table. Every chunk's phases are checkpointed: a resumed stream skips
 * the chunks it finished (restoring the weights) and continues inside the current one.
 * When it helps: data arrives over time (logs, sensors, user feedback) and no fixed, pre-
 * trained teacher fits it; a large teacher absorbs each chunk quickly and hands its updated
 * soft targets to the deployable student.
 */
import { resolve } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { modelNode } from '../config/components.js';
import type { Dataset } from '../data/dataset.js';
import { UserError } from '../errors.js';
import { createTerm } from '../knowledge/index.js';
import { buildModel, models as zoo } from '../models/zoo.js';
import { layersTeacher } from '../teachers/layers.js';
import { Interrupted, type Fit } from '../train/fit.js';
import type { EpochRecord, Learner, WeightedTerm } from '../train/types.js';
import { datasetChunks, watchChunks } from './chunks.js';
import type { CohortMember } from './cohort.js';
import { disposeTerms, measure, pct } from './common.js';
import type { ProducedModel, Scheme, SchemeContext, SchemeResult } from './types.js';

/** One row of the per-chunk table: accuracies on the held-out data after the chunk. */
export interface ChunkRecord {
  /** 1, 2, … */
  chunk: number;
  samples: number;
  /** Training rows seen so far. */
  seen: number;
  teacherAccuracy: number;
  studentAccuracy: number;
  /** The student trained on the labels alone (with `alone`). */
  aloneAccuracy?: number;
  /** Top-1 agreement of the student with the teacher on the held-out data. */
  agreement: number;
  /** Training seconds of this chunk, all models. */
  seconds: number;
}

export interface StreamingOptions {
  /** The chunks, in arrival order (`datasetChunks`, `watchChunks`, or any async iterable). */
  chunks: AsyncIterable<Dataset>;
  /** Learns every chunk from its labels (CE). */
  teacher: CohortMember;
  /** Learns every chunk from the updated teacher, with `terms`. */
  student: CohortMember;
  /** Fresh terms of the student for one chunk, e.g. `() => [{ term: createTerm('kd'), weight: 1 }]`. */
  terms: () => WeightedTerm[];
  /** The same student architecture trained on the chunks' labels only (same initial weights as `student`). */
  alone?: CohortMember;
  /** Held-out data measured after every chunk. */
  heldOut: Dataset;
  fit: Fit;
  /** Passes over each chunk, per model. Default: the fit's epochs. */
  epochs?: number;
  /** Phase id prefix. Default `stream`. */
  id?: string;
  /** Called after each chunk with its row. */
  onChunk?(record: ChunkRecord): void | Promise<void>;
}

export interface StreamingResult {
  chunks: ChunkRecord[];
  /** Per model name: every epoch of every chunk, numbered on. */
  history: Record<string, EpochRecord[]>;
  /** Per model name: training seconds over all chunks. */
  seconds: Record<string, number>;
}

/** Runs the stream to its end; see the module comment. */
export async function streamingDistillation(o: StreamingOptions): Promise<StreamingResult> {
  const id = o.id ?? 'stream';
  const history: Record<string, EpochRecord[]> = {};
  const seconds: Record<string, number> = {};
  const chunks: ChunkRecord[] = [];
  const teacher = layersTeacher({ model: o.teacher.model }); // a frozen view; never disposed here (the model is the caller's)
  const phase = async (
    chunk: number,
    part: string,
    member: CohortMember,
    data: Dataset,
    terms: WeightedTerm[],
    taught: boolean,
  ) => {
    const learners: Learner[] = [{ name: member.name, model: member.model, terms }];
    try {
      const r = await o.fit({
        id: `${id}.chunk-${chunk}.${part}`,
        label: `chunk ${chunk} · ${member.name}`,
        learners,
        train: data,
        ...(taught && { teacher }),
        ...(o.epochs !== undefined && { epochs: o.epochs }),
      });
      history[member.name] ??= [];
      const before = history[member.name]!;
      before.push(...(r.history[member.name] ?? []).map((e) => ({ ...e, epoch: before.length + e.epoch })));
      seconds[member.name] = (seconds[member.name] ?? 0) + r.seconds;
      return r.seconds;
    } finally {
      disposeTerms(learners);
    }
  };
  let seen = 0;
  for await (const data of o.chunks) {
    if (data.size === 0) continue;
    const chunk = chunks.length + 1;
    if (data.sampleShape.join(',') !== o.heldOut.sampleShape.join(',') || data.numClasses !== o.heldOut.numClasses) {
      throw new UserError(
        `chunk ${chunk} has samples [${data.sampleShape.join(',')}] and ${data.numClasses} classes; the held-out data has [${o.heldOut.sampleShape.join(',')}] and ${o.heldOut.numClasses}`,
      );
    }
    seen += data.size;
    let spent = await phase(chunk, 'teacher', o.teacher, data, [{ term: createTerm('ce'), weight: 1 }], false);
    spent += await phase(chunk, 'student', o.student, data, o.terms(), true);
    if (o.alone) spent += await phase(chunk, 'alone', o.alone, data, [{ term: createTerm('ce'), weight: 1 }], false);
    const t = await measure({ model: o.teacher.model as tf.LayersModel, data: o.heldOut });
    const s = await measure({ model: o.student.model, data: o.heldOut, reference: t.logits });
    const a = o.alone ? await measure({ model: o.alone.model, data: o.heldOut }) : undefined;
    const record: ChunkRecord = {
      chunk,
      samples: data.size,
      seen,
      teacherAccuracy: t.accuracy,
      studentAccuracy: s.accuracy,
      ...(a && { aloneAccuracy: a.accuracy }),
      agreement: s.agreement!,
      seconds: spent,
    };
    chunks.push(record);
    await o.onChunk?.(record);
  }
  if (chunks.length === 0)
    throw new UserError(
      'the stream ended before its first chunk; give it data (chunks >= 1, or files in the watched folder)',
    );
  return { chunks, history, seconds };
}

const streamingKwargs = z
  .strictObject({
    /** The online teacher, a zoo node (e.g. `{ key: cnn, kwargs: { width: 1 } }`). */
    teacher: modelNode(zoo),
    /** Cut the training data into this many chunks, in row order (a simulated stream). */
    chunks: z.int().positive().nullish(),
    /** Or watch a folder for chunk files (IDX pairs or CSV; see `chunks.ts`). */
    watch: z
      .strictObject({
        dir: z
          .string()
          .min(1)
          .transform((p) => resolve(p)),
        idleSeconds: z.number().positive().default(30),
        maxChunks: z.int().positive().optional(),
        labelColumn: z.union([z.string().min(1), z.int().min(0)]).optional(),
      })
      .nullish(),
  })
  .check((ctx) => {
    if ((ctx.value.chunks == null) === (ctx.value.watch == null)) {
      ctx.issues.push({
        code: 'custom',
        input: ctx.value,
        message: 'give either chunks (cut the training data) or watch (a folder of chunk files)',
      });
    }
  });

async function runStreaming(ctx: SchemeContext): Promise<SchemeResult> {
  const k = ctx.kwargs as z.output<typeof streamingKwargs>;
  if (ctx.students.length !== 1)
    throw new UserError(`streaming distils into one student; the experiment lists ${ctx.students.length}`);
  const s = ctx.students[0]!;
  const { train, test } = ctx.data;
  const teacherModel = buildModel({
    key: k.teacher.key,
    kwargs: k.teacher.kwargs,
    inputShape: train.sampleShape,
    numClasses: train.numClasses,
    seed: ctx.seed + 2000,
    name: 'teacher',
  });
  const teacher = { name: 'teacher (stream)', model: teacherModel };
  const student = { name: `${s.name} (stream)`, model: s.build() };
  const alone = ctx.baseline ? { name: `${s.name} (labels)`, model: s.build() } : undefined;
  const chunks = k.watch
    ? watchChunks({ ...k.watch, sampleShape: train.sampleShape, numClasses: train.numClasses, signal: ctx.signal })
    : datasetChunks(train, k.chunks!);
  ctx.log(
    `seed ${ctx.seed}: streaming ${k.watch ? `chunks from ${k.watch.dir}` : `${train.size} rows in ${k.chunks} chunks`}: the teacher learns each chunk, then ${s.name} learns it from the teacher (${ctx.method.long})`,
  );
  const r = await streamingDistillation({
    chunks,
    teacher,
    student,
    alone,
    terms: ctx.createTerms,
    heldOut: test,
    fit: ctx.fit,
    onChunk: (c) =>
      ctx.log(
        `seed ${ctx.seed}: chunk ${c.chunk} (${c.samples} rows): teacher ${pct(c.teacherAccuracy)}, ${s.name} ${pct(c.studentAccuracy)}${c.aloneAccuracy !== undefined ? `, alone ${pct(c.aloneAccuracy)}` : ''}`,
      ),
  });
  if (ctx.signal?.aborted) throw new Interrupted('interrupted while waiting for the next chunk');
  const produced = (
    m: { name: string; model: typeof teacherModel },
    id: string,
    method: string,
    baseline = false,
  ): ProducedModel => ({
    id,
    name: m.name,
    model: m.model,
    method,
    ...(baseline && { baseline }),
    history: r.history[m.name] ?? [],
    trainSeconds: r.seconds[m.name] ?? 0,
  });
  const n = r.chunks.length;
  return {
    reference: { kind: 'model', produced: produced(teacher, 'teacher', `labels, ${n} chunks as they came`) },
    models: [
      produced(student, s.name, `streaming: from the online teacher, ${n} chunks, ${ctx.method.long}`),
      ...(alone ? [produced(alone, `${s.name}.labels`, `labels only, ${n} chunks`, true)] : []),
    ],
    tables: [
      {
        title: 'Streaming: accuracy after every chunk',
        note: `After each chunk the teacher has learned it from the labels, then the student from the updated teacher; both measured on the test set (${test.size} samples).${alone ? ' "alone": the same student on the labels of the same chunks.' : ''}`,
        columns: ['chunk', 'samples', 'seen', 'teacher', 'student', 'student alone', 'agreement', 'train time'],
        rows: r.chunks.map((c) => [
          String(c.chunk),
          c.samples.toLocaleString('en-US'),
          c.seen.toLocaleString('en-US'),
          pct(c.teacherAccuracy),
          pct(c.studentAccuracy),
          pct(c.aloneAccuracy),
          pct(c.agreement),
          `${c.seconds.toFixed(1)} s`,
        ]),
        data: r.chunks.map((c) => ({
          chunk: c.chunk,
          samples: c.samples,
          seen: c.seen,
          teacherAccuracy: c.teacherAccuracy,
          studentAccuracy: c.studentAccuracy,
          aloneAccuracy: c.aloneAccuracy ?? null,
          agreement: c.agreement,
          seconds: c.seconds,
        })),
      },
    ],
  };
}

/**
 * The `streaming` scheme of an experiment: its one student learns from an online teacher
 * (a zoo node in the kwargs), chunk by chunk. The report's teacher column, without an
 * external teacher, is that online teacher; with one, the online teacher is a student row.
 */
export const streamingScheme: Scheme = {
  describe:
    'streaming: per chunk of data the online teacher learns, then the student learns from it (kwargs: teacher, chunks | watch)',
  kwargs: streamingKwargs as unknown as z.ZodType<Record<string, unknown>>,
  run: runStreaming,
};
