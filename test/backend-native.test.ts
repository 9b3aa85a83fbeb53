/**
 * The `native` backend against the `cpu` backend: every natively served kernel on random
 * inputs (batch 1, strides, 'same'/'valid'/explicit padding, non-square kernels and inputs,
 * transposed operands, broadcasting), whole-model gradients and an Adam step, and tensor
 * counts that stay flat over training steps. Skips (with the reason) when the addon is not built;
 * fails instead under DISTILL_REQUIRE_NATIVE=1.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  registerNativeBackend,
  nativeBackendInfo,
  nativeBackendInstance,
  nativeFallbackCounts,
} from '../src/backend/native.js';
import { labelCrossEntropy, softKl } from '../src/knowledge/response/common.js';
import { labelCeByKernel, softKlByKernel } from '../src/backend/loss-kernels.js';
import { readFileSync } from 'node:fs';
import { nativeTest } from './helpers.js';
import { loadAddon, preferredCoreType } from '../src/backend/native/addon.js';
import { resolveOpCodes } from '../src/backend/native/op-codes.js';
import { BATCH_NORM_TRAIN_KERNEL } from '../src/backend/fused-kernels.js';
import { nearestSources } from '../src/backend/resize-kernels.js';
import { useBestBackend } from '../src/backend/index.js';

tf.enableProdMode();
const reg = registerNativeBackend();
const nativeOnly = nativeTest(reg.ok ? false : reg.reason);
const TOL = 1e-4;

/** Deterministic pseudo-random values in [lo, hi). */
function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = lo + ((s >>> 8) / 16777216) * (hi - lo);
  }
  return out;
}

let seedCounter = 1;
/** A random float32 tensor spec; `t()` makes it on the current backend. */
function spec(shape: number[], lo = -1, hi = 1) {
  const data = rand(
    shape.reduce((a, b) => a * b, 1),
    7919 * seedCounter++,
    lo,
    hi,
  );
  return { shape, data, t: () => tf.tensor(data, shape, 'float32') };
}

type Out = tf.Tensor | tf.Tensor[] | tf.NamedTensorMap;
function flatten(o: Out): tf.Tensor[] {
  if (o instanceof tf.Tensor) return [o];
  if (Array.isArray(o)) return o;
  return Object.keys(o)
    .sort()
    .map((k) => o[k]);
}

type Result = { shape: number[]; v: Float32Array | Int32Array | Uint8Array };

/** Runs f on a backend; returns its outputs as arrays with shapes (tensors disposed). */
async function runOn(backend: string, f: () => Out): Promise<Result[]> {
  await tf.setBackend(backend);
  const ts = tf.tidy(() => flatten(f()));
  const res = ts.map((t) => ({ shape: t.shape, v: t.dataSync() as Float32Array }));
  tf.dispose(ts);
  return res;
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0,
    scale = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i],
      y = b[i];
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) {
      scale = Math.max(scale, Math.abs(x) || 0);
      continue;
    }
    diff = Math.max(diff, Math.abs(x - y));
    scale = Math.max(scale, Math.abs(x));
  }
  return diff / Math.max(scale, 1e-30);
}

/** Asserts native ≈ cpu (normwise relative error ≤ TOL) and that `kernels` ran without falling back. */
async function check(label: string, f: () => Out, kernels: string[] = []): Promise<void> {
  const before = nativeFallbackCounts();
  const cpu = await runOn('cpu', f);
  const nat = await runOn('native', f);
  const after = nativeFallbackCounts();
  assert.equal(nat.length, cpu.length, `${label}: number of outputs`);
  for (let i = 0; i < cpu.length; i++) {
    assert.deepEqual(nat[i].shape, cpu[i].shape, `${label}: shape of output ${i}`);
    const e = relErr(cpu[i].v, nat[i].v);
    assert.ok(e <= TOL, `${label}: output ${i} relative error ${e.toExponential(2)} > ${TOL}`);
  }
  const served = new Set(nativeBackendInfo().kernels);
  for (const k of kernels) {
    assert.ok(served.has(k), `${label}: ${k} is not a natively served kernel name`);
    assert.equal(after.get(k) ?? 0, before.get(k) ?? 0, `${label}: kernel ${k} fell back to cpu`);
  }
}

nativeOnly('native backend registers idempotently and describes itself', async () => {
  assert.deepEqual(registerNativeBackend(), { ok: true });
  const info = nativeBackendInfo();
  assert.equal(info.available, true);
  assert.ok((info.threads ?? 0) >= 1);
  assert.match(info.blasConfig ?? '', /OpenBLAS/);
  assert.ok(info.kernels?.includes('Conv2DBackpropFilter'));
  // every native kernel overrides a real tfjs kernel (a misspelt name would never be called)
  const cpuNames = new Set(tf.getKernelsForBackend('cpu').map((k) => k.kernelName));
  for (const k of info.kernels ?? []) assert.ok(cpuNames.has(k), `${k} is not a tfjs kernel name`);
  assert.ok(tf.engine().registryFactory.native !== undefined);
  assert.ok(await tf.setBackend('native'));
});

nativeOnly('MatMul / BatchMatMul: shapes, transposes, batch broadcasting', async () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[1, 7], [7, 5], false, false],
    [[33, 17], [17, 29], false, false],
    [[17, 33], [17, 29], true, false],
    [[33, 17], [29, 17], false, true],
    [[17, 33], [29, 17], true, true],
    [[130, 300], [300, 257], false, false],
    [[300, 130], [257, 300], true, true],
    [[3, 4, 5], [3, 5, 6], false, false],
    [[3, 5, 4], [3, 6, 5], true, true],
    [[1, 4, 5], [3, 5, 6], false, false],
    [[3, 4, 5], [1, 5, 6], false, false],
    [[2, 3, 4, 5], [2, 3, 5, 6], false, false],
    [[3, 4, 5], [5, 6], false, false],
    [[6, 64, 64], [6, 64, 64], false, true],
  ];
  for (const [sa, sb, ta, tb] of cases) {
    const a = spec(sa),
      b = spec(sb);
    await check(`matMul ${sa} x ${sb} tA=${ta} tB=${tb}`, () => tf.matMul(a.t(), b.t(), ta, tb), ['BatchMatMul']);
  }
});

nativeOnly('MatMul through the AVX-512 sgemm and through OpenBLAS: tails, K blocks, row blocks, splits', async () => {
  const loaded = loadAddon();
  assert.ok('addon' in loaded);
  const cases: [number, number, number][] = [
    [13, 19, 17], // one short panel (12 + 1 rows), masked columns
    [25, 769, 33], // two K blocks: the second accumulates into C
    [200, 50, 129], // packed A (N >= 128), more rows than one row block, a 8-row tail
    [97, 800, 130],
    [128, 784, 300], // split over the workers
    [36, 64, 16], // the narrowest N it takes
    [600, 768, 40], // 4 parts of 160 rows (150 in the last): each in L2 chunks of 120 rows, then a tail
    [30, 800, 512], // B's rows 2 KiB apart: its panels packed, two K blocks, a 6-row tail
    [64, 300, 256], // batch 64: a 4-row tail, computed as 4 rows
    [22, 40, 48], // a 10-row tail, computed as 12
  ];
  const was = loaded.addon.info().sgemm !== 'openblas';
  const modes = loaded.addon.setAvx512(1) ? [1, 0] : [0];
  try {
    for (const mode of modes) {
      loaded.addon.setAvx512(mode);
      for (const [m, k, n] of cases) {
        const a = spec([m, k]),
          at = spec([k, m]),
          b = spec([k, n]);
        await check(`avx512=${mode} ${m}x${k}·${k}x${n}`, () => tf.matMul(a.t(), b.t()), ['BatchMatMul']);
        await check(`avx512=${mode} (${k}x${m})ᵀ·${k}x${n}`, () => tf.matMul(at.t(), b.t(), true), ['BatchMatMul']);
        // bias and ReLU in the kernel's stores, with the last K block
        const bias = spec([n]);
        for (const activation of ['relu', 'linear'] as const)
          await check(
            `avx512=${mode} ${m}x${k}·${k}x${n} + bias, ${activation}`,
            () => tf.fused.matMul({ a: a.t(), b: b.t(), bias: bias.t(), activation }),
            ['_FusedMatMul'],
          );
      }
      // B transposed: B itself is transposed (N·K small), or A and C are (C = (B·Aᵀ)ᵀ)
      for (const [m, k, n, ta] of [
        [2000, 64, 100, false],
        [128, 800, 300, false],
        [70, 40, 33, true],
        [130, 300, 257, true],
      ] as const) {
        const a = spec(ta ? [k, m] : [m, k]),
          b = spec([n, k]);
        await check(`avx512=${mode} ${m}x${k}·(${n}x${k})ᵀ tA=${ta}`, () => tf.matMul(a.t(), b.t(), ta, true), [
          'BatchMatMul',
        ]);
      }
    }
  } finally {
    loaded.addon.setAvx512(was ? 1 : 0);
  }
});

nativeOnly('_FusedMatMul: bias, activations, and its gradient path', async () => {
  const a = spec([9, 13]),
    b = spec([13, 11]),
    bias = spec([11]),
    prelu = spec([11], 0, 0.5),
    b1 = spec([1]);
  for (const activation of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const) {
    await check(
      `fused matMul ${activation}`,
      () =>
        tf.fused.matMul({
          a: a.t(),
          b: b.t(),
          bias: bias.t(),
          activation,
          leakyreluAlpha: 0.3,
          preluActivationWeights: activation === 'prelu' ? prelu.t() : undefined,
        }),
      ['_FusedMatMul'],
    );
  }
  const at = spec([13, 9]),
    bt = spec([11, 13]);
  await check(
    'fused matMul transposed, scalar bias',
    () =>
      tf.fused.matMul({ a: at.t(), b: bt.t(), transposeA: true, transposeB: true, bias: b1.t(), activation: 'relu' }),
    ['_FusedMatMul'],
  );
  const full = spec([9, 11]);
  await check('fused matMul full-shape bias (general broadcast path)', () =>
    tf.fused.matMul({ a: a.t(), b: b.t(), bias: full.t(), activation: 'relu' }),
  );
  const w = spec([9, 11]);
  await check('fused matMul gradients (relu, linear)', () => {
    const f = (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) =>
      tf.sum(tf.mul(tf.fused.matMul({ a: x, b: y, bias: z, activation: 'linear' }), w.t()));
    const g1 = tf.grads(f)([a.t(), b.t(), bias.t()]);
    const f2 = (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(tf.relu(tf.add(tf.matMul(x, y), z)), w.t()));
    const g2 = tf.grads(f2)([a.t(), b.t(), bias.t()]);
    return [...g1, ...g2];
  }, ['BatchMatMul', '_FusedMatMul', 'Step', 'Multiply', 'Sum']);
});

const convCases: {
  x: number[];
  f: number[];
  s: number | [number, number];
  pad: 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
  d?: number;
}[] = [
  { x: [2, 9, 7, 3], f: [3, 3, 3, 4], s: 1, pad: 'same' },
  { x: [2, 9, 7, 3], f: [3, 2, 3, 4], s: 1, pad: 'valid' },
  { x: [1, 10, 8, 2], f: [3, 3, 2, 5], s: 2, pad: 'same' },
  { x: [1, 11, 9, 2], f: [2, 3, 2, 5], s: [2, 1], pad: 'valid' },
  { x: [3, 8, 8, 4], f: [1, 1, 4, 6], s: 1, pad: 'valid' },
  {
    x: [2, 9, 10, 3],
    f: [3, 3, 3, 4],
    s: 1,
    pad: [
      [0, 0],
      [1, 2],
      [2, 1],
      [0, 0],
    ],
  },
  { x: [2, 12, 12, 3], f: [5, 5, 3, 4], s: 2, pad: 'same' },
  { x: [4, 20, 20, 8], f: [3, 3, 8, 16], s: 1, pad: 'same' },
  // tasks that span two samples (rows are blocked across the batch)
  { x: [3, 5, 6, 1], f: [3, 3, 1, 8], s: 1, pad: 'same' },
  { x: [5, 7, 3, 2], f: [3, 3, 2, 3], s: 2, pad: 'valid' },
  { x: [64, 28, 28, 1], f: [3, 3, 1, 8], s: 1, pad: 'same' },
  // narrow layers: 8/16/32 output channels forward, 8/16/32 input channels backward
  { x: [2, 9, 7, 16], f: [3, 2, 16, 8], s: 1, pad: 'valid' },
  { x: [2, 6, 6, 32], f: [3, 3, 32, 4], s: 1, pad: 'same' },
  // Winograd (3×3, stride 1, ≥ 16 channels in and out), F(4×4, 3×3) for these: output sizes that are
  // not multiples of 4 (partial tiles), channel counts that are not multiples of 8, explicit padding,
  // and enough tiles for several chunks (filter gradient: several groups)
  { x: [2, 9, 7, 16], f: [3, 3, 16, 32], s: 1, pad: 'same' },
  { x: [3, 10, 11, 24], f: [3, 3, 24, 20], s: 1, pad: 'valid' },
  {
    x: [2, 8, 9, 17],
    f: [3, 3, 17, 16],
    s: 1,
    pad: [
      [0, 0],
      [2, 0],
      [0, 2],
      [0, 0],
    ],
  },
  { x: [40, 10, 8, 16], f: [3, 3, 16, 16], s: 1, pad: 'same' },
  // F(2×2, 3×3): 6×6 and 5×5 outputs, where 4×4 tiles would make as many products
  { x: [3, 6, 6, 16], f: [3, 3, 16, 24], s: 1, pad: 'same' },
  { x: [2, 7, 7, 20], f: [3, 3, 20, 16], s: 1, pad: 'valid' },
];

nativeOnly('Conv2D / FusedConv2D forward (strides, paddings, non-square, dilation)', async () => {
  for (const c of convCases) {
    const x = spec(c.x),
      f = spec(c.f);
    await check(
      `conv2d x=${c.x} f=${c.f} s=${c.s} pad=${JSON.stringify(c.pad)}`,
      () => tf.conv2d(x.t() as tf.Tensor4D, f.t() as tf.Tensor4D, c.s, c.pad),
      ['Conv2D'],
    );
  }
  const x = spec([2, 11, 9, 3]),
    f = spec([3, 3, 3, 4]),
    bias = spec([4]);
  await check('conv2d dilation 2', () => tf.conv2d(x.t() as tf.Tensor4D, f.t() as tf.Tensor4D, 1, 'same', 'NHWC', 2), [
    'Conv2D',
  ]);
  const prelu = spec([4], 0, 0.5);
  type Spec = ReturnType<typeof spec>;
  const fusedConv = (label: string, xs: Spec, fs: Spec, strides: number, activation: tf.fused.Activation, b?: Spec) =>
    check(
      label,
      () =>
        tf.fused.conv2d({
          x: xs.t() as tf.Tensor4D,
          filter: fs.t() as tf.Tensor4D,
          strides,
          pad: 'same',
          bias: b?.t(),
          activation,
          leakyreluAlpha: 0.3,
          preluActivationWeights: activation === 'prelu' ? prelu.t() : undefined,
        }),
      ['FusedConv2D'],
    );
  for (const activation of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const)
    await fusedConv(`fused conv2d ${activation}`, x, f, 2, activation, bias);
  // narrow layers (8, 16, 32 output channels) take their own product, bias and ReLU fused in
  for (const [xs, oc] of [
    [[3, 9, 7, 1], 8],
    [[2, 6, 5, 8], 16],
    [[2, 5, 9, 6], 32],
  ] as const) {
    const nx = spec([...xs]),
      nf = spec([3, 3, xs[3], oc]),
      nb = spec([oc]);
    for (const activation of ['linear', 'relu', 'relu6'] as const)
      for (const withBias of [true, false])
        await fusedConv(
          `narrow fused conv2d ${xs} → ${oc} ${activation}${withBias ? ' + bias' : ''}`,
          nx,
          nf,
          1,
          activation,
          withBias ? nb : undefined,
        );
  }
});

nativeOnly('Conv2DBackpropInput / Conv2DBackpropFilter (gradients of conv2d)', async () => {
  for (const c of convCases) {
    const x = spec(c.x),
      f = spec(c.f);
    await check(`conv2d grads x=${c.x} f=${c.f} s=${c.s} pad=${JSON.stringify(c.pad)}`, () => {
      const y0 = tf.conv2d(x.t() as tf.Tensor4D, f.t() as tf.Tensor4D, c.s, c.pad);
      const w = tf.tensor(rand(y0.size, 99), y0.shape);
      return tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad), w)),
      )([x.t(), f.t()]);
    }, ['Conv2DBackpropInput', 'Conv2DBackpropFilter']);
  }
});

nativeOnly('3×3 stride-1 convolutions with ≥ 16 channels run Winograd: not im2col, and as close', async () => {
  const loaded = loadAddon();
  assert.ok('addon' in loaded);
  loaded.addon.setWinograd(1);
  assert.equal(nativeBackendInfo().conv3x3, 'winograd');
  // 36 and 40 channels: partial vectors at both widths
  const x = spec([4, 12, 10, 36]),
    f = spec([3, 3, 36, 40]),
    dy = spec([4, 12, 10, 40]);
  const run = (winograd: number) => {
    loaded.addon.setWinograd(winograd);
    return tf.tidy(() => {
      const y = tf.conv2d(x.t() as tf.Tensor4D, f.t() as tf.Tensor4D, 1, 'same');
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), dy.t())),
      )([x.t(), f.t()]);
      return [y, dx!, dw!].map((t) => t.dataSync() as Float32Array);
    });
  };
  await tf.setBackend('native');
  // the tile transforms 16 channels at a time (AVX-512) and 8 (AVX2: setAvx512(0), or no AVX-512)
  const was = loaded.addon.info().sgemm.startsWith('avx512');
  const modes = loaded.addon.setAvx512(1) ? [1, 0] : [0];
  try {
    for (const mode of modes) {
      loaded.addon.setAvx512(mode);
      const winograd = run(1);
      const im2col = run(0);
      loaded.addon.setWinograd(1);
      ['y', 'dx', 'dw'].forEach((name, i) => {
        const e = relErr(im2col[i]!, winograd[i]!);
        assert.ok(e > 0, `${name}: bit-identical to im2col, so Winograd did not run (avx512 ${mode})`);
        assert.ok(e <= 1e-5, `${name}: relative error ${e.toExponential(2)} against im2col (avx512 ${mode})`);
      });
    }
  } finally {
    loaded.addon.setAvx512(was ? 1 : 0);
  }
});

nativeOnly('DepthwiseConv2dNative and its two backprops', async () => {
  const cases: { x: number[]; f: number[]; s: number; pad: 'same' | 'valid' }[] = [
    { x: [2, 9, 7, 3], f: [3, 3, 3, 1], s: 1, pad: 'same' },
    { x: [1, 10, 8, 3], f: [3, 2, 3, 2], s: 2, pad: 'valid' },
    { x: [2, 8, 8, 4], f: [5, 5, 4, 1], s: 2, pad: 'same' },
  ];
  for (const c of cases) {
    const x = spec(c.x),
      f = spec(c.f);
    await check(`depthwise x=${c.x} f=${c.f} s=${c.s} ${c.pad}`, () => {
      const y = tf.depthwiseConv2d(x.t() as tf.Tensor4D, f.t() as tf.Tensor4D, c.s, c.pad);
      const w = tf.tensor(rand(y.size, 5), y.shape);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad), w)),
      )([x.t(), f.t()]);
      return [y, ...g];
    }, ['DepthwiseConv2dNative', 'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter']);
  }
});

nativeOnly('FusedDepthwiseConv2D: bias and activations', async () => {
  const x = spec([2, 9, 8, 4]),
    f = spec([3, 3, 4, 2]),
    bias = spec([8]);
  for (const activation of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu'] as const) {
    await check(
      `fused depthwise ${activation}`,
      () =>
        tf.fused.depthwiseConv2d({
          x: x.t() as tf.Tensor4D,
          filter: f.t() as tf.Tensor4D,
          strides: 2,
          pad: 'same',
          bias: bias.t(),
          activation,
          leakyreluAlpha: 0.3,
        }),
      ['FusedDepthwiseConv2D'],
    );
  }
});

nativeOnly('MaxPool / AvgPool and their gradients (incl. ties after relu)', async () => {
  const cases: {
    x: number[];
    k: [number, number];
    s: number | [number, number];
    pad: 'same' | 'valid';
    ties?: boolean;
  }[] = [
    { x: [2, 8, 8, 3], k: [2, 2], s: 2, pad: 'valid' },
    { x: [1, 9, 7, 2], k: [3, 2], s: [2, 1], pad: 'same' },
    { x: [2, 7, 9, 4], k: [3, 3], s: 1, pad: 'same' },
    { x: [3, 10, 6, 5], k: [2, 3], s: 2, pad: 'same' },
    { x: [2, 9, 7, 3], k: [2, 2], s: 2, pad: 'valid' },
    { x: [2, 9, 7, 3], k: [3, 2], s: [3, 2], pad: 'valid' },
    { x: [1, 6, 6, 600], k: [2, 2], s: 2, pad: 'valid' },
    { x: [2, 8, 6, 8], k: [2, 2], s: 2, pad: 'same' }, // the 2×2 fast path
    { x: [2, 7, 5, 8], k: [2, 2], s: 2, pad: 'same' }, // windows past the edge: the general path
    { x: [2, 9, 7, 3], k: [2, 2], s: 2, pad: 'valid', ties: true }, // equal maxima: the first one wins
  ];
  for (const c of cases) {
    const x = spec(c.x, c.ties ? -2 : -1, c.ties ? 2 : 1);
    if (c.ties) x.data.forEach((v, i) => (x.data[i] = Math.round(v)));
    for (const kind of ['max', 'avg'] as const) {
      const pool = (t: tf.Tensor) =>
        kind === 'max' ? tf.maxPool(t as tf.Tensor4D, c.k, c.s, c.pad) : tf.avgPool(t as tf.Tensor4D, c.k, c.s, c.pad);
      await check(
        `${kind}Pool x=${c.x} k=${c.k} s=${c.s} ${c.pad}`,
        () => {
          const y = pool(x.t());
          const w = tf.tensor(rand(y.size, 11), y.shape);
          const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(pool(a), w)))(x.t());
          const gr = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(pool(tf.relu(a)), w)))(x.t());
          return [y, g, gr];
        },
        kind === 'max' ? ['MaxPool', 'MaxPoolGrad'] : ['AvgPool', 'AvgPoolGrad'],
      );
    }
  }
});

nativeOnly('a 2×2 max pool under a recorded gradient keeps its argmax beside its output while that lives', async () => {
  await tf.setBackend('native');
  const backend = nativeBackendInstance()!;
  const x = tf.tensor(rand(2 * 8 * 8 * 3, 5), [2, 8, 8, 3]) as tf.Tensor4D;
  const pooled: tf.Tensor[] = [];
  const pool = (a: tf.Tensor) => {
    const y = tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid');
    pooled.push(tf.keep(y));
    return y.sum();
  };
  tf.dispose(tf.grad(pool)(x));
  const first = pooled[0]!;
  const argmax = backend.attachedBytes(first.dataId);
  assert.equal(argmax?.length, first.size);
  first.dispose();
  assert.equal(backend.attachedBytes(first.dataId), undefined);
  tf.dispose(tf.grad(pool)(x));
  assert.equal(backend.attachedBytes(pooled[1]!.dataId), argmax, 'the array is reused for the next output');
  // inference: nothing kept
  const y = tf.maxPool(x, 2, 2, 'valid');
  assert.equal(backend.attachedBytes(y.dataId), undefined);
  tf.dispose([x, y, pooled[1]!]);
});

nativeOnly('training batch norm: batch mean and variance in blocks, exact for data far from zero', async () => {
  await tf.setBackend('native');
  // 64×28×28 rows of 8 channels: several L2-sized blocks; an offset of 300 and a spread of 0.01,
  // where one-pass sums of squares lose every digit of the variance
  const shape = [64, 28, 28, 8];
  const n = shape.reduce((a, b) => a * b, 1);
  const data = rand(n, 17, -0.01, 0.01).map((v, i) => v + 300 + (i % 8));
  const x = tf.tensor(data, shape);
  const gamma = tf.tensor1d(rand(8, 3, 0.5, 1.5));
  const beta = tf.tensor1d(rand(8, 4));
  const [y, mean, variance] = tf
    .engine()
    .runKernel(BATCH_NORM_TRAIN_KERNEL, { x, gamma, beta }, { epsilon: 1e-5 }) as tf.Tensor[];
  // in double precision, from the same float32 values
  const sums = new Float64Array(8),
    sq = new Float64Array(8);
  for (let i = 0; i < n; i++) sums[i % 8] += data[i]!;
  const mu = Array.from(sums, (v) => v / (n / 8));
  for (let i = 0; i < n; i++) sq[i % 8] += (data[i]! - mu[i % 8]!) ** 2;
  const v = Array.from(sq, (s) => s / (n / 8));
  assert.ok(relErr(mu, mean!.dataSync()) < 1e-6, 'mean');
  assert.ok(relErr(v, variance!.dataSync()) < 1e-3, `variance ${Array.from(variance!.dataSync())} vs ${v}`);
  const yv = y!.dataSync(),
    g = gamma.dataSync(),
    b = beta.dataSync();
  let worst = 0;
  for (let i = 0; i < n; i += 997) {
    const c = i % 8;
    const want = ((data[i]! - mu[c]!) / Math.sqrt(v[c]! + 1e-5)) * g[c]! + b[c]!;
    worst = Math.max(worst, Math.abs(yv[i]! - want));
  }
  // the mean is held as float32, up to half an ulp of 300 (1.5e-5) off, over a std of 0.0066
  assert.ok(worst < 5e-3, `normalized values off by ${worst}`);
  tf.dispose([x, gamma, beta, y!, mean!, variance!]);
});

nativeOnly('unary element-wise kernels', async () => {
  const x = spec([37, 41], -3, 3),
    pos = spec([37, 41], 0.05, 4),
    big = spec([300, 301], -2, 2);
  const ops: [string, (t: tf.Tensor) => tf.Tensor, typeof x][] = [
    ['Relu', tf.relu, x],
    ['Relu6', (t) => tf.relu6(tf.mul(t, 3)), x],
    ['Exp', tf.exp, x],
    ['Log', tf.log, pos],
    ['Neg', tf.neg, x],
    ['Sqrt', tf.sqrt, pos],
    ['Rsqrt', tf.rsqrt, pos],
    ['Square', tf.square, x],
    ['Abs', tf.abs, x],
    ['Sigmoid', tf.sigmoid, x],
    ['Tanh', tf.tanh, x],
    ['Step', (t) => tf.step(t, 0.25), x],
    ['Reciprocal', tf.reciprocal, pos],
    ['Elu', tf.elu, x],
    ['LeakyRelu', (t) => tf.leakyRelu(t, 0.1), x],
    ['Softplus', tf.softplus, x],
    ['Log1p', tf.log1p, pos],
    ['Expm1', tf.expm1, x],
    ['ClipByValue', (t) => tf.clipByValue(t, -0.5, 1.25), x],
    ['Relu', tf.relu, big],
    ['Exp', tf.exp, big],
  ];
  for (const [name, op, s] of ops) await check(`${name} ${s.shape}`, () => op(s.t()), [name]);
});

nativeOnly('broadcasting binary kernels', async () => {
  const pairs: [number[], number[]][] = [
    [
      [4, 5],
      [4, 5],
    ],
    [[4, 5], [5]],
    [
      [4, 5],
      [4, 1],
    ],
    [
      [2, 3, 4],
      [3, 1],
    ],
    [[1], [3, 4]],
    [[], [3, 4]],
    [[3, 4], []],
    [
      [2, 1, 4],
      [1, 3, 1],
    ],
    [[2, 3, 4, 5, 6], [6]],
    [
      [2, 3, 4, 5, 6],
      [3, 1, 5, 1],
    ],
    [[128, 1200], [1200]],
    [
      [300, 301],
      [300, 301],
    ],
    [
      [2, 1, 3, 1, 2, 1],
      [1, 2, 1, 3, 1, 2],
    ],
  ];
  const ops: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
    ['Add', tf.add],
    ['Sub', tf.sub],
    ['Multiply', tf.mul],
    ['RealDiv', tf.div],
    ['Maximum', tf.maximum],
    ['Minimum', tf.minimum],
    ['SquaredDifference', tf.squaredDifference],
    ['Pow', tf.pow],
  ];
  for (const [sa, sb] of pairs) {
    const a = spec(sa),
      b = spec(sb, 0.5, 2);
    // more than 4 dims left after merging: served by the cpu kernel
    const general = sa.length > 4 && sb.length > 1;
    for (const [name, op] of ops)
      await check(`${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, () => op(a.t(), b.t()), general ? [] : [name]);
  }
  const base = spec([6, 9], 0.1, 3),
    expo = spec([9], -2, 3);
  await check('Pow positive base, vector exponent', () => tf.pow(base.t(), expo.t()), ['Pow']);
  await check(
    'Pow squares and its gradient',
    () => [
      tf.pow(expo.t(), 2),
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.pow(a, b)))([base.t(), expo.t()])[0],
    ],
    ['Pow'],
  );
  await check(
    'binary op on a float32 tensor stored as int32',
    () => tf.mul(tf.oneHot(tf.tensor1d([1, 0, 3], 'int32'), 4).toFloat(), tf.tensor(rand(12, 5), [3, 4])),
    ['Multiply'],
  );
  const xs = [spec([5, 7]), spec([5, 7]), spec([5, 7]), spec([5, 7])];
  await check('AddN', () => tf.addN(xs.map((s) => s.t())), ['AddN']);
});

nativeOnly('reductions, arg reductions, softmax', async () => {
  const x = spec([3, 4, 5]),
    wide = spec([64, 3000]),
    long = spec([200003]),
    chan = spec([16, 20, 21, 24]);
  const axesList: (number | number[] | undefined)[] = [undefined, 0, -1, 1, [0, 1], [1, 2], [0, 1, 2]];
  const ops: [string, (t: tf.Tensor, ax: number | number[] | undefined, k: boolean) => tf.Tensor][] = [
    ['Sum', tf.sum],
    ['Mean', tf.mean],
    ['Max', tf.max],
    ['Min', tf.min],
    ['Prod', (t, a, k) => tf.prod(tf.add(tf.mul(t, 0.1), 1), a, k)],
  ];
  for (const [name, op] of ops) {
    for (const ax of axesList) {
      for (const keep of [false, true])
        await check(`${name} axis=${JSON.stringify(ax)} keepDims=${keep}`, () => op(x.t(), ax, keep), [name]);
    }
    await check(`${name} non-contiguous axes (cpu path)`, () => op(x.t(), [0, 2], false));
    for (const ax of [0, 1, undefined])
      await check(`${name} [64,3000] axis=${ax}`, () => op(wide.t(), ax, false), [name]);
    await check(`${name} long vector`, () => op(long.t(), undefined, false), [name]);
    await check(`${name} per-channel over N,H,W`, () => op(chan.t(), [0, 1, 2], false), [name]);
  }
  for (const ax of [0, 1, 2, -1]) {
    await check(`argMax axis=${ax}`, () => tf.argMax(x.t(), ax), ['ArgMax']);
    await check(`argMin axis=${ax}`, () => tf.argMin(x.t(), ax), ['ArgMin']);
  }
  for (const ax of [undefined, 0, [1, 2], [0, 1, 2], -1] as (number | number[] | undefined)[]) {
    await check(`Mean gradient axis=${JSON.stringify(ax)}`, () => {
      const w = tf.tensor(rand(tf.mean(chan.t(), ax).size, 17), tf.mean(chan.t(), ax).shape);
      return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.mean(t, ax), w)))(chan.t());
    }, ['Mean']);
  }
  await check('second-order gradient through Mean', () =>
    tf.grad((t: tf.Tensor) =>
      tf.sum(tf.square(tf.grad((u: tf.Tensor) => tf.sum(tf.square(tf.mean(tf.square(u), [1, 2]))))(t))),
    )(chan.t()),
  );
  await tf.setBackend('native');
  const meanProf = await tf.profile(() => {
    tf.dispose(tf.grad((t: tf.Tensor) => tf.sum(tf.mean(t, [1, 2])))(chan.t()));
  });
  assert.ok(
    meanProf.kernels.some((k) => k.name === 'TfjsDistillBroadcastDiv'),
    'native Mean gradient not used',
  );
  const logits = spec([7, 10], -5, 5);
  await check('softmax and its gradient', () => {
    const w = tf.tensor(rand(70, 3), [7, 10]);
    return [
      tf.softmax(logits.t()),
      tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.softmax(t), w)))(logits.t()),
      tf.logSoftmax(logits.t()),
      tf.losses.softmaxCrossEntropy(tf.oneHot([1, 2, 3, 4, 5, 6, 7], 10), logits.t()),
    ];
  }, ['Softmax']);
});

nativeOnly('the kd loss core in one kernel (softKl): value and gradient as the composed tfjs ops', async () => {
  const cases: [number[], number, number][] = [
    [[64, 10], 3, 4],
    [[7, 100], 30, 1],
    [[1, 3], 1, 2],
  ];
  for (const [shape, range, T] of cases) {
    const s = spec(shape, -range, range),
      t = spec(shape, -range, range);
    let fused = false;
    await check(`softKl [${shape}] T=${T}`, () => {
      const teacher = t.t() as tf.Tensor2D;
      // a term's weight goes into the kernel (scale): against the composed ops times it on cpu
      const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => softKl(x as tf.Tensor2D, teacher, T, 1.5).mul(3))(
        s.t(),
      );
      fused ||= tf.getBackend() === 'native';
      return [value, grad];
    });
    assert.ok(fused);
  }
  // the composed form runs where the kernel does not: on cpu, softKl is klDiv of log-softmaxes
  await tf.setBackend('cpu');
  assert.equal(softKlByKernel(tf.zeros([2, 3]), tf.zeros([2, 3]), 1), undefined);
  await tf.setBackend('native');
});

nativeOnly('the label cross-entropy in one kernel: value and gradient as the composed tfjs ops', async () => {
  // unlabeled rows (−1), a label past the classes (an all-zero one-hot), smoothing, wide logits
  const cases: { shape: [number, number]; labels: number[]; range: number; smoothing: number }[] = [
    {
      shape: [64, 10],
      labels: Array.from({ length: 64 }, (_, i) => (i % 7 === 3 ? -1 : i % 10)),
      range: 3,
      smoothing: 0,
    },
    { shape: [7, 100], labels: [5, 99, -1, 0, 12, 100, 40], range: 30, smoothing: 0.1 },
    { shape: [3, 4], labels: [-1, -1, -1], range: 1, smoothing: 0.2 },
    { shape: [1, 3], labels: [2], range: 1, smoothing: 0 },
  ];
  for (const c of cases) {
    const s = spec(c.shape, -c.range, c.range);
    let fused = false;
    await check(`labelCrossEntropy [${c.shape}] ε=${c.smoothing}`, () => {
      const labels = tf.tensor1d(c.labels, 'int32');
      const { value, grad } = tf.valueAndGrad((x: tf.Tensor) =>
        labelCrossEntropy(x as tf.Tensor2D, labels, c.smoothing, 0.3).mul(3),
      )(s.t());
      fused ||= tf.getBackend() === 'native';
      return [value, grad];
    });
    assert.ok(fused);
  }
  await tf.setBackend('cpu');
  assert.equal(labelCeByKernel(tf.zeros([2, 3]), tf.tensor1d([0, 1], 'int32'), 0), undefined);
  await tf.setBackend('native');
});

nativeOnly('Tile (float32 and int32, any rank)', async () => {
  const cases: [number[], number[]][] = [
    [[3], [4]],
    [
      [2, 3],
      [3, 1],
    ],
    [
      [1, 1, 1, 5],
      [2, 3, 4, 1],
    ],
    [
      [2, 1, 3],
      [1, 4, 2],
    ],
    [
      [2, 3, 4],
      [1, 1, 1],
    ],
  ];
  for (const [shape, reps] of cases) {
    const x = spec(shape);
    await check(`tile ${shape} x ${reps}`, () => tf.tile(x.t(), reps), ['Tile']);
    await check(`tile int32 ${shape} x ${reps}`, () => tf.tile(tf.cast(tf.mul(x.t(), 100), 'int32'), reps), ['Tile']);
    // float32 label on int32 storage (cpu Cast int32 → float32 relabels the same data)
    await check(
      `tile cast int32→float32 ${shape} x ${reps}`,
      () => tf.tile(tf.cast(tf.cast(tf.mul(x.t(), 100), 'int32'), 'float32'), reps),
      ['Tile'],
    );
  }
});

nativeOnly('data movement: Slice, StridedSlice, Concat, Pack, SplitV, Unpack, PadV2, Transpose', async () => {
  const x = spec([3, 5, 6, 40]);
  const y = spec([3, 5, 6, 7]);
  const z = spec([3, 2, 6, 40]);
  const slices: [number[], number[]][] = [
    [
      [0, 1, 2, 3],
      [3, 3, 4, 33],
    ],
    [
      [1, 0, 0, 0],
      [2, 5, 6, 40],
    ],
    [
      [0, 0, 0, 20],
      [-1, -1, -1, 20],
    ],
    [
      [2, 4, 5, 39],
      [1, 1, 1, 1],
    ],
  ];
  for (const [begin, size] of slices)
    await check(`slice ${begin} ${size}`, () => tf.slice(x.t(), begin, size), ['Slice']);
  // begin, end, strides, then the begin / end / ellipsis / new-axis / shrink masks
  const strided: [number[], number[], number[], number[]][] = [
    [
      [0, 0, 0, 0],
      [3, 5, 6, 40],
      [1, 2, 2, 1],
      [0, 0, 0, 0, 0],
    ],
    [
      [0, 4, 0, 0],
      [3, 0, 6, 40],
      [1, -1, 3, 5],
      [0, 0, 0, 0, 0],
    ],
    [
      [0, 1, 0, 0],
      [0, 4, 0, 0],
      [1, 1, 1, 2],
      [13, 13, 0, 0, 0],
    ],
    [
      [1, 0, 2],
      [0, 0, 35],
      [1, 1, 1],
      [0, 2, 2, 0, 1],
    ],
    [
      [0, 0, 0, 0],
      [3, 5, 6, 40],
      [1, 1, 1, 7],
      [0, 0, 0, 2, 0],
    ],
    [
      [2, 0, 0, 0],
      [3, 5, 6, 40],
      [1, 1, 1, 1],
      [0, 0, 0, 0, 0],
    ],
  ];
  for (const [begin, end, strides, [bm, em, el, na, sh]] of strided) {
    await check(
      `stridedSlice ${begin} ${end} ${strides} masks ${bm},${em},${el},${na},${sh}`,
      () => tf.stridedSlice(x.t(), begin, end, strides, bm, em, el, na, sh),
      ['StridedSlice'],
    );
  }
  for (const axis of [0, 1, 2, 3, -1]) {
    const other = axis === 1 ? z : axis === 3 || axis === -1 ? y : x;
    await check(`concat axis ${axis}`, () => tf.concat([x.t(), other.t(), x.t()], axis), ['Concat']);
    await check(`stack axis ${axis}`, () => tf.stack([x.t(), x.t(), x.t()], axis), ['Pack']);
  }
  await check('concat with an empty input', () => tf.concat([x.t(), tf.zeros([3, 5, 6, 0]), y.t()], 3), ['Concat']);
  for (const axis of [0, 1, 3]) {
    const sizes = axis === 3 ? [7, 30, 3] : axis === 1 ? [2, 3] : [1, 1, 1];
    await check(`split axis ${axis} ${sizes}`, () => tf.split(x.t(), sizes, axis), ['SplitV']);
    await check(`unstack axis ${axis}`, () => tf.unstack(y.t(), axis), ['Unpack']);
  }
  const pads: Array<Array<[number, number]>> = [
    [
      [0, 0],
      [1, 1],
      [2, 0],
      [0, 3],
    ],
    [
      [1, 2],
      [0, 0],
      [0, 0],
      [0, 0],
    ],
  ];
  for (const p of pads) {
    await check(`pad ${p}`, () => tf.pad(x.t(), p), ['PadV2']);
    await check(`pad ${p} with 2.5`, () => tf.pad(x.t(), p, 2.5), ['PadV2']);
  }
  const v = spec([9]);
  await check('pad rank 1', () => tf.pad(v.t(), [[4, 0]]), ['PadV2']);
  const perms: [number[], number[]][] = [
    [
      [70, 45],
      [1, 0],
    ],
    [
      [3, 5, 6, 40],
      [0, 3, 1, 2],
    ],
    [
      [3, 5, 6, 40],
      [3, 2, 1, 0],
    ],
    [
      [3, 5, 6, 40],
      [0, 2, 1, 3],
    ],
    [
      [3, 5, 6, 40],
      [0, 1, 2, 3],
    ],
    [
      [2, 3, 1, 4, 5],
      [4, 0, 3, 2, 1],
    ],
  ];
  for (const [shape, perm] of perms) {
    const t = spec(shape);
    await check(`transpose ${shape} by ${perm}`, () => tf.transpose(t.t(), perm), ['Transpose']);
  }
  // int32 keeps the cpu kernels
  await check('concat int32', () =>
    tf.cast(tf.concat([tf.cast(x.t(), 'int32'), tf.cast(y.t(), 'int32')], 3), 'float32'),
  );
});

nativeOnly(
  'data movement of blocks large enough for the addon (≥ 4096 floats: memcpy runs, tiled transposes, threads)',
  async () => {
    const x = spec([4, 9, 10, 40]);
    const y = spec([4, 9, 10, 24]);
    await check('slice channels', () => tf.slice(x.t(), [0, 0, 0, 8], [4, 9, 10, 24]), ['Slice']);
    await check('slice rows and columns', () => tf.slice(x.t(), [1, 2, 3, 0], [3, 7, 6, 40]), ['Slice']);
    await check(
      'stridedSlice every other row and column, channels reversed',
      () => tf.stridedSlice(x.t(), [0, 0, 0, 39], [4, 9, 10, 0], [1, 2, 2, -1], 0, 0, 0, 0, 0),
      ['StridedSlice'],
    );
    await check('concat channels', () => tf.concat([x.t(), y.t()], 3), ['Concat']);
    await check('concat rows', () => tf.concat([x.t(), x.t()], 1), ['Concat']);
    await check('split channels', () => tf.split(x.t(), [16, 24], 3), ['SplitV']);
    await check(
      'pad',
      () =>
        tf.pad(
          x.t(),
          [
            [0, 1],
            [2, 1],
            [1, 3],
            [0, 0],
          ],
          -1,
        ),
      ['PadV2'],
    );
    const perms = [
      [0, 3, 1, 2],
      [0, 2, 3, 1],
      [3, 2, 1, 0],
      [1, 0, 2, 3],
      [0, 2, 1, 3],
    ];
    for (const perm of perms) await check(`transpose by ${perm}`, () => tf.transpose(x.t(), perm), ['Transpose']);
    const m = spec([131, 77]);
    await check('transpose of a matrix with ragged tiles', () => tf.transpose(m.t()), ['Transpose']);
  },
);

nativeOnly(
  'nearest resize and its gradient (the adjoint: tfjs-cpu 4.22 reads dy at the wrong batch stride)',
  async () => {
    const cases: Array<[number[], [number, number], boolean, boolean]> = [
      [[3, 4, 5, 6], [8, 10], false, false],
      [[2, 3, 3, 2], [7, 5], false, false],
      [[2, 7, 6, 3], [3, 4], false, false],
      [[2, 4, 5, 3], [7, 9], true, false],
      [[2, 4, 5, 3], [7, 9], false, true],
    ];
    for (const [shape, size, alignCorners, halfPixelCenters] of cases) {
      const x = spec(shape);
      const label = `${shape} → ${size}${alignCorners ? ' alignCorners' : ''}${halfPixelCenters ? ' halfPixelCenters' : ''}`;
      const resize = (t: tf.Tensor) =>
        tf.image.resizeNearestNeighbor(t as tf.Tensor4D, size, alignCorners, halfPixelCenters);
      await check(`resize ${label}`, () => resize(x.t()), ['ResizeNearestNeighbor']);
      // the reference: the same rows and columns gathered (checked against tfjs-cpu's forward pass),
      // whose gradient tfjs-cpu computes with its own gather gradient
      const rows = Array.from(nearestSources(shape[1]!, size[0], alignCorners, halfPixelCenters));
      const cols = Array.from(nearestSources(shape[2]!, size[1], alignCorners, halfPixelCenters));
      const gathered = (t: tf.Tensor) => tf.gather(tf.gather(t, rows, 1), cols, 2);
      const weights = spec([shape[0]!, ...size, shape[3]!]);
      const [viaGather, viaResize] = await runOn('cpu', () => [gathered(x.t()), resize(x.t())]);
      assert.deepEqual(viaGather!.v, viaResize!.v, `${label}: the gather reference is the forward pass`);
      const [expected] = await runOn('cpu', () => tf.grad((t: tf.Tensor) => gathered(t).mul(weights.t()).sum())(x.t()));
      const before = nativeFallbackCounts().get('ResizeNearestNeighborGrad') ?? 0;
      const [actual] = await runOn('native', () => tf.grad((t: tf.Tensor) => resize(t).mul(weights.t()).sum())(x.t()));
      assert.equal(nativeFallbackCounts().get('ResizeNearestNeighborGrad') ?? 0, before, `${label}: fell back to cpu`);
      const e = relErr(expected!.v, actual!.v);
      assert.ok(e <= TOL, `${label}: gradient relative error ${e.toExponential(2)}`);
    }
  },
);

nativeOnly('gather and its gradient (UnsortedSegmentSum): repeated rows, axes, batch dims, bad indices', async () => {
  const table = spec([50, 7]);
  const ids = [3, 49, 3, 0, 17, 3, 49];
  await check('gather rows', () => tf.gather(table.t(), tf.tensor1d(ids, 'int32')), ['GatherV2']);
  await check('gather axis 1', () => tf.gather(table.t(), tf.tensor1d([6, 0, 6], 'int32'), 1), ['GatherV2']);
  const maps = spec([4, 6, 5, 40]);
  await check(
    'gather with batch dims',
    () =>
      tf.gather(
        maps.t(),
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
    ['GatherV2'],
  );
  await check(
    'gather gradient',
    () =>
      tf.grad((t: tf.Tensor) =>
        tf
          .gather(t, tf.tensor1d(ids, 'int32'))
          .mul(tf.range(1, 8).reshape([7, 1]))
          .sum(),
      )(table.t()),
    ['UnsortedSegmentSum'],
  );
  await check(
    'unsortedSegmentSum of a 3-d input',
    () => tf.unsortedSegmentSum(maps.t(), tf.tensor1d([2, 0, 2, 5], 'int32'), 6),
    ['UnsortedSegmentSum'],
  );
  await tf.setBackend('native');
  assert.throws(
    () => tf.tidy(() => tf.gather(table.t(), tf.tensor1d([50], 'int32'))),
    /GatherV2: the index value 50 is not in \[0, 49\]/,
  );
});

nativeOnly('gradients through concat, slice, pad and transpose, with flat tensor counts', async () => {
  const a = spec([4, 6, 6, 24]);
  const b = spec([4, 6, 6, 40]);
  const f = (x: tf.Tensor, y: tf.Tensor) => {
    const joined = tf.concat([x, y], 3);
    const cut = tf.slice(joined, [0, 1, 1, 8], [4, 4, 4, 48]);
    const padded = tf.pad(cut, [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ]);
    return tf
      .transpose(padded, [0, 3, 1, 2])
      .square()
      .mul(tf.range(0, 6).reshape([1, 1, 1, 6]))
      .sum();
  };
  await check('gradients', () => tf.grads(f)([a.t(), b.t()]), ['Concat', 'Slice', 'PadV2', 'Transpose', 'SplitV']);
  await tf.setBackend('native');
  const x = a.t();
  const y = b.t();
  const step = () => tf.dispose(tf.grads(f)([x, y]));
  step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) step();
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, y]);
});

nativeOnly('FusedBatchNorm (per-channel and scalar parameters) and its gradient', async () => {
  const x = spec([4, 5, 6, 8]),
    mean = spec([8]),
    variance = spec([8], 0.1, 2),
    scale = spec([8]),
    offset = spec([8]);
  await check('batchNorm per channel', () => tf.batchNorm(x.t(), mean.t(), variance.t(), offset.t(), scale.t(), 1e-3), [
    'FusedBatchNorm',
  ]);
  await check('batchNorm without scale/offset', () => tf.batchNorm(x.t(), mean.t(), variance.t()), ['FusedBatchNorm']);
  await check(
    'batchNorm scalar mean/variance',
    () => tf.batchNorm(x.t(), tf.scalar(0.3), tf.scalar(1.7), tf.scalar(-0.2), tf.scalar(1.3)),
    ['FusedBatchNorm'],
  );
  const bnGrads = () =>
    tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor, m: tf.Tensor, v: tf.Tensor) =>
      tf.sum(tf.square(tf.batchNorm(a, m, v, o, s))),
    )([x.t(), scale.t(), offset.t(), mean.t(), variance.t()]);
  await check('batchNorm gradient (x, scale, offset, mean, variance)', bnGrads, ['FusedBatchNorm']);
  // the native two-pass gradient served it (not tfjs's composed one)
  await tf.setBackend('native');
  const prof = await tf.profile(() => {
    tf.dispose(bnGrads());
  });
  assert.ok(
    prof.kernels.some((k) => k.name === 'TfjsDistillBatchNormGrad'),
    'native batch-norm gradient not used',
  );
});

function buildMlp(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [20], units: 32, activation: 'relu', name: 'd1' }),
      tf.layers.dense({ units: 24, activation: 'relu', name: 'd2' }),
      tf.layers.dense({ units: 5, name: 'out' }),
    ],
  });
}

function buildCnn(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [12, 10, 2],
        filters: 6,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        name: 'c1',
      }),
      tf.layers.batchNormalization({ name: 'bn' }),
      tf.layers.conv2d({
        filters: 8,
        kernelSize: [3, 2],
        strides: 2,
        padding: 'valid',
        activation: 'relu',
        name: 'c2',
      }),
      tf.layers.depthwiseConv2d({ kernelSize: 2, depthMultiplier: 1, padding: 'same', name: 'dw' }),
      tf.layers.maxPooling2d({ poolSize: 2, padding: 'same', name: 'p' }),
      tf.layers.flatten({ name: 'f' }),
      tf.layers.dense({ units: 16, activation: 'relu', name: 'd1' }),
      tf.layers.dense({ units: 5, name: 'out' }),
    ],
  });
}

/** Three Adam steps: returns the first step's loss and gradients (trainableWeights order) and the final weights. */
async function trainStep(
  backend: string,
  build: () => tf.LayersModel,
  weights: Float32Array[],
  x: { shape: number[]; data: Float32Array },
  labels: number[],
) {
  await tf.setBackend(backend);
  const model = build();
  model.setWeights(model.getWeights().map((w, i) => tf.tensor(weights[i], w.shape)));
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const opt = tf.train.adam(0.01);
  const xs = tf.tensor(x.data, x.shape),
    ys = tf.oneHot(labels, 5).toFloat();
  const step = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor) as tf.Scalar,
        vars,
      );
      const g = vars.map((v) => grads[v.name].dataSync().slice());
      opt.applyGradients(grads as Parameters<typeof opt.applyGradients>[0]);
      return { loss: value.dataSync()[0], grads: g };
    });
  // first step: updates go to new buffers; later steps update pooled buffers in place
  const out = step();
  step();
  step();
  const after = model.getWeights().map((w) => w.dataSync().slice());
  xs.dispose();
  ys.dispose();
  opt.dispose();
  model.dispose();
  return { ...out, after };
}

for (const [name, build, xShape] of [
  ['MLP', buildMlp, [6, 20]],
  ['CNN', buildCnn, [4, 12, 10, 2]],
] as const) {
  nativeOnly(`whole ${name}: loss, every gradient and three Adam steps match cpu`, async () => {
    await tf.setBackend('cpu');
    const ref = build();
    const weights = ref.getWeights().map((w) => w.dataSync().slice() as Float32Array);
    ref.dispose();
    const x = spec(xShape as unknown as number[]);
    const labels = Array.from({ length: xShape[0] }, (_, i) => (i * 3) % 5);
    const c = await trainStep('cpu', build, weights, x, labels);
    const n = await trainStep('native', build, weights, x, labels);
    assert.ok(Math.abs(c.loss - n.loss) <= TOL * Math.abs(c.loss), `loss ${c.loss} vs ${n.loss}`);
    c.grads.forEach((g, i) => assert.ok(relErr(g, n.grads[i]) <= TOL, `gradient ${i}: ${relErr(g, n.grads[i])}`));
    c.after.forEach((w, i) =>
      assert.ok(relErr(w, n.after[i]) <= TOL, `weight ${i} after Adam: ${relErr(w, n.after[i])}`),
    );
  });
}

nativeOnly('tensor count is stable over repeated native training steps (fused Adam, pooled buffers)', async () => {
  await tf.setBackend('native');
  const model = buildCnn();
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const opt = tf.train.adam(0.01);
  const xs = tf.randomUniform([4, 12, 10, 2]),
    ys = tf.oneHot([0, 1, 2, 3], 5).toFloat();
  const step = () =>
    tf.tidy(() => {
      const { grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor) as tf.Scalar,
        vars,
      );
      opt.applyGradients(grads as Parameters<typeof opt.applyGradients>[0]);
    });
  step();
  step();
  const n0 = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) step();
  assert.equal(tf.memory().numTensors, n0);
  // a value read by user code is never recycled under it
  const w0 = vars[0].dataSync();
  const copy = w0.slice();
  for (let i = 0; i < 3; i++) step();
  assert.deepEqual(Array.from(w0), Array.from(copy));
  // an op output read with dataSync() and then disposed is not handed out again
  const r = tf.relu(xs),
    seen = r.dataSync(),
    seenCopy = seen.slice();
  r.dispose();
  for (let i = 0; i < 3; i++) tf.tidy(() => tf.relu(tf.neg(xs)).dataSync());
  assert.deepEqual(Array.from(seen), Array.from(seenCopy));
  // a short view (cpu Slice → subarray) keeps a pooled buffer alive after its parent is disposed
  const src = tf.randomUniform([8, 100], -1, 1);
  const reference = tf.relu(src).dataSync().slice(0, 100);
  const parent = tf.relu(src),
    view = tf.slice(parent, [0, 0], [1, 10]);
  parent.dispose();
  for (let i = 0; i < 3; i++) tf.tidy(() => tf.neg(tf.relu(tf.neg(src))));
  assert.deepEqual(Array.from(view.dataSync()), Array.from(reference.slice(0, 10)));
  view.dispose();
  src.dispose();
  xs.dispose();
  ys.dispose();
  opt.dispose();
  model.dispose();
});

nativeOnly(
  "op codes: the addon's C tables and the TS kernel maps name the same ops, and either side alone changing fails",
  () => {
    const loaded = loadAddon();
    assert.ok('addon' in loaded);
    const table = loaded.addon.opCodes();
    const ops = resolveOpCodes(table); // throws if a mapping is missing or a C op is unmapped
    assert.equal(ops.binary.RealDiv, table.binary['DIV']);
    assert.equal(ops.activation.prelu, table.activation['PRELU']);
    // each C table is 0…n−1 (the X-macro enums), so codes are dense and distinct
    for (const codes of Object.values(table) as Array<Record<string, number>>) {
      assert.deepEqual(
        [...Object.values(codes)].sort((a, b) => a - b),
        [...Object.keys(codes).keys()],
      );
    }
    // the C headers list the same names the addon reports (the addon is built from them)
    const header = readFileSync(new URL('../native/src/ew.h', import.meta.url), 'utf8');
    const names = (macro: string) =>
      [...(header.match(new RegExp(`#define ${macro}\\(X\\)([^#]*)`))?.[1] ?? '').matchAll(/X\((\w+)\)/g)].map(
        (m) => m[1],
      );
    assert.deepEqual(names('TDN_UNARY_OPS'), Object.keys(table.unary));
    assert.deepEqual(names('TDN_BINARY_OPS'), Object.keys(table.binary));
    // a C op added without a mapping, or a mapping to a C op that is gone, is refused by name
    assert.throws(
      () => resolveOpCodes({ ...table, unary: { ...table.unary, HARDSWISH: 99 } }),
      /unary C op HARDSWISH has no mapping/,
    );
    const { POW: _pow, ...withoutPow } = table.binary;
    assert.throws(() => resolveOpCodes({ ...table, binary: withoutPow }), /binary Pow → POW is not in the addon/);
  },
);

test('on AMD CPUs with AVX-512 the loader asks OpenBLAS for its Haswell kernels; elsewhere OpenBLAS decides', () => {
  if (process.env.OPENBLAS_CORETYPE !== undefined || process.platform !== 'linux' || process.arch !== 'x64') return;
  const cpu = (vendor: string, flags: string) =>
    `processor\t: 0\nvendor_id\t: ${vendor}\ncpu family\t: 26\nflags\t\t: fpu sse2 ${flags}\n\nprocessor\t: 1\n`;
  assert.equal(preferredCoreType(cpu('AuthenticAMD', 'fma avx2 avx512f avx512bw')), 'Haswell');
  assert.equal(preferredCoreType(cpu('AuthenticAMD', 'fma avx2')), null);
  assert.equal(preferredCoreType(cpu('GenuineIntel', 'fma avx2 avx512f avx512bw')), null);
});

nativeOnly('the loaded OpenBLAS runs the kernel set the loader asked for', () => {
  const wanted = preferredCoreType();
  if (wanted === null) return; // OpenBLAS's own choice, or the user's OPENBLAS_CORETYPE
  assert.equal(nativeBackendInfo().blasCore, wanted);
});

test('the cpu backend chosen through useBestBackend has the adjoint nearest-resize gradient, not tfjs-cpu 4.22 own', async () => {
  await useBestBackend({ backend: 'cpu' });
  const x = spec([3, 4, 5, 2]);
  const w = spec([3, 8, 10, 2]);
  const grads = tf.tidy(() => {
    const got = tf.grad((t: tf.Tensor) =>
      tf.image
        .resizeNearestNeighbor(t as tf.Tensor4D, [8, 10])
        .mul(w.t())
        .sum(),
    )(x.t());
    // upsampling by 2 copies each pixel into a 2×2 block: its gradient sums the block's weights
    const expected = tf.avgPool(w.t() as tf.Tensor4D, 2, 2, 'valid').mul(4);
    return [got.dataSync(), expected.dataSync()];
  });
  assert.ok(relErr(grads[1]!, grads[0]!) < 1e-6);
});
