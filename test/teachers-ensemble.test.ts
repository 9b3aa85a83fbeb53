import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { ensembleTeacher, normalizeWeights } from '../src/teachers/ensemble.js';
import type { Teacher } from '../src/teachers/types.js';
import { assertUserError, close } from './helpers.js';

await tf.setBackend('cpu');

/** A teacher answering fixed logits for rows 0 and 1 (by index), whatever the input. */
function fixedTeacher(rows: number[][]): Teacher {
  return {
    kind: 'fixed',
    inputShape: [1],
    numClasses: rows[0]!.length,
    tapNames: () => [],
    predict: async (_x, o = {}) => ({
      logits: tf.tensor2d(Array.from(o.indices ?? [0, 1], (i) => rows[i]!)),
      taps: {},
    }),
    dispose: () => {},
  };
}

const softmax = (z: number[]) => {
  const e = z.map(Math.exp);
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const entropy = (z: number[]) => -softmax(z).reduce((a, p) => a + p * Math.log(p), 0);

const A = [
  [2, 0, 0],
  [0, 1, 0],
];
const B = [
  [0, 0, 3],
  [0, 2, 0],
];
const labels = Int32Array.from([0, 1]);
const x = tf.zeros([2, 1]);

async function combined(weighting: 'fixed' | 'confidence' | 'entropy', weights?: number[]): Promise<number[][]> {
  const t = ensembleTeacher({ members: [fixedTeacher(A), fixedTeacher(B)], weighting, weights, labels });
  const out = await t.predict(x, { indices: Int32Array.from([0, 1]) });
  const v = (await out.logits.array()) as number[][];
  out.logits.dispose();
  return v;
}

/** Σ_k w_k z_k for one row. */
const mix = (w: number[], row: number) => A[row]!.map((a, c) => w[0]! * a + w[1]! * B[row]![c]!);

test('fixed weights: the weighted mean of the logits (normalized weights)', async () => {
  const got = await combined('fixed', [3, 1]);
  for (const row of [0, 1]) got[row]!.forEach((v, c) => close(v, mix([0.75, 0.25], row)[c]!, 1e-6));
  assert.deepEqual(normalizeWeights(undefined, 4), [0.25, 0.25, 0.25, 0.25]);
  assertUserError(
    () => normalizeWeights([1], 2, 'teacher weights'),
    /^teacher weights: 1 weights for 2 models; give one weight per model$/,
  );
  assertUserError(() => normalizeWeights([0, 0], 2, 'teacher weights'), /^teacher weights must not all be 0$/);
});

test("confidence weights: ∝ each teacher's probability of the true class, per sample", async () => {
  const got = await combined('confidence');
  for (const row of [0, 1]) {
    const y = labels[row]!;
    const raw = [softmax(A[row]!)[y]!, softmax(B[row]!)[y]!];
    const w = raw.map((r) => r / (raw[0]! + raw[1]!));
    got[row]!.forEach((v, c) => close(v, mix(w, row)[c]!, 1e-5));
  }
  // row 0: teacher A is right (class 0), B is wrong and sure: A dominates
  assert.ok(got[0]![0]! > got[0]![2]!);
});

test("entropy weights: ∝ 1/H of each teacher's softmax, label-free", async () => {
  const got = await combined('entropy');
  for (const row of [0, 1]) {
    const raw = [1 / entropy(A[row]!), 1 / entropy(B[row]!)];
    const w = raw.map((r) => r / (raw[0]! + raw[1]!));
    got[row]!.forEach((v, c) => close(v, mix(w, row)[c]!, 1e-5));
  }
});

test('confidence weighting without row indices is refused with the fix; no tensors leak', async () => {
  const t = ensembleTeacher({ members: [fixedTeacher(A), fixedTeacher(B)], weighting: 'confidence', labels });
  const before = tf.memory().numTensors;
  await assert.rejects(t.predict(x), /confidence weighting needs each training row's label.*use entropy or fixed/);
  const out = await ensembleTeacher({ members: [fixedTeacher(A), fixedTeacher(B)] }).predict(x, {
    indices: Int32Array.from([0, 1]),
  });
  out.logits.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('a multi-teacher config names a bad member in one line, before anything is written', async () => {
  const { runExperiment } = await import('../src/experiment/run.js');
  const { mkdtempSync, existsSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const out = join(mkdtempSync(join(tmpdir(), 'distill-multi-')), 'run');
  const run = (set: string[]) =>
    runExperiment({
      file: 'examples/multi-teacher.yaml',
      set: ['data.kwargs.subset=200', 'backend=cpu', ...set],
      out,
      progress: 'quiet',
      log: () => {},
    });
  await assert.rejects(
    run(['teacher.kwargs.teachers[1]={key: none}']),
    /teacher\.kwargs\.teachers\[1\]\.key: a member is a trained teacher \(file or train\), not `none`$/,
  );
  await assert.rejects(
    run(['teacher.kwargs.teachers[0].kwargs.modl=1']),
    /teacher `train`: unknown option `modl` \(did you mean `model`\?\); known: model, epochs, seed, cache$/,
  );
  await assert.rejects(
    run(['teacher.kwargs.weights=[1]']),
    /teacher weights: 1 weights for 2 models; give one weight per model$/,
  );
  assert.equal(existsSync(out), false);
});
