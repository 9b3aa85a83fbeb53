import type * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.js';
import { UserError } from '../errors.js';

/** A forward pass returning logits `[batch, classes]`; the caller disposes the result. */
export type PredictFn = (x: tf.Tensor) => tf.Tensor2D | Promise<tf.Tensor2D>;

export interface PredictLogitsOptions {
  /**
   * Logits for one batch. It must not leak intermediates (`model.predict` does not); the
   * returned tensor is disposed here. May be asynchronous (ONNX): awaited per batch.
   */
  predict: PredictFn;
  data: Dataset;
  /** Default 256. */
  batchSize?: number;
}

/**
 * Logits of every sample of `data`, in dataset order, as one row-major `[N × C]` array.
 * Batched with `data.batches()`; batch tensors are disposed by the generator and each
 * output after it is read back, so the tensor count does not grow. Compute a teacher's
 * logits once and pass them as `teacherLogits` to every student's metrics.
 */
export async function predictLogits({ predict, data, batchSize = 256 }: PredictLogitsOptions): Promise<Float32Array> {
  let out: Float32Array | undefined;
  let classes = 0;
  let row = 0;
  for (const batch of data.batches({ batchSize })) {
    const result = await predict(batch.x);
    try {
      if (result.rank !== 2 || result.shape[0] !== batch.indices.length) {
        throw new UserError(
          `predict returned shape [${result.shape.join(', ')}] for a batch of ` +
            `${batch.indices.length}; it must return logits [batch, classes]`,
        );
      }
      const values = (await result.data()) as Float32Array;
      if (out === undefined) {
        classes = result.shape[1];
        out = new Float32Array(data.size * classes);
      } else if (result.shape[1] !== classes) {
        throw new Error(`predict returned ${result.shape[1]} classes after ${classes}`);
      }
      out.set(values, row * classes);
      row += batch.indices.length;
    } finally {
      result.dispose();
    }
  }
  return out ?? new Float32Array(0);
}

export interface LogitsOptions {
  /** Row-major `[N × numClasses]` logits. */
  logits: Float32Array;
  numClasses: number;
}

export interface LabelledLogitsOptions extends LogitsOptions {
  /** N class ids. */
  labels: Int32Array;
}

export interface TeacherLogitsOptions extends LogitsOptions {
  /** The teacher's logits on the same samples, same layout. */
  teacherLogits: Float32Array;
}

/** Fraction of samples whose top-1 class (first maximum, as `tf.argMax`) is the label. */
export function accuracy({ logits, labels, numClasses }: LabelledLogitsOptions): number {
  const n = rows({ logits, numClasses }, labels.length);
  let hits = 0;
  for (let i = 0; i < n; i++) if (argmax(logits, i, numClasses) === labels[i]) hits++;
  return n === 0 ? 0 : hits / n;
}

/** Fraction of samples where model and teacher pick the same top-1 class. */
export function agreement({ logits, teacherLogits, numClasses }: TeacherLogitsOptions): number {
  const n = rows({ logits, numClasses }, teacherLogits.length / numClasses);
  let same = 0;
  for (let i = 0; i < n; i++) if (argmax(logits, i, numClasses) === argmax(teacherLogits, i, numClasses)) same++;
  return n === 0 ? 0 : same / n;
}

/**
 * Mean over samples of KL(p_t ‖ p_s) = Σ_c p_t,c (log p_t,c − log p_s,c), with p = softmax
 * of the logits at T = 1, in nats. Computed in float64 from log-softmax (stable).
 */
export function klToTeacher({ logits, teacherLogits, numClasses }: TeacherLogitsOptions): number {
  const n = rows({ logits, numClasses }, teacherLogits.length / numClasses);
  const ls = new Float64Array(numClasses);
  const lt = new Float64Array(numClasses);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    logSoftmax(logits, i, numClasses, ls);
    logSoftmax(teacherLogits, i, numClasses, lt);
    let kl = 0;
    for (let c = 0; c < numClasses; c++) {
      const p = Math.exp(lt[c]!);
      if (p > 0) kl += p * (lt[c]! - ls[c]!);
    }
    sum += kl;
  }
  return n === 0 ? 0 : sum / n;
}

/** One confidence bin of a reliability diagram. */
export interface CalibrationBin {
  /** Bin interval (lower, upper]. */
  lower: number;
  upper: number;
  count: number;
  /** Mean top-1 probability in the bin (0 when empty). */
  confidence: number;
  /** Accuracy in the bin (0 when empty). */
  accuracy: number;
}

/**
 * Reliability bins: sample i (confidence = max softmax probability) falls in bin m when
 * conf ∈ ((m−1)/M, m/M], M = `bins` (Guo et al. 2017, "On Calibration of Modern Neural
 * Networks").
 */
export function calibrationBins({
  logits,
  labels,
  numClasses,
  bins = 15,
}: LabelledLogitsOptions & { bins?: number }): CalibrationBin[] {
  if (!Number.isInteger(bins) || bins < 1) throw new UserError(`ece bins must be a whole number ≥ 1, got ${bins}`);
  const n = rows({ logits, numClasses }, labels.length);
  const count = new Float64Array(bins);
  const conf = new Float64Array(bins);
  const hits = new Float64Array(bins);
  const lp = new Float64Array(numClasses);
  for (let i = 0; i < n; i++) {
    logSoftmax(logits, i, numClasses, lp);
    const top = argmax(logits, i, numClasses);
    const p = Math.exp(lp[top]!);
    const m = Math.min(bins - 1, Math.max(0, Math.ceil(p * bins) - 1));
    count[m]++;
    conf[m] += p;
    if (top === labels[i]) hits[m]++;
  }
  return [...count].map((c, m) => ({
    lower: m / bins,
    upper: (m + 1) / bins,
    count: c,
    confidence: c > 0 ? conf[m]! / c : 0,
    accuracy: c > 0 ? hits[m]! / c : 0,
  }));
}

/** ECE = Σ_m |B_m|/N · |acc(B_m) − conf(B_m)| over `bins` equal-width bins (default 15). */
export function ece(options: LabelledLogitsOptions & { bins?: number }): number {
  const b = calibrationBins(options);
  const n = b.reduce((s, x) => s + x.count, 0);
  return n === 0 ? 0 : b.reduce((s, x) => s + (x.count / n) * Math.abs(x.accuracy - x.confidence), 0);
}

export interface ClassificationMetrics {
  accuracy: number;
  /** Present when teacher logits were given. */
  agreement?: number;
  klToTeacher?: number;
  ece: number;
}

/** All classification metrics of one model from its logits (and the teacher's). */
export function classificationMetrics({
  logits,
  labels,
  numClasses,
  teacherLogits,
}: LabelledLogitsOptions & {
  teacherLogits?: Float32Array;
}): ClassificationMetrics {
  const base = { logits, labels, numClasses };
  const out: ClassificationMetrics = { accuracy: accuracy(base), ece: ece(base) };
  if (teacherLogits !== undefined) {
    if (teacherLogits.length !== logits.length) {
      throw new UserError(
        `teacher logits have ${teacherLogits.length} values but the model's have ${logits.length}; ` +
          'compute both on the same test set with the same number of classes',
      );
    }
    out.agreement = agreement({ logits, teacherLogits, numClasses });
    out.klToTeacher = klToTeacher({ logits, teacherLogits, numClasses });
  }
  return out;
}

/** Number of rows, checking the layout against the expected count. */
function rows({ logits, numClasses }: LogitsOptions, expected: number): number {
  if (!Number.isInteger(numClasses) || numClasses < 1)
    throw new UserError(`numClasses must be a whole number ≥ 1, got ${numClasses}`);
  if (logits.length !== expected * numClasses) {
    throw new UserError(
      `logits have ${logits.length} values, expected ${expected} samples × ${numClasses} classes; ` +
        'check numClasses and that logits and labels come from the same dataset',
    );
  }
  return expected;
}

function argmax(x: Float32Array, row: number, c: number): number {
  const o = row * c;
  let best = 0;
  for (let j = 1; j < c; j++) if (x[o + j]! > x[o + best]!) best = j;
  return best;
}

function logSoftmax(x: Float32Array, row: number, c: number, out: Float64Array): void {
  const o = row * c;
  let max = -Infinity;
  for (let j = 0; j < c; j++) max = Math.max(max, x[o + j]!);
  let s = 0;
  for (let j = 0; j < c; j++) s += Math.exp(x[o + j]! - max);
  const lse = max + Math.log(s);
  for (let j = 0; j < c; j++) out[j] = x[o + j]! - lse;
}
