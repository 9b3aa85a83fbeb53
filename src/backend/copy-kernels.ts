/**
 * Data-movement kernels (Slice, StridedSlice, Concat, Pack, SplitV, Unpack, PadV2, Transpose,
 * GatherV2 and gather's gradient UnsortedSegmentSum) for float32 tensors, over any backend whose
 * tensors are typed arrays JavaScript can see (a `CopyStore`: native's recycled Float32Arrays,
 * wasm's heap).
 *
 * tfjs-cpu walks non-contiguous slices, pads and strided slices one element at a time through
 * index arithmetic and TensorBuffer calls (~200 ns an element: 0.7 s to take half the channels
 * of a [64, 28, 28, 64] map), and sums segments with one masked pass over the whole input per
 * segment (23 s for the gradient of gathering 1,792 rows of a 1000-row table). Here every kernel
 * is one strided block copy or one pass of row additions; a contiguous slice is a view where
 * the store can make one, as in tfjs-cpu. Other dtypes keep the backend's own kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { type copyBlock, copyRun, segmentSumRows, stridesOf } from './block-copy.js';

type Info = tf.TensorInfo;
type KernelArgs = { inputs: Record<string, Info>; backend: object; attrs?: tf.NamedAttrMap };
export type KernelFn = (args: KernelArgs) => Info | Info[];

/** What the kernels need from a backend's storage. */
export interface CopyStore {
  /** A new float32 tensor; its `values` may be read only until the next allocation (wasm's heap grows). */
  output(shape: number[]): { info: Info; values: Float32Array };
  f32(t: Info): Float32Array;
  i32(t: Info): Int32Array;
  /** x's values [offset, offset + length) as a tensor of `shape` without a copy, or null. */
  view(x: Info, offset: number, length: number, shape: number[]): Info | null;
  /** `copyBlock`, or a faster equivalent. */
  copy: typeof copyBlock;
}

const isF32 = (...ts: (Info | undefined)[]) => ts.every((t) => t !== undefined && t.dtype === 'float32');

/**
 * The kernels named in `fallbacks` (which it must hold: the backend's own kernel, run for what
 * these do not serve), each over the store of the backend it is called with.
 */
export function makeCopyKernels(
  storeOf: (backend: object) => CopyStore,
  fallbacks: Map<string, KernelFn>,
): Record<string, KernelFn> {
  const kernels: Record<string, KernelFn> = {};
  let store: CopyStore;
  // a kernel returns null for what it does not serve: the backend's own kernel runs then
  const serve = (name: string, fn: (args: KernelArgs) => Info | Info[] | null) => {
    const fallback = fallbacks.get(name);
    if (fallback === undefined) return;
    kernels[name] = (args) => {
      store = storeOf(args.backend);
      return fn(args) ?? fallback(args);
    };
  };

  /**
   * x[begin + i·steps] for i < size, as a tensor of `outShape` (size's elements reshaped): a
   * view of x's array when that block is contiguous in it (as tfjs-cpu's Slice), else a copy.
   */
  const part = (x: Info, begin: number[], steps: number[], size: number[], outShape: number[] = size): Info => {
    const xs = stridesOf(x.shape);
    const offset = begin.reduce((acc, b, k) => acc + b * xs[k]!, 0);
    if (steps.every((s) => s === 1) && tf.slice_util.isSliceContinous(x.shape, begin, size)) {
      const view = store.view(x, offset, tf.util.sizeFromShape(size), outShape);
      if (view !== null) return view;
    }
    const out = store.output(outShape);
    store.copy(
      store.f32(x),
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
    const out = store.output(outShape);
    let at = 0;
    xs.forEach((x, i) => {
      const run = extents[i]! * inner;
      store.copy(store.f32(x), 0, [run, 1], out.values, at * inner, [total * inner, 1], [outer, run]);
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
    const out = store.output(outShape);
    out.values.fill((attrs!.constantValue as number) ?? 0);
    const os = stridesOf(outShape);
    const offset = paddings.reduce((acc, p, k) => acc + p[0] * os[k]!, 0);
    store.copy(store.f32(x!), 0, stridesOf(x!.shape), out.values, offset, os, x!.shape);
    return out.info;
  });

  serve('Transpose', ({ inputs: { x }, attrs }) => {
    if (!isF32(x)) return null;
    const perm = attrs!.perm as number[];
    const xs = stridesOf(x!.shape);
    const outShape = perm.map((p) => x!.shape[p]!);
    const out = store.output(outShape);
    store.copy(
      store.f32(x!),
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
    const axisDim = x!.shape[axis]!;
    for (const index of store.i32(indices!)) {
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
    const out = store.output(info.outputShape);
    const [dst, src, ids] = [out.values, store.f32(x!), store.i32(indices!)];
    const perBatch = ids.length / batchSize;
    let d = 0;
    for (let b = 0; b < batchSize; b++) {
      for (let o = 0; o < outerSize; o++) {
        const base = (b * outerSize + o) * dimSize;
        for (let i = 0; i < perBatch; i++, d += sliceSize) {
          copyRun(src, (base + ids[b * perBatch + i]!) * sliceSize, dst, d, sliceSize);
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
    const out = store.output(outShape);
    segmentSumRows(store.f32(x!), store.i32(segmentIds!), inner, numSegments, out.values);
    return out.info;
  });
  return kernels;
}
