/**
 * `logits-mse` — regression on the raw logits: Ba & Caruana 2014, "Do Deep Nets Really
 * Need to be Deep?" (NeurIPS), who trained shallow students on the teacher's logits
 * (pre-softmax), with no labels.
 *
 *   logits-mse = (1/(B·K)) Σ_i Σ_k (z_s,ik − z_t,ik)²
 *
 * Mean over batch and classes (the paper writes ½·Σ‖·‖²/B; only the scale differs).
 * Gradient: 2·(z_s − z_t)/(B·K). Hinton et al. show it is KD's limit for large T when the
 * logits are zero-mean. Options: none.
 * When it helps: the teacher's logits are informative in absolute terms (no softmax
 * saturation to hide differences), e.g. a transfer set without labels; pair with `ce`
 * when labels exist. Sensitive to the logits' scale: very confident teachers give large targets.
 * Loss name: `logits-mse`.
 */
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { responseTerm } from './common.js';

/** The options of `logits-mse`: none (any key is rejected). */
export const logitsMseOptions = z.strictObject({});
export type LogitsMseOptions = z.input<typeof logitsMseOptions>;

export function logitsMseTerm(options: LogitsMseOptions = {}): KnowledgeTerm {
  parseOptions('knowledge term `logits-mse`', logitsMseOptions, options);
  return responseTerm('logits-mse', true, (s, _y, t) => ({ 'logits-mse': s.sub(t).square().mean() }));
}
