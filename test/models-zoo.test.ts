import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  buildModel,
  cnn,
  countParams,
  dwsep,
  mlp,
  models,
  resnet,
  trainableParamCount,
  type BuildModelOptions,
} from '../src/models/index.js';
import { assertUserError } from './helpers.js';

tf.enableProdMode();

const KINDS = ['cnn', 'dwsep', 'mlp', 'resnet'] as const;
const names = (m: tf.LayersModel) => new Set(m.layers.map((l) => l.name));
const weightBytes = (m: tf.LayersModel) =>
  m.getWeights().map((w) => Buffer.from((w.dataSync() as Float32Array).buffer).toString('hex'));

test('registry has the four kinds and unknown kinds list them', () => {
  assert.deepEqual(models.keys(), ['cnn', 'dwsep', 'mlp', 'resnet']);
  assertUserError(
    () => buildModel({ key: 'vit', inputShape: [4], numClasses: 2 }),
    'unknown model `vit`; known: cnn, dwsep, mlp, resnet',
  );
});

test('each model builds at two widths and outputs [batch, numClasses] logits', () => {
  for (const kind of KINDS) {
    for (const width of [1, 0.25]) {
      const m = buildModel({ key: kind, kwargs: { width }, inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
      assert.deepEqual(m.outputs[0]!.shape, [null, 10]);
      const y = tf.tidy(() => m.predict(tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 3)) as tf.Tensor);
      assert.deepEqual(y.shape, [2, 10], `${kind} @ ${width}`);
      // Logits, not probabilities: rows do not sum to 1 and some entries are negative.
      assert.ok(y.min().dataSync()[0]! < 0, `${kind} output is not linear`);
      y.dispose();
      m.dispose();
    }
  }
});

test('param counts match hand arithmetic for small configs', () => {
  // mlp [4,3] → flatten 12 → fc1 12·5+5 = 65 → fc2 5·2+2 = 12 → logits 2·3+3 = 9: 86.
  assert.equal(countParams(mlp({ inputShape: [4, 3], numClasses: 3, hidden: [5, 2] })), 86);
  // width 2: 12·10+10 = 130, 10·4+4 = 44, 4·3+3 = 15: 189.
  assert.equal(countParams(mlp({ inputShape: [4, 3], numClasses: 3, hidden: [5, 2], width: 2 })), 189);
  // cnn [8,8,2], blocks [4,6], 1 conv/block, dense 5, 3 classes:
  // conv 3·3·2·4 = 72, BN 4·4 = 16; pool → 4×4×4; conv 3·3·4·6 = 216, BN 4·6 = 24; pool → 2×2×6 = 24;
  // fc 24·5+5 = 125; logits 5·3+3 = 18: 471; moving mean/var 2·(4+6) = 20 not trainable.
  const c = cnn({ inputShape: [8, 8, 2], numClasses: 3, blocks: [4, 6], convsPerBlock: 1, dense: 5 });
  assert.equal(countParams(c), 471);
  assert.equal(trainableParamCount(c), 451);
  // resnet [8,8,1], stages [4,8], 1 block/stage, 2 classes:
  // stem 3·3·1·4 = 36 + BN 16 = 52; stage1_block0 (identity) 2·(3·3·4·4 + 16) = 320;
  // stage2_block0 (projection) 3·3·4·8+32 = 320, 3·3·8·8+32 = 608, 1·1·4·8+32 = 64: 992;
  // logits 8·2+2 = 18: 1382; non-trainable 2·(4+4+4+8+8+8) = 72.
  const r = resnet({ inputShape: [8, 8, 1], numClasses: 2, stages: [4, 8], blocksPerStage: 1 });
  assert.equal(countParams(r), 1382);
  assert.equal(trainableParamCount(r), 1310);
  // dwsep [8,8,3], stem 4, one block (8 filters, stride 2), 4 classes:
  // stem 3·3·3·4 = 108 + BN 16 = 124; dw 3·3·4 = 36 + BN 16; pw 1·1·4·8 = 32 + BN 32: 116;
  // logits 8·4+4 = 36: 276; non-trainable 2·(4+4+8) = 32.
  const d = dwsep({ inputShape: [8, 8, 3], numClasses: 4, stemFilters: 4, blocks: [{ filters: 8, stride: 2 }] });
  assert.equal(countParams(d), 276);
  assert.equal(trainableParamCount(d), 244);
  assert.equal(countParams(c), c.countParams());
  for (const m of [c, r, d]) m.dispose();
});

test('default [28,28,1]×10 param counts are the documented ones; CNN student ≥ 8× smaller', () => {
  const expected: Record<string, number[]> = {
    mlp: [235146, 109386, 52650],
    cnn: [871210, 218778, 55186],
    resnet: [176090, 44786, 11582],
    dwsep: [69258, 19786, 6186],
  };
  for (const kind of KINDS) {
    const counts = [1, 0.5, 0.25].map((width) => {
      const m = buildModel({ key: kind, kwargs: { width }, inputShape: [28, 28, 1], numClasses: 10 });
      const n = countParams(m);
      m.dispose();
      return n;
    });
    assert.deepEqual(counts, expected[kind], kind);
  }
  assert.ok(expected.cnn![0]! / expected.cnn![2]! >= 8);
});

test('documented layer names exist', () => {
  const want: Record<string, string[]> = {
    mlp: ['input', 'flatten', 'fc1', 'fc1_relu', 'fc2', 'features', 'logits'],
    cnn: [
      'block1_conv1',
      'block1_conv1_bn',
      'block1_conv2_relu',
      'block1_pool',
      'block1_drop',
      'block2_conv2',
      'block2_pool',
      'flatten',
      'fc',
      'features',
      'fc_drop',
      'logits',
    ],
    resnet: [
      'conv1',
      'conv1_bn',
      'conv1_relu',
      'stage1_block0_conv1',
      'stage1_block0_add',
      'stage1_block1_out',
      'stage2_block0_shortcut',
      'stage2_block0_shortcut_bn',
      'stage3_block1_add',
      'features',
      'logits',
    ],
    dwsep: ['conv1', 'conv1_relu', 'block1_dw', 'block1_dw_bn', 'block1_pw', 'block4_pw_relu', 'features', 'logits'],
  };
  for (const kind of KINDS) {
    const m = buildModel({ key: kind, kwargs: { width: 0.25 }, inputShape: [28, 28, 1], numClasses: 10 });
    const have = names(m);
    for (const n of want[kind]!) assert.ok(have.has(n), `${kind} lacks ${n}`);
    assert.equal(m.getLayer('features').outputShape.length, 2, `${kind} features is a vector`);
    m.dispose();
  }
  // First stage of the default resnet keeps its shape: identity shortcut, no projection.
  const r = resnet({ inputShape: [8, 8, 1], numClasses: 2 });
  assert.ok(!names(r).has('stage1_block0_shortcut'));
  r.dispose();
});

test('bad options are one-line UserErrors', () => {
  const bad: BuildModelOptions[] = [
    { key: 'cnn', inputShape: [28, 28], numClasses: 10 },
    { key: 'mlp', inputShape: [0], numClasses: 10 },
    { key: 'resnet', inputShape: [8, 8, 1], numClasses: 0 },
    { key: 'dwsep', kwargs: { width: -1 }, inputShape: [8, 8, 1], numClasses: 2 },
    { key: 'cnn', kwargs: { dropout: 1 }, inputShape: [8, 8, 1], numClasses: 2 },
    { key: 'resnet', kwargs: { blocksPerStage: 0 }, inputShape: [8, 8, 1], numClasses: 2 },
  ];
  for (const o of bad) {
    assertUserError(() => buildModel(o), /\S/);
  }
  // The MLP takes any rank, including plain vectors.
  for (const inputShape of [[5], [2, 3], [4, 4, 2]]) {
    const m = mlp({ inputShape, numClasses: 3, hidden: [4] });
    assert.deepEqual(m.getLayer('flatten').outputShape, [null, inputShape.reduce((a, b) => a * b)]);
    m.dispose();
  }
  // Any H×W works, even 1×1 (pools use 'same' padding).
  const tiny = cnn({ inputShape: [1, 1, 3], numClasses: 2 });
  assert.deepEqual(tiny.outputs[0]!.shape, [null, 2]);
  tiny.dispose();
});

test('same seed gives identical initial weights; another seed does not', () => {
  for (const kind of KINDS) {
    const opts = { key: kind, kwargs: { width: 0.25 }, inputShape: [8, 8, 1], numClasses: 3 };
    const [a, b, c] = [7, 7, 8].map((seed) => buildModel({ ...opts, seed }));
    assert.deepEqual(weightBytes(a!), weightBytes(b!), kind);
    assert.notDeepEqual(weightBytes(a!), weightBytes(c!), kind);
    for (const m of [a, b, c]) m!.dispose();
  }
});

test('a few fit steps on a tiny batch reduce the loss without leaking tensors', async () => {
  for (const kind of KINDS) {
    const m = buildModel({
      key: kind,
      kwargs: kind === 'cnn' || kind === 'mlp' ? { width: 0.25, dropout: 0 } : { width: 0.25 },
      inputShape: [8, 8, 1],
      numClasses: 3,
      seed: 3,
    });
    m.compile({
      optimizer: tf.train.adam(0.01),
      loss: (y: tf.Tensor, logits: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, logits),
    });
    const x = tf.randomNormal([8, 8, 8, 1], 0, 1, 'float32', 5);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3);
    const first = await m.fit(x, y, { epochs: 5, batchSize: 8, verbose: 0, shuffle: false });
    const before = tf.memory().numTensors;
    const second = await m.fit(x, y, { epochs: 5, batchSize: 8, verbose: 0, shuffle: false });
    assert.equal(tf.memory().numTensors, before, `${kind} leaks tensors`);
    const losses = [...first.history.loss!, ...second.history.loss!] as number[];
    assert.ok(losses.at(-1)! < losses[0]!, `${kind} loss ${losses[0]} → ${losses.at(-1)}`);
    tf.dispose([x, y]);
    m.dispose();
  }
});
