/**
 * `sp` — Tung & Mori 2019, "Similarity-Preserving Knowledge Distillation".
 *
 *   G   = Q · Qᵀ                          B×B similarities of the batch (Q: [B, D] flattened activations)
 *   Ĝ   = G with each row divided by its L2 norm
 *   sp  = β · ‖Ĝ_t − Ĝ_s‖²_F / B²
 *
 * Samples that the teacher sees as alike should look alike to the student; the feature
 * dimensions may differ (G is B×B): no adapter. Checked against RepDistiller's
 * `Similarity` ("verified by original author") and torchdistill's SPKDLoss (batchmean).
 * Options: `student`, `teacher` layer names, default `features` (the penultimate vector;
 * the paper uses the last conv block's output); `logits` uses the logits; `beta` β default
 * 3000 (the paper's γ for CIFAR-10, RepDistiller's CIFAR-100 weight).
 * When it helps: students of another architecture; it ignores the scale and basis of the
 * features, and it combines with `kd`.
 * Loss name: `sp`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { FEATURES, flat, l2Normalize, readPair, tapTerm } from '../feature/common.js';

/** The options of `sp`: the one definition of their names, types, ranges and defaults. */
export const spOptions = z.strictObject({
  /** Student layer (or `logits`). Default `features`. */
  student: z.string().min(1).default(FEATURES),
  /** Teacher layer (or `logits`). Default `features`. */
  teacher: z.string().min(1).default(FEATURES),
  /** Weight β ≥ 0. Default 3000. */
  beta: z.number().min(0).default(3000),
});
export type SpOptions = z.input<typeof spOptions>;

/** Ĝ: the row-normalised Gram matrix of a [B, D] batch. */
export function similarityMatrix(q: tf.Tensor2D): tf.Tensor2D {
  return l2Normalize(tf.matMul(q, q, false, true));
}

export function spTerm(options: SpOptions = {}): KnowledgeTerm {
  const key = 'sp';
  const { student, teacher, beta } = parseOptions('knowledge term `sp`', spOptions, options);
  const pair = { student, teacher };
  return tapTerm(key, [pair], (inputs) => {
    const { s, t } = readPair(key, inputs, pair);
    const b = s.shape[0]!;
    const diff = tf.squaredDifference(similarityMatrix(flat(t)), similarityMatrix(flat(s))).sum();
    return { sp: diff.mul(beta / (b * b)) };
  });
}
