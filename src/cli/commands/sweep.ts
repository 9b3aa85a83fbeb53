import { resolve } from 'node:path';
import { runSweep } from '../../search/sweep.js';
import { startWorker } from '../../trials/bullmq.js';
import { type ExecutorCliOptions, withTrials } from './trials.js';

export interface SweepCommandOptions extends ExecutorCliOptions {
  set: string[];
  grid: string[];
  random?: number;
  randomSeed?: number;
  out?: string;
  resume?: string;
  backend?: string;
  verbose?: boolean;
}

/** `distill sweep`: see `src/search/sweep.ts`; prints the compare table. */
export async function sweepCommand(file: string | undefined, o: SweepCommandOptions): Promise<void> {
  const dir = resolve(o.resume ?? o.out ?? 'runs/sweep');
  await withTrials(o, dir, async ({ executor, onEvent, signal, done }) => {
    const r = await runSweep({
      file,
      set: o.set,
      grid: o.grid,
      random: o.random,
      randomSeed: o.randomSeed,
      out: o.resume === undefined ? dir : undefined,
      resume: o.resume,
      threads: o.threads,
      backend: o.backend,
      executor,
      onEvent,
      signal,
    });
    done();
    process.stdout.write(r.compare.markdown);
    process.stderr.write(`wrote ${r.compare.files.markdown} and ${r.dir}/sweep.json\n`);
  });
}

export interface WorkerCommandOptions {
  redis: string;
  shared: string;
  queue?: string;
  concurrency?: number;
  lockSeconds?: number;
}

/** `distill worker`: takes trials until Ctrl-C or SIGTERM. */
export async function workerCommand(o: WorkerCommandOptions): Promise<void> {
  const worker = await startWorker(o);
  const stop = () => {
    process.stderr.write('distill worker: closing (running trials keep their checkpoints)…\n');
    void worker.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await worker.closed;
}
