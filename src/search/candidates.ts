/**
 * Student candidates measured before any training: each built untrained (weights do not change
 * the cost of a forward pass) and measured beside the teacher — parameters, serialized float32 /
 * uint8 bytes, median latency at batch 1 and 64 on the current backend, all models interleaved
 * (`measureLatencies`) so that the teacher's figure and each candidate's see the same machine.
 * `distill students` prints them; `distill search` filters them by the budget.
 */
import type * as tf from '@tensorflow/tfjs';
import type { StudentCandidate } from '../architecture/factory.js';
import type { ZooNode } from '../architecture/size-search.js';
import { modelPredictFn } from '../eval/evaluate.js';
import { measureLatencies } from '../eval/latency.js';
import { modelSize } from '../eval/size.js';
import type { ByteSizes } from '../eval/types.js';
import { buildModel } from '../models/zoo.js';

export interface MeasuredModel {
  name: string;
  /** The zoo node (for a model.json teacher: the zoo node it was read as). */
  node: ZooNode;
  derivation: string;
  /** The structure regardless of width (`StudentCandidate.structure`); the teacher's is `teacher`. */
  structure: string;
  params: number;
  bytes: ByteSizes;
  /** Median ms of one forward pass. */
  latencyMs: { batch1: number; batch64: number };
  /** The teacher's median ÷ this model's. */
  speedup: { batch1: number; batch64: number };
}

export interface MeasureCandidatesOptions {
  teacher: { model: tf.LayersModel; node: ZooNode; derivation: string };
  candidates: readonly StudentCandidate[];
  inputShape: readonly number[];
  numClasses: number;
  /** Timed passes per batch size. */
  runs: number;
}

/** The teacher's row, then one per candidate (in the given order). */
export async function measureCandidates(
  o: MeasureCandidatesOptions,
): Promise<{ teacher: MeasuredModel; candidates: MeasuredModel[] }> {
  const built: tf.LayersModel[] = [];
  try {
    for (const c of o.candidates)
      built.push(buildModel({ ...c.node, inputShape: o.inputShape, numClasses: o.numClasses, seed: 0, name: c.name }));
    const all = [o.teacher.model, ...built];
    const sizes = all.map((model) => modelSize({ model }));
    const latencies = await measureLatencies({
      predicts: all.map(modelPredictFn),
      inputShape: [...o.inputShape],
      batchSizes: [1, 64],
      runs: o.runs,
      warmup: Math.min(5, o.runs),
    });
    const ms = latencies.map((l) => ({ batch1: l.stats[0]!.medianMs, batch64: l.stats[1]!.medianMs }));
    const t = ms[0]!;
    const row = (
      i: number,
      r: { name: string; node: ZooNode; derivation: string; structure: string },
    ): MeasuredModel => ({
      name: r.name,
      node: r.node,
      derivation: r.derivation,
      structure: r.structure,
      params: sizes[i]!.params,
      bytes: sizes[i]!.bytes,
      latencyMs: ms[i]!,
      speedup: { batch1: t.batch1 / ms[i]!.batch1, batch64: t.batch64 / ms[i]!.batch64 },
    });
    return {
      teacher: row(0, { name: 'teacher', structure: 'teacher', ...o.teacher }),
      candidates: o.candidates.map((c, i) => row(i + 1, c)),
    };
  } finally {
    for (const m of built) m.dispose();
  }
}
