import * as tf from '@tensorflow/tfjs';
import { KernelCalls } from './kernel-calls.js';
import {
  conv2dBackpropFilter,
  conv2dBackpropInput,
  depthwiseBackpropFilter,
  depthwiseBackpropInput,
} from './conv-gradients.js';

const WASM = 'wasm';
const callsByBackend = new WeakMap<tf.KernelBackend, KernelCalls>();
let installed = false;

function calls(backendArg: unknown, originals: Record<string, tf.KernelFunc>): KernelCalls {
  const backend = backendArg as tf.KernelBackend;
  let k = callsByBackend.get(backend);
  if (!k) {
    k = new KernelCalls(WASM, backend, originals);
    callsByBackend.set(backend, k);
  }
  return k;
}

function lastTwoSwapped(rank: number): number[] {
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return perm;
}

function replace(kernelName: string, kernelFunc: tf.KernelFunc): void {
  const existing = tf.getKernel(kernelName, WASM);
  if (existing) tf.unregisterKernel(kernelName, WASM);
  tf.registerKernel({ ...existing, kernelName, backendName: WASM, kernelFunc });
}

/**
 * Makes the TF.js wasm backend able to train every zoo model, fast. tfjs-backend-wasm 4.22
 * lacks Conv2DBackpropFilter and both depthwise backprops, and its Conv2DBackpropInput and
 * transposed-operand MatMul are 20–40× slower than the same work as transpose + plain
 * matmul or as a forward conv (XNNPACK). Call before the wasm backend is first used, since
 * the engine runs kernel setup functions when the backend initialises.
 */
export function installWasmTrainingKernels(): void {
  if (installed) return;
  installed = true;
  const originals: Record<string, tf.KernelFunc> = {};
  for (const name of ['BatchMatMul', '_FusedMatMul']) {
    const original = tf.getKernel(name, WASM)!.kernelFunc;
    originals[name] = original;
    replace(name, (args) => {
      const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB) return original(args);
      const k = calls(args.backend, originals);
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const a2 = transposeA ? k.transpose(a, lastTwoSwapped(a.shape.length)) : a;
      const b2 = transposeB ? k.transpose(b, lastTwoSwapped(b.shape.length)) : b;
      const out = original({
        ...args,
        inputs: { ...args.inputs, a: a2, b: b2 },
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      });
      if (a2 !== a) k.free(a2);
      if (b2 !== b) k.free(b2);
      return out;
    });
  }
  replace('Conv2DBackpropFilter', ({ inputs, backend, attrs }) =>
    conv2dBackpropFilter(
      calls(backend, originals),
      inputs.x!,
      inputs.dy!,
      attrs as unknown as tf.Conv2DBackpropFilterAttrs,
    ),
  );
  replace('Conv2DBackpropInput', ({ inputs, backend, attrs }) =>
    conv2dBackpropInput(
      calls(backend, originals),
      inputs.dy!,
      inputs.filter!,
      attrs as unknown as tf.Conv2DBackpropInputAttrs,
    ),
  );
  replace('DepthwiseConv2dNativeBackpropFilter', ({ inputs, backend, attrs }) =>
    depthwiseBackpropFilter(
      calls(backend, originals),
      inputs.x!,
      inputs.dy!,
      attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs,
    ),
  );
  replace('DepthwiseConv2dNativeBackpropInput', ({ inputs, backend, attrs }) =>
    depthwiseBackpropInput(
      calls(backend, originals),
      inputs.dy!,
      inputs.filter!,
      attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs,
    ),
  );
}
