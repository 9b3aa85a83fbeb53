import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  atTerm,
  createTerm,
  fitnetsTerm,
  nstTerm,
  pktTerm,
  simkdTerm,
  type KnowledgeTerm,
} from '../src/knowledge/index.js';
import { assertUserError, close, closeAll, finiteDiff } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');

// ---- Plain-JS references (float64) on flat arrays, independent of the code under test. ----
type Arr = number[];
const sum = (xs: Arr) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: Arr) => sum(xs) / xs.length;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
/** Deterministic pseudo-random values in [-1, 1). */
const values = (n: number, seed: number): Arr =>
  range(n).map((i) => Math.sin(seed * 12.9898 + i * 78.233) * 0.9 + 0.05 * ((i * seed) % 3));
const rowsOf = (x: Arr, b: number) => range(b).map((i) => x.slice((i * x.length) / b, ((i + 1) * x.length) / b));
const norm = (v: Arr) => Math.sqrt(sum(v.map((a) => a * a)));
const unit = (v: Arr) => v.map((a) => a / Math.max(norm(v), 1e-12));
const dot = (a: Arr, b: Arr) => sum(a.map((v, i) => v * b[i]!));
/** [B,H,W,C] element. */
const at4 = (x: Arr, [, h, w, c]: number[], b: number, i: number, j: number, k: number) =>
  x[((b * h! + i) * w! + j) * c! + k]!;
/** 2×2 average pooling of a [B,H,W,C] array. */
function pool2(x: Arr, shape: number[]): Arr {
  const [B, H, W, C] = shape as [number, number, number, number];
  const out: Arr = [];
  for (let b = 0; b < B; b++)
    for (let i = 0; i < H / 2; i++)
      for (let j = 0; j < W / 2; j++)
        for (let k = 0; k < C; k++) {
          out.push(
            (at4(x, shape, b, 2 * i, 2 * j, k) +
              at4(x, shape, b, 2 * i + 1, 2 * j, k) +
              at4(x, shape, b, 2 * i, 2 * j + 1, k) +
              at4(x, shape, b, 2 * i + 1, 2 * j + 1, k)) /
              4,
          );
        }
  return out;
}

// ---- Running the code under test. ----------------------------------------------------------
interface Case {
  s: Arr;
  sShape: number[];
  t: Arr;
  tShape: number[];
}
const shapesOf = (term: KnowledgeTerm, c: Case) => ({
  student: Object.fromEntries((term.needs.studentTaps ?? []).map((n) => [n, c.sShape.slice(1)])),
  teacher: Object.fromEntries((term.needs.teacherTaps ?? []).map((n) => [n, c.tShape.slice(1)])),
});
function inputs(term: KnowledgeTerm, s: tf.Tensor, t: tf.Tensor) {
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
/** Each loss's value, and the gradient of their sum w.r.t. the student and the teacher taps. */
function evaluate(term: KnowledgeTerm, c: Case): { losses: Record<string, number>; gs: Arr; gt: Arr } {
  term.prepare?.(shapesOf(term, c));
  return tf.tidy(() => {
    const s = tf.tensor(c.s, c.sShape);
    const t = tf.tensor(c.t, c.tShape);
    const out = term.compute(inputs(term, s, t));
    const losses = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.dataSync()[0]!]));
    const [gs, gt] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.addN(Object.values(term.compute(inputs(term, a, b)))))(
      [s, t],
    );
    return { losses, gs: Array.from(gs!.dataSync()), gt: Array.from(gt!.dataSync()) };
  });
}
/** Value and gradient against a reference f(student) (teacher fixed); the teacher gets no gradient. */
function check(term: KnowledgeTerm, c: Case, name: string, ref: (s: Arr) => number, tol = 2e-4): void {
  const { losses, gs, gt } = evaluate(term, c);
  assert.deepEqual(Object.keys(losses), [name]);
  close(losses[name]!, ref(c.s), tol, `${name} value`);
  closeAll(gs, finiteDiff(ref, c.s), 2e-3, `${name} gradient`);
  assert.ok(
    gt.every((g) => g === 0),
    `${name}: teacher gradient must be 0`,
  );
}
function noLeak(term: KnowledgeTerm, c: Case): void {
  term.prepare?.(shapesOf(term, c));
  const s = tf.tensor(c.s, c.sShape);
  const t = tf.tensor(c.t, c.tShape);
  const ins = inputs(term, s, t);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    tf.dispose(Object.values(term.compute(ins)));
    tf.tidy(() => {
      tf.grad((a: tf.Tensor) =>
        tf.addN(
          Object.values(
            term.compute({ ...ins, studentTaps: Object.fromEntries(Object.keys(ins.studentTaps).map((n) => [n, a])) }),
          ),
        ),
      )(s);
    });
  }
  assert.equal(tf.memory().numTensors, before, `${term.key} leaks tensors`);
  tf.dispose([s, t, ins.studentLogits, ins.teacherLogits, ins.labels]);
}

const B = 3;
const vec = (ds: number, dt: number): Case => ({
  s: values(B * ds, 1),
  sShape: [B, ds],
  t: values(B * dt, 2),
  tShape: [B, dt],
});
const maps = (hs: number, cs: number, ht: number, ct: number): Case => ({
  s: values(B * hs * hs * cs, 3),
  sShape: [B, hs, hs, cs],
  t: values(B * ht * ht * ct, 4),
  tShape: [B, ht, ht, ct],
});

// ---- fitnets ------------------------------------------------------------------------------
describe('fitnets', () => {
  const c = vec(4, 4);
  const diffs = (s: Arr) => s.map((v, i) => v - c.t[i]!);
  test('equal shapes (identity Φ): every L_F by its formula, β = 100 by default', () => {
    const huber = (d: number) => (Math.abs(d) < 1 ? 0.5 * d * d : Math.abs(d) - 0.5);
    check(fitnetsTerm(), c, 'fitnets', (s) => 100 * mean(diffs(s).map((d) => d * d)));
    check(fitnetsTerm({ loss: 'l1', beta: 1 }), c, 'fitnets', (s) => mean(diffs(s).map(Math.abs)));
    check(
      fitnetsTerm({ loss: 'smooth-l1', beta: 2 }),
      { ...c, s: c.s.map((v) => v * 3) },
      'fitnets',
      (s) => 2 * mean(s.map((v, i) => huber(v - c.t[i]!))),
    );
    check(fitnetsTerm({ loss: 'cosine', beta: 1 }), c, 'fitnets', (s) =>
      mean(range(B).map((b) => 1 - dot(unit(rowsOf(s, B)[b]!), unit(rowsOf(c.t, B)[b]!)))),
    );
  });
  test('a by-hand number: s = [1, 2], t = [0, 4] → mse (1 + 4)/2 = 2.5, l1 1.5, cosine 1 − 8/(√5·4)', () => {
    const tiny = { s: [1, 2], sShape: [1, 2], t: [0, 4], tShape: [1, 2] };
    close(evaluate(fitnetsTerm({ beta: 1 }), tiny).losses['fitnets']!, 2.5, 1e-6);
    close(evaluate(fitnetsTerm({ beta: 1, loss: 'l1' }), tiny).losses['fitnets']!, 1.5, 1e-6);
    close(
      evaluate(fitnetsTerm({ beta: 1, loss: 'cosine' }), tiny).losses['fitnets']!,
      1 - 8 / (Math.sqrt(5) * 4),
      1e-6,
    );
  });
  test('vectors of different width: dense Φ made in prepare, L_F(x·W + b, t)', () => {
    const d = vec(4, 3);
    const term = fitnetsTerm({ beta: 1 });
    term.prepare!(shapesOf(term, d));
    const [kernel, bias] = term.trainableVariables().map((v) => Array.from(v.dataSync()));
    const phi = (s: Arr) =>
      rowsOf(s, B).flatMap((row) =>
        range(3).map(
          (j) =>
            dot(
              row,
              range(4).map((i) => kernel![i * 3 + j]!),
            ) + bias![j]!,
        ),
      );
    check(term, d, 'fitnets', (s) => mean(phi(s).map((v, i) => (v - d.t[i]!) ** 2)));
    term.dispose();
  });
  test('feature maps 4×4×2 → 2×2×3: 2×2 average pool, then 1×1 conv', () => {
    const m = maps(4, 2, 2, 3);
    const term = fitnetsTerm({ student: 'block1_pool', teacher: 'block2_pool', beta: 1, loss: 'l1' });
    term.prepare!(shapesOf(term, m));
    assert.equal(term.adapter()!.kind, 'conv1x1');
    const [kernel, bias] = term.trainableVariables().map((v) => Array.from(v.dataSync()));
    const phi = (s: Arr) => {
      const p = pool2(s, m.sShape);
      return range(p.length / 2).flatMap((pix) =>
        range(3).map((o) => p[pix * 2]! * kernel![o]! + p[pix * 2 + 1]! * kernel![3 + o]! + bias![o]!),
      );
    };
    check(term, m, 'fitnets', (s) => mean(phi(s).map((v, i) => Math.abs(v - m.t[i]!))));
    term.dispose();
  });
  test('stage and hintEpochs are exposed for the runner; compute without prepare needs equal shapes', () => {
    const term = fitnetsTerm({ stage: 'hint', hintEpochs: 2 });
    assert.equal(term.stage, 'hint');
    assert.equal(term.hintEpochs, 2);
    assert.equal(fitnetsTerm().stage, 'joint');
    const s = tf.zeros([2, 4]);
    const t = tf.zeros([2, 3]);
    assert.throws(() => fitnetsTerm().compute(inputs(fitnetsTerm(), s, t)), /call prepare\(shapes\) before compute/);
    tf.dispose([s, t]);
  });
});

// ---- at -----------------------------------------------------------------------------------
describe('at', () => {
  /** q = unit( mean_c a² ) per sample, over the H·W positions. */
  const attention = (x: Arr, shape: number[]) => {
    const [b, h, w, ch] = shape as [number, number, number, number];
    return range(b).map((n) =>
      unit(
        range(h * w).map((pix) => mean(range(ch).map((k) => at4(x, shape, n, Math.floor(pix / w), pix % w, k) ** 2))),
      ),
    );
  };
  const atRef = (s: Arr, sShape: number[], t: Arr, tShape: number[]) => {
    const [qs, qt] = [attention(s, sShape), attention(t, tShape)];
    return mean(qs.flatMap((row, n) => row.map((v, k) => (v - qt[n]![k]!) ** 2)));
  };
  test('same H×W, different channels: β · mean (q̂_s − q̂_t)², β = 1000', () => {
    const m = maps(2, 3, 2, 5);
    check(atTerm({ student: 'a', teacher: 'b' }), m, 'at', (s) => 1000 * atRef(s, m.sShape, m.t, m.tShape));
  });
  test('a by-hand number: one sample, 1×2 maps, one channel: s = [1, 0], t = [0, 1] → q̂ differ by (1, −1): mean 1', () => {
    const tiny = { s: [1, 0], sShape: [1, 1, 2, 1], t: [0, 1], tShape: [1, 1, 2, 1] };
    close(evaluate(atTerm({ student: 'a', teacher: 'b', beta: 1 }), tiny).losses['at']!, 1, 1e-6);
  });
  test("student 4×4 is average-pooled to the teacher's 2×2 first; p = 2", () => {
    const m = maps(4, 2, 2, 3);
    check(
      atTerm({ student: 'a', teacher: 'b', beta: 10 }),
      m,
      'at',
      (s) => 10 * atRef(pool2(s, m.sShape), [B, 2, 2, 2], m.t, m.tShape),
    );
  });
  test('several layer pairs sum their losses', () => {
    const term = atTerm({ student: ['a1', 'a2'], teacher: ['b1', 'b2'], beta: 1 });
    assert.deepEqual(term.needs, { teacher: true, studentTaps: ['a1', 'a2'], teacherTaps: ['b1', 'b2'] });
    const m = maps(2, 2, 2, 2);
    close(evaluate(term, m).losses['at']!, 2 * atRef(m.s, m.sShape, m.t, m.tShape), 1e-4);
  });
});

// ---- pkt ----------------------------------------------------------------------------------
describe('pkt', () => {
  const conditional = (x: Arr) => {
    const rows = rowsOf(x, B).map(unit);
    const k = rows.map((a) => rows.map((b) => (dot(a, b) + 1) / 2));
    return k.map((row) => row.map((v) => v / sum(row)));
  };
  const pktRef = (s: Arr, t: Arr) => {
    const [ps, pt] = [conditional(s), conditional(t)];
    return mean(pt.flatMap((row, i) => row.map((p, j) => p * Math.log((p + 1e-7) / (ps[i]![j]! + 1e-7)))));
  };
  test('β · mean_ij p_t log(p_t/p_s), cosine kernel, different widths, β = 30000', () => {
    const c = vec(5, 3);
    check(pktTerm(), c, 'pkt', (s) => 30000 * pktRef(s, c.t), 1e-3);
    check(pktTerm({ beta: 1 }), c, 'pkt', (s) => pktRef(s, c.t));
  });
  test('identical similarity structure gives 0 (a scaled student)', () => {
    const c = vec(4, 4);
    close(evaluate(pktTerm({ beta: 1 }), { ...c, s: c.t.map((v) => 3 * v) }).losses['pkt']!, 0, 1e-6);
  });
});

// ---- nst ----------------------------------------------------------------------------------
describe('nst', () => {
  /** Per sample: each channel's H·W map, unit length. */
  const channels = (x: Arr, shape: number[]) => {
    const [b, h, w, c] = shape as [number, number, number, number];
    return range(b).map((n) =>
      range(c).map((k) => unit(range(h * w).map((pix) => at4(x, shape, n, Math.floor(pix / w), pix % w, k)))),
    );
  };
  const k = (a: Arr[], b: Arr[]) => mean(a.flatMap((x) => b.map((y) => dot(x, y) ** 2)));
  const nstRef = (s: Arr, sShape: number[], t: Arr, tShape: number[]) => {
    const [fs, ft] = [channels(s, sShape), channels(t, tShape)];
    return mean(fs.map((f, n) => k(f, f) + k(ft[n]!, ft[n]!) - 2 * k(f, ft[n]!)));
  };
  test('β · MMD² with the kernel (xᵀy)², channel counts differ, β = 50', () => {
    const m = maps(2, 2, 2, 3);
    check(nstTerm({ student: 'a', teacher: 'b' }), m, 'nst', (s) => 50 * nstRef(s, m.sShape, m.t, m.tShape));
  });
  test('a by-hand number: one channel each, maps [1,0] and [0,1] → 1 + 1 − 2·0 = 2', () => {
    const tiny = { s: [1, 0], sShape: [1, 1, 2, 1], t: [0, 1], tShape: [1, 1, 2, 1] };
    close(evaluate(nstTerm({ student: 'a', teacher: 'b', beta: 1 }), tiny).losses['nst']!, 2, 1e-6);
  });
  test("teacher 4×4 is pooled to the student's 2×2", () => {
    const m = maps(2, 2, 4, 2);
    close(
      evaluate(nstTerm({ student: 'a', teacher: 'b', beta: 1 }), m).losses['nst']!,
      nstRef(m.s, m.sShape, pool2(m.t, m.tShape), [B, 2, 2, 2]),
      1e-4,
    );
  });
});

// ---- simkd (the student's reshaping: test/knowledge-simkd.test.ts) --------------------------
describe('simkd', () => {
  test('β · mean of squares between the projected student and the teacher features, β = 1', () => {
    const v = vec(5, 5);
    check(simkdTerm(), v, 'simkd', (s) => mean(s.map((a, i) => (a - v.t[i]!) ** 2)));
  });
  test('a by-hand number: [1, 2] against [0, 0] with β = 3 → 3 · (1 + 4) / 2 = 7.5', () => {
    const tiny = { s: [1, 2], sShape: [1, 2], t: [0, 0], tShape: [1, 2] };
    close(evaluate(simkdTerm({ beta: 3 }), tiny).losses['simkd']!, 7.5, 1e-6);
  });
  test('on feature maps too', () => {
    const m = maps(2, 3, 2, 3);
    check(simkdTerm({ student: 'a', teacher: 'b' }), m, 'simkd', (s) => mean(s.map((a, i) => (a - m.t[i]!) ** 2)));
  });
});

// ---- Contract --------------------------------------------------------------------------
test('no tensor leaks in compute and its gradient', () => {
  noLeak(fitnetsTerm(), vec(4, 3));
  noLeak(fitnetsTerm({ loss: 'cosine' }), maps(4, 2, 2, 3));
  noLeak(atTerm({ student: 'a', teacher: 'b' }), maps(4, 2, 2, 3));
  noLeak(pktTerm(), vec(4, 3));
  noLeak(nstTerm({ student: 'a', teacher: 'b' }), maps(2, 2, 4, 3));
  noLeak(simkdTerm(), vec(4, 4));
});

test('options and shapes are validated with one-line UserErrors', () => {
  assertUserError(
    () => fitnetsTerm({ loss: 'l2' as never }),
    'knowledge term `fitnets`: option `loss` must be one of mse, l1, smooth-l1, cosine (got "l2")',
  );
  assertUserError(
    () => fitnetsTerm({ stage: 'first' as never }),
    'knowledge term `fitnets`: option `stage` must be one of joint, hint (got "first")',
  );
  assertUserError(
    () => fitnetsTerm({ hintEpochs: 0 }),
    'knowledge term `fitnets`: option `hintEpochs` must be >= 1 (got 0)',
  );
  assertUserError(() => fitnetsTerm({ beta: -1 }), 'knowledge term `fitnets`: option `beta` must be >= 0 (got -1)');
  assertUserError(
    () => createTerm('fitnets', { students: 'x' }),
    'knowledge term `fitnets`: unknown option `students` (did you mean `student`?); known: student, teacher, loss, beta, stage, hintEpochs, seed',
  );
  assertUserError(() => fitnetsTerm({ student: '' }), 'knowledge term `fitnets`: option `student` must not be empty');
  assertUserError(() => atTerm({ teacher: 'b' } as never), 'knowledge term `at`: option `student` is required');
  assertUserError(
    () => atTerm({ student: ['a', 'b'], teacher: 'c' }),
    'knowledge term `at`: 2 student layers but 1 teacher layers; give one teacher layer per student layer',
  );
  assertUserError(
    () => atTerm({ student: 'a', teacher: 'b', p: 0 }),
    'knowledge term `at`: option `p` must be > 0 (got 0)',
  );
  assertUserError(() => nstTerm({ student: 'a' } as never), 'knowledge term `nst`: option `teacher` is required');
  assertUserError(
    () => pktTerm({ beta: 'big' as never }),
    'knowledge term `pkt`: option `beta` must be a number (got "big")',
  );
  assertUserError(
    () => atTerm({ student: 'a', teacher: 'b' }).prepare!({ student: { a: [4, 4, 2] }, teacher: { b: [10] } }),
    'knowledge term `at` compares feature maps: student `a` [4,4,2] and teacher `b` [10] must both be [H,W,C]; tap conv layers',
  );
  assertUserError(
    () => fitnetsTerm().prepare!({ student: { features: [4, 4, 2] }, teacher: { features: [10] } }),
    'cannot adapt a student output [4,4,2] to a teacher output [10]; tap two vectors or two [H,W,C] feature maps',
  );
  assertUserError(
    () => fitnetsTerm({ teacher: 'fc' }).prepare!({ student: { features: [4] }, teacher: { features: [10] } }),
    'knowledge term `fitnets`: the teacher has no output `fc`; name a layer it has',
  );
  const s = tf.zeros([2, 4]);
  const term = pktTerm();
  assertUserError(
    () => term.compute({ ...inputs(term, s, s), teacherTaps: {} }),
    "knowledge term `pkt`: needs the teacher's `features` output; use a teacher whose layers can be tapped (a LayersModel or GraphModel), not a logits cache",
  );
  tf.dispose(s);
});

test("`logits` as a tap uses the step's logits and asks for no tap", () => {
  const term = pktTerm({ student: 'logits', teacher: 'logits', beta: 1 });
  assert.deepEqual(term.needs, { teacher: true, studentTaps: [], teacherTaps: [] });
  const v = tf.tidy(
    () =>
      term
        .compute({
          studentLogits: tf.tensor2d([
            [1, 0],
            [0, 1],
          ]),
          teacherLogits: tf.tensor2d([
            [1, 0],
            [0, 1],
          ]),
          labels: tf.tensor1d([0, 1], 'int32'),
          numClasses: 2,
        })
        ['pkt']!.dataSync()[0]!,
  );
  close(v, 0, 1e-7);
});
