/**
 * Training-mode batch norm for tfjs-backend-wasm as two JavaScript kernels over the module's heap
 * (BATCH_NORM_TRAIN_KERNEL and its gradient, the contract native/batchnorm-train.ts serves), so
 * that training-layers.ts runs a BatchNormalization layer as one kernel each way on wasm too.
 * tfjs-layers' own path is tf.moments, the normalization and ~20 gradient kernels, among them five
 * Sums and Tiles over the whole activation: 40 ms of a 150 ms step of the quickstart teacher
 * (two conv-BN-ReLU blocks, batch 64).
 * Channels last; per-channel sums in double precision, the variance about the mean (two passes).
 * Loops take blocks of 64 rows (in L1) channel by channel, each channel's sum in a local: 1.7× the
 * speed of row-major loops that add into a per-channel array.
 */
import type * as tf from '@tensorflow/tfjs';
import { heap, type WasmBackend } from './wasm-heap-kernels.js';

type Info = tf.TensorInfo;
const BLOCK_ROWS = 64;

/** [y, batch mean, batch (population) variance] of x (rows of C channels). */
export function batchNormTrain(backendArg: unknown, x: Info, gamma: Info, beta: Info, epsilon: number): Info[] {
  const backend = backendArg as WasmBackend;
  const C = x.shape[x.shape.length - 1]!;
  // every output before any heap view: an allocation may grow the heap and detach earlier views
  const outs = [x.shape, [C], [C]].map((shape) => backend.makeOutput(shape, 'float32'));
  const [y, mean, variance] = outs.map((o) => heap(backend, o)) as [Float32Array, Float32Array, Float32Array];
  const xs = heap(backend, x);
  const g = heap(backend, gamma);
  const b = heap(backend, beta);
  const n = xs.length;
  const rows = n / C;
  const block = BLOCK_ROWS * C;
  const mu = new Float64Array(C);
  for (let i0 = 0; i0 < n; i0 += block) {
    const i1 = Math.min(n, i0 + block);
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let i = i0 + c; i < i1; i += C) s += xs[i]!;
      mu[c] += s;
    }
  }
  for (let c = 0; c < C; c++) mu[c] = mu[c]! / rows;
  const sq = new Float64Array(C);
  for (let i0 = 0; i0 < n; i0 += block) {
    const i1 = Math.min(n, i0 + block);
    for (let c = 0; c < C; c++) {
      const m = mu[c]!;
      let s = 0;
      for (let i = i0 + c; i < i1; i += C) {
        const d = xs[i]! - m;
        s += d * d;
      }
      sq[c] += s;
    }
  }
  const k = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    mean[c] = mu[c]!;
    variance[c] = sq[c]! / rows;
    k[c] = g[c]! / Math.fround(Math.sqrt(variance[c]! + epsilon));
  }
  for (let i0 = 0; i0 < n; i0 += block) {
    const i1 = Math.min(n, i0 + block);
    for (let c = 0; c < C; c++) {
      const m = mean[c]!;
      const kc = k[c]!;
      const bc = b[c]!;
      for (let i = i0 + c; i < i1; i += C) y[i] = (xs[i]! - m) * kc + bc;
    }
  }
  return outs;
}

/**
 * [dx, dGamma, dBeta], the mean and variance depending on x: with s1 = Σ dy, s2 = Σ dy·(x − mean)
 * and rstd = 1/√(var + ε), dx = γ·rstd·(dy − s1/N − (x − mean)·rstd²·s2/N), dγ = rstd·s2, dβ = s1.
 */
export function batchNormTrainGrad(
  backendArg: unknown,
  inputs: { x: Info; dy: Info; mean: Info; variance: Info; gamma: Info },
  epsilon: number,
): Info[] {
  const backend = backendArg as WasmBackend;
  const C = inputs.x.shape[inputs.x.shape.length - 1]!;
  const outs = [inputs.x.shape, [C], [C]].map((shape) => backend.makeOutput(shape, 'float32'));
  const [dx, dGamma, dBeta] = outs.map((o) => heap(backend, o)) as [Float32Array, Float32Array, Float32Array];
  const [xs, dy, mean, variance, g] = [inputs.x, inputs.dy, inputs.mean, inputs.variance, inputs.gamma].map((t) =>
    heap(backend, t),
  ) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  const n = xs.length;
  const rows = n / C;
  const block = BLOCK_ROWS * C;
  const s1 = new Float64Array(C);
  const s2 = new Float64Array(C);
  for (let i0 = 0; i0 < n; i0 += block) {
    const i1 = Math.min(n, i0 + block);
    for (let c = 0; c < C; c++) {
      const m = mean[c]!;
      let t1 = 0;
      let t2 = 0;
      for (let i = i0 + c; i < i1; i += C) {
        const d = dy[i]!;
        t1 += d;
        t2 += d * (xs[i]! - m);
      }
      s1[c] += t1;
      s2[c] += t2;
    }
  }
  const a = new Float32Array(C);
  const bx = new Float32Array(C);
  const c0 = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    const rstd = 1 / Math.sqrt(variance[c]! + epsilon);
    a[c] = g[c]! * rstd;
    bx[c] = (-g[c]! * rstd * rstd * rstd * s2[c]!) / rows;
    c0[c] = (-g[c]! * rstd * s1[c]!) / rows;
    dGamma[c] = rstd * s2[c]!;
    dBeta[c] = s1[c]!;
  }
  for (let i0 = 0; i0 < n; i0 += block) {
    const i1 = Math.min(n, i0 + block);
    for (let c = 0; c < C; c++) {
      const ac = a[c]!;
      const bc = bx[c]!;
      const cc = c0[c]!;
      const m = mean[c]!;
      for (let i = i0 + c; i < i1; i += C) dx[i] = ac * dy[i]! + bc * (xs[i]! - m) + cc;
    }
  }
  return outs;
}
