/**
 * The `bullmq` executor: trials are jobs of a BullMQ queue on Redis; `distill worker` processes
 * (`startWorker`) on any number of machines take them, each trial in a child process of its own
 * (`spawn.ts`), so a worker's event loop stays free to renew its job's lock however long the
 * trial computes. Checkpoints and results live in the shared folder, which every machine mounts
 * (each passes its own path as `--shared`).
 *
 * - A worker that dies (killed, machine lost) stops renewing its lock; after `lockSeconds` another
 *   worker finds the job stalled, takes it and resumes the trial from its last checkpoint.
 * - A trial that fails on the user's input (a `UserError`) is not retried; one whose process
 *   crashed is retried (3 attempts in all).
 * - The submitter polls the jobs: progress (per-epoch) and log lines of every trial reach its
 *   terminal. Lost Redis → one clear error; the finished trials' results stay in the shared
 *   folder, and resuming the sweep or search submits only the rest.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { errorLine, UserError } from '../errors.js';
import { Interrupted } from '../train/fit.js';
import { checkSpec, readTrialResult } from './run-trial.js';
import { spawnTrial } from './spawn.js';
import {
  type Executor,
  type ExecutorRunOptions,
  type TrialEvent,
  type TrialResult,
  type TrialSpec,
  trialSpecMessage,
} from './types.js';

export const DEFAULT_QUEUE = 'distill-trials';
const ATTEMPTS = 3;

interface JobData {
  spec: TrialSpec;
}
/** What a worker reports as the job's progress: who runs it, and its last epoch. */
type JobProgress = { worker: string; epoch?: Extract<TrialEvent, { type: 'epoch' }> };

function checkUrl(url: string): void {
  if (!/^rediss?:\/\/[^/\s]+/.test(url))
    throw new UserError(`--redis ${url} is not a Redis URL; write e.g. --redis redis://127.0.0.1:6379`);
}

/** Connects a lazily connecting client; an unreachable server is one line naming the URL and the fix. */
async function connect(connection: Redis, url: string): Promise<void> {
  try {
    await connection.connect();
  } catch (e) {
    throw new UserError(
      `cannot reach Redis at ${url} (${errorLine(e)}); start it (redis-server --port PORT) or fix --redis`,
    );
  }
}

/** One job per trial folder: the same trial submitted twice (a resumed sweep) is one job. */
export function jobIdOf(spec: TrialSpec): string {
  return `trial-${createHash('sha1').update(spec.dir).digest('hex').slice(0, 20)}`;
}

export interface BullmqExecutorOptions {
  /** `redis://host:port`. */
  redis: string;
  /** The shared folder, as this machine sees it. */
  shared: string;
  queue?: string;
  /** Seconds between polls of the jobs. Default 0.5. */
  pollSeconds?: number;
}

export function bullmqExecutor(o: BullmqExecutorOptions): Executor {
  checkUrl(o.redis);
  const shared = resolve(o.shared);
  const name = o.queue ?? DEFAULT_QUEUE;
  // The submitter fails fast when Redis goes away (a few reconnection attempts, then errors), unlike a worker.
  const connection = new Redis(o.redis, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    lazyConnect: true,
    retryStrategy: (times) => (times > 5 ? null : 200 * times),
  });
  connection.on('error', () => {});
  let queue: Queue | undefined;
  const lost = (e: unknown) =>
    new UserError(
      `lost the connection to Redis at ${o.redis} (${errorLine(e)}); finished trials are kept in ${shared} — start Redis (and the workers) again and resume`,
    );
  const open = async () => {
    if (queue) return queue;
    await connect(connection, o.redis);
    queue = new Queue(name, { connection });
    return queue;
  };
  return {
    describe: `bullmq queue \`${name}\` at ${o.redis}`,
    shared,
    async run(specs: readonly TrialSpec[], options: ExecutorRunOptions = {}): Promise<TrialResult[]> {
      specs.forEach(checkSpec);
      const q = await open();
      const results: TrialResult[] = new Array(specs.length);
      type Pending = { i: number; id: string; logs: number; started: boolean; epoch?: string };
      const pending: Pending[] = [];
      try {
        for (const [i, spec] of specs.entries()) {
          const earlier = readTrialResult(shared, spec.dir);
          if (earlier) {
            results[i] = earlier;
            options.onEvent?.({ type: 'end', id: spec.id, result: earlier, reused: true });
            continue;
          }
          const id = jobIdOf(spec);
          const old = await Job.fromId(q, id);
          // A finished job without its trial.json (the folder was removed): run it again.
          if (old && ['completed', 'failed'].includes(await old.getState())) await old.remove();
          await q.add('trial', { spec } satisfies JobData, {
            jobId: id,
            attempts: ATTEMPTS,
            backoff: { type: 'fixed', delay: 1000 },
          });
          pending.push({ i, id, logs: 0, started: false });
        }
        const poll = (o.pollSeconds ?? 0.5) * 1000;
        while (pending.length > 0) {
          if (options.signal?.aborted) {
            for (const p of pending) await (await Job.fromId(q, p.id))?.remove().catch(() => {});
            throw new Interrupted(
              'stopped submitting; trials already running finish on their workers (their results are kept), the others were removed from the queue — resume to run them',
            );
          }
          await new Promise((done) => setTimeout(done, poll));
          for (const p of [...pending]) {
            const spec = specs[p.i]!;
            const job = await Job.fromId<JobData, TrialResult>(q, p.id);
            if (!job)
              throw new UserError(`trial ${spec.id}'s job disappeared from the queue; resume to submit it again`);
            const progress = job.progress as JobProgress | number;
            if (typeof progress === 'object' && progress !== null) {
              if (!p.started) {
                p.started = true;
                options.onEvent?.({ type: 'start', id: spec.id, worker: progress.worker });
              }
              const epoch = progress.epoch && JSON.stringify(progress.epoch);
              if (epoch && epoch !== p.epoch) {
                p.epoch = epoch;
                options.onEvent?.(progress.epoch!);
              }
            }
            const { logs, count } = await q.getJobLogs(p.id, p.logs, -1);
            p.logs = count;
            for (const line of logs) options.onEvent?.({ type: 'log', id: spec.id, line });
            const state = await job.getState();
            if (state === 'completed') {
              // `job` was read before it completed (its returnvalue is still null): read it again,
              // or the trial's own trial.json; neither there yet, look again at the next poll
              const result =
                (await Job.fromId<JobData, TrialResult>(q, p.id))?.returnvalue ?? readTrialResult(shared, spec.dir);
              if (!result) continue;
              results[p.i] = result;
              pending.splice(pending.indexOf(p), 1);
              options.onEvent?.({ type: 'end', id: spec.id, result, reused: false });
            } else if (state === 'failed') {
              throw new UserError(`trial ${spec.id} failed on its worker: ${job.failedReason}`);
            }
          }
        }
        return results;
      } catch (e) {
        if (e instanceof UserError) throw e;
        throw lost(e);
      }
    },
    async close() {
      await queue?.close().catch(() => {});
      connection.disconnect();
    },
  };
}

export interface StartWorkerOptions {
  redis: string;
  shared: string;
  queue?: string;
  /** Trials at once on this worker. Default 1. */
  concurrency?: number;
  /** A dead worker's trial is taken over after about this long. Default 30. */
  lockSeconds?: number;
  log?: (line: string) => void;
}

export interface RunningWorker {
  /** Stops taking trials; the running ones finish first. */
  close(): Promise<void>;
  /** Resolves when closed. */
  closed: Promise<void>;
}

/** `distill worker`: takes trials from the queue until closed. */
export async function startWorker(o: StartWorkerOptions): Promise<RunningWorker> {
  checkUrl(o.redis);
  const shared = resolve(o.shared);
  const concurrency = o.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new UserError(`--concurrency must be a whole number >= 1 (got ${concurrency})`);
  const lockMs = (o.lockSeconds ?? 30) * 1000;
  if (!(lockMs >= 1000)) throw new UserError(`--lock-seconds must be >= 1 (got ${o.lockSeconds})`);
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const me = `${hostname()}:${process.pid}`;
  // A worker waits out Redis outages (retries forever); its trials keep running meanwhile.
  const connection = new Redis(o.redis, { maxRetriesPerRequest: null, lazyConnect: true });
  let reported = false;
  connection.on('error', (e) => {
    if (!reported) log(`worker ${me}: Redis at ${o.redis}: ${errorLine(e)} (retrying)`);
    reported = true;
  });
  connection.on('ready', () => {
    reported = false;
  });
  await connect(connection, o.redis);
  const worker = new Worker<JobData, TrialResult>(
    o.queue ?? DEFAULT_QUEUE,
    async (job) => {
      const message = trialSpecMessage.safeParse((job.data as Partial<JobData> | undefined)?.spec);
      if (!message.success) {
        const why = message.error.issues.map((i) => `${i.path.join('.') || 'spec'}: ${i.message}`).join('; ');
        log(`worker ${me}: job ${job.id} refused: not a trial (${why.slice(0, 200)})`);
        throw new UnrecoverableError(`not a trial: ${why.slice(0, 200)}`);
      }
      const spec = message.data;
      log(`worker ${me}: trial ${spec.id} (attempt ${job.attemptsMade + 1})`);
      await job.updateProgress({ worker: me } satisfies JobProgress);
      try {
        const result = await spawnTrial(spec, shared, {
          worker: me,
          onEvent: (e) => {
            if (e.type === 'log') void job.log(e.line).catch(() => {});
            else if (e.type === 'epoch')
              void job.updateProgress({ worker: me, epoch: e } satisfies JobProgress).catch(() => {});
          },
        });
        log(
          `worker ${me}: trial ${spec.id} done in ${result.seconds.toFixed(0)} s${result.resumed ? ' (resumed)' : ''}`,
        );
        return result;
      } catch (e) {
        log(`worker ${me}: trial ${spec.id}: ${(e as Error).message}`);
        // A mistake in the trial's input fails the same way anywhere: no retry. A crash is retried.
        if (e instanceof UserError && !(e instanceof Interrupted)) throw new UnrecoverableError((e as Error).message);
        throw e;
      }
    },
    {
      connection,
      concurrency,
      lockDuration: lockMs,
      stalledInterval: Math.max(500, lockMs / 2),
      maxStalledCount: ATTEMPTS - 1,
    },
  );
  worker.on('error', () => {});
  log(
    `worker ${me}: taking trials from \`${o.queue ?? DEFAULT_QUEUE}\` at ${o.redis} (concurrency ${concurrency}, shared ${shared})`,
  );
  let resolveClosed: () => void;
  const closed = new Promise<void>((r) => {
    resolveClosed = r;
  });
  return {
    closed,
    async close() {
      await worker.close();
      connection.disconnect();
      resolveClosed();
    },
  };
}
