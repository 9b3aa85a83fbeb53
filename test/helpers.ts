import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import type * as tf from '@tensorflow/tfjs';
import { Dataset } from '../src/data/dataset.js';
import { UserError } from '../src/errors.js';

/** max |a − b| / max |b|: the relative error the backend tests compare against 1e-4. */
export function relativeError(a: tf.TypedArray, b: tf.TypedArray): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / Math.max(scale, 1e-12);
}

/** A seeded linear congruential generator of floats in [0, 1): test data without Math.random. */
export function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

/** Four blobs in 6-D (class c is `separation` high on feature c), seeded noise: learnable in a few epochs. */
export function blobs(size: number, seed: number, separation = 2): Dataset {
  const rand = lcg(seed);
  const features = new Float32Array(size * 6);
  const labels = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    labels[i] = i % 4;
    for (let d = 0; d < 6; d++) features[i * 6 + d] = (d % 4 === i % 4 ? separation : 0) + (rand() - 0.5);
  }
  return new Dataset({ features, labels, sampleShape: [6], numClasses: 4 });
}

/** Central finite differences of f at x. */
export const finiteDiff = (f: (x: number[]) => number, x: number[], h = 1e-5): number[] =>
  x.map((_, i) => {
    const [p, m] = [[...x], [...x]];
    p[i]! += h;
    m[i]! -= h;
    return (f(p) - f(m)) / (2 * h);
  });

/** |actual − expected| ≤ tol · max(1, |expected|). */
export function close(actual: number, expected: number, tol: number, what = ''): void {
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

export function closeAll(a: number[], e: number[], tol: number, what = ''): void {
  assert.equal(a.length, e.length);
  a.forEach((v, i) => close(v, e[i]!, tol, `${what}[${i}]`));
}

/** What a UserError's message must be: a string exactly, a RegExp matched, a list of strings each contained. */
export type ExpectedMessage = string | RegExp | readonly string[];

function userErrorWith(expected: ExpectedMessage): (e: unknown) => true {
  return (e) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${e instanceof Error ? e.stack : String(e)}`);
    assert.ok(!e.message.includes('\n'), `UserError message is not one line: ${JSON.stringify(e.message)}`);
    if (typeof expected === 'string') assert.equal(e.message, expected);
    else if (expected instanceof RegExp) assert.match(e.message, expected);
    else for (const part of expected) assert.ok(e.message.includes(part), `"${e.message}" lacks "${part}"`);
    return true;
  };
}

/**
 * Asserts that `fn` throws (or that `promise` rejects with) a one-line UserError whose message
 * is `expected` (see ExpectedMessage). Await it when given a promise.
 */
export function assertUserError(fn: () => unknown, expected: ExpectedMessage): void;
export function assertUserError(promise: Promise<unknown>, expected: ExpectedMessage): Promise<void>;
export function assertUserError(
  what: (() => unknown) | Promise<unknown>,
  expected: ExpectedMessage,
): void | Promise<void> {
  if (typeof what === 'function') assert.throws(what, userErrorWith(expected));
  else return assert.rejects(what, userErrorWith(expected));
}

/** DISTILL_REQUIRE_NATIVE=1 (CI): a native addon that is missing or fails to load is a test failure, not a skip. */
export const REQUIRE_NATIVE = process.env.DISTILL_REQUIRE_NATIVE === '1';

/**
 * `test` for tests that need the native backend; `unavailable` is why it cannot be used here
 * (false: it can). Unavailable, the test is skipped with that reason, or under
 * DISTILL_REQUIRE_NATIVE=1 fails with it in one line.
 */
export function nativeTest(unavailable: string | false): (name: string, fn: () => void | Promise<void>) => void {
  return (name, fn) => {
    if (unavailable === false) void test(name, fn);
    else if (REQUIRE_NATIVE)
      void test(name, () => {
        throw new Error(`DISTILL_REQUIRE_NATIVE=1 but the native backend is unavailable: ${unavailable}`);
      });
    else void test(name, { skip: unavailable }, fn);
  };
}

/**
 * `--set` overrides that run an example on a small slice: one seed, 2 epochs on 960 Fashion-MNIST
 * rows (10 % for validation), batch 32, latency timed once. Enough for every model to beat chance.
 */
export const SMALL_SLICE: readonly string[] = [
  'seeds=[1]',
  'epochs=2',
  'batchSize=32',
  'evaluation.latency.warmup=0',
  'evaluation.latency.runs=1',
  'data.kwargs.subset=960',
  'data.kwargs.validationFraction=0.1',
];

/** Overrides for a `train` teacher node at `path` (e.g. `teacher.kwargs`): 2 epochs, width 0.25, kept in `cache`. */
export function smallTeacher(path: string, cache: string): string[] {
  return [`${path}.epochs=2`, `${path}.cache=${cache}`, `${path}.model.kwargs.width=0.25`];
}

/** The real `distill` CLI in a child process, asynchronously (several can run at once). */
export function distillCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** A free TCP port on 127.0.0.1 (asked of the OS, then released). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * A real `redis-server` (Debian's package) on 127.0.0.1 at `port` (default: a free one), without
 * persistence; resolves once it accepts connections. Fails, not skips, when redis-server is missing.
 */
export async function startRedis(port?: number): Promise<RedisServer> {
  const p = port ?? (await freePort());
  const child = spawn(
    'redis-server',
    ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.once('error', (e) =>
      reject(new Error(`cannot start redis-server (apt-get install redis-server): ${e.message}`)),
    );
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('Ready to accept connections')) resolve();
    });
  });
  child.removeAllListeners('exit');
  return {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}

/** Debian's chromium, as the browser tests drive it (playwright-core): headless, no network of its own. */
export const CHROMIUM = '/usr/bin/chromium';
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
