/**
 * Data-movement kernels (Slice, StridedSlice, Concat, Pack, SplitV, Unpack, PadV2, Transpose,
 * GatherV2 and gather's gradient UnsortedSegmentSum) for float32 tensors, into recycled arrays.
 *
 * tfjs-cpu walks non-contiguous slices, pads and strided slices one element at a time through
 * index arithmetic and TensorBuffer calls (~200 ns an element: 0.7 s to take half the channels
 * of a [64, 28, 28, 64] map), and sums segments with one masked pass over the whole input per
 * segment (41 s for the gradient of gathering 1,792 rows of a 1000-row table). Here every kernel
 * is one strided block copy (`copyBlock`) or one pass of row additions; a contiguous slice is a
 * view, as in tfjs-cpu. Other dtypes keep the cpu kernels.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBackend } from './backend.js';
import { copyBlock, mergeBlock, segmentSumRows, stridesOf } from '../block-copy.js';
import { isF32, type KernelArgs, type KernelFn } from './util.js';

type Info = tf.TensorInfo;

export function makeCopyKernels(backend: NativeBackend, cpu: Map<string, KernelFn>): Record<string, KernelFn> {
  const kernels: Record<string, KernelFn> = {};
  const { addon } = backend;
  // blocks of a few thousand floats and more go to the addon (memcpy per run, tiled transposes,
  // both cores); below that the call costs more than the JavaScript loops
  const copy: typeof copyBlock = (src, sOff, sStr, dst, dOff, dStr, shape) => {
    const merged = tf.util.sizeFromShape(shape as number[]) >= 4096 ? mergeBlock(sStr, dStr, shape) : null;
    if (merged === null || merged.n.length === 0 || merged.n.length > 8 || typeof addon.copyStrided !== 'function') {
      copyBlock(src, sOff, sStr, dst, dOff, dStr, shape);
      return;
    }
    addon.copyStrided(src, sOff, dst, dOff, Int32Array.from([...merged.n, ...merged.ss, ...merged.ds]));
  };
  // a kernel returns null for what it does not serve: tfjs-cpu's kernel runs then
  const serve = (name: string, fn: (args: KernelArgs) => Info | Info[] | null) => {
    const fallback = cpu.get(name);
    if (fallback !== undefined) kernels[name] = (args) => fn(args) ?? fallback(args);
  };

  /**
   * x[begin + i·steps] for i < size, as a tensor of `outShape` (size's elements reshaped): a
   * view of x's array when that block is contiguous in it (as tfjs-cpu's Slice), else a copy.
   */
  const part = (x: Info, begin: number[], steps: number[], size: number[], outShape: number[] = size): Info => {
    const src = backend.f32(x);
    const xs = stridesOf(x.shape);
    const offset = begin.reduce((acc, b, k) => acc + b * xs[k]!, 0);
    if (steps.every((s) => s === 1) && tf.slice_util.isSliceContinous(x.shape, begin, size)) {
      return backend.makeTensorInfo(outShape, 'float32', src.subarray(offset, offset + tf.util.sizeFromShape(size)));
    }
    const out = backend.makeOutputF32(outShape);
    copy(
      src,
      offset,
      xs.map((st, k) => st * steps[k]!),
      out.values,
      0,
      stridesOf(size),
      size,
    );
    return out.info;
  };
  const ones = (x: Info) => x.shape.map(() => 1);

  serve('Slice', ({ inputs: { x }, attrs }) => {
    if (!isF32(x)) return null;
    const [begin, size] = tf.slice_util.parseSliceParams(
      x as tf.Tensor,
      attrs!.begin as number[],
      attrs!.size as number[],
    );
    tf.slice_util.assertParamsValid(x as tf.Tensor, begin, size);
    return part(x!, begin, ones(x!), size);
  });

  serve('StridedSlice', ({ inputs: { x }, attrs }) => {
    if (!isF32(x)) return null;
    const a = attrs as unknown as tf.StridedSliceAttrs;
    const info = tf.slice_util.sliceInfo(
      x!.shape,
      a.begin,
      a.end,
      a.strides,
      a.beginMask,
      a.endMask,
      a.ellipsisMask,
      a.newAxisMask,
      a.shrinkAxisMask,
    );
    // the block taken from x, one extent per axis of x (shrunk axes have extent 1)
    const size = tf.slice_util.computeOutShape(info.begin, info.end, info.strides);
    if (info.isIdentity || size.length !== x!.shape.length || size.some((d) => d <= 0)) return null;
    if (tf.util.sizeFromShape(size) !== tf.util.sizeFromShape(info.finalShape)) return null;
    return part(x!, info.begin, info.strides, size, info.finalShape);
  });

  /** Stacks blocks along `axis` of outShape: each input is [outer, its own extent, inner]. */
  const join = (xs: Info[], outer: number, extents: number[], inner: number, outShape: number[]): Info => {
    const total = extents.reduce((p, e) => p + e, 0);
    const out = backend.makeOutputF32(outShape);
    let at = 0;
    xs.forEach((x, i) => {
      const run = extents[i]! * inner;
      copy(backend.f32(x), 0, [run, 1], out.values, at * inner, [total * inner, 1], [outer, run]);
      at += extents[i]!;
    });
    return out.info;
  };

  serve('Concat', ({ inputs, attrs }) => {
    const xs = Object.values(inputs).filter((t) => tf.util.sizeFromShape(t.shape) > 0);
    if (xs.length < 2 || !isF32(...xs)) return null;
    const axis = tf.util.parseAxisParam(attrs!.axis as number, xs[0]!.shape)[0]!;
    tf.backend_util.assertParamsConsistent(
      xs.map((t) => t.shape),
      axis,
    );
    const outShape = tf.backend_util.computeOutShape(
      xs.map((t) => t.shape),
      axis,
    );
    const shape = xs[0]!.shape;
    const outer = tf.util.sizeFromShape(shape.slice(0, axis));
    return join(
      xs,
      outer,
      xs.map((t) => t.shape[axis]!),
      tf.util.sizeFromShape(shape.slice(axis + 1)),
      outShape,
    );
  });

  serve('Pack', ({ inputs, attrs }) => {
    const xs = Object.values(inputs);
    if (xs.length < 2 || !isF32(...xs)) return null;
    const shape = xs[0]!.shape;
    if (xs.some((t) => !tf.util.arraysEqual(t.shape, shape))) return null;
    const axis = tf.util.parseAxisParam(attrs!.axis as number, [...shape, 1])[0]!;
    const outShape = [...shape.slice(0, axis), xs.length, ...shape.slice(axis)];
    return join(
      xs,
      tf.util.sizeFromShape(shape.slice(0, axis)),
      xs.map(() => 1),
      tf.util.sizeFromShape(shape.slice(axis)),
      outShape,
    );
  });

  serve('SplitV', ({ inputs: { x }, attrs }) => {
    if (!isF32(x)) return null;
    const axis = tf.util.parseAxisParam(attrs!.axis as number, x!.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs!.numOrSizeSplits as number[], axis);
    const begin = x!.shape.map(() => 0);
    return sizes.map((s) => {
      const size = [...x!.shape];
      size[axis] = s;
      const piece = part(x!, [...begin], ones(x!), size);
      begin[axis]! += s;
      return piece;
    });
  });

  serve('Unpack', ({ inputs: { value }, attrs }) => {
    if (!isF32(value)) return null;
    const shape = value!.shape;
    const axis = tf.util.parseAxisParam(attrs!.axis as number, shape)[0]!;
    const outShape = shape.filter((_, k) => k !== axis);
    const size = shape.map((d, k) => (k === axis ? 1 : d));
    return Array.from({ length: shape[axis]! }, (_, i) =>
      part(
        value!,
        shape.map((_, k) => (k === axis ? i : 0)),
        ones(value!),
        size,
        outShape,
      ),
    );
  });

  serve('PadV2', ({ inputs: { x }, attrs }) => {
    if (!isF32(x)) return null;
    const paddings = attrs!.paddings as Array<[number, number]>;
    const outShape = x!.shape.map((d, k) => paddings[k]![0] + d + paddings[k]![1]);
    const out = backend.makeOutputF32(outShape);
    out.values.fill((attrs!.constantValue as number) ?? 0);
    const os = stridesOf(outShape);
    const offset = paddings.reduce((acc, p, k) => acc + p[0] * os[k]!, 0);
    copy(backend.f32(x!), 0, stridesOf(x!.shape), out.values, offset, os, x!.shape);
    return out.info;
  });

  serve('Transpose', ({ inputs: { x }, attrs }) => {
    if (!isF32(x)) return null;
    const perm = attrs!.perm as number[];
    const xs = stridesOf(x!.shape);
    const outShape = perm.map((p) => x!.shape[p]!);
    const out = backend.makeOutputF32(outShape);
    copy(
      backend.f32(x!),
      0,
      perm.map((p) => xs[p]!),
      out.values,
      0,
      stridesOf(outShape),
      outShape,
    );
    return out.info;
  });

  serve('GatherV2', ({ inputs: { x, indices }, attrs }) => {
    if (!isF32(x) || indices!.dtype !== 'int32') return null;
    const axis = tf.util.parseAxisParam(attrs!.axis as number, x!.shape)[0]!;
    const ids = backend.i32(indices!);
    const axisDim = x!.shape[axis]!;
    for (const index of ids) {
      if (index > axisDim - 1 || index < 0)
        throw new Error(`GatherV2: the index value ${index} is not in [0, ${axisDim - 1}]`);
    }
    const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(
      x as tf.Tensor,
      indices as tf.Tensor,
      axis,
      (attrs!.batchDims as number | undefined) ?? 0,
    );
    const { batchSize, outerSize, dimSize, sliceSize } = info;
    const perBatch = ids.length / batchSize;
    const src = backend.f32(x!);
    const out = backend.makeOutputF32(info.outputShape);
    const dst = out.values;
    let d = 0;
    for (let b = 0; b < batchSize; b++) {
      for (let o = 0; o < outerSize; o++) {
        const base = (b * outerSize + o) * dimSize;
        for (let i = 0; i < perBatch; i++, d += sliceSize) {
          const s = (base + ids[b * perBatch + i]!) * sliceSize;
          if (sliceSize >= 32) dst.set(src.subarray(s, s + sliceSize), d);
          else for (let j = 0; j < sliceSize; j++) dst[d + j] = src[s + j]!;
        }
      }
    }
    return out.info;
  });

  // gather's gradient: out[id] += x[row] for each row of x (ids outside [0, numSegments) add
  // nothing, as tfjs-cpu's masks do)
  serve('UnsortedSegmentSum', ({ inputs: { x, segmentIds }, attrs }) => {
    if (!isF32(x) || segmentIds!.dtype !== 'int32') return null;
    const rows = tf.util.sizeFromShape(segmentIds!.shape);
    if (!tf.util.arraysEqual(x!.shape.slice(0, segmentIds!.shape.length), segmentIds!.shape)) return null;
    const numSegments = attrs!.numSegments as number;
    const inner = rows === 0 ? 0 : tf.util.sizeFromShape(x!.shape) / rows;
    const outShape = [numSegments, ...x!.shape.slice(segmentIds!.shape.length)];
    const out = backend.makeOutputF32(outShape);
    segmentSumRows(backend.f32(x!), backend.i32(segmentIds!), inner, numSegments, out.values);
    return out.info;
  });
  return kernels;
}
