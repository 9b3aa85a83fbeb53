import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { assertUserError } from './helpers.js';
import {
  createTerm,
  crossEntropyTerm,
  ctkdLambda,
  ctkdTerm,
  dkdTerm,
  distTerm,
  hardTargetTerm,
  kdTerm,
  knowledge,
  logitsL1Term,
  logitsMseTerm,
  nkdTerm,
  pskdAlpha,
  pskdTerm,
  softCrossEntropyTerm,
  type KnowledgeTerm,
} from '../src/knowledge/index.js';

tf.enableProdMode();
await tf.setBackend('cpu');

// ---- Plain-JS references (float64), independent of the code under test. -----------------
type M = number[][];
const ZS: M = [
  [1.0, 2.0, 0.5],
  [0.3, -1.0, 2.0],
];
const ZT: M = [
  [2.0, 1.0, 0.0],
  [0.0, 0.5, 3.0],
];
const Y = [1, 2];
const B = 2;
const K = 3;

const softmax = (z: number[], T = 1): number[] => {
  const e = z.map((v) => Math.exp(v / T));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
};
const kl = (p: number[], q: number[]): number => p.reduce((acc, pk, k) => acc + pk * Math.log(pk / q[k]!), 0);
const entropy = (p: number[]): number => -p.reduce((acc, pk) => acc + pk * Math.log(pk), 0);
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const onehot = (y: number): number[] => Array.from({ length: K }, (_, k) => (k === y ? 1 : 0));
const argmax = (z: number[]): number => z.indexOf(Math.max(...z));
/** Cross-entropy with int labels: mean_i −log softmax(z_i)[y_i]. */
const ceRef = (zs: M, y: number[]): number => mean(zs.map((z, i) => -Math.log(softmax(z)[y[i]!]!)));
const klRef = (zs: M, zt: M, T: number): number => mean(zs.map((z, i) => kl(softmax(zt[i]!, T), softmax(z, T))));
const rows = (f: (i: number, k: number) => number): M => ZS.map((r, i) => r.map((_, k) => f(i, k)));

/** DKD by the paper's definitions: binary [p_g, 1 − p_g] and the renormalised non-target distribution. */
function dkdRef(zs: M, zt: M, y: number[], T: number, alpha: number, beta: number, ceWeight: number) {
  let tckd = 0;
  let nckd = 0;
  zs.forEach((z, i) => {
    const g = y[i]!;
    const ps = softmax(z, T);
    const pt = softmax(zt[i]!, T);
    tckd += kl([pt[g]!, 1 - pt[g]!], [ps[g]!, 1 - ps[g]!]);
    const rest = (p: number[]) => p.filter((_, k) => k !== g).map((v) => v / (1 - p[g]!));
    nckd += kl(rest(pt), rest(ps));
  });
  const n = zs.length;
  return { tckd: (alpha * T * T * tckd) / n, nckd: (beta * T * T * nckd) / n, ce: ceWeight * ceRef(zs, y) };
}

/** Central finite differences of a plain-JS function of the student logits. */
function finiteDiff(f: (z: M) => number, z: M, h = 1e-5): M {
  return z.map((row, i) =>
    row.map((_, k) => {
      const plus = z.map((r) => [...r]);
      const minus = z.map((r) => [...r]);
      plus[i]![k]! += h;
      minus[i]![k]! -= h;
      return (f(plus) - f(minus)) / (2 * h);
    }),
  );
}

// ---- Helpers running the code under test. -------------------------------------------------
function values(term: KnowledgeTerm, zs = ZS, zt = ZT, y = Y): Record<string, number> {
  return tf.tidy(() => {
    const out = term.compute({
      studentLogits: tf.tensor2d(zs),
      teacherLogits: tf.tensor2d(zt),
      labels: tf.tensor1d(y, 'int32'),
      numClasses: zs[0]!.length,
    });
    return Object.fromEntries(Object.entries(out).map(([name, v]) => [name, v.dataSync()[0]!]));
  });
}

/** Gradient of the sum of the term's losses w.r.t. the student and (if used) the teacher logits. */
function gradients(term: KnowledgeTerm, zs = ZS, zt = ZT, y = Y): { student: M; teacher?: M } {
  return tf.tidy(() => {
    const labels = tf.tensor1d(y, 'int32');
    const total = (s: tf.Tensor, t: tf.Tensor) =>
      tf.addN(
        Object.values(
          term.compute({
            studentLogits: s as tf.Tensor2D,
            teacherLogits: t as tf.Tensor2D,
            labels,
            numClasses: zs[0]!.length,
          }),
        ),
      );
    const s = tf.tensor2d(zs);
    const t = tf.tensor2d(zt);
    if (!term.needs.teacher)
      return {
        student: tf
          .grad((x) => total(x, t))(s)
          .arraySync() as M,
      };
    const [gs, gt] = tf.grads(total)([s, t]);
    return { student: gs!.arraySync() as M, teacher: gt!.arraySync() as M };
  });
}

function close(actual: number, expected: number, tol = 1e-5, what = ''): void {
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${what} ${actual} vs ${expected}`);
}
function closeM(actual: M, expected: M, tol = 1e-5): void {
  actual.forEach((r, i) => r.forEach((v, k) => close(v, expected[i]![k]!, tol, `[${i}][${k}]`)));
}
function assertValues(actual: Record<string, number>, expected: Record<string, number>, tol = 1e-5): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, v] of Object.entries(expected)) close(actual[name]!, v, tol, name);
}

// ---- Values and gradients, term by term. --------------------------------------------------
describe('ce', () => {
  test('value and gradient by hand', () => {
    // sample 0: −log(e^2 / (e^1 + e^2 + e^0.5)); sample 1: −log(e^2 / (e^0.3 + e^−1 + e^2))
    const hand =
      (-Math.log(Math.exp(2) / (Math.exp(1) + Math.exp(2) + Math.exp(0.5))) -
        Math.log(Math.exp(2) / (Math.exp(0.3) + Math.exp(-1) + Math.exp(2)))) /
      2;
    assertValues(values(crossEntropyTerm()), { ce: hand });
    closeM(
      gradients(crossEntropyTerm()).student,
      rows((i, k) => (softmax(ZS[i]!)[k]! - onehot(Y[i]!)[k]!) / B),
    );
  });
  test('label smoothing: target (1−ε)·onehot + ε/K', () => {
    const eps = 0.1;
    const q = (i: number) => onehot(Y[i]!).map((v) => (1 - eps) * v + eps / K);
    const hand = mean(ZS.map((z, i) => -softmax(z).reduce((a, p, k) => a + q(i)[k]! * Math.log(p), 0)));
    assertValues(values(crossEntropyTerm({ labelSmoothing: eps })), { ce: hand });
    closeM(
      gradients(crossEntropyTerm({ labelSmoothing: eps })).student,
      rows((i, k) => (softmax(ZS[i]!)[k]! - q(i)[k]!) / B),
    );
  });
});

describe('kd', () => {
  test('defaults T=4, α=0.9: value by hand', () => {
    const T = 4;
    const pt0 = [Math.exp(2 / T), Math.exp(1 / T), Math.exp(0)].map((v) => v / (Math.exp(2 / T) + Math.exp(1 / T) + 1));
    const ps0 = [Math.exp(1 / T), Math.exp(2 / T), Math.exp(0.5 / T)].map(
      (v) => v / (Math.exp(1 / T) + Math.exp(2 / T) + Math.exp(0.5 / T)),
    );
    const pt1 = [Math.exp(0), Math.exp(0.5 / T), Math.exp(3 / T)].map(
      (v) => v / (1 + Math.exp(0.5 / T) + Math.exp(3 / T)),
    );
    const ps1 = [Math.exp(0.3 / T), Math.exp(-1 / T), Math.exp(2 / T)].map(
      (v) => v / (Math.exp(0.3 / T) + Math.exp(-1 / T) + Math.exp(2 / T)),
    );
    const kl0 = pt0.reduce((a, p, k) => a + p * Math.log(p / ps0[k]!), 0);
    const kl1 = pt1.reduce((a, p, k) => a + p * Math.log(p / ps1[k]!), 0);
    assertValues(values(kdTerm()), { kd: (0.9 * T * T * (kl0 + kl1)) / 2, ce: 0.1 * ceRef(ZS, Y) });
  });
  test('gradient: α·T·(p_s − p_t)/B + (1−α)·(softmax − onehot)/B; teacher gets none', () => {
    const [T, a] = [2, 0.7];
    const g = gradients(kdTerm({ temperature: T, alpha: a }));
    closeM(
      g.student,
      rows(
        (i, k) =>
          (a * T * (softmax(ZS[i]!, T)[k]! - softmax(ZT[i]!, T)[k]!) +
            (1 - a) * (softmax(ZS[i]!)[k]! - onehot(Y[i]!)[k]!)) /
          B,
      ),
    );
    closeM(
      g.teacher!,
      rows(() => 0),
      0,
    );
  });
  test('α=1 is T²·KL alone; identical logits give 0', () => {
    assertValues(values(kdTerm({ temperature: 3, alpha: 1 })), { kd: 9 * klRef(ZS, ZT, 3) });
    close(values(kdTerm({ alpha: 1 }), ZS, ZS).kd!, 0, 1e-6);
    close(values(kdTerm(), ZT, ZT).kd!, 0, 1e-6);
  });
});

describe('soft-ce', () => {
  test("value: T²·H(p_t, p_s) = kd + T²·H(p_t); gradient equals KD's", () => {
    const T = 4;
    const hand =
      T * T * mean(ZS.map((z, i) => -softmax(ZT[i]!, T).reduce((a, p, k) => a + p * Math.log(softmax(z, T)[k]!), 0)));
    const v = values(softCrossEntropyTerm());
    assertValues(v, { 'soft-ce': hand });
    close(v['soft-ce']!, values(kdTerm({ alpha: 1 })).kd! + T * T * mean(ZT.map((z) => entropy(softmax(z, T)))));
    const g = gradients(softCrossEntropyTerm());
    closeM(
      g.student,
      rows((i, k) => (T * (softmax(ZS[i]!, T)[k]! - softmax(ZT[i]!, T)[k]!)) / B),
    );
    closeM(
      g.teacher!,
      rows(() => 0),
      0,
    );
  });
  test('alpha < 1 adds the label CE', () => {
    const v = values(softCrossEntropyTerm({ temperature: 2, alpha: 0.5 }));
    close(v.ce!, 0.5 * ceRef(ZS, Y));
  });
});

/** Pearson correlation of two vectors (float64). */
function pearson(a: number[], b: number[]): number {
  const ma = mean(a);
  const mb = mean(b);
  const ca = a.map((v) => v - ma);
  const cb = b.map((v) => v - mb);
  const dot = ca.reduce((acc, v, i) => acc + v * cb[i]!, 0);
  const norm = (x: number[]) => Math.sqrt(x.reduce((acc, v) => acc + v * v, 0));
  return dot / (norm(ca) * norm(cb) + 1e-8);
}
/** DIST by the paper's definitions: inter (rows) and intra (columns) Pearson relations of softmax(z/τ). */
function distRef(zs: M, zt: M, T: number, beta: number, gamma: number) {
  const ys = zs.map((z) => softmax(z, T));
  const yt = zt.map((z) => softmax(z, T));
  const cols = (m: M) => m[0]!.map((_, k) => m.map((r) => r[k]!));
  const inter = 1 - mean(ys.map((r, i) => pearson(r, yt[i]!)));
  const intra = 1 - mean(cols(ys).map((c, k) => pearson(c, cols(yt)[k]!)));
  return { 'dist-inter': beta * T * T * inter, 'dist-intra': gamma * T * T * intra };
}
/** NKD by the paper's definitions: teacher-weighted target log-probability, normalised non-target CE at λ. */
function nkdRef(zs: M, zt: M, y: number[], T: number, gamma: number) {
  let target = 0;
  let non = 0;
  zs.forEach((z, i) => {
    const g = y[i]!;
    target += -softmax(zt[i]!)[g]! * Math.log(softmax(z)[g]!);
    const rest = (v: number[]) =>
      softmax(
        v.filter((_, k) => k !== g),
        T,
      );
    const nt = rest(zt[i]!);
    const ns = rest(z);
    non += -nt.reduce((a, p, k) => a + p * Math.log(ns[k]!), 0);
  });
  return { 'nkd-target': target / zs.length, 'nkd-non': (gamma * T * T * non) / zs.length };
}

/** Per-row z-scores (std with n − 1), as logit standardization defines them. */
const zscores = (m: M): M =>
  m.map((r) => {
    const mu = mean(r);
    const sd = Math.sqrt(r.reduce((a, v) => a + (v - mu) ** 2, 0) / (r.length - 1));
    return r.map((v) => (v - mu) / sd);
  });

describe('logit standardization (standardize: true)', () => {
  test('kd, soft-ce and dkd see z-scored logits before T; the label CE keeps the raw ones; gradients by finite differences', () => {
    const T = 2;
    assertValues(values(kdTerm({ temperature: T, alpha: 0.7, standardize: true })), {
      kd: 0.7 * T * T * klRef(zscores(ZS), zscores(ZT), T),
      ce: 0.3 * ceRef(ZS, Y),
    });
    const hand = dkdRef(zscores(ZS), zscores(ZT), Y, T, 1, 8, 1);
    assertValues(values(dkdTerm({ temperature: T, standardize: true })), { ...hand, ce: ceRef(ZS, Y) });
    const soft = values(softCrossEntropyTerm({ temperature: T, standardize: true }))['soft-ce']!;
    close(
      soft,
      values(kdTerm({ temperature: T, alpha: 1, standardize: true })).kd! +
        T * T * mean(zscores(ZT).map((z) => entropy(softmax(z, T)))),
    );
    // the same ranking at another scale and shift: nothing left to distil
    const scaled = ZT.map((r) => r.map((v) => 3 * v + 1));
    close(values(kdTerm({ standardize: true, alpha: 1 }), scaled, ZT).kd!, 0, 1e-5);
    const f = (z: M) => 0.7 * T * T * klRef(zscores(z), zscores(ZT), T);
    closeM(
      gradients(kdTerm({ temperature: T, alpha: 1, standardize: true })).student,
      finiteDiff((z) => f(z) / 0.7, ZS),
      1e-3,
    );
  });
});

describe('dist', () => {
  // Three rows, so the per-class (intra) correlations are over more than two points.
  const zs3: M = [...ZS, [0.2, 0.9, -0.4]];
  const zt3: M = [...ZT, [1.5, -0.5, 0.3]];
  test('value: β·τ²·(1 − mean row ρ) + γ·τ²·(1 − mean column ρ) of softmax(z/τ); gradient by finite differences', () => {
    assertValues(values(distTerm(), zs3, zt3, [1, 2, 0]), distRef(zs3, zt3, 4, 2, 2));
    assertValues(
      values(distTerm({ temperature: 1, beta: 1, gamma: 0.5 }), zs3, zt3, [1, 2, 0]),
      distRef(zs3, zt3, 1, 1, 0.5),
    );
    const f = (z: M) => {
      const r = distRef(z, zt3, 2, 1, 1);
      return r['dist-inter'] + r['dist-intra'];
    };
    closeM(
      gradients(distTerm({ temperature: 2, beta: 1, gamma: 1 }), zs3, zt3, [1, 2, 0]).student,
      finiteDiff(f, zs3),
      1e-3,
    );
    // the same predictions correlate perfectly (float32: 1 − ρ ≈ 1e-6, times β·τ² = 32)
    assertValues(values(distTerm(), zt3, zt3, [1, 2, 0]), { 'dist-inter': 0, 'dist-intra': 0 }, 1e-4);
  });
});

describe('nkd', () => {
  test('value: −p_t,g·log p_s,g and γ·λ²·CE of the renormalised non-target distributions; gradient by finite differences', () => {
    assertValues(values(nkdTerm()), nkdRef(ZS, ZT, Y, 1, 1.5));
    assertValues(values(nkdTerm({ temperature: 3, gamma: 0.5 })), nkdRef(ZS, ZT, Y, 3, 0.5));
    const f = (z: M) => {
      const r = nkdRef(z, ZT, Y, 2, 1);
      return r['nkd-target'] + r['nkd-non'];
    };
    const g = gradients(nkdTerm({ temperature: 2, gamma: 1 }));
    closeM(g.student, finiteDiff(f, ZS), 1e-3);
    closeM(
      g.teacher!,
      rows(() => 0),
      0,
    );
  });
});

describe('logits regression', () => {
  const diffs = ZS.flatMap((r, i) => r.map((v, k) => v - ZT[i]![k]!));
  test('mse: mean over batch and classes; gradient 2(z_s − z_t)/(B·K)', () => {
    assertValues(values(logitsMseTerm()), { 'logits-mse': mean(diffs.map((d) => d * d)) });
    const g = gradients(logitsMseTerm());
    closeM(
      g.student,
      rows((i, k) => (2 * (ZS[i]![k]! - ZT[i]![k]!)) / (B * K)),
    );
    closeM(
      g.teacher!,
      rows(() => 0),
      0,
    );
  });
  test('l1: mean |z_s − z_t|; gradient sign(z_s − z_t)/(B·K)', () => {
    assertValues(values(logitsL1Term()), { 'logits-l1': mean(diffs.map(Math.abs)) });
    const g = gradients(logitsL1Term());
    closeM(
      g.student,
      rows((i, k) => Math.sign(ZS[i]![k]! - ZT[i]![k]!) / (B * K)),
    );
    closeM(
      g.teacher!,
      rows(() => 0),
      0,
    );
  });
});

describe('hard', () => {
  test('teacher argmax as labels (here [0, 2]); mixed with true labels; gradient', () => {
    const teacherLabels = ZT.map(argmax);
    assert.deepEqual(teacherLabels, [0, 2]);
    assertValues(values(hardTargetTerm()), { hard: ceRef(ZS, teacherLabels) });
    assertValues(values(hardTargetTerm({ alpha: 0.25 })), {
      hard: 0.25 * ceRef(ZS, teacherLabels),
      ce: 0.75 * ceRef(ZS, Y),
    });
    const g = gradients(hardTargetTerm({ alpha: 0.25 }));
    closeM(
      g.student,
      rows((i, k) => (softmax(ZS[i]!)[k]! - 0.25 * onehot(teacherLabels[i]!)[k]! - 0.75 * onehot(Y[i]!)[k]!) / B),
    );
    closeM(
      g.teacher!,
      rows(() => 0),
      0,
    );
  });
});

describe('dkd', () => {
  test("defaults (T=4, α=1, β=8, ce 1) match the paper's definitions", () => {
    assertValues(values(dkdTerm()), dkdRef(ZS, ZT, Y, 4, 1, 8, 1));
    assertValues(
      values(dkdTerm({ temperature: 2, alpha: 0.5, beta: 2, ceWeight: 0 })),
      (({ tckd, nckd }) => ({ tckd, nckd }))(dkdRef(ZS, ZT, Y, 2, 0.5, 2, 0)),
    );
  });
  test("one sample: TCKD + (1 − p_t,g)·NCKD = KD (the paper's decomposition)", () => {
    const [zs, zt, y, T] = [[ZS[0]!], [ZT[0]!], [Y[0]!], 2];
    const beta = 1 - softmax(zt[0]!, T)[y[0]!]!;
    const d = values(dkdTerm({ temperature: T, alpha: 1, beta, ceWeight: 0 }), zs, zt, y);
    close(d.tckd! + d.nckd!, values(kdTerm({ temperature: T, alpha: 1 }), zs, zt, y).kd!);
  });
  test('gradient matches finite differences of the reference; teacher gets none', () => {
    const ref = (z: M) => Object.values(dkdRef(z, ZT, Y, 2, 1, 8, 1)).reduce((a, b) => a + b, 0);
    const g = gradients(dkdTerm({ temperature: 2 }));
    closeM(g.student, finiteDiff(ref, ZS), 1e-4);
    closeM(
      g.teacher!,
      rows(() => 0),
      0,
    );
  });
});

/** The response-based keys this file covers (feature and relation terms have their own tests). */
const RESPONSE_KEYS = ['ce', 'dist', 'dkd', 'hard', 'kd', 'logits-l1', 'logits-mse', 'nkd', 'soft-ce'];

test('every term stays finite with extreme logits (stable log-softmax)', () => {
  const zs = [
    [1000, 0, -1000],
    [-50, 80, 0],
  ];
  const zt = [
    [-1000, 0, 1000],
    [90, -90, 0],
  ];
  for (const key of RESPONSE_KEYS) {
    for (const [name, v] of Object.entries(values(createTerm(key), zs, zt, [2, 0]))) {
      assert.ok(Number.isFinite(v), `${key}.${name} = ${v}`);
    }
    for (const row of gradients(createTerm(key), zs, zt, [2, 0]).student) assert.ok(row.every(Number.isFinite), key);
  }
});

// ---- Contract: options, registry, memory. -------------------------------------------------
test('options are validated with one-line UserErrors naming the option and range', () => {
  const cases: [() => unknown, string][] = [
    [() => kdTerm({ temperature: 0 }), 'knowledge term `kd`: option `temperature` must be > 0 (got 0)'],
    [() => kdTerm({ alpha: 1.5 }), 'knowledge term `kd`: option `alpha` must be <= 1 (got 1.5)'],
    [() => crossEntropyTerm({ labelSmoothing: 1 }), 'knowledge term `ce`: option `labelSmoothing` must be < 1 (got 1)'],
    [
      () => softCrossEntropyTerm({ temperature: -2 }),
      'knowledge term `soft-ce`: option `temperature` must be > 0 (got -2)',
    ],
    [() => hardTargetTerm({ alpha: -0.1 }), 'knowledge term `hard`: option `alpha` must be >= 0 (got -0.1)'],
    [() => dkdTerm({ beta: -1 }), 'knowledge term `dkd`: option `beta` must be >= 0 (got -1)'],
    [
      () => dkdTerm({ temperature: Number.NaN }),
      'knowledge term `dkd`: option `temperature` must be a number (got NaN)',
    ],
    [
      () => createTerm('kd', { temperature: 'hot' }),
      'knowledge term `kd`: option `temperature` must be a number (got "hot")',
    ],
    [
      () => createTerm('kd', { temprature: 2 }),
      'knowledge term `kd`: unknown option `temprature` (did you mean `temperature`?); known: temperature, alpha, standardize',
    ],
    [
      () => createTerm('logits-mse', { scale: 2 }),
      'knowledge term `logits-mse`: unknown option `scale`; known: (none)',
    ],
  ];
  for (const [make, message] of cases) {
    assertUserError(make, message);
  }
});

test('teacher terms reject a missing or mismatched teacher', () => {
  const labels = tf.tensor1d(Y, 'int32');
  const s = tf.tensor2d(ZS);
  assertUserError(() => kdTerm().compute({ studentLogits: s, labels, numClasses: 3 }), /`kd` needs teacher logits/);
  const t4 = tf.zeros([2, 4]) as tf.Tensor2D;
  assertUserError(
    () => dkdTerm().compute({ studentLogits: s, teacherLogits: t4, labels, numClasses: 3 }),
    /teacher logits \[2,4\] and student logits \[2,3\] differ/,
  );
  tf.dispose([labels, s, t4]);
});

test('registry: keys, needs, no variables; unknown key lists the known ones', () => {
  const keys = knowledge.keys();
  for (const key of RESPONSE_KEYS) assert.ok(keys.includes(key), key);
  for (const key of RESPONSE_KEYS) {
    const term = createTerm(key);
    assert.equal(term.key, key);
    assert.equal(term.needs.teacher, key !== 'ce');
    assert.deepEqual(term.trainableVariables(), []);
    term.dispose();
  }
  assertUserError(() => createTerm('kdd'), `unknown knowledge term \`kdd\`; known: ${keys.join(', ')}`);
});

test('no tensor leaks: 5 calls (values and gradients) inside tf.tidy', () => {
  const s = tf.tensor2d(ZS);
  const t = tf.tensor2d(ZT);
  const labels = tf.tensor1d(Y, 'int32');
  const inputs = { studentLogits: s, teacherLogits: t, labels, numClasses: 3 };
  for (const key of RESPONSE_KEYS) {
    const term = createTerm(key);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      tf.tidy(() => {
        term.compute(inputs);
      });
      tf.tidy(() => {
        tf.grad((x: tf.Tensor) => tf.addN(Object.values(term.compute({ ...inputs, studentLogits: x as tf.Tensor2D }))))(
          s,
        );
      });
    }
    assert.equal(tf.memory().numTensors, before, key);
    // Without an outer tidy, only the returned scalars remain.
    const out = term.compute(inputs);
    assert.equal(tf.memory().numTensors, before + Object.keys(out).length, key);
    tf.dispose(Object.values(out));
  }
  tf.dispose([s, t, labels]);
});

// ---- ctkd: a learned temperature behind a gradient reversal. ----------------------------------
test('ctkd: kd at τ = 1 + 20·sigmoid(θ); θ gets −λ × the loss gradient; λ on a cosine ramp', () => {
  assert.deepEqual(
    [0, 5, 10, 12].map((e) => Number(ctkdLambda(e, 10, 1).toFixed(6))),
    [0, 0.5, 1, 1],
  );
  const term = ctkdTerm({ alpha: 0.9 });
  const [theta] = term.trainableVariables();
  const tau = 1 + 20 / (1 + Math.exp(-1));
  assertValues(values(term), { kd: 0.9 * tau * tau * klRef(ZS, ZT, tau), ce: 0.1 * ceRef(ZS, Y) }, 1e-4);
  assert.deepEqual(term.describeState!(), { temperature: Math.fround(tau), lambda: 0 });
  // The student's gradient is kd's at the same temperature.
  closeM(gradients(term).student, gradients(kdTerm({ temperature: tau, alpha: 0.9 })).student);
  const thetaGrad = () =>
    tf.tidy(() => {
      const { grads } = tf.variableGrads(() => tf.addN(Object.values(term.compute(inputsOf()))) as tf.Scalar, [theta!]);
      return grads[theta!.name]!.dataSync()[0]!;
    });
  // d(loss)/dθ in float64 from the reference formula (float32 differences are too coarse here)
  const lossRef = (th: number) => {
    const t = 1 + 20 / (1 + Math.exp(-th));
    return 0.9 * t * t * klRef(ZS, ZT, t);
  };
  const dLoss = (lossRef(1 + 1e-5) - lossRef(1 - 1e-5)) / 2e-5;
  assert.ok(Math.abs(dLoss) > 1e-4, `the loss depends on θ (${dLoss})`);
  for (const epoch of [0, 3, 10]) {
    term.onEpochBegin!(epoch);
    const lambda = ctkdLambda(epoch, 10, 1);
    // float32 autodiff of a small difference of large terms: ~1 % off
    close(thetaGrad(), -lambda * dLoss, 0.03 * Math.abs(dLoss) + 1e-7, `epoch ${epoch}`);
  }
  const extreme = values(
    term,
    [
      [1000, 0, -1000],
      [-50, 80, 0],
    ],
    [
      [-1000, 0, 1000],
      [90, -90, 0],
    ],
    [2, 0],
  );
  assert.ok(Object.values(extreme).every(Number.isFinite), JSON.stringify(extreme));
  assertUserError(() => ctkdTerm({ rampEpochs: 0 }), 'knowledge term `ctkd`: option `rampEpochs` must be > 0 (got 0)');
  term.dispose();
});

// ---- pskd: the target moves from the label to the teacher's prediction. -----------------------
test('pskd: CE against (1 − α_e)·y + α_e·softmax(z_t), α_e = α_T·min(e+1, K)/K', () => {
  assert.deepEqual(
    [0, 4, 9, 12].map((e) => Number(pskdAlpha(e, 10, 0.8).toFixed(6))),
    [0.08, 0.4, 0.8, 0.8],
  );
  const term = pskdTerm({ alpha: 0.8, rampEpochs: 10 });
  // the whole loss is the cross-entropy against the mixed target (float64 reference)
  const mixedCe = (a: number) =>
    mean(
      ZS.map((z, i) => {
        const target = onehot(Y[i]!).map((y, k) => (1 - a) * y + a * softmax(ZT[i]!)[k]!);
        const p = softmax(z);
        return -target.reduce((acc, t, k) => acc + t * Math.log(p[k]!), 0);
      }),
    );
  for (const epoch of [0, 4, 20]) {
    term.onEpochBegin!(epoch);
    const a = pskdAlpha(epoch, 10, 0.8);
    const v = values(term);
    close(v['pskd']! + v['ce']!, mixedCe(a), 1e-5, `epoch ${epoch}`);
    close(v['ce']!, (1 - a) * ceRef(ZS, Y), 1e-5, `epoch ${epoch}: the label part`);
    assert.deepEqual(term.describeState!(), { alpha: a });
  }
  assertUserError(() => pskdTerm({ alpha: 1.5 }), /option `alpha` must be <= 1/);
  term.dispose();
});

function inputsOf() {
  return {
    studentLogits: tf.tensor2d(ZS),
    teacherLogits: tf.tensor2d(ZT),
    labels: tf.tensor1d(Y, 'int32'),
    numClasses: 3,
  };
}
