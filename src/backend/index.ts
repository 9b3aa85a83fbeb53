import * as tf from '@tensorflow/tfjs';
import { errorLine, UserError } from '../errors.js';
import { registerNativeBackend } from './native.js';
import { fixCpuResizeGradient } from './resize-kernels.js';
import { installWasmTrainingKernels } from './wasm-training.js';
import { wasmThreadCount, wasmThreads, withWasmThreads } from './wasm-threads.js';

export type BackendName = 'native' | 'wasm' | 'cpu';
export const BACKENDS: readonly BackendName[] = ['native', 'wasm', 'cpu'];

export interface BackendAttempt {
  name: BackendName;
  ok: boolean;
  reason: string;
}

export interface BackendChoice {
  name: BackendName;
  /** Why this backend: the override that asked for it, or what failed before it. */
  reason: string;
  attempts: BackendAttempt[];
}

export interface UseBackendOptions {
  /** A backend to use instead of the fastest one (also `DISTILL_BACKEND`). */
  backend?: string;
}

const WHAT: Record<BackendName, string> = {
  native: 'OpenBLAS and C kernels through an N-API addon',
  wasm: 'WebAssembly (XNNPACK, SIMD) with training kernels',
  cpu: 'pure JavaScript',
};

async function tryBackend(name: BackendName): Promise<BackendAttempt> {
  try {
    if (name === 'native') {
      const registered = registerNativeBackend();
      if (!registered.ok) return { name, ok: false, reason: registered.reason };
    }
    if (name === 'wasm') {
      // Imported (and so registered with TF.js) only when asked for: importing this library leaves tf as it was.
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      installWasmTrainingKernels();
      const ok = await withWasmThreads(wasmThreadCount(), wasm.version_wasm, () => tf.setBackend(name));
      if (ok) return { name, ok, reason: `${WHAT[name]}, ${await wasmThreads()} thread(s)` };
      // the threaded build failed to start: the single-threaded one
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    }
    if (name === 'cpu') fixCpuResizeGradient();
    const ok = await tf.setBackend(name);
    return ok ? { name, ok, reason: WHAT[name] } : { name, ok, reason: `tf.setBackend('${name}') failed` };
  } catch (error) {
    return { name, ok: false, reason: errorLine(error) };
  }
}

/**
 * Selects the fastest backend that works (native > wasm > cpu), or the one asked for by
 * `options.backend` / env `DISTILL_BACKEND`, and says which and why.
 */
export async function useBestBackend(options: UseBackendOptions = {}): Promise<BackendChoice> {
  tf.enableProdMode();
  const requested = options.backend ?? process.env['DISTILL_BACKEND'];
  if (requested !== undefined && requested !== '' && requested !== 'auto') {
    if (!BACKENDS.includes(requested as BackendName)) {
      throw new UserError(`unknown backend \`${requested}\`; known: auto, ${BACKENDS.join(', ')}`);
    }
    const attempt = await tryBackend(requested as BackendName);
    if (!attempt.ok) {
      throw new UserError(`backend ${requested} is not available: ${attempt.reason}; use --backend auto`);
    }
    const source = options.backend !== undefined ? '--backend' : 'DISTILL_BACKEND';
    return { name: attempt.name, reason: `asked for by ${source}`, attempts: [attempt] };
  }
  const attempts: BackendAttempt[] = [];
  for (const name of BACKENDS) {
    const attempt = await tryBackend(name);
    attempts.push(attempt);
    if (attempt.ok) {
      const failed = attempts.filter((a) => !a.ok).map((a) => `${a.name}: ${a.reason}`);
      const reason =
        failed.length === 0 ? `fastest available (${attempt.reason})` : `fastest that works (${failed.join('; ')})`;
      return { name, reason, attempts };
    }
  }
  throw new Error(`no TF.js backend works: ${attempts.map((a) => `${a.name}: ${a.reason}`).join('; ')}`);
}
