/**
 * `mlkd` — Jin, Wang & Lin, "Multi-Level Logit Distillation", CVPR 2023.
 *
 * Each step sees the batch (weak view w) and its strong view s (`needs.views`: the trainer
 * appends the strongly augmented copy, `src/data/augment.ts`, and runs the teacher on both, so
 * this term never uses a teacher cache). With p^τ = softmax(z/τ) over the temperatures
 * 𝒯 = {T, 3, 5, 2, 6} (prediction augmentation):
 *   mlkd-ce = CE(z_s^w, y) + CE(z_s^s, y)
 *   mlkd-kd = Σ_τ τ² [ m · KL(p_t^{w,τ} ‖ p_s^{w,τ}) + KL(p_t^{s,τ} ‖ p_s^{s,τ}) ]      instance level
 *   mlkd-bc = Σ_τ m · ‖P_s P_sᵀ − P_t P_tᵀ‖²_F / B          batch level: B×B sample correlations, w view
 *   mlkd-cc = Σ_τ m_c · ‖P_sᵀ P_s − P_tᵀ P_t‖²_F / C        class level: C×C class correlations, w view
 * all times `weight`. m and m_c are as the authors' code computes them (mdistiller's MLKD.py): a
 * loss already averaged over the batch times the mean of the confidence mask, i.e. the share of
 * samples whose teacher confidence (max p_t^w) is at most the batch median, and the share of
 * classes whose summed p_t^w is at most the median: about ½, not a per-sample filter. Where that
 * code's strong-view sum takes the weak logits at τ = 2 and 6, the strong ones are used here.
 * Defaults: T = 4 and weight 1, the code's CIFAR-100 setting. Unlabeled rows add no CE.
 * When it helps: the paper's best logit-only results (ResNet32×4 → ResNet8×4 77.08 on CIFAR-100);
 * it costs a second student forward and the teacher on every step (twice the batch).
 * Loss names: `mlkd-ce`, `mlkd-kd`, `mlkd-bc`, `mlkd-cc`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { labelCrossEntropy, responseTerm, softKl } from './common.js';

/** The options of `mlkd`: the one definition of their names, types, ranges and defaults. */
export const mlkdOptions = z.strictObject({
  /** The base temperature T, first of the five. Default 4. */
  temperature: z.number().positive().default(4),
  /** Weight of the kd, bc and cc parts (the code's KD_WEIGHT). Default 1. */
  weight: z.number().min(0).default(1),
  /** Weight of the two cross-entropies (CE_WEIGHT). Default 1. */
  ceWeight: z.number().min(0).default(1),
});
export type MlkdOptions = z.input<typeof mlkdOptions>;

/** Share of the entries at most the median (numpy's percentile 50, linear interpolation). */
function shareAtMostMedian(values: tf.Tensor1D): tf.Scalar {
  const n = values.shape[0];
  const sorted = tf.topk(values, n).values.reverse();
  const [lo, hi] = [Math.floor((n - 1) / 2), Math.ceil((n - 1) / 2)];
  const median = sorted
    .gather([lo])
    .add(sorted.gather([hi]))
    .div(2);
  return values.lessEqual(median).toFloat().mean();
}

const gram = (p: tf.Tensor2D, byClass: boolean) =>
  byClass ? tf.matMul(p, p, true, false) : tf.matMul(p, p, false, true);

export function mlkdTerm(options: MlkdOptions = {}): KnowledgeTerm {
  const { temperature, weight, ceWeight } = parseOptions('knowledge term `mlkd`', mlkdOptions, options);
  const temperatures = [temperature, 3, 5, 2, 6];
  const term = responseTerm('mlkd', true, (s, y, t) => {
    const b = s.shape[0] / 2;
    const [sw, ss] = tf.split(s, 2) as [tf.Tensor2D, tf.Tensor2D];
    const [tw, ts] = tf.split(t, 2) as [tf.Tensor2D, tf.Tensor2D];
    const [yw, ys] = tf.split(y, 2) as [tf.Tensor1D, tf.Tensor1D];
    const pw = tf.softmax(tw);
    const m = shareAtMostMedian(pw.max(1));
    const mc = shareAtMostMedian(pw.sum(0));
    const kl = (zs: tf.Tensor2D, zt: tf.Tensor2D, tau: number) => softKl(zs, zt, tau).mul(tau * tau);
    const relation = (byClass: boolean, tau: number) => {
      const [ps, pt] = [tf.softmax(sw.div<tf.Tensor2D>(tau)), tf.softmax(tw.div<tf.Tensor2D>(tau))];
      return gram(ps, byClass)
        .sub(gram(pt, byClass))
        .square()
        .sum()
        .div(byClass ? s.shape[1] : b);
    };
    const sum = (f: (tau: number) => tf.Tensor) => tf.addN(temperatures.map(f)).mul(weight) as tf.Scalar;
    return {
      'mlkd-ce': labelCrossEntropy(sw, yw).add(labelCrossEntropy(ss, ys)).mul(ceWeight) as tf.Scalar,
      'mlkd-kd': sum((tau) =>
        kl(sw, tw, tau)
          .mul(m)
          .add(kl(ss, ts, tau)),
      ),
      'mlkd-bc': sum((tau) => relation(false, tau).mul(m)),
      'mlkd-cc': sum((tau) => relation(true, tau).mul(mc)),
    };
  });
  return { ...term, needs: { ...term.needs, views: 'weak+strong' } };
}
