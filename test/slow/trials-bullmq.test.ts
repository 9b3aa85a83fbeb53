/**
 * The bullmq executor against a real redis-server (started here on a free port) and real
 * `distill worker` processes: the executor contract (same results as the local executor), a
 * worker killed mid-trial, and Redis lost mid-sweep.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runSweep } from '../../src/search/sweep.js';
import { bullmqExecutor } from '../../src/trials/bullmq.js';
import { localExecutor } from '../../src/trials/local.js';
import type { TrialResult } from '../../src/trials/types.js';
import { assertUserError, SMALL_SLICE, smallTeacher, startRedis, type RedisServer } from '../helpers.js';

const tmp = (name: string) => mkdtempSync(join(tmpdir(), `${name}-`));
const cache = tmp('bullmq-teacher');
const GRID = ['knowledge[0].kwargs.temperature=[1,4]', 'knowledge[0].kwargs.alpha=[0.5,0.9]'];
// Long enough to be killed mid-trial: 4 epochs of 3,000 rows, a label-only baseline and kd.
const SLOW = [...SMALL_SLICE, ...smallTeacher('teacher.kwargs', cache), 'data.kwargs.subset=3000', 'epochs=4'];
const FAST = [...SMALL_SLICE, ...smallTeacher('teacher.kwargs', cache), 'baseline=false'];

interface WorkerProcess {
  child: ChildProcess;
  log: string;
}
const workers: WorkerProcess[] = [];
const servers: RedisServer[] = [];
after(async () => {
  for (const w of workers) w.child.kill('SIGKILL');
  for (const s of servers) await s.stop();
});

function startWorker(redis: string, shared: string): WorkerProcess {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'worker', '--redis', redis, '--shared', shared, '--lock-seconds', '2'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const w: WorkerProcess = { child, log: '' };
  child.stderr!.on('data', (d) => {
    w.log += d;
  });
  child.stdout!.on('data', () => {});
  workers.push(w);
  return w;
}

const accuracies = (results: TrialResult[]) =>
  results.map((r) => ({ id: r.id, models: r.models.map((m) => [m.name, m.accuracy, m.valAccuracy]) }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('bullmq: 2 workers run a 4-trial sweep; one SIGKILLed mid-trial, its trial resumes on the other; results equal the local executor', async () => {
  const redis = await startRedis();
  servers.push(redis);
  const localOut = join(tmp('sweep-local'), 's');
  const local = await runSweep({
    file: 'examples/kd.yaml',
    set: SLOW,
    grid: GRID,
    out: localOut,
    executor: localExecutor({ shared: localOut, workers: 2 }),
    log: () => {},
  });

  const shared = tmp('shared');
  const [a, b] = [startWorker(redis.url, shared), startWorker(redis.url, shared)];
  const executor = bullmqExecutor({ redis: redis.url, shared, pollSeconds: 0.2 });
  const sweep = runSweep({
    file: 'examples/kd.yaml',
    set: SLOW,
    grid: GRID,
    out: join(shared, 's'),
    executor,
    log: () => {},
  });
  // Kill the worker of the first trial that has a checkpoint but no result yet.
  let killed: { worker: WorkerProcess; trial: string } | undefined;
  const trials = join(shared, 's', 'trials');
  while (!killed) {
    await sleep(50);
    for (const id of existsSync(trials) ? readdirSync(trials) : []) {
      const ckpts = join(trials, id, 'seed-1', 'checkpoints');
      if (!existsSync(ckpts) || readdirSync(ckpts).length === 0 || existsSync(join(trials, id, 'trial.json'))) continue;
      const owner = [a, b].find((w) => w.log.includes(`trial ${id} (attempt 1)`));
      if (!owner) continue;
      owner.child.kill('SIGKILL');
      killed = { worker: owner, trial: id };
      break;
    }
  }
  const result = await sweep;
  await executor.close();
  const survivor = killed.worker === a ? b : a;
  const taken = result.results.find((r) => r.id === killed!.trial)!;
  assert.equal(taken.resumed, true, 'the killed trial continued from its checkpoint');
  assert.ok(taken.worker.endsWith(`:${survivor.child.pid}`), `finished by the surviving worker: ${taken.worker}`);
  assert.match(survivor.log, new RegExp(`trial ${killed.trial} \\(attempt \\d\\)`));
  assert.deepEqual(accuracies(result.results), accuracies(local.results), 'same results as the local executor');
  // Trials far longer than the 2 s lock were never taken for stalled: each but the killed one ran once.
  const starts = (id: string) => `${a.log}${b.log}`.split(`trial ${id} (attempt`).length - 1;
  for (const r of result.results) if (r.id !== killed.trial) assert.equal(starts(r.id), 1, `${r.id} ran once`);
  assert.ok(result.results.every((r) => r.seconds > 2 || r.id === killed.trial));
  survivor.child.kill('SIGTERM');
});

test('bullmq: Redis lost mid-sweep is one clear error; resumed once Redis is back, finished trials are kept', async () => {
  const redis = await startRedis();
  const shared = tmp('shared-lost');
  const worker = startWorker(redis.url, shared);
  const out = join(shared, 's');
  const executor = bullmqExecutor({ redis: redis.url, shared, pollSeconds: 0.2 });
  const sweep = runSweep({ file: 'examples/kd.yaml', set: FAST, grid: GRID, out, executor, log: () => {} });
  const first = join(out, 'trials', 't01-temperature=1,alpha=0.5', 'trial.json');
  while (!existsSync(first)) await sleep(50);
  await redis.stop();
  await assertUserError(
    sweep,
    /^lost the connection to Redis at redis:\/\/127\.0\.0\.1:\d+ \(.+\); finished trials are kept in .+ — start Redis \(and the workers\) again and resume$/,
  );
  await executor.close();

  const back = await startRedis(redis.port);
  servers.push(back);
  const again = bullmqExecutor({ redis: back.url, shared, pollSeconds: 0.2 });
  const reused: string[] = [];
  const result = await runSweep({
    resume: out,
    executor: again,
    log: () => {},
    onEvent: (e) => {
      if (e.type === 'end' && e.reused) reused.push(e.id);
    },
  });
  await again.close();
  assert.equal(result.results.length, 4);
  assert.ok(reused.includes('t01-temperature=1,alpha=0.5'), 'the trial finished before the outage is not run again');
  assert.ok(result.results.every((r) => r.models.some((m) => m.role === 'student' && m.accuracy > 0.2)));
  worker.child.kill('SIGTERM');
  await assertUserError(
    bullmqExecutor({ redis: 'redis://127.0.0.1:1', shared }).run([]),
    /^cannot reach Redis at redis:\/\/127\.0\.0\.1:1 \(.+\); start it/,
  );
  assertUserError(
    () => bullmqExecutor({ redis: 'localhost:6379', shared }),
    /is not a Redis URL; write e\.g\. --redis redis:\/\//,
  );
});

test('bullmq: a worker refuses jobs that are not trials (a path out of the shared folder, junk) without running anything', async () => {
  const { Queue, QueueEvents } = await import('bullmq');
  const redis = await startRedis();
  servers.push(redis);
  const shared = tmp('shared-hostile');
  const worker = startWorker(redis.url, shared);
  const connection = { host: '127.0.0.1', port: redis.port };
  const queue = new Queue('distill-trials', { connection });
  const events = new QueueEvents('distill-trials', { connection });
  await events.waitUntilReady();
  const outside = tmp('outside');
  const hostile = [
    { spec: { id: 'escape', experiment: 'name: x', dir: `../../${outside}/pwned`, threads: 1 } },
    { spec: { id: 'abs', experiment: 'name: x', dir: join(outside, 'pwned'), threads: 1 } },
    { spec: { id: '../id', experiment: 'name: x', dir: 'ok', threads: 1 } },
    { spec: { id: 'extra', experiment: 'name: x', dir: 'ok', threads: 1, command: 'rm -rf /' } },
    { nonsense: true },
  ];
  for (const [i, data] of hostile.entries()) {
    const job = await queue.add('trial', data, { jobId: `hostile-${i}`, attempts: 3 });
    await assert.rejects(job.waitUntilFinished(events, 30_000), /not a trial/);
  }
  assert.deepEqual(readdirSync(outside), [], 'nothing written outside the shared folder');
  assert.deepEqual(readdirSync(shared), [], 'nothing run');
  assert.match(worker.log, /job hostile-0 refused: not a trial \(dir: a path inside the shared folder\)/);
  await Promise.all([queue.close(), events.close()]);
  worker.child.kill('SIGTERM');
});
