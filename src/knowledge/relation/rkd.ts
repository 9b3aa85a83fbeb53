/**
 * `rkd` — Park, Kim, Lu & Cho 2019, "Relational Knowledge Distillation".
 *
 * On embeddings x_1 … x_B of one batch (flattened):
 *   distance  ψ_D(i, j)    = ‖x_i − x_j‖₂ / μ,   μ = mean of the positive distances of the batch
 *   angle     ψ_A(i, j, k) = ⟨ e_ij, e_ik ⟩,     e_ij = (x_j − x_i) / ‖x_j − x_i‖₂   (angle at x_i)
 *   rkd-distance = w_D · mean over B² pairs of Huber(ψ_D^s − ψ_D^t)
 *   rkd-angle    = w_A · mean over B³ triplets of Huber(ψ_A^s − ψ_A^t)
 * Huber with δ = 1 (PyTorch smooth-L1). Defaults w_D = 25, w_A = 50: the paper's
 * classification setting (its metric-learning runs use 1 and 2), RepDistiller's defaults. Pairs with
 * identical embeddings (the diagonal) give 0 in both, as in the reference code.
 * The dimensions may differ (ψ is over samples): no adapter.
 * Options: `student`, `teacher` layer names, default `features` (the penultimate vector);
 * `logits` uses the logits. `distanceWeight` default 25, `angleWeight` default 50 (0 drops
 * that part).
 * When it helps: students of a different architecture than the teacher, metric learning,
 * and beside `kd` (the paper's best CIFAR results are KD + RKD). Cost O(B³·D) for angles.
 * Loss names: `rkd-distance`, `rkd-angle`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { FEATURES, flat, l2Normalize, readPair, tapTerm, weighted } from '../feature/common.js';
import { huber } from '../feature/similarity.js';

/** The options of `rkd`: the one definition of their names, types, ranges and defaults. */
export const rkdOptions = z.strictObject({
  /** Student layer (or `logits`). Default `features`. */
  student: z.string().min(1).default(FEATURES),
  /** Teacher layer (or `logits`). Default `features`. */
  teacher: z.string().min(1).default(FEATURES),
  /** w_D ≥ 0. Default 25. */
  distanceWeight: z.number().min(0).default(25),
  /** w_A ≥ 0. Default 50. */
  angleWeight: z.number().min(0).default(50),
});
export type RkdOptions = z.input<typeof rkdOptions>;

/** ψ_D: pairwise distances over the mean positive distance; 0 on the diagonal; gradient-safe. */
export function distancePotential(x: tf.Tensor2D): tf.Tensor2D {
  const sq = x.square().sum(1);
  const d2 = sq
    .expandDims(1)
    .add(sq.expandDims(0))
    .sub(tf.matMul(x, x, false, true).mul(2));
  const offDiagonal = tf.sub(1, tf.eye(x.shape[0]));
  const d = tf.sqrt(tf.maximum(d2, 1e-12)).mul(offDiagonal);
  const positive = tf.maximum(tf.step(d).sum(), 1); // step: 1 where d > 0, zero gradient
  return d.div(d.sum().div(positive)) as tf.Tensor2D;
}

/** ψ_A: [B, B, B], entry (i, j, k) the cosine of the angle at x_i between x_j and x_k. */
export function anglePotential(x: tf.Tensor2D): tf.Tensor3D {
  const e = l2Normalize(x.expandDims(0).sub(x.expandDims(1)) as tf.Tensor3D);
  return tf.matMul(e, e, false, true);
}

export function rkdTerm(options: RkdOptions = {}): KnowledgeTerm {
  const key = 'rkd';
  const o = parseOptions('knowledge term `rkd`', rkdOptions, options);
  const pair = { student: o.student, teacher: o.teacher };
  const [wd, wa] = [o.distanceWeight, o.angleWeight];
  return tapTerm(key, [pair], (inputs) => {
    const { s, t } = readPair(key, inputs, pair);
    const [xs, xt] = [flat(s), flat(t)];
    return weighted({
      'rkd-distance': [wd, () => huber(distancePotential(xs).sub(distancePotential(xt))).mean()],
      'rkd-angle': [wa, () => huber(anglePotential(xs).sub(anglePotential(xt))).mean()],
    });
  });
}
