import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  ccTerm,
  createTerm,
  crdTerm,
  knowledge,
  rkdTerm,
  spTerm,
  type CrdInputs,
  type KnowledgeTerm,
} from '../src/knowledge/index.js';
import { assertUserError, close, closeAll, finiteDiff } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');

// ---- Plain-JS references (float64), independent of the code under test. -------------------
type Arr = number[];
type M = number[][];
const sum = (xs: Arr) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: Arr) => sum(xs) / xs.length;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const values = (n: number, seed: number): Arr =>
  range(n).map((i) => Math.sin(seed * 12.9898 + i * 78.233) * 0.9 + 0.05 * ((i * seed) % 3));
const rowsOf = (x: Arr, b: number): M => range(b).map((i) => x.slice((i * x.length) / b, ((i + 1) * x.length) / b));
const dot = (a: Arr, b: Arr) => sum(a.map((v, i) => v * b[i]!));
const norm = (v: Arr) => Math.sqrt(dot(v, v));
const unit = (v: Arr) => v.map((a) => a / Math.max(norm(v), 1e-12));
const sub = (a: Arr, b: Arr) => a.map((v, i) => v - b[i]!);
const huber = (d: number) => (Math.abs(d) < 1 ? 0.5 * d * d : Math.abs(d) - 0.5);
const logSoftmax = (z: Arr) => {
  const m = Math.max(...z);
  const l = Math.log(sum(z.map((v) => Math.exp(v - m)))) + m;
  return z.map((v) => v - l);
};

/** RKD's potentials by their definitions. */
function psiD(x: M): M {
  const d = x.map((a) => x.map((b) => norm(sub(a, b))));
  const positive = d.flat().filter((v) => v > 0);
  const mu = mean(positive);
  return d.map((row) => row.map((v) => v / mu));
}
const psiA = (x: M): Arr => x.flatMap((a) => x.flatMap((b) => x.map((c) => dot(unit(sub(b, a)), unit(sub(c, a))))));
const gram = (x: M) => x.map((a) => unit(x.map((b) => dot(a, b))));
const rbf = (x: M, g: number, order: number) =>
  x.map(unit).map((a, _, u) =>
    u.map((b) => {
      let [s, term] = [0, 1];
      for (let p = 0; p <= order; p++) {
        s += term;
        term *= (2 * g * dot(a, b)) / (p + 1);
      }
      return Math.exp(-2 * g) * s;
    }),
  );
const frob2 = (a: M, b: M) => sum(a.flatMap((row, i) => row.map((v, j) => (v - b[i]![j]!) ** 2)));

// ---- Running the code under test. ---------------------------------------------------------
const B = 4;
interface Case {
  s: Arr;
  ds: number;
  t: Arr;
  dt: number;
}
const vec = (ds: number, dt: number): Case => ({ s: values(B * ds, 1), ds, t: values(B * dt, 2), dt });
function inputs(term: KnowledgeTerm, s: tf.Tensor, t: tf.Tensor): CrdInputs {
  const b = s.shape[0]!;
  return {
    studentLogits: tf.zeros([b, 3]) as tf.Tensor2D,
    teacherLogits: tf.zeros([b, 3]) as tf.Tensor2D,
    labels: tf.zeros([b], 'int32') as tf.Tensor1D,
    numClasses: 3,
    studentTaps: Object.fromEntries((term.needs.studentTaps ?? []).map((n) => [n, s])),
    teacherTaps: Object.fromEntries((term.needs.teacherTaps ?? []).map((n) => [n, t])),
  };
}
const prepare = (term: KnowledgeTerm, c: Case) =>
  term.prepare?.({
    student: Object.fromEntries((term.needs.studentTaps ?? []).map((n) => [n, [c.ds]])),
    teacher: Object.fromEntries((term.needs.teacherTaps ?? []).map((n) => [n, [c.dt]])),
  });
function evaluate(term: KnowledgeTerm, c: Case, extra: Partial<CrdInputs> = {}) {
  prepare(term, c);
  return tf.tidy(() => {
    const [s, t] = [tf.tensor2d(c.s, [c.s.length / c.ds, c.ds]), tf.tensor2d(c.t, [c.t.length / c.dt, c.dt])];
    const out = term.compute({ ...inputs(term, s, t), ...extra });
    const losses = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.dataSync()[0]!]));
    const [gs, gt] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.addN(Object.values(term.compute({ ...inputs(term, a, b), ...extra }))),
    )([s, t]);
    return { losses, gs: Array.from(gs!.dataSync()), gt: Array.from(gt!.dataSync()) };
  });
}
/** Losses by name against references f(student); gradient of their sum by finite differences; teacher constant. */
function check(
  term: KnowledgeTerm,
  c: Case,
  refs: Record<string, (s: Arr) => number>,
  extra: Partial<CrdInputs> = {},
  tol = 2e-4,
): void {
  const { losses, gs, gt } = evaluate(term, c, extra);
  assert.deepEqual(Object.keys(losses).sort(), Object.keys(refs).sort());
  for (const [name, f] of Object.entries(refs)) close(losses[name]!, f(c.s), tol, `${name} value`);
  closeAll(
    gs,
    finiteDiff((s) => sum(Object.values(refs).map((f) => f(s))), c.s),
    2e-3,
    'gradient',
  );
  assert.ok(
    gt.every((g) => g === 0),
    'teacher gradient must be 0',
  );
}

// ---- rkd ----------------------------------------------------------------------------------
describe('rkd', () => {
  const refD = (t: Arr, dt: number, ds: number) => (s: Arr) => {
    const [ps, pt] = [psiD(rowsOf(s, s.length / ds)), psiD(rowsOf(t, t.length / dt))];
    return mean(ps.flatMap((row, i) => row.map((v, j) => huber(v - pt[i]![j]!))));
  };
  const refA = (t: Arr, dt: number, ds: number) => (s: Arr) => {
    const [as, at] = [psiA(rowsOf(s, s.length / ds)), psiA(rowsOf(t, t.length / dt))];
    return mean(as.map((v, i) => huber(v - at[i]!)));
  };
  test('defaults w_D = 25, w_A = 50: distance over mean distance, angles, Huber; widths differ', () => {
    const c = vec(3, 5);
    check(rkdTerm(), c, {
      'rkd-distance': (s) => 25 * refD(c.t, c.dt, c.ds)(s),
      'rkd-angle': (s) => 50 * refA(c.t, c.dt, c.ds)(s),
    });
  });
  test('large differences reach the linear part of Huber', () => {
    const c = { ...vec(2, 2), s: [0, 0, 10, 0, 0, 0.1, 0.1, 0.2] };
    check(rkdTerm({ angleWeight: 0, distanceWeight: 1 }), c, { 'rkd-distance': refD(c.t, c.dt, c.ds) });
  });
  test('by hand, points 0, 1, 3 vs 0, 1, 2 on a line: distance 25·4·½·(¼)²/9 = 25/72, angle 0; scaling gives 0', () => {
    const line = (s: Arr, t: Arr) => evaluate(rkdTerm(), { s, ds: 1, t, dt: 1 }).losses;
    const v = line([0, 1, 3], [0, 1, 2]);
    close(v['rkd-distance']!, 25 / 72, 1e-5);
    close(v['rkd-angle']!, 0, 1e-7);
    const scaled = line([0, 2, 6], [0, 1, 3]);
    close(scaled['rkd-distance']!, 0, 1e-6);
    close(scaled['rkd-angle']!, 0, 1e-7);
  });
});

// ---- sp -----------------------------------------------------------------------------------
describe('sp', () => {
  test('β · ‖Ĝ_t − Ĝ_s‖²_F / B², rows of G = QQᵀ normalised, β = 3000', () => {
    const c = vec(3, 6);
    check(spTerm(), c, { sp: (s) => (3000 * frob2(gram(rowsOf(c.t, B)), gram(rowsOf(s, B)))) / (B * B) });
  });
  test('by hand: s = [1, 2], t = [1, −1] (D = 1): Ĝ_s rows (1, 2)/√5, Ĝ_t rows ±(1, −1)/√2', () => {
    const [a, b] = [1 / Math.sqrt(2), 1 / Math.sqrt(5)];
    const hand = ((a - b) ** 2 + (-a - 2 * b) ** 2 + (-a - b) ** 2 + (a - 2 * b) ** 2) / 4;
    close(evaluate(spTerm({ beta: 1 }), { s: [1, 2], ds: 1, t: [1, -1], dt: 1 }).losses['sp']!, hand, 1e-6);
  });
});

// ---- cc -----------------------------------------------------------------------------------
describe('cc', () => {
  test('β · ‖C_t − C_s‖²_F / B², Taylor RBF of order 2 at γ = 0.4 on unit features', () => {
    const c = vec(3, 5);
    check(ccTerm({ beta: 10 }), c, {
      cc: (s) => (10 * frob2(rbf(rowsOf(c.t, B), 0.4, 2), rbf(rowsOf(s, B), 0.4, 2))) / (B * B),
    });
    check(ccTerm({ gamma: 1, order: 4 }), c, {
      cc: (s) => frob2(rbf(rowsOf(c.t, B), 1, 4), rbf(rowsOf(s, B), 1, 4)) / (B * B),
    });
  });
  test('by hand: orthogonal student pair vs parallel teacher pair: 2·(e^{−0.8}·(0.8 + 0.32))² / 4', () => {
    const hand = (2 * (Math.exp(-0.8) * 1.12) ** 2) / 4;
    close(evaluate(ccTerm(), { s: [1, 0, 0, 1], ds: 2, t: [1, 0, 2, 0], dt: 2 }).losses['cc']!, hand, 1e-6);
  });
  test('the order-P series approaches the exact RBF exp(−γ‖f_i − f_j‖²)', () => {
    const f = rowsOf(values(6, 5), 3).map(unit);
    const exact = f.map((a) => f.map((b) => Math.exp(-0.4 * norm(sub(a, b)) ** 2)));
    const [two, eight] = [frob2(rbf(f, 0.4, 2), exact), frob2(rbf(f, 0.4, 8), exact)];
    assert.ok(two < 0.05 && eight < 1e-10, `order 2: ${two}, order 8: ${eight}`);
  });
});

// ---- crd ----------------------------------------------------------------------------------
describe('crd', () => {
  const heads = (term: KnowledgeTerm) => term.trainableVariables().map((v) => Array.from(v.dataSync()));
  const embed = (x: M, kernel: Arr, bias: Arr, dim: number) =>
    x.map((row) =>
      unit(
        range(dim).map(
          (j) =>
            dot(
              row,
              row.map((_, i) => kernel[i * dim + j]!),
            ) + bias[j]!,
        ),
      ),
    );
  test('batch mode (default): β · [CE(L, diag) + CE(Lᵀ, diag)], L = v_s v_tᵀ / τ; both heads train', () => {
    const c = vec(3, 5);
    const term = crdTerm({ featDim: 4 });
    prepare(term, c);
    const [ks, bs, kt, bt] = heads(term);
    assert.deepEqual(
      term.trainableVariables().map((v) => v.shape),
      [[3, 4], [4], [5, 4], [4]],
    );
    const vt = embed(rowsOf(c.t, B), kt!, bt!, 4);
    const ref = (s: Arr) => {
      const vs = embed(rowsOf(s, B), ks!, bs!, 4);
      const l = vs.map((a) => vt.map((b) => dot(a, b) / 0.07));
      const ce = (m: M) => mean(m.map((row, i) => -logSoftmax(row)[i]!));
      return 0.8 * (ce(l) + ce(l[0]!.map((_, j) => l.map((row) => row[j]!))));
    };
    check(term, c, { crd: ref }, {}, 1e-3);
    const grads = tf.tidy(() => {
      const ins = inputs(term, tf.tensor2d(c.s, [B, 3]), tf.tensor2d(c.t, [B, 5]));
      const { grads } = tf.variableGrads(() => term.compute(ins)['crd']!, term.trainableVariables());
      return Object.values(grads).map((g) => g.abs().sum().dataSync()[0]!);
    });
    assert.equal(grads.length, 4);
    assert.ok(
      grads.every((g) => g > 0),
      `head gradients ${grads}`,
    );
    term.dispose();
  });
  test('memory mode: NCE against K memory rows, Z fixed on the first batch, momentum update', () => {
    const [N, K, d, tau, mu] = [10, 3, 4, 0.5, 0.5];
    const c = vec(3, 5);
    const term = crdTerm({ mode: 'memory', datasetSize: N, negatives: K, featDim: d, temperature: tau, momentum: mu });
    prepare(term, c);
    const [ks, bs, kt, bt] = heads(term);
    const memory = term.memory()!;
    const [ms, mt] = [memory.student.arraySync() as M, memory.teacher.arraySync() as M];
    const indices = Int32Array.from([7, 2, 9, 0]);
    const draws = [0.15, 0.55, 0.95]; // negatives floor(r·N) = 1, 5, 9; a cycle of K draws repeats them every call
    let n = 0;
    const original = Math.random;
    Math.random = () => draws[n++ % K]!;
    try {
      const neg = draws.map((r) => Math.floor(r * N));
      const vt = embed(rowsOf(c.t, B), kt!, bt!, d);
      const scores = (v: M, bank: M) =>
        v.map((a, b) => [indices[b]!, ...neg].map((row) => Math.exp(dot(a, bank[row]!) / tau)));
      const z0 = (v: M, bank: M) => mean(scores(v, bank).flat()) * N;
      const vs0 = embed(rowsOf(c.s, B), ks!, bs!, d);
      const [zs, zt] = [z0(vs0, mt), z0(vt, ms)];
      const nce = (sc: M, z: number) =>
        -sum(
          sc.map((row) => {
            const [p, ...q] = row.map((v) => v / z);
            return Math.log(p! / (p! + K / N + 1e-7)) + sum(q.map((x) => Math.log(K / N / (x + K / N + 1e-7))));
          }),
        ) / B;
      const ref = (s: Arr) => 0.8 * (nce(scores(embed(rowsOf(s, B), ks!, bs!, d), mt), zs) + nce(scores(vt, ms), zt));
      const value = evaluate(term, c, { indices }).losses['crd']!;
      close(value, ref(c.s), 1e-4, 'crd memory value');
      assert.deepEqual(
        memory.z!.map((z) => Math.round(z * 1e3)),
        [zs, zt].map((z) => Math.round(z * 1e3)),
      );
      // evaluate ran compute twice (value, then gradient): row y is now unit(μ·unit(μ·m + (1−μ)v) + (1−μ)v).
      const step = (m: Arr, v: Arr) => unit(m.map((x, i) => mu * x + (1 - mu) * v[i]!));
      const twice = (m: Arr, v: Arr) => step(step(m, v), v);
      const after = memory.student.arraySync() as M;
      indices.forEach((y, b) =>
        after[y]!.forEach((v, j) => close(v, twice(ms[y]!, vs0[b]!)[j]!, 1e-5, `student bank row ${y}`)),
      );
      assert.deepEqual(after[3], ms[3], 'rows outside the batch stay');
      const still = crdTerm({
        mode: 'memory',
        datasetSize: N,
        negatives: K,
        featDim: d,
        temperature: tau,
        momentum: 1,
      });
      prepare(still, c);
      const [ks2, bs2, kt2, bt2] = heads(still);
      const [ms2, mt2] = [still.memory()!.student.arraySync() as M, still.memory()!.teacher.arraySync() as M];
      const vt2 = embed(rowsOf(c.t, B), kt2!, bt2!, d);
      const z2 = [z0(embed(rowsOf(c.s, B), ks2!, bs2!, d), mt2), z0(vt2, ms2)];
      const ref2 = (s: Arr) =>
        0.8 * (nce(scores(embed(rowsOf(s, B), ks2!, bs2!, d), mt2), z2[0]!) + nce(scores(vt2, ms2), z2[1]!));
      check(still, c, { crd: ref2 }, { indices }, 1e-3); // μ = 1 keeps the banks: a fixed function to differentiate
      still.dispose();
    } finally {
      Math.random = original;
    }
    term.dispose();
  });
  test('memory mode without indices, or without datasetSize, is a UserError', () => {
    assertUserError(
      () => crdTerm({ mode: 'memory' }),
      'knowledge term `crd`: mode `memory` needs option `datasetSize` (the number of training samples); or use mode `batch`',
    );
    const term = crdTerm({ mode: 'memory', datasetSize: 8, featDim: 2 });
    assertUserError(
      () => evaluate(term, vec(3, 3)),
      'knowledge term `crd`: mode `memory` needs the dataset indices of each batch (the trainer passes them); use mode `batch` when calling it directly',
    );
    term.dispose();
  });
});

// ---- Contract -----------------------------------------------------------------------------
test('no tensor leaks in compute and its gradient; dispose frees the variables', () => {
  const c = vec(3, 5);
  const indices = Int32Array.from([0, 1, 2, 3]);
  const terms = [rkdTerm(), spTerm(), ccTerm(), crdTerm(), crdTerm({ mode: 'memory', datasetSize: 6, negatives: 5 })];
  terms.forEach((t) => prepare(t, c));
  const s = tf.tensor2d(c.s, [B, 3]);
  const t = tf.tensor2d(c.t, [B, 5]);
  const before = tf.memory().numTensors;
  for (const term of terms) {
    const ins = { ...inputs(term, s, t), indices };
    for (let i = 0; i < 3; i++) {
      tf.dispose(Object.values(term.compute(ins)));
      tf.tidy(() => {
        tf.grad((a: tf.Tensor) => tf.addN(Object.values(term.compute({ ...ins, studentTaps: { features: a } }))))(s);
      });
    }
    tf.dispose([ins.studentLogits, ins.teacherLogits, ins.labels]);
  }
  assert.equal(tf.memory().numTensors, before);
  const vars = tf.memory().numTensors;
  terms.forEach((term) => term.dispose());
  assert.equal(
    tf.memory().numTensors,
    vars - 4 - 4 - 3,
    'crd: 2 heads × (kernel, bias) each, plus two memory banks and their normalisers',
  );
  tf.dispose([s, t]);
});

test('options are validated with one-line UserErrors; every key is registered', () => {
  assertUserError(
    () => rkdTerm({ distanceWeight: -1 }),
    'knowledge term `rkd`: option `distanceWeight` must be >= 0 (got -1)',
  );
  assertUserError(
    () => createTerm('rkd', { weight: 1 }),
    'knowledge term `rkd`: unknown option `weight`; known: student, teacher, distanceWeight, angleWeight',
  );
  assertUserError(
    () => spTerm({ student: 3 as never }),
    'knowledge term `sp`: option `student` must be a string (got 3)',
  );
  assertUserError(() => ccTerm({ gamma: 0 }), 'knowledge term `cc`: option `gamma` must be > 0 (got 0)');
  assertUserError(() => ccTerm({ order: 1.5 }), 'knowledge term `cc`: option `order` must be a whole number (got 1.5)');
  assertUserError(
    () => crdTerm({ mode: 'queue' as never }),
    'knowledge term `crd`: option `mode` must be one of batch, memory (got "queue")',
  );
  assertUserError(() => crdTerm({ temperature: 0 }), 'knowledge term `crd`: option `temperature` must be > 0 (got 0)');
  assertUserError(() => crdTerm({ momentum: 2 }), 'knowledge term `crd`: option `momentum` must be <= 1 (got 2)');
  assertUserError(() => crdTerm({ featDim: 0 }), 'knowledge term `crd`: option `featDim` must be >= 1 (got 0)');
  for (const key of ['fitnets', 'at', 'pkt', 'nst', 'rkd', 'sp', 'cc', 'crd']) assert.ok(knowledge.has(key), key);
  for (const key of ['rkd', 'sp', 'cc', 'crd', 'pkt']) {
    assert.deepEqual(
      createTerm(key).needs,
      { teacher: true, studentTaps: ['features'], teacherTaps: ['features'] },
      key,
    );
  }
});
