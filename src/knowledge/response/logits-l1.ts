/**
 * `logits-l1` — L1 regression on the raw logits, the robust variant of Ba & Caruana 2014,
 * "Do Deep Nets Really Need to be Deep?" (NeurIPS), which used L2 (`logits-mse`).
 *
 *   logits-l1 = (1/(B·K)) Σ_i Σ_k |z_s,ik − z_t,ik|
 *
 * Mean over batch and classes. Gradient: sign(z_s − z_t)/(B·K) (0 where equal).
 * Options: none.
 * When it helps: like `logits-mse`, but when a few logits are far off (outlier samples, a
 * very confident teacher) and should not dominate the gradient. Pair with `ce` when labels exist.
 * Loss name: `logits-l1`.
 */
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { responseTerm } from './common.js';

/** The options of `logits-l1`: none (any key is rejected). */
export const logitsL1Options = z.strictObject({});
export type LogitsL1Options = z.input<typeof logitsL1Options>;

export function logitsL1Term(options: LogitsL1Options = {}): KnowledgeTerm {
  parseOptions('knowledge term `logits-l1`', logitsL1Options, options);
  return responseTerm('logits-l1', true, (s, _y, t) => ({ 'logits-l1': s.sub(t).abs().mean() }));
}
