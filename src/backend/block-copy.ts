/**
 * Copies between typed arrays by strides, for the data-movement kernels of the backends that keep
 * tensors in JavaScript-visible memory (native: Float32Arrays; wasm: views of the module's heap).
 */

/** Side of the square tiles a transpose is copied in (32 floats: two cache lines). */
const TILE = 32;

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** A block copy's geometry after merging: extents and source / destination strides per dim. */
export interface MergedBlock {
  n: number[];
  ss: number[];
  ds: number[];
}

/**
 * The geometry of copying a block of `shape` with strides sStr (source) and dStr (destination),
 * with dimensions of size 1 dropped and neighbours contiguous in both arrays merged, so that the
 * innermost run is as long as possible; null when the block is empty.
 */
export function mergeBlock(
  sStr: readonly number[],
  dStr: readonly number[],
  shape: readonly number[],
): MergedBlock | null {
  const n: number[] = [];
  const ss: number[] = [];
  const ds: number[] = [];
  for (let k = 0; k < shape.length; k++) {
    const len = shape[k]!;
    if (len === 0) return null;
    if (len === 1) continue;
    const last = n.length - 1;
    if (last >= 0 && ss[last] === sStr[k]! * len && ds[last] === dStr[k]! * len) {
      n[last]! *= len;
      ss[last] = sStr[k]!;
      ds[last] = dStr[k]!;
    } else {
      n.push(len);
      ss.push(sStr[k]!);
      ds.push(dStr[k]!);
    }
  }
  return { n, ss, ds };
}

/**
 * dst[dOff + Σ iₖ·dStrₖ] = src[sOff + Σ iₖ·sStrₖ] for every index i < shape, in JavaScript: each
 * innermost run is a TypedArray.set when it is contiguous in both arrays and long enough to pay
 * for the view it needs.
 */
export function copyBlock(
  src: Float32Array,
  sOff: number,
  sStr: readonly number[],
  dst: Float32Array,
  dOff: number,
  dStr: readonly number[],
  shape: readonly number[],
): void {
  const merged = mergeBlock(sStr, dStr, shape);
  if (merged === null) return;
  const { n, ss, ds } = merged;
  const rank = n.length;
  if (rank === 0) {
    dst[dOff] = src[sOff]!;
    return;
  }
  const len = n[rank - 1]!;
  const si = ss[rank - 1]!;
  const di = ds[rank - 1]!;
  // a transpose: the dimension contiguous in src is an outer one; copy in square tiles of it
  // and the innermost one, so that each tile's source lines are read whole while in cache
  const p = si === 1 ? -1 : ss.indexOf(1);
  const outer = p >= 0 ? [...Array(rank - 1).keys()].filter((k) => k !== p) : [...Array(rank - 1).keys()];
  const at = new Array<number>(rank).fill(0);
  const runs = outer.reduce((acc, k) => acc * n[k]!, 1);
  let s = sOff;
  let d = dOff;
  for (let r = 0; r < runs; r++) {
    if (p >= 0) {
      const rows = n[p]!;
      const dp = ds[p]!;
      for (let i0 = 0; i0 < rows; i0 += TILE) {
        const i1 = Math.min(rows, i0 + TILE);
        for (let j0 = 0; j0 < len; j0 += TILE) {
          const j1 = Math.min(len, j0 + TILE);
          for (let i = i0; i < i1; i++) {
            for (let j = j0, a = s + i + j0 * si, b = d + i * dp + j0 * di; j < j1; j++, a += si, b += di)
              dst[b] = src[a]!;
          }
        }
      }
    } else if (si === 1 && di === 1) {
      copyRun(src, s, dst, d, len);
    } else {
      for (let j = 0, a = s, b = d; j < len; j++, a += si, b += di) dst[b] = src[a]!;
    }
    // odometer over the outer dimensions
    for (let q = outer.length - 1; q >= 0; q--) {
      const k = outer[q]!;
      s += ss[k]!;
      d += ds[k]!;
      if (++at[k]! < n[k]!) break;
      at[k] = 0;
      s -= ss[k]! * n[k]!;
      d -= ds[k]! * n[k]!;
    }
  }
}

/**
 * dst[d … d + len) = src[s … s + len): a TypedArray.set when the run is long enough to pay for the
 * view it needs, else a loop.
 */
export function copyRun(src: Float32Array, s: number, dst: Float32Array, d: number, len: number): void {
  if (len >= 32) dst.set(src.subarray(s, s + len), d);
  else for (let j = 0; j < len; j++) dst[d + j] = src[s + j]!;
}

/**
 * dst[id] = Σ src rows r with ids[r] = id, for rows of `inner` values (gather's gradient); ids
 * outside [0, numSegments) add nothing, as tfjs-cpu's per-segment masks do.
 */
export function segmentSumRows(
  src: Float32Array,
  ids: Int32Array,
  inner: number,
  numSegments: number,
  dst: Float32Array,
): void {
  dst.fill(0);
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r]!;
    if (id < 0 || id >= numSegments) continue;
    for (let j = 0, a = r * inner, b = id * inner; j < inner; j++) dst[b + j]! += src[a + j]!;
  }
}
