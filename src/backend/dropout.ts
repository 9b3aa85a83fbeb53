/**
 * Dropout's mask while training (inverted dropout, Srivastava et al. 2014): y = x·m, m_i = 1/(1 − rate)
 * with probability 1 − rate, else 0, so that E[y] = x. tfjs draws the mask with tf.randomUniform:
 * seedrandom's alea, one JavaScript call per element, then Add, Floor and RealDiv passes, into new
 * arrays (whose page faults are slow on a VM): about half of the quickstart student's training
 * step on `native`. Here the project's sfc32 generator (src/data/rng.ts) fills the mask in one loop,
 * on `native` in C into a recycled buffer (DROPOUT_MASK_KERNEL), elsewhere in JavaScript: the same
 * mask on every backend. Its seed comes from Math.random, so a run seeded through Math.random stays
 * reproducible, or from the layer's own `seed` (then, as in tfjs, the same mask on every call).
 */
import * as tf from '@tensorflow/tfjs';
import { Rng, type RngState } from '../data/rng.js';
import { DROPOUT_MASK_KERNEL } from './fused-kernels.js';

/** What the mask is drawn from: keep where an sfc32 output ≥ threshold, and the kept elements' value. */
export function dropoutDraw(rate: number, seed: number): { threshold: number; scale: number; state: RngState } {
  return { threshold: rate * 2 ** 32, scale: Math.fround(1 / (1 - rate)), state: new Rng(seed).getState() };
}

/** The multiplier m of n elements for dropout at `rate` (0 < rate < 1), from `seed` (any safe integer). */
export function dropoutMultiplier(n: number, rate: number, seed: number): Float32Array {
  const { threshold, scale } = dropoutDraw(rate, seed);
  const m = new Float32Array(n);
  // the draws in m's own buffer, each read before its element is overwritten
  const u = new Rng(seed).fillUint32(new Uint32Array(m.buffer));
  for (let i = 0; i < n; i++) m[i] = u[i]! >= threshold ? scale : 0;
  return m;
}

/** The mask as a tensor of `shape` on the active backend. */
export function dropoutMask(shape: number[], rate: number, seed: number): tf.Tensor {
  if (tf.getKernel(DROPOUT_MASK_KERNEL, tf.getBackend()))
    return tf.engine().runKernel(DROPOUT_MASK_KERNEL, {}, { shape, rate, seed }) as tf.Tensor;
  return tf.tensor(dropoutMultiplier(tf.util.sizeFromShape(shape), rate, seed), shape, 'float32');
}

/** A seed for the mask from Math.random (seeded where the run seeds it). */
export function dropoutSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}
