import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { installTrainingLayers } from '../src/backend/training-layers.js';
import { relativeError } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');

/** conv (bias) → flatten → dense (bias), both `activation`: the layers the patch changes. */
function model(activation: 'linear' | 'relu' = 'linear'): tf.LayersModel {
  const m = tf.sequential();
  m.add(
    tf.layers.conv2d({
      inputShape: [6, 5, 2],
      filters: 3,
      kernelSize: 3,
      padding: 'same',
      strides: [2, 1],
      activation,
      kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      biasInitializer: tf.initializers.randomNormal({ seed: 2 }),
    }),
  );
  m.add(tf.layers.flatten());
  m.add(
    tf.layers.dense({
      units: 4,
      activation,
      kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
      biasInitializer: tf.initializers.randomNormal({ seed: 4 }),
    }),
  );
  return m;
}

const x = tf.randomNormal([3, 6, 5, 2], 0, 1, 'float32', 5);
const w = tf.randomNormal([3, 4], 0, 1, 'float32', 6);

/** Gradients of sum(w ⊙ model(x)) through the fused ops, as tfjs-layers computes them unpatched. */
function fusedReference(m: tf.LayersModel, activation: 'linear' | 'relu' = 'linear'): tf.Tensor[] {
  const [k1, b1, k2, b2] = m.trainableWeights.map((v) => v.read());
  const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => {
    const h = tf.fused.conv2d({
      x: x as tf.Tensor4D,
      filter: a as tf.Tensor4D,
      strides: [2, 1],
      pad: 'same',
      bias: b,
      activation,
    });
    const y = tf.fused.matMul({
      a: tf.reshape(h, [3, -1]) as tf.Tensor2D,
      b: c as tf.Tensor2D,
      bias: d,
      activation,
    });
    return tf.sum(tf.mul(y, w));
  };
  return tf.grads(f)([k1!, b1!, k2!, b2!]);
}

test('linear Conv2D / Dense layers train as fused kernels without the input gradient, and give the same gradients', async () => {
  const m = model();
  const reference = fusedReference(m);
  const before = await tf.profile(() =>
    tf.tidy(() => {
      tf.variableGrads(() => tf.sum(tf.mul(m.apply(x, { training: true }) as tf.Tensor, w)) as tf.Scalar);
    }),
  );
  assert.ok(
    before.kernelNames.includes('Conv2DBackpropInput'),
    'unpatched tfjs-layers computes the first layer input gradient',
  );

  installTrainingLayers();
  let grads: tf.Tensor[] = [];
  const after = await tf.profile(() => {
    const { grads: g } = tf.variableGrads(
      () => tf.sum(tf.mul(m.apply(x, { training: true }) as tf.Tensor, w)) as tf.Scalar,
    );
    grads = m.trainableWeights.map((v) => g[(v.read() as tf.Variable).name]!);
  });
  assert.ok(!after.kernelNames.includes('Conv2DBackpropInput'), `kernels: ${after.kernelNames.join(', ')}`);
  assert.ok(after.kernelNames.includes('FusedConv2D') && after.kernelNames.includes('_FusedMatMul'));
  grads.forEach((g, i) => assert.ok(relativeError(g.dataSync(), reference[i]!.dataSync()) < 1e-6, `gradient ${i}`));

  // inference keeps the fused kernels and the same outputs
  const predicted = await tf.profile(() => {
    (m.predict(x) as tf.Tensor).dispose();
  });
  assert.ok(predicted.kernelNames.includes('FusedConv2D') && predicted.kernelNames.includes('_FusedMatMul'));
  const y = m.predict(x) as tf.Tensor;
  const yTraining = tf.tidy(
    () => tf.variableGrads(() => tf.sum(m.apply(x, { training: true }) as tf.Tensor) as tf.Scalar).value,
  );
  assert.ok(Math.abs(tf.sum(y).dataSync()[0]! - yTraining.dataSync()[0]!) < 1e-5);
  tf.dispose([...grads, ...reference, y, yTraining]);
  m.dispose();
});

test('ReLU Conv2D / Dense layers train as one fused kernel each (no Add, Relu, Step), with the same gradients', async () => {
  installTrainingLayers();
  const m = model('relu');
  const reference = fusedReference(m, 'relu');
  let grads: tf.Tensor[] = [];
  const before = tf.memory().numTensors;
  const after = await tf.profile(() => {
    const { value, grads: g } = tf.variableGrads(
      () => tf.sum(tf.mul(m.apply(x, { training: true }) as tf.Tensor, w)) as tf.Scalar,
    );
    value.dispose();
    grads = m.trainableWeights.map((v) => g[(v.read() as tf.Variable).name]!);
  });
  for (const name of ['Conv2DBackpropInput', 'Relu', 'Add']) {
    assert.ok(!after.kernelNames.includes(name), `${name} in ${after.kernelNames.join(', ')}`);
  }
  assert.equal(tf.memory().numTensors, before + grads.length);
  grads.forEach((g, i) => assert.ok(relativeError(g.dataSync(), reference[i]!.dataSync()) < 1e-6, `gradient ${i}`));
  tf.dispose([...grads, ...reference]);
  m.dispose();
});

test('a Dense layer on rank-3 input keeps tfjs-layers behaviour', () => {
  installTrainingLayers();
  const m = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2, 3], units: 2, kernelInitializer: 'ones' })] });
  const out = tf.tidy(() =>
    tf.variableGrads(() => tf.sum(m.apply(tf.ones([1, 2, 3]), { training: true }) as tf.Tensor) as tf.Scalar),
  );
  assert.deepEqual(Array.from(out.value.dataSync()), [12]);
  assert.deepEqual(
    Array.from(out.grads[(m.trainableWeights[0]!.read() as tf.Variable).name]!.dataSync()),
    [2, 2, 2, 2, 2, 2],
  );
  tf.dispose([out.value, ...Object.values(out.grads)]);
  m.dispose();
});
