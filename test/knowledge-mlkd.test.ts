/**
 * mlkd against a plain-JS float64 reference (weak and strong halves, five temperatures, the
 * median shares), its gradient by finite differences; the strong view's transforms; and the
 * trainer giving the term both views with the teacher run on them (never a cache).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { strongView } from '../src/data/augment.js';
import { Dataset } from '../src/data/dataset.js';
import { Rng } from '../src/data/rng.js';
import { mlkdTerm } from '../src/knowledge/index.js';
import type { Teacher } from '../src/teachers/types.js';
import { train } from '../src/train/trainer.js';
import { close, closeAll, finiteDiff } from './helpers.js';

await tf.setBackend('cpu');

type Arr = number[];
const softmax = (z: Arr, tau: number) => {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp((v - m) / tau));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const rows = (x: Arr, c: number) => Array.from({ length: x.length / c }, (_, i) => x.slice(i * c, (i + 1) * c));
const median = (v: Arr) => {
  const s = [...v].sort((a, b) => a - b);
  return (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2;
};
const share = (v: Arr) => v.filter((x) => x <= median(v)).length / v.length;

const B = 3;
const C = 4;
const TEMPS = [4, 3, 5, 2, 6];
function reference(s: Arr, t: Arr, y: number[]) {
  const [S, T] = [rows(s, C), rows(t, C)];
  const [sw, ss, tw, ts] = [S.slice(0, B), S.slice(B), T.slice(0, B), T.slice(B)];
  const pw = tw.map((z) => softmax(z, 1));
  const m = share(pw.map((p) => Math.max(...p)));
  const mc = share(Array.from({ length: C }, (_, k) => pw.reduce((a, p) => a + p[k]!, 0)));
  const ce = (zs: Arr[], ys: number[]) => zs.reduce((a, z, i) => a - Math.log(softmax(z, 1)[ys[i]!]!), 0) / zs.length;
  const kl = (zs: Arr[], zt: Arr[], tau: number) =>
    (tau *
      tau *
      zs.reduce((a, z, i) => {
        const [p, q] = [softmax(zt[i]!, tau), softmax(z, tau)];
        return a + p.reduce((acc, pk, k) => acc + pk * Math.log(pk / q[k]!), 0);
      }, 0)) /
    zs.length;
  const rel = (byClass: boolean, tau: number) => {
    const [ps, pt] = [sw.map((z) => softmax(z, tau)), tw.map((z) => softmax(z, tau))];
    const n = byClass ? C : B;
    let sum = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        const g = (p: Arr[]) =>
          byClass ? p.reduce((a, r) => a + r[i]! * r[j]!, 0) : p[i]!.reduce((a, v, k) => a + v * p[j]![k]!, 0);
        sum += (g(ps) - g(pt)) ** 2;
      }
    return sum / n;
  };
  const all = (f: (tau: number) => number) => TEMPS.reduce((a, tau) => a + f(tau), 0);
  return {
    'mlkd-ce': ce(sw, y.slice(0, B)) + ce(ss, y.slice(B)),
    'mlkd-kd': all((tau) => m * kl(sw, tw, tau) + kl(ss, ts, tau)),
    'mlkd-bc': all((tau) => m * rel(false, tau)),
    'mlkd-cc': all((tau) => mc * rel(true, tau)),
  };
}

const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 * Math.sin(seed * 7.1 + i * 1.37));
const s0 = values(2 * B * C, 1);
const t0 = values(2 * B * C, 2);
const labels = [0, 2, 3, 0, 2, 3];

test('every part against the float64 reference, and the gradient of their sum', () => {
  const term = mlkdTerm();
  assert.equal(term.needs.views, 'weak+strong');
  const run = (s: Arr) =>
    term.compute({
      studentLogits: tf.tensor2d(s, [2 * B, C]),
      teacherLogits: tf.tensor2d(t0, [2 * B, C]),
      labels: tf.tensor1d(labels, 'int32'),
      numClasses: C,
    });
  const got = tf.tidy(() => Object.fromEntries(Object.entries(run(s0)).map(([k, v]) => [k, v.dataSync()[0]!])));
  const want = reference(s0, t0, labels);
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort());
  for (const k of Object.keys(want)) close(got[k]!, want[k as keyof typeof want], 1e-4, k);
  const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  const grad = tf.tidy(() =>
    Array.from(
      tf
        .grad((x: tf.Tensor) =>
          tf.addN(
            Object.values(
              term.compute({
                studentLogits: x as tf.Tensor2D,
                teacherLogits: tf.tensor2d(t0, [2 * B, C]),
                labels: tf.tensor1d(labels, 'int32'),
                numClasses: C,
              }),
            ),
          ),
        )(tf.tensor2d(s0, [2 * B, C]))
        .dataSync(),
    ),
  );
  closeAll(
    grad,
    finiteDiff((x) => total(reference(x, t0, labels)), s0),
    2e-3,
    'gradient',
  );
});

test('the strong view: shift and flip move pixels exactly; cutout zeroes a square; draws come from the rng', () => {
  const img = Float32Array.from({ length: 2 * 5 * 5 }, (_, i) => i + 1);
  const plain = strongView(img, [2, 5, 5, 1], new Rng(3), { shift: 0, cutout: 0, contrast: 0 });
  // without shift, cutout or contrast each image is itself or its mirror
  for (let n = 0; n < 2; n++) {
    const out = Array.from(plain.slice(n * 25, n * 25 + 25));
    const same = out.every((v, k) => v === img[n * 25 + k]);
    const mirror = out.every((v, k) => v === img[n * 25 + Math.floor(k / 5) * 5 + (4 - (k % 5))]);
    assert.ok(same || mirror);
  }
  const a = strongView(img, [2, 5, 5, 1], new Rng(9));
  const b = strongView(img, [2, 5, 5, 1], new Rng(9));
  assert.deepEqual(a, b, 'same rng state, same views');
  const cut = strongView(new Float32Array(100).fill(1), [1, 10, 10, 1], new Rng(1), {
    shift: 0,
    cutout: 0.4,
    contrast: 0,
  });
  const zeros = cut.filter((v) => v === 0).length;
  assert.ok(zeros > 0 && zeros <= 16, `cutout of a 4×4 square at most (got ${zeros} zeros)`);
});

test('the trainer steps on both views and runs the teacher on both', async () => {
  const data = new Dataset({
    features: Float32Array.from({ length: 8 * 4 * 4 }, (_, i) => (i % 7) / 7),
    labels: Int32Array.from({ length: 8 }, (_, i) => i % 2),
    sampleShape: [4, 4, 1],
    numClasses: 2,
  });
  const seen: number[] = [];
  const teacherModel = tf.sequential({
    layers: [tf.layers.flatten({ inputShape: [4, 4, 1] }), tf.layers.dense({ units: 2 })],
  });
  const teacher: Teacher = {
    kind: 'test',
    inputShape: [4, 4, 1],
    numClasses: 2,
    async predict(x, options) {
      seen.push(x.shape[0]!);
      assert.equal(options?.indices, undefined, 'no cache lookup');
      return { logits: teacherModel.predict(x) as tf.Tensor2D, taps: {} };
    },
    tapNames: () => [],
    dispose: () => teacherModel.dispose(),
  };
  const student = tf.sequential({
    layers: [tf.layers.flatten({ inputShape: [4, 4, 1] }), tf.layers.dense({ units: 2 })],
  });
  const before = tf.memory().numTensors;
  const r = await train({
    learners: [{ name: 's', model: student, terms: [{ term: mlkdTerm(), weight: 1 }] }],
    teacher,
    train: data,
    epochs: 2,
    batchSize: 4,
    seed: 1,
  });
  assert.deepEqual(seen, [8, 8, 8, 8], 'each batch of 4 and its strong view');
  assert.ok(Number.isFinite(r.history['s']!.at(-1)!.losses['mlkd-kd']!));
  assert.equal(tf.memory().numTensors, before, 'numTensors flat across the steps');
  student.dispose();
  teacher.dispose();
});
