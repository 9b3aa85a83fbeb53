/**
 * `soft-ce` — cross-entropy against the teacher's softened distribution (the form written
 * in Hinton et al. 2015, §2, "Distilling the Knowledge in a Neural Network").
 *
 *   soft-ce = α · T² · (1/B) Σ_i −Σ_k softmax(z_t/T)_ik · log softmax(z_s/T)_ik
 *   ce      = (1 − α) · CE( y, softmax(z_s) )
 *
 * It equals the `kd` KL plus T²·H(teacher), a constant in the student, so its gradient is
 * the same as KD's; the logged value is the full cross-entropy, which never reaches 0 and
 * shows the teacher's entropy (how soft its targets are).
 * Options: `temperature` T > 0, default 4; `alpha` α ∈ [0, 1], default 1 (soft targets
 * only; set α < 1 to add the label CE as in `kd`). A part weighted 0 is omitted.
 * When it helps: where KD helps, when you want the loss to match frameworks that
 * distil with a soft-label cross-entropy (e.g. Keras `CategoricalCrossentropy` on soft labels).
 * `standardize: true`: logit standardization before T, as in `kd`.
 * Loss names: `soft-ce`, `ce`.
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import {
  labelCrossEntropy,
  logProbs,
  responseTerm,
  softCrossEntropy,
  standardizeOption,
  standardized,
  weighted,
} from './common.js';

/** The options of `soft-ce`: the one definition of their names, types, ranges and defaults. */
export const softCeOptions = z.strictObject({
  /** Softmax temperature T > 0. Default 4. */
  temperature: z.number().positive().default(4),
  /** Weight α ∈ [0, 1] of the soft-target part; the label CE gets 1 − α. Default 1. */
  alpha: z.number().min(0).max(1).default(1),
  ...standardizeOption,
});
export type SoftCeOptions = z.input<typeof softCeOptions>;

export function softCrossEntropyTerm(options: SoftCeOptions = {}): KnowledgeTerm {
  const { temperature: T, alpha, standardize } = parseOptions('knowledge term `soft-ce`', softCeOptions, options);
  const soft = (z: tf.Tensor2D) => logProbs(standardize ? standardized(z) : z, T);
  return responseTerm('soft-ce', true, (s, y, t) =>
    weighted({
      'soft-ce': [alpha * T * T, () => softCrossEntropy(soft(t), soft(s))],
      ce: [1 - alpha, () => labelCrossEntropy(s, y)],
    }),
  );
}
