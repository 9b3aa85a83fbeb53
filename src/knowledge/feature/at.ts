/**
 * `at` — Zagoruyko & Komodakis 2017, "Paying More Attention to Attention: Improving the
 * Performance of Convolutional Neural Networks via Attention Transfer" (activation-based AT).
 *
 *   Q(A)  = vec( (1/C) Σ_c |A_c|^p )                 spatial attention of a [H, W, C] map
 *   at    = β · Σ_j mean_{b,k} ( Q_s^j/‖Q_s^j‖₂ − Q_t^j/‖Q_t^j‖₂ )²
 *
 * over the layer pairs j. The paper writes β/2 · Σ_j ‖·‖_p with β = 10³ "divided by the
 * number of elements in the attention map and batch size"; the authors' code, RepDistiller
 * (-b 1000) and mdistiller (weight 1000) all use β · mean of squares as above, which we
 * follow. The channel count may differ (no adapter: Q has one channel); when H×W differ the
 * larger map is average-pooled to the smaller first, as RepDistiller does.
 * Options: `student`, `teacher`: a layer name or equal-length lists of [H, W, C] maps
 * (required; e.g. the cnn zoo's `block1_conv2_relu`, `block2_conv2_relu`); `p` default 2;
 * `beta` β default 1000.
 * When it helps: conv students of another width than the teacher; cheap (no parameters),
 * and it combines well with `kd`.
 * Loss name: `at`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { UserError } from '../../errors.js';
import { parseOptions } from '../../options.js';
import { resizeSpatial } from '../adapters.js';
import type { KnowledgeTerm } from '../types.js';
import { l2Normalize, readPair, tapShape, tapTerm, type TapPair } from './common.js';

/** A layer name, or a non-empty list of them (several layer pairs). */
const layers = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

/** The options of `at`: the one definition of their names, types, ranges and defaults. */
export const atOptions = z.strictObject({
  /**
   * Student layer(s) with [H, W, C] outputs, e.g. the cnn zoo's `block1_conv2_relu` (a list for
   * several layer pairs). Required.
   */
  student: layers,
  /** Teacher layer(s) with [H, W, C] outputs, one per student layer. Required. */
  teacher: layers,
  /** Exponent p > 0 of |A|^p. Default 2. */
  p: z.number().positive().default(2),
  /** Weight β ≥ 0. Default 1000. */
  beta: z.number().min(0).default(1000),
});
export type AtOptions = z.input<typeof atOptions>;

/** Shrinks the larger of two [B, H, W, C] maps to the other's H×W (average pooling). */
export function matchSpatial(s: tf.Tensor4D, t: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
  const h = Math.min(s.shape[1], t.shape[1]);
  const w = Math.min(s.shape[2], t.shape[2]);
  return [resizeSpatial(s, h, w), resizeSpatial(t, h, w)];
}

/** Rank-3 check of a pair's tap shapes (without batch), one line when wrong. */
export function checkMaps(key: string, pair: TapPair, s: readonly number[], t: readonly number[]): void {
  if (s.length !== 3 || t.length !== 3) {
    throw new UserError(
      `knowledge term \`${key}\` compares feature maps: student \`${pair.student}\` [${s.join(',')}] and teacher \`${pair.teacher}\` [${t.join(',')}] must both be [H,W,C]; tap conv layers`,
    );
  }
}

export function atTerm(options: AtOptions): KnowledgeTerm {
  const key = 'at';
  const { student, teacher, p, beta } = parseOptions('knowledge term `at`', atOptions, options);
  const list = (names: string | string[]) => (typeof names === 'string' ? [names] : names);
  const [students, teachers] = [list(student), list(teacher)];
  if (students.length !== teachers.length) {
    throw new UserError(
      `knowledge term \`at\`: ${students.length} student layers but ${teachers.length} teacher layers; give one teacher layer per student layer`,
    );
  }
  const pairs = students.map((s, i) => ({ student: s, teacher: teachers[i]! }));
  const attention = (a: tf.Tensor4D) => {
    const powered = p === 2 ? a.square() : tf.abs(a).pow(p);
    return l2Normalize(powered.mean(3).reshape([a.shape[0], -1]));
  };
  return tapTerm(
    key,
    pairs,
    (inputs) => {
      const losses = pairs.map((pair) => {
        const { s, t } = readPair(key, inputs, pair);
        checkMaps(key, pair, s.shape.slice(1), t.shape.slice(1));
        const [ms, mt] = matchSpatial(s as tf.Tensor4D, t as tf.Tensor4D);
        return tf.squaredDifference(attention(ms), attention(mt)).mean();
      });
      return { at: tf.addN(losses).mul(beta) };
    },
    {
      prepare: (shapes) =>
        pairs.forEach((pair) =>
          checkMaps(
            key,
            pair,
            tapShape(key, shapes, 'student', pair.student),
            tapShape(key, shapes, 'teacher', pair.teacher),
          ),
        ),
    },
  );
}
