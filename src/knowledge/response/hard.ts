/**
 * `hard` — hard targets: the teacher's argmax used as labels (pseudo-labelling; the
 * "hard targets" of Hinton et al. 2015 and of Gou et al. 2021, "Knowledge Distillation: A Survey").
 *
 *   hard = α · CE( argmax_k z_t, softmax(z_s) )
 *   ce   = (1 − α) · CE( y, softmax(z_s) )
 *
 * Ties go to the lowest class index. Gradient of `hard`: (softmax(z_s) − onehot(argmax z_t))/B.
 * Options: `alpha` α ∈ [0, 1], default 1 (teacher labels only; set α < 1 to mix in the
 * true labels). A part weighted 0 is omitted.
 * When it helps: the teacher's outputs can only be had as classes (a black-box API), or a
 * transfer set has no labels; it carries less than soft targets (no dark knowledge), and
 * it copies the teacher's mistakes, so mix in the true labels when you have them.
 * Loss names: `hard`, `ce`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { labelCrossEntropy, responseTerm, weighted } from './common.js';

/** The options of `hard`: the one definition of their names, types, ranges and defaults. */
export const hardOptions = z.strictObject({
  /** Weight α ∈ [0, 1] of the teacher-label CE; the true-label CE gets 1 − α. Default 1. */
  alpha: z.number().min(0).max(1).default(1),
});
export type HardOptions = z.input<typeof hardOptions>;

export function hardTargetTerm(options: HardOptions = {}): KnowledgeTerm {
  const { alpha } = parseOptions('knowledge term `hard`', hardOptions, options);
  return responseTerm('hard', true, (s, y, t) =>
    weighted({
      hard: [alpha, () => labelCrossEntropy(s, tf.argMax(t, 1) as tf.Tensor1D)],
      ce: [1 - alpha, () => labelCrossEntropy(s, y)],
    }),
  );
}
