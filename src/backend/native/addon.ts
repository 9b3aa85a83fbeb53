/**
 * Loads the optional N-API addon built by `scripts/build-native.mjs`
 * (`native/build/Release/tfjs_distill_native.node`). Never throws: a missing or broken
 * addon is reported as a reason string.
 */
import type { AdamScalars } from '../fused-adam.js';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddonOpCodes } from './op-codes.js';
import { errorLine } from '../../errors.js';

/** Typed view of the functions the C addon exports (see native/src/addon.c). */
export interface NativeAddon {
  info(): {
    version: string;
    threads: number;
    blas: string;
    blasConfig: string;
    blasCore: string;
    blasThreads: number;
    simd: string;
    gemmThreads: string;
    /** "avx512+openblas" (the addon's AVX-512 kernel for products with B not transposed) or "openblas" */
    sgemm: string;
    /** "winograd" (3×3 stride-1 convolutions with ≥ 16 channels in and out) or "im2col" */
    conv3x3: string;
  };
  setThreads(n: number): number;
  setSpinMicros(us: number): void;
  setGemmPartsPerThread(n: number): void;
  /** 0: sgemm split over the addon's workers (default); 1: OpenBLAS's own threads for top-level products */
  setGemmMode(mode: number): void;
  /** 1: the addon's AVX-512 sgemm where it applies (if the CPU has AVX-512F); returns whether it is on */
  setAvx512(on: number): boolean;
  /** 1 (default): 3×3 stride-1 convolutions with ≥ 16 channels in and out by Winograd F(4×4, 3×3) or F(2×2, 3×3); 0: im2col */
  setWinograd(on: number): void;
  matmul(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: number,
    transB: number,
    strideA: number,
    strideB: number,
    bias?: Float32Array | null,
    act?: number,
    alpha?: number,
    prelu?: Float32Array | null,
  ): void;
  blasDirect(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    m: number,
    n: number,
    k: number,
    threads: number,
    transA?: number,
    transB?: number,
  ): void;
  /** The C op tables by name (native/src/ew.h, common.h, plan.h); see op-codes.ts. */
  opCodes(): AddonOpCodes;
  unary(op: number, x: Float32Array, y: Float32Array, alpha?: number, beta?: number): void;
  /** `geometry`: [d0..d3, a strides d0..d3, b strides d0..d3] of `binaryGeom` (stride 0 = broadcast). */
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array, geometry: Int32Array): void;
  reduce(op: number, x: Float32Array, out: Float32Array, outer: number, r: number, inner: number): void;
  argReduce(isMax: number, x: Float32Array, out: Int32Array, outer: number, r: number, inner: number): void;
  softmax(x: Float32Array, y: Float32Array, rows: number, cols: number): void;
  /** Batch-mean KL(softmax(t/T) ‖ softmax(s/T)) into loss[0], its gradient with respect to s into grad. */
  softKl(
    s: Float32Array,
    t: Float32Array,
    rows: number,
    cols: number,
    T: number,
    loss: Float32Array,
    grad: Float32Array,
  ): void;
  /**
   * Cross-entropy of s with int32 labels (targets (1 − smoothing)·onehot + smoothing/cols), the mean
   * over rows labeled ≥ 0, into loss[0]; its gradient with respect to s into grad.
   */
  labelCe(
    s: Float32Array,
    labels: Int32Array,
    rows: number,
    cols: number,
    smoothing: number,
    loss: Float32Array,
    grad: Float32Array,
  ): void;
  adam(
    w: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    wOut: Float32Array,
    mOut: Float32Array,
    vOut: Float32Array,
    ...scalars: AdamScalars
  ): void;
  addN(out: Float32Array, ...xs: Float32Array[]): void;
  batchNormGrad(
    x: Float32Array,
    dy: Float32Array,
    channels: number,
    mean: Float32Array,
    variance: Float32Array,
    scale: Float32Array | null,
    eps: number,
    dx: Float32Array,
    dMean: Float32Array,
    dVariance: Float32Array,
    dScale: Float32Array,
    dOffset: Float32Array,
  ): boolean;
  /** training-mode batch norm over rows of `channels`: y, and the batch mean and (population) variance */
  batchNormTrain(
    x: Float32Array,
    channels: number,
    gamma: Float32Array,
    beta: Float32Array,
    eps: number,
    y: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
  ): boolean;
  /** its gradient (mean and variance depending on x) */
  batchNormTrainGrad(
    x: Float32Array,
    dy: Float32Array,
    channels: number,
    mean: Float32Array,
    variance: Float32Array,
    gamma: Float32Array,
    eps: number,
    dx: Float32Array,
    dGamma: Float32Array,
    dBeta: Float32Array,
  ): boolean;
  /**
   * Training batch norm → ReLU → 2×2 stride-2 max pool of x ([B, H, W, channels], H and W even): the
   * pooled output p, its argmax as pool2d's, the batch mean and variance. False when out of memory.
   */
  bnReluPoolTrain(
    x: Float32Array,
    dims: Int32Array,
    gamma: Float32Array,
    beta: Float32Array,
    eps: number,
    p: Float32Array,
    argmax: Uint8Array,
    mean: Float32Array,
    variance: Float32Array,
  ): boolean;
  /** its gradient from the pooled output's dp and the forward's argmax */
  bnReluPoolTrainGrad(
    x: Float32Array,
    dp: Float32Array,
    argmax: Uint8Array,
    dims: Int32Array,
    mean: Float32Array,
    variance: Float32Array,
    gamma: Float32Array,
    eps: number,
    dx: Float32Array,
    dGamma: Float32Array,
    dBeta: Float32Array,
  ): boolean;
  /** dropout's multiplier into m: sfc32 from state (a, b, c, d), scale where an output is >= threshold, else 0 */
  dropoutMask(m: Float32Array, threshold: number, scale: number, a: number, b: number, c: number, d: number): void;
  /** dz = dy where x > 0, else 0 */
  reluGrad(dy: Float32Array, x: Float32Array, dz: Float32Array): void;
  /** dz = dy where y > 0, dBias = column sums of dz; false when dy is not rows of `channels` */
  biasReluGrad(dy: Float32Array, y: Float32Array, channels: number, dz: Float32Array, dBias: Float32Array): boolean;
  tile(x: Float32Array | Int32Array, out: Float32Array | Int32Array, shape: Int32Array, reps: Int32Array): void;
  /** dst[dstOffset + Σ iₖ·dStrₖ] = src[srcOffset + Σ iₖ·sStrₖ] for i < n; geometry [n…, sStr…, dStr…], rank ≤ 8. */
  copyStrided(src: Float32Array, srcOffset: number, dst: Float32Array, dstOffset: number, geometry: Int32Array): void;
  /** false when x is not rows of `channels` (the caller then uses the cpu kernel) */
  batchNorm(
    x: Float32Array,
    y: Float32Array,
    channels: number,
    mean: Float32Array,
    variance: Float32Array,
    scale: Float32Array | null,
    offset: Float32Array | null,
    eps: number,
  ): boolean;
  conv2d(
    geom: Int32Array,
    x: Float32Array,
    w: Float32Array,
    out: Float32Array,
    bias?: Float32Array | null,
    act?: number,
    alpha?: number,
    prelu?: Float32Array | null,
  ): void;
  /** reluY: the input was that ReLU output, dx passes the ReLU too; dbias gets Σ dx per channel. False when out of memory. */
  conv2dBackpropInput(
    geom: Int32Array,
    dy: Float32Array,
    w: Float32Array,
    dx: Float32Array,
    reluY?: Float32Array | null,
    dbias?: Float32Array | null,
  ): boolean;
  conv2dBackpropFilter(geom: Int32Array, x: Float32Array, dy: Float32Array, dw: Float32Array): void;
  depthwiseConv2d(
    geom: Int32Array,
    x: Float32Array,
    w: Float32Array,
    out: Float32Array,
    bias?: Float32Array | null,
    act?: number,
    alpha?: number,
    prelu?: Float32Array | null,
  ): void;
  depthwiseBackpropInput(geom: Int32Array, dy: Float32Array, w: Float32Array, dx: Float32Array): void;
  depthwiseBackpropFilter(geom: Int32Array, x: Float32Array, dy: Float32Array, dw: Float32Array): void;
  /** argmax (2×2 stride-2 max pooling): each output's window position, for maxPoolGrad; true when written. */
  pool2d(geom: Int32Array, isMax: number, x: Float32Array, out: Float32Array, argmax?: Uint8Array | null): boolean;
  /**
   * relu 1: x is a ReLU's output and dx passes that ReLU too; dbias gets Σ of what passed; argmax:
   * pool2d's (x is not read then). False when out of memory.
   */
  maxPoolGrad(
    geom: Int32Array,
    dy: Float32Array,
    x: Float32Array,
    dx: Float32Array,
    relu?: number,
    dbias?: Float32Array | null,
    argmax?: Uint8Array | null,
  ): boolean;
  avgPoolGrad(geom: Int32Array, dy: Float32Array, dx: Float32Array): void;
  /** A whole model's inference: `plan` is ops of 24 words (native/src/plan.h), `weights` the arrays they index. */
  runPlan(plan: Int32Array, weights: Float32Array[], x: Float32Array, out: Float32Array, batch: number): void;
}

const ADDON_RELATIVE = join('native', 'build', 'Release', 'tfjs_distill_native.node');

/** This CPU runs AVX2 and FMA (Linux: /proc/cpuinfo), for the prebuilt AVX2 addon. */
function hasAvx2Fma(): boolean {
  if (process.arch !== 'x64' || process.platform !== 'linux') return false;
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    return /\bavx2\b/.test(info) && /\bfma\b/.test(info);
  } catch {
    return false;
  }
}

/**
 * Where the addon is: $TFJS_DISTILL_NATIVE_ADDON; else one built here from native/ (tuned to this
 * CPU) in the first `native/build/...` above this file; else the package's prebuilt one for this
 * platform (`prebuilds/<platform>-<arch>/`, the AVX2 build when the CPU has AVX2 and FMA).
 */
export function findAddonPath(): string | null {
  const fromEnv = process.env.TFJS_DISTILL_NATIVE_ADDON;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null;
  const names = hasAvx2Fma()
    ? ['tfjs_distill_native.avx2.node', 'tfjs_distill_native.node']
    : ['tfjs_distill_native.node'];
  const prebuilt = join('prebuilds', `${process.platform}-${process.arch}`);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, ADDON_RELATIVE);
    if (existsSync(candidate)) return candidate;
    for (const name of names) if (existsSync(join(dir, prebuilt, name))) return join(dir, prebuilt, name);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return null;
}

/**
 * The OpenBLAS kernel set to request on AMD CPUs with AVX-512: Haswell's. On Zen 4 its kernels
 * took 5-7% less CPU time per KD step than the SkylakeX/Cooperlake ones OpenBLAS picks (measured
 * 2026-11-27); on Zen 5 the AVX-512 ones are 1.5x faster, but older OpenBLAS builds (Debian's
 * 0.3.21 among them) are reported to compute wrong results or crash there, and the machines this
 * project runs on set OPENBLAS_CORETYPE=Haswell for that reason. The addon's own AVX-512 sgemm
 * (native/src/sgemm512.c) takes the products where the width pays. Returns null to leave
 * OpenBLAS's own choice (not AMD, not Linux x64, no AVX-512, or OPENBLAS_CORETYPE is set).
 */
export function preferredCoreType(cpuinfo?: string): string | null {
  if (process.env.OPENBLAS_CORETYPE !== undefined || process.platform !== 'linux' || process.arch !== 'x64')
    return null;
  try {
    const info = cpuinfo ?? readFileSync('/proc/cpuinfo', 'utf8');
    const head = info.slice(0, info.indexOf('\n\n') > 0 ? info.indexOf('\n\n') : info.length);
    if (!/vendor_id\s*:\s*AuthenticAMD/.test(head)) return null;
    if (!/\bavx512f\b/.test(head) || !/\bavx2\b/.test(head) || !/\bfma\b/.test(head)) return null;
    return 'Haswell';
  } catch {
    return null;
  }
}

let cached: { addon: NativeAddon; path: string } | { reason: string } | undefined;

/** Loads the addon once; returns it or why it could not be loaded. */
export function loadAddon(): { addon: NativeAddon; path: string } | { reason: string } {
  if (cached) return cached;
  const path = findAddonPath();
  if (!path) {
    cached = {
      reason: `no native addon for ${process.platform}-${process.arch} (none prebuilt, none built here); to build one: apt-get install g++ make libopenblas-dev, then node ${join('node_modules', 'tfjs-distill', 'scripts', 'build-native.mjs')} (in this repository: node scripts/build-native.mjs)`,
    };
    return cached;
  }
  try {
    // One OpenBLAS thread: the addon splits sgemm over its own workers (no oversubscription).
    // OpenBLAS reads this when the library loads; it is unset again so that child
    // processes are not affected.
    const setEnv = process.env.OPENBLAS_NUM_THREADS === undefined;
    if (setEnv) process.env.OPENBLAS_NUM_THREADS = '1';
    const coreType = preferredCoreType();
    if (coreType !== null) process.env.OPENBLAS_CORETYPE = coreType;
    let addon: NativeAddon;
    try {
      addon = createRequire(import.meta.url)(path) as NativeAddon;
    } finally {
      if (setEnv) delete process.env.OPENBLAS_NUM_THREADS;
      if (coreType !== null) delete process.env.OPENBLAS_CORETYPE;
    }
    if (typeof addon?.matmul !== 'function' || typeof addon?.info !== 'function') {
      cached = { reason: `native addon at ${path} is not a tfjs-distill addon` };
    } else {
      cached = { addon, path };
    }
  } catch (err) {
    const message = errorLine(err);
    cached = {
      reason: /libopenblas/.test(message)
        ? `native addon ${path} needs OpenBLAS (${message}); install it: apt-get install libopenblas0`
        : `native addon failed to load: ${message}`,
    };
  }
  return cached;
}
