/**
 * `cc` — Peng et al. 2019, "Correlation Congruence for Knowledge Distillation".
 *
 * On the L2-normalised embeddings f_i of one batch, the Gaussian-RBF correlation
 * k(f_i, f_j) = exp(−γ‖f_i − f_j‖²) = e^{−2γ} · e^{2γ f_iᵀf_j} (unit vectors), approximated
 * by its Taylor series to order P, as in the paper:
 *
 *   C_ij = e^{−2γ} · Σ_{p=0..P} (2γ)^p / p! · (f_iᵀ f_j)^p
 *   cc   = β · ‖C_t − C_s‖²_F / B²
 *
 * (checked against torchdistill's CCKDLoss `gaussian` kernel, γ = 0.4, P = 2; the paper's
 * loss is the squared norm over n², which we take). The dimensions may differ (C is B×B):
 * no adapter, and no projection head (torchdistill adds a linear layer on each side).
 * Options: `student`, `teacher` layer names, default `features`; `logits` uses the
 * logits; `gamma` γ default 0.4; `order` P default 2; `beta` β default 1 (the paper's
 * weight is tied to its own embedding; tune it: the value is small, ≲ 0.1).
 * When it helps: beside `kd` — it adds the correlation between samples that instance-level
 * KD ignores; most useful with many classes and a teacher whose embedding clusters well.
 * Loss name: `cc`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { FEATURES, flat, l2Normalize, readPair, tapTerm } from '../feature/common.js';

/** The options of `cc`: the one definition of their names, types, ranges and defaults. */
export const ccOptions = z.strictObject({
  /** Student layer (or `logits`). Default `features`. */
  student: z.string().min(1).default(FEATURES),
  /** Teacher layer (or `logits`). Default `features`. */
  teacher: z.string().min(1).default(FEATURES),
  /** RBF γ > 0. Default 0.4. */
  gamma: z.number().positive().default(0.4),
  /** Taylor order P ≥ 1. Default 2. */
  order: z.int().min(1).default(2),
  /** Weight β ≥ 0. Default 1. */
  beta: z.number().min(0).default(1),
});
export type CcOptions = z.input<typeof ccOptions>;

/** C: the Taylor-approximated RBF correlation matrix of a [B, D] batch. */
export function correlationMatrix(x: tf.Tensor2D, gamma: number, order: number): tf.Tensor2D {
  const f = l2Normalize(x);
  const dot = tf.matMul(f, f, false, true);
  let sum: tf.Tensor = tf.onesLike(dot);
  let power: tf.Tensor = sum;
  let coefficient = 1;
  for (let p = 1; p <= order; p++) {
    power = power.mul(dot);
    coefficient *= (2 * gamma) / p;
    sum = sum.add(power.mul(coefficient));
  }
  return sum.mul(Math.exp(-2 * gamma)) as tf.Tensor2D;
}

export function ccTerm(options: CcOptions = {}): KnowledgeTerm {
  const key = 'cc';
  const { student, teacher, gamma, order, beta } = parseOptions('knowledge term `cc`', ccOptions, options);
  const pair = { student, teacher };
  return tapTerm(key, [pair], (inputs) => {
    const { s, t } = readPair(key, inputs, pair);
    const b = s.shape[0]!;
    const diff = tf
      .squaredDifference(correlationMatrix(flat(t), gamma, order), correlationMatrix(flat(s), gamma, order))
      .sum();
    return { cc: diff.mul(beta / (b * b)) };
  });
}
