import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { useBestBackend } from '../src/backend/index.js';
import { fileSystem, registerFileRouters } from '../src/io/file-handler.js';
import { exportOnnx } from '../src/io/onnx-export.js';
import { buildModel } from '../src/models/zoo.js';
import { assertUserError, distillCli } from './helpers.js';

await useBestBackend({ backend: 'cpu' });
registerFileRouters();

/** Every weight random (batch-norm variances positive), so folded statistics and layouts all matter. */
function randomize(model: tf.LayersModel, seed: number): void {
  model.setWeights(
    model.weights.map((w, i) => {
      const values = tf.randomNormal(w.shape as number[], 0, 0.3, 'float32', seed + i);
      return /moving_variance/.test(w.originalName) ? values.abs().add(0.5) : values;
    }),
  );
}

async function maxDifference(model: tf.LayersModel, bytes: Uint8Array, nchw = false): Promise<number> {
  const shape = model.inputs[0]!.shape.slice(1) as number[];
  const x = tf.randomNormal([5, ...shape], 0, 1, 'float32', 7);
  const expected = (model.predict(x) as tf.Tensor).dataSync();
  const fed = nchw && shape.length === 3 ? x.transpose([0, 3, 1, 2]) : x;
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run({ input: new ort.Tensor('float32', fed.dataSync() as Float32Array, fed.shape) });
  const got = out['output']!.data as Float32Array;
  assert.equal(got.length, expected.length);
  let d = 0;
  for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i]! - expected[i]!));
  tf.dispose([x, fed]);
  return d;
}

const ZOO: Array<[string, Record<string, unknown>, number[]]> = [
  ['mlp', { hidden: [64, 32] }, [28, 28, 1]],
  ['cnn', { width: 0.5 }, [28, 28, 1]],
  ['cnn', { width: 0.25, convsPerBlock: 2 }, [32, 32, 3]],
  ['resnet', { width: 0.5 }, [28, 28, 1]],
  ['resnet', { width: 0.25 }, [32, 32, 3]],
  ['dwsep', { width: 0.5 }, [28, 28, 1]],
];

test('ONNX export: every zoo model runs in onnxruntime-node with the TF.js logits (max |Δ| ≤ 1e-4), NHWC and NCHW inputs', async () => {
  for (const [key, kwargs, inputShape] of ZOO) {
    const model = buildModel({ key, kwargs, inputShape, numClasses: 10, seed: 2 });
    randomize(model, 11);
    for (const layout of ['nhwc', 'nchw'] as const) {
      const d = await maxDifference(model, exportOnnx(model, { layout }), layout === 'nchw');
      assert.ok(d <= 1e-4, `${key} ${JSON.stringify(kwargs)} ${inputShape.join('x')} ${layout}: max |Δ| ${d}`);
    }
    model.dispose();
  }
});

test('ONNX export: a layer without a mapping is named in one line; distill export --format onnx writes the file', async () => {
  // A user's Sequential model (its input layer is not among `layers`), with an activation and 'same' pooling.
  const sequential = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [9, 9, 2],
        filters: 3,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'relu',
      }),
      tf.layers.averagePooling2d({ poolSize: 2, padding: 'same' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 5, activation: 'softmax' }),
    ],
  });
  randomize(sequential, 5);
  assert.ok((await maxDifference(sequential, exportOnnx(sequential))) <= 1e-4, 'a Sequential model');
  const lstm = tf.sequential({ layers: [tf.layers.lstm({ units: 4, inputShape: [3, 2] })] });
  assertUserError(
    () => exportOnnx(lstm),
    /^ONNX export: layer `.+` is a LSTM, which has no ONNX mapping here; supported: Dense/,
  );
  const dir = mkdtempSync(join(tmpdir(), 'onnx-'));
  const model = buildModel({ key: 'cnn', kwargs: { width: 0.25 }, inputShape: [28, 28, 1], numClasses: 10, seed: 4 });
  randomize(model, 3);
  await model.save(fileSystem(join(dir, 'student')));
  const r = await distillCli(['export', join(dir, 'student'), '--format', 'onnx', '--out', join(dir, 'student.onnx')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /wrote .+student\.onnx \(.+\), ONNX opset 13, input nhwc/);
  const { readFileSync } = await import('node:fs');
  assert.ok((await maxDifference(model, readFileSync(join(dir, 'student.onnx')))) <= 1e-4);
  const bad = await distillCli(['export', join(dir, 'student'), '--format', 'onnx', '--out', join(dir, 'x')]);
  assert.equal(bad.code, 1);
  assert.equal(
    bad.stderr.trim().split('\n').at(-1),
    `distill: --out ${join(dir, 'x')}: give the .onnx file to write, e.g. --out student.onnx`,
  );
});
