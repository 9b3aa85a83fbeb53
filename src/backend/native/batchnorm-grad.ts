/**
 * Gradient of FusedBatchNorm in two native passes. tfjs's gradient is ~15 full-size
 * element-wise ops plus a Tile per batch-norm layer; with per-channel parameters (what
 * tf.layers.batchNormalization uses) the same five gradients are
 *   dx = dy·γ/√(σ²+ε),  dμ = -γ/√(σ²+ε)·Σdy,  dσ² = -½γ(σ²+ε)^-3/2·Σdy(x-μ),
 *   dγ = Σdy(x-μ)/√(σ²+ε),  dβ = Σdy     (Σ over every axis but the last).
 * The gradient registered for FusedBatchNorm is wrapped once; the native path runs only while
 * the active backend is `native` and the shapes are per-channel, otherwise tfjs's own runs.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBackend } from './backend.js';
import { wrapGradient, type KernelArgs, type KernelFn } from './util.js';

export const BN_GRAD_KERNEL = 'TfjsDistillBatchNormGrad';

export function makeBatchNormGradKernel(backend: NativeBackend): KernelFn {
  return (args: KernelArgs) => {
    const { x, dy, mean, variance, scale } = args.inputs;
    const eps = Number(args.attrs?.varianceEpsilon ?? 0.001);
    const channels = mean.shape[0];
    const dx = backend.makeOutputF32(x.shape);
    const parts = [0, 1, 2, 3].map(() => backend.makeOutputF32(mean.shape, channels));
    const ok = backend.addon.batchNormGrad(
      backend.f32(x),
      backend.f32(dy),
      channels,
      backend.f32(mean),
      backend.f32(variance),
      scale != null ? backend.f32(scale) : null,
      eps,
      dx.values,
      parts[0].values,
      parts[1].values,
      parts[2].values,
      parts[3].values,
    );
    if (!ok) throw new Error('native batch-norm gradient: x is not rows of channels');
    return [dx.info, ...parts.map((p) => p.info)];
  };
}

let patched = false;

export function patchBatchNormGradient(backendName: string): void {
  if (patched) return;
  patched = wrapGradient('FusedBatchNorm', backendName, (g, saved, attrs) => {
    const [x, mean, variance, scale] = saved;
    const channels = x?.shape[x.shape.length - 1];
    const perChannel = (t: tf.Tensor | undefined) =>
      t != null && t.dtype === 'float32' && t.rank === 1 && t.shape[0] === channels;
    if (
      x == null ||
      x.rank !== 4 ||
      x.dtype !== 'float32' ||
      g.dtype !== 'float32' ||
      !tf.util.arraysEqual(g.shape, x.shape) ||
      !perChannel(mean) ||
      !perChannel(variance) ||
      (scale != null && !perChannel(scale))
    ) {
      return undefined;
    }
    const inputs: tf.NamedTensorMap = { x, dy: g, mean: mean!, variance: variance! };
    if (scale != null) inputs.scale = scale;
    const [dx, dMean, dVariance, dScale, dOffset] = tf
      .engine()
      .runKernel(BN_GRAD_KERNEL, inputs, { varianceEpsilon: Number(attrs.varianceEpsilon ?? 0.001) }) as tf.Tensor[];
    return {
      x: () => tf.reshape(dx!, x.shape),
      mean: () => tf.reshape(dMean!, mean!.shape),
      variance: () => tf.reshape(dVariance!, variance!.shape),
      scale: () => tf.reshape(dScale!, mean!.shape),
      offset: () => tf.reshape(dOffset!, mean!.shape),
    };
  });
}
