import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  encodeModelArtifacts,
  encodeModelWeights,
  encodeTensors,
  float16Bits,
  saveEncodedModel,
} from '../src/io/quantize.js';
import { registerFileRouters } from '../src/io/file-handler.js';
import { cnn, mlp } from '../src/models/index.js';
import { assertUserError } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');

const originals = (m: tf.LayersModel) =>
  m.weights.map((w) => ({ name: w.originalName, values: w.read().dataSync() as Float32Array }));

function decoded(specs: tf.io.WeightsManifestEntry[], data: ArrayBuffer): Record<string, Float32Array> {
  const map = tf.io.decodeWeights(data, specs);
  const out: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(map)) {
    out[k] = t.dataSync() as Float32Array;
    t.dispose();
  }
  return out;
}

test('float32 round-trips exactly and matches tf.io.encodeWeights byte for byte', async () => {
  const m = mlp({ inputShape: [6], numClasses: 3, hidden: [5], seed: 1 });
  const { specs, data } = encodeModelWeights({ model: m, encoding: 'float32' });
  const ref = await tf.io.encodeWeights(m.weights.map((w) => ({ name: w.originalName, tensor: w.read() })));
  assert.deepEqual(specs, ref.specs);
  assert.deepEqual(new Uint8Array(data), new Uint8Array(ref.data as ArrayBuffer));
  const d = decoded(specs, data);
  for (const { name, values } of originals(m)) assert.deepEqual(d[name], values);
  m.dispose();
});

test('float16: manifest field, 2 bytes per value, relative error ≤ 2⁻¹¹', () => {
  const m = cnn({ inputShape: [8, 8, 1], numClasses: 4, width: 0.25, seed: 2 });
  const { specs, data } = encodeModelWeights({ model: m, encoding: 'float16' });
  const n = originals(m).reduce((s, w) => s + w.values.length, 0);
  assert.equal(data.byteLength, 2 * n);
  assert.ok(specs.every((s) => s.dtype === 'float32' && s.quantization?.dtype === 'float16'));
  const d = decoded(specs, data);
  for (const { name, values } of originals(m)) {
    values.forEach((v, i) =>
      assert.ok(Math.abs(d[name]![i]! - v) <= Math.abs(v) * 2 ** -11 + 2 ** -25, `${name}[${i}] ${v} → ${d[name]![i]}`),
    );
  }
  m.dispose();
});

test('float16 bit patterns: exact values, rounding to even, subnormals, overflow', () => {
  assert.equal(float16Bits(1), 0x3c00);
  assert.equal(float16Bits(-2), 0xc000);
  assert.equal(float16Bits(65504), 0x7bff);
  assert.equal(float16Bits(1e6), 0x7c00);
  assert.equal(float16Bits(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(float16Bits(2 ** -26), 0x0000); // rounds to zero
  assert.equal(float16Bits(1 + 2 ** -11), 0x3c00); // tie → even (down)
  assert.equal(float16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
  assert.equal(float16Bits(0.1), 0x2e66);
  assert.equal(float16Bits(NaN) & 0x7c00, 0x7c00);
});

test('uint8: per-tensor min/scale, 1 byte per value, error ≤ scale/2, zero exact', () => {
  const m = mlp({ inputShape: [7], numClasses: 3, hidden: [9], seed: 3 });
  const { specs, data } = encodeModelWeights({ model: m, encoding: 'uint8' });
  const n = originals(m).reduce((s, w) => s + w.values.length, 0);
  assert.equal(data.byteLength, n);
  const d = decoded(specs, data);
  for (const { name, values } of originals(m)) {
    const q = specs.find((s) => s.name === name)!.quantization!;
    assert.equal(q.dtype, 'uint8');
    assert.ok(q.scale! > 0);
    values.forEach((v, i) => {
      assert.ok(Math.abs(d[name]![i]! - v) <= q.scale! / 2 + 1e-7, `${name}[${i}]`);
      if (v === 0) assert.equal(d[name]![i], 0); // biases start at 0
    });
  }
  m.dispose();
});

test('uint8 edge cases: constant, all-positive and all-negative tensors', () => {
  const cases = [
    [0, 0, 0],
    [3, 3],
    [0.5, 1, 2],
    [-4, -1, -2],
  ];
  const tensors = cases.map((v, i) => ({ name: `t${i}`, tensor: tf.tensor1d(v) }));
  const { specs, data } = encodeTensors({ tensors, encoding: 'uint8' });
  const d = decoded(specs, data);
  cases.forEach((v, i) =>
    v.forEach((x, j) => assert.ok(Math.abs(d[`t${i}`]![j]! - x) <= specs[i]!.quantization!.scale! / 2 + 1e-7)),
  );
  assert.deepEqual([...d.t0!], [0, 0, 0]);
  tf.dispose(tensors.map((t) => t.tensor));
});

test('quantized artifacts load through tf.loadLayersModel and predict close to the original', async () => {
  const m = mlp({ inputShape: [5], numClasses: 3, hidden: [8], seed: 4 });
  const x = tf.randomNormal([4, 5], 0, 1, 'float32', 9);
  const ref = (m.predict(x) as tf.Tensor).dataSync();
  for (const [encoding, tol] of [
    ['float32', 0],
    ['float16', 5e-3],
    ['uint8', 0.1],
  ] as const) {
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(encodeModelArtifacts({ model: m, encoding })));
    const y = loaded.predict(x) as tf.Tensor;
    y.dataSync().forEach((v, i) => assert.ok(Math.abs(v - ref[i]!) <= tol, `${encoding}: ${v} vs ${ref[i]}`));
    y.dispose();
    loaded.dispose();
  }
  x.dispose();
  m.dispose();
});

test('saveEncodedModel writes files a file:// load dequantizes; unknown encodings fail clearly', async () => {
  registerFileRouters();
  const dir = await mkdtemp(join(tmpdir(), 'quantize-'));
  try {
    const m = mlp({ inputShape: [5], numClasses: 3, hidden: [8], seed: 5 });
    const saved = await saveEncodedModel({ model: m, encoding: 'uint8', path: join(dir, 'u8') });
    assert.equal(
      saved.weights,
      m.weights.reduce((s, w) => s + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1), 0),
    );
    const loaded = await tf.loadLayersModel(`file://${join(dir, 'u8')}`);
    assert.equal(loaded.weights.length, m.weights.length);
    loaded.dispose();
    assertUserError(
      () => encodeModelWeights({ model: m, encoding: 'int4' as 'uint8' }),
      /unknown weight encoding `int4`; known: float32, float16, uint8/,
    );
    m.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
