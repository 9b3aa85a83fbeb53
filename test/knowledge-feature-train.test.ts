import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Dataset } from '../src/data/dataset.js';
import { fileSystem } from '../src/io/index.js';
import { createTerm, fitnetsTerm, termParamCount } from '../src/knowledge/index.js';
import { buildModel } from '../src/models/index.js';
import { layersTeacher } from '../src/teachers/layers.js';
import { train } from '../src/train/trainer.js';
import { lcg } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');

/** 12×12 images, 4 classes: a bright 6×6 quadrant (the class) plus noise. */
function quadrants(size: number, seed: number): Dataset {
  const rand = lcg(seed);
  const features = new Float32Array(size * 144);
  const labels = new Int32Array(size);
  for (let n = 0; n < size; n++) {
    const c = n % 4;
    labels[n] = c;
    for (let i = 0; i < 12; i++)
      for (let j = 0; j < 12; j++) {
        const inside = Math.floor(i / 6) * 2 + Math.floor(j / 6) === c;
        features[n * 144 + i * 12 + j] = (inside ? 0.8 : 0.1) + 0.4 * (rand() - 0.5);
      }
  }
  return new Dataset({ features, labels, sampleShape: [12, 12, 1], numClasses: 4 });
}

const data = quadrants(96, 1);
const cnn = (width: number, blocks: number[], seed: number) =>
  buildModel({
    key: 'cnn',
    kwargs: { width, blocks, convsPerBlock: 1, dense: 64, dropout: 0 },
    inputShape: [12, 12, 1],
    numClasses: 4,
    seed,
  });
// Teacher: width 0.5, blocks [16, 32] → 8 and 16 filters, two pools; student: width 0.25, one block of 2 filters.
const teacherModel = cnn(0.5, [16, 32], 11);
await train({
  learners: [{ name: 'teacher', model: teacherModel, terms: [{ term: createTerm('ce'), weight: 1 }] }],
  train: data,
  epochs: 3,
  batchSize: 32,
  seed: 1,
  optimizer: { key: 'adam', kwargs: { learningRate: 0.01 } },
});
const teacher = layersTeacher({ model: teacherModel });
const values = (vs: readonly tf.Tensor[]) => vs.map((v) => Array.from(v.dataSync()));
let adapterStart: number[][] = [];

test('fitnets + kd train a narrower, shallower student through a 1×1 conv + pool adapter; the saved student has no adapter weights', async () => {
  const student = cnn(0.25, [8], 3);
  const fitnets = fitnetsTerm({ student: 'block1_pool', teacher: 'block2_pool', beta: 1 });
  const teacherBefore = values(teacherModel.getWeights());
  const result = await train({
    learners: [
      {
        name: 'student',
        model: student,
        terms: [
          { term: fitnets, weight: 1 },
          { term: createTerm('kd', { temperature: 4, alpha: 0.9 }), weight: 1 },
        ],
      },
    ],
    teacher,
    train: data,
    epochs: 4,
    batchSize: 32,
    seed: 2,
    optimizer: { key: 'adam', kwargs: { learningRate: 0.01 } },
    callbacks: {
      onTrainBegin: () => {
        adapterStart = values(fitnets.trainableVariables());
      },
    },
  });
  // [6,6,2] student map → [3,3,16] teacher map: 2×2 average pool, then a 1×1 conv 2 → 16.
  assert.equal(fitnets.adapter()!.kind, 'conv1x1');
  assert.equal(termParamCount(fitnets), 2 * 16 + 16);
  const adapterEnd = values(fitnets.trainableVariables());
  assert.ok(
    adapterEnd[0]!.some((v, i) => v !== adapterStart[0]![i]),
    'the adapter kernel trained',
  );
  const h = result.history['student']!;
  assert.deepEqual(Object.keys(h[0]!.losses).sort(), ['ce', 'fitnets', 'kd', 'loss']);
  assert.ok(h[3]!.losses['loss']! < h[0]!.losses['loss']!, `loss fell: ${h.map((r) => r.losses['loss']!.toFixed(3))}`);
  assert.ok(
    h[3]!.losses['fitnets']! < h[0]!.losses['fitnets']!,
    `hint loss fell: ${h.map((r) => r.losses['fitnets']!.toFixed(3))}`,
  );
  assert.deepEqual(values(teacherModel.getWeights()), teacherBefore, 'the teacher is frozen');

  const dir = await mkdtemp(join(tmpdir(), 'fitnets-'));
  try {
    await student.save(fileSystem(dir));
    const manifest = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')).weightsManifest[0].weights as {
      name: string;
    }[];
    assert.deepEqual(
      manifest.map((w) => w.name).sort(),
      student.weights.map((w) => w.originalName).sort(),
      "the student's weights, by name",
    );
    assert.ok(!manifest.some((w) => /fitnets|adapter/.test(w.name)), 'no adapter weights in the export');
    const loaded = await tf.loadLayersModel(fileSystem(dir));
    assert.deepEqual(values(loaded.getWeights()), values(student.getWeights()), "exactly the student's weights");
    loaded.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  fitnets.dispose();
  student.dispose();
});
test('two stages (FitNets paper): hint stage trains up to the guided layer only, then KD trains the rest', async () => {
  const student = cnn(0.25, [8], 5);
  const hint = fitnetsTerm({ student: 'block1_pool', teacher: 'block2_pool', stage: 'hint', hintEpochs: 2 });
  const byName = () => Object.fromEntries(student.weights.map((w) => [w.name, Array.from(w.read().dataSync())]));
  const start = byName();
  const stage1 = await train({
    learners: [{ name: 's', model: student, terms: [{ term: hint, weight: 1 }] }],
    teacher,
    train: data,
    epochs: hint.hintEpochs!,
    batchSize: 32,
    seed: 3,
    optimizer: { key: 'adam', kwargs: { learningRate: 0.01 } },
  });
  hint.dispose();
  const afterHint = byName();
  const changed = (a: Record<string, number[]>, b: Record<string, number[]>) =>
    Object.keys(a).filter((n) => a[n]!.some((v, i) => v !== b[n]![i]));
  assert.ok(
    changed(start, afterHint).some((n) => n.startsWith('block1_conv1/')),
    'the guided layers trained',
  );
  assert.deepEqual(
    changed(start, afterHint).filter((n) => /^(fc|logits)\//.test(n)),
    [],
    'layers above the guided one did not move',
  );
  assert.ok(stage1.history['s']![1]!.losses['fitnets']! < stage1.history['s']![0]!.losses['fitnets']!);
  await train({
    learners: [{ name: 's', model: student, terms: [{ term: createTerm('kd'), weight: 1 }] }],
    teacher,
    train: data,
    epochs: 1,
    batchSize: 32,
    seed: 4,
    optimizer: { key: 'adam', kwargs: { learningRate: 0.01 } },
  });
  assert.ok(
    changed(afterHint, byName()).some((n) => n.startsWith('logits/')),
    'stage 2 trains the head',
  );
  student.dispose();
});

test('every feature and relation term, and a combination, trains the cnn pair through train(); each loss logged', async () => {
  const maps = { student: 'block1_conv1_relu', teacher: 'block2_conv1_relu' }; // [12,12,2] vs [6,6,16]
  const runs: [string, Record<string, unknown>, string[]][] = [
    ['fitnets', {}, ['fitnets']],
    ['at', maps, ['at']],
    ['nst', maps, ['nst']],
    ['pkt', {}, ['pkt']],
    ['rkd', {}, ['rkd-angle', 'rkd-distance']],
    ['sp', {}, ['sp']],
    ['cc', {}, ['cc']],
    ['crd', { featDim: 8 }, ['crd']],
  ];
  for (const [key, options, names] of runs) {
    const student = cnn(0.25, [8], 6);
    const terms = [
      { term: createTerm(key, options), weight: 1 },
      { term: createTerm('ce'), weight: 1 },
    ];
    const before = tf.memory().numTensors;
    const { history } = await train({
      learners: [{ name: 's', model: student, terms }],
      teacher,
      train: data.subset(64),
      epochs: 1,
      batchSize: 32,
      seed: 5,
    });
    const losses = history['s']![0]!.losses;
    assert.deepEqual(Object.keys(losses).sort(), [...names, 'ce', 'loss'].sort(), key);
    assert.ok(Object.values(losses).every(Number.isFinite), `${key}: ${JSON.stringify(losses)}`);
    terms.forEach(({ term }) => term.dispose());
    assert.equal(tf.memory().numTensors, before, `${key}: no tensors left after dispose`);
    student.dispose();
  }
  const student = cnn(0.25, [8], 7);
  const combo = ['kd', 'at', 'rkd'].map((key) => ({
    term: createTerm(key, key === 'at' ? maps : {}),
    weight: key === 'rkd' ? 0.5 : 1,
  }));
  const { history } = await train({
    learners: [{ name: 's', model: student, terms: combo }],
    teacher,
    train: data,
    epochs: 1,
    batchSize: 32,
    seed: 6,
  });
  const l = history['s']![0]!.losses;
  assert.deepEqual(Object.keys(l).sort(), ['at', 'ce', 'kd', 'loss', 'rkd-angle', 'rkd-distance']);
  const parts = l['at']! + l['ce']! + l['kd']! + l['rkd-angle']! + l['rkd-distance']!;
  assert.ok(
    Math.abs(parts - l['loss']!) < 1e-4 * Math.max(1, l['loss']!),
    `kd + at + rkd: parts ${parts} vs total ${l['loss']}`,
  );
  combo.forEach(({ term }) => term.dispose());
  student.dispose();
});
