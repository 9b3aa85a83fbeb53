/**
 * `dist` — DIST: Huang, You, Wang, Qian & Xu, "Knowledge Distillation from A Stronger Teacher",
 * NeurIPS 2022.
 *
 * With Y = softmax(Z/τ) over a batch (B rows, K classes) and ρ the Pearson correlation
 * (cosine of the mean-centred vectors):
 *
 *   inter = β · τ² · (1 − (1/B) Σ_i ρ(Y_s[i,:], Y_t[i,:]))     per sample: the ranking of its classes
 *   intra = γ · τ² · (1 − (1/K) Σ_k ρ(Y_s[:,k], Y_t[:,k]))     per class: how it spreads over the batch
 *
 * Matching correlations instead of KL asks only for the teacher's relative preferences (the
 * correlation ignores a shift and a scale of the predictions), which the paper argues suits
 * teachers much stronger than the student. Train it with the labels (`+ ce`), as the paper does.
 * Defaults are the paper's CIFAR-100 setting (τ = 4, β = γ = 2); its ImageNet one is τ = 1,
 * β = γ = 1. The intra part needs a batch of several rows (one row has no spread: ρ = 0).
 * When it helps: a large teacher–student gap, a teacher trained with strong recipes.
 * Loss names: `dist-inter`, `dist-intra`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { responseTerm, weighted } from './common.js';

/** The options of `dist`: the one definition of their names, types, ranges and defaults. */
export const distOptions = z.strictObject({
  /** Softmax temperature τ > 0. Default 4. */
  temperature: z.number().positive().default(4),
  /** Weight β ≥ 0 of the inter-class (per-sample) relation. Default 2. */
  beta: z.number().min(0).default(2),
  /** Weight γ ≥ 0 of the intra-class (per-class) relation. Default 2. */
  gamma: z.number().min(0).default(2),
});
export type DistOptions = z.input<typeof distOptions>;

/** As the reference code: ε in the cosine's denominator. */
const EPS = 1e-8;

/** Mean over rows of the Pearson correlation of `a`'s and `b`'s rows. */
function meanRowCorrelation(a: tf.Tensor2D, b: tf.Tensor2D): tf.Scalar {
  const ca = a.sub(a.mean(1, true));
  const cb = b.sub(b.mean(1, true));
  // ‖x‖ as sqrt(Σx² + tiny): finite gradients for an all-equal row (its centred vector is 0)
  const norm = (x: tf.Tensor) => x.square().sum(1).add(1e-20).sqrt();
  return ca
    .mul(cb)
    .sum(1)
    .div(norm(ca).mul(norm(cb)).add(EPS))
    .mean();
}

export function distTerm(options: DistOptions = {}): KnowledgeTerm {
  const { temperature: T, beta, gamma } = parseOptions('knowledge term `dist`', distOptions, options);
  return responseTerm('dist', true, (s, _y, t) => {
    const ys = tf.softmax(s.div<tf.Tensor2D>(T));
    const yt = tf.softmax(t.div<tf.Tensor2D>(T));
    return weighted({
      'dist-inter': [beta * T * T, () => tf.scalar(1).sub(meanRowCorrelation(ys, yt))],
      'dist-intra': [gamma * T * T, () => tf.scalar(1).sub(meanRowCorrelation(ys.transpose(), yt.transpose()))],
    });
  });
}
