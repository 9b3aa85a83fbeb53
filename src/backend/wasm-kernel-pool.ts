/**
 * Runs our wasm kernels (wasm-kernels.ts) on several threads at once: worker threads that
 * instantiate the same module over the same shared memory (tfjs-backend-wasm's threaded build)
 * and wait on a control block in that memory. A call hands each worker one part (a kernel name
 * and its numeric arguments), runs the first part itself, and returns when every part is done,
 * synchronously, as a kernel must. Workers are unref'd: they never keep the process alive.
 */
import { Worker } from 'node:worker_threads';

/** One kernel call: the export's name and its arguments (pointers and sizes are numbers). */
export type KernelPart = { name: string; args: number[] };

const SLOT_BYTES = 256; // per worker: seq, done, name index, argument count, then up to 28 f64 arguments
const MAX_ARGS = 28;
const WAIT_MS = 30_000;

const WORKER = `
const { workerData } = require('node:worker_threads');
const { memory, module, block, names } = workerData;
const kernels = new WebAssembly.Instance(module, { env: { memory } }).exports;
let seen = 0;
for (;;) {
  const i32 = new Int32Array(memory.buffer, block, 4);
  Atomics.wait(i32, 0, seen);
  seen = Atomics.load(i32, 0);
  const args = Array.from(new Float64Array(memory.buffer, block + 16, i32[3]));
  let done = seen;
  try { kernels[names[i32[2]]](...args); } catch { done = -seen; }
  Atomics.store(i32, 1, done);
  Atomics.notify(i32, 1);
}
`;

export class KernelPool {
  private readonly workers: Worker[] = [];
  private readonly names: string[];
  private seq = 0;

  /** `control`: SLOT_BYTES × workers bytes of the shared memory, zeroed, 8-byte aligned (the caller's to keep). */
  constructor(
    private readonly memory: WebAssembly.Memory,
    module: WebAssembly.Module,
    private readonly kernels: Record<string, unknown>,
    workers: number,
    private readonly control: number,
  ) {
    this.names = WebAssembly.Module.exports(module).map((e) => e.name);
    for (let w = 0; w < workers; w++) {
      const worker = new Worker(WORKER, {
        eval: true,
        // not the parent's flags: --input-type=module or a loader would change how this code runs
        execArgv: [],
        workerData: { memory, module, block: control + w * SLOT_BYTES, names: this.names },
      });
      worker.unref();
      this.workers.push(worker);
    }
  }

  static controlBytes(workers: number): number {
    return workers * SLOT_BYTES;
  }

  /** The threads a call can use: the caller's and the workers'. */
  get threads(): number {
    return this.workers.length + 1;
  }

  /** Runs parts[0] here and parts[1..] on the workers (at most `threads` parts); returns when all are done. */
  run(parts: KernelPart[]): void {
    if (parts.length > this.threads) throw new Error(`${parts.length} parts for ${this.threads} threads`);
    const seq = ++this.seq;
    const buffer = this.memory.buffer;
    parts.slice(1).forEach((part, w) => {
      if (part.args.length > MAX_ARGS) throw new Error(`${part.name}: more than ${MAX_ARGS} arguments`);
      const block = this.control + w * SLOT_BYTES;
      const i32 = new Int32Array(buffer, block, 4);
      new Float64Array(buffer, block + 16, part.args.length).set(part.args);
      i32[2] = this.names.indexOf(part.name);
      i32[3] = part.args.length;
      Atomics.store(i32, 0, seq);
      Atomics.notify(i32, 0);
    });
    const first = parts[0];
    if (first) (this.kernels[first.name] as (...a: number[]) => void)(...first.args);
    for (let w = 0; w < parts.length - 1; w++) {
      const i32 = new Int32Array(buffer, this.control + w * SLOT_BYTES, 4);
      const deadline = Date.now() + WAIT_MS;
      for (let done = Atomics.load(i32, 1); done !== seq; done = Atomics.load(i32, 1)) {
        if (done === -seq) throw new Error(`wasm kernel ${parts[w + 1]!.name} failed on a worker thread`);
        if (Date.now() > deadline)
          throw new Error(`wasm kernel ${parts[w + 1]!.name}: no answer from its worker thread`);
        Atomics.wait(i32, 1, done, 100);
      }
    }
  }
}
