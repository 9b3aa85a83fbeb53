/**
 * The knowledge-term registry: config key → factory. A config node `{ key, kwargs }`
 * becomes a term through `createTerm(key, kwargs)`; each factory validates its kwargs.
 */
import type * as tf from '@tensorflow/tfjs';
import type { z } from 'zod';
import type { CopiedHead } from '../models/taps.js';
import { Registry } from '../registry.js';
import type { KnowledgeTerm } from './types.js';
import { ceOptions, crossEntropyTerm, type CeOptions } from './response/ce.js';
import { kdOptions, kdTerm, type KdOptions } from './response/kd.js';
import { softCeOptions, softCrossEntropyTerm, type SoftCeOptions } from './response/soft-ce.js';
import { distOptions, distTerm, type DistOptions } from './response/dist.js';
import { nkdOptions, nkdTerm, type NkdOptions } from './response/nkd.js';
import { ctkdLambda, ctkdOptions, ctkdTerm, type CtkdOptions } from './response/ctkd.js';
import { pskdAlpha, pskdOptions, pskdTerm, type PskdOptions } from './response/pskd.js';
import { logitsMseOptions, logitsMseTerm, type LogitsMseOptions } from './response/logits-mse.js';
import { logitsL1Options, logitsL1Term, type LogitsL1Options } from './response/logits-l1.js';
import { hardOptions, hardTargetTerm, type HardOptions } from './response/hard.js';
import { dkdOptions, dkdTerm, type DkdOptions } from './response/dkd.js';
import { fitnetsOptions, fitnetsTerm, type FitnetsOptions, type FitnetsTerm } from './feature/fitnets.js';
import { atOptions, atTerm, type AtOptions } from './feature/at.js';
import { pktOptions, pktTerm, type PktOptions } from './feature/pkt.js';
import { nstOptions, nstTerm, type NstOptions } from './feature/nst.js';
import { simkdOptions, simkdTerm, type SimkdOptions } from './feature/simkd.js';
import { mlkdOptions, mlkdTerm, type MlkdOptions } from './response/mlkd.js';
import { reviewkdOptions, reviewkdTerm, type ReviewkdOptions } from './feature/reviewkd.js';
import { rkdOptions, rkdTerm, type RkdOptions } from './relation/rkd.js';
import { spOptions, spTerm, type SpOptions } from './relation/sp.js';
import { ccOptions, ccTerm, type CcOptions } from './relation/cc.js';
import { crdOptions, crdTerm, type CrdInputs, type CrdOptions, type CrdTerm } from './relation/crd.js';

/**
 * A registered term: its options schema (the experiment loader validates a config's kwargs with
 * it, so errors point at the line) and its factory (which validates again when called from code).
 */
export interface TermEntry {
  kwargs: z.ZodType<Record<string, unknown>>;
  create(options: Record<string, unknown>): KnowledgeTerm;
}

/** A registry entry from a term's options schema and its factory, e.g. `knowledge.register('my', defineTerm(myOptions, myTerm))`. */
export function defineTerm<S extends z.ZodType<Record<string, unknown>>>(
  kwargs: S,
  create: (o: z.input<S>) => KnowledgeTerm,
): TermEntry {
  return {
    kwargs,
    create: (o) => create(o as z.input<S>),
  };
}

export const knowledge = new Registry<TermEntry>('knowledge term')
  .register('ce', defineTerm(ceOptions, crossEntropyTerm))
  .register('kd', defineTerm(kdOptions, kdTerm))
  .register('soft-ce', defineTerm(softCeOptions, softCrossEntropyTerm))
  .register('logits-mse', defineTerm(logitsMseOptions, logitsMseTerm))
  .register('logits-l1', defineTerm(logitsL1Options, logitsL1Term))
  .register('hard', defineTerm(hardOptions, hardTargetTerm))
  .register('dkd', defineTerm(dkdOptions, dkdTerm))
  .register('dist', defineTerm(distOptions, distTerm))
  .register('nkd', defineTerm(nkdOptions, nkdTerm))
  .register('ctkd', defineTerm(ctkdOptions, ctkdTerm))
  .register('pskd', defineTerm(pskdOptions, pskdTerm))
  .register('mlkd', defineTerm(mlkdOptions, mlkdTerm))
  .register('fitnets', defineTerm(fitnetsOptions, fitnetsTerm))
  .register('at', defineTerm(atOptions, atTerm))
  .register('pkt', defineTerm(pktOptions, pktTerm))
  .register('nst', defineTerm(nstOptions, nstTerm))
  .register('simkd', defineTerm(simkdOptions, simkdTerm))
  .register('reviewkd', defineTerm(reviewkdOptions, reviewkdTerm))
  .register('rkd', defineTerm(rkdOptions, rkdTerm))
  .register('sp', defineTerm(spOptions, spTerm))
  .register('cc', defineTerm(ccOptions, ccTerm))
  .register('crd', defineTerm(crdOptions, crdTerm));

/** Builds the term registered under `key`; unknown keys and bad options throw `UserError`. */
export function createTerm(key: string, options: Record<string, unknown> = {}): KnowledgeTerm {
  return knowledge.get(key).create(options);
}

/**
 * The student as the terms train and ship it: each term that rebuilds it (simkd: a projector and
 * the teacher's classifier) does so in turn. `each` runs every rebuild (e.g. to locate its errors
 * in the experiment file).
 */
export function reshapeStudent(
  terms: readonly { term: KnowledgeTerm }[],
  student: tf.LayersModel,
  teacherLayersAfter: ((tap: string) => CopiedHead) | undefined,
  each: (k: number, rebuild: () => void) => void = (_, rebuild) => rebuild(),
): tf.LayersModel {
  let model = student;
  terms.forEach(({ term }, k) => {
    if (term.reshapeStudent) each(k, () => (model = term.reshapeStudent!(model, teacherLayersAfter)));
  });
  return model;
}

export type { KnowledgeTerm, TermFactory, TermInputs, TermNeeds, TapShapes } from './types.js';
export {
  createAdapter,
  denseLayer,
  paramCount,
  termParamCount,
  resizeSpatial,
  type Adapter,
  type AdapterKind,
  type AdapterOptions,
} from './adapters.js';
export { SIMILARITIES, featureLoss, type Similarity } from './feature/similarity.js';
export { fitnetsTerm, atTerm, pktTerm, nstTerm, simkdTerm, reviewkdTerm, rkdTerm, spTerm, ccTerm, crdTerm };
export {
  fitnetsOptions,
  atOptions,
  pktOptions,
  nstOptions,
  simkdOptions,
  rkdOptions,
  spOptions,
  ccOptions,
  crdOptions,
};
export type {
  FitnetsOptions,
  FitnetsTerm,
  AtOptions,
  PktOptions,
  NstOptions,
  SimkdOptions,
  ReviewkdOptions,
  RkdOptions,
  SpOptions,
  CcOptions,
  CrdOptions,
  CrdTerm,
  CrdInputs,
};
export {
  crossEntropyTerm,
  kdTerm,
  softCrossEntropyTerm,
  logitsMseTerm,
  logitsL1Term,
  hardTargetTerm,
  dkdTerm,
  distTerm,
  nkdTerm,
  ctkdTerm,
  ctkdLambda,
  pskdTerm,
  pskdAlpha,
  mlkdTerm,
};
export {
  ceOptions,
  kdOptions,
  softCeOptions,
  logitsMseOptions,
  logitsL1Options,
  hardOptions,
  dkdOptions,
  distOptions,
  nkdOptions,
  ctkdOptions,
  pskdOptions,
  mlkdOptions,
};
export type {
  CeOptions,
  KdOptions,
  SoftCeOptions,
  LogitsMseOptions,
  LogitsL1Options,
  HardOptions,
  DkdOptions,
  DistOptions,
  NkdOptions,
  CtkdOptions,
  PskdOptions,
  MlkdOptions,
};
