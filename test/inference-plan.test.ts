/**
 * The native inference plan (src/backend/inference-plan.ts) against `model.predict`: the zoo's
 * CNN (the quickstart student), depthwise-separable net and MLP, with batch-norm statistics set
 * away from their initial values so that folding them is tested, and a hand-built chain of
 * every other supported layer (stride, dilation, 'same' pooling on odd sizes, a standalone batch
 * norm, capped and leaky ReLUs, sigmoid, softmax). Models it cannot run get a reason.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { compileInference } from '../src/backend/inference-plan.js';
import { NATIVE_BACKEND_NAME, registerNativeBackend } from '../src/backend/native.js';
import { UserError } from '../src/errors.js';
import { buildModel } from '../src/models/zoo.js';
import { lcg, nativeTest, relativeError } from './helpers.js';

tf.enableProdMode();
const reg = registerNativeBackend();
const nativeOnly = nativeTest(reg.ok ? false : reg.reason);

/** Batch-norm γ, β, moving mean and (positive) variance drawn at random. */
function perturbBatchNorms(model: tf.LayersModel, seed: number): void {
  const rand = lcg(seed);
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    layer.setWeights(
      layer.getWeights().map((w, i, all) => {
        const values = Float32Array.from({ length: w.size }, () =>
          i === all.length - 1 ? 0.2 + rand() * 2 : (rand() - 0.5) * 2,
        );
        return tf.tensor(values, w.shape);
      }),
    );
  }
}

function assertSamePredictions(model: tf.LayersModel, batches: number[], seed: number): string[] {
  const plan = compileInference(model);
  if ('reason' in plan) assert.fail(`no plan: ${plan.reason}`);
  for (const batch of batches) {
    const shape = [batch, ...(model.inputs[0]!.shape.slice(1) as number[])];
    tf.tidy(() => {
      const x = tf.randomNormal(shape, 0, 1, 'float32', seed + batch);
      const want = model.predict(x) as tf.Tensor;
      const got = plan.predict(x);
      assert.deepEqual(got.shape, want.shape);
      const err = relativeError(got.dataSync(), want.dataSync());
      assert.ok(err < 1e-4, `batch ${batch}: relative error ${err}`);
    });
  }
  return [...plan.ops];
}

nativeOnly('the quickstart student CNN: conv, batch norm and ReLU become one op', async () => {
  await tf.setBackend(NATIVE_BACKEND_NAME);
  const model = buildModel({
    key: 'cnn',
    kwargs: { width: 0.25, blocks: [32, 64], convsPerBlock: 1, dense: 256, dropout: 0.25 },
    inputShape: [28, 28, 1],
    numClasses: 10,
    seed: 1,
  });
  perturbBatchNorms(model, 3);
  const ops = assertSamePredictions(model, [1, 3, 64], 1);
  assert.deepEqual(ops, [
    'block1_conv1+block1_conv1_bn+block1_conv1_relu',
    'block1_pool',
    'block2_conv1+block2_conv1_bn+block2_conv1_relu',
    'block2_pool',
    'fc+features',
    'logits',
  ]);
  model.dispose();
});

nativeOnly('the zoo depthwise-separable net and MLP', async () => {
  await tf.setBackend(NATIVE_BACKEND_NAME);
  const dwsep = buildModel({ key: 'dwsep', inputShape: [15, 15, 3], numClasses: 5, seed: 2 });
  perturbBatchNorms(dwsep, 4);
  assert.ok(assertSamePredictions(dwsep, [1, 7], 2).includes('features'));
  dwsep.dispose();
  const mlp = buildModel({ key: 'mlp', kwargs: { hidden: [40, 20] }, inputShape: [6, 6], numClasses: 3, seed: 3 });
  assertSamePredictions(mlp, [1, 5], 3);
  mlp.dispose();
});

nativeOnly('every other supported layer, in one chain', async () => {
  await tf.setBackend(NATIVE_BACKEND_NAME);
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [13, 11, 2], filters: 6, kernelSize: [3, 2], strides: 2, activation: 'relu' }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', dilationRate: 2 }),
      tf.layers.batchNormalization({ center: false }),
      tf.layers.reLU({ maxValue: 6 }),
      tf.layers.averagePooling2d({ poolSize: 2, strides: 2, padding: 'same' }),
      tf.layers.conv2d({ filters: 5, kernelSize: 1, useBias: false }),
      tf.layers.leakyReLU({ alpha: 0.1 }),
      tf.layers.maxPooling2d({ poolSize: 3, strides: 1, padding: 'same' }),
      tf.layers.flatten(),
      tf.layers.batchNormalization(),
      tf.layers.dense({ units: 7, activation: 'sigmoid' }),
      tf.layers.activation({ activation: 'elu' }),
      tf.layers.dense({ units: 4, activation: 'softmax' }),
    ],
  });
  perturbBatchNorms(model, 5);
  const ops = assertSamePredictions(model, [1, 4], 4);
  // The batch norm after the ReLU (after flatten) cannot fold into a weight: its own scale-shift op.
  assert.equal(ops.length, 10, ops.join(' | '));
  model.dispose();
});

nativeOnly('reasons instead of plans, a clear error for a wrong input, no tensors left behind', async () => {
  await tf.setBackend(NATIVE_BACKEND_NAME);
  const resnet = buildModel({
    key: 'resnet',
    kwargs: { stages: [4], blocksPerStage: 1 },
    inputShape: [8, 8, 1],
    numClasses: 2,
  });
  const noPlan = compileInference(resnet);
  assert.ok('reason' in noPlan && /not a chain|Add/.test(noPlan.reason), JSON.stringify(noPlan));
  resnet.dispose();
  const tanh = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2, activation: 'tanh' })] });
  const noTanh = compileInference(tanh);
  assert.ok('reason' in noTanh && /tanh/.test(noTanh.reason));

  const mlp = buildModel({ key: 'mlp', kwargs: { hidden: [8] }, inputShape: [4], numClasses: 2, seed: 1 });
  const plan = compileInference(mlp);
  if ('reason' in plan) assert.fail(plan.reason);
  const x = tf.ones([2, 4]);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) plan.predict(x).dispose();
  assert.equal(tf.memory().numTensors, before);
  assert.throws(
    () => plan.predict(tf.ones([2, 5])),
    (e: unknown) => e instanceof UserError && /\[2,5\]/.test(e.message),
  );

  await tf.setBackend('cpu');
  const onCpu = compileInference(mlp);
  assert.ok('reason' in onCpu && /native backend/.test(onCpu.reason));
  await tf.setBackend(NATIVE_BACKEND_NAME);
  x.dispose();
  mlp.dispose();
  tanh.dispose();
});
