import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  accuracy,
  agreement,
  calibrationBins,
  classificationMetrics,
  ece,
  klToTeacher,
  predictLogits,
} from '../src/eval/index.js';
import { Dataset } from '../src/data/dataset.js';
import { mlp } from '../src/models/index.js';
import { UserError } from '../src/errors.js';

tf.enableProdMode();
await tf.setBackend('cpu');

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} ≠ ${b}`);
const L = Math.log;

// Two classes; logits [ln(p/(1−p)), 0] give confidence p on class 0.
// sample: confidence, predicted class, label → correct?
// 0: 0.9 → 0, label 0 ✓ | 1: 0.9 → 1, label 0 ✗ | 2: 0.7 → 0, label 0 ✓
// 3: 0.7 → 1, label 1 ✓ | 4: 0.55 → 0, label 1 ✗
const logits = Float32Array.from([L(9), 0, 0, L(9), L(7 / 3), 0, 0, L(7 / 3), L(11 / 9), 0]);
const labels = Int32Array.from([0, 0, 0, 1, 1]);
// Teacher: sample 0 uniform (argmax 0 = first), 1 and 3 and 4 equal to the student, 2 reversed.
const teacherLogits = Float32Array.from([0, 0, 0, L(9), 0, L(7 / 3), 0, L(7 / 3), L(11 / 9), 0]);
const numClasses = 2;

test('accuracy and agreement by hand', () => {
  assert.equal(accuracy({ logits, labels, numClasses }), 3 / 5);
  assert.equal(agreement({ logits, teacherLogits, numClasses }), 4 / 5);
  assert.equal(agreement({ logits: teacherLogits, teacherLogits, numClasses }), 1);
  // Ties go to the first maximum, as tf.argMax: [1, 1, 0] → class 0.
  assert.equal(accuracy({ logits: Float32Array.from([1, 1, 0]), labels: Int32Array.from([0]), numClasses: 3 }), 1);
});

test('KL(teacher ‖ student) by hand, in nats', () => {
  // Sample 0: p_t = (½, ½), p_s = (0.9, 0.1): ½ ln(½/0.9) + ½ ln(½/0.1) = ln(5/3).
  // Sample 2: p_t = (0.3, 0.7), p_s = (0.7, 0.3): 0.3 ln(3/7) + 0.7 ln(7/3) = 0.4 ln(7/3). Others 0.
  close(klToTeacher({ logits, teacherLogits, numClasses }), (L(5 / 3) + 0.4 * L(7 / 3)) / 5);
  assert.equal(klToTeacher({ logits: teacherLogits, teacherLogits, numClasses }), 0);
  // Large logits stay finite (log-softmax, not log of softmax).
  const big = Float32Array.from([1000, -1000]);
  // p_t = (1, 0), log p_s,0 = −2000: KL = 2000.
  close(klToTeacher({ logits: Float32Array.from([-1000, 1000]), teacherLogits: big, numClasses }), 2000, 1e-3);
});

test('ECE: 15 equal-width bins, samples in known bins', () => {
  // conf 0.9 → bin (13/15, 14/15]: 2 samples, acc ½ → |½ − 0.9| · 2/5 = 0.16
  // conf 0.7 → bin (10/15, 11/15]: 2 samples, acc 1 → 0.3 · 2/5 = 0.12
  // conf 0.55 → bin (8/15, 9/15]: 1 sample, acc 0 → 0.55 · 1/5 = 0.11
  close(ece({ logits, labels, numClasses }), 0.39);
  const bins = calibrationBins({ logits, labels, numClasses });
  assert.equal(bins.length, 15);
  assert.deepEqual(
    bins.map((b) => b.count),
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 2, 0],
  );
  close(bins[13]!.confidence, 0.9);
  assert.equal(bins[13]!.accuracy, 0.5);
  // A confidence of exactly 1 goes in the last bin; with one bin ECE = |acc − mean conf|.
  assert.equal(
    calibrationBins({ logits: Float32Array.from([100, 0]), labels: Int32Array.from([0]), numClasses })[14]!.count,
    1,
  );
  close(ece({ logits, labels, numClasses, bins: 1 }), Math.abs(0.6 - (0.9 + 0.9 + 0.7 + 0.7 + 0.55) / 5));
});

test('classificationMetrics combines them; shape mistakes are UserErrors', () => {
  const m = classificationMetrics({ logits, labels, numClasses, teacherLogits });
  assert.equal(m.accuracy, 0.6);
  assert.equal(m.agreement, 0.8);
  close(m.klToTeacher!, (L(5 / 3) + 0.4 * L(7 / 3)) / 5);
  close(m.ece, 0.39);
  assert.equal(classificationMetrics({ logits, labels, numClasses }).agreement, undefined);
  assert.throws(() => accuracy({ logits, labels, numClasses: 3 }), UserError);
  assert.throws(
    () => classificationMetrics({ logits, labels, numClasses, teacherLogits: new Float32Array(4) }),
    UserError,
  );
});

function data(n: number, d: number, c: number): Dataset {
  const features = new Float32Array(n * d).map((_, i) => Math.sin(i * 1.7));
  const labels = new Int32Array(n).map((_, i) => i % c);
  return new Dataset({ features, labels, sampleShape: [d], numClasses: c });
}

test('predictLogits: dataset order, uneven last batch, sync or async predict, no leaks', async () => {
  const ds = data(10, 6, 3);
  const m = mlp({ inputShape: [6], numClasses: 3, hidden: [4], seed: 1 });
  const whole = tf.tidy(() => (m.predict(ds.toTensors().x) as tf.Tensor).dataSync()) as Float32Array;
  const before = tf.memory().numTensors;
  const sync = await predictLogits({ predict: (x) => m.predict(x) as tf.Tensor2D, data: ds, batchSize: 3 });
  const asyn = await predictLogits({ predict: async (x) => m.predict(x) as tf.Tensor2D, data: ds, batchSize: 4 });
  assert.equal(tf.memory().numTensors, before);
  assert.equal(sync.length, 30);
  sync.forEach((v, i) => close(v, whole[i]!, 1e-5));
  assert.deepEqual(asyn, sync);
  await assert.rejects(
    predictLogits({ predict: (x) => tf.tidy(() => x.sum(1).expandDims(0) as tf.Tensor2D), data: ds, batchSize: 5 }),
    UserError,
  );
  assert.equal(tf.memory().numTensors, before);
  m.dispose();
});
