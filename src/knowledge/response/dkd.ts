/**
 * `dkd` — Decoupled Knowledge Distillation: Zhao, Cui, Song, Qiu & Liang, CVPR 2022.
 *
 * With p = softmax(z/T) and g the true class: b = [p_g, 1 − p_g] (binary) and
 * p̂_k = p_k / (1 − p_g) for k ≠ g (non-target classes, renormalised). KD splits as
 * KL(p_t‖p_s) = TCKD + (1 − p_t,g)·NCKD, where
 *
 *   TCKD = KL(b_t ‖ b_s),   NCKD = KL(p̂_t ‖ p̂_s)          (each a batch mean)
 *   tckd = α·T²·TCKD,   nckd = β·T²·NCKD,   ce = ceWeight · CE(y, softmax(z_s))
 *
 * DKD drops the (1 − p_t,g) factor that mutes NCKD exactly where the teacher is confident.
 * Log-probabilities come from log-sum-exp with the target logit masked out (no log(softmax)).
 * Defaults are mdistiller's (the authors' code, CIFAR-100): α = 1, β = 8, T = 4, ceWeight = 1.
 * Its ImageNet setting is β = 0.5, T = 1. mdistiller also ramps the whole DKD loss in over
 * the first 20 epochs; a term sees no epoch, so schedule the term's weight in the trainer.
 * When it helps: a confident teacher, whose plain-KD NCKD signal is suppressed; the paper
 * reports logit-only results on par with feature methods. β is the knob to tune first.
 * `standardize: true`: logit standardization before T (DKD + LS in Sun et al. CVPR 2024), as in `kd`.
 * Loss names: `tckd`, `nckd`, `ce`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import {
  klDiv,
  labelCrossEntropy,
  responseTerm,
  targetClasses,
  standardizeOption,
  standardized,
  weighted,
} from './common.js';

/** The options of `dkd`: the one definition of their names, types, ranges and defaults. */
export const dkdOptions = z.strictObject({
  /** Softmax temperature T > 0. Default 4. */
  temperature: z.number().positive().default(4),
  /** Weight α ≥ 0 of TCKD (target vs rest). Default 1. */
  alpha: z.number().min(0).default(1),
  /** Weight β ≥ 0 of NCKD (among the non-target classes). Default 8. */
  beta: z.number().min(0).default(8),
  /** Weight ≥ 0 of the label cross-entropy. Default 1. */
  ceWeight: z.number().min(0).default(1),
  ...standardizeOption,
});
export type DkdOptions = z.input<typeof dkdOptions>;

/** Subtracted from the target logit to drop it from a softmax: exp(−1e9) is exactly 0. */
const MASKED = 1e9;

export function dkdTerm(options: DkdOptions = {}): KnowledgeTerm {
  const {
    temperature: T,
    alpha,
    beta,
    ceWeight,
    standardize,
  } = parseOptions('knowledge term `dkd`', dkdOptions, options);
  return responseTerm('dkd', true, (s, y, t) => {
    const target = tf.oneHot(targetClasses(y, t), s.shape[1]).toFloat();
    const scaled = (z: tf.Tensor2D) => (standardize ? standardized(z) : z).div(T) as tf.Tensor2D;
    const nonTarget = (z: tf.Tensor2D) => scaled(z).sub(target.mul(MASKED)) as tf.Tensor2D;
    /** log [p_g, 1 − p_g], shape [B, 2]. */
    const logBinary = (z: tf.Tensor2D): tf.Tensor2D => {
      const all = tf.logSumExp(scaled(z), 1, true);
      const logTarget = scaled(z).mul(target).sum(1, true).sub<tf.Tensor2D>(all);
      const logRest = tf.logSumExp(nonTarget(z), 1, true).sub<tf.Tensor2D>(all);
      return tf.concat([logTarget, logRest], 1);
    };
    return weighted({
      tckd: [alpha * T * T, () => klDiv(logBinary(t), logBinary(s))],
      nckd: [beta * T * T, () => klDiv(tf.logSoftmax(nonTarget(t)), tf.logSoftmax(nonTarget(s)))],
      ce: [ceWeight, () => labelCrossEntropy(s, y)],
    });
  });
}
