import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBestBackend } from '../src/backend/index.js';
import { Distiller } from '../src/distiller/distiller.js';
import { createTerm } from '../src/knowledge/index.js';
import { buildModel } from '../src/models/zoo.js';
import { layersTeacher } from '../src/teachers/layers.js';
import { train } from '../src/train/trainer.js';
import { assertUserError, blobs } from './helpers.js';

await useBestBackend({ backend: 'cpu' });
const data = blobs(96, 5);
const mlp = (seed: number, hidden = 8) =>
  buildModel({ key: 'mlp', kwargs: { hidden: [hidden], dropout: 0 }, inputShape: [6], numClasses: 4, seed });
const tensors = () => ({
  xs: tf.tensor2d(data.features, [data.size, 6]),
  ys: tf.tensor1d(data.labels, 'int32'),
});
const weightsOf = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

test('Distiller.fit gives the weights and losses of train() for the same data order and seed', async () => {
  const teacher = mlp(100, 32);
  const [a, b] = [mlp(7), mlp(7)];
  const { xs, ys } = tensors();
  const before = tf.memory().numTensors;
  const distiller = new Distiller({
    teacher,
    student: a,
    knowledge: [{ key: 'kd', kwargs: { temperature: 2, alpha: 0.5 } }],
    optimizer: { key: 'adam', kwargs: { learningRate: 0.01 } },
    seed: 3,
  });
  const history = await distiller.fit(xs, ys, { epochs: 3, batchSize: 16 });
  assert.equal(tf.memory().numTensors, before, 'fit leaves no tensor behind');
  const reference = await train({
    learners: [
      { name: 'student', model: b, terms: [{ term: createTerm('kd', { temperature: 2, alpha: 0.5 }), weight: 1 }] },
    ],
    train: data,
    teacher: layersTeacher({ model: teacher }),
    epochs: 3,
    batchSize: 16,
    optimizer: { key: 'adam', kwargs: { learningRate: 0.01 } },
    seed: 3,
  });
  assert.deepEqual(weightsOf(a), weightsOf(b));
  assert.deepEqual(history.epoch, [0, 1, 2]);
  assert.deepEqual(
    history.history['loss'],
    reference.history['student']!.map((r) => r.losses['loss']),
  );
  assert.ok(history.history['kd'] && history.history['acc']);
});

test('Distiller: tfjs-layers callbacks, tf.callbacks.earlyStopping, validationSplit, one-hot labels, predict and evaluate', async () => {
  const teacher = mlp(100, 32);
  const student = mlp(8);
  const { xs, ys } = tensors();
  const oneHot = tf.oneHot(ys, 4);
  const seen: Array<{ epoch: number; logs: tf.Logs | undefined }> = [];
  let batches = 0;
  const distiller = new Distiller({ teacher, student });
  const history = await distiller.fit(xs, oneHot, {
    epochs: 10,
    batchSize: 32,
    validationSplit: 0.25,
    callbacks: [
      {
        onEpochEnd: async (epoch: number, logs?: tf.Logs) => void seen.push({ epoch, logs }),
        onBatchBegin: async () => void batches++,
      },
      // no epoch improves the loss by 10: stops after `patience` epochs
      tf.callbacks.earlyStopping({ monitor: 'loss', minDelta: 10, patience: 1 }),
    ],
  });
  assert.equal(history.epoch.length, 2, 'earlyStopping stopped the run');
  assert.equal(seen.length, 2);
  assert.equal(batches, 2 * Math.ceil(72 / 32), 'validationSplit holds out the last quarter');
  assert.deepEqual(Object.keys(seen[0]!.logs!).sort(), ['acc', 'ce', 'kd', 'loss', 'val_acc', 'val_loss'].sort());
  const [loss, acc] = distiller.evaluate(xs, ys);
  assert.ok(loss.dataSync()[0]! > 0 && acc.dataSync()[0]! >= 0 && acc.dataSync()[0]! <= 1);
  assert.deepEqual((distiller.predict(xs) as tf.Tensor).shape, [96, 4]);
  await assertUserError(distiller.fit(xs, ys.slice(0, 10)), 'x has 96 rows but y has 10; give one label per row');
  assertUserError(
    () =>
      new Distiller({
        teacher,
        student: buildModel({ key: 'mlp', kwargs: { hidden: [4] }, inputShape: [6], numClasses: 3, seed: 1 }),
      }),
    'the student has 3 outputs but the teacher 4; they must match',
  );
  assertUserError(
    () => new Distiller({ teacher, student, knowledge: [{ key: 'kd', kwargs: { alpha: 2 } }] }),
    /option `alpha` must be <= 1/,
  );
});

test('Distiller.fitDataset on a tf.data.Dataset equals fit on the same rows and batch size', async () => {
  const teacher = mlp(100, 32);
  const [a, b] = [mlp(9), mlp(9)];
  const { xs, ys } = tensors();
  const ds = tf.data.zip({ xs: tf.data.array(tf.unstack(xs)), ys: tf.data.array(tf.unstack(ys)) }).batch(16);
  const o = { optimizer: 'sgd', seed: 2 } as const;
  const h1 = await new Distiller({ teacher, student: a, ...o }).fitDataset(ds, { epochs: 2 });
  const h2 = await new Distiller({ teacher, student: b, ...o }).fit(xs, ys, { epochs: 2, batchSize: 16 });
  assert.deepEqual(weightsOf(a), weightsOf(b));
  assert.deepEqual(h1.history['loss'], h2.history['loss']);
});

test('Distiller.fitDataset with stream: true iterates the dataset each epoch, the teacher online, no tensor left', async () => {
  const teacher = mlp(100, 32);
  const [a, b] = [mlp(9), mlp(9)];
  const { xs, ys } = tensors();
  const o = { optimizer: 'sgd', seed: 2 } as const;
  // one-hot labels, as tfjs-layers datasets usually carry them
  const ds = tf.data
    .zip({ xs: tf.data.array(tf.unstack(xs)), ys: tf.data.array(tf.unstack(tf.oneHot(ys, 4))) })
    .batch(16);
  const counts: number[] = [];
  const h1 = await new Distiller({ teacher, student: a, ...o }).fitDataset(ds, {
    epochs: 3,
    stream: true,
    callbacks: {
      onEpochEnd: () => {
        counts.push(tf.memory().numTensors);
      },
    },
  });
  assert.equal(new Set(counts).size, 1, `tensors after each epoch: ${counts}`);
  // in memory, in the same order: the same steps (the teacher's outputs from its cache)
  const h2 = await new Distiller({ teacher, student: b, ...o }).fit(xs, ys, {
    epochs: 3,
    batchSize: 16,
    shuffle: false,
  });
  const [wa, wb] = [weightsOf(a).flat(), weightsOf(b).flat()];
  assert.ok(Math.max(...wa.map((v, i) => Math.abs(v - wb[i]!))) < 1e-5);
  assert.equal(h1.history['loss']!.length, 3);
  h1.history['loss']!.forEach((l, i) => assert.ok(Math.abs(l - h2.history['loss']![i]!) < 1e-5));
});

test('Distiller.fitDataset streams a generator with batchesPerEpoch across epochs, and refuses what it cannot do', async () => {
  const teacher = mlp(100, 32);
  let made = 0;
  // 5 batches of 8 made on demand (nothing of it is kept)
  const batches = () =>
    tf.data.generator(function* () {
      for (let i = 0; i < 5; i++) {
        made++;
        yield { xs: tf.randomNormal([8, 6]), ys: tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32') };
      }
    });
  const sizes: number[] = [];
  const distiller = new Distiller({ teacher, student: mlp(4), schedule: 'cosine' });
  const h = await distiller.fitDataset(batches(), {
    epochs: 3,
    stream: true,
    batchesPerEpoch: 2,
    callbacks: {
      onBatchEnd: (_b: number, logs?: tf.Logs) => {
        sizes.push(logs!['size'] as number);
      },
    },
  });
  // one iterator across epochs: batches 1–2, 3–4, then 5 (the dataset ends mid-epoch)
  assert.deepEqual(sizes, [8, 8, 8, 8, 8]);
  assert.equal(made, 5);
  assert.equal(h.epoch.length, 3);
  await assertUserError(
    new Distiller({ teacher, student: mlp(4), schedule: 'cosine' }).fitDataset(batches(), { stream: true }),
    /cosine schedule needs the number of batches per epoch/,
  );
  await assertUserError(
    new Distiller({ teacher, student: mlp(4) }).fitDataset(batches(), { batchesPerEpoch: 2 }),
    /batchesPerEpoch goes with stream: true/,
  );
  const wrong = tf.data.generator(function* () {
    yield { xs: tf.zeros([4, 5]), ys: tf.zeros([4], 'int32') };
  });
  await assertUserError(
    new Distiller({ teacher, student: mlp(4) }).fitDataset(wrong, { stream: true }),
    /a batch has samples of shape \[5\], the teacher takes \[6\]/,
  );
  const empty = tf.data.generator(function* () {});
  await assertUserError(
    new Distiller({ teacher, student: mlp(4) }).fitDataset(empty, { stream: true }),
    /the dataset is empty/,
  );
});

test('Distiller with uncompiled tf.sequential models (the usual TF.js student), and earlyStopping on them', async () => {
  const layers = (units: number) => [
    tf.layers.dense({ inputShape: [6], units, activation: 'relu' }),
    tf.layers.dense({ units: 4 }),
  ];
  const teacher = tf.sequential({ layers: layers(32) });
  const student = tf.sequential({ layers: layers(8) });
  const { xs, ys } = tensors();
  const history = await new Distiller({ teacher, student }).fit(xs, ys, {
    epochs: 6,
    batchSize: 32,
    callbacks: tf.callbacks.earlyStopping({ monitor: 'loss', minDelta: 10, patience: 1 }),
  });
  assert.equal(history.epoch.length, 2, 'earlyStopping stopped the sequential student');
  assert.ok(Number.isFinite(history.history.loss![1] as number));
});
