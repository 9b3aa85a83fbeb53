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
import type { KnowledgeTerm } from '../types.js';
import { checkKeys, FEATURES, flat, l2Normalize, layerOption, numberOption, readPair, tapTerm } from '../feature/common.js';

export interface SpOptions {
  /** Student layer (or `logits`). Default `features`. */
  student?: string;
  /** Teacher layer (or `logits`). Default `features`. */
  teacher?: string;
  /** Weight β ≥ 0. Default 3000. */
  beta?: number;
}

/** Ĝ: the row-normalised Gram matrix of a [B, D] batch. */
export function similarityMatrix(q: tf.Tensor2D): tf.Tensor2D {
  return l2Normalize(tf.matMul(q, q, false, true));
}

export function spTerm(options: SpOptions = {}): KnowledgeTerm {
  const o = options as Record<string, unknown>;
  const key = 'sp';
  checkKeys(key, o, ['student', 'teacher', 'beta']);
  const pair = { student: layerOption(key, o, 'student', FEATURES), teacher: layerOption(key, o, 'teacher', FEATURES) };
  const beta = numberOption(key, o, 'beta', 3000, 'nonNegative');
  return tapTerm(key, [pair], (inputs) => {
    const { s, t } = readPair(key, inputs, pair);
    const b = s.shape[0]!;
    const diff = tf.squaredDifference(similarityMatrix(flat(t)), similarityMatrix(flat(s))).sum();
    return { sp: diff.mul(beta / (b * b)) };
  });
}
