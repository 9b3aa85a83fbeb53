/**
 * One trial, in this process: its experiment run (or resumed) in its folder under the shared
 * folder, then `trial.json` written (atomically, last). Executors call it in a child process
 * (`child.ts`), never in their own: a trial is CPU-bound for minutes and the executor's event
 * loop must stay free (progress, Ctrl-C, BullMQ's lock renewal).
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import type { RunReport } from '../eval/types.js';
import { runExperiment } from '../experiment/run.js';
import type { RunSummary } from '../experiment/summary.js';
import type { EpochInfo } from '../train/fit.js';
import { writeFileAtomic } from '../io/atomic.js';
import { SHARED, type TrialEvent, type TrialModel, type TrialResult, type TrialSpec } from './types.js';

export const TRIAL_FILE = 'trial.json';

const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._=,+-]*$/;

/** Refuses ids and folders that could leave the shared folder or collide. */
export function checkSpec(spec: TrialSpec): void {
  if (!SAFE_ID.test(spec.id)) throw new UserError(`trial id \`${spec.id}\` must be letters, digits and . _ = , + -`);
  if (spec.dir.startsWith('/') || spec.dir.split('/').some((part) => part === '..' || part === ''))
    throw new UserError(
      `trial ${spec.id}: its folder \`${spec.dir}\` must be a relative path inside the shared folder`,
    );
  if (!Number.isInteger(spec.threads) || spec.threads < 1)
    throw new UserError(`trial ${spec.id}: threads must be a whole number >= 1 (got ${spec.threads})`);
}

/** The result of a trial that has finished (its `trial.json`), else undefined. */
export function readTrialResult(shared: string, dir: string): TrialResult | undefined {
  const file = join(resolve(shared), dir, TRIAL_FILE);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TrialResult;
  } catch {
    throw new UserError(`${file} is not valid JSON; delete it to run that trial again`);
  }
}

/** Each model of the run from its summary (means over seeds), with the validation accuracy after its last epoch. */
export function trialModels(summary: RunSummary, reports: readonly RunReport[]): TrialModel[] {
  return summary.models.map((m) => {
    const vals = reports.map((r) => r.models.find((x) => x.name === m.name)?.history?.at(-1)?.valAccuracy);
    return {
      name: m.name,
      role: m.role,
      ...(m.method !== undefined && { method: m.method }),
      ...(m.baseline && { baseline: true }),
      params: m.params,
      accuracy: m.accuracy.mean,
      // A teacher's history exists only in the run that trained it (not where it was loaded from a cache).
      valAccuracy:
        m.role === 'student' && vals.every((v): v is number => v !== undefined)
          ? vals.reduce((a, b) => a + b, 0) / vals.length
          : null,
      latencyMs: { batch1: m.latencyMs.batch1.mean, batch64: m.latencyMs.batch64.mean },
    };
  });
}

export interface RunTrialOptions {
  /** The shared folder, as this machine sees it. */
  shared: string;
  /** Who runs it, for the result (e.g. a BullMQ worker's `host:pid`). Default this process's `host:pid`. */
  worker?: string;
  onEvent?: (event: TrialEvent) => void;
  signal?: AbortSignal;
}

/** Runs (or resumes, or reads) one trial; see the module comment. */
export async function runTrial(spec: TrialSpec, o: RunTrialOptions): Promise<TrialResult> {
  checkSpec(spec);
  const shared = resolve(o.shared);
  const worker = o.worker ?? `${hostname()}:${process.pid}`;
  const done = readTrialResult(shared, spec.dir);
  if (done) return done;
  const dir = join(shared, spec.dir);
  const started = performance.now();
  const resumed = existsSync(join(dir, 'experiment.yaml'));
  const emit = o.onEvent ?? (() => {});
  const common = {
    backend: spec.backend,
    // Whoever gave this trial to this process (the local pool, a BullMQ job lock) made it the only one on it.
    takeOverLock: true,
    progress: 'quiet' as const,
    signal: o.signal,
    log: (line: string) => emit({ type: 'log', id: spec.id, line }),
    onEpoch: (e: EpochInfo) =>
      emit({
        type: 'epoch',
        id: spec.id,
        model: e.phase === e.model ? e.model : `${e.phase}/${e.model}`,
        epoch: e.record.epoch,
        epochs: e.epochs,
        ...(e.record.valAccuracy !== undefined && { valAccuracy: e.record.valAccuracy }),
      }),
  };
  const run = resumed
    ? await runExperiment({ ...common, resume: dir })
    : await runExperiment({
        ...common,
        file: `${spec.id}.yaml`,
        text: spec.experiment.replaceAll(SHARED, `${shared}/`),
        out: dir,
      });
  const result: TrialResult = {
    id: spec.id,
    dir: spec.dir,
    seconds: (performance.now() - started) / 1000,
    resumed,
    worker,
    models: trialModels(run.summary, run.reports),
  };
  await writeFileAtomic(join(dir, TRIAL_FILE), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}
