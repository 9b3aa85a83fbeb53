/**
 * `pskd` — Kim, Ji, Yoon, Hwang, ICCV 2021, "Self-Knowledge Distillation with Progressive
 * Refinement of Targets" (PS-KD).
 *
 *   α_e  = α_T · min(e + 1, K) / K                     e: the epoch (0-based), K: `rampEpochs`
 *   loss = CE( (1 − α_e) · y + α_e · softmax(z_t),  softmax(z_s) )
 *        = (1 − α_e) · CE(y, softmax(z_s))  +  α_e · (1/B) Σ_i −Σ_k softmax(z_t)_ik · log softmax(z_s)_ik
 *
 * The target moves from the label towards the teacher's prediction as training goes on; the
 * teacher is the model itself one epoch earlier (the `previous-epoch` scheme), at temperature 1.
 * (The paper keeps each sample's prediction from when it was last seen; here the snapshot taken
 * at the start of the epoch predicts the batch again: the same model, without its last epoch's
 * in-epoch updates.)
 * The paper sets K to the run's epochs (α reaches α_T in the last one) and α_T = 0.8. Logged
 * as `pskd` (the soft part, α_e-weighted) and `ce` (the label part, (1 − α_e)-weighted); α_e is
 * in each epoch's term state. With another teacher it is a label/prediction mix with a schedule.
 * When it helps: self-distillation without a teacher, in place of a constant α — a soft target
 * early in training is the model's own noisy guess, so its weight grows as the guesses improve
 * (the paper reports better accuracy and calibration than label smoothing on CIFAR-100/ImageNet).
 */
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { labelCrossEntropy, logProbs, responseTerm, softCrossEntropy, weighted } from './common.js';

/** The options of `pskd`: the one definition of their names, types, ranges and defaults. */
export const pskdOptions = z.strictObject({
  /** α_T ∈ [0, 1]: the teacher's share of the target once the ramp is done. Default 0.8 (the paper's). */
  alpha: z.number().min(0).max(1).default(0.8),
  /** K: epochs over which α rises linearly to α_T (the paper: all of the run's epochs). Default 10. */
  rampEpochs: z.int().positive().default(10),
});
export type PskdOptions = z.input<typeof pskdOptions>;

/** α_e at the start of epoch `epoch` (0-based), see the formula above. */
export function pskdAlpha(epoch: number, rampEpochs: number, alpha: number): number {
  return (alpha * Math.min(epoch + 1, rampEpochs)) / rampEpochs;
}

export function pskdTerm(options: PskdOptions = {}): KnowledgeTerm {
  const o = parseOptions('knowledge term `pskd`', pskdOptions, options);
  let alpha = pskdAlpha(0, o.rampEpochs, o.alpha);
  const base = responseTerm('pskd', true, (s, y, t) =>
    weighted({
      pskd: [alpha, () => softCrossEntropy(logProbs(t), logProbs(s))],
      ce: [1 - alpha, () => labelCrossEntropy(s, y)],
    }),
  );
  return {
    ...base,
    onEpochBegin: (epoch) => {
      alpha = pskdAlpha(epoch, o.rampEpochs, o.alpha);
    },
    describeState: () => ({ alpha }),
  };
}
