import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { useBestBackend } from '../src/backend/index.js';
import type { Dataset } from '../src/data/dataset.js';
import { writeIdx } from '../src/data/idx.js';
import { createFit, Interrupted, type Fit } from '../src/train/fit.js';
import { createTerm } from '../src/knowledge/index.js';
import { simpleFit } from '../src/schemes/common.js';
import {
  datasetChunks,
  deepMutualLearning,
  ensembleSelector,
  mutualSelector,
  onlineEnsemble,
  streamingDistillation,
  watchChunks,
} from '../src/schemes/online.js';
import { createStep } from '../src/train/step.js';
import { train } from '../src/train/trainer.js';
import type { Learner, TeacherSelector } from '../src/train/types.js';
import { abortingFit, blobs, data, leakyTeacherKd, mlp, settings, weightsOf } from './schemes-helpers.js';

await useBestBackend({ backend: 'cpu' });
const batch = blobs(16, 7);
const kd = (weight = 1) => ({ term: createTerm('kd', { temperature: 2, alpha: 0.5 }), weight });

/**
 * One SGD step of a cohort (3 MLPs, fixed seeds) under `select`; every peer's weights after it, and the step's
 * losses.
 */
function oneStep(select: TeacherSelector, termsOf: (i: number) => Learner['terms']) {
  const learners: Learner[] = [11, 12, 13].map((seed, i) => ({ name: `p${i}`, model: mlp(seed), terms: termsOf(i) }));
  const logits = learners.map((l) => tf.tidy(() => (l.model.predict(batch.toTensors().x) as tf.Tensor2D).arraySync()));
  const optimizer = tf.train.sgd(0.5);
  const { x, y } = batch.toTensors();
  const result = createStep(learners, optimizer, select)(x, y);
  tf.dispose([x, y]);
  const after = learners.map((l) => weightsOf(l.model));
  learners.forEach((l) => {
    l.model.dispose();
    l.terms.forEach(({ term }) => term.dispose());
  });
  optimizer.dispose();
  return { after, losses: result.losses, logits };
}

/** Hinton KD's KL part, α·T²·KL(softmax(t/T) ‖ softmax(s/T)), batch mean, in plain JS. */
function kdPart(s: number[][], t: number[][], T = 2, alpha = 0.5): number {
  const soft = (z: number[]) => {
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp((v - m) / T));
    const n = e.reduce((a, b) => a + b);
    return e.map((v) => v / n);
  };
  let sum = 0;
  s.forEach((row, b) => {
    const p = soft(t[b]!);
    const q = soft(row);
    sum += p.reduce((a, pk, k) => a + pk * Math.log(pk / q[k]!), 0);
  });
  return alpha * T * T * (sum / s.length);
}

test('dml: a peer is updated by its own loss only, and its KL part is the mean over the other peers', () => {
  const base = oneStep(mutualSelector(), () => [kd()]);
  const louder = oneStep(mutualSelector(), (i) => [kd(i === 0 ? 5 : 1)]);
  assert.notDeepEqual(louder.after[0], base.after[0], 'peer 0 follows its own (louder) loss');
  assert.deepEqual(louder.after[1], base.after[1], "peer 1 does not feel peer 0's KL term");
  assert.deepEqual(louder.after[2], base.after[2], "peer 2 does not feel peer 0's KL term");
  // A term that would pass a gradient into its teacher: the selector hands over detached logits.
  const leaky = oneStep(mutualSelector(), (i) => [{ term: i === 0 ? leakyTeacherKd() : createTerm('ce'), weight: 1 }]);
  const plain = oneStep(mutualSelector(), (i) => [
    { term: i === 0 ? createTerm('soft-ce', { temperature: 1 }) : createTerm('ce'), weight: 1 },
  ]);
  assert.deepEqual(leaky.after.slice(1), plain.after.slice(1), "peers 1 and 2 get nothing through peer 0's teacher");
  const { logits, losses } = base;
  for (let i = 0; i < 3; i++) {
    const others = [0, 1, 2].filter((j) => j !== i);
    const expected = others.reduce((a, j) => a + kdPart(logits[i]!, logits[j]!), 0) / 2;
    assert.ok(
      Math.abs(losses[i]!['kd']! - expected) < 1e-5,
      `peer ${i}: kd ${losses[i]!['kd']} vs mean over peers ${expected}`,
    );
  }
});

test('ensemble: the weighted average of the logits teaches every member; a member is updated by its own loss only', () => {
  const weights = [0.5, 0.25, 0.25];
  const base = oneStep(ensembleSelector(weights), () => [kd()]);
  const louder = oneStep(ensembleSelector(weights), (i) => [kd(i === 1 ? 4 : 1)]);
  assert.deepEqual(louder.after[0], base.after[0]);
  assert.notDeepEqual(louder.after[1], base.after[1]);
  assert.deepEqual(louder.after[2], base.after[2]);
  const mean = base.logits[0]!.map((row, b) =>
    row.map((_, k) => weights.reduce((a, w, j) => a + w * base.logits[j]![b]![k]!, 0)),
  );
  for (let i = 0; i < 3; i++)
    assert.ok(Math.abs(base.losses[i]!['kd']! - kdPart(base.logits[i]!, mean)) < 1e-5, `member ${i}`);
});

test('dml and ensemble through train(): no tensor leaks across epochs; dml needs 2 peers', async () => {
  for (const select of [mutualSelector(), ensembleSelector([0.5, 0.5])]) {
    const learners: Learner[] = [1, 2].map((seed) => ({ name: `p${seed}`, model: mlp(seed, [8], 0.2), terms: [kd()] }));
    const counts: number[] = [];
    await train({
      learners,
      selectTeacher: select,
      train: data.train,
      validation: data.validation,
      epochs: 3,
      batchSize: 16,
      seed: 1,
      callbacks: {
        onEpochEnd: () => {
          counts.push(tf.memory().numTensors);
        },
      },
    });
    assert.ok(
      counts.every((c) => c === counts[0]),
      `numTensors per epoch ${counts}`,
    );
    learners.forEach((l) => {
      l.model.dispose();
      l.terms.forEach(({ term }) => term.dispose());
    });
  }
  const fit = simpleFit({ train: data.train, epochs: 1, batchSize: 16, seed: 1 });
  await assert.rejects(
    deepMutualLearning({ peers: [{ name: 'a', model: mlp(1) }], terms: () => [kd()], fit }),
    /at least 2 peers/,
  );
});

test('dml and ensemble phases resume exactly after an interruption (cpu)', async () => {
  for (const scheme of ['dml', 'ensemble'] as const) {
    const dir = mkdtempSync(join(tmpdir(), `distill-${scheme}-`));
    const run = async (fit: Fit) => {
      const peers = [
        { name: 'a', model: mlp(1, [8], 0.2) },
        { name: 'b', model: mlp(2, [12], 0.2) },
      ];
      try {
        if (scheme === 'dml') await deepMutualLearning({ peers, terms: () => [kd()], fit });
        else await onlineEnsemble({ members: peers, weights: [2, 1], terms: () => [kd()], fit });
        return peers.map((p) => weightsOf(p.model));
      } finally {
        peers.forEach((p) => p.model.dispose());
      }
    };
    const whole = await run(createFit(settings(join(dir, 'a'))));
    await assert.rejects(
      run(abortingFit(settings(join(dir, 'b')), new AbortController(), 6)),
      (e: unknown) => e instanceof Interrupted && /epoch 2\/2/.test(e.message),
    );
    assert.deepEqual(await run(createFit(settings(join(dir, 'b')))), whole, `${scheme}: resumed = uninterrupted`);
  }
});

async function streamRun(fit: Fit, chunks = 3) {
  const teacher = { name: 'teacher', model: mlp(5, [16]) };
  const student = { name: 'student', model: mlp(6, [4]) };
  const alone = { name: 'alone', model: mlp(6, [4]) };
  try {
    const r = await streamingDistillation({
      chunks: datasetChunks(data.train, chunks),
      teacher,
      student,
      alone,
      terms: () => [kd()],
      heldOut: data.test,
      fit,
    });
    return { r, weights: [teacher, student, alone].map((m) => weightsOf(m.model)) };
  } finally {
    [teacher, student, alone].forEach((m) => m.model.dispose());
  }
}

test('streaming: per chunk the teacher learns from the labels, then the student from the frozen, updated teacher; a row per chunk', async () => {
  const inner = simpleFit({ train: data.train, epochs: 1, batchSize: 8, seed: 1 });
  const phases: string[] = [];
  let teacherModel: tf.LayersModel | undefined;
  const spy: Fit = async (phase) => {
    phases.push(`${phase.id}:${phase.train?.size}:${phase.teacher ? 'taught' : 'labels'}`);
    if (phase.learners[0]!.name === 'teacher') teacherModel = phase.learners[0]!.model;
    const before = teacherModel && weightsOf(teacherModel);
    const r = await inner(phase);
    if (phase.id.endsWith('.student'))
      assert.deepEqual(weightsOf(teacherModel!), before, 'the teacher is frozen while the student learns');
    return r;
  };
  const tensors = tf.memory().numTensors;
  const { r } = await streamRun(spy);
  assert.equal(tf.memory().numTensors, tensors, 'no tensor outlives the stream but the (disposed) models');
  assert.deepEqual(
    phases,
    [1, 2, 3].flatMap((c) => [
      `stream.chunk-${c}.teacher:${c === 2 ? 22 : 21}:labels`,
      `stream.chunk-${c}.student:${c === 2 ? 22 : 21}:taught`,
      `stream.chunk-${c}.alone:${c === 2 ? 22 : 21}:labels`,
    ]),
  );
  assert.deepEqual(
    r.chunks.map((c) => [c.chunk, c.samples, c.seen]),
    [
      [1, 21, 21],
      [2, 22, 43],
      [3, 21, 64],
    ],
  );
  for (const c of r.chunks)
    for (const v of [c.teacherAccuracy, c.studentAccuracy, c.aloneAccuracy!, c.agreement]) assert.ok(v >= 0 && v <= 1);
  assert.deepEqual(
    r.history['student']!.map((e) => e.epoch),
    [1, 2, 3],
    'epochs numbered on across chunks',
  );
});

test('streaming resumes exactly inside a chunk (cpu)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'distill-stream-'));
  const s = (d: string) => settings(join(dir, d), undefined, { epochs: 2, batchSize: 8 });
  const whole = await streamRun(createFit(s('a')));
  // 6 batches per phase (2 epochs × 3): chunk 1 is batches 1–18, chunk 2's teacher 19–24, its student 25–30.
  await assert.rejects(
    streamRun(abortingFit(s('b'), new AbortController(), 28)),
    (e: unknown) => e instanceof Interrupted && /in epoch 2\/2 after batch 2 of chunk 2 · student/.test(e.message),
  );
  const resumed = await streamRun(createFit(s('b')));
  assert.deepEqual(resumed.weights, whole.weights);
  assert.deepEqual(
    resumed.r.chunks.map((c) => c.studentAccuracy),
    whole.r.chunks.map((c) => c.studentAccuracy),
  );
});

test('watchChunks: chunk files in natural name order, IDX pairs and CSV, half-written files skipped, END or idle ends it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'distill-watch-'));
  const idx = (stem: string, n: number, label: number) => {
    writeIdx({
      path: join(dir, `${stem}-images-idx3-ubyte`),
      array: { dtype: 'uint8', dims: [n, 2, 3], data: new Uint8Array(n * 6).fill(255) },
    });
    writeIdx({
      path: join(dir, `${stem}-labels-idx1-ubyte.gz`),
      array: { dtype: 'uint8', dims: [n], data: new Uint8Array(n).fill(label) },
    });
  };
  idx('chunk-10', 3, 1);
  idx('chunk-2', 2, 3);
  writeIdx({
    path: join(dir, 'chunk-5-images-idx3-ubyte'),
    array: { dtype: 'uint8', dims: [1, 2, 3], data: new Uint8Array(6) },
  }); // no labels yet: not a chunk
  writeFileSync(join(dir, 'chunk-3-images-idx3-ubyte.tmp'), 'half written');
  const seen: Dataset[] = [];
  const options = { dir, sampleShape: [2, 3, 1], numClasses: 4, idleSeconds: 0.3, pollMs: 20 };
  setTimeout(() => idx('chunk-11', 1, 0), 100); // arrives while the stream waits
  for await (const chunk of watchChunks(options)) seen.push(chunk);
  assert.deepEqual(
    seen.map((d) => [d.size, d.labels[0]]),
    [
      [2, 3],
      [3, 1],
      [1, 0],
    ],
  );
  assert.deepEqual([...seen[0]!.sampleShape], [2, 3, 1]);
  assert.equal(seen[0]!.features[0], 1, 'uint8 pixels scaled to [0, 1]');

  const csvDir = join(dir, 'csv');
  mkdirSync(csvDir);
  writeFileSync(join(csvDir, 'b.csv'), 'x,y,label\n1,2,0\n3,4,2\n');
  writeFileSync(join(csvDir, '.a.csv'), 'x,y,label\n1,2,0\n');
  writeFileSync(join(csvDir, 'c.csv.tmp'), 'x,y,label\n');
  renameSync(join(csvDir, 'c.csv.tmp'), join(csvDir, 'c.csv'));
  writeFileSync(join(csvDir, 'c.csv'), 'x,y,label\n5,6,3\n');
  writeFileSync(join(csvDir, 'END'), '');
  const rows: Dataset[] = [];
  for await (const chunk of watchChunks({ dir: csvDir, sampleShape: [2], numClasses: 4, idleSeconds: 10 }))
    rows.push(chunk);
  assert.deepEqual(
    rows.map((d) => Array.from(d.labels)),
    [[0, 2], [3]],
    'labels are class ids, END ends the stream at once',
  );
  await assert.rejects(async () => {
    for await (const _ of watchChunks({ dir: csvDir, sampleShape: [3], numClasses: 4 })) void _;
  }, /samples of shape \[2\] but the experiment's are \[3\]/);
});
