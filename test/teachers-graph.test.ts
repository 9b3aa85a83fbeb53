import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { graphTeacher, loadGraphTeacher } from '../src/teachers/graph.js';
import { fileSystem } from '../src/io/file-handler.js';
import { buildModel } from '../src/models/index.js';
import { assertUserError } from './helpers.js';

tf.enableProdMode();

let root = '';
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'distill-graph-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

// A hand-written TF graph (what tensorflowjs_converter emits for a Keras
// Dense(3, relu) → Dense(2) model): x [N,4] → dense/Relu [N,3] → Identity [N,2].
const K1 = [0.5, -1, 0.25, 1, 0.5, -0.5, -0.25, 2, 1, 0.75, -1.5, 0.5];
const B1 = [0.1, -0.2, 0.3];
const K2 = [1, -1, 0.5, 2, -0.75, 0.25];
const B2 = [0.05, -0.05];
const dims = (...d: number[]) => ({ dim: d.map((size) => ({ size: String(size) })) });
const F = { type: 'DT_FLOAT' };
const konst = (name: string, ...shape: number[]) => ({
  name,
  op: 'Const',
  attr: { dtype: F, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: dims(...shape) } } },
});
const matmul = (name: string, a: string, b: string) => ({
  name,
  op: 'MatMul',
  input: [a, b],
  attr: { T: F, transpose_a: { b: false }, transpose_b: { b: false } },
});
const biasAdd = (name: string, a: string, b: string) => ({ name, op: 'BiasAdd', input: [a, b], attr: { T: F } });
const TOPOLOGY = {
  node: [
    { name: 'x', op: 'Placeholder', attr: { dtype: F, shape: { shape: dims(-1, 4) } } },
    konst('dense/kernel', 4, 3),
    konst('dense/bias', 3),
    konst('logits/kernel', 3, 2),
    konst('logits/bias', 2),
    matmul('dense/MatMul', 'x', 'dense/kernel'),
    biasAdd('dense/BiasAdd', 'dense/MatMul', 'dense/bias'),
    { name: 'dense/Relu', op: 'Relu', input: ['dense/BiasAdd'], attr: { T: F } },
    matmul('logits/MatMul', 'dense/Relu', 'logits/kernel'),
    biasAdd('logits/BiasAdd', 'logits/MatMul', 'logits/bias'),
    { name: 'Identity', op: 'Identity', input: ['logits/BiasAdd'], attr: { T: F } },
  ],
  library: {},
  versions: { producer: 1286 },
};
const WEIGHTS: tf.io.WeightsManifestEntry[] = [
  { name: 'dense/kernel', shape: [4, 3], dtype: 'float32' },
  { name: 'dense/bias', shape: [3], dtype: 'float32' },
  { name: 'logits/kernel', shape: [3, 2], dtype: 'float32' },
  { name: 'logits/bias', shape: [2], dtype: 'float32' },
];
const artifacts = (): tf.io.ModelArtifacts => ({
  modelTopology: TOPOLOGY,
  format: 'graph-model',
  generatedBy: 'hand',
  convertedBy: 'test',
  weightSpecs: WEIGHTS,
  weightData: new Float32Array([...K1, ...B1, ...K2, ...B2]).buffer,
});

/** The same network by hand: hidden = relu(x K1 + B1), logits = hidden K2 + B2. */
function reference(x: tf.Tensor2D) {
  return tf.tidy(() => {
    const hidden = tf.relu(x.matMul(tf.tensor2d(K1, [4, 3])).add(tf.tensor1d(B1)));
    return { hidden, logits: hidden.matMul(tf.tensor2d(K2, [3, 2])).add(tf.tensor1d(B2)) };
  });
}
const X = () => tf.tensor2d([1, 2, 3, 4, -1, 0.5, 2, -3, 0, 0, 0, 0], [3, 4]);
const assertClose = (a: tf.Tensor, b: tf.Tensor) =>
  assert.ok(tf.tidy(() => a.sub(b).abs().max().dataSync()[0]!) < 1e-5, `${a.toString()} vs ${b.toString()}`);

test('a graph model saved as model.json + weights.bin loads as a teacher: shapes, logits, a tap', async () => {
  const dir = join(root, 'graph');
  await fileSystem(dir).save!(artifacts());
  const teacher = await loadGraphTeacher({ path: dir, numClasses: 2 });
  try {
    assert.equal(teacher.kind, 'graph');
    assert.deepEqual(teacher.inputShape, [4]);
    assert.equal(teacher.numClasses, 2);
    const x = X();
    const want = reference(x);
    const plain = await teacher.predict(x);
    assert.deepEqual(plain.taps, {});
    assertClose(plain.logits, want.logits);
    const out = await teacher.predict(x, { taps: ['dense/Relu'] });
    assert.deepEqual(out.logits.shape, [3, 2]);
    assertClose(out.logits, want.logits);
    assertClose(out.taps['dense/Relu']!, want.hidden);
    const names = teacher.tapNames();
    assert.deepEqual(
      names.find((n) => n.name === 'dense/Relu'),
      { name: 'dense/Relu', shape: [3] },
    );
    assert.ok(!names.some((n) => n.name === 'dense/kernel' || n.name === 'x'), 'constants and inputs are not taps');
    tf.dispose([x, want.hidden, want.logits, plain.logits, out.logits, out.taps['dense/Relu']!]);
  } finally {
    teacher.dispose();
  }
});

test('graphTeacher over a GraphModel: another logits node, and inputShape checked', async () => {
  const model = await tf.loadGraphModel({ load: async () => artifacts() });
  const t = graphTeacher({ model, outputName: 'logits/BiasAdd', inputShape: [4] });
  const x = X();
  const out = await t.predict(x);
  const want = reference(x);
  assertClose(out.logits, want.logits);
  tf.dispose([x, out.logits, want.hidden, want.logits]);
  assertUserError(
    () => graphTeacher({ model, inputShape: [28, 28, 1] }),
    "graph teacher input `x` takes samples [4] but the data's samples are [28,28,1]; use data shaped for this model or another teacher",
  );
  assertUserError(
    () => graphTeacher({ model, numClasses: 10 }),
    'graph teacher node `Identity` has 2 classes but the data has 10; use a teacher trained on the same classes',
  );
  assertUserError(
    () => graphTeacher({ model, outputName: 'logits' }),
    'graph teacher has no node `logits` for the logits; nodes include: logits/MatMul, logits/BiasAdd, dense/MatMul, dense/BiasAdd, dense/Relu, Identity',
  );
  t.dispose();
});

test('an unknown tap is a one-line UserError listing node names that exist', async () => {
  const model = await tf.loadGraphModel({ load: async () => artifacts() });
  const t = graphTeacher({ model });
  const x = X();
  await assertUserError(
    t.predict(x, { taps: ['relu'] }),
    'graph teacher has no node `relu` to tap; nodes include: dense/Relu, dense/MatMul, dense/BiasAdd, logits/MatMul, logits/BiasAdd, Identity',
  );
  x.dispose();
  t.dispose();
});

test('a LayersModel model.json is refused with the loader to use; a missing file names its path', async () => {
  const dir = join(root, 'layers');
  const m = buildModel({ key: 'mlp', inputShape: [4], numClasses: 2 });
  await m.save(fileSystem(dir));
  m.dispose();
  await assertUserError(
    loadGraphTeacher({ path: dir }),
    `${dir} is not a graph model (format layers-model, no graph nodes); load a LayersModel with loadLayersTeacher, or convert with tensorflowjs_converter --output_format tfjs_graph_model`,
  );
  await assertUserError(loadGraphTeacher({ path: join(root, 'none', 'model.json') }), [
    join(root, 'none', 'model.json'),
    'does not exist',
  ]);
});

test('repeated predict calls with a tap leak no tensors', async () => {
  const model = await tf.loadGraphModel({ load: async () => artifacts() });
  const t = graphTeacher({ model });
  const x = X();
  const warm = await t.predict(x, { taps: ['dense/Relu'] });
  tf.dispose([warm.logits, ...Object.values(warm.taps)]);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) {
    const out = await t.predict(x, i % 2 ? { taps: ['dense/Relu'] } : {});
    tf.dispose([out.logits, ...Object.values(out.taps)]);
  }
  assert.equal(tf.memory().numTensors, before);
  x.dispose();
  t.dispose();
});
