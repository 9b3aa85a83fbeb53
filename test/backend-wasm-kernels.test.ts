import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { useBestBackend } from '../src/backend/index.js';
import { relativeError } from './helpers.js';
import { softKlByKernel } from '../src/backend/loss-kernels.js';
import { labelCrossEntropy, softKl } from '../src/knowledge/response/common.js';

await useBestBackend({ backend: 'wasm' });

async function onBoth(f: () => tf.Tensor): Promise<number> {
  await tf.setBackend('cpu');
  const expected = tf.tidy(f);
  const onCpu = expected.dataSync().slice();
  expected.dispose();
  await tf.setBackend('wasm');
  const actual = tf.tidy(f);
  const onWasm = actual.dataSync().slice();
  actual.dispose();
  assert.equal(onWasm.length, onCpu.length);
  return relativeError(onWasm, onCpu);
}

const values = (shape: number[], phase: number) =>
  tf.tensor(
    Array.from({ length: shape.reduce((a, b) => a * b) }, (_, i) => Math.sin(i * 1.37 + phase)),
    shape,
  );

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
const convCases: Array<{ x: number[]; f: number[]; stride: number | [number, number]; pad: Pad }> = [
  { x: [2, 9, 7, 3], f: [3, 2, 3, 4], stride: 1, pad: 'same' },
  { x: [1, 8, 8, 2], f: [3, 3, 2, 5], stride: 2, pad: 'same' },
  { x: [3, 9, 10, 3], f: [3, 3, 3, 4], stride: 2, pad: 'valid' },
  { x: [2, 5, 5, 1], f: [1, 1, 1, 3], stride: 1, pad: 'valid' },
  { x: [2, 7, 7, 4], f: [5, 5, 4, 2], stride: [2, 1], pad: 'same' },
  {
    x: [2, 6, 6, 3],
    f: [3, 3, 3, 2],
    stride: 1,
    pad: [
      [0, 0],
      [2, 1],
      [0, 3],
      [0, 0],
    ],
  },
  { x: [1, 11, 6, 2], f: [2, 4, 2, 3], stride: 3, pad: 'same' },
  // stride 1 and Ci < Co: dW through the input as the filter (conv-gradients.ts)
  { x: [2, 9, 7, 16], f: [3, 3, 16, 24], stride: 1, pad: 'same' },
  { x: [3, 10, 9, 1], f: [3, 3, 1, 8], stride: 1, pad: 'same' },
  { x: [3, 8, 8, 16], f: [3, 2, 16, 32], stride: 1, pad: 'valid' },
  {
    x: [2, 6, 7, 16],
    f: [3, 3, 16, 20],
    stride: 1,
    pad: [
      [0, 0],
      [2, 0],
      [0, 1],
      [0, 0],
    ],
  },
  { x: [2, 9, 9, 16], f: [3, 3, 16, 24], stride: 2, pad: 'same' },
  // 8k output channels: dW through our kernel (wasm-kernels.ts), with ≥ 512 positions in parts over the threads
  { x: [4, 16, 16, 8], f: [3, 3, 8, 16], stride: 1, pad: 'same' },
  { x: [5, 17, 15, 3], f: [5, 3, 3, 8], stride: [2, 1], pad: 'valid' },
];

for (const c of convCases) {
  test(`conv2d gradients match cpu: x ${c.x} filter ${c.f} stride ${c.stride} pad ${JSON.stringify(c.pad)}`, async () => {
    const loss = (x: tf.Tensor, f: tf.Tensor) =>
      tf
        .conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.stride, c.pad)
        .square()
        .sum();
    for (const which of [0, 1]) {
      const err = await onBoth(() => tf.grads(loss)([values(c.x, 0), values(c.f, 1)])[which]!);
      assert.ok(err <= 1e-4, `gradient ${which === 0 ? 'dx' : 'dW'} relative error ${err}`);
    }
  });
  const depthwisePad = Array.isArray(c.pad) ? 'same' : c.pad;
  for (const multiplier of [1, 2]) {
    test(`depthwise gradients match cpu: x ${c.x} kernel ${c.f.slice(0, 2)} ×${multiplier} stride ${c.stride} ${depthwisePad}`, async () => {
      const filterShape = [c.f[0]!, c.f[1]!, c.x[3]!, multiplier];
      const loss = (x: tf.Tensor, f: tf.Tensor) =>
        tf
          .depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.stride, depthwisePad)
          .square()
          .sum();
      for (const which of [0, 1]) {
        const err = await onBoth(() => tf.grads(loss)([values(c.x, 0), values(filterShape, 1)])[which]!);
        assert.ok(err <= 1e-4, `gradient ${which === 0 ? 'dx' : 'dW'} relative error ${err}`);
      }
    });
  }
}

test('depthwise backprop kernels with dilation 2 equal the undilated 5×5 zero-inserted filter on cpu', async () => {
  // tf.grad refuses dilation and the cpu kernels ignore it, so the reference is the same
  // convolution written with a 5×5 filter whose odd rows and columns are zero.
  const x = values([2, 9, 8, 3], 0);
  const filter = values([3, 3, 3, 2], 1);
  const dy = values([2, 9, 8, 6], 3);
  await tf.setBackend('cpu');
  const spread = (f: tf.Tensor) =>
    tf.tidy(() => {
      const rows = tf
        .stack([f, tf.zerosLike(f)], 1)
        .reshape([6, 3, 3, 2])
        .slice(0, 5);
      return tf
        .stack([rows, tf.zerosLike(rows)], 2)
        .reshape([5, 6, 3, 2])
        .slice([0, 0], [5, 5]);
    });
  const [refDx, refDw5] = tf.grads((a: tf.Tensor, f: tf.Tensor) =>
    tf
      .depthwiseConv2d(a as tf.Tensor4D, f as tf.Tensor4D, 1, 'same')
      .mul(dy)
      .sum(),
  )([x, spread(filter)]);
  const refDw = refDw5!.stridedSlice([0, 0], [5, 5], [2, 2]);
  const expected = [refDx!.dataSync().slice(), refDw.dataSync().slice()];
  await tf.setBackend('wasm');
  const attrs = { strides: [1, 1], dilations: [2, 2], pad: 'same' };
  const dx = tf
    .engine()
    .runKernel(
      'DepthwiseConv2dNativeBackpropInput',
      { dy, filter },
      { ...attrs, inputShape: [2, 9, 8, 3] },
    ) as tf.Tensor;
  const dw = tf
    .engine()
    .runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: [3, 3, 3, 2] }) as tf.Tensor;
  assert.ok(relativeError(dx.dataSync(), expected[0]!) <= 1e-4, 'dx');
  assert.ok(relativeError(dw.dataSync(), expected[1]!) <= 1e-4, 'dW');
  tf.dispose([x, filter, dy, refDx!, refDw5!, refDw, dx, dw]);
});

test('matmul with transposed operands matches cpu, plain and fused, batched', async () => {
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[5, 7], [5, 3], true, false],
    [[7, 5], [3, 5], false, true],
    [[3, 5], [40, 5], false, true],
    [[5, 7], [3, 5], true, true],
    [[2, 3, 4], [2, 5, 4], false, true],
    [[1, 4], [4, 6], false, false],
  ];
  for (const [sa, sb, ta, tb] of cases) {
    assert.ok((await onBoth(() => tf.matMul(values(sa, 0), values(sb, 1), ta, tb))) <= 1e-5);
    if (sa.length === 2) {
      const units = tb ? sb[0]! : sb[1]!;
      const fused = () =>
        tf.fused.matMul({
          a: values(sa, 0) as tf.Tensor2D,
          b: values(sb, 1) as tf.Tensor2D,
          transposeA: ta,
          transposeB: tb,
          bias: values([units], 2),
          activation: 'relu',
        });
      assert.ok((await onBoth(fused)) <= 1e-5);
    }
  }
});

test('gradient kernels leave no tensors or buffers behind', async () => {
  await tf.setBackend('wasm');
  const x = values([2, 8, 8, 3], 0);
  const f = values([3, 3, 3, 4], 1);
  const d = values([3, 3, 3, 2], 2);
  const step = () =>
    tf.tidy(() => {
      const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same').sum(),
      )([x, f]);
      const [hx, hd] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same').sum(),
      )([x, d]);
      return tf.addN([gx!.sum(), gf!.sum(), hx!.sum(), hd!.sum()]).dataSync();
    });
  step();
  const before = tf.memory();
  for (let i = 0; i < 3; i++) step();
  const after = tf.memory();
  assert.equal(after.numTensors, before.numTensors);
  assert.equal(after.numDataBuffers, before.numDataBuffers);
  assert.equal(after.numBytes, before.numBytes);
  tf.dispose([x, f, d]);
});

test('max-pool gradient matches cpu: windows that tile, overlap, pad, and tie', async () => {
  const cases: Array<{
    x: [number, number, number, number];
    size: [number, number];
    stride: [number, number];
    pad: 'same' | 'valid';
  }> = [
    { x: [2, 8, 8, 3], size: [2, 2], stride: [2, 2], pad: 'valid' },
    { x: [2, 9, 7, 5], size: [3, 3], stride: [2, 2], pad: 'same' },
    { x: [1, 6, 6, 2], size: [3, 2], stride: [1, 1], pad: 'same' },
    { x: [3, 7, 5, 4], size: [2, 3], stride: [2, 1], pad: 'valid' },
  ];
  for (const c of cases) {
    // values rounded to halves: many windows hold ties, whose gradient goes to the first of them
    const loss = (x: tf.Tensor) =>
      tf
        .maxPool(x as tf.Tensor4D, c.size, c.stride, c.pad)
        .mul(values(tf.maxPool(tf.zeros(c.x) as tf.Tensor4D, c.size, c.stride, c.pad).shape, 2))
        .sum();
    const err = await onBoth(() => tf.grad(loss)(values(c.x, 0).mul(2).round().div(2)));
    assert.ok(err <= 1e-6, `${JSON.stringify(c)}: relative error ${err}`);
  }
});

test('transposes (blocked matrix path and the rest) and leading-axis sums match cpu', async () => {
  const perms: Array<[number[], number[]]> = [
    [
      [37, 70],
      [1, 0],
    ],
    [
      [3, 33, 40],
      [0, 2, 1],
    ],
    [
      [4, 5, 6, 7],
      [2, 3, 0, 1],
    ],
    [
      [4, 5, 6, 7],
      [0, 3, 1, 2],
    ],
    [
      [4, 5, 6, 7],
      [3, 1, 2, 0],
    ],
    [
      [2, 3, 4],
      [0, 1, 2],
    ],
  ];
  for (const [shape, perm] of perms) {
    assert.equal(await onBoth(() => values(shape, 0).transpose(perm)), 0, `${shape} ${perm}`);
    assert.equal(await onBoth(() => values(shape, 0).toInt().transpose(perm)), 0, `int32 ${shape} ${perm}`);
  }
  const sums: Array<[number[], number[], boolean]> = [
    [[64, 9, 9, 16], [0, 1, 2], false],
    [[128, 30], [0], true],
    [[5, 6, 7], [1, 0], false],
    [[5, 6, 7], [1, 2], false],
    [[5, 6, 7], [0, 1, 2], false],
  ];
  for (const [shape, axes, keepDims] of sums) {
    const err = await onBoth(() => values(shape, 1).sum(axes, keepDims));
    assert.ok(err <= 1e-5, `sum ${shape} over ${axes}: relative error ${err}`);
  }
});

test('Tile by block copies matches cpu: vectors over a batch, every axis repeated, int32 and bool, rank 0', async () => {
  const cases: [number[], number[]][] = [
    [
      [1, 1, 1, 32],
      [64, 28, 28, 1],
    ],
    [
      [2, 3, 4],
      [3, 1, 2],
    ],
    [[5], [7]],
    [
      [3, 1, 2],
      [1, 4, 1],
    ],
    [
      [2, 2],
      [1, 1],
    ],
    [
      [0, 3],
      [2, 2],
    ],
  ];
  for (const [shape, reps] of cases)
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      // bool through a comparison: wasm's Cast to bool keeps the low byte of the float's integer part
      const input = () =>
        dtype === 'bool' ? tf.greater(values(shape, 0.3), 0) : tf.cast(tf.mul(values(shape, 0.3), 3), dtype);
      const err = await onBoth(() => tf.tile(input(), reps));
      assert.equal(err, 0, `tile ${shape} by ${reps} (${dtype})`);
    }
  assert.equal(await onBoth(() => tf.tile(tf.scalar(2.5), [])), 0, 'rank 0');
});

test('slices, strided slices, splits, unstacks and gathers as block copies over the heap match cpu', async () => {
  const x = () => values([4, 9, 10, 40], 0.7);
  const cases: Array<[string, () => tf.Tensor | tf.Tensor[]]> = [
    ['slice channels', () => tf.slice(x(), [0, 0, 0, 8], [4, 9, 10, 24])],
    ['slice rows, small', () => tf.slice(values([3, 5, 6], 0.2), [1, 2, 0], [2, 3, 6])],
    ['strided, reversed', () => tf.stridedSlice(x(), [0, 0, 0, 39], [4, 9, 10, 0], [1, 2, 2, -1])],
    ['strided with a shrunk axis', () => tf.stridedSlice(x(), [1, 0, 2], [0, 0, 35], [1, 1, 1], 0, 2, 2, 0, 1)],
    ['split channels', () => tf.split(x(), [16, 24], 3)],
    ['unstack rows', () => tf.unstack(x(), 1)],
    ['gather rows', () => tf.gather(values([50, 7], 0.1), tf.tensor1d([3, 49, 3, 0], 'int32'))],
    [
      'gather with batch dims',
      () =>
        tf.gather(
          x(),
          tf.tensor2d(
            [
              [1, 5],
              [0, 0],
              [2, 3],
              [5, 4],
            ],
            [4, 2],
            'int32',
          ),
          1,
          1,
        ),
    ],
  ];
  for (const [label, f] of cases) {
    const joined = () => {
      const out = f();
      return Array.isArray(out) ? tf.concat(out.map((t) => t.flatten())) : out;
    };
    const err = await onBoth(joined);
    assert.ok(err < 1e-7, `${label}: relative error ${err}`);
  }
  await tf.setBackend('wasm');
  assert.throws(
    () => tf.tidy(() => tf.gather(values([5, 2], 0), tf.tensor1d([5], 'int32'))),
    /GatherV2: the index value 5 is not in \[0, 4\]/,
  );
});

test('gather can be trained through on wasm: UnsortedSegmentSum (missing from tfjs-backend-wasm) matches cpu', async () => {
  const ids = [3, 9, 3, 0, 7, 3, 9];
  const weights = tf.tensor2d(
    ids.map((_, i) => i + 1),
    [7, 1],
  );
  const gatherGrad = () =>
    tf.grad((t: tf.Tensor) => tf.gather(t, tf.tensor1d(ids, 'int32')).mul(weights).sum())(values([10, 6], 0.3));
  assert.ok((await onBoth(gatherGrad)) < 1e-6);
  // a 3-d input, an id past numSegments (adds nothing) and segments no id names (zeros)
  const direct = () => tf.unsortedSegmentSum(values([5, 4, 3], 1.1), tf.tensor1d([2, 0, 2, 9, 5], 'int32'), 7);
  assert.ok((await onBoth(direct)) < 1e-6);
  await tf.setBackend('wasm');
  const before = tf.memory().numTensors;
  tf.dispose(tf.tidy(gatherGrad));
  assert.equal(tf.memory().numTensors, before);
});

test('training batch norm as one kernel each way matches the composed tfjs ops on cpu', async () => {
  const { installTrainingLayers } = await import('../src/backend/training-layers.js');
  installTrainingLayers();
  const x = values([4, 5, 6, 8], 0.1);
  const bn = tf.layers.batchNormalization({ gammaInitializer: 'randomNormal', betaInitializer: 'randomNormal' });
  bn.build(x.shape);
  const w = values([4, 5, 6, 8], 0.7);
  const run = () => {
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(bn.apply(x, { training: true }) as tf.Tensor, w)) as tf.Scalar,
    );
    return tf.concat([value.reshape([1]), ...Object.values(grads).map((g) => g.flatten())]);
  };
  const weights = bn.getWeights().map((t) => t.clone());
  await tf.setBackend('wasm');
  const { kernelNames } = await tf.profile(() => tf.dispose(run()));
  assert.ok(kernelNames.includes('TfjsDistillBatchNormTrain') && kernelNames.includes('TfjsDistillBatchNormTrainGrad'));
  bn.setWeights(weights);
  assert.ok(
    (await onBoth(() => {
      bn.setWeights(weights);
      return run();
    })) < 1e-4,
  );
  tf.dispose(weights);
});

test('float32 and int32 to bool is x ≠ 0, as on cpu (tfjs-backend-wasm keeps the low byte: 0.5, 256 → false)', async () => {
  const floats = [0.5, 0, -1, 2, -0.25, 1e-30, Number.NaN];
  const ints = [256, 1, 0, -1, 512];
  for (const backend of ['cpu', 'wasm']) {
    await tf.setBackend(backend);
    const b = tf.cast(tf.tensor1d(floats), 'bool');
    assert.deepEqual(Array.from(b.dataSync()), [1, 0, 1, 1, 1, 1, 1], `${backend} float32`);
    const i = tf.cast(tf.tensor1d(ints, 'int32'), 'bool');
    assert.deepEqual(Array.from(i.dataSync()), [1, 1, 0, 1, 1], `${backend} int32`);
    tf.dispose([b, i]);
  }
});

test('a dense layer under a recorded gradient ((Wᵀ·xᵀ)ᵀ: no packing of the new W) matches cpu, value and gradients', async () => {
  // K·N ≥ 65536 and 2M ≤ N: the route wasm-training.ts takes for a layer being trained
  for (const activation of ['linear', 'relu'] as const) {
    for (const withBias of [true, false]) {
      const f = (which: number) => () => {
        const x = values([8, 300], 0) as tf.Tensor2D;
        const w = values([300, 256], 1) as tf.Tensor2D;
        const bias = withBias ? values([256], 2) : undefined;
        const loss = (xi: tf.Tensor, wi: tf.Tensor) =>
          tf.fused
            .matMul({ a: xi as tf.Tensor2D, b: wi as tf.Tensor2D, bias, activation })
            .mul(values([8, 256], 3))
            .sum();
        if (which === 2) return tf.valueAndGrads(loss)([x, w]).value;
        return tf.grads(loss)([x, w])[which]!;
      };
      for (const which of [0, 1, 2]) {
        const err = await onBoth(f(which));
        assert.ok(err <= 1e-5, `${activation} bias ${withBias} output ${which}: relative error ${err}`);
      }
    }
  }
});

test('the loss kernels (soft KL, label cross-entropy) over the heap match the composed ops on cpu', async () => {
  const cases: { shape: [number, number]; labels: number[]; T: number; smoothing: number }[] = [
    { shape: [64, 10], labels: Array.from({ length: 64 }, (_, i) => (i % 7 === 3 ? -1 : i % 10)), T: 4, smoothing: 0 },
    { shape: [7, 100], labels: [5, 99, -1, 0, 12, 100, 40], T: 1, smoothing: 0.1 },
    { shape: [3, 4], labels: [-1, -1, -1], T: 2, smoothing: 0.2 },
  ];
  await tf.setBackend('wasm');
  assert.ok(softKlByKernel(tf.zeros([2, 3]), tf.zeros([2, 3]), 1), 'the wasm backend has the soft KL kernel');
  for (const c of cases) {
    const s = () => values(c.shape, 0).mul(5);
    const t = () => values(c.shape, 1).mul(5) as tf.Tensor2D;
    const labels = () => tf.tensor1d(c.labels, 'int32');
    const kl = (x: tf.Tensor) => softKl(x as tf.Tensor2D, t(), c.T, 1.5).mul(3);
    const ce = (x: tf.Tensor) => labelCrossEntropy(x as tf.Tensor2D, labels(), c.smoothing, 0.3).mul(3);
    for (const [name, loss] of [
      ['softKl', kl],
      ['labelCrossEntropy', ce],
    ] as const) {
      const valueErr = await onBoth(() => loss(s()));
      const gradErr = await onBoth(() => tf.grad(loss)(s()));
      assert.ok(valueErr <= 1e-5 && gradErr <= 1e-5, `${name} [${c.shape}]: value ${valueErr}, gradient ${gradErr}`);
    }
  }
});

test('Adam through the fused wasm kernel: the same weights and moments as tfjs Adam on cpu, nothing left behind', async () => {
  const train = async (backend: string) => {
    await tf.setBackend(backend);
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 300, inputShape: [40], activation: 'relu', kernelInitializer: 'glorotUniform' }),
        tf.layers.dense({ units: 5 }),
      ],
    });
    model.setWeights(model.getWeights().map((w, i) => values(w.shape, i)));
    const optimizer = tf.train.adam(0.01);
    const x = values([16, 40], 7);
    const y = values([16, 5], 8);
    const step = () =>
      optimizer.minimize(() => tf.losses.meanSquaredError(y, model.apply(x) as tf.Tensor) as tf.Scalar);
    step();
    // a moment shared with another tensor must keep its values: the kernel writes a new one then
    const moments = optimizer as unknown as Record<
      'accumulatedFirstMoment' | 'accumulatedSecondMoment',
      { variable: tf.Tensor }[]
    >;
    const moment = tf.clone(moments.accumulatedFirstMoment[0]!.variable);
    const kept = moment.dataSync().slice();
    const secondMoment = moments.accumulatedSecondMoment[0]!.variable.dataId;
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    assert.equal(tf.memory().numTensors, before, `${backend}: tensors flat across steps`);
    assert.deepEqual(moment.dataSync(), kept);
    // the fused kernel updates an unshared moment in place; tfjs's Adam assigns a new tensor
    assert.equal(moments.accumulatedSecondMoment[0]!.variable.dataId === secondMoment, backend === 'wasm');
    const weights = [...model.getWeights(), ...(await optimizer.getWeights()).map((w) => w.tensor)].map((w) =>
      w.dataSync().slice(),
    );
    tf.dispose([x, y, moment]);
    model.dispose();
    optimizer.dispose();
    return weights;
  };
  const onCpu = await train('cpu');
  const onWasm = await train('wasm');
  assert.equal(onWasm.length, onCpu.length);
  onWasm.forEach((w, i) => {
    const err = relativeError(w, onCpu[i]!);
    assert.ok(err <= 1e-4, `weight ${i}: relative error ${err}`);
  });
});

test('scratch memory grows and is given back to the heap intact (larger and larger conv filter gradients)', () => {
  // each size needs more scratch than the last, so the kernels' buffers are freed and allocated
  // again; freeing anything but what malloc returned corrupts the heap, and a later free never
  // returns: in a child process, so that a hang is a failure here
  const script = `
import * as tf from '@tensorflow/tfjs';
import { useBestBackend } from './src/backend/index.ts';
await useBestBackend({ backend: 'wasm' });
for (const [hw, c] of [[6, 2], [12, 4], [20, 8], [28, 16]]) {
  tf.tidy(() => {
    const x = tf.randomNormal([4, hw, hw, c]), f = tf.randomNormal([3, 3, c, 16]);
    tf.grads((a, b) => tf.conv2d(a, b, 1, 'same').sum())([x, f])[1].dataSync();
    tf.add(tf.ones([1000, 100]), 1).dataSync();
  });
}
console.log('done');
`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `status ${r.status}, signal ${r.signal}: ${r.stderr.slice(-400)}`);
  assert.match(r.stdout, /done/);
});

test('Adam whose moments were made on cpu goes on on wasm (the fused kernel moves them first)', async () => {
  const run = async (backends: string[]) => {
    await tf.setBackend('cpu');
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 8, inputShape: [6] })] });
    model.setWeights(model.getWeights().map((w, i) => values(w.shape, i)));
    const optimizer = tf.train.adam(0.05);
    const x = values([4, 6], 3);
    for (const backend of backends) {
      await tf.setBackend(backend);
      optimizer.minimize(() => (model.apply(x) as tf.Tensor).square().mean() as tf.Scalar);
    }
    const w = model.getWeights()[0]!.dataSync().slice();
    tf.dispose(x);
    model.dispose();
    optimizer.dispose();
    return w;
  };
  const err = relativeError(await run(['cpu', 'wasm', 'wasm']), await run(['cpu', 'cpu', 'cpu']));
  assert.ok(err <= 1e-5, `relative error ${err}`);
});
