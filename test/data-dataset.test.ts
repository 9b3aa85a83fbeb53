import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../src/errors.js';
import { Dataset } from '../src/data/dataset.js';
import { Rng } from '../src/data/rng.js';
import { assertUserError } from './helpers.js';

tf.enableProdMode();

/** `n` images of shape [h, w, c]; every value distinct and non-zero: row r, offset k → r * 1000 + k + 1. */
function images(n: number, h = 4, w = 5, c = 1): Dataset {
  const s = h * w * c;
  const features = Float32Array.from({ length: n * s }, (_, i) => Math.floor(i / s) * 1000 + (i % s) + 1);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  return new Dataset({ features, labels, sampleShape: [h, w, c], numClasses: 3, classNames: ['a', 'b', 'c'] });
}

function tabular(rows: number[][], labels: number[], numClasses = 2): Dataset {
  return new Dataset({
    features: Float32Array.from(rows.flat()),
    labels: Int32Array.from(labels),
    sampleShape: [rows[0]!.length],
    numClasses,
  });
}

/** Copies each batch's data out while it is alive (the generator disposes its tensors). */
function collect(batches: Iterable<{ x: tf.Tensor; y: tf.Tensor1D; indices: Int32Array }>) {
  const out = [];
  for (const { x, y, indices } of batches) {
    out.push({ shape: x.shape, x: x.dataSync().slice(), y: [...y.dataSync()], indices: [...indices] });
  }
  return out;
}

test('constructor validates shapes and labels', () => {
  const ok = { features: new Float32Array(6), labels: Int32Array.from([0, 1]), sampleShape: [3], numClasses: 2 };
  assert.equal(new Dataset(ok).size, 2);
  assert.throws(() => new Dataset({ ...ok, features: new Float32Array(5) }), /2 labels need 6 feature values/);
  assert.throws(() => new Dataset({ ...ok, labels: Int32Array.from([0, 2]) }), /label 2 at row 1 is outside 0..1/);
  assert.throws(() => new Dataset({ ...ok, classNames: ['x'] }), /1 class names for 2 classes/);
  assert.throws(() => new Dataset({ ...ok, sampleShape: [] }), /bad sample shape/);
});

test('size, sampleShape, slice, subset and gather', () => {
  const d = images(10);
  assert.equal(d.size, 10);
  assert.deepEqual(d.sampleShape, [4, 5, 1]);
  assert.equal(d.sampleSize, 20);
  const s = d.slice(2, 5);
  assert.equal(s.size, 3);
  assert.equal(s.features[0], 2001);
  assert.deepEqual([...s.labels], [2, 0, 1]);
  assert.deepEqual(s.classNames, ['a', 'b', 'c']);
  assert.equal(d.subset(4).size, 4);
  assert.equal(d.subset(99).size, 10);
  assert.throws(() => d.subset(-1), UserError);
  const g = d.gather([7, 0]);
  assert.deepEqual([g.features[0], g.features[20]], [7001, 1]);
  assert.deepEqual([...g.labels], [1, 0]);
});

test('split is seeded, disjoint, complete and keeps row order', () => {
  const d = tabular(
    Array.from({ length: 100 }, (_, i) => [i]),
    Array.from({ length: 100 }, (_, i) => i % 2),
  );
  const { train, validation } = d.split({ validationFraction: 0.2, seed: 1 });
  assert.equal(validation.size, 20);
  assert.equal(train.size, 80);
  const v = [...validation.features];
  const t = [...train.features];
  assert.deepEqual(
    [...v, ...t].sort((a, b) => a - b),
    [...Array(100).keys()],
  );
  assert.deepEqual(
    v,
    [...v].sort((a, b) => a - b),
  );
  assert.deepEqual(
    t.map((x) => x % 2),
    [...train.labels],
    'labels travel with their rows',
  );
  assert.deepEqual([...d.split({ validationFraction: 0.2, seed: 1 }).validation.features], v);
  assert.notDeepEqual([...d.split({ validationFraction: 0.2, seed: 2 }).validation.features], v);
  assertUserError(
    () => d.split({ validationFraction: 1, seed: 1 }),
    'validationFraction must be between 0 and 1 (exclusive), got 1',
  );
  assertUserError(
    () => d.split({ validationFraction: 0.001, seed: 1 }),
    'cannot split 100 samples with validationFraction 0.001: one part would be empty; use more data or another fraction',
  );
});

test('computeStats on training data, normalize applies the same stats elsewhere', () => {
  const train = tabular(
    [
      [1, 10, 5],
      [3, 30, 5],
    ],
    [0, 1],
  );
  const stats = train.computeStats();
  assert.deepEqual(stats.mean, [2, 20, 5]);
  assert.deepEqual(stats.std, [1, 10, 1], 'a constant column gets std 1, not 0');
  assert.deepEqual([...train.normalize(stats).features], [-1, -1, 0, 1, 1, 0]);
  const test = tabular([[2, 40, 7]], [1]);
  assert.deepEqual([...test.normalize(stats).features], [0, 2, 2]);
  assert.deepEqual([...test.features], [2, 40, 7], 'normalize returns a copy');
  assertUserError(
    () => images(2).normalize(stats),
    'normalization stats have 3 means and 3 stds, but samples of shape [4, 5, 1] have 1 channels; compute the stats on a dataset of the same shape',
  );
});

test('image stats are per channel (last axis)', () => {
  const d = new Dataset({
    features: Float32Array.from([0, 10, 2, 10, 0, 30, 2, 30]),
    labels: Int32Array.from([0, 1]),
    sampleShape: [1, 2, 2],
    numClasses: 2,
  });
  const stats = d.computeStats();
  assert.deepEqual(stats.mean, [1, 20]);
  assert.deepEqual(stats.std, [1, 10]);
});

test('batches visit every row exactly once per epoch, with matching x and y', () => {
  const d = images(23);
  const batches = collect(d.batches({ batchSize: 5, shuffle: true, seed: 3 }));
  assert.deepEqual(
    batches.map((b) => b.shape),
    [
      [5, 4, 5, 1],
      [5, 4, 5, 1],
      [5, 4, 5, 1],
      [5, 4, 5, 1],
      [3, 4, 5, 1],
    ],
  );
  const seen = batches.flatMap((b) => b.indices);
  assert.deepEqual(
    [...seen].sort((a, b) => a - b),
    [...Array(23).keys()],
  );
  assert.notDeepEqual(seen, [...Array(23).keys()], 'shuffled');
  for (const b of batches) {
    b.indices.forEach((row, i) => {
      assert.equal(b.x[i * 20], row * 1000 + 1);
      assert.equal(b.x[i * 20 + 19], row * 1000 + 20);
      assert.equal(b.y[i], d.labels[row]);
    });
  }
  assert.equal(d.countBatches({ batchSize: 5 }), 5);
});

test('without shuffle, batches are in row order and need no seed', () => {
  const order = collect(images(7).batches({ batchSize: 3 })).flatMap((b) => b.indices);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6]);
  assert.throws(() => images(7).batches({ batchSize: 3, shuffle: true }), /need `seed` or `rng`/);
  assertUserError(() => images(7).batches({ batchSize: 0 }), 'batchSize must be a whole number ≥ 1, got 0');
});

test('same seed gives the same order, a different seed another', () => {
  const d = images(50);
  const order = (seed: number) => collect(d.batches({ batchSize: 8, shuffle: true, seed })).flatMap((b) => b.indices);
  assert.deepEqual(order(1), order(1));
  assert.notDeepEqual(order(1), order(2));
});

test('a shared rng gives new orders each epoch, and its saved state replays an epoch', () => {
  const d = images(50);
  const rng = new Rng(4);
  const epoch = () => collect(d.batches({ batchSize: 8, shuffle: true, rng, augment: { shift: 1 } }));
  const first = epoch();
  const saved = rng.getState();
  const second = epoch();
  assert.notDeepEqual(
    second.flatMap((b) => b.indices),
    first.flatMap((b) => b.indices),
  );
  rng.setState(saved);
  assert.deepEqual(epoch(), second);
});

test('dropLast skips the short final batch', () => {
  const d = images(23);
  const batches = collect(d.batches({ batchSize: 5, shuffle: true, seed: 1, dropLast: true }));
  assert.equal(batches.length, 4);
  assert.ok(batches.every((b) => b.indices.length === 5));
  assert.equal(new Set(batches.flatMap((b) => b.indices)).size, 20);
  assert.equal(d.countBatches({ batchSize: 5, dropLast: true }), 4);
  assert.equal(collect(images(4).batches({ batchSize: 5, dropLast: true })).length, 0);
});

/** The image `source` ([h, w, c]) moved by (dy, dx) pixels, zeros shifted in. */
function shifted(source: ArrayLike<number>, [h, w, c]: number[], dy: number, dx: number): number[] {
  const out = new Array(h! * w! * c!).fill(0);
  for (let y = 0; y < h!; y++) {
    for (let x = 0; x < w!; x++) {
      const sy = y - dy;
      const sx = x - dx;
      if (sy < 0 || sy >= h! || sx < 0 || sx >= w!) continue;
      for (let k = 0; k < c!; k++) out[(y * w! + x) * c! + k] = source[(sy * w! + sx) * c! + k];
    }
  }
  return out;
}

for (const shape of [
  [4, 5, 1],
  [3, 4, 3],
]) {
  test(`shift augmentation moves each image by its own offset within ±k, zero fill, shape [${shape}]`, () => {
    const [h, w, c] = shape as [number, number, number];
    const k = 2;
    const s = h * w * c;
    const d = images(40, h, w, c);
    const batches = collect(d.batches({ batchSize: 16, shuffle: true, seed: 8, augment: { shift: k } }));
    const offsets = new Set<string>();
    for (const b of batches) {
      assert.deepEqual(b.shape.slice(1), shape);
      b.indices.forEach((row, i) => {
        const got = JSON.stringify([...b.x.subarray(i * s, (i + 1) * s)]);
        const source = d.features.subarray(row * s, (row + 1) * s);
        const matches: string[] = [];
        for (let dy = -k; dy <= k; dy++) {
          for (let dx = -k; dx <= k; dx++) {
            if (JSON.stringify(shifted(source, shape, dy, dx)) === got) matches.push(`${dy},${dx}`);
          }
        }
        assert.equal(matches.length, 1, `row ${row} is a shift of its source within ±${k}`);
        offsets.add(matches[0]!);
      });
    }
    assert.ok(offsets.size > 10, `offsets vary per sample (${offsets.size} distinct)`);
    assert.ok(
      [...offsets].some((o) => o !== '0,0'),
      'pixels actually move',
    );
    const again = collect(d.batches({ batchSize: 16, shuffle: true, seed: 8, augment: { shift: k } }));
    assert.deepEqual(again, batches, 'augmentation is seeded');
  });
}

test('shift augmentation is refused for non-image samples', () => {
  assertUserError(
    () => tabular([[1, 2]], [0]).batches({ batchSize: 1, seed: 1, augment: { shift: 2 } }),
    'shift augmentation needs image samples [height, width, channels], got [2]; remove augment.shift for this dataset',
  );
});

test('no tensor leaks: after a full epoch, an early break, and a throw', () => {
  const d = images(30);
  const baseline = tf.memory().numTensors;
  for (const b of d.batches({ batchSize: 4, shuffle: true, seed: 1, augment: { shift: 1 } })) {
    assert.equal(tf.memory().numTensors, baseline + 2, 'only the current batch is alive');
    b.x.sum().dispose();
  }
  assert.equal(tf.memory().numTensors, baseline);
  for (const b of d.batches({ batchSize: 4 })) {
    if (b.indices[0] === 8) break;
  }
  assert.equal(tf.memory().numTensors, baseline);
  assert.throws(() => {
    for (const _ of d.batches({ batchSize: 4 })) throw new Error('consumer failed');
  }, /consumer failed/);
  assert.equal(tf.memory().numTensors, baseline);
  for (const b of d.batches({ batchSize: 4 })) {
    b.x.dispose(); // a consumer disposing early is harmless
  }
  assert.equal(tf.memory().numTensors, baseline);
});

test('a cloned batch survives the generator moving on', () => {
  const d = images(6);
  const it = d.batches({ batchSize: 2 });
  const first = it.next().value!;
  const kept = first.x.clone();
  const expected = first.x.dataSync().slice();
  it.next();
  assert.ok(first.x.isDisposed, 'the generator disposed the old batch');
  assert.deepEqual(kept.dataSync(), expected);
  it.return();
  kept.dispose();
});

test('toTensors returns the whole set; the caller disposes', () => {
  const d = images(3);
  const baseline = tf.memory().numTensors;
  const { x, y } = d.toTensors();
  assert.deepEqual(x.shape, [3, 4, 5, 1]);
  assert.equal(x.dtype, 'float32');
  assert.equal(y.dtype, 'int32');
  assert.deepEqual([...y.dataSync()], [0, 1, 2]);
  assert.deepEqual(x.dataSync(), d.features);
  tf.dispose([x, y]);
  assert.equal(tf.memory().numTensors, baseline);
});
