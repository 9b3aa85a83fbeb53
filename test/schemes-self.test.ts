import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { useBestBackend } from '../src/backend/index.js';
import { createFit, Interrupted, mergeCallbacks, type Fit } from '../src/train/fit.js';
import { fileSystem, registerFileRouters } from '../src/io/index.js';
import { createTerm } from '../src/knowledge/index.js';
import { simpleFit } from '../src/schemes/common.js';
import { attachExits, beYourOwnTeacher, bornAgain, previousEpochTeacher } from '../src/schemes/self.js';
import { train } from '../src/train/trainer.js';
import {
  abortingFit,
  blobs,
  leakyTeacherKd,
  mlp,
  settings,
  smallCnn,
  trainable,
  weightsOf,
} from './schemes-helpers.js';
import { assertUserError } from './helpers.js';
import { ensembleTeacher } from '../src/teachers/ensemble.js';
import { layersTeacher } from '../src/teachers/layers.js';

await useBestBackend({ backend: 'cpu' });
registerFileRouters();
const images = {
  name: 'images',
  train: blobs(48, 1, [8, 8, 1]),
  validation: blobs(16, 2, [8, 8, 1]),
  test: blobs(16, 3, [8, 8, 1]),
};
const kd = () => [{ term: createTerm('kd', { temperature: 3, alpha: 0.3 }), weight: 1 }];

test("attachExits: exits share the network's layers, save and load on their own, and name what is wrong", async () => {
  const net = smallCnn(1);
  const { exits, featureShape } = attachExits({
    model: net,
    exits: [{ after: 'block1_pool' }, { after: 'block2_pool', channels: 8 }],
    seed: 3,
  });
  assert.deepEqual(featureShape, [16]);
  const variables = new Set(net.trainableWeights.map((w) => w.read()));
  const shared = exits[0]!.model.trainableWeights.filter((w) => variables.has(w.read())).map((w) => w.originalName);
  assert.deepEqual(
    shared,
    ['block1_conv1/kernel', 'block1_conv1_bn/gamma', 'block1_conv1_bn/beta'],
    'exit 1 reuses the first block',
  );
  assert.deepEqual(
    exits.map((e) => e.featureLayer),
    ['exit1_features', 'exit2_features'],
  );
  assert.deepEqual(exits[1]!.model.getLayer('exit2_features').outputShape, [null, 8]);
  const dir = mkdtempSync(join(tmpdir(), 'distill-exit-'));
  await exits[0]!.model.save(fileSystem(dir));
  const loaded = await tf.loadLayersModel(fileSystem(dir));
  const x = images.test.toTensors().x;
  assert.deepEqual((loaded.predict(x) as tf.Tensor).arraySync(), (exits[0]!.model.predict(x) as tf.Tensor).arraySync());
  assert.ok(loaded.countParams() < net.countParams());
  assertUserError(
    () => attachExits({ model: net, exits: [{ after: 'block9' }] }),
    /no layer `block9`; layers: input \[8,8,1\]/,
  );
  assert.throws(() => attachExits({ model: net, exits: [{ after: 'logits' }] }), /is not before `features`/);
  exits.forEach((e) => e.dispose());
  net.dispose();
  loaded.dispose();
});

/**
 * One SGD step (the whole set as one batch) of BYOT on a fresh small CNN; trainable weights of the network after it.
 */
async function byotStep(mode: 'self' | 'labels' | 'plain', hintWeight = 1, terms = kd) {
  const net = smallCnn(1);
  const fit = simpleFit({
    train: images.train,
    epochs: 1,
    batchSize: 48,
    seed: 1,
    optimizer: { key: 'sgd', kwargs: { learningRate: 0.5 } },
  });
  if (mode === 'plain') {
    await fit({
      id: 'p',
      label: 'p',
      learners: [{ name: 'net', model: net, terms: [{ term: createTerm('ce'), weight: 1 }] }],
    });
  } else {
    const { exits, featureShape } = attachExits({ model: net, exits: [{ after: 'block1_pool' }], seed: 3 });
    await beYourOwnTeacher({ model: net, exits, featureShape, terms, hint: hintWeight, fit, mode, name: 'net' });
    exits.forEach((e) => e.dispose());
  }
  const w = trainable(net);
  net.dispose();
  return w;
}

test("byot: the exits' terms (kd and the hint) reach the shared trunk, never the layers deeper than the exit", async () => {
  const plain = await byotStep('plain');
  const self = await byotStep('self');
  const noHint = await byotStep('self', 0);
  const deep = ['block2_conv1/kernel', 'block2_conv1_bn/gamma', 'fc/kernel', 'fc/bias', 'logits/kernel', 'logits/bias'];
  const shallow = ['block1_conv1/kernel', 'block1_conv1_bn/gamma'];
  for (const name of deep) assert.deepEqual(self[name], plain[name], `${name}: only the deepest CE trains it`);
  for (const name of shallow) {
    assert.notDeepEqual(self[name], plain[name], `${name}: the exit's terms reach it`);
    assert.notDeepEqual(self[name], noHint[name], `${name}: the feature hint reaches it`);
  }
  const leaky = await byotStep('self', 1, () => [{ term: leakyTeacherKd(), weight: 1 }]);
  for (const name of deep)
    assert.deepEqual(leaky[name], plain[name], `${name}: the deepest's outputs reach the exits detached`);
  const labels = await byotStep('labels');
  for (const name of deep)
    assert.deepEqual(labels[name], plain[name], `${name}: deep supervision leaves it to the deepest CE too`);
});

test('byot: no tensor leaks across epochs; a checkpointed byot phase resumes exactly (cpu)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'distill-byot-'));
  const run = async (fit: Fit) => {
    const net = smallCnn(2);
    const { exits, featureShape } = attachExits({
      model: net,
      exits: [{ after: 'block1_pool' }, { after: 'block2_pool', channels: 8 }],
      seed: 5,
    });
    try {
      await beYourOwnTeacher({ model: net, exits, featureShape, terms: kd, fit, name: 'net' });
      return [weightsOf(net), ...exits.map((e) => weightsOf(e.model))];
    } finally {
      exits.forEach((e) => e.dispose());
      net.dispose();
    }
  };
  const s = (d: string) => ({ ...settings(join(dir, d)), data: images, batchSize: 16 });
  const counts: number[] = [];
  const counting = createFit(s('a'));
  const whole = await run((phase) =>
    counting({
      ...phase,
      callbacks: mergeCallbacks(phase.callbacks, {
        onEpochEnd: () => {
          counts.push(tf.memory().numTensors);
        },
      }),
    }),
  );
  assert.equal(counts.length, 2);
  assert.equal(counts[1], counts[0], 'numTensors after each epoch');
  await assert.rejects(
    run(abortingFit(s('b'), new AbortController(), 4)),
    (e: unknown) => e instanceof Interrupted && /epoch 2\/2/.test(e.message),
  );
  assert.deepEqual(await run(createFit(s('b'))), whole);
});

test('born-again: each generation learns from the frozen previous one (or the ensemble of all earlier); chains resume exactly', async () => {
  const data = { name: 'blobs', train: blobs(64, 1), validation: blobs(16, 2), test: blobs(32, 3) };
  const teachers: string[] = [];
  const frozen: Fit = async (phase) => {
    const teacher = phase.teacher;
    teachers.push(`${phase.id}:${teacher?.kind ?? 'labels'}`);
    const probe = blobs(8, 9).toTensors().x;
    const before = teacher ? (await teacher.predict(probe)).logits.arraySync() : undefined;
    const r = await inner(phase);
    if (teacher)
      assert.deepEqual(
        (await teacher.predict(probe)).logits.arraySync(),
        before,
        'the teacher generation does not change',
      );
    return r;
  };
  const inner = simpleFit({ train: data.train, epochs: 1, batchSize: 16, seed: 1 });
  const run = async (fit: Fit, ensemble = false) => {
    const gens = await bornAgain({ build: (g) => mlp(20 + g), generations: 3, terms: kd, ensemble, name: 'm', fit });
    const w = gens.map((g) => weightsOf(g.model));
    gens.forEach((g) => g.model.dispose());
    return { gens, w };
  };
  const chain = await run(frozen);
  assert.deepEqual(
    chain.gens.map((g) => [g.generation, g.name, g.history.length]),
    [
      [0, 'm gen 0', 1],
      [1, 'm gen 1', 1],
      [2, 'm gen 2', 1],
      [3, 'm gen 3', 1],
    ],
  );
  assert.deepEqual(teachers, [
    'born-again.gen-0:labels',
    'born-again.gen-1:layers',
    'born-again.gen-2:layers',
    'born-again.gen-3:layers',
  ]);
  teachers.length = 0;
  await run(frozen, true);
  assert.deepEqual(teachers, [
    'born-again.gen-0:labels',
    'born-again.gen-1:layers',
    'born-again.gen-2:ensemble',
    'born-again.gen-3:ensemble',
  ]);

  const a = mlp(1);
  const b = mlp(2);
  const x = blobs(4, 5).toTensors().x;
  const mean = tf.tidy(
    () =>
      (a.predict(x) as tf.Tensor)
        .add(b.predict(x) as tf.Tensor)
        .div(2)
        .arraySync() as number[][],
  );
  const got = (
    await ensembleTeacher({ members: [layersTeacher({ model: a }), layersTeacher({ model: b })] }).predict(x)
  ).logits.arraySync();
  got.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - mean[i]![k]!) < 1e-6)));

  const dir = mkdtempSync(join(tmpdir(), 'distill-ban-'));
  const tensors = tf.memory().numTensors;
  const whole = await run(createFit(settings(join(dir, 'a'))));
  assert.equal(tf.memory().numTensors, tensors, 'no tensor outlives the generations but their (disposed) models');
  await assert.rejects(
    run(abortingFit(settings(join(dir, 'b')), new AbortController(), 21)),
    (e: unknown) => e instanceof Interrupted && /epoch 2\/2 after batch 2 of m gen 2/.test(e.message),
  );
  assert.deepEqual((await run(createFit(settings(join(dir, 'b'))))).w, whole.w);
});

test('previous-epoch: the snapshot is the model of the due epoch, refreshed every k epochs; resume restores it exactly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'distill-pe-'));
  const run = async (fit: Fit, watch?: (epoch: number, model: tf.LayersModel, snapshot: tf.LayersModel) => void) => {
    const model = mlp(3, [8], 0.2);
    const snapshot = mlp(99, [8], 0.2);
    const spy: Fit = watch
      ? (phase) =>
          fit({
            ...phase,
            callbacks: mergeCallbacks(phase.callbacks, { onEpochEnd: (e) => watch(e, model, snapshot) }),
          })
      : fit;
    try {
      const r = await previousEpochTeacher({
        model,
        snapshot,
        terms: kd,
        epochs: 5,
        warmup: 1,
        every: 2,
        name: 'm',
        fit: spy,
      });
      return { r, w: [weightsOf(model), weightsOf(snapshot)] };
    } finally {
      model.dispose();
      snapshot.dispose();
    }
  };
  const s = (d: string) => settings(join(dir, d), undefined, { epochs: 5 });
  const ends: number[][][] = [];
  const seenSnapshots: number[][][] = [];
  const tensors = tf.memory().numTensors;
  const whole = await run(createFit(s('a')), (_e, model, snapshot) => {
    ends.push(weightsOf(model));
    seenSnapshots.push(weightsOf(snapshot));
  });
  assert.equal(tf.memory().numTensors, tensors, 'no tensor outlives the run but the (disposed) model and snapshot');
  assert.deepEqual(whole.r.teacherEpochs, [1, 1, 3, 3]);
  assert.equal(whole.r.history.length, 5);
  // ends[0] is the warmup's end; snapshots are taken at the start of epochs 2 and 4.
  assert.deepEqual(seenSnapshots.slice(1), [ends[0], ends[0], ends[2], ends[2]]);
  assert.deepEqual(whole.w[1], ends[2], 'the last snapshot is the model after epoch 3');
  // 4 batches per epoch: batch 19 is in epoch 5 (one phase), which does not refresh: the snapshot must come from
  // the checkpoint.
  await assert.rejects(
    run(abortingFit(s('b'), new AbortController(), 18)),
    (e: unknown) => e instanceof Interrupted && /epoch 5\/5 after batch 3/.test(e.message),
  );
  assert.deepEqual((await run(createFit(s('b')))).w, whole.w, 'model and snapshot equal an uninterrupted run');
  assert.deepEqual((await run(createFit(s('b')))).w, whole.w, 'a finished phase restores the snapshot too');
  await assert.rejects(
    previousEpochTeacher({
      model: mlp(1),
      snapshot: mlp(1),
      terms: kd,
      epochs: 1,
      warmup: 1,
      name: 'm',
      fit: createFit(s('c')),
    }),
    /more epochs \(1\) than warmup epochs \(1\)/,
  );
});

test("previous-epoch with pskd: the term follows the run's epoch (α_e logged per epoch), after the warmup", async () => {
  const model = mlp(3, [8], 0.2);
  const snapshot = mlp(99, [8], 0.2);
  try {
    const r = await previousEpochTeacher({
      model,
      snapshot,
      terms: () => [{ term: createTerm('pskd', { alpha: 0.8, rampEpochs: 4 }), weight: 1 }],
      epochs: 4,
      warmup: 1,
      name: 'm',
      fit: createFit(settings(mkdtempSync(join(tmpdir(), 'distill-pskd-')), undefined, { epochs: 4 })),
    });
    // epochs 2–4 (0-based 1–3) learn from the snapshot: α = 0.8 · (e + 1) / 4
    assert.deepEqual(
      r.history.map((h) => h.termState?.['alpha']),
      [0.2, 0.4, 0.6000000000000001, 0.8],
    );
    assert.deepEqual(Object.keys(r.history[0]!.losses).sort(), ['ce', 'loss']);
    assert.deepEqual(Object.keys(r.history[3]!.losses).sort(), ['ce', 'loss', 'pskd']);
  } finally {
    model.dispose();
    snapshot.dispose();
  }
});

test('self schemes through train(): a teacher-less kd term is refused before training', async () => {
  await assert.rejects(
    train({
      learners: [{ name: 's', model: mlp(1), terms: kd() }],
      train: blobs(16, 1),
      epochs: 1,
      batchSize: 8,
      seed: 1,
    }),
    /needs a teacher/,
  );
});

test('scheme API functions validate their knobs with the experiment schema: same names, one clear line', async () => {
  const fit = createFit(settings(mkdtempSync(join(tmpdir(), 'knobs-')), undefined, { epochs: 1 }));
  await assertUserError(
    bornAgain({ build: () => mlp(1), generations: 0, terms: kd, name: 'm', fit }),
    /scheme `born-again`: option `generations` must be > 0 \(got 0\)/,
  );
  await assertUserError(
    previousEpochTeacher({ model: mlp(1), snapshot: mlp(1), terms: kd, epochs: 3, every: 1.5, name: 'm', fit }),
    /scheme `previous-epoch`: option `every` must be a whole number \(got 1\.5\)/,
  );
  const net = smallCnn(1);
  const { exits, featureShape } = attachExits({ model: net, exits: [{ after: 'block1_pool' }], seed: 1 });
  await assertUserError(
    beYourOwnTeacher({ model: net, exits, featureShape, terms: kd, hint: -1, fit }),
    /scheme `byot`: option `hint` must be >= 0 \(got -1\)/,
  );
});
