import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  datasetFingerprint,
  readTeacherCache,
  TEACHER_CACHE_MAGIC,
  writeTeacherCache,
} from '../src/teachers/cache-file.js';
import { CachedTeacher } from '../src/teachers/cached.js';
import { Dataset } from '../src/data/dataset.js';
import { UserError } from '../src/errors.js';
import { assertUserError } from './helpers.js';

tf.enableProdMode();

let root = '';
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'distill-cache-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A small image dataset: `n` samples [4,4,1], labels i mod 3. */
function data(n: number, shift = 0): Dataset {
  const features = Float32Array.from({ length: n * 16 }, (_, i) => Math.sin(i * 0.7 + shift));
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  return new Dataset({ features, labels, sampleShape: [4, 4, 1], numClasses: 3 });
}
const logitsFor = (rows: number, classes: number) =>
  Float32Array.from({ length: rows * classes }, (_, i) => Math.cos(i) * 5);

test('round trip: logits, size, classes and fingerprint come back bit-exact; no temp file left', async () => {
  const d = data(50);
  const fp = datasetFingerprint(d);
  const logits = logitsFor(50, 3);
  const path = join(root, 'rt', 'teacher-logits.bin');
  await writeTeacherCache({ path, logits, numClasses: 3, datasetFingerprint: fp });
  const back = await readTeacherCache({ path, expectedFingerprint: fp });
  assert.deepEqual(back, { logits, numClasses: 3, size: 50, datasetFingerprint: fp });
  assert.deepEqual(await readdir(join(root, 'rt')), ['teacher-logits.bin']);

  // The layout: magic, header length, JSON header, 4-byte-aligned float32 body.
  const bytes = await readFile(path);
  assert.equal(bytes.toString('ascii', 0, 8), TEACHER_CACHE_MAGIC);
  const h = bytes.readUInt32LE(8);
  assert.equal((12 + h) % 4, 0);
  assert.equal(bytes.length, 12 + h + 4 * 50 * 3);
  const header = JSON.parse(bytes.toString('utf8', 12, 12 + h));
  assert.equal(header.format, 'tfjs-distill/teacher-logits');
  assert.equal(header.size, 50);
  assert.equal(bytes.readFloatLE(12 + h + 4 * 7), logits[7]);

  // Overwriting replaces the file whole.
  await writeTeacherCache({ path, logits: logitsFor(2, 5), numClasses: 5, datasetFingerprint: 'other' });
  assert.equal((await readTeacherCache({ path })).size, 2);
});

test('a CachedTeacher over a read cache answers by dataset row, and repeated calls leak no tensors', async () => {
  const d = data(20);
  const path = join(root, 'ct.bin');
  await writeTeacherCache({ path, logits: logitsFor(20, 3), numClasses: 3, datasetFingerprint: datasetFingerprint(d) });
  const { logits, size, numClasses } = await readTeacherCache({ path, expectedFingerprint: datasetFingerprint(d) });
  const teacher = new CachedTeacher({ logits, size, numClasses, inputShape: d.sampleShape });
  const x = tf.zeros([2, 4, 4, 1]);
  const indices = Int32Array.from([3, 17]);
  const first = await teacher.predict(x, { indices });
  assert.deepEqual([...first.logits.dataSync()], [...logits.subarray(9, 12), ...logits.subarray(51, 54)]);
  first.logits.dispose();
  const n = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) (await teacher.predict(x, { indices })).logits.dispose();
  assert.equal(tf.memory().numTensors, n);
  x.dispose();
});

test('a truncated file is refused with one line, in the body or in the header', async () => {
  const path = join(root, 'trunc.bin');
  await writeTeacherCache({ path, logits: logitsFor(10, 3), numClasses: 3, datasetFingerprint: 'fp' });
  const full = (await readFile(path)).length;
  const h = (await readFile(path)).readUInt32LE(8);
  await truncate(path, full - 6);
  await assertUserError(
    readTeacherCache({ path }),
    `teacher cache ${path} is truncated: 114 bytes of logits, its header (10 rows × 3 classes) needs 120; re-run distill cache-teacher`,
  );
  await truncate(path, 20);
  await assertUserError(
    readTeacherCache({ path }),
    `teacher cache ${path} is truncated: 20 bytes, its header alone needs ${12 + h}; re-run distill cache-teacher`,
  );
});

test('a cache made for other data is refused: the fingerprint names both sides', async () => {
  const made = data(30);
  const now = data(30, 0.5);
  const path = join(root, 'fp.bin');
  await writeTeacherCache({
    path,
    logits: logitsFor(30, 3),
    numClasses: 3,
    datasetFingerprint: datasetFingerprint(made),
  });
  await assertUserError(
    readTeacherCache({ path, expectedFingerprint: datasetFingerprint(now) }),
    `teacher cache ${path} was made for other data (dataset fingerprint ${datasetFingerprint(made)}, this data's is ${datasetFingerprint(now)}); re-run distill cache-teacher on this data`,
  );
});

test('datasetFingerprint: stable for equal data, changed by labels, features, order, size or shape', () => {
  const d = data(40);
  const fp = datasetFingerprint(d);
  assert.match(fp, /^[0-9a-f]{32}$/);
  assert.equal(datasetFingerprint(data(40)), fp);
  assert.equal(
    datasetFingerprint(d.gather(Array.from({ length: 40 }, (_, i) => i))),
    fp,
    'a copy has the same fingerprint',
  );
  const labels = d.labels.slice();
  labels[5] = (labels[5]! + 1) % 3;
  const relabelled = new Dataset({ features: d.features, labels, sampleShape: [4, 4, 1], numClasses: 3 });
  const features = d.features.slice();
  features[16 * 39 + 3]! += 0.01; // the last row is always sampled
  const edited = new Dataset({ features, labels: d.labels, sampleShape: [4, 4, 1], numClasses: 3 });
  const reshaped = new Dataset({ features: d.features, labels: d.labels, sampleShape: [16], numClasses: 3 });
  const others = [
    relabelled,
    edited,
    reshaped,
    d.slice(0, 39),
    d.slice(1),
    d.gather([1, 0, ...Array.from({ length: 38 }, (_, i) => i + 2)]),
  ];
  for (const o of others) assert.notEqual(datasetFingerprint(o), fp);
  assert.equal(
    datasetFingerprint(d.slice(10, 20)),
    datasetFingerprint(d.gather(Array.from({ length: 10 }, (_, i) => i + 10))),
    'views hash like copies',
  );
});

test('other damage and misuse are one-line UserErrors', async () => {
  const missing = join(root, 'none.bin');
  await assertUserError(
    readTeacherCache({ path: missing }),
    `teacher cache ${missing} does not exist; run distill cache-teacher to make it`,
  );
  const other = join(root, 'other.bin');
  await writeFile(other, 'hello world, not logits');
  await assertUserError(
    readTeacherCache({ path: other }),
    `${other} is not a teacher cache (it does not start with TDLOGITS); point to a file written by distill cache-teacher`,
  );
  const flipped = join(root, 'flipped.bin');
  await writeTeacherCache({ path: flipped, logits: logitsFor(4, 2), numClasses: 2, datasetFingerprint: 'fp' });
  const bytes = await readFile(flipped);
  bytes[bytes.length - 1]! ^= 0x40;
  await writeFile(flipped, bytes);
  await assertUserError(
    readTeacherCache({ path: flipped }),
    `teacher cache ${flipped} is corrupted (sha256 of its logits differs from its header); re-run distill cache-teacher`,
  );
  await assertUserError(
    writeTeacherCache({
      path: join(root, 'bad.bin'),
      logits: logitsFor(3, 3),
      numClasses: 4,
      datasetFingerprint: 'fp',
    }),
    'teacher cache: 9 logits do not split into rows of 4 classes; give numClasses of the teacher',
  );
  const blocker = join(root, 'file');
  await writeFile(blocker, '');
  await assert.rejects(
    writeTeacherCache({
      path: join(blocker, 'x.bin'),
      logits: logitsFor(1, 1),
      numClasses: 1,
      datasetFingerprint: 'fp',
    }),
    (e: unknown) =>
      e instanceof UserError &&
      e.message.startsWith(`cannot write teacher cache ${join(blocker, 'x.bin')}: `) &&
      !e.message.includes('\n'),
  );
});
