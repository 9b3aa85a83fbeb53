/**
 * `ce` — the student's own cross-entropy with the ground-truth labels.
 *
 *   L = −(1/B) Σ_i Σ_k q_ik · log softmax(z_s)_ik,   q = (1−ε)·onehot(y) + ε/K
 *
 * Label smoothing: Szegedy et al. 2016, "Rethinking the Inception Architecture" (same
 * convention as PyTorch's `cross_entropy(label_smoothing=ε)`).
 * Options: `labelSmoothing` ε ∈ [0, 1), default 0. Needs no teacher.
 * When it helps: always, as the anchor to the true labels; add it beside any term that has
 * no label part of its own (logits-mse, logits-l1, feature and relation terms). Smoothing
 * helps an over-confident student but blurs the dark knowledge a teacher would pass on,
 * so keep ε = 0 on a teacher that was itself trained with smoothing (Müller et al. 2019).
 * Loss name: `ce`.
 */
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { labelCrossEntropy, responseTerm } from './common.js';

/** The options of `ce`: the one definition of their names, types, ranges and defaults. */
export const ceOptions = z.strictObject({
  /** ε ∈ [0, 1): mass spread uniformly over all K classes. Default 0. */
  labelSmoothing: z.number().min(0).lt(1).default(0),
});
export type CeOptions = z.input<typeof ceOptions>;

export function crossEntropyTerm(options: CeOptions = {}): KnowledgeTerm {
  const { labelSmoothing: smoothing } = parseOptions('knowledge term `ce`', ceOptions, options);
  return responseTerm('ce', false, (s, y) => ({ ce: labelCrossEntropy(s, y, smoothing) }));
}
