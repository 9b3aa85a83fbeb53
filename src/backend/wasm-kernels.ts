/**
 * Our own WebAssembly SIMD kernels (wasm/src/kernels.c) for the TF.js wasm backend, run on the
 * backend's own heap: the module imports the memory of tfjs-backend-wasm's module (shared in
 * its threaded build, plain otherwise), so the kernels read and write tensors where they are.
 */
import * as tf from '@tensorflow/tfjs';
import type { AdamStep } from './fused-adam.js';
import { PLAIN_MEMORY_KERNELS, SHARED_MEMORY_KERNELS } from './wasm-kernels-binary.js';

interface KernelExports {
  adam(
    w: number,
    g: number,
    m: number,
    v: number,
    wo: number,
    mo: number,
    vo: number,
    n: number,
    b1: number,
    ob1: number,
    b2: number,
    ob2: number,
    nlr: number,
    eps: number,
    c1: number,
    c2: number,
  ): void;
}

interface TensorData {
  memoryOffset: number;
  refCount: number;
}

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use. */
interface WasmBackendParts {
  wasm: { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  dataIdMap: { get(dataId: object): TensorData };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

const instances = new WeakMap<object, KernelExports | null>();

function decode(base64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** The kernels over `backend`'s heap, or null when its memory is not reachable (another build). */
function kernelsOf(backend: WasmBackendParts): KernelExports | null {
  let k = instances.get(backend);
  if (k !== undefined) return k;
  const memory = backend.wasm.wasmMemory ?? backend.wasm.asm?.memory;
  k = null;
  if (memory instanceof WebAssembly.Memory) {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const module = new WebAssembly.Module(decode(shared ? SHARED_MEMORY_KERNELS : PLAIN_MEMORY_KERNELS));
    k = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
  }
  instances.set(backend, k);
  return k;
}

/** Whether the active wasm backend can run these kernels. */
export function wasmKernelsAvailable(backend: tf.KernelBackend): boolean {
  return kernelsOf(backend as unknown as WasmBackendParts) !== null;
}

/**
 * The fused Adam update on the wasm heap (src/backend/fused-adam.ts). m and v are updated in
 * place when no other tensor shares their storage; w always gets a new tensor, since XNNPACK
 * caches its packing of a matmul's or conv's weights by tensor and would go on reading the old.
 */
export function wasmAdamUpdate(w: tf.Variable, g: tf.Tensor, m: tf.Variable, v: tf.Variable, a: AdamStep): void {
  const backend = tf.backend() as unknown as WasmBackendParts;
  const k = kernelsOf(backend)!;
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
    a.beta1,
    a.oneMinusBeta1,
    a.beta2,
    a.oneMinusBeta2,
    a.negLr,
    a.epsilon,
    a.c1,
    a.c2,
  );
  const engine = tf.engine();
  [w, m, v].forEach((t, i) => {
    const out = outputs[i];
    if (out) t.assign(engine.makeTensorFromTensorInfo(out, tf.backend()) as tf.Tensor);
  });
}
