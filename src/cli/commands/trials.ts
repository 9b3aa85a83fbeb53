import cliProgress from 'cli-progress';
import { UserError } from '../../errors.js';
import { bullmqExecutor } from '../../trials/bullmq.js';
import { localExecutor } from '../../trials/local.js';
import type { Executor, TrialEvent } from '../../trials/types.js';

export interface ExecutorCliOptions {
  executor?: string;
  workers?: number;
  threads?: number;
  redis?: string;
  shared?: string;
  queue?: string;
}

/** The executor of `--executor local|bullmq` and its options; `shared` defaults to the sweep's or search's folder. */
export function executorFromCli(o: ExecutorCliOptions, defaultShared: string): Executor {
  const kind = o.executor ?? (o.redis ? 'bullmq' : 'local');
  const shared = o.shared ?? defaultShared;
  if (kind === 'local') {
    if (o.redis !== undefined)
      throw new UserError('--redis is for --executor bullmq; drop it, or use --executor bullmq');
    return localExecutor({ shared, workers: o.workers, threads: o.threads });
  }
  if (kind === 'bullmq') {
    if (o.redis === undefined)
      throw new UserError('--executor bullmq needs --redis redis://HOST:PORT (and workers: distill worker --redis …)');
    if (o.workers !== undefined)
      throw new UserError('--workers is for --executor local; with bullmq, start one `distill worker` per trial slot');
    return bullmqExecutor({ redis: o.redis, shared, queue: o.queue });
  }
  throw new UserError(`unknown executor \`${kind}\`; use local or bullmq`);
}

/**
 * Shows trial events: on a terminal one bar per running trial (epochs of its current phase),
 * otherwise one line per event worth a line (start, epoch, end; logs with `verbose`).
 */
export function trialDisplay(verbose = false): { onEvent: (e: TrialEvent) => void; stop: () => void } {
  if (!process.stderr.isTTY) {
    return {
      onEvent: (e) => {
        const line =
          e.type === 'start'
            ? `trial ${e.id}: started on ${e.worker}`
            : e.type === 'epoch'
              ? `trial ${e.id}: ${e.model} epoch ${e.epoch}/${e.epochs}${e.valAccuracy === undefined ? '' : ` val_acc ${(100 * e.valAccuracy).toFixed(2)}%`}`
              : e.type === 'end'
                ? `trial ${e.id}: ${e.reused ? 'finished earlier' : `done in ${e.result.seconds.toFixed(0)} s on ${e.result.worker}${e.result.resumed ? ' (resumed)' : ''}`}`
                : verbose
                  ? `trial ${e.id}: ${e.line}`
                  : undefined;
        if (line) process.stderr.write(`${line}\n`);
      },
      stop: () => {},
    };
  }
  const multi = new cliProgress.MultiBar(
    {
      format: '{id} [{bar}] {value}/{total} {model} {val}',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    onEvent: (e) => {
      if (e.type === 'start') bars.set(e.id, multi.create(1, 0, { id: e.id, model: `on ${e.worker}`, val: '' }));
      else if (e.type === 'epoch') {
        const bar = bars.get(e.id) ?? multi.create(e.epochs, 0, { id: e.id, model: '', val: '' });
        bars.set(e.id, bar);
        bar.setTotal(e.epochs);
        bar.update(e.epoch, {
          model: e.model,
          val: e.valAccuracy === undefined ? '' : `val ${(100 * e.valAccuracy).toFixed(2)}%`,
        });
      } else if (e.type === 'end') {
        const bar = bars.get(e.id);
        if (bar) {
          bar.update(bar.getTotal(), { model: `done in ${e.result.seconds.toFixed(0)} s`, val: '' });
          bar.stop();
        } else multi.log(`trial ${e.id}: finished earlier\n`);
      } else if (verbose) multi.log(`trial ${e.id}: ${e.line}\n`);
    },
    stop: () => multi.stop(),
  };
}

/** Ctrl-C / SIGTERM abort `controller` once (saying `what` stops); a second press quits at once. */
export function abortOnSignals(
  controller: AbortController,
  what = 'stopping the trials at the end of their batch',
): () => void {
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) process.exit(130);
    controller.abort();
    process.stderr.write(`\ndistill: ${what} (press Ctrl-C again to quit at once)…\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/**
 * Runs `fn` with the executor of the CLI options, the trial display and Ctrl-C wired to an abort
 * signal; stops the display, the signal handlers and the executor afterwards, whatever happens.
 */
export async function withTrials<T>(
  o: ExecutorCliOptions & { verbose?: boolean },
  defaultShared: string,
  fn: (ctx: {
    executor: Executor;
    onEvent: (e: TrialEvent) => void;
    signal: AbortSignal;
    done: () => void;
  }) => Promise<T>,
): Promise<T> {
  const executor = executorFromCli(o, defaultShared);
  const controller = new AbortController();
  const release = abortOnSignals(controller);
  const display = trialDisplay(o.verbose);
  try {
    return await fn({ executor, onEvent: display.onEvent, signal: controller.signal, done: display.stop });
  } finally {
    display.stop();
    release();
    await executor.close();
  }
}
