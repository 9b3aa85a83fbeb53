import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  createAdapter,
  crdTerm,
  fitnetsTerm,
  paramCount,
  resizeSpatial,
  termParamCount,
} from '../src/knowledge/index.js';
import { assertUserError } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const values = (n: number, seed: number) => range(n).map((i) => Math.sin(seed * 12.9898 + i * 78.233));
function closeAll(actual: ArrayLike<number>, expected: number[], tol = 1e-5): void {
  assert.equal(actual.length, expected.length);
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i]! - e) <= tol, `[${i}] ${actual[i]} vs ${e}`));
}
/** Bilinear source weights along one axis, tfjs's convention (alignCorners false, no half-pixel): src = dst·in/out. */
const taps1d = (inSize: number, outSize: number, i: number): [number, number, number] => {
  const src = (i * inSize) / outSize;
  const lo = Math.floor(src);
  return [lo, Math.min(lo + 1, inSize - 1), src - lo];
};

test('identity when the shapes are equal: no variables, the input itself', () => {
  const a = createAdapter({ from: [4, 4, 2], to: [4, 4, 2] });
  assert.equal(a.kind, 'identity');
  assert.deepEqual(a.variables, []);
  const x = tf.ones([2, 4, 4, 2]);
  assert.equal(a.apply(x), x);
  tf.dispose(x);
});

test('dense [5] → [3]: x·W + b, kernel and bias U(±1/√5) from the seed, 18 parameters', () => {
  const a = createAdapter({ from: [5], to: [3], seed: 7 });
  assert.equal(a.kind, 'dense');
  assert.deepEqual(
    a.variables.map((v) => v.shape),
    [[5, 3], [3]],
  );
  assert.equal(paramCount(a.variables), 5 * 3 + 3);
  const [w, b] = a.variables.map((v) => Array.from(v.dataSync()));
  const limit = 1 / Math.sqrt(5);
  assert.ok(w!.every((v) => Math.abs(v) <= limit) && new Set(w).size === 15, 'PyTorch-default kernel');
  assert.ok(b!.every((v) => Math.abs(v) <= limit) && new Set(b).size === 3, 'PyTorch-default bias');
  const x = values(10, 1);
  const y = tf.tidy(() => a.apply(tf.tensor2d(x, [2, 5])).dataSync());
  closeAll(
    y,
    range(2).flatMap((n) => range(3).map((j) => range(5).reduce((s, i) => s + x[n * 5 + i]! * w![i * 3 + j]!, b![j]!))),
  );
  const same = createAdapter({ from: [5], to: [3], seed: 7 });
  const other = createAdapter({ from: [5], to: [3], seed: 8 });
  assert.deepEqual(same.variables[0]!.dataSync(), a.variables[0]!.dataSync(), 'same seed, same kernel');
  assert.notDeepEqual(other.variables[0]!.dataSync(), a.variables[0]!.dataSync());
  [a, same, other].forEach((ad) => ad.dispose());
});

test('1×1 conv [4,4,2] → [4,4,3] without resize: 2·3 + 3 parameters', () => {
  const a = createAdapter({ from: [4, 4, 2], to: [4, 4, 3] });
  assert.equal(a.kind, 'conv1x1');
  assert.deepEqual(
    a.variables.map((v) => v.shape),
    [[1, 1, 2, 3], [3]],
  );
  assert.equal(paramCount(a.variables), 9);
  const [k, b] = a.variables.map((v) => Array.from(v.dataSync()));
  const x = values(2 * 16 * 2, 2);
  const y = tf.tidy(() => a.apply(tf.tensor4d(x, [2, 4, 4, 2])));
  assert.deepEqual(y.shape, [2, 4, 4, 3]);
  closeAll(
    y.dataSync(),
    range(32).flatMap((p) => range(3).map((o) => x[p * 2]! * k![o]! + x[p * 2 + 1]! * k![3 + o]! + b![o]!)),
  );
  tf.dispose(y);
  a.dispose();
});

test('1×1 conv with resize: [8,8,2] → [4,4,3] by 2×2 average pooling; [3,3,2] → [6,6,4] bilinear', () => {
  const down = createAdapter({ from: [8, 8, 2], to: [4, 4, 3] });
  const x = values(8 * 8 * 2, 3);
  const [k, b] = down.variables.map((v) => Array.from(v.dataSync()));
  const px = (i: number, j: number, c: number) => x[(i * 8 + j) * 2 + c]!;
  const pooled = (i: number, j: number, c: number) =>
    (px(2 * i, 2 * j, c) + px(2 * i + 1, 2 * j, c) + px(2 * i, 2 * j + 1, c) + px(2 * i + 1, 2 * j + 1, c)) / 4;
  const y = tf.tidy(() => down.apply(tf.tensor4d(x, [1, 8, 8, 2])));
  assert.deepEqual(y.shape, [1, 4, 4, 3]);
  closeAll(
    y.dataSync(),
    range(16).flatMap((p) =>
      range(3).map(
        (o) => pooled(Math.floor(p / 4), p % 4, 0) * k![o]! + pooled(Math.floor(p / 4), p % 4, 1) * k![3 + o]! + b![o]!,
      ),
    ),
  );
  const up = createAdapter({ from: [3, 3, 2], to: [6, 6, 4] });
  assert.equal(paramCount(up.variables), 2 * 4 + 4);
  const z = tf.tidy(() => up.apply(tf.ones([2, 3, 3, 2])));
  assert.deepEqual(z.shape, [2, 6, 6, 4]);
  tf.dispose([y, z]);
  [down, up].forEach((a) => a.dispose());
});

test('resize only when the channels match; resizeSpatial pools whole factors, else bilinear', () => {
  const a = createAdapter({ from: [4, 4, 2], to: [2, 2, 2] });
  assert.equal(a.kind, 'resize');
  assert.deepEqual(a.variables, []);
  const x = values(3 * 5, 4);
  const bilinear = tf.tidy(() => Array.from(resizeSpatial(tf.tensor4d(x, [1, 3, 5, 1]), 2, 3).dataSync()));
  const at = (i: number, j: number) => x[i * 5 + j]!;
  const expected = range(2).flatMap((i) =>
    range(3).map((j) => {
      const [r0, r1, fr] = taps1d(3, 2, i);
      const [c0, c1, fc] = taps1d(5, 3, j);
      const top = at(r0, c0) + (at(r0, c1) - at(r0, c0)) * fc;
      const bottom = at(r1, c0) + (at(r1, c1) - at(r1, c0)) * fc;
      return top + (bottom - top) * fr;
    }),
  );
  closeAll(bilinear, expected);
  const y = tf.ones([1, 6, 6, 1]);
  assert.equal(resizeSpatial(y as tf.Tensor4D, 6, 6), y, 'same size: unchanged');
  tf.dispose(y);
});

test('a feature map cannot be adapted to a vector: one-line UserError', () => {
  assertUserError(
    () => createAdapter({ from: [4, 4, 2], to: [10] }),
    'cannot adapt a student output [4,4,2] to a teacher output [10]; tap two vectors or two [H,W,C] feature maps',
  );
});

test('terms create their variables in prepare (idempotent), count them, train them, and free them on dispose', () => {
  const start = tf.memory().numTensors;
  const term = fitnetsTerm({ student: 'block1_pool', teacher: 'block2_pool' });
  assert.deepEqual(term.trainableVariables(), [], 'nothing before prepare');
  const shapes = { student: { block1_pool: [14, 14, 2] }, teacher: { block2_pool: [7, 7, 8] } };
  term.prepare!(shapes);
  const vars = term.trainableVariables();
  assert.equal(term.adapter()!.kind, 'conv1x1');
  assert.equal(termParamCount(term), 2 * 8 + 8);
  term.prepare!(shapes);
  assert.deepEqual(term.trainableVariables(), vars, 'a second prepare with the same shapes keeps the variables');
  const grads = tf.tidy(() => {
    const ins = {
      studentLogits: tf.zeros([2, 3]) as tf.Tensor2D,
      labels: tf.zeros([2], 'int32') as tf.Tensor1D,
      numClasses: 3,
      teacherLogits: tf.zeros([2, 3]) as tf.Tensor2D,
      studentTaps: { block1_pool: tf.randomUniform([2, 14, 14, 2], 0, 1, 'float32', 1) },
      teacherTaps: { block2_pool: tf.randomUniform([2, 7, 7, 8], 0, 1, 'float32', 2) },
    };
    const { grads } = tf.variableGrads(() => term.compute(ins)['fitnets']!, vars);
    return vars.map((v) => grads[v.name]!.abs().sum().dataSync()[0]!);
  });
  assert.ok(
    grads.every((g) => g > 0),
    `adapter gradients ${grads}`,
  );
  const crd = crdTerm({ featDim: 16 });
  crd.prepare!({ student: { features: [32] }, teacher: { features: [64] } });
  assert.equal(termParamCount(crd), 32 * 16 + 16 + 64 * 16 + 16);
  term.dispose();
  crd.dispose();
  assert.deepEqual(term.trainableVariables(), []);
  assert.equal(tf.memory().numTensors, start, 'dispose frees every variable');
});
