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
import type * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.js';
import { UserError } from '../errors.js';
import type { Fit } from '../experiment/fit.js';
import { createTerm } from '../knowledge/index.js';
import { layersTeacher } from '../teachers/layers.js';
import type { EpochRecord, Learner, WeightedTerm } from '../train/types.js';
import { disposeTerms, measure } from './common.js';
import type { CohortMember } from './dml.js';

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
  const phase = async (chunk: number, part: string, member: CohortMember, data: Dataset, terms: WeightedTerm[], taught: boolean) => {
    const learners: Learner[] = [{ name: member.name, model: member.model, terms }];
    try {
      const r = await o.fit({
        id: `${id}.chunk-${chunk}.${part}`, label: `chunk ${chunk} · ${member.name}`, learners, train: data,
        ...(taught && { teacher }), ...(o.epochs !== undefined && { epochs: o.epochs }),
      });
      const before = history[member.name] ??= [];
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
      throw new UserError(`chunk ${chunk} has samples [${data.sampleShape.join(',')}] and ${data.numClasses} classes; the held-out data has [${o.heldOut.sampleShape.join(',')}] and ${o.heldOut.numClasses}`);
    }
    seen += data.size;
    let spent = await phase(chunk, 'teacher', o.teacher, data, [{ term: createTerm('ce'), weight: 1 }], false);
    spent += await phase(chunk, 'student', o.student, data, o.terms(), true);
    if (o.alone) spent += await phase(chunk, 'alone', o.alone, data, [{ term: createTerm('ce'), weight: 1 }], false);
    const t = await measure({ model: o.teacher.model as tf.LayersModel, data: o.heldOut });
    const s = await measure({ model: o.student.model, data: o.heldOut, reference: t.logits });
    const a = o.alone ? await measure({ model: o.alone.model, data: o.heldOut }) : undefined;
    const record: ChunkRecord = {
      chunk, samples: data.size, seen, teacherAccuracy: t.accuracy, studentAccuracy: s.accuracy,
      ...(a && { aloneAccuracy: a.accuracy }), agreement: s.agreement!, seconds: spent,
    };
    chunks.push(record);
    await o.onChunk?.(record);
  }
  if (chunks.length === 0) throw new UserError('the stream ended before its first chunk; give it data (chunks >= 1, or files in the watched folder)');
  return { chunks, history, seconds };
}
