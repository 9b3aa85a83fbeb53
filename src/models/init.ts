import * as tf from '@tensorflow/tfjs';

/**
 * How the zoo initialises kernels and biases.
 * - `pytorch` (the default): kernels and biases from U(−1/√fan_in, +1/√fan_in), PyTorch's
 *   default for nn.Linear / nn.Conv2d (kaiming-uniform with a = √5), fan_in = inputs per
 *   output (k·k·C_in for a conv, k·k for a depthwise conv).
 * - `glorot`: Keras' default, Glorot-uniform kernels U(±√(6/(fan_in+fan_out))) and zero biases.
 *
 * Why `pytorch`: on Fashion-MNIST the zoo's small CNN trained on labels was 0.8–1.5 points
 * below the same network in PyTorch until its init was changed, and deep mutual learning lost
 * 4 points to training alone instead of PyTorch's 1.6 (`npm run parity`; docs/PARITY.md).
 * Glorot's dense kernels start 2–2.5× wider (784→64: ±0.084 vs ±0.036; 64→10: ±0.285 vs
 * ±0.125), so the first logits are larger and dropout-noisy peers teach each other noise.
 */
export type InitScheme = 'pytorch' | 'glorot';

export const INIT_SCHEMES: readonly InitScheme[] = ['pytorch', 'glorot'];

/** Offset of the bias seeds from the kernel seeds, so a layer's bias never repeats a kernel's stream. */
const BIAS_SEED_OFFSET = 1_000_003;

type Initializer = ReturnType<typeof tf.initializers.zeros>;

export interface LayerInit {
  kernelInitializer: Initializer;
  biasInitializer: Initializer;
}

/** Kernel and bias initializers of one layer with `fanIn` inputs per output, seeded when `seed` is set. */
export function layerInit(scheme: InitScheme, fanIn: number, seed?: number): LayerInit {
  if (scheme === 'glorot') {
    return { kernelInitializer: tf.initializers.glorotUniform({ seed }), biasInitializer: tf.initializers.zeros() };
  }
  const limit = 1 / Math.sqrt(fanIn);
  return {
    kernelInitializer: tf.initializers.randomUniform({ minval: -limit, maxval: limit, seed }),
    biasInitializer: tf.initializers.randomUniform({
      minval: -limit,
      maxval: limit,
      seed: seed === undefined ? undefined : seed + BIAS_SEED_OFFSET,
    }),
  };
}

/** Inputs per output of a layer applied to `x`: its last axis × the kernel's spatial size. */
export function fanIn(x: tf.SymbolicTensor, kernelSize = 1, depthwise = false): number {
  const channels = x.shape[x.shape.length - 1] as number;
  return kernelSize * kernelSize * (depthwise ? 1 : channels);
}
