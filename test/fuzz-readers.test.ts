/**
 * Hostile and corrupt files: random truncations, bit flips and splices of valid files, given to
 * every reader a user points at a file. Each case must end in a correct result or a one-line
 * `UserError` — never another exception (a stack), a hang (each case is bounded) or a crash.
 * `DISTILL_FUZZ_RUNS` sets the cases per target (`npm run stress` runs many more).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { loadCsv } from '../src/data/csv.js';
import { Dataset } from '../src/data/dataset.js';
import { loadUnlabeledImages } from '../src/data/fashion-mnist.js';
import { readIdx, writeIdx } from '../src/data/idx.js';
import { UserError } from '../src/errors.js';
import { loadExperiment } from '../src/experiment/load.js';
import { fileSystem, registerFileRouters } from '../src/io/file-handler.js';
import { exportOnnx } from '../src/io/onnx-export.js';
import { buildModel } from '../src/models/zoo.js';
import { readTeacherCache, writeTeacherCache } from '../src/teachers/cache-file.js';
import { loadTeacher } from '../src/teachers/load.js';
import { captureCheckpoint, readCheckpoint, writeCheckpoint } from '../src/train/checkpoint.js';
import { Rng } from '../src/data/rng.js';

tf.enableProdMode();
await tf.setBackend('cpu');

const RUNS = Number(process.env.DISTILL_FUZZ_RUNS ?? 30);
/** Each case's limit: a reader that takes longer is taken to hang. */
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

/** What each reader is allowed to do: succeed, or fail with a one-line `UserError`. */
async function cleanOutcome(read: () => unknown): Promise<'ok' | 'user-error'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CASE_MS} ms (a hang)`)), CASE_MS);
  });
  try {
    const r = await Promise.race([Promise.resolve().then(read), timeout]);
    (r as { dispose?: () => void } | undefined)?.dispose?.();
    return 'ok';
  } catch (e) {
    if (e instanceof UserError && !e.message.includes('\n') && e.message.length <= 400) {
      if (process.env.DISTILL_FUZZ_VERBOSE) process.stderr.write(`  ${e.message}\n`);
      return 'user-error';
    }
    throw new Error(
      `not a one-line UserError: ${(e as Error)?.constructor?.name}: ${String((e as Error)?.message ?? e).slice(0, 300)}`,
    );
  } finally {
    clearTimeout(timer);
  }
}

const outcomes: Record<string, { ok: number; 'user-error': number }> = {};

/** Fuzzes one reader: writes each corrupted file to `file`, then reads it. */
async function fuzz(target: string, valid: Uint8Array, file: string, read: () => unknown): Promise<void> {
  const seen = { ok: 0, 'user-error': 0 };
  outcomes[target] = seen;
  writeFileSync(file, valid);
  assert.equal(await cleanOutcome(read), 'ok', `${target}: the valid file reads`);
  await fc.assert(
    fc.asyncProperty(corrupted(valid), async (bytes) => {
      writeFileSync(file, bytes);
      seen[await cleanOutcome(read)]++;
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
  const tensors = tf.memory().numTensors;
  await cleanOutcome(read);
  assert.ok(tf.memory().numTensors <= tensors, `${target}: no tensors left behind`);
}

test('YAML experiment configs', async () => {
  const file = join(dir, 'fuzz.yaml');
  const valid = readFileSync('examples/kd.yaml');
  await fuzz('config', valid, file, () => loadExperiment({ path: file }));
});

test('IDX files (labels and unlabeled images)', async () => {
  const images = join(dir, 'images-idx3-ubyte');
  writeIdx({ path: images, array: { dtype: 'uint8', dims: [3, 28, 28], data: new Uint8Array(3 * 784).fill(9) } });
  await fuzz('idx images', readFileSync(images), images, () => loadUnlabeledImages(images));
  const labels = join(dir, 'labels-idx1-ubyte');
  writeIdx({ path: labels, array: { dtype: 'int32', dims: [40], data: new Int32Array(40).fill(3) } });
  await fuzz('idx labels', readFileSync(labels), labels, () => readIdx(labels));
});

test('CSV files', async () => {
  const file = join(dir, 'fuzz.csv');
  const rows = Array.from({ length: 20 }, (_, i) => `${i * 0.5},${i % 3},${['a', 'b'][i % 2]}`);
  const valid = Buffer.from(`x,y,label\n${rows.join('\n')}\n`);
  await fuzz('csv', valid, file, () => loadCsv({ path: file, labelColumn: 'label' }));
});

const data = new Dataset({
  features: new Float32Array(4 * 8 * 8),
  labels: Int32Array.from([0, 1, 2, 0]),
  sampleShape: [8, 8, 1],
  numClasses: 3,
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
  const read = () => loadTeacher({ path: json, data });
  await fuzz('model.json', readFileSync(json), json, read);
  await fuzz('weights.bin', readFileSync(weights), weights, read);
});

test('ONNX models', async () => {
  const model = small();
  const valid = exportOnnx(model);
  model.dispose();
  const file = join(dir, 'model.onnx');
  await fuzz('onnx', valid, file, () => loadTeacher({ path: file, data }));
});

test('teacher caches and checkpoints', async () => {
  const cache = join(dir, 'teacher.logits');
  await writeTeacherCache({
    path: cache,
    logits: new Float32Array(12).fill(0.5),
    numClasses: 3,
    datasetFingerprint: 'f'.repeat(32),
  });
  await fuzz('teacher cache', readFileSync(cache), cache, () => readTeacherCache({ path: cache }));

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
  await fuzz('checkpoint', readFileSync(file), file, () => readCheckpoint(file));
  model.dispose();
  optimizer.dispose();
  process.stderr.write(`fuzz outcomes (${RUNS} cases per target): ${JSON.stringify(outcomes)}\n`);
});
