/**
 * `nkd` — Normalized KD: Yang, Zeng, Li, Zhang, Yuan & Li, "From Knowledge Distillation to
 * Self-Knowledge Distillation: A Unified Approach with Normalized Loss and Customized Soft
 * Labels", ICCV 2023.
 *
 * With g the true class, p = softmax(z) and N(·) the softmax over the non-target classes only
 * (the target dropped and the rest renormalised) at temperature λ:
 *
 *   nkd-target = −(1/B) Σ_i p_t,ig · log p_s,ig                       the teacher's target probability as the label weight
 *   nkd-non    = −γ · λ² · (1/B) Σ_i Σ_{k≠g} N(z_t/λ)_ik · log N(z_s/λ)_ik
 *
 * KD's non-target part sums to 1 − p_g, so it fades where the teacher is confident; normalising
 * it gives those classes their full weight (the same diagnosis as `dkd`, a different cure).
 * Train it with the labels (`+ ce`), as the paper does. Defaults are the paper's (γ = 1.5, λ = 1).
 * When it helps: confident teachers; the paper reports gains over KD and DKD on ImageNet.
 * Loss names: `nkd-target`, `nkd-non`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { logProbs, responseTerm, targetClasses, weighted } from './common.js';

/** The options of `nkd`: the one definition of their names, types, ranges and defaults. */
export const nkdOptions = z.strictObject({
  /** Temperature λ > 0 of the non-target part. Default 1. */
  temperature: z.number().positive().default(1),
  /** Weight γ ≥ 0 of the non-target part. Default 1.5. */
  gamma: z.number().min(0).default(1.5),
});
export type NkdOptions = z.input<typeof nkdOptions>;

/** Subtracted from the target logit to drop it from a softmax: exp(−1e9) is exactly 0. */
const MASKED = 1e9;

export function nkdTerm(options: NkdOptions = {}): KnowledgeTerm {
  const { temperature: T, gamma } = parseOptions('knowledge term `nkd`', nkdOptions, options);
  return responseTerm('nkd', true, (s, y, t) => {
    const target = tf.oneHot(targetClasses(y, t), s.shape[1]).toFloat();
    const nonTarget = (z: tf.Tensor2D) => z.div(T).sub(target.mul(MASKED)) as tf.Tensor2D;
    return weighted({
      'nkd-target': [1, () => tf.neg(tf.exp(logProbs(t)).mul(logProbs(s)).mul(target).sum(1).mean<tf.Scalar>())],
      'nkd-non': [
        gamma * T * T,
        () =>
          tf.neg(
            tf
              .softmax(nonTarget(t))
              .mul(tf.logSoftmax(nonTarget(s)))
              .sum(1)
              .mean<tf.Scalar>(),
          ),
      ],
    });
  });
}
