/**
 * `ctkd` — Li, Li, Yang, Cheng, Yang et al., AAAI 2023, "Curriculum Temperature for Knowledge
 * Distillation" (global temperature).
 *
 *   τ  = τ_min + τ_range · sigmoid(GRL_λ(θ))                 one learnable temperature, θ₀ = 1
 *   kd = α · τ² · KL( softmax(z_t/τ) ‖ softmax(z_s/τ) )       `kd` at the learned τ
 *   ce = (1 − α) · CE( y, softmax(z_s) )
 *
 * The student minimises kd; θ maximises it: the gradient reversal layer GRL_λ (Ganin & Lempitsky
 * 2015) is the identity forward and multiplies θ's gradient by −λ. λ rises from 0 to λ_max on a
 * cosine over the first `rampEpochs` epochs, λ_e = λ_max · (1 − cos(π · min(e, K) / K)) / 2, so
 * the temperature turns adversarial gradually: the task goes from easy to hard as the student
 * learns. θ trains with the student's optimizer and is kept in checkpoints; λ follows from the
 * epoch, so a resumed run continues the curriculum where it stopped. Signs as in the paper (θ
 * ascends the loss). Defaults: the reference code's CIFAR-100 setting (τ in [1, 21], K = 10 epochs,
 * α = 0.9 with the label CE at 0.1, λ_max = 1).
 * When it helps: in place of `kd` when no temperature has been tuned — the paper reports
 * +0.3 to +0.5 pt over KD on CIFAR-100 pairs at no extra cost. Needs enough epochs for the
 * curriculum (K of them) to matter.
 * Loss names: `kd`, `ce`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { klDiv, labelCrossEntropy, responseTerm, weighted } from './common.js';

/** The options of `ctkd`: the one definition of their names, types, ranges and defaults. */
export const ctkdOptions = z.strictObject({
  /** The lowest temperature τ_min > 0. Default 1. */
  minTemperature: z.number().positive().default(1),
  /** τ_range > 0: τ lies in (τ_min, τ_min + τ_range). Default 20. */
  temperatureRange: z.number().positive().default(20),
  /** Weight α ∈ [0, 1] of the distillation part; the label CE gets 1 − α. Default 0.9. */
  alpha: z.number().min(0).max(1).default(0.9),
  /** λ_max ≥ 0, the strength of the reversed gradient once the curriculum is done. Default 1. */
  maxLambda: z.number().min(0).default(1),
  /** K: epochs over which λ rises from 0 to λ_max. Default 10. */
  rampEpochs: z.int().positive().default(10),
});
export type CtkdOptions = z.input<typeof ctkdOptions>;

let created = 0;

/** λ at the start of epoch `epoch` (0-based), see the formula above. */
export function ctkdLambda(epoch: number, rampEpochs: number, maxLambda: number): number {
  return (maxLambda * (1 - Math.cos((Math.PI * Math.min(epoch, rampEpochs)) / rampEpochs))) / 2;
}

export function ctkdTerm(options: CtkdOptions = {}): KnowledgeTerm {
  const o = parseOptions('knowledge term `ctkd`', ctkdOptions, options);
  const theta = tf.variable(tf.scalar(1), true, `ctkd_${created++}/theta`);
  let lambda = 0;
  const reversed = tf.customGrad((x) => ({
    value: (x as tf.Tensor).clone(),
    gradFunc: (dy: tf.Tensor) => dy.mul(-lambda),
  }));
  /** τ as a scalar tensor: the sigmoid keeps it in its range whatever θ becomes. */
  const temperature = () =>
    tf
      .sigmoid(reversed(theta) as tf.Scalar)
      .mul(o.temperatureRange)
      .add(o.minTemperature) as tf.Scalar;
  const base = responseTerm('ctkd', true, (s, y, t) =>
    weighted({
      kd: [
        o.alpha,
        () => {
          const tau = temperature();
          const soft = (z: tf.Tensor2D) => tf.logSoftmax(z.div<tf.Tensor2D>(tau));
          return klDiv(soft(t), soft(s)).mul<tf.Scalar>(tau.square());
        },
      ],
      ce: [1 - o.alpha, () => labelCrossEntropy(s, y)],
    }),
  );
  return {
    ...base,
    trainableVariables: () => [theta],
    onEpochBegin: (epoch) => {
      lambda = ctkdLambda(epoch, o.rampEpochs, o.maxLambda);
    },
    /** The current temperature (for logs and tests). */
    describeState: () => ({ temperature: tf.tidy(() => temperature().dataSync()[0]!), lambda }),
    dispose: () => theta.dispose(),
  };
}
