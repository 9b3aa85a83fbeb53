/** Element-wise kernels, broadcasting binary ops, reductions, softmax and AddN in C loops. */
import * as tf from '@tensorflow/tfjs';
import type { NativeBackend } from './backend.js';
import { isF32, type KernelArgs, type KernelFn } from './util.js';
import { reluOutputs } from '../fused-kernels.js';

/**
 * Collapsed (≤ 4-d) broadcasting geometry: the output shape, and for the addon's `binary` the
 * packed [d0..d3, a strides, b strides] (stride 0 = broadcast).
 */
export interface BinaryGeom {
  out: number[];
  geometry: Int32Array;
}

export function binaryGeom(aShape: number[], bShape: number[]): BinaryGeom | null {
  let out: number[];
  try {
    out = tf.backend_util.assertAndGetBroadcastShape(aShape, bShape);
  } catch {
    return null;
  }
  const rank = out.length;
  const pa = [...new Array(rank - aShape.length).fill(1), ...aShape];
  const pb = [...new Array(rank - bShape.length).fill(1), ...bShape];
  const strides = (s: number[]) => {
    const st = new Array<number>(rank);
    let acc = 1;
    for (let i = rank - 1; i >= 0; i--) {
      st[i] = s[i] === 1 ? 0 : acc;
      acc *= s[i];
    }
    return st;
  };
  const sa = strides(pa),
    sb = strides(pb);
  const d: number[] = [],
    as: number[] = [],
    bs: number[] = [];
  for (let i = 0; i < rank; i++) {
    if (out[i] === 1) continue;
    const k = d.length - 1;
    if (k >= 0 && as[k] === sa[i] * out[i] && bs[k] === sb[i] * out[i]) {
      d[k] *= out[i];
      as[k] = sa[i];
      bs[k] = sb[i];
    } else {
      d.push(out[i]);
      as.push(sa[i]);
      bs.push(sb[i]);
    }
  }
  if (d.length > 4) return null;
  while (d.length < 4) {
    d.unshift(1);
    as.unshift(0);
    bs.unshift(0);
  }
  return { out, geometry: Int32Array.from([...d, ...as, ...bs]) };
}

export function makeElementwiseKernels(backend: NativeBackend, cpu: Map<string, KernelFn>): Record<string, KernelFn> {
  const addon = backend.addon;
  const kernels: Record<string, KernelFn> = {};

  for (const [name, op] of Object.entries(backend.ops.unary)) {
    const fallback = cpu.get(name);
    if (fallback === undefined) continue;
    kernels[name] = (args: KernelArgs) => {
      const { x } = args.inputs;
      if (x.dtype !== 'float32') return fallback(args);
      const attrs = args.attrs ?? {};
      let alpha = 0,
        beta = 0;
      if (name === 'Step') alpha = Number(attrs.alpha ?? 0);
      else if (name === 'LeakyRelu') alpha = Number(attrs.alpha ?? 0.2);
      else if (name === 'ClipByValue') {
        alpha = Number(attrs.clipValueMin);
        beta = Number(attrs.clipValueMax);
      }
      const out = backend.makeOutputF32(x.shape);
      addon.unary(op, backend.f32(x), out.values, alpha, beta);
      if (name === 'Relu') reluOutputs.add(out.info.dataId);
      return out.info;
    };
  }

  const geomCache = new Map<string, BinaryGeom | null>();
  for (const [name, op] of Object.entries(backend.ops.binary)) {
    const fallback = cpu.get(name);
    if (fallback === undefined) continue;
    kernels[name] = (args: KernelArgs) => {
      const { a, b } = args.inputs;
      if (a.dtype !== 'float32' || b.dtype !== 'float32') return fallback(args);
      const key = `${a.shape.join(',')}|${b.shape.join(',')}`;
      let g = geomCache.get(key);
      if (g === undefined) {
        g = binaryGeom(a.shape, b.shape);
        if (geomCache.size > 4096) geomCache.clear();
        geomCache.set(key, g);
      }
      if (g === null) return fallback(args);
      const out = backend.makeOutputF32(g.out);
      addon.binary(op, backend.f32(a), backend.f32(b), out.values, g.geometry);
      return out.info;
    };
  }

  const addNCpu = cpu.get('AddN')!;
  kernels.AddN = (args: KernelArgs) => {
    const ts = Object.values(args.inputs) as tf.TensorInfo[];
    if (
      ts.length === 0 ||
      ts.length > 20 ||
      !ts.every((t) => t.dtype === 'float32' && tf.util.arraysEqual(t.shape, ts[0].shape))
    ) {
      return addNCpu(args);
    }
    const out = backend.makeOutputF32(ts[0].shape);
    addon.addN(out.values, ...ts.map((t) => backend.f32(t)));
    return out.info;
  };

  const batchNormCpu = cpu.get('FusedBatchNorm');
  if (batchNormCpu !== undefined) {
    kernels.FusedBatchNorm = (args: KernelArgs) => {
      const { x, mean, variance, scale, offset } = args.inputs;
      const params = [mean, variance, scale, offset].filter((t) => t != null);
      if (!isF32(x, ...params) || x.shape.length === 0) return batchNormCpu(args);
      const channels = x.shape[x.shape.length - 1];
      // every parameter is per channel (last axis) or a scalar; otherwise the cpu kernel
      if (
        !params.every((t) => {
          const n = tf.util.sizeFromShape(t.shape);
          return n === 1 || (n === channels && t.shape[t.shape.length - 1] === channels);
        })
      ) {
        return batchNormCpu(args);
      }
      const eps = Number(args.attrs?.varianceEpsilon ?? 0.001);
      const out = backend.makeOutputF32(x.shape);
      const ok = addon.batchNorm(
        backend.f32(x),
        out.values,
        channels,
        backend.f32(mean),
        backend.f32(variance),
        scale != null ? backend.f32(scale) : null,
        offset != null ? backend.f32(offset) : null,
        eps,
      );
      if (!ok) {
        backend.disposeData(out.info.dataId);
        return batchNormCpu(args);
      }
      return out.info;
    };
  }

  // tfjs's batchNorm gradient tiles per-channel values to the full input shape; the cpu
  // kernel does that element by element through TensorBuffer (~100 ms for 1.6M elements)
  const tileCpu = cpu.get('Tile');
  if (tileCpu !== undefined) {
    kernels.Tile = (args: KernelArgs) => {
      const { x } = args.inputs;
      const reps = (args.attrs?.reps as number[] | undefined) ?? [];
      if (
        (x.dtype !== 'float32' && x.dtype !== 'int32') ||
        x.shape.length === 0 ||
        x.shape.length > 16 ||
        reps.length !== x.shape.length
      ) {
        return tileCpu(args);
      }
      const outShape = x.shape.map((d, i) => d * reps[i]);
      const n = tf.util.sizeFromShape(outShape);
      // backend.f32: a float32 tensor may sit on int32 storage (cpu Cast relabels int32 data)
      const stored = backend.data.get(x.dataId).values;
      const src = x.dtype === 'float32' ? backend.f32(x) : stored;
      if (!(src instanceof Float32Array) && !(src instanceof Int32Array)) return tileCpu(args);
      if (x.dtype === 'float32') {
        const out = backend.makeOutputF32(outShape, n);
        addon.tile(src, out.values, Int32Array.from(x.shape), Int32Array.from(reps));
        return out.info;
      }
      const values = new Int32Array(n);
      addon.tile(src, values, Int32Array.from(x.shape), Int32Array.from(reps));
      return backend.makeTensorInfo(outShape, 'int32', values);
    };
  }

  const softmaxCpu = cpu.get('Softmax')!;
  kernels.Softmax = (args: KernelArgs) => {
    const { logits } = args.inputs;
    const rank = logits.shape.length;
    const dim = Number(args.attrs?.dim ?? -1);
    if (logits.dtype !== 'float32' || rank === 0 || (dim !== -1 && dim !== rank - 1)) return softmaxCpu(args);
    const cols = logits.shape[rank - 1];
    const out = backend.makeOutputF32(logits.shape);
    addon.softmax(backend.f32(logits), out.values, out.values.length / Math.max(cols, 1), cols);
    return out.info;
  };

  /** [outer, R, inner] view for reducing `axes` when they are one contiguous block. */
  const reduceView = (shape: number[], axes: number[]) => {
    const sorted = [...axes].sort((p, q) => p - q);
    for (let i = 1; i < sorted.length; i++) if (sorted[i] !== sorted[i - 1] + 1) return null;
    if (sorted.length === 0) return { outer: tf.util.sizeFromShape(shape), R: 1, inner: 1 };
    const lo = sorted[0],
      hi = sorted[sorted.length - 1];
    return {
      outer: tf.util.sizeFromShape(shape.slice(0, lo)),
      R: tf.util.sizeFromShape(shape.slice(lo, hi + 1)),
      inner: tf.util.sizeFromShape(shape.slice(hi + 1)),
    };
  };

  for (const [name, op] of Object.entries(backend.ops.reduce)) {
    const fallback = cpu.get(name);
    if (fallback === undefined) continue;
    kernels[name] = (args: KernelArgs) => {
      const { x } = args.inputs;
      const attrs = args.attrs ?? {};
      if (x.dtype !== 'float32') return fallback(args);
      const axisAttr = (name === 'Max' ? attrs.reductionIndices : attrs.axis) as number | number[] | undefined;
      const axes = tf.util.parseAxisParam(axisAttr ?? (null as unknown as number[]), x.shape);
      const view = reduceView(x.shape, axes);
      if (view === null) return fallback(args);
      const [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
      const shape = attrs.keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
      const out = backend.makeOutputF32(shape);
      addon.reduce(op, backend.f32(x), out.values, view.outer, view.R, view.inner);
      return out.info;
    };
  }

  for (const [name, isMax] of [
    ['ArgMax', 1],
    ['ArgMin', 0],
  ] as const) {
    const fallback = cpu.get(name);
    if (fallback === undefined) continue;
    kernels[name] = (args: KernelArgs) => {
      const { x } = args.inputs;
      if (x.dtype !== 'float32' || x.shape.length === 0) return fallback(args);
      const axes = tf.util.parseAxisParam(args.attrs?.axis as number, x.shape);
      if (axes.length !== 1) return fallback(args);
      const view = reduceView(x.shape, axes)!;
      const [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
      const values = new Int32Array(tf.util.sizeFromShape(outShape));
      addon.argReduce(isMax, backend.f32(x), values, view.outer, view.R, view.inner);
      return backend.makeTensorInfo(outShape, 'int32', values);
    };
  }

  return kernels;
}
