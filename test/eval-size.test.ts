import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { compression, modelSize, speedup } from '../src/eval/index.js';
import { saveEncodedModel, WEIGHT_ENCODINGS } from '../src/io/quantize.js';
import { countParams, dwsep, mlp } from '../src/models/index.js';

tf.enableProdMode();
await tf.setBackend('cpu');

test('modelSize bytes equal the files saveEncodedModel writes, per encoding', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'size-'));
  try {
    for (const m of [
      mlp({ inputShape: [28, 28, 1], numClasses: 10, hidden: [64], seed: 1 }),
      dwsep({ inputShape: [12, 12, 1], numClasses: 4, width: 0.25, seed: 2 }),
    ]) {
      const size = modelSize({ model: m });
      assert.equal(size.params, countParams(m));
      for (const encoding of WEIGHT_ENCODINGS) {
        const path = join(dir, `${m.name}-${encoding}`);
        const saved = await saveEncodedModel({ model: m, encoding, path });
        const onDisk = (await stat(join(path, 'model.json'))).size + (await stat(join(path, 'weights.bin'))).size;
        assert.equal(size.bytes[encoding], onDisk, `${m.name} ${encoding}`);
        assert.equal(size.weightBytes[encoding], saved.weights);
        assert.equal(size.modelJsonBytes[encoding], saved.modelJson);
      }
      assert.equal(size.weightBytes.float32, 4 * size.params);
      assert.equal(size.weightBytes.float16 * 2, size.weightBytes.float32);
      assert.equal(size.weightBytes.uint8 * 4, size.weightBytes.float32);
      m.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('float16 file is about half of float32, uint8 about a quarter, for a 51k-param mlp', () => {
  const m = mlp({ inputShape: [28, 28, 1], numClasses: 10, hidden: [64], seed: 1 });
  const { bytes, params } = modelSize({ model: m });
  assert.equal(params, 784 * 64 + 64 + 64 * 10 + 10);
  const half = bytes.float16 / bytes.float32;
  const quarter = bytes.uint8 / bytes.float32;
  assert.ok(half > 0.5 && half < 0.52, `float16/float32 = ${half}`);
  assert.ok(quarter > 0.25 && quarter < 0.27, `uint8/float32 = ${quarter}`);
  m.dispose();
});

test('compression and speed-up are teacher ÷ model', () => {
  const c = compression({
    teacher: { params: 1000, bytes: { float32: 4000, float16: 2000, uint8: 1000 } },
    model: { params: 250, bytes: { float32: 1000, float16: 500, uint8: 250 } },
  });
  assert.deepEqual(c, { params: 4, bytes: { float32: 4, float16: 8, uint8: 16 } });
  assert.deepEqual(speedup({ teacher: { batch1: 2, batch64: 30 }, model: { batch1: 1, batch64: 10 } }), {
    batch1: 2,
    batch64: 3,
  });
});
