/**
 * Hostile and corrupt files: random truncations, bit flips and splices of valid files, given to
 * every reader a user points at a file. Each case must end in a correct result or a one-line
 * `UserError` — never another exception (a stack), a hang (each case is bounded: the readers run
 * in a child process, killed when a case takes longer than `CASE_MS`) or a crash.
 * `DISTILL_FUZZ_RUNS` sets the cases per target (`npm run stress` runs many more).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { writeIdx } from '../src/data/idx.js';
import { Rng } from '../src/data/rng.js';
import { fileSystem, registerFileRouters } from '../src/io/file-handler.js';
import { exportOnnx } from '../src/io/onnx-export.js';
import { buildModel } from '../src/models/zoo.js';
import { writeTeacherCache } from '../src/teachers/cache-file.js';
import { captureCheckpoint, writeCheckpoint } from '../src/train/checkpoint.js';

tf.enableProdMode();
await tf.setBackend('cpu');

const RUNS = Number(process.env.DISTILL_FUZZ_RUNS ?? 30);
/** Each case's limit: a reader that takes longer is taken to hang (and its process killed). */
const CASE_MS = 10_000;
const dir = mkdtempSync(join(tmpdir(), 'distill-fuzz-'));

/** Truncations, 1–8 bit flips, and splices (a range replaced by random bytes) of `valid`. */
function corrupted(file: Uint8Array): fc.Arbitrary<Uint8Array> {
  // a copy: a Buffer's slice() is a view, and the flips would pile up in the original
  const valid = Uint8Array.from(file);
  const n = valid.length;
  // uniform over the file (fast-check favours small integers by default: the header only)
  const position = fc.noBias(fc.nat(n - 1));
  return fc.oneof(
    fc.nat(n - 1).map((k) => valid.slice(0, k)),
    fc.array(fc.tuple(fc.nat(n - 1), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 8 }).map((flips) => {
      const out = valid.slice();
      for (const [i, bit] of flips) out[i]! ^= 1 << bit;
      return out;
    }),
    fc.tuple(position, position, fc.uint8Array({ maxLength: 64 })).map(([a, b, bytes]) => {
      const [lo, hi] = a < b ? [a, b] : [b, a];
      return Uint8Array.from([...valid.subarray(0, lo), ...bytes, ...valid.subarray(hi)]);
    }),
  );
}

interface Answer {
  id: number;
  outcome: string;
  message: string;
  leaked: number;
}

/** The child process that runs the readers (test/fixtures/fuzz-reader-host.ts); a new one after a hang. */
class ReaderHost {
  private child?: ChildProcess;
  private next = 1;
  private waiting = new Map<number, (a: Answer) => void>();

  private async start(): Promise<ChildProcess> {
    const child = fork(fileURLToPath(new URL('./fixtures/fuzz-reader-host.ts', import.meta.url)), {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    await new Promise<void>((ready, failed) => {
      child.once('error', failed);
      child.once('exit', (code) => failed(new Error(`the reader host exited (${code}) before it was ready`)));
      child.once('message', () => ready());
    });
    child.removeAllListeners('exit');
    child.on('message', (a: Answer) => this.waiting.get(a.id)?.(a));
    child.on('exit', (code, signal) => {
      for (const [id, answer] of this.waiting)
        answer({ id, outcome: `the reader process died (${signal ?? code})`, message: '', leaked: 0 });
    });
    this.child = child;
    return child;
  }

  /** Reads `path` with `reader` in the host; a hang is killed after `CASE_MS`. */
  async read(reader: string, path: string): Promise<Answer> {
    const child = this.child ?? (await this.start());
    const id = this.next++;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<Answer>((answer) => {
        this.waiting.set(id, answer);
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          this.child = undefined;
          answer({ id, outcome: `no answer within ${CASE_MS} ms (a hang)`, message: '', leaked: 0 });
        }, CASE_MS);
        child.send({ id, reader, path });
      });
    } finally {
      clearTimeout(timer);
      this.waiting.delete(id);
    }
  }

  stop(): void {
    this.child?.kill();
  }
}

const host = new ReaderHost();
after(() => host.stop());

/** What each reader is allowed to do: succeed, or fail with a one-line `UserError` of bounded length. */
async function cleanOutcome(reader: string, path: string): Promise<'ok' | 'user-error'> {
  const a = await host.read(reader, path);
  if (a.leaked > 0) throw new Error(`${a.leaked} tensors left behind (${a.outcome})`);
  if (a.outcome === 'ok') return 'ok';
  if (a.outcome === 'user-error' && !a.message.includes('\n') && a.message.length <= 400) {
    if (process.env.DISTILL_FUZZ_VERBOSE) process.stderr.write(`  ${a.message}\n`);
    return 'user-error';
  }
  throw new Error(`not a one-line UserError: ${a.outcome}: ${a.message.slice(0, 300)}`);
}

const outcomes: Record<string, { ok: number; 'user-error': number }> = {};

/** Fuzzes one reader: writes each corrupted file to `file`, then has `reader` read `path`. */
async function fuzz(target: string, valid: Uint8Array, file: string, reader: string, path = file): Promise<void> {
  const seen = { ok: 0, 'user-error': 0 };
  outcomes[target] = seen;
  writeFileSync(file, valid);
  assert.equal(await cleanOutcome(reader, path), 'ok', `${target}: the valid file reads`);
  await fc.assert(
    fc.asyncProperty(corrupted(valid), async (bytes) => {
      writeFileSync(file, bytes);
      if (process.env.DISTILL_FUZZ_KEEP) writeFileSync(`${process.env.DISTILL_FUZZ_KEEP}/${target}.last`, bytes);
      seen[await cleanOutcome(reader, path)]++;
    }),
    {
      numRuns: RUNS,
      seed: Number(process.env.DISTILL_FUZZ_SEED ?? 1),
      endOnFailure: true,
      // the file itself is too long to print; the error says what went wrong
      reporter: (r) => {
        if (r.failed)
          throw new Error(
            `${target}: ${r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance)} (case ${r.numRuns}, seed ${r.seed})`,
          );
      },
    },
  );
  writeFileSync(file, valid);
}

test('YAML experiment configs', async () => {
  const file = join(dir, 'fuzz.yaml');
  const valid = readFileSync('examples/kd.yaml');
  await fuzz('config', valid, file, 'config');
});

test('IDX files (labels and unlabeled images)', async () => {
  const images = join(dir, 'images-idx3-ubyte');
  writeIdx({ path: images, array: { dtype: 'uint8', dims: [3, 28, 28], data: new Uint8Array(3 * 784).fill(9) } });
  await fuzz('idx images', readFileSync(images), images, 'idx images');
  const labels = join(dir, 'labels-idx1-ubyte');
  writeIdx({ path: labels, array: { dtype: 'int32', dims: [40], data: new Int32Array(40).fill(3) } });
  await fuzz('idx labels', readFileSync(labels), labels, 'idx labels');
});

test('CSV files', async () => {
  const file = join(dir, 'fuzz.csv');
  const rows = Array.from({ length: 20 }, (_, i) => `${i * 0.5},${i % 3},${['a', 'b'][i % 2]}`);
  const valid = Buffer.from(`x,y,label\n${rows.join('\n')}\n`);
  await fuzz('csv', valid, file, 'csv');
});

const small = () =>
  buildModel({
    key: 'cnn',
    kwargs: { blocks: [4], convsPerBlock: 1, dense: 8 },
    inputShape: [8, 8, 1],
    numClasses: 3,
    seed: 1,
  });

test('TF.js model.json and weights.bin', async () => {
  registerFileRouters();
  const folder = join(dir, 'model');
  const model = small();
  await model.save(fileSystem(folder));
  model.dispose();
  const json = join(folder, 'model.json');
  const weights = join(folder, 'weights.bin');
  await fuzz('model.json', readFileSync(json), json, 'model');
  await fuzz('weights.bin', readFileSync(weights), weights, 'model', json);
});

test('ONNX models', async () => {
  const model = small();
  const valid = exportOnnx(model);
  model.dispose();
  const file = join(dir, 'model.onnx');
  await fuzz('onnx', valid, file, 'model');
});

test('teacher caches and checkpoints', async () => {
  const cache = join(dir, 'teacher.logits');
  await writeTeacherCache({
    path: cache,
    logits: new Float32Array(12).fill(0.5),
    numClasses: 3,
    datasetFingerprint: 'f'.repeat(32),
  });
  await fuzz('teacher cache', readFileSync(cache), cache, 'teacher cache');

  const model = small();
  const optimizer = tf.train.adam(1e-3);
  const ckpt = await captureCheckpoint({
    learners: [{ name: 's', model, terms: [] }],
    optimizer,
    epoch: 1,
    epochs: 2,
    rngState: new Rng(1).getState(),
    history: {},
    seconds: 1,
  });
  const file = join(dir, 'checkpoint.bin');
  await writeCheckpoint(file, ckpt);
  await fuzz('checkpoint', readFileSync(file), file, 'checkpoint');
  model.dispose();
  optimizer.dispose();
  process.stderr.write(`fuzz outcomes (${RUNS} cases per target): ${JSON.stringify(outcomes)}\n`);
});
