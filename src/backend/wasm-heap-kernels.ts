/**
 * Training kernels for tfjs-backend-wasm written in JavaScript over the module's heap, where the
 * stock kernel is slow for the shapes training makes (measured with tfjs-backend-wasm 4.22, 2
 * threads, on the bench CNN's step):
 * - Transpose of a tall or wide matrix, or of the outer and inner axes around kept middle ones
 *   (after merging axes that stay adjacent): 8.1 ms for [9216,128], 25 ms for [36864,64], 7.3 ms
 *   for [64,24,24,64] by [3,1,2,0]; blocked, 2.0, 4.1 and 5.5 ms (square matrices and swaps with
 *   a narrow side stay with the stock kernel, which is as fast or faster there);
 * Inputs are read and the output written through Float32Array views of the heap, taken after
 * the output is allocated (an allocation may grow the heap and detach earlier views).
 */
import type * as tf from '@tensorflow/tfjs';

type Info = tf.TensorInfo;

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use. */
export interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(info: Info): tf.TypedArray;
}

export function heap(backend: WasmBackend, info: Info): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

/** A transpose as blocks: [outer, a, mid, c] → [outer, c, mid, a] (mid 1: a matrix transpose). */
export interface BlockSwap {
  outer: number;
  a: number;
  mid: number;
  c: number;
}

/**
 * `perm` as a BlockSwap when, after the leading axes it keeps in place, it lists two or three
 * runs of consecutive axes whose order is reversed (e.g. [1,0], [0,2,1], [3,1,2,0]), else undefined.
 */
export function asBlockSwap(shape: readonly number[], perm: readonly number[]): BlockSwap | undefined {
  const size = (from: number, to: number) => shape.slice(from, to).reduce((n, d) => n * d, 1);
  let k = 0;
  while (k < perm.length && perm[k] === k) k++;
  const runs: number[][] = [];
  for (const axis of perm.slice(k)) {
    const run = runs.at(-1);
    if (run && axis === run.at(-1)! + 1) run.push(axis);
    else runs.push([axis]);
  }
  if (runs.length < 2 || runs.length > 3) return undefined;
  // reversed, the runs must tile k … n−1 in order
  const tiled = [...runs].reverse().flat();
  if (!tiled.every((axis, i) => axis === k + i)) return undefined;
  const first = runs.at(-1)!;
  const last = runs[0]!;
  return {
    outer: size(0, k),
    a: size(first[0]!, first.at(-1)! + 1),
    mid: runs.length === 3 ? size(runs[1]![0]!, runs[1]!.at(-1)! + 1) : 1,
    c: size(last[0]!, last.at(-1)! + 1),
  };
}

const TILE = 32;

/**
 * [outer, a, mid, c] → [outer, c, mid, a] in TILE × TILE blocks of (a, c), each walked along the
 * longer side's stride so that the short side's accesses stay in a few cache lines.
 */
export function blockSwapTranspose(backendArg: unknown, x: Info, outShape: number[], swap: BlockSwap): Info {
  const backend = backendArg as WasmBackend;
  const { outer, a: rows, mid, c: cols } = swap;
  const out = backend.makeOutput(outShape, x.dtype);
  const dst = backend.typedArrayFromHeap(out);
  const src = backend.typedArrayFromHeap(x);
  // element (o, r, m, c): src ((o·rows + r)·mid + m)·cols + c, dst ((o·cols + c)·mid + m)·rows + r
  const srcRow = mid * cols;
  const dstRow = mid * rows;
  for (let o = 0; o < outer; o++) {
    for (let m = 0; m < mid; m++) {
      const s0 = o * rows * srcRow + m * cols;
      const d0 = o * cols * dstRow + m * rows;
      for (let r0 = 0; r0 < rows; r0 += TILE) {
        const r1 = Math.min(rows, r0 + TILE);
        for (let c0 = 0; c0 < cols; c0 += TILE) {
          const c1 = Math.min(cols, c0 + TILE);
          if (rows >= cols) {
            for (let c = c0; c < c1; c++) {
              const d = d0 + c * dstRow;
              for (let r = r0; r < r1; r++) dst[d + r] = src[s0 + r * srcRow + c]!;
            }
          } else {
            for (let r = r0; r < r1; r++) {
              const s = s0 + r * srcRow;
              for (let c = c0; c < c1; c++) dst[d0 + c * dstRow + r] = src[s + c]!;
            }
          }
        }
      }
    }
  }
  return out;
}

/**
 * Tile by block copies: each input row once, then each repeat of a finished block as copyWithin
 * calls that double what is written. The stock kernel computes every output element's source index
 * (123 ms to tile a [1,1,1,32] vector to [64,28,28,32] in a batch norm's gradient; this: ~1 ms).
 */
export function tile(backendArg: unknown, x: Info, reps: readonly number[]): Info {
  const backend = backendArg as WasmBackend;
  const rank = x.shape.length;
  const out = backend.makeOutput(
    x.shape.map((d, i) => d * reps[i]!),
    x.dtype,
  );
  const o = backend.typedArrayFromHeap(out);
  const src = backend.typedArrayFromHeap(x);
  if (rank === 0) {
    o.set(src);
    return out;
  }
  const inStride = new Array<number>(rank).fill(1);
  const outStride = new Array<number>(rank).fill(1);
  for (let d = rank - 2; d >= 0; d--) {
    inStride[d] = inStride[d + 1]! * x.shape[d + 1]!;
    outStride[d] = outStride[d + 1]! * x.shape[d + 1]! * reps[d + 1]!;
  }
  const repeat = (at: number, length: number, times: number) => {
    const total = length * times;
    for (let filled = length; filled < total; ) {
      const n = Math.min(filled, total - filled);
      o.copyWithin(at + filled, at, at + n);
      filled += n;
    }
  };
  const fill = (d: number, from: number, at: number) => {
    const n = x.shape[d]!;
    if (d === rank - 1) o.set(src.subarray(from, from + n), at);
    else for (let i = 0; i < n; i++) fill(d + 1, from + i * inStride[d]!, at + i * outStride[d]!);
    repeat(at, n * outStride[d]!, reps[d]!);
  };
  if (o.length > 0) fill(0, 0, 0);
  return out;
}
