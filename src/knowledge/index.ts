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
import { fitnetsTerm, type FitnetsOptions, type FitnetsTerm } from './feature/fitnets.js';
import { atTerm, type AtOptions } from './feature/at.js';
import { pktTerm, type PktOptions } from './feature/pkt.js';
import { nstTerm, type NstOptions } from './feature/nst.js';
import { rkdTerm, type RkdOptions } from './relation/rkd.js';
import { spTerm, type SpOptions } from './relation/sp.js';
import { ccTerm, type CcOptions } from './relation/cc.js';
import { crdTerm, type CrdInputs, type CrdOptions, type CrdTerm } from './relation/crd.js';

/** A factory as the registry sees it: options arrive untyped (from config) and are validated inside. */
export type AnyTermFactory = (options: Record<string, unknown>) => KnowledgeTerm;

export const knowledge = new Registry<AnyTermFactory>('knowledge term')
  .register('ce', (o) => crossEntropyTerm(o as CeOptions))
  .register('kd', (o) => kdTerm(o as KdOptions))
  .register('soft-ce', (o) => softCrossEntropyTerm(o as SoftCeOptions))
  .register('logits-mse', (o) => logitsMseTerm(o as LogitsMseOptions))
  .register('logits-l1', (o) => logitsL1Term(o as LogitsL1Options))
  .register('hard', (o) => hardTargetTerm(o as HardOptions))
  .register('dkd', (o) => dkdTerm(o as DkdOptions))
  .register('fitnets', (o) => fitnetsTerm(o as FitnetsOptions))
  .register('at', (o) => atTerm(o as AtOptions))
  .register('pkt', (o) => pktTerm(o as PktOptions))
  .register('nst', (o) => nstTerm(o as NstOptions))
  .register('rkd', (o) => rkdTerm(o as RkdOptions))
  .register('sp', (o) => spTerm(o as SpOptions))
  .register('cc', (o) => ccTerm(o as CcOptions))
  .register('crd', (o) => crdTerm(o as CrdOptions));

/** Builds the term registered under `key`; unknown keys and bad options throw `UserError`. */
export function createTerm(key: string, options: Record<string, unknown> = {}): KnowledgeTerm {
  return knowledge.get(key)(options);
}

export type { KnowledgeTerm, TermFactory, TermInputs, TermNeeds, TapShapes } from './types.js';
export { createAdapter, denseLayer, paramCount, termParamCount, resizeSpatial, type Adapter, type AdapterKind, type AdapterOptions } from './adapters.js';
export { SIMILARITIES, featureLoss, type Similarity } from './feature/similarity.js';
export { fitnetsTerm, atTerm, pktTerm, nstTerm, rkdTerm, spTerm, ccTerm, crdTerm };
export type { FitnetsOptions, FitnetsTerm, AtOptions, PktOptions, NstOptions, RkdOptions, SpOptions, CcOptions, CrdOptions, CrdTerm, CrdInputs };
export { crossEntropyTerm, kdTerm, softCrossEntropyTerm, logitsMseTerm, logitsL1Term, hardTargetTerm, dkdTerm };
export type { CeOptions, KdOptions, SoftCeOptions, LogitsMseOptions, LogitsL1Options, HardOptions, DkdOptions };
