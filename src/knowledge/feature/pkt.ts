/**
 * `pkt` — Passalis & Tefas 2018, "Learning Deep Representations with Probabilistic
 * Knowledge Transfer".
 *
 *   K_ij   = ( cos(x_i, x_j) + 1 ) / 2                     cosine-similarity kernel in [0, 1]
 *   p_{j|i} = K_ij / Σ_k K_ik                               conditional probabilities, per row
 *   pkt    = β · (1/B²) Σ_i Σ_j p^t_{j|i} · log( (p^t_{j|i} + ε) / (p^s_{j|i} + ε) )
 *
 * for teacher and student features of one batch (flattened), ε = 1e-7. As the authors'
 * code (passalis/probabilistic_kt, also RepDistiller and torchdistill): the row sums keep
 * k = i, and the KL is averaged over all B² entries. The dimensions may differ (the kernel
 * is B×B): no adapter.
 * Options: `student`, `teacher` layer names, default `features` (the penultimate vector, as
 * the paper); `beta` β default 30000 (RepDistiller's CIFAR-100 weight, which makes up for
 * the 1/B² mean).
 * When it helps: teacher and student of different widths or kinds; it transfers the
 * neighbourhood structure of the feature space, not the features, so it also suits
 * metric-learning / retrieval students.
 * Loss name: `pkt`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { FEATURES, flat, l2Normalize, readPair, tapTerm } from './common.js';

/** The options of `pkt`: the one definition of their names, types, ranges and defaults. */
export const pktOptions = z.strictObject({
  /** Student layer. Default `features`. */
  student: z.string().min(1).default(FEATURES),
  /** Teacher layer. Default `features`. */
  teacher: z.string().min(1).default(FEATURES),
  /** Weight β ≥ 0. Default 30000. */
  beta: z.number().min(0).default(30000),
});
export type PktOptions = z.input<typeof pktOptions>;

const EPS = 1e-7;

/** Row-normalised cosine kernel (cos + 1)/2 of a [B, D] batch: p_{j|i}. */
function conditional(x: tf.Tensor2D): tf.Tensor2D {
  const u = l2Normalize(x);
  const k = tf.matMul(u, u, false, true).add(1).div(2);
  return k.div(k.sum(1, true));
}

export function pktTerm(options: PktOptions = {}): KnowledgeTerm {
  const key = 'pkt';
  const { student, teacher, beta } = parseOptions('knowledge term `pkt`', pktOptions, options);
  const pair = { student, teacher };
  return tapTerm(key, [pair], (inputs) => {
    const { s, t } = readPair(key, inputs, pair);
    const ps = conditional(flat(s));
    const pt = conditional(flat(t));
    const kl = pt.mul(tf.log(pt.add(EPS).div(ps.add(EPS)))).mean();
    return { pkt: kl.mul(beta) };
  });
}
