/**
 * The similarity L_F of feature-based distillation, L_F(Φ_s(f_s), f_t), on tensors of one
 * shape [B, ...]:
 * - `mse`:       mean (s − t)²                      (FitNets' L2 hint, as RepDistiller's MSELoss)
 * - `l1`:        mean |s − t|
 * - `smooth-l1`: mean Huber_1(s − t), Huber_1(d) = d²/2 if |d| < 1 else |d| − 1/2
 *                (PyTorch's SmoothL1Loss with β = 1; RKD's loss)
 * - `cosine`:    mean over samples of 1 − cos(s_b, t_b), each sample flattened
 * Means run over every element (batch included), so the value does not grow with B.
 */
import * as tf from '@tensorflow/tfjs';
import { flat, l2Normalize } from './common.js';

export const SIMILARITIES = ['mse', 'l1', 'smooth-l1', 'cosine'] as const;
export type Similarity = (typeof SIMILARITIES)[number];

/** Element-wise Huber with δ = 1: q²/2 + (|d| − q), q = min(|d|, 1). */
export function huber(d: tf.Tensor): tf.Tensor {
  const a = tf.abs(d);
  const q = tf.minimum(a, 1);
  return q.square().mul(0.5).add(a.sub(q));
}

/** L_F(s, t) as a scalar; s and t have the same shape. */
export function featureLoss(kind: Similarity, s: tf.Tensor, t: tf.Tensor): tf.Scalar {
  switch (kind) {
    case 'mse':
      return tf.squaredDifference(s, t).mean();
    case 'l1':
      return tf.abs(s.sub(t)).mean();
    case 'smooth-l1':
      return huber(s.sub(t)).mean();
    case 'cosine':
      return tf
        .sub(
          1,
          l2Normalize(flat(s))
            .mul(l2Normalize(flat(t)))
            .sum(1),
        )
        .mean();
  }
}
