/**
 * Training-mode batch norm (tfjs-layers' BatchNormalization with training: true) as two native
 * kernels. tfjs-layers computes tf.moments (Mean, SquaredDifference, Mean) then batchNormalization,
 * and differentiates through all of them: ~12 kernels per layer and step over the full activation.
 * Forward, three passes: the batch mean, the population variance about it (as tf.moments), then
 *   y = (x − μ)·γ/√(σ² + ε) + β.
 * Backward, two passes (μ and σ² depending on x), with s1 = Σdy, s2 = Σdy·(x − μ) over the N rows:
 *   dx = γ·rstd·(dy − s1/N − (x − μ)·rstd²·s2/N),  dγ = rstd·s2,  dβ = s1.
 */
import type { NativeBackend } from './backend.js';
import type { KernelArgs, KernelFn } from './util.js';

export function makeBatchNormTrainKernel(backend: NativeBackend): KernelFn {
  return (args: KernelArgs) => {
    const { x, gamma, beta } = args.inputs;
    const channels = x.shape[x.shape.length - 1]!;
    const y = backend.makeOutputF32(x.shape);
    const [mean, variance] = [0, 1].map(() => backend.makeOutputF32([channels], channels));
    const ok = backend.addon.batchNormTrain(
      backend.f32(x),
      channels,
      backend.f32(gamma),
      backend.f32(beta),
      Number(args.attrs?.epsilon),
      y.values,
      mean!.values,
      variance!.values,
    );
    if (!ok) throw new Error('native training batch norm: x is not rows of channels');
    return [y.info, mean!.info, variance!.info];
  };
}

export function makeBatchNormTrainGradKernel(backend: NativeBackend): KernelFn {
  return makeGradKernel(backend, false);
}

/** The two gradients: dx, dγ, dβ from dy (of the pooled output when `pooled`, its argmax attached to p). */
function makeGradKernel(backend: NativeBackend, pooled: boolean): KernelFn {
  return (args: KernelArgs) => {
    const { x, dy, mean, variance, gamma, p } = args.inputs;
    const channels = x.shape[x.shape.length - 1]!;
    const dx = backend.makeOutputF32(x.shape);
    const [dGamma, dBeta] = [0, 1].map(() => backend.makeOutputF32([channels], channels));
    const [xs, dys, means, variances, gammas, eps] = [
      backend.f32(x),
      backend.f32(dy),
      backend.f32(mean),
      backend.f32(variance),
      backend.f32(gamma),
      Number(args.attrs?.epsilon),
    ] as const;
    const outs = [dx.values, dGamma!.values, dBeta!.values] as const;
    let ok: boolean;
    if (pooled) {
      const argmax = backend.attachedBytes(p!.dataId);
      if (argmax === undefined) throw new Error('native batch norm → ReLU → max pool gradient: p has no argmax');
      const dims = Int32Array.from(x.shape);
      ok = backend.addon.bnReluPoolTrainGrad(xs, dys, argmax, dims, means, variances, gammas, eps, ...outs);
    } else ok = backend.addon.batchNormTrainGrad(xs, dys, channels, means, variances, gammas, eps, ...outs);
    if (!ok) throw new Error('native training batch-norm gradient: x is not rows of channels, or out of memory');
    return [dx.info, dGamma!.info, dBeta!.info];
  };
}

/**
 * Batch norm → ReLU → 2×2 max pool in training (BN_RELU_POOL_TRAIN_KERNEL): two passes over x, and
 * only the pooled output is written (the argmax rides on it, as a max pool's does). Its gradient:
 * the sums over the pooled positions (dz is zero elsewhere), then dx in one pass.
 */
export function makeBnReluPoolTrainKernel(backend: NativeBackend): KernelFn {
  return (args: KernelArgs) => {
    const { x, gamma, beta } = args.inputs;
    const [batch, height, width, channels] = x.shape as [number, number, number, number];
    const p = backend.makeOutputF32([batch, height / 2, width / 2, channels]);
    const [mean, variance] = [0, 1].map(() => backend.makeOutputF32([channels], channels));
    const argmax = backend.attachBytes(p.info.dataId, p.values.length);
    const ok = backend.addon.bnReluPoolTrain(
      backend.f32(x),
      Int32Array.from(x.shape),
      backend.f32(gamma),
      backend.f32(beta),
      Number(args.attrs?.epsilon),
      p.values,
      argmax,
      mean!.values,
      variance!.values,
    );
    if (!ok)
      throw new Error('native batch norm → ReLU → max pool: x is not [batch, even height, even width, channels]');
    return [p.info, mean!.info, variance!.info];
  };
}

export function makeBnReluPoolTrainGradKernel(backend: NativeBackend): KernelFn {
  return makeGradKernel(backend, true);
}
