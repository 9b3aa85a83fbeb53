/**
 * The backward of y = relu(z + bias) in one native pass: dz = dy·[y > 0] and the bias gradient
 * Σ dz over every axis but the last. tfjs computes them as Step, Mul and Sum: three passes over
 * the layer's output, one of them writing a full-size mask.
 */
import type { NativeBackend } from './backend.js';
import type { KernelArgs, KernelFn } from './util.js';

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
