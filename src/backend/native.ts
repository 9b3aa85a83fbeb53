/**
 * The `native` TF.js backend: tfjs's CPU backend with its hot kernels replaced by an N-API
 * addon (OpenBLAS sgemm, im2col convolutions, vectorised element-wise loops, its own worker
 * threads) that works in place on the backend's TypedArrays. Every kernel it does not replace
 * is the cpu kernel, so results never depend on coverage.
 *
 * Entry point: `registerNativeBackend()` (idempotent, never throws). It registers the
 * backend under the name `native`; it does not make it the active backend. It also wraps
 * `AdamOptimizer.prototype.applyGradients` (one fused pass per variable) and the gradients of
 * FusedBatchNorm (two passes) and Mean (one pass); each takes its native path only while
 * `native` is the active backend and falls back to tfjs's own code otherwise. See native/README.md.
 */
import * as tf from '@tensorflow/tfjs';
import { errorLine } from '../errors.js';
import { loadAddon } from './native/addon.js';
import { type OpCodes, resolveOpCodes } from './native/op-codes.js';
import { NativeBackend } from './native/backend.js';
import { makeMatMulKernels } from './native/matmul.js';
import { makeConvKernels, makeReluPassingKernels } from './native/conv.js';
import { makeNativeCopyKernels } from './native/copy-store.js';
import { makeElementwiseKernels } from './native/elementwise.js';
import { nativeAdamUpdate } from './native/adam.js';
import { registerFusedAdam } from './fused-adam.js';
import { BN_GRAD_KERNEL, makeBatchNormGradKernel, patchBatchNormGradient } from './native/batchnorm-grad.js';
import { BROADCAST_DIV_KERNEL, makeBroadcastDivKernel, patchMeanGradient } from './native/mean-grad.js';
import { makeDropoutMaskKernel } from './native/dropout.js';
import { makeLabelCeKernel, makeSoftKlKernel } from './native/loss-kernels.js';
import { LABEL_CE_KERNEL, SOFT_KL_KERNEL } from './loss-kernels.js';
import { makeBiasReluGradKernel, makeReluGradKernel, patchReluGradient } from './native/relu-grad.js';
import {
  BATCH_NORM_TRAIN_GRAD_KERNEL,
  BATCH_NORM_TRAIN_KERNEL,
  BIAS_RELU_GRAD_KERNEL,
  BN_RELU_POOL_TRAIN_GRAD_KERNEL,
  BN_RELU_POOL_TRAIN_KERNEL,
  CONV2D_BACKPROP_INPUT_RELU_KERNEL,
  DROPOUT_MASK_KERNEL,
  MAX_POOL_RELU_GRAD_KERNEL,
  RELU_GRAD_KERNEL,
} from './fused-kernels.js';
import {
  makeBatchNormTrainGradKernel,
  makeBatchNormTrainKernel,
  makeBnReluPoolTrainGradKernel,
  makeBnReluPoolTrainKernel,
} from './native/batchnorm-train.js';
import type { KernelFn } from './native/util.js';

export const NATIVE_BACKEND_NAME = 'native';

/** What `distill doctor` shows about the native backend. */
export interface NativeBackendInfo {
  available: boolean;
  /** why it is not available (when `available` is false) */
  reason?: string;
  addonPath?: string;
  /** threads of the addon's workers (sgemm is split over them; OpenBLAS itself runs 1 thread) */
  threads?: number;
  blas?: string;
  /** OpenBLAS build string, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Haswell MAX_THREADS=64" */
  blasConfig?: string;
  blasCore?: string;
  /** instruction set the element-wise loops were compiled for: "avx2+fma" or "generic" */
  simd?: string;
  /** who runs sgemm's threads: "workers" (split over the addon's workers) or "openblas" */
  gemmThreads?: string;
  /** "avx512+openblas": products with B not transposed run the addon's AVX-512 kernel; else "openblas" */
  sgemm?: string;
  /** "winograd": 3×3 stride-1 convolutions with ≥ 16 channels in and out run Winograd F(4×4, 3×3) or F(2×2, 3×3); else "im2col" */
  conv3x3?: string;
  /** kernel names served natively (the rest are the cpu backend's) */
  kernels?: string[];
}

const fallbacks = new Map<string, number>();

/**
 * How often each natively served kernel fell back to the cpu kernel (an unsupported dtype,
 * layout or shape). For tests and profiling.
 */
export function nativeFallbackCounts(): Map<string, number> {
  return new Map(fallbacks);
}

let state:
  | { ok: true; backend?: NativeBackend; kernels: string[]; path: string }
  | { ok: false; reason: string }
  | undefined;

/**
 * Registers the `native` backend (priority below tfjs's defaults; select it with
 * `tf.setBackend('native')`). Idempotent; never throws.
 */
export function registerNativeBackend(): { ok: true } | { ok: false; reason: string } {
  if (state !== undefined) return state.ok ? { ok: true } : { ok: false, reason: state.reason };
  try {
    const loaded = loadAddon();
    if (!('addon' in loaded)) {
      state = { ok: false, reason: loaded.reason };
      return state;
    }
    const { addon, path } = loaded;
    const threads = Number(process.env.TFJS_DISTILL_THREADS);
    if (Number.isInteger(threads) && threads > 0) addon.setThreads(threads);
    if (process.env.TFJS_DISTILL_GEMM === 'openblas') addon.setGemmMode(1);
    const spin = Number(process.env.TFJS_DISTILL_SPIN_US);
    if (Number.isInteger(spin) && spin >= 0) addon.setSpinMicros(spin);

    let ops: OpCodes;
    try {
      if (typeof addon.opCodes !== 'function')
        throw new Error('the addon has no op tables (built before they existed)');
      ops = resolveOpCodes(addon.opCodes());
    } catch (e) {
      state = { ok: false, reason: `${(e as Error).message}; rebuild it: node scripts/build-native.mjs` };
      return state;
    }
    const cpuKernels = tf.getKernelsForBackend('cpu');
    if (cpuKernels.length === 0) {
      state = { ok: false, reason: 'the tfjs cpu backend has no registered kernels' };
      return state;
    }
    // cpu kernels as the native kernels' fallbacks, counted (see nativeFallbackCounts)
    const cpu = new Map<string, KernelFn>(
      cpuKernels.map((k) => {
        const f = k.kernelFunc as unknown as KernelFn;
        const counted: KernelFn = (args) => {
          fallbacks.set(k.kernelName, (fallbacks.get(k.kernelName) ?? 0) + 1);
          return f(args);
        };
        return [k.kernelName, counted];
      }),
    );

    // Kernels are built against the backend instance created by the factory below; the
    // registry needs them now, so they look the instance up at call time.
    let instance: NativeBackend | undefined;
    const native: Record<string, KernelFn> = {};
    const build = (b: NativeBackend) => ({
      ...makeMatMulKernels(b, cpu),
      ...makeConvKernels(b, cpu),
      ...makeElementwiseKernels(b, cpu),
      ...makeNativeCopyKernels(b, cpu),
    });
    const ok = tf.registerBackend(
      NATIVE_BACKEND_NAME,
      () => {
        instance = new NativeBackend(addon, ops);
        Object.assign(native, build(instance));
        if (state?.ok) state.backend = instance;
        return instance;
      },
      0,
    );
    if (!ok) {
      state = { ok: false, reason: `a backend named "${NATIVE_BACKEND_NAME}" is already registered` };
      return state;
    }
    // Names of the kernels we serve (computed once from a throwaway backend-less build).
    const names = Object.keys(build(new NativeBackend(addon, ops)));
    for (const k of cpuKernels) {
      if (names.includes(k.kernelName)) continue;
      tf.registerKernel({ ...k, backendName: NATIVE_BACKEND_NAME });
    }
    for (const name of names) {
      const cpuFn = cpu.get(name);
      const cpuConfig = cpuKernels.find((k) => k.kernelName === name);
      tf.registerKernel({
        kernelName: name,
        backendName: NATIVE_BACKEND_NAME,
        kernelFunc: ((args: Parameters<KernelFn>[0]) => {
          const fn = native[name];
          if (fn !== undefined && args.backend === instance) return fn(args);
          if (cpuFn !== undefined) return cpuFn(args);
          throw new Error(`native kernel ${name} called before the backend was created`);
        }) as unknown as tf.KernelFunc,
        ...(cpuConfig?.setupFunc ? { setupFunc: cpuConfig.setupFunc } : {}),
      });
    }
    // kernels of our own (no cpu twin) used by the wrapped gradients below
    const own: [string, (b: NativeBackend) => KernelFn][] = [
      [BN_GRAD_KERNEL, makeBatchNormGradKernel],
      [BROADCAST_DIV_KERNEL, makeBroadcastDivKernel],
      [SOFT_KL_KERNEL, makeSoftKlKernel],
      [LABEL_CE_KERNEL, makeLabelCeKernel],
      [BIAS_RELU_GRAD_KERNEL, makeBiasReluGradKernel],
      [RELU_GRAD_KERNEL, makeReluGradKernel],
      [BATCH_NORM_TRAIN_KERNEL, makeBatchNormTrainKernel],
      [BATCH_NORM_TRAIN_GRAD_KERNEL, makeBatchNormTrainGradKernel],
      [BN_RELU_POOL_TRAIN_KERNEL, makeBnReluPoolTrainKernel],
      [BN_RELU_POOL_TRAIN_GRAD_KERNEL, makeBnReluPoolTrainGradKernel],
      [DROPOUT_MASK_KERNEL, makeDropoutMaskKernel],
      [MAX_POOL_RELU_GRAD_KERNEL, (b) => makeReluPassingKernels(b)[MAX_POOL_RELU_GRAD_KERNEL]!],
      [CONV2D_BACKPROP_INPUT_RELU_KERNEL, (b) => makeReluPassingKernels(b)[CONV2D_BACKPROP_INPUT_RELU_KERNEL]!],
    ];
    for (const [name, make] of own) {
      const byInstance = new WeakMap<NativeBackend, KernelFn>();
      tf.registerKernel({
        kernelName: name,
        backendName: NATIVE_BACKEND_NAME,
        kernelFunc: ((args: Parameters<KernelFn>[0]) => {
          if (instance === undefined || args.backend !== instance) throw new Error(`${name} needs the native backend`);
          let fn = byInstance.get(instance);
          if (fn === undefined) {
            fn = make(instance);
            byInstance.set(instance, fn);
          }
          return fn(args);
        }) as unknown as tf.KernelFunc,
      });
    }
    registerFusedAdam(NATIVE_BACKEND_NAME, (w, g, m, v, step) =>
      nativeAdamUpdate(tf.backend() as NativeBackend, w, g, m, v, step),
    );
    patchBatchNormGradient(NATIVE_BACKEND_NAME);
    patchMeanGradient(NATIVE_BACKEND_NAME);
    patchReluGradient(NATIVE_BACKEND_NAME);
    state = { ok: true, kernels: names, path };
    return { ok: true };
  } catch (err) {
    state = {
      ok: false,
      reason: `native backend failed to register: ${errorLine(err)}`,
    };
    return state;
  }
}

/** Information for `distill doctor`; loads the addon if needed but does not register anything. */
export function nativeBackendInfo(): NativeBackendInfo {
  const loaded = loadAddon();
  if (!('addon' in loaded)) return { available: false, reason: loaded.reason };
  try {
    const i = loaded.addon.info();
    const kernels = state?.ok ? state.kernels : undefined;
    return {
      available: true,
      addonPath: loaded.path,
      threads: i.threads,
      blas: i.blas,
      blasConfig: i.blasConfig,
      blasCore: i.blasCore,
      simd: i.simd,
      gemmThreads: i.gemmThreads,
      sgemm: i.sgemm,
      conv3x3: i.conv3x3,
      ...(kernels ? { kernels: [...kernels] } : {}),
    };
  } catch (err) {
    return { available: false, reason: String((err as Error)?.message ?? err) };
  }
}

/** Sets the addon's thread count (sgemm split and element-wise loops). Returns the count in effect. */
export function setNativeThreads(n: number): number | null {
  const loaded = loadAddon();
  return 'addon' in loaded ? loaded.addon.setThreads(Math.max(1, Math.floor(n))) : null;
}

/** The live native backend instance, if it has been created (for stats and tests). */
export function nativeBackendInstance(): NativeBackend | undefined {
  return state?.ok ? state.backend : undefined;
}
