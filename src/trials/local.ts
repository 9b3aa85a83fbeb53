/**
 * The `local` executor (the default: nothing to install or start): a pool of `workers` child
 * processes on this machine, each running one trial at a time with `threads` native threads.
 * The first trial that fails stops the others at the end of their batch (checkpoints stay) and
 * its error is the run's.
 */
import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import { UserError } from '../errors.js';
import { checkSpec, readTrialResult } from './run-trial.js';
import { spawnTrial } from './spawn.js';
import type { Executor, ExecutorRunOptions, TrialResult, TrialSpec } from './types.js';

export interface LocalExecutorOptions {
  /** Trials at once. Default: cores ÷ threads per trial (at least 1). */
  workers?: number;
  /** Native threads per trial, for the default `workers`. Default 1. */
  threads?: number;
  shared: string;
}

/** Trials at once on this machine by default: one per `threads` cores. */
export function defaultWorkers(threads = 1): number {
  return Math.max(1, Math.floor(availableParallelism() / threads));
}

export function localExecutor(o: LocalExecutorOptions): Executor {
  const workers = o.workers ?? defaultWorkers(o.threads);
  if (!Number.isInteger(workers) || workers < 1)
    throw new UserError(`--workers must be a whole number >= 1 (got ${workers})`);
  const shared = resolve(o.shared);
  return {
    describe: `local, ${workers} worker${workers === 1 ? '' : 's'} on ${hostname()}`,
    shared,
    async run(specs: readonly TrialSpec[], options: ExecutorRunOptions = {}): Promise<TrialResult[]> {
      specs.forEach(checkSpec);
      const results: TrialResult[] = new Array(specs.length);
      const stop = new AbortController();
      const onOuterAbort = () => stop.abort();
      options.signal?.addEventListener('abort', onOuterAbort);
      let next = 0;
      let failure: unknown;
      const lane = async (_: unknown, laneIndex: number) => {
        const worker = `${hostname()} local-${laneIndex + 1}`;
        while (next < specs.length && failure === undefined && !stop.signal.aborted) {
          const i = next++;
          const spec = specs[i]!;
          const earlier = readTrialResult(shared, spec.dir);
          if (earlier) {
            results[i] = earlier;
            options.onEvent?.({ type: 'end', id: spec.id, result: earlier, reused: true });
            continue;
          }
          options.onEvent?.({ type: 'start', id: spec.id, worker });
          try {
            results[i] = await spawnTrial(spec, shared, { onEvent: options.onEvent, signal: stop.signal, worker });
            options.onEvent?.({ type: 'end', id: spec.id, result: results[i]!, reused: false });
          } catch (e) {
            if (failure === undefined) failure = e;
            stop.abort();
          }
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.min(workers, specs.length) }, lane));
      } finally {
        options.signal?.removeEventListener('abort', onOuterAbort);
      }
      if (failure !== undefined) throw failure;
      return results;
    },
    close: async () => {},
  };
}
