/**
 * The knowledge-term registry: config key → factory. A config node `{ key, kwargs }`
 * becomes a term through `createTerm(key, kwargs)`; each factory validates its kwargs.
 */
import { Registry } from '../registry.js';
import type { KnowledgeTerm } from './types.js';
import { crossEntropyTerm, type CeOptions } from './response/ce.js';
import { kdTerm, type KdOptions } from './response/kd.js';
import { softCrossEntropyTerm, type SoftCeOptions } from './response/soft-ce.js';
import { logitsMseTerm, type LogitsMseOptions } from './response/logits-mse.js';
import { logitsL1Term, type LogitsL1Options } from './response/logits-l1.js';
import { hardTargetTerm, type HardOptions } from './response/hard.js';
import { dkdTerm, type DkdOptions } from './response/dkd.js';

/** A factory as the registry sees it: options arrive untyped (from config) and are validated inside. */
export type AnyTermFactory = (options: Record<string, unknown>) => KnowledgeTerm;

export const knowledge = new Registry<AnyTermFactory>('knowledge term')
  .register('ce', (o) => crossEntropyTerm(o as CeOptions))
  .register('kd', (o) => kdTerm(o as KdOptions))
  .register('soft-ce', (o) => softCrossEntropyTerm(o as SoftCeOptions))
  .register('logits-mse', (o) => logitsMseTerm(o as LogitsMseOptions))
  .register('logits-l1', (o) => logitsL1Term(o as LogitsL1Options))
  .register('hard', (o) => hardTargetTerm(o as HardOptions))
  .register('dkd', (o) => dkdTerm(o as DkdOptions));

/** Builds the term registered under `key`; unknown keys and bad options throw `UserError`. */
export function createTerm(key: string, options: Record<string, unknown> = {}): KnowledgeTerm {
  return knowledge.get(key)(options);
}

export type { KnowledgeTerm, TermFactory, TermInputs, TermNeeds } from './types.js';
export { crossEntropyTerm, kdTerm, softCrossEntropyTerm, logitsMseTerm, logitsL1Term, hardTargetTerm, dkdTerm };
export type { CeOptions, KdOptions, SoftCeOptions, LogitsMseOptions, LogitsL1Options, HardOptions, DkdOptions };
