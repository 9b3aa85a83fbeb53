/**
 * tfjs-backend-wasm's multi-threaded SIMD build, in Node. The package ships it but cannot start
 * it there: its pthread workers are created from blob: URLs (Node's worker_threads takes file
 * paths only), the worker's copy of the module factory misses the bundle's `require$$N` and
 * `commonjsGlobal` bindings, XNNPACK caps its threads at half the logical cores (one on a
 * 2-core machine), and running pthreads keep the process alive. `prepareWasmThreads` bridges
 * each for the duration of `tf.setBackend('wasm')`: the blobs become files in a temp folder
 * (removed at exit), the bindings are prepended, `os.cpus()` reports 2 × `threads` while the
 * module initializes, workers start without the parent's Node flags (`--import tsx`,
 * `--input-type` break a plain worker file), and a worker is unref'd once its pthread runs. Checked against
 * tfjs-backend-wasm 4.22 (the bundle internals it names); any other version runs single-threaded.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';

const SUPPORTED = /^4\.22\./;
const PRELUDE =
  "var require$$0 = require('fs'), require$$1 = require('path'), require$$3 = require('perf_hooks'), require$$4 = require('os'), commonjsGlobal = globalThis;\n";
const FILE = Symbol('file');

let dir: string | undefined;
let bridged = false;

function tempDir(): string {
  if (!dir) {
    dir = mkdtempSync(join(os.tmpdir(), 'tfjs-distill-wasm-'));
    const made = dir;
    process.on('exit', () => rmSync(made, { recursive: true, force: true }));
  }
  return dir;
}

/** The worker bridge: our file-backed blobs travel as paths; a running pthread does not hold the process. */
function bridgeWorkers(): void {
  if (bridged) return;
  bridged = true;
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (message: unknown, transfer?: readonly never[]) {
    const m = message as { cmd?: string; urlOrBlob?: { [FILE]?: string } } | undefined;
    const file = m?.urlOrBlob?.[FILE];
    const sent = post.call(this, file ? { ...m, urlOrBlob: file } : message, transfer);
    if (m?.cmd === 'run') this.unref();
    return sent;
  };
}

/**
 * Runs `init` (which calls `tf.setBackend('wasm')`) with the bridges in place, asking for
 * `threads` XNNPACK threads; returns init's result. With threads ≤ 1, an unknown package version,
 * or no SharedArrayBuffer, it only runs `init`.
 */
export async function withWasmThreads<T>(threads: number, version: string, init: () => Promise<T>): Promise<T> {
  if (threads <= 1 || !SUPPORTED.test(version) || typeof SharedArrayBuffer === 'undefined') return init();
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  bridgeWorkers();
  const folder = tempDir();
  let n = 0;
  class FileBlob {
    [FILE]: string;
    constructor(parts: string[]) {
      const text = parts.join('');
      this[FILE] = join(folder, `wasm-${n++}.cjs`);
      writeFileSync(this[FILE], (text.startsWith('var WasmBackendModule') ? PRELUDE : '') + text);
    }
  }
  // emscripten reads `require('worker_threads').Worker` as the module initializes
  const workerThreads = createRequire(import.meta.url)('node:worker_threads') as { Worker: typeof Worker };
  const saved = { blob: globalThis.Blob, url: URL.createObjectURL, cpus: os.cpus, worker: workerThreads.Worker };
  workerThreads.Worker = class extends saved.worker {
    constructor(file: string | URL, options: ConstructorParameters<typeof Worker>[1] = {}) {
      super(file, { ...options, execArgv: [] });
    }
  };
  const cpu = os.cpus()[0]!;
  globalThis.Blob = FileBlob as unknown as typeof Blob;
  URL.createObjectURL = ((b: { [FILE]?: string }) => b[FILE] ?? saved.url(b as Blob)) as typeof URL.createObjectURL;
  os.cpus = () => Array.from({ length: 2 * threads }, () => cpu);
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  try {
    return await init();
  } finally {
    globalThis.Blob = saved.blob;
    URL.createObjectURL = saved.url;
    os.cpus = saved.cpus;
    workerThreads.Worker = saved.worker;
  }
}

/** Threads of the wasm backend: TFJS_DISTILL_THREADS (as the native one), else every core. */
export function wasmThreadCount(): number {
  const threads = Number(process.env.TFJS_DISTILL_THREADS);
  return Number.isInteger(threads) && threads > 0 ? threads : os.availableParallelism();
}

/** XNNPACK threads of the initialized wasm backend. */
export async function wasmThreads(): Promise<number> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  return wasm.getThreadsCount();
}
