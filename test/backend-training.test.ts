import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { useBestBackend, BACKENDS } from '../src/backend/index.js';
import { registerNativeBackend } from '../src/backend/native.js';
import { buildModel, models } from '../src/models/index.js';
import { Rng } from '../src/data/rng.js';
import { withSeededMathRandom } from '../src/train/seeded-random.js';
import { nativeTest, relativeError, REQUIRE_NATIVE } from './helpers.js';
import { installTrainingLayers } from '../src/backend/training-layers.js';
import { loadAddon } from '../src/backend/native/addon.js';

// the product's training step runs layers through training-layers.ts: compare that path (tfjs's own
// on cpu, where the fused batch-norm kernels are not registered)
installTrainingLayers();

/** Backends that initialise on this machine (wasm with its training kernels, native if built). */
const available: string[] = [];
let nativeUnavailable: string | false = false;
for (const name of BACKENDS) {
  try {
    await useBestBackend({ backend: name });
    available.push(name);
  } catch (e) {
    // not available here: the cross-backend comparison covers the others
    if (name === 'native') {
      const registered = registerNativeBackend();
      nativeUnavailable = registered.ok ? (e as Error).message : registered.reason;
    }
  }
}

/** Loss and every trainable weight's gradient for one training-mode step. */
function lossAndGrads(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor): { loss: number; grads: tf.TypedArray[] } {
  // The same seeded stream on every backend, so dropout draws the same masks.
  return withSeededMathRandom(new Rng(5), () =>
    tf.tidy(() => {
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
        vars,
      );
      return { loss: value.dataSync()[0]!, grads: vars.map((v) => grads[v.name]!.dataSync().slice()) };
    }),
  );
}

const batch = 3;
const inputShape = [20, 20, 3];

/** The batch the comparisons train on: sin-valued 20×20×3 images, labels 0, 3, 4 of 5 (one-hot). */
function sampleBatch(): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const x = tf.tensor4d(
    Array.from({ length: batch * 20 * 20 * 3 }, (_, i) => Math.sin(i * 0.37)),
    [batch, ...inputShape] as [number, number, number, number],
  );
  return { x, y: tf.oneHot(tf.tensor1d([0, 3, 4], 'int32'), 5) as tf.Tensor2D };
}

/** Non-zero biases (seeded), so that their gradients and the ReLU masks depend on them. */
function randomBiases(model: tf.LayersModel, std: number, seed: number): void {
  model.trainableWeights
    .filter((w) => w.shape.length === 1)
    .forEach((w, i) => w.write(tf.randomNormal(w.shape as number[], 0, std, 'float32', seed + i)));
}

for (const kind of models.keys()) {
  test(`one training step of ${kind} gives the cpu backend's loss and gradients on ${available.filter((b) => b !== 'cpu').join(', ')}`, async () => {
    await tf.setBackend('cpu');
    // Glorot weights, as this comparison was calibrated on: with the zoo's PyTorch-style init, the
    // dwsep stem's BN-γ gradient is a sum with heavy cancellation, and wasm's float32 summation
    // order differs from cpu's by 1.3e-4 of its largest value (native: 3e-5).
    const model = buildModel({
      key: kind,
      kwargs: { width: 0.5, init: 'glorot' },
      inputShape,
      numClasses: 5,
      seed: 11,
    });
    const { x, y } = sampleBatch();
    const initial = model.getWeights().map((w) => w.clone());
    const reference = lossAndGrads(model, x, y);
    // batch norm's moving mean and variance after the step (the training forward pass updates
    // them); the batch mean of a conv output is near zero, and summed in another order than cpu's
    // it differs by 1.9e-4 of its norm on wasm (tfjs's own path) and 7e-5 on native
    const movingStats = () => model.nonTrainableWeights.map((w) => w.read().dataSync().slice());
    const referenceStats = movingStats();
    for (const backend of available.filter((b) => b !== 'cpu')) {
      await tf.setBackend(backend);
      model.setWeights(initial);
      const actual = lossAndGrads(model, x, y);
      movingStats().forEach((v, i) => {
        const err = relativeError(v, referenceStats[i]!);
        assert.ok(err <= 5e-4, `${backend} ${kind} ${model.nonTrainableWeights[i]!.name}: relative error ${err}`);
      });
      assert.ok(
        Math.abs(actual.loss - reference.loss) <= 1e-4 * Math.abs(reference.loss),
        `${backend} loss ${actual.loss} vs ${reference.loss}`,
      );
      actual.grads.forEach((g, i) => {
        const err = relativeError(g, reference.grads[i]!);
        assert.ok(
          err <= 1e-4,
          `${backend} ${kind} gradient of ${model.trainableWeights[i]!.name}: relative error ${err}`,
        );
      });
      const optimizer = tf.train.adam(1e-3);
      const step = () =>
        tf.tidy(() => {
          optimizer.minimize(
            () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
          );
        });
      step();
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) step();
      assert.equal(tf.memory().numTensors, before, `${backend} ${kind}: tensors grow across steps`);
      optimizer.dispose();
    }
    tf.dispose([x, y, ...initial]);
    model.dispose();
  });
}

test(`ReLU-activated Conv2D / Dense layers (fused while training) give the cpu backend's gradients on ${available.filter((b) => b !== 'cpu').join(', ')}`, async () => {
  installTrainingLayers();
  await tf.setBackend('cpu');
  const init = (seed: number) => ({ kernelInitializer: tf.initializers.glorotUniform({ seed }) });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape, filters: 8, kernelSize: 3, activation: 'relu', ...init(1) }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', ...init(2) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 12, activation: 'relu', ...init(3) }),
      tf.layers.dense({ units: 5, ...init(4) }),
    ],
  });
  randomBiases(model, 0.1, 20);
  const { x, y } = sampleBatch();
  const reference = lossAndGrads(model, x, y);
  const initial = model.getWeights().map((w) => w.clone());
  for (const backend of available.filter((b) => b !== 'cpu')) {
    await tf.setBackend(backend);
    model.setWeights(initial);
    const actual = lossAndGrads(model, x, y);
    assert.ok(Math.abs(actual.loss - reference.loss) <= 1e-4 * Math.abs(reference.loss), `${backend} loss`);
    actual.grads.forEach((g, i) => {
      const err = relativeError(g, reference.grads[i]!);
      assert.ok(err <= 1e-4, `${backend} gradient of ${model.trainableWeights[i]!.name}: relative error ${err}`);
    });
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) lossAndGrads(model, x, y);
    assert.equal(tf.memory().numTensors, before, `${backend}: tensors grow across steps`);
  }
  tf.dispose([x, y, ...initial]);
  model.dispose();
});

test('at least the wasm backend is compared (and native under DISTILL_REQUIRE_NATIVE=1)', () => {
  assert.ok(available.includes('wasm'), `available backends: ${available.join(', ')}`);
  if (REQUIRE_NATIVE)
    assert.ok(
      available.includes('native'),
      `DISTILL_REQUIRE_NATIVE=1 but the native backend is unavailable: ${nativeUnavailable}`,
    );
});

nativeTest(nativeUnavailable)(
  'native: the same step gives bit-identical gradients every time (filter gradients summed in fixed groups)',
  async () => {
    await tf.setBackend('native');
    for (const kind of models.keys()) {
      const model = buildModel({ key: kind, kwargs: { width: 0.5 }, inputShape, numClasses: 5, seed: 12 });
      const n = 32;
      const x = tf.tensor4d(
        Array.from({ length: n * 20 * 20 * 3 }, (_, i) => Math.sin(i * 0.11)),
        [n, ...inputShape] as [number, number, number, number],
      );
      const y = tf.oneHot(
        tf.tensor1d(
          Array.from({ length: n }, (_, i) => i % 5),
          'int32',
        ),
        5,
      );
      const first = lossAndGrads(model, x, y);
      for (let run = 0; run < 4; run++) {
        const again = lossAndGrads(model, x, y);
        assert.equal(again.loss, first.loss, `${kind} loss, run ${run}`);
        again.grads.forEach((g, i) =>
          assert.deepEqual(g, first.grads[i], `${kind} gradient of ${model.trainableWeights[i]!.name}, run ${run}`),
        );
      }
      tf.dispose([x, y]);
      model.dispose();
    }
  },
);

nativeTest(nativeUnavailable)(
  "native: a ReLU's gradient is applied inside the max pool's or the next conv's backward, with the cpu backend's gradients",
  async () => {
    // c3 and c4 (3×3, 16 channels in and out) run Winograd unless it is switched off
    for (const winograd of [1, 0]) await reluGradientsInsideBackward(winograd);
  },
);

async function reluGradientsInsideBackward(winograd: number): Promise<void> {
  const loaded = loadAddon();
  if ('addon' in loaded) loaded.addon.setWinograd(winograd);
  installTrainingLayers();
  await tf.setBackend('cpu');
  const init = (seed: number) => ({ kernelInitializer: tf.initializers.glorotUniform({ seed }) });
  const input = tf.input({ shape: inputShape });
  // relu conv → relu 1×1 conv → relu conv (their input gradients pass the ReLU before them) →
  // overlapping 3×3/2 'same' max pool
  const c1 = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', ...init(1) });
  const c2 = tf.layers.conv2d({ filters: 16, kernelSize: 1, activation: 'relu', ...init(5) });
  const c3 = tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', ...init(2) });
  const pooled = tf.layers
    .maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' })
    .apply(c3.apply(c2.apply(c1.apply(input)))) as tf.SymbolicTensor;
  // linear conv → batch norm → ReLU layer, read by a 2×2 max pool and by a global average pool
  const c4 = tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', useBias: false, ...init(3) });
  const relu = tf.layers.reLU().apply(tf.layers.batchNormalization().apply(c4.apply(pooled))) as tf.SymbolicTensor;
  const branches = [
    tf.layers.flatten().apply(tf.layers.maxPooling2d({ poolSize: 2 }).apply(relu)) as tf.SymbolicTensor,
    tf.layers.globalAveragePooling2d({}).apply(relu) as tf.SymbolicTensor,
  ];
  const logits = tf.layers.dense({ units: 5, ...init(4) }).apply(tf.layers.concatenate().apply(branches));
  const model = tf.model({ inputs: input, outputs: logits as tf.SymbolicTensor });
  randomBiases(model, 0.2, 30);
  const { x, y } = sampleBatch();
  const reference = lossAndGrads(model, x, y);
  const initial = model.getWeights().map((w) => w.clone());
  await tf.setBackend('native');
  model.setWeights(initial);
  let actual = reference;
  const { kernelNames } = await tf.profile(() => {
    actual = lossAndGrads(model, x, y);
  });
  for (const name of ['TfjsDistillMaxPoolReluGrad', 'TfjsDistillConv2DBackpropInputRelu', 'TfjsDistillReluGrad'])
    assert.ok(kernelNames.includes(name), `${name} not in ${kernelNames.join(', ')}`);
  // the relu convs' ReLU gradients and bias sums came with the pool's and the next conv's gradients
  assert.ok(!kernelNames.includes('TfjsDistillBiasReluGrad'), kernelNames.join(', '));
  assert.ok(Math.abs(actual.loss - reference.loss) <= 1e-4 * Math.abs(reference.loss), 'loss');
  actual.grads.forEach((g, i) => {
    const err = relativeError(g, reference.grads[i]!);
    assert.ok(err <= 1e-4, `gradient of ${model.trainableWeights[i]!.name}: relative error ${err}`);
  });
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) lossAndGrads(model, x, y);
  assert.equal(tf.memory().numTensors, before, 'tensors grow across steps');
  tf.dispose([x, y, ...initial]);
  model.dispose();
}

nativeTest(nativeUnavailable)(
  "native: batch norm → ReLU → 2×2 max pool runs as one kernel each way, with the cpu backend's gradients and moving statistics",
  async () => {
    installTrainingLayers();
    await tf.setBackend('cpu');
    const init = (seed: number) => ({ kernelInitializer: tf.initializers.glorotUniform({ seed }), useBias: false });
    const input = tf.input({ shape: inputShape });
    const block = (
      x: tf.SymbolicTensor,
      name: string,
      conv: { filters: number; padding?: 'same' },
      relu: tf.layers.Layer,
    ) =>
      tf.layers
        .maxPooling2d({ name: `${name}_pool`, poolSize: 2, padding: 'same' })
        .apply(
          relu.apply(
            tf.layers
              .batchNormalization({ name: `${name}_bn` })
              .apply(tf.layers.conv2d({ name, kernelSize: 3, ...conv }).apply(x)),
          ),
        ) as tf.SymbolicTensor;
    // 20×20 → 10×10 (ReLU layer) → 5×5 (Activation layer) → a 3×3 map, odd: that block stays unfused
    const b1 = block(input, 'b1', { filters: 8, padding: 'same', ...init(1) }, tf.layers.reLU({ name: 'b1_relu' }));
    const b2 = block(
      b1,
      'b2',
      { filters: 16, padding: 'same', ...init(2) },
      tf.layers.activation({ activation: 'relu' }),
    );
    const b3 = block(b2, 'b3', { filters: 16, ...init(3) }, tf.layers.reLU());
    const logits = tf.layers
      .dense({ units: 5, ...init(4), useBias: true })
      .apply(tf.layers.flatten().apply(b3)) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: logits });
    // the same layers with the first block's ReLU output tapped: that block must not fuse
    const tapped = tf.model({
      inputs: input,
      outputs: [logits, model.getLayer('b1_relu').output as tf.SymbolicTensor],
    });
    // β and γ of either sign (γ < 0 turns the pool's maximum into the batch-normed input's minimum)
    randomBiases(model, 0.5, 40);
    const { x, y } = sampleBatch();
    const initial = model.getWeights().map((w) => w.clone());
    const stats = () => model.nonTrainableWeights.map((w) => w.read().dataSync().slice());
    const reference = lossAndGrads(model, x, y);
    const referenceStats = stats();
    const referenceTap = tf.tidy(() => (tapped.apply(x, { training: true }) as tf.Tensor[])[1]!.dataSync().slice());
    await tf.setBackend('native');
    const counts = (names: string[], name: string) => names.filter((n) => n === name).length;
    for (const [which, fused] of [
      [model, 2],
      [tapped, 1],
    ] as const) {
      model.setWeights(initial);
      let actual = reference;
      const { kernels } = await tf.profile(() => {
        actual = withSeededMathRandom(new Rng(5), () =>
          tf.tidy(() => {
            const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
            const { value, grads } = tf.variableGrads(() => {
              const out = which.apply(x, { training: true });
              const z = (Array.isArray(out) ? out[0]! : out) as tf.Tensor;
              return tf.losses.softmaxCrossEntropy(y, z) as tf.Scalar;
            }, vars);
            return { loss: value.dataSync()[0]!, grads: vars.map((v) => grads[v.name]!.dataSync().slice()) };
          }),
        );
      });
      const names = kernels.map((k) => k.name);
      assert.equal(counts(names, 'TfjsDistillBnReluPoolTrain'), fused, `${which.name}: ${names.join(', ')}`);
      assert.equal(counts(names, 'TfjsDistillBnReluPoolTrainGrad'), fused, which.name);
      assert.equal(counts(names, 'TfjsDistillBatchNormTrain'), 3 - fused, which.name);
      assert.ok(Math.abs(actual.loss - reference.loss) <= 1e-4 * Math.abs(reference.loss), `${which.name} loss`);
      actual.grads.forEach((g, i) => {
        const err = relativeError(g, reference.grads[i]!);
        assert.ok(err <= 1e-4, `${which.name}: gradient of ${model.trainableWeights[i]!.name}: relative error ${err}`);
      });
      stats().forEach((v, i) => {
        const err = relativeError(v, referenceStats[i]!);
        assert.ok(err <= 5e-4, `${which.name} ${model.nonTrainableWeights[i]!.name}: relative error ${err}`);
      });
    }
    model.setWeights(initial);
    const tap = tf.tidy(() => (tapped.apply(x, { training: true }) as tf.Tensor[])[1]!.dataSync().slice());
    assert.ok(relativeError(tap, referenceTap) <= 1e-5, 'the tapped ReLU map');
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) lossAndGrads(model, x, y);
    assert.equal(tf.memory().numTensors, before, 'tensors grow across steps');
    tf.dispose([x, y, ...initial]);
    model.dispose();
  },
);

test(`dropout while training draws one mask on every backend (${available.join(', ')}), kept with probability 1 − rate and scaled by 1/(1 − rate)`, async () => {
  installTrainingLayers();
  const rate = 0.3;
  const input = tf.input({ shape: [14, 14, 8] });
  const drop = (seed?: number) =>
    tf.model({ inputs: input, outputs: tf.layers.dropout({ rate, seed }).apply(input) as tf.SymbolicTensor });
  const [unseeded, seeded] = [drop(), drop(12345)];
  const x = tf.ones([64, 14, 14, 8]);
  // the input's gradient: the mask itself, as x is ones (the patched layers run while recording)
  const run = (model: tf.LayersModel) =>
    tf.tidy(() =>
      tf
        .grad((t: tf.Tensor) => model.apply(t, { training: true }) as tf.Tensor)(x)
        .dataSync()
        .slice(),
    );
  const masks: Record<string, Float32Array[]> = {};
  for (const backend of available) {
    await tf.setBackend(backend);
    masks[backend] = withSeededMathRandom(new Rng(3), () => [
      run(unseeded),
      run(unseeded),
      run(seeded),
      run(seeded),
    ]) as Float32Array[];
  }
  const [first, second, seededFirst, seededSecond] = masks.cpu!;
  const scale = Math.fround(1 / (1 - rate));
  const kept = first!.filter((v) => v !== 0);
  assert.ok(
    kept.every((v) => v === scale),
    'kept elements are scaled by 1/(1 − rate)',
  );
  assert.ok(Math.abs(kept.length / first!.length - (1 - rate)) < 0.01, `kept ${kept.length / first!.length}`);
  assert.notDeepEqual(first, second, 'a new mask on every call');
  assert.deepEqual(seededFirst, seededSecond, "the layer's own seed: the same mask on every call (as tfjs)");
  for (const backend of available) assert.deepEqual(masks[backend], masks.cpu, `${backend}'s masks`);
  if (available.includes('native')) {
    await tf.setBackend('native');
    const { kernels } = await tf.profile(() => void run(unseeded));
    const names = kernels.map((k) => k.name);
    assert.ok(names.includes('TfjsDistillDropoutMask') && !names.includes('Floor'), names.join(', '));
  }
  tf.dispose(x);
});
