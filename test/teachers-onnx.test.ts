import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { loadOnnxTeacher } from '../src/teachers/onnx.js';
import type { Teacher } from '../src/teachers/types.js';
import { UserError } from '../src/errors.js';
import { assertUserError } from './helpers.js';

tf.enableProdMode();

// Made by scripts/make-onnx-fixture.py: conv3x3(1→4, pad 1) → relu → maxpool 2 → flatten → linear 10,
// outputs `logits` and `features` (after the pool), input `input` [N,1,28,28].
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/onnx/${name}`, import.meta.url));
const MODEL = fixture('tiny-cnn.onnx');
interface Affine {
  weightShape: number[];
  weight: number[];
  bias: number[];
}
interface Weights {
  conv?: Affine;
  fc: Affine;
  probeLogits: number[][];
}
const weights = (name: string) => JSON.parse(readFileSync(fixture(`${name}.weights.json`), 'utf8')) as Weights;
const W = weights('tiny-cnn');
const RGB = weights('tiny-rgb');

/**
 * The same network in TF.js, NHWC: conv kernels OIHW → HWIO, then relu (and max-pool 2 when
 * `pool`), then flatten in NCHW order like PyTorch, then the linear layer.
 */
function rebuild(x: tf.Tensor4D, w: Weights = W, pool = true): { logits: tf.Tensor2D; features: tf.Tensor4D } {
  return tf.tidy(() => {
    const k = tf
      .tensor4d(w.conv!.weight, w.conv!.weightShape as [number, number, number, number])
      .transpose([2, 3, 1, 0]) as tf.Tensor4D;
    const act = tf.relu(tf.conv2d(x, k, 1, 'same').add(tf.tensor1d(w.conv!.bias))) as tf.Tensor4D;
    const features = pool ? tf.maxPool(act, 2, 2, 'valid') : act;
    const flat = features.transpose([0, 3, 1, 2]).reshape([x.shape[0], -1]);
    const fc = tf.tensor2d(w.fc.weight, w.fc.weightShape as [number, number]);
    return { logits: tf.matMul(flat, fc, false, true).add(tf.tensor1d(w.fc.bias)) as tf.Tensor2D, features };
  });
}

/** rgb(k) of scripts/make-onnx-fixture.py, [2 samples k = 0, 1] NCHW [2,3,8,8], returned NHWC. */
const rgbProbes = () =>
  tf.tidy(
    () =>
      tf
        .tensor4d(
          Float32Array.from({ length: 2 * 192 }, (_, j) => Math.sin(((j % 192) + Math.floor(j / 192)) * 0.37)),
          [2, 3, 8, 8],
        )
        .transpose([0, 2, 3, 1]) as tf.Tensor4D,
  );

/** PyTorch's probe(k) in scripts/make-onnx-fixture.py, as one NHWC sample. */
const probe = (k: number) => Float32Array.from({ length: 784 }, (_, i) => ((i * (7 + 2 * k) + 13 * k) % 256) / 255);

/** A batch of Fashion-MNIST-shaped images in [0, 1], NHWC, from a seed. */
function images(n: number, seed: number, [h, w, c] = [28, 28, 1]): tf.Tensor4D {
  let s = seed >>> 0;
  const v = new Float32Array(n * h * w * c).map(() => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) / 2 ** 24;
  });
  return tf.tensor4d(v, [n, h, w, c]);
}

/** max |a − b| / max |b| ≤ tol. */
function assertClose(a: tf.Tensor, b: tf.Tensor | ArrayLike<number>, tol = 1e-4) {
  const x = a.dataSync();
  const y = b instanceof tf.Tensor ? b.dataSync() : b;
  assert.equal(x.length, y.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  assert.ok(diff <= tol * scale, `max diff ${diff} > ${tol} × ${scale}`);
}

let teacher: Teacher;
before(async () => {
  teacher = await loadOnnxTeacher({ path: MODEL, inputShape: [28, 28, 1], numClasses: 10 });
});
after(() => teacher.dispose());

test('reads names and shapes from the session: NCHW input seen as NHWC samples, 10 classes, one tap', () => {
  assert.equal(teacher.kind, 'onnx');
  assert.deepEqual(teacher.inputShape, [28, 28, 1]);
  assert.equal(teacher.numClasses, 10);
  assert.deepEqual(teacher.tapNames(), [{ name: 'features', shape: [14, 14, 4] }]);
});

test('logits equal PyTorch’s own and the TF.js rebuild of the same weights (NHWC batches in, NCHW to the model)', async () => {
  const p = tf.tensor4d([...probe(0), ...probe(1)], [2, 28, 28, 1]);
  const out = await teacher.predict(p);
  assert.deepEqual(out.logits.shape, [2, 10]);
  assert.deepEqual(out.taps, {});
  assertClose(out.logits, W.probeLogits.flat());
  const x = images(5, 7);
  const got = await teacher.predict(x);
  const want = rebuild(x);
  assertClose(got.logits, want.logits);
  tf.dispose([p, x, out.logits, got.logits, want.logits, want.features]);
});

test('without layout or inputShape the layout is inferred from [N,1,28,28] as NCHW', async () => {
  const t = await loadOnnxTeacher({ path: MODEL });
  try {
    assert.deepEqual(t.inputShape, [28, 28, 1]);
    assert.equal(t.numClasses, 10);
    const x = images(3, 11);
    const got = await t.predict(x);
    const want = rebuild(x);
    assertClose(got.logits, want.logits);
    tf.dispose([x, got.logits, want.logits, want.features]);
  } finally {
    t.dispose();
  }
});

test('three channels: NHWC batches are transposed to the NCHW model (PyTorch’s logits and the rebuild agree)', async () => {
  const t = await loadOnnxTeacher({ path: fixture('tiny-rgb.onnx'), inputShape: [8, 8, 3], numClasses: 5 });
  try {
    assert.deepEqual(t.inputShape, [8, 8, 3]);
    const p = rgbProbes();
    const out = await t.predict(p);
    assertClose(out.logits, RGB.probeLogits.flat());
    const x = images(6, 21, [8, 8, 3]);
    const got = await t.predict(x);
    const want = rebuild(x, RGB, false);
    assertClose(got.logits, want.logits);
    // The same values fed without the transpose (reinterpreted as NCHW) give other logits.
    const raw = rebuild(x.reshape([6, 3, 8, 8]).transpose([0, 2, 3, 1]) as tf.Tensor4D, RGB, false);
    assert.ok(tf.tidy(() => got.logits.sub(raw.logits).abs().max().dataSync()[0]!) > 1e-2);
    tf.dispose([p, x, out.logits, got.logits, want.logits, want.features, raw.logits, raw.features]);
  } finally {
    t.dispose();
  }
});

test('a flat [N,192] model fed [8,8,3] images: needs a layout, then flattens in that order', async () => {
  const path = fixture('tiny-mlp.onnx');
  await assertUserError(
    loadOnnxTeacher({ path, inputShape: [8, 8, 3] }),
    `ONNX model ${path} takes flat samples [192] but the data's samples are [8,8,3] with 3 channels; pass layout 'NCHW' (PyTorch flatten order) or 'NHWC'`,
  );
  const t = await loadOnnxTeacher({ path, inputShape: [8, 8, 3], layout: 'NCHW' });
  const flat = await loadOnnxTeacher({ path });
  try {
    assert.deepEqual(t.inputShape, [8, 8, 3]);
    assert.deepEqual(flat.inputShape, [192]);
    const p = rgbProbes();
    const out = await t.predict(p);
    assertClose(out.logits, weights('tiny-mlp').probeLogits.flat());
    const q = tf.tidy(() => p.transpose([0, 3, 1, 2]).reshape([2, 192]));
    const same = await flat.predict(q);
    assertClose(same.logits, out.logits);
    tf.dispose([p, q, out.logits, same.logits]);
  } finally {
    t.dispose();
    flat.dispose();
  }
});

test('taps: the declared `features` output, returned NHWC like the rebuild’s pooled activations', async () => {
  const x = images(4, 3);
  const out = await teacher.predict(x, { taps: ['features'] });
  assert.deepEqual(Object.keys(out.taps), ['features']);
  assert.deepEqual(out.taps.features!.shape, [4, 14, 14, 4]);
  const want = rebuild(x);
  assertClose(out.taps.features!, want.features);
  assertClose(out.logits, want.logits);
  tf.dispose([x, out.logits, out.taps.features!, want.logits, want.features]);
});

test('an undeclared tap is a one-line UserError listing the declared outputs', async () => {
  const x = images(1, 1);
  await assertUserError(
    teacher.predict(x, { taps: ['conv'] }),
    `ONNX teacher ${MODEL} has no tap \`conv\`; declared outputs usable as taps: features [14,14,4]`,
  );
  await assertUserError(
    loadOnnxTeacher({ path: MODEL, taps: ['relu'] }),
    `ONNX model ${MODEL} declares no output \`relu\` to tap; declared outputs besides the logits: features [14,14,4]`,
  );
  const none = await loadOnnxTeacher({ path: MODEL, taps: [] });
  assert.deepEqual(none.tapNames(), []);
  none.dispose();
  x.dispose();
});

test('mismatches fail at load with one line naming both sides', async () => {
  await assertUserError(
    loadOnnxTeacher({ path: MODEL, inputName: 'x' }),
    `ONNX model ${MODEL} has no input \`x\`; its inputs: input [N,1,28,28]`,
  );
  await assertUserError(
    loadOnnxTeacher({ path: MODEL, inputShape: [32, 32, 3] }),
    `ONNX model ${MODEL} input \`input\` takes samples [1,28,28] (NCHW, i.e. [28,28,1] NHWC) but the data's samples are [32,32,3]; use data shaped for this model or another teacher`,
  );
  await assertUserError(
    loadOnnxTeacher({ path: MODEL, inputShape: [784] }),
    `ONNX model ${MODEL} input \`input\` takes samples [1,28,28] (NCHW, i.e. [28,28,1] NHWC) but the data's samples are [784]; use data shaped for this model or another teacher`,
  );
  await assertUserError(
    loadOnnxTeacher({ path: MODEL, inputShape: [28, 28, 1], layout: 'NHWC' }),
    `ONNX model ${MODEL} input \`input\` takes samples [1,28,28] but the data's samples are [28,28,1]; use data shaped for this model or another teacher`,
  );
  await assertUserError(
    loadOnnxTeacher({ path: MODEL, numClasses: 5 }),
    `ONNX model ${MODEL} output \`logits\` has 10 classes but the data has 5; use a teacher trained on the same classes`,
  );
  await assertUserError(
    loadOnnxTeacher({ path: MODEL, outputName: 'probs' }),
    `ONNX model ${MODEL} has no output \`probs\`; its outputs: logits [N,10], features [N,4,14,14]`,
  );
  await assertUserError(
    loadOnnxTeacher({ path: MODEL, outputName: 'features' }),
    `ONNX model ${MODEL} output \`features\` is [N,4,14,14], not logits [batch, classes]; choose outputName among: logits [N,10], features [N,4,14,14]`,
  );
  await assertUserError(
    loadOnnxTeacher({ path: '/nonexistent/teacher.onnx' }),
    'ONNX model /nonexistent/teacher.onnx does not exist; check the path, or export the teacher with torch.onnx.export',
  );
  const notOnnx = fileURLToPath(new URL('./fixtures/onnx/tiny-cnn.weights.json', import.meta.url));
  await assert.rejects(
    loadOnnxTeacher({ path: notOnnx }),
    (e: unknown) =>
      e instanceof UserError &&
      !e.message.includes('\n') &&
      e.message.startsWith(`cannot load ONNX model ${notOnnx}: `),
  );
});

test('a batch of the wrong sample shape is a one-line UserError', async () => {
  const x = tf.zeros([2, 1, 28, 28]);
  await assertUserError(
    teacher.predict(x),
    `ONNX model ${MODEL} teacher takes batches [N,28,28,1] but got [2,1,28,28]; feed the data it was loaded for`,
  );
  x.dispose();
});

test('repeated predict calls (with and without taps) leak no tensors', async () => {
  const x = images(8, 5);
  const first = await teacher.predict(x, { taps: ['features'] });
  tf.dispose([first.logits, first.taps.features!]);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) {
    const out = await teacher.predict(x, i % 2 ? { taps: ['features'] } : {});
    tf.dispose([out.logits, ...Object.values(out.taps)]);
  }
  assert.equal(tf.memory().numTensors, before);
  x.dispose();
});
