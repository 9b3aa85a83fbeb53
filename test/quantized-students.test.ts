import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { dataSources } from '../src/data/sources.js';
import { modelPredictFn } from '../src/eval/evaluate.js';
import { loadExported } from '../src/eval/exported.js';
import { accuracy, predictLogits } from '../src/eval/metrics.js';
import type { RunReport } from '../src/eval/types.js';
import { runExperiment } from '../src/experiment/run.js';
import { fileSystem, registerFileRouters } from '../src/io/index.js';
import { encodeModelWeights, saveEncodedModel, toUint8 } from '../src/io/quantize.js';
import { createTerm } from '../src/knowledge/index.js';
import { buildModel } from '../src/models/index.js';
import { distillationGains } from '../src/report/table.js';
import { fakeQuantize, fakeQuantizeValues, outputChannels, quantizedWeights } from '../src/train/fake-quant.js';
import { createStep, offlineTeacher } from '../src/train/step.js';
import { train } from '../src/train/trainer.js';
import { blobs } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');
registerFileRouters();

const dir = mkdtempSync(join(tmpdir(), 'distill-quantized-'));
const mlp = (seed: number) =>
  buildModel({ key: 'mlp', kwargs: { hidden: [12] }, inputShape: [6], numClasses: 4, seed });
const values = (t: tf.Tensor) => t.dataSync() as Float32Array;
const data = blobs(64, 1);
const batch = () => {
  const x = tf.tensor2d(data.features.slice(0, 32 * 6), [32, 6]);
  const y = tf.tensor1d(data.labels.slice(0, 32), 'int32');
  return { x, y };
};
const ce = () => [{ term: createTerm('ce'), weight: 1 }];

/** SGD that keeps a copy of every gradient it applies, keyed by variable name. */
class RecordingSgd extends tf.SGDOptimizer {
  grads: Record<string, Float32Array> = {};
  override applyGradients(g: tf.NamedTensorMap | Array<{ name: string; tensor: tf.Tensor }>): void {
    const list = Array.isArray(g) ? g : Object.entries(g).map(([name, tensor]) => ({ name, tensor }));
    for (const { name, tensor } of list) this.grads[name] = values(tensor).slice();
    super.applyGradients(g);
  }
}

test('fake quantization (per tensor) is exactly what the uint8 export decodes to, model loaded from files included', async () => {
  for (const key of ['cnn', 'dwsep'] as const) {
    const model = buildModel({ key, kwargs: { width: 0.25 }, inputShape: [8, 8, 1], numClasses: 4, seed: 2 });
    const { specs, data: bytes } = encodeModelWeights({ model, encoding: 'uint8' });
    const decoded = tf.io.decodeWeights(bytes, specs);
    const files = await saveEncodedModel({ model, encoding: 'uint8', path: join(dir, `${key}-u8`) });
    const loaded = await tf.loadLayersModel(`file://${files.modelJsonPath}`);
    const trainable = new Set(model.trainableWeights.map((w) => w.originalName));
    assert.ok(trainable.size >= 6, `${key} has kernels, biases, batch-norm γ/β`);
    model.weights.forEach((w, i) => {
      const q = fakeQuantize({ tensor: w.read(), name: w.originalName });
      assert.deepEqual(values(q), values(decoded[w.originalName]!), `${key} ${w.originalName} vs decodeWeights`);
      assert.deepEqual(values(q), values(loaded.weights[i]!.read()), `${key} ${w.originalName} vs the loaded model`);
      q.dispose();
    });
    // the weights QAD swaps are exactly the trainable ones
    assert.deepEqual(
      quantizedWeights([model]).map((w) => w.name),
      model.trainableWeights.map((w) => w.originalName),
    );
    tf.dispose(Object.values(decoded));
    loaded.dispose();
    model.dispose();
  }
});

test('per-channel fake quantization: one min/scale per output channel (a depthwise kernel: in·mult)', () => {
  assert.equal(outputChannels([3, 3, 4, 8], 'b/kernel'), 8);
  assert.equal(outputChannels([3, 3, 4, 2], 'b_dw/depthwise_kernel'), 8);
  assert.equal(outputChannels([16, 10], 'fc/kernel'), 10);
  assert.equal(outputChannels([10], 'fc/bias'), 1);
  // channel 0 spans [−1, 1], channel 1 [−0.01, 0.01]: per tensor, channel 1 collapses to 3 levels
  const n = 50;
  const v = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    v[2 * i] = -1 + (2 * i) / (n - 1);
    v[2 * i + 1] = (-1 + (2 * i) / (n - 1)) / 100;
  }
  const perChannel = fakeQuantizeValues(v, 2);
  const perTensor = fakeQuantizeValues(v, 1);
  for (const c of [0, 1]) {
    const slice = Float32Array.from({ length: n }, (_, i) => v[2 * i + c]!);
    const { scale } = toUint8(slice);
    const expected = fakeQuantizeValues(slice, 1);
    for (let i = 0; i < n; i++) {
      assert.equal(perChannel[2 * i + c], expected[i], `channel ${c}[${i}] = its own tensor's quantization`);
      assert.ok(Math.abs(perChannel[2 * i + c]! - slice[i]!) <= scale / 2 + 1e-9);
    }
  }
  const levels = (a: Float32Array) => new Set(Array.from({ length: n }, (_, i) => a[2 * i + 1])).size;
  assert.ok(levels(perTensor) <= 3 && levels(perChannel) === n, `${levels(perTensor)} vs ${levels(perChannel)}`);
});

test('a QAD step computes the loss of the uint8 export and leaves the float weights in place', async () => {
  const model = mlp(3);
  const before = model.getWeights().map((w) => values(w).slice());
  const files = await saveEncodedModel({ model, encoding: 'uint8', path: join(dir, 'mlp-u8') });
  const { model: loaded } = await loadExported({ files, encoding: 'uint8' });
  const { x, y } = batch();
  const sgd = () => tf.train.sgd(0);
  const qad = createStep([{ name: 'm', model, terms: ce() }], sgd(), offlineTeacher)(
    x,
    y,
    undefined,
    undefined,
    'tensor',
  );
  const exported = createStep([{ name: 'm', model: loaded, terms: ce() }], sgd(), offlineTeacher)(x, y);
  assert.equal(qad.losses[0]!.loss, exported.losses[0]!.loss);
  assert.equal(qad.correct[0], exported.correct[0]);
  model.getWeights().forEach((w, i) => assert.deepEqual(values(w), before[i], 'float weights restored'));
  tf.dispose([x, y]);
  loaded.dispose();
  model.dispose();
});

test('straight-through estimator: the gradient at q(w) updates the float weights w', () => {
  const lr = 0.5;
  const float = mlp(5); // trained with QAD
  const atQ = mlp(5); // the same weights, quantized, trained without
  const plain = mlp(5); // the same weights, trained without
  const w0 = float.trainableWeights.map((w) => w.read().clone());
  atQ.trainableWeights.forEach((w, i) => w.write(fakeQuantize({ tensor: w0[i]! })));
  const { x, y } = batch();
  const run = (model: tf.LayersModel, fakeQuantize?: 'tensor') => {
    const opt = new RecordingSgd(lr);
    createStep([{ name: 'm', model, terms: ce() }], opt, offlineTeacher)(x, y, undefined, undefined, fakeQuantize);
    const names = model.trainableWeights.map((w) => (w.read() as tf.Variable).name);
    const grads = names.map((n) => opt.grads[n]!);
    opt.dispose();
    return { grads, after: model.trainableWeights.map((w) => values(w.read()).slice()) };
  };
  const a = run(float, 'tensor');
  const b = run(atQ);
  const c = run(plain);
  let differs = false;
  let moved = false;
  a.grads.forEach((g, i) => {
    assert.deepEqual(g, b.grads[i], 'the QAD gradient is the gradient at the quantized weights');
    differs ||= g.some((v, k) => v !== c.grads[i]![k]);
    // SGD's own arithmetic (w + (−lr)·g) on the float weights
    const expected = tf.tidy(() => values(tf.add(tf.mul(tf.scalar(-lr), tf.tensor(g, w0[i]!.shape)), w0[i]!)));
    assert.deepEqual(a.after[i], expected, 'applied to the float weights');
    moved ||= a.after[i]!.some((v, k) => v !== b.after[i]![k]);
  });
  assert.ok(differs, 'the gradient at q(w) differs from the one at w (the test is not vacuous)');
  assert.ok(moved, 'the float weights are not the updated quantized weights');
  tf.dispose([x, y, ...w0]);
  [float, atQ, plain].forEach((m) => m.dispose());
});

test('QAD steps do not leak tensors (per tensor and per channel, with Adam)', () => {
  const model = buildModel({ key: 'cnn', kwargs: { width: 0.25 }, inputShape: [8, 8, 1], numClasses: 4, seed: 4 });
  const optimizer = tf.train.adam(1e-3);
  const step = createStep([{ name: 'm', model, terms: ce() }], optimizer, offlineTeacher);
  const x = tf.randomNormal([8, 8, 8, 1], 0, 1, 'float32', 1);
  const y = tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32');
  step(x, y, undefined, undefined, 'tensor'); // the optimizer's slots appear on the first step
  const start = tf.memory().numTensors;
  for (const g of ['tensor', 'channel', 'tensor', undefined, 'channel'] as const) {
    step(x, y, undefined, undefined, g);
    assert.equal(tf.memory().numTensors, start, `after a ${g ?? 'float'} step`);
  }
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
});

test('train: quantization-aware only in the last K epochs', async () => {
  const trained = async (quantizationAware?: { lastEpochs: number }) => {
    const model = mlp(9);
    const perEpoch: Float32Array[][] = [];
    await train({
      learners: [{ name: 'm', model, terms: ce() }],
      train: data,
      epochs: 3,
      batchSize: 16,
      seed: 1,
      optimizer: { key: 'adam', kwargs: { learningRate: 0.01 } },
      ...(quantizationAware && { quantizationAware }),
      callbacks: { onEpochEnd: () => void perEpoch.push(model.getWeights().map((w) => values(w).slice())) },
    });
    model.dispose();
    return perEpoch;
  };
  const plain = await trained();
  const start = tf.memory().numTensors;
  const qad = await trained({ lastEpochs: 1 });
  assert.equal(tf.memory().numTensors, start, 'no tensor left behind');
  assert.deepEqual(qad[1], plain[1], 'the first 2 epochs are plain training');
  assert.notDeepEqual(qad[2], plain[2], 'the last epoch trains against the quantized weights');
  const all = await trained({ lastEpochs: 5 }); // more than the phase has: every epoch
  assert.notDeepEqual(all[0], plain[0]);
});

test('export.evaluate: each student loaded back from its files is a row of its own, QAD in every student phase', async () => {
  const csv = join(dir, 'blobs.csv');
  const rows = blobs(400, 3, 0.6); // overlapping: accuracies well below 100 %
  writeFileSync(
    csv,
    [
      'a,b,c,d,e,f,y',
      ...Array.from(
        { length: rows.size },
        (_, i) => `${rows.features.slice(6 * i, 6 * i + 6).join(',')},c${rows.labels[i]}`,
      ),
    ].join('\n'),
  );
  await mlp(1).save(fileSystem(join(dir, 'teacher')));
  const experiment = join(dir, 'qad.yaml');
  writeFileSync(
    experiment,
    `name: qad
data: {key: csv, kwargs: {path: ${csv}, labelColumn: y, validationFraction: 0.1}}
teacher: {key: file, kwargs: {path: ${join(dir, 'teacher')}}}
students:
  - name: s
    model: {key: mlp, kwargs: {hidden: [24]}}
knowledge:
  - key: kd
    kwargs: {temperature: 2, alpha: 0.5}
baseline: true
epochs: 2
batchSize: 16
optimizer: {key: adam, kwargs: {learningRate: 0.01}}
evaluation: {latency: {warmup: 0, runs: 1}}
export: {dtype: uint8, evaluate: [float16, uint8]}
quantizationAware: {lastEpochs: 1}
backend: cpu
`,
  );
  const out = join(dir, 'run');
  const result = await runExperiment({ file: experiment, out, progress: 'quiet', log: () => {} });
  const report = JSON.parse(readFileSync(join(out, 'seed-1', 'report.json'), 'utf8')) as RunReport;
  assert.deepEqual(
    report.models.map((m) => m.name),
    [
      'teacher',
      's (labels)',
      's (labels) · float16',
      's (labels) · uint8',
      's (kd)',
      's (kd) · float16',
      's (kd) · uint8',
    ],
  );
  const row = (name: string) => report.models.find((m) => m.name === name)!;
  const students = join(out, 'seed-1', 'students');
  const size = (id: string) =>
    statSync(join(students, id, 'model.json')).size + statSync(join(students, id, 'weights.bin')).size;
  // the uint8 rows are the uint8 export itself (dtype uint8): students/<id>/; float16 ones are written beside it
  for (const [id, name] of [
    ['s', 's (kd)'],
    ['s.labels', 's (labels)'],
  ] as const) {
    const float = row(name);
    const u8 = row(`${name} · uint8`);
    const f16 = row(`${name} · float16`);
    assert.equal(u8.role, 'student');
    assert.equal(u8.baseline, float.baseline, 'a quantized row is a baseline when its float model is one');
    assert.equal(u8.method, `uint8 export of ${float.method}`);
    assert.equal(u8.params, float.params);
    assert.equal(f16.params, float.params);
    assert.equal(u8.bytes!.uint8, size(id), 'the uint8 row measures the files written');
    assert.equal(f16.bytes!.float16, size(`${id}-float16`));
    assert.equal(
      statSync(join(students, id, 'weights.bin')).size,
      float.params,
      'uint8: one byte per weight, ¼ of float32',
    );
    assert.ok(
      u8.bytes!.uint8 < float.bytes!.float32,
      'model.json, the same in every encoding, is most of this tiny MLP',
    );
    // accuracy of the loaded files, measured here independently
    const loaded = await tf.loadLayersModel(`file://${join(students, id, 'model.json')}`);
    const source = dataSources.get('csv');
    const { test: testSet } = source.load(
      source.kwargs.parse({ path: csv, labelColumn: 'y', validationFraction: 0.1 }),
    );
    const logits = await predictLogits({ predict: modelPredictFn(loaded), data: testSet });
    assert.equal(u8.accuracy, accuracy({ logits, labels: testSet.labels, numClasses: 4 }));
    loaded.dispose();
    assert.ok(u8.accuracy > 0.4, `${name} · uint8 accuracy ${u8.accuracy}`);
    assert.equal(u8.history?.length ?? 0, 0, 'no curves of its own');
  }
  // what distilling bought: each encoding against the label-only baseline in the same encoding
  const baselineOf = (student: string) => result.summary.gains.find((g) => g.student === student)?.baseline;
  assert.equal(baselineOf('s (kd)'), 's (labels)');
  assert.equal(baselineOf('s (kd) · uint8'), 's (labels) · uint8');
  assert.equal(baselineOf('s (kd) · float16'), 's (labels) · float16');
  assert.equal(result.summary.models.filter((m) => m.baseline).length, 3);
  const sentences = distillationGains(report);
  assert.ok(
    sentences.some((s) => s.includes('`s (kd)` vs `s (labels)`')),
    sentences.join('\n'),
  );
  assert.ok(
    sentences.some((s) => s.startsWith('uint8 export of kd') && s.includes('`s (kd) · uint8` vs `s (labels) · uint8`')),
    sentences.join('\n'),
  );
  assert.match(
    readFileSync(join(out, 'experiment.yaml'), 'utf8'),
    /quantizationAware:\n {2}lastEpochs: 1\n {2}granularity: tensor/,
    'the resolved config keeps quantizationAware (a resume trains the same)',
  );
});
