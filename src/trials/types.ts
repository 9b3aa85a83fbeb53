/**
 * Trials: one experiment run (`runExperiment`) as a unit of work that an executor runs somewhere —
 * a child process on this machine (`local.ts`) or a BullMQ worker on any machine (`bullmq.ts`).
 * Sweeps and the student search (`src/search/`) are lists of trials.
 *
 * Everything a trial needs travels in its spec, and everything it leaves is in its folder under
 * the shared folder, so any worker can run (or resume) any trial:
 *   <shared>/<dir>/experiment.yaml, seed-<n>/checkpoints/   the run (resumable, `distill run --resume`)
 *   <shared>/<dir>/trial.json                              the result, written last (a trial is done when it exists)
 */

import { isAbsolute } from 'node:path';
import { z } from 'zod';

/** The prefix of paths inside the shared folder in a trial's experiment text; each worker puts its own path there. */
export const SHARED = '@shared/';

export interface TrialSpec {
  /** Unique within its sweep or search; a folder-safe name, e.g. `r0-cnn-x0.25`. */
  id: string;
  /** The experiment, as YAML; paths starting `@shared/` are inside the shared folder. Its `out` is ignored. */
  experiment: string;
  /** The run folder, relative to the shared folder. */
  dir: string;
  /** Native threads of the trial's process (TFJS_DISTILL_THREADS). */
  threads: number;
  /** Overrides the experiment's backend. */
  backend?: string;
}

/**
 * A `TrialSpec` as a worker receives it from the queue: checked before anything runs, since a
 * queue is shared and anyone who can reach Redis can add a job. Folder-safe ids, the run folder a
 * relative path that stays inside the shared folder, bounded sizes.
 */
export const trialSpecMessage = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._=,+-]{0,199}$/, 'a folder-safe name'),
  experiment: z.string().min(1).max(1_000_000),
  dir: z
    .string()
    .min(1)
    .max(500)
    .refine((d) => !isAbsolute(d) && !d.split(/[/\\]/).includes('..'), 'a path inside the shared folder'),
  threads: z.int().min(1).max(256),
  backend: z
    .string()
    .regex(/^[a-z]+$/)
    .optional(),
});

/** One model of a finished trial, mean over its seeds. */
export interface TrialModel {
  name: string;
  role: 'teacher' | 'student';
  method?: string;
  baseline?: boolean;
  params: number | null;
  /** Test accuracy (fraction). */
  accuracy: number;
  /** Validation accuracy after the last epoch (fraction); null for a teacher or without validation data. */
  valAccuracy: number | null;
  latencyMs: { batch1: number; batch64: number };
}

export interface TrialResult {
  id: string;
  /** Relative to the shared folder. */
  dir: string;
  /** Wall-clock seconds of the process that finished it (the last attempt). */
  seconds: number;
  /** Whether it continued an earlier attempt's checkpoints. */
  resumed: boolean;
  /** Who finished it: a BullMQ worker's `host:pid`, or `host local-<lane>`. */
  worker: string;
  models: TrialModel[];
}

/** What a running trial reports; executors pass it to the submitter's hooks. */
export type TrialEvent =
  | { type: 'start'; id: string; worker: string }
  | { type: 'log'; id: string; line: string }
  | { type: 'epoch'; id: string; model: string; epoch: number; epochs: number; valAccuracy?: number }
  | { type: 'end'; id: string; result: TrialResult; reused: boolean };

export interface ExecutorRunOptions {
  /** Who runs the trials, for their results: a BullMQ worker's `host:pid`, a local lane. */
  worker?: string;
  onEvent?: (event: TrialEvent) => void;
  /** Aborting stops the trials at the end of their current batch (their checkpoints stay) and rejects with `Interrupted`. */
  signal?: AbortSignal;
}

/** Runs trials, somewhere; results in the order of the specs. Trials whose folder holds a result are not run again. */
export interface Executor {
  /** `local` or `bullmq`, and where. */
  readonly describe: string;
  /** The shared folder (absolute) every trial's `dir` is relative to. */
  readonly shared: string;
  run(specs: readonly TrialSpec[], options?: ExecutorRunOptions): Promise<TrialResult[]>;
  close(): Promise<void>;
}
