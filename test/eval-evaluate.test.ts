import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  classificationMetrics,
  evaluateModels,
  measureLatencies,
  measureLatency,
  modelPredictFn,
  modelSize,
  predictLogits,
} from '../src/eval/index.js';
import { Dataset } from '../src/data/dataset.js';
import { mlp } from '../src/models/index.js';
import { UserError } from '../src/errors.js';
import { assertUserError } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');

function data(n: number, d: number, c: number): Dataset {
  const features = new Float32Array(n * d).map(
    (_, i) => Math.sin(i * 0.37) + (i % d === 0 ? Math.floor(i / d) % c : 0),
  );
  const labels = new Int32Array(n).map((_, i) => i % c);
  return new Dataset({ features, labels, sampleShape: [d], numClasses: c });
}

test('measureLatency: positive medians and p90 per batch size, backend name, no leaks', async () => {
  const m = mlp({ inputShape: [8], numClasses: 3, hidden: [16], seed: 1 });
  const before = tf.memory().numTensors;
  const r = await measureLatency({
    predict: modelPredictFn(m),
    inputShape: [8],
    batchSizes: [1, 64],
    warmup: 2,
    runs: 20,
  });
  assert.equal(tf.memory().numTensors, before);
  assert.equal(r.backend, 'cpu');
  assert.deepEqual(
    r.stats.map((s) => [s.batchSize, s.runs]),
    [
      [1, 20],
      [64, 20],
    ],
  );
  for (const s of r.stats) {
    assert.ok(s.medianMs > 0 && s.p90Ms >= s.medianMs && s.minMs <= s.medianMs, JSON.stringify(s));
  }
  await assert.rejects(measureLatency({ predict: modelPredictFn(m), inputShape: [8], batchSizes: [0] }), UserError);
  m.dispose();
});

test('measureLatencies interleaves the models round by round and times each on its own', async () => {
  const calls: string[] = [];
  const busy = (name: string, ms: number) => (x: tf.Tensor) => {
    calls.push(`${name}${x.shape[0]}`);
    const until = performance.now() + ms;
    while (performance.now() < until);
    return tf.zeros([x.shape[0]!, 2]) as tf.Tensor2D;
  };
  const [slow, fast] = await measureLatencies({
    predicts: [busy('s', 3), busy('f', 0)],
    inputShape: [4],
    batchSizes: [1, 2],
    warmup: 1,
    runs: 3,
  });
  // rounds alternate the models; each timed pass follows an untimed one of the same model
  const round = (b: number) => [`s${b}`, `s${b}`, `f${b}`, `f${b}`];
  assert.deepEqual(calls, [...[1, 1, 1, 1].flatMap(round), ...[2, 2, 2, 2].flatMap(round)]);
  assert.deepEqual(
    slow!.stats.map((s) => [s.batchSize, s.runs]),
    [
      [1, 3],
      [2, 3],
    ],
  );
  for (const [i, s] of slow!.stats.entries()) {
    assert.ok(s.minMs >= 3 && fast!.stats[i]!.medianMs < 3, `${s.minMs} vs ${fast!.stats[i]!.medianMs}`);
  }
});

test('evaluateModels: teacher row then students, metrics consistent with the parts, no leaks', async () => {
  const test_ = data(40, 8, 3);
  const teacher = mlp({ inputShape: [8], numClasses: 3, hidden: [32, 16], seed: 1, name: 'teacher' });
  const s1 = mlp({ inputShape: [8], numClasses: 3, hidden: [8], seed: 2 });
  const s2 = mlp({ inputShape: [8], numClasses: 3, hidden: [4], seed: 3 });
  const before = tf.memory().numTensors;
  let teacherCalls = 0;
  const tPredict = modelPredictFn(teacher);
  const r = await evaluateModels({
    teacher: {
      name: 'teacher',
      predict: (x) => {
        teacherCalls++;
        return tPredict(x);
      },
      model: teacher,
    },
    students: [
      { name: 'kd', model: s1 },
      { name: 'ce', model: s2 },
    ],
    test: test_,
    batchSize: 16,
    latency: { warmup: 1, runs: 20 },
  });
  assert.equal(tf.memory().numTensors, before);
  // Logits: 3 batches, once. Latency: 2 batch sizes × 21 rounds × (untimed + timed pass).
  assert.equal(teacherCalls, 3 + 2 * 21 * 2);
  assert.equal(r.backend, 'cpu');
  assert.deepEqual(
    r.models.map((m) => [m.name, m.role]),
    [
      ['teacher', 'teacher'],
      ['kd', 'student'],
      ['ce', 'student'],
    ],
  );
  const [t, kd] = r.models as [(typeof r.models)[0], (typeof r.models)[0]];
  assert.equal(t.agreement, 1);
  assert.equal(t.klToTeacher, 0);
  assert.deepEqual(t.speedup, { batch1: 1, batch64: 1 });
  assert.equal(t.compression!.params, 1);
  assert.equal(t.compression!.bytes.float16, t.bytes!.float32 / t.bytes!.float16);
  assert.ok(t.compression!.bytes.uint8 > t.compression!.bytes.float16);
  const tLogits = await predictLogits({ predict: tPredict, data: test_ });
  assert.deepEqual(r.teacherLogits, tLogits);
  const kdLogits = await predictLogits({ predict: modelPredictFn(s1), data: test_ });
  const expect = classificationMetrics({
    logits: kdLogits,
    labels: test_.labels,
    numClasses: 3,
    teacherLogits: tLogits,
  });
  assert.equal(kd.accuracy, expect.accuracy);
  assert.equal(kd.agreement, expect.agreement);
  assert.ok(Math.abs(kd.klToTeacher - expect.klToTeacher!) < 1e-9 && kd.klToTeacher > 0);
  assert.equal(kd.params, modelSize({ model: s1 }).params);
  assert.equal(kd.compression!.params, t.params! / kd.params!);
  assert.equal(kd.speedup.batch64, t.latencyMs.batch64 / kd.latencyMs.batch64);
  for (const m of r.models) {
    assert.ok(m.latencyMs.batch1 > 0 && m.latencyMs.batch64 > 0);
    assert.ok(m.ece >= 0 && m.ece <= 1);
  }
  await assertUserError(
    evaluateModels({ teacher: { name: 'x', predict: tPredict }, students: [{ name: 'x', model: s1 }], test: test_ }),
    /two models are named `x`/,
  );
  for (const m of [teacher, s1, s2]) m.dispose();
});

test('a teacher without a LayersModel gets null params/bytes/compression', async () => {
  const test_ = data(10, 4, 2);
  const teacher = mlp({ inputShape: [4], numClasses: 2, hidden: [8], seed: 1 });
  const s = mlp({ inputShape: [4], numClasses: 2, hidden: [2], seed: 2 });
  const r = await evaluateModels({
    teacher: { name: 'onnx', predict: async (x) => modelPredictFn(teacher)(x) },
    students: [{ name: 's', model: s }],
    test: test_,
    latency: { warmup: 0, runs: 20 },
  });
  assert.equal(r.models[0]!.params, null);
  assert.equal(r.models[0]!.bytes, null);
  assert.equal(r.models[1]!.compression, null);
  assert.ok(r.models[1]!.params! > 0);
  teacher.dispose();
  s.dispose();
});
