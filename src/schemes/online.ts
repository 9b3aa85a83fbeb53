/**
 * Online distillation (the survey's second scheme: teacher and students learn together, no
 * pre-trained teacher): the methods, callable from code, and the `dml`, `ensemble` and
 * `streaming` schemes of an experiment, each in its own file (`dml.ts`, `ensemble.ts`,
 * `streaming.ts`; the cohort they share in `cohort.ts`). The registry is `index.ts`.
 */
import { dmlScheme } from './dml.js';
import { ensembleScheme } from './ensemble.js';
import { streamingScheme } from './streaming.js';
import type { Scheme } from './types.js';

export { deepMutualLearning, mutualSelector, type DeepMutualLearningOptions } from './dml.js';
export type { CohortMember } from './cohort.js';
export { onlineEnsemble, ensembleSelector, type OnlineEnsembleOptions } from './ensemble.js';
export { streamingDistillation, type StreamingOptions, type StreamingResult, type ChunkRecord } from './streaming.js';
export { datasetChunks, watchChunks, type WatchChunksOptions } from './chunks.js';

/** The online schemes by key. */
export const onlineSchemes: Record<string, Scheme> = {
  dml: dmlScheme,
  ensemble: ensembleScheme,
  streaming: streamingScheme,
};
