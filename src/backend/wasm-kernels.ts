/**
 * Our own WebAssembly SIMD kernels (wasm/src/kernels.c) for the TF.js wasm backend, run on the
 * backend's own heap: the module imports the memory of tfjs-backend-wasm's module (shared in
 * its threaded build, plain otherwise), so the kernels read and write tensors where they are.
 */
import * as tf from '@tensorflow/tfjs';
import { adamScalars, type AdamScalars, type AdamStep } from './fused-adam.js';
import { PLAIN_MEMORY_KERNELS, SHARED_MEMORY_KERNELS } from './wasm-kernels-binary.js';
import { KernelPool, type KernelPart } from './wasm-kernel-pool.js';
import { wasmThreadCount } from './wasm-threads.js';

type Ptr = number;

interface KernelExports {
  adam(w: Ptr, g: Ptr, m: Ptr, v: Ptr, wo: Ptr, mo: Ptr, vo: Ptr, n: number, ...scalars: AdamScalars): void;
  add_into(y: Ptr, x: Ptr, n: number): void;
  conv2d_filter_grad_rows(m: number, co: number): number;
}

interface TensorData {
  memoryOffset: number;
  refCount: number;
}

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use. */
interface WasmBackendParts {
  wasm: {
    wasmMemory?: WebAssembly.Memory;
    asm?: { memory?: WebAssembly.Memory };
    _malloc(bytes: number): number;
    _free(ptr: number): void;
  };
  dataIdMap: { get(dataId: object): TensorData };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

/** The kernels over one backend's heap, its thread pool (threaded build), and their scratch memory. */
class WasmKernels {
  readonly pool: KernelPool | null;
  private readonly scratch: { block: number; ptr: number; bytes: number }[] = [];

  constructor(
    private readonly backend: WasmBackendParts,
    readonly exports: KernelExports,
    memory: WebAssembly.Memory,
    module: WebAssembly.Module,
    shared: boolean,
  ) {
    const workers = shared ? wasmThreadCount() - 1 : 0;
    this.pool = null;
    if (workers > 0) {
      const bytes = KernelPool.controlBytes(workers);
      const control = backend.wasm._malloc(bytes + 8);
      const aligned = Math.ceil(control / 8) * 8;
      new Uint8Array(memory.buffer, aligned, bytes).fill(0);
      this.pool = new KernelPool(memory, module, exports as unknown as Record<string, unknown>, workers, aligned);
    }
  }

  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  /** Runs the parts, one a thread (all here without a pool). */
  run(parts: KernelPart[]): void {
    if (this.pool) {
      this.pool.run(parts);
      return;
    }
    const kernels = this.exports as unknown as Record<string, (...a: number[]) => void>;
    for (const p of parts) kernels[p.name]!(...p.args);
  }

  /** Scratch buffer `slot` of at least `bytes` bytes (16-byte aligned), kept for later calls. */
  scratchBuffer(slot: number, bytes: number): Ptr {
    const s = this.scratch[slot];
    if (s && s.bytes >= bytes) return s.ptr;
    // free takes what malloc gave, not the aligned pointer inside it
    if (s) this.backend.wasm._free(s.block);
    const block = this.backend.wasm._malloc(bytes + 16);
    this.scratch[slot] = { block, ptr: Math.ceil(block / 16) * 16, bytes };
    return this.scratch[slot]!.ptr;
  }

  offset(t: tf.TensorInfo): Ptr {
    return this.backend.dataIdMap.get(t.dataId).memoryOffset;
  }
}

const instances = new WeakMap<object, WasmKernels | null>();

function decode(base64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** The kernels over `backend`'s heap, or null when its memory is not reachable (another build). */
export function wasmKernels(backendArg: unknown): WasmKernels | null {
  const backend = backendArg as WasmBackendParts;
  let k = instances.get(backend);
  if (k !== undefined) return k;
  const memory = backend.wasm.wasmMemory ?? backend.wasm.asm?.memory;
  k = null;
  if (memory instanceof WebAssembly.Memory) {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const module = new WebAssembly.Module(decode(shared ? SHARED_MEMORY_KERNELS : PLAIN_MEMORY_KERNELS));
    const exports = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
    k = new WasmKernels(backend, exports, memory, module, shared);
  }
  instances.set(backend, k);
  return k;
}

/** Whether the active wasm backend can run these kernels. */
export function wasmKernelsAvailable(backend: tf.KernelBackend): boolean {
  return wasmKernels(backend) !== null;
}

/**
 * The fused Adam update on the wasm heap (src/backend/fused-adam.ts). m and v are updated in
 * place when no other tensor shares their storage; w always gets a new tensor, since XNNPACK
 * caches its packing of a matmul's or conv's weights by tensor and would go on reading the old.
 */
export function wasmAdamUpdate(w: tf.Variable, g: tf.Tensor, m: tf.Variable, v: tf.Variable, a: AdamStep): void {
  const backend = tf.backend() as unknown as WasmBackendParts;
  const k = wasmKernels(backend)!.exports;
  const at = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId);
  const outputs = [w, m, v].map((t, i) =>
    i === 0 || at(t).refCount !== 1 ? backend.makeOutput(t.shape, 'float32') : null,
  );
  const [wo, mo, vo] = [w, m, v].map((t, i) => at(outputs[i] ?? t).memoryOffset);
  k.adam(
    at(w).memoryOffset,
    at(g).memoryOffset,
    at(m).memoryOffset,
    at(v).memoryOffset,
    wo!,
    mo!,
    vo!,
    w.size,
    ...adamScalars(a),
  );
  const engine = tf.engine();
  [w, m, v].forEach((t, i) => {
    const out = outputs[i];
    if (out) t.assign(engine.makeTensorFromTensorInfo(out, tf.backend()) as tf.Tensor);
  });
}

/** Splits [0, n) into at most `parts` ranges whose bounds are multiples of `unit` (but the last). */
function split(n: number, parts: number, unit = 1): [number, number][] {
  const chunks = Math.ceil(n / unit);
  const k = Math.max(1, Math.min(parts, chunks));
  return Array.from({ length: k }, (_, p) => [
    Math.min(n, Math.floor((chunks * p) / k) * unit),
    Math.min(n, Math.floor((chunks * (p + 1)) / k) * unit),
  ]);
}

/**
 * dW of a 2-D convolution (NHWC, any stride, dilation and padding) as im2col(x)ᵀ·dy, a block of
 * output positions at a time, the positions split over the threads (each part sums into its own
 * [KH·KW·C, CO], added up at the end). XNNPACK has no such product without packing an operand as
 * long as the batch's positions anew on every call. Null where it does not apply (CO not a
 * multiple of 8, no kernels).
 */
export function conv2dFilterGradByKernel(
  backendArg: unknown,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo | null {
  const k = wasmKernels(backendArg);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight: KH, filterWidth: KW } = info;
  if (!k || outChannels % 8 !== 0 || x.dtype !== 'float32' || dy.dtype !== 'float32') return null;
  const backend = backendArg as WasmBackendParts;
  const M = KH * KW * inChannels;
  const positions = batchSize * outHeight * outWidth;
  const ranges = split(positions, Math.min(k.threads, Math.floor(positions / 256)));
  const out = backend.makeOutput([KH, KW, inChannels, outChannels], 'float32');
  const rowsBytes = 4 * k.exports.conv2d_filter_grad_rows(M, outChannels);
  const sumBytes = 4 * M * outChannels;
  const geometry = [
    inHeight,
    inWidth,
    inChannels,
    outHeight,
    outWidth,
    outChannels,
    KH,
    KW,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    info.padInfo.top,
    info.padInfo.left,
  ];
  const sums = ranges.map((_, p) => (p === 0 ? k.offset(out) : k.scratchBuffer(2 * p + 1, sumBytes)));
  const rows = ranges.map((_, p) => k.scratchBuffer(2 * p, rowsBytes));
  const [xp, dyp] = [k.offset(x), k.offset(dy)];
  k.run(
    ranges.map(([p0, p1], p) => ({
      name: 'conv2d_filter_grad',
      args: [xp, dyp, sums[p]!, rows[p]!, p0, p1, ...geometry],
    })),
  );
  for (let p = 1; p < ranges.length; p++) k.exports.add_into(sums[0]!, sums[p]!, M * outChannels);
  return out;
}

/** dx of a max pool (wasm/src/kernels.c max_pool_grad), the batch split over the threads; null without kernels. */
export function maxPoolGradByKernel(
  backendArg: unknown,
  dy: tf.TensorInfo,
  x: tf.TensorInfo,
  attrs: tf.MaxPoolGradAttrs,
): tf.TensorInfo | null {
  const k = wasmKernels(backendArg);
  if (!k || x.dtype !== 'float32' || dy.dtype !== 'float32') return null;
  const info = tf.backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const out = (backendArg as WasmBackendParts).makeOutput(x.shape, 'float32');
  const geometry = [
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
  ];
  const [dyp, xp, dxp] = [k.offset(dy), k.offset(x), k.offset(out)];
  k.run(
    split(info.batchSize, k.threads).map(([b0, b1]) => ({
      name: 'max_pool_grad',
      args: [dyp, xp, dxp, b0, b1, ...geometry],
    })),
  );
  return out;
}

/** Σ over the leading axes, x as [rows, cols] into [cols] (kernels.c sum_rows), columns split over the threads. */
export function sumRowsByKernel(
  backendArg: unknown,
  x: tf.TensorInfo,
  rows: number,
  outShape: number[],
): tf.TensorInfo | null {
  const k = wasmKernels(backendArg);
  if (!k || x.dtype !== 'float32') return null;
  const out = (backendArg as WasmBackendParts).makeOutput(outShape, 'float32');
  const cols = tf.util.sizeFromShape(outShape);
  const [xp, op] = [k.offset(x), k.offset(out)];
  k.run(split(cols, k.threads, 16).map(([c0, c1]) => ({ name: 'sum_rows', args: [xp, op, rows, cols, c0, c1] })));
  return out;
}

/**
 * A 2-D product op(a)·op(b) (+ bias) (then ReLU) through our kernels, C split over the threads:
 * a·b (gemm_nn, by columns), aᵀ·b (gemm_tn_rows, a weight gradient, by rows) or a·bᵀ (gemm_nt, an
 * input gradient, by rows). XNNPACK packs its weights operand whenever the tensor is new, which in
 * training is every step, at 10–17 ns a float; these read both operands in place. Null where it
 * does not apply: no kernels, aᵀ·bᵀ, or a·b and aᵀ·b with N not a multiple of 8.
 */
export function matMulByKernel(
  backendArg: unknown,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  bias?: tf.TensorInfo,
  relu = false,
): tf.TensorInfo | null {
  const k = wasmKernels(backendArg);
  if (!k || a.shape.length !== 2 || b.shape.length !== 2 || (transposeA && transposeB)) return null;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || (bias && bias.dtype !== 'float32')) return null;
  const [ar, ac] = a.shape as [number, number];
  const [br, bc] = b.shape as [number, number];
  const [M, K, N] = transposeA ? [ac, ar, bc] : transposeB ? [ar, ac, br] : [ar, ac, bc];
  if (!transposeB && N % 8 !== 0) return null;
  if (bias && tf.util.sizeFromShape(bias.shape) !== N) return null;
  if ((transposeA || transposeB) && (bias || relu)) return null;
  const out = (backendArg as WasmBackendParts).makeOutput([M, N], 'float32');
  const [ap, bp, cp] = [k.offset(a), k.offset(b), k.offset(out)];
  const biasp = bias ? k.offset(bias) : 0;
  let parts: KernelPart[];
  if (!transposeA && !transposeB)
    parts = split(N, k.threads, 8).map(([j0, j1]) => ({
      name: 'gemm_nn',
      args: [M, K, ap, K, bp, N, cp, N, biasp, relu ? 1 : 0, j0, j1],
    }));
  else if (transposeA)
    parts = split(M, k.threads, 4).map(([i0, i1]) => ({
      name: 'gemm_tn_rows',
      args: [N, K, ap, M, bp, N, cp, N, i0, i1],
    }));
  else
    parts = split(M, k.threads, 2).map(([i0, i1]) => ({ name: 'gemm_nt', args: [N, K, ap, K, bp, K, cp, N, i0, i1] }));
  k.run(parts);
  return out;
}
