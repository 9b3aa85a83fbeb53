/**
 * reviewkd against a plain-JS float64 reference of the paper's ABF + HCL (two stages: a 2×2 map
 * and a vector, fused through the attention path), its gradient by finite differences, the
 * warm-up, PyTorch's adaptive average pooling, and no tensor leaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { adaptiveAvgPool } from '../src/knowledge/adapters.js';
import { reviewkdTerm } from '../src/knowledge/index.js';
import { assertUserError, close, closeAll, finiteDiff } from './helpers.js';

await tf.setBackend('cpu');

type Arr = number[];
/** [B, H, W, C] in a flat array. */
interface T4 {
  v: Arr;
  s: [number, number, number, number];
}
const idx = ({ s: [, h, w, c] }: T4, b: number, i: number, j: number, k: number) => ((b * h + i) * w + j) * c + k;
const make = (s: T4['s'], f: (b: number, i: number, j: number, k: number) => number): T4 => {
  const out: T4 = { v: new Array(s[0] * s[1] * s[2] * s[3]).fill(0), s };
  for (let b = 0; b < s[0]; b++)
    for (let i = 0; i < s[1]; i++)
      for (let j = 0; j < s[2]; j++) for (let k = 0; k < s[3]; k++) out.v[idx(out, b, i, j, k)] = f(b, i, j, k);
  return out;
};
const at = (x: T4, b: number, i: number, j: number, k: number) => x.v[idx(x, b, i, j, k)]!;
/** 'same' convolution, kernel [kh, kw, ci, co] flat. */
function conv(x: T4, kernel: Arr, kh: number, co: number): T4 {
  const ci = x.s[3];
  const pad = (kh - 1) / 2;
  return make([x.s[0], x.s[1], x.s[2], co], (b, i, j, o) => {
    let sum = 0;
    for (let di = 0; di < kh; di++)
      for (let dj = 0; dj < kh; dj++) {
        const [y, z] = [i + di - pad, j + dj - pad];
        if (y < 0 || z < 0 || y >= x.s[1] || z >= x.s[2]) continue;
        for (let c = 0; c < ci; c++) sum += at(x, b, y, z, c) * kernel[((di * kh + dj) * ci + c) * co + o]!;
      }
    return sum;
  });
}
function bn(x: T4, gamma: Arr, beta: Arr): T4 {
  const n = x.s[0] * x.s[1] * x.s[2];
  const mean = gamma.map((_, k) => x.v.filter((_, p) => p % x.s[3] === k).reduce((a, b) => a + b, 0) / n);
  const vari = gamma.map(
    (_, k) => x.v.filter((_, p) => p % x.s[3] === k).reduce((a, b) => a + (b - mean[k]!) ** 2, 0) / n,
  );
  return make(
    x.s,
    (b, i, j, k) => ((at(x, b, i, j, k) - mean[k]!) / Math.sqrt(vari[k]! + 1e-5)) * gamma[k]! + beta[k]!,
  );
}
const nearest = (x: T4, h: number, w: number) =>
  make([x.s[0], h, w, x.s[3]], (b, i, j, k) => at(x, b, Math.floor((i * x.s[1]) / h), Math.floor((j * x.s[2]) / w), k));
const pool = (x: T4, l: number) =>
  make([x.s[0], l, l, x.s[3]], (b, i, j, k) => {
    const [r0, r1, c0, c1] = [
      Math.floor((i * x.s[1]) / l),
      Math.ceil(((i + 1) * x.s[1]) / l),
      Math.floor((j * x.s[2]) / l),
      Math.ceil(((j + 1) * x.s[2]) / l),
    ];
    let sum = 0;
    for (let y = r0; y < r1; y++) for (let z = c0; z < c1; z++) sum += at(x, b, y, z, k);
    return sum / ((r1 - r0) * (c1 - c0));
  });
const mse = (a: T4, b: T4) => a.v.reduce((s, v, p) => s + (v - b.v[p]!) ** 2, 0) / a.v.length;
function hcl(f: T4, t: T4): number {
  let [loss, weight, total] = [mse(f, t), 1, 1];
  for (const l of [4, 2, 1].filter((l) => l < f.s[1])) {
    weight /= 2;
    total += weight;
    loss += mse(pool(f, l), pool(t, l)) * weight;
  }
  return loss / total;
}

const B = 3;
const M = 2;
const values = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 1.3);
// stage 1: student [2,2,2] → teacher [2,2,3]; stage 2: student vector [3] → teacher vector [2]
const s1 = values(B * 2 * 2 * 2, 1);
const s2 = values(B * 3, 2);
const t1 = values(B * 2 * 2 * 3, 3);
const t2 = values(B * 2, 4);
const shapes = { student: { a: [2, 2, 2], v: [3] }, teacher: { a: [2, 2, 3], v: [2] } };

function reference(w: Record<string, Arr>[], s1v: Arr, s2v: Arr): number {
  const S2: T4 = { v: s2v, s: [B, 1, 1, 3] };
  const x2 = bn(conv(S2, w[1]!.conv1!, 1, M), w[1]!.gamma1!, w[1]!.beta1!);
  const f2 = bn(conv(x2, w[1]!.conv2!, 3, 2), w[1]!.gamma2!, w[1]!.beta2!);
  const S1: T4 = { v: s1v, s: [B, 2, 2, 2] };
  const x1 = bn(conv(S1, w[0]!.conv1!, 1, M), w[0]!.gamma1!, w[0]!.beta1!);
  const y = nearest(x2, 2, 2);
  const cat = make([B, 2, 2, 2 * M], (b, i, j, k) => (k < M ? at(x1, b, i, j, k) : at(y, b, i, j, k - M)));
  const logits = conv(cat, w[0]!.att!, 1, 2);
  const att = make(logits.s, (b, i, j, k) => 1 / (1 + Math.exp(-(at(logits, b, i, j, k) + w[0]!.attBias![k]!))));
  const fused = make(
    x1.s,
    (b, i, j, k) => at(x1, b, i, j, k) * at(att, b, i, j, 0) + at(y, b, i, j, k) * at(att, b, i, j, 1),
  );
  const f1 = bn(conv(fused, w[0]!.conv2!, 3, 3), w[0]!.gamma2!, w[0]!.beta2!);
  return hcl(f1, { v: t1, s: [B, 2, 2, 3] }) + hcl(f2, { v: t2, s: [B, 1, 1, 2] });
}

function compute(term: ReturnType<typeof reviewkdTerm>, a: tf.Tensor, v: tf.Tensor) {
  return term.compute({
    studentLogits: tf.zeros([B, 2]) as tf.Tensor2D,
    labels: tf.zeros([B], 'int32') as tf.Tensor1D,
    numClasses: 2,
    studentTaps: { a, v },
    teacherTaps: { a: tf.tensor(t1, [B, 2, 2, 3]), v: tf.tensor(t2, [B, 2]) },
  }).reviewkd!;
}

test('value and gradient against the float64 reference; the warm-up scales it', () => {
  const term = reviewkdTerm({ student: ['a', 'v'], teacher: ['a', 'v'], midChannels: M, warmupEpochs: 0, beta: 2 });
  term.prepare!(shapes);
  // the BN scales and shifts start at 1 and 0: move them so the reference checks their place
  tf.tidy(() => term.trainableVariables().forEach((v, i) => v.assign(v.add(tf.scalar(0.1 * (i % 3))))));
  const names = ['conv1', 'gamma1', 'beta1', 'conv2', 'gamma2', 'beta2', 'att', 'attBias'];
  const vars = term.trainableVariables();
  const weights = [names, names.slice(0, 6)].map((list, stage) =>
    Object.fromEntries(list.map((n, i) => [n, Array.from(vars[stage * 8 + i]!.dataSync())])),
  );
  const want = 2 * reference(weights, s1, s2);
  const [a, v] = [tf.tensor(s1, [B, 2, 2, 2]), tf.tensor(s2, [B, 3])];
  close(compute(term, a, v).dataSync()[0]!, want, 1e-4, 'reviewkd value');
  const [ga, gv] = tf.grads((x: tf.Tensor, y: tf.Tensor) => compute(term, x, y))([a, v]);
  closeAll(
    Array.from(ga!.dataSync()),
    finiteDiff((x) => 2 * reference(weights, x, s2), s1),
    2e-3,
    'gradient, map stage',
  );
  closeAll(
    Array.from(gv!.dataSync()),
    finiteDiff((x) => 2 * reference(weights, s1, x), s2),
    2e-3,
    'gradient, vector stage',
  );

  const ramped = reviewkdTerm({ student: ['a', 'v'], teacher: ['a', 'v'], midChannels: M, warmupEpochs: 4, beta: 2 });
  ramped.prepare!(shapes);
  ramped.trainableVariables().forEach((x, i) => x.assign(vars[i]!));
  ramped.onEpochBegin!(0);
  close(compute(ramped, a, v).dataSync()[0]!, want / 4, 1e-4, 'epoch 1 of a 4-epoch warm-up: a quarter');
  ramped.onEpochBegin!(7);
  close(compute(ramped, a, v).dataSync()[0]!, want, 1e-4, 'after the warm-up: all of it');
  assert.deepEqual(ramped.describeState!(), { lambda: 1 });

  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++)
    tf.tidy(() => {
      tf.grads((x: tf.Tensor, y: tf.Tensor) => compute(term, x, y))([a, v]);
    });
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  term.dispose();
  ramped.dispose();
});

test("adaptive average pooling is PyTorch's: 5×5 → 2×2 cells of rows 0-2 and 2-4", () => {
  const x = tf.tensor4d(
    Array.from({ length: 25 }, (_, i) => i),
    [1, 5, 5, 1],
  );
  // cell (0,0): rows 0..2, cols 0..2 → mean of {0,1,2,5,6,7,10,11,12} = 6
  closeAll(Array.from(adaptiveAvgPool(x, 2).dataSync()), [6, 8, 16, 18], 1e-6);
});

test('one-line errors', () => {
  assertUserError(
    () => reviewkdTerm({ student: ['a', 'b'], teacher: ['a'] }),
    'knowledge term `reviewkd`: 2 student layers but 1 teacher layers; give one teacher layer per student layer',
  );
  assertUserError(
    () => reviewkdTerm({ student: [], teacher: [] }),
    'knowledge term `reviewkd`: option `student` must have at least 1 item',
  );
});
