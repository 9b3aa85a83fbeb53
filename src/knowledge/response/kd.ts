/**
 * `kd` — Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network".
 *
 *   kd = α · T² · KL( softmax(z_t/T) ‖ softmax(z_s/T) )      (batch mean of per-sample KL)
 *   ce = (1 − α) · CE( y, softmax(z_s) )
 *
 * The soft targets at temperature T carry the teacher's "dark knowledge" (how it ranks the
 * wrong classes); the T² factor keeps their gradient, which shrinks as 1/T², on the scale
 * of the label term: ∂kd/∂z_s = α·T·(softmax(z_s/T) − softmax(z_t/T)) / B.
 * Options: `temperature` T > 0, default 4; `alpha` α ∈ [0, 1], default 0.9 (mdistiller's
 * CIFAR-100 setting: KD weight 0.9, CE weight 0.1, T = 4). A part weighted 0 is omitted.
 * When it helps: the default first choice whenever the teacher's logits are available;
 * higher T for more classes / a more confident teacher, lower α when labels are clean
 * and the teacher is weak.
 * `standardize: true`: both sides' logits as per-row z-scores before T (logit standardization,
 * Sun et al. CVPR 2024; `standardized` in common.ts): the student need not match the
 * teacher's logit scale, only its ranking and spacing. The paper pairs it with a larger KD
 * weight than plain KD uses.
 * Loss names: `kd`, `ce`.
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { labelCrossEntropy, responseTerm, softKl, standardizeOption, standardized } from './common.js';

/** The options of `kd`: the one definition of their names, types, ranges and defaults. */
export const kdOptions = z.strictObject({
  /** Softmax temperature T > 0. Default 4. */
  temperature: z.number().positive().default(4),
  /** Weight α ∈ [0, 1] of the distillation part; the label CE gets 1 − α. Default 0.9. */
  alpha: z.number().min(0).max(1).default(0.9),
  ...standardizeOption,
});
export type KdOptions = z.input<typeof kdOptions>;

export function kdTerm(options: KdOptions = {}): KnowledgeTerm {
  const { temperature: T, alpha, standardize } = parseOptions('knowledge term `kd`', kdOptions, options);
  const logits = (z: tf.Tensor2D) => (standardize ? standardized(z) : z);
  // the weights go into the losses (on native, into their kernels: a multiply fewer each way)
  return responseTerm('kd', true, (s, y, t) => {
    const losses: Record<string, tf.Scalar> = {};
    if (alpha > 0) losses['kd'] = softKl(logits(s), logits(t), T, alpha * T * T);
    if (alpha < 1) losses['ce'] = labelCrossEntropy(s, y, 0, 1 - alpha);
    return losses;
  });
}
