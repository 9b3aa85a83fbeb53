/**
 * ReLU backward passes as single native loops. tfjs computes a ReLU's gradient as Step and Mul
 * (two passes over the activation and a full-size mask tensor), and with a bias before it adds
 * a Sum: three passes.
 * - RELU_GRAD_KERNEL: dz = dy·[x > 0], for the Relu op (tf.layers.reLU and activation: 'relu'
 *   run unfused); the gradient registered for Relu is wrapped once and runs it on `native`.
 * - BIAS_RELU_GRAD_KERNEL: dz and Σ dz over every axis but the last, for the fused conv / matmul
 *   of training-layers.ts.
 * - Where a ReLU's output feeds a max pool (or the next conv), the ReLU's mask is applied inside
 *   that layer's backward instead (MAX_POOL_RELU_GRAD_KERNEL, CONV2D_BACKPROP_INPUT_RELU_KERNEL):
 *   one full-size pass fewer; the Relu's or fused conv's own backward then passes the gradient on.
 */
import * as tf from '@tensorflow/tfjs';
import { MAX_POOL_RELU_GRAD_KERNEL, RELU_GRAD_KERNEL, reluMaskedGradients, reluOutputs } from '../fused-kernels.js';
import type { NativeBackend } from './backend.js';
import { wrapGradient, type KernelArgs, type KernelFn } from './util.js';

export function makeReluGradKernel(backend: NativeBackend): KernelFn {
  return (args: KernelArgs) => {
    const { dy, x } = args.inputs;
    const dz = backend.makeOutputF32(x.shape);
    backend.addon.reluGrad(backend.f32(dy), backend.f32(x), dz.values);
    return dz.info;
  };
}

export function makeBiasReluGradKernel(backend: NativeBackend): KernelFn {
  return (args: KernelArgs) => {
    const { dy, y } = args.inputs;
    const channels = y.shape[y.shape.length - 1]!;
    const dz = backend.makeOutputF32(y.shape);
    const dBias = backend.makeOutputF32([channels], channels);
    const ok = backend.addon.biasReluGrad(backend.f32(dy), backend.f32(y), channels, dz.values, dBias.values);
    if (!ok) throw new Error('native bias-relu gradient: dy is not rows of channels');
    return [dz.info, dBias.info];
  };
}

let patched = false;

/**
 * The Relu gradient through RELU_GRAD_KERNEL, and the MaxPool gradient over a ReLU's output
 * through MAX_POOL_RELU_GRAD_KERNEL, whose dx the Relu's backward (or a fused relu conv's, in
 * training-layers.ts) then passes unchanged.
 */
export function patchReluGradient(backendName: string): void {
  if (patched) return;
  wrapGradient('MaxPool', backendName, (dy, saved, attrs) => {
    const [x, y] = saved;
    if (x == null || !reluOutputs.has(x.dataId) || x.dtype !== 'float32' || x.rank !== 4 || dy.dtype !== 'float32')
      return undefined;
    const inputs = { dy, input: x, ...(y ? { output: y } : {}) };
    return { x: () => tf.engine().runKernel(MAX_POOL_RELU_GRAD_KERNEL, inputs, attrs) as tf.Tensor };
  });
  patched = wrapGradient('Relu', backendName, (dy, saved) => {
    if (reluMaskedGradients.has(dy.dataId)) return { x: () => dy };
    const [x] = saved;
    if (x == null || x.dtype !== 'float32' || dy.dtype !== 'float32' || !tf.util.arraysEqual(dy.shape, x.shape))
      return undefined;
    return { x: () => tf.engine().runKernel(RELU_GRAD_KERNEL, { dy, x }) as tf.Tensor };
  });
}
