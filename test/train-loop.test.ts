import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { createTerm } from '../src/knowledge/index.js';
import { buildModel } from '../src/models/index.js';
import { layersTeacher } from '../src/teachers/layers.js';
import type { Teacher } from '../src/teachers/types.js';
import { train } from '../src/train/trainer.js';
import { assertUserError, blobs } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');

const data = blobs(128, 1);
const validation = blobs(64, 2);
const mlp = (seed: number, width = 1) =>
  buildModel({ key: 'mlp', kwargs: { hidden: [16], width }, inputShape: [6], numClasses: 4, seed });

function countingTeacher(model: tf.LayersModel): Teacher & { calls: number } {
  const inner = layersTeacher({ model });
  const counted = Object.assign(Object.create(null), inner, {
    calls: 0,
    async predict(x: tf.Tensor, o?: Parameters<Teacher['predict']>[1]) {
      counted.calls++;
      return inner.predict(x, o);
    },
  });
  return counted;
}

test('offline KD trains only the student, logs each term, and caches teacher outputs', async () => {
  const teacherModel = mlp(7, 2);
  const teacherBefore = teacherModel.getWeights().map((w) => w.dataSync().slice());
  const teacher = countingTeacher(teacherModel);
  const student = mlp(3);
  const result = await train({
    learners: [
      {
        name: 'student',
        model: student,
        terms: [{ term: createTerm('kd', { temperature: 4, alpha: 0.5 }), weight: 1 }],
      },
    ],
    train: data,
    validation,
    teacher,
    epochs: 4,
    batchSize: 32,
    seed: 1,
    optimizer: { key: 'adam', kwargs: { learningRate: 0.01 } },
  });
  const records = result.history['student']!;
  assert.equal(records.length, 4);
  assert.deepEqual(Object.keys(records[0]!.losses).sort(), ['ce', 'kd', 'loss']);
  assert.ok(Math.abs(records[0]!.losses['kd']! + records[0]!.losses['ce']! - records[0]!.losses['loss']!) < 1e-5);
  assert.ok(records[3]!.losses['loss']! < records[0]!.losses['loss']!, 'loss falls');
  assert.ok(records[3]!.valAccuracy! > 0.9, `val accuracy ${records[3]!.valAccuracy}`);
  // every row once, before the first epoch, in row order and batches of 256 (a resumed phase sees the same logits)
  assert.equal(teacher.calls, 1, 'the teacher sees the 4 batches of rows once, as one batch of 256 or fewer');
  teacherModel.getWeights().forEach((w, i) => assert.deepEqual(w.dataSync(), teacherBefore[i]));
});

test('same seed, same weights; tensors do not grow across epochs', async () => {
  const run = async (epochs: number) => {
    const student = mlp(5);
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    await train({
      learners: [{ name: 's', model: student, terms: [{ term: createTerm('ce'), weight: 1 }] }],
      train: data,
      epochs,
      batchSize: 16,
      seed: 9,
      augment: undefined,
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
    assert.ok(tf.memory().numTensors - before <= student.weights.length);
    return student.getWeights().map((w) => Array.from(w.dataSync()));
  };
  assert.deepEqual(await run(3), await run(3));
});

test('dropout is reproducible from the seed', async () => {
  const run = async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [6], units: 8, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
        tf.layers.dropout({ rate: 0.5 }),
        tf.layers.dense({ units: 4, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    await train({
      learners: [{ name: 's', model, terms: [{ term: createTerm('ce'), weight: 1 }] }],
      train: data,
      epochs: 1,
      batchSize: 32,
      seed: 4,
    });
    return Array.from(model.getWeights()[0]!.dataSync());
  };
  assert.deepEqual(await run(), await run());
});

test('mismatches fail before training with one line naming both sides', async () => {
  const teacher = layersTeacher({
    model: buildModel({ key: 'mlp', kwargs: { hidden: [4] }, inputShape: [6], numClasses: 3 }),
  });
  await assertUserError(
    train({
      learners: [{ name: 's', model: mlp(1), terms: [{ term: createTerm('kd'), weight: 1 }] }],
      train: data,
      teacher,
      epochs: 1,
      batchSize: 8,
      seed: 1,
    }),
    /teacher has 3 classes but the data has 4/,
  );
  await assertUserError(
    train({
      learners: [{ name: 's', model: mlp(1), terms: [{ term: createTerm('kd'), weight: 1 }] }],
      train: data,
      epochs: 1,
      batchSize: 8,
      seed: 1,
    }),
    /needs a teacher/,
  );
});

test('a loss that becomes NaN or Infinity stops training at that batch, in one line naming epoch, batch and term', async () => {
  const student = mlp(3);
  const tensors = tf.memory().numTensors;
  await assertUserError(
    train({
      learners: [{ name: 'student', model: student, terms: [{ term: createTerm('ce'), weight: 1 }] }],
      train: data,
      epochs: 5,
      batchSize: 16,
      seed: 1,
      optimizer: { key: 'adam', kwargs: { learningRate: 1e30 } },
    }),
    /^training diverged: loss `(ce|loss)` of student is (NaN|Infinity|-Infinity) in epoch 1, batch \d+; lower the learning rate/,
  );
  assert.equal(tf.memory().numTensors, tensors, 'no tensor left behind (optimizer slots included)');
});
