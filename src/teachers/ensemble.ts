/**
 * Several frozen teachers as one: per sample, the weighted mean of their logits,
 *
 *   z(x) = Σ_k w_k(x) · z_k(x),   Σ_k w_k(x) = 1,
 *
 * with the weights
 * - `fixed`: w_k given (default equal) — the multi-teacher average of Hinton et al. 2015 and
 *   You et al. 2017 ("Learning from Multiple Teacher Networks");
 * - `confidence`: w_k(x) ∝ p_k(y | x), each teacher's probability of the true class — a teacher
 *   that is right and sure about this sample counts most (the sample-wise weighting of
 *   "confidence-aware multi-teacher KD", Zhang et al. 2022, in its simplest form); needs the
 *   sample's label, so it applies to training rows (by index) only;
 * - `entropy`: w_k(x) ∝ 1 / H(p_k(x)) — label-free: a confident teacher counts more.
 * When it helps: teachers that are good on different classes or samples; with one teacher much
 * better than the others, the fixed average can be worse than that teacher alone.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { Teacher, TeacherOutput, TeacherPredictOptions } from './types.js';

export type TeacherWeighting = 'fixed' | 'confidence' | 'entropy';
export const TEACHER_WEIGHTINGS: readonly TeacherWeighting[] = ['fixed', 'confidence', 'entropy'];

export interface EnsembleTeacherOptions {
  members: Teacher[];
  weighting?: TeacherWeighting;
  /** `fixed` weights, one per member, ≥ 0 (normalized to sum 1). Default equal. */
  weights?: number[];
  /** Labels of the training rows, by row index: `confidence` weighting reads them through `indices`. */
  labels?: Int32Array;
}

/** Per-sample weights [B, K] from the members' logits [K × [B, C]] (rows sum to 1). */
export function sampleWeights(
  logits: tf.Tensor2D[],
  weighting: TeacherWeighting,
  fixed: number[],
  labels?: tf.Tensor1D,
): tf.Tensor2D {
  return tf.tidy(() => {
    const batch = logits[0]!.shape[0];
    let raw: tf.Tensor2D;
    if (weighting === 'fixed') {
      raw = tf.tile(tf.tensor2d([fixed], [1, fixed.length]), [batch, 1]);
    } else if (weighting === 'confidence') {
      if (!labels) throw new UserError('confidence weighting needs the labels of the batch; use fixed or entropy');
      const onehot = tf.oneHot(labels, logits[0]!.shape[1]);
      raw = tf.stack(
        logits.map((z) => tf.softmax(z).mul(onehot).sum(1)),
        1,
      ) as tf.Tensor2D;
    } else {
      const inverseEntropy = (z: tf.Tensor2D) => {
        const logp = tf.logSoftmax(z);
        const h = tf.neg(tf.exp(logp).mul(logp).sum(1));
        return tf.div(1, tf.maximum(h, 1e-6));
      };
      raw = tf.stack(logits.map(inverseEntropy), 1) as tf.Tensor2D;
    }
    // a sample every member gives probability 0 falls back to equal weights
    const total = raw.sum(1, true);
    const equal = tf.fill([batch, logits.length], 1 / logits.length);
    return tf.where(
      tf.greater(total, 0).tile([1, logits.length]),
      raw.div(tf.maximum(total, 1e-12)),
      equal,
    ) as tf.Tensor2D;
  });
}

/** The weighted mean of the members' logits: z [B, C] = Σ_k w [B, k] · z_k. */
export function combineLogits(logits: tf.Tensor2D[], weights: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(
    () => logits.map((z, k) => z.mul(weights.slice([0, k], [-1, 1]))).reduce((a, b) => a.add(b)) as tf.Tensor2D,
  );
}

/**
 * Checks the weights of an ensemble of k models (teachers, cohort members) — one each, ≥ 0,
 * not all 0; default equal — and normalizes them to sum 1.
 */
export function normalizeWeights(
  weights: readonly number[] | undefined,
  k: number,
  what = 'ensemble weights',
): number[] {
  const w = weights ?? Array.from({ length: k }, () => 1);
  if (w.length !== k) throw new UserError(`${what}: ${w.length} weights for ${k} models; give one weight per model`);
  if (w.some((v) => !(Number.isFinite(v) && v >= 0)))
    throw new UserError(`${what} must be numbers >= 0 (got ${JSON.stringify(w)})`);
  const sum = w.reduce((a, b) => a + b, 0);
  if (sum <= 0) throw new UserError(`${what} must not all be 0`);
  return w.map((v) => v / sum);
}

/** Several teachers answering as one (logits only). */
export function ensembleTeacher(o: EnsembleTeacherOptions): Teacher {
  const { members } = o;
  if (members.length === 0) throw new UserError('a multi-teacher needs at least one teacher');
  const [first] = members;
  for (const m of members) {
    if (m.numClasses !== first!.numClasses) {
      throw new UserError(`the teachers disagree on the number of classes (${first!.numClasses} vs ${m.numClasses})`);
    }
  }
  const weighting = o.weighting ?? 'fixed';
  const fixed = normalizeWeights(o.weights, members.length, 'teacher weights');
  return {
    kind: 'ensemble',
    inputShape: first!.inputShape,
    numClasses: first!.numClasses,
    tapNames: () => [],
    async predict(x: tf.Tensor, options: TeacherPredictOptions = {}): Promise<TeacherOutput> {
      if ((options.taps ?? []).length > 0) {
        throw new UserError('a multi-teacher gives logits only; feature and relation terms need one teacher');
      }
      const outputs = await Promise.all(members.map((m) => m.predict(x, { indices: options.indices })));
      const logits = outputs.map((out) => out.logits);
      try {
        let labels: tf.Tensor1D | undefined;
        if (weighting === 'confidence') {
          if (options.indices === undefined || o.labels === undefined) {
            throw new UserError(
              "confidence weighting needs each training row's label (no augmentation, training rows only); use entropy or fixed",
            );
          }
          const idx = options.indices;
          labels = tf.tensor1d(
            Int32Array.from(idx, (i) => o.labels![i]!),
            'int32',
          );
        }
        const weights = sampleWeights(logits, weighting, fixed, labels);
        const combined = combineLogits(logits, weights);
        tf.dispose([weights, labels]);
        return { logits: combined, taps: {} };
      } finally {
        tf.dispose(outputs.flatMap((out) => [out.logits, ...Object.values(out.taps)]));
      }
    },
    dispose() {
      for (const m of members) m.dispose();
    },
  };
}
