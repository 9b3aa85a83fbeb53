/**
 * `nst` — Huang & Wang 2017, "Like What You Like: Knowledge Distill via Neuron Selectivity
 * Transfer".
 *
 * Each channel's spatial map of a [H, W, C] activation is one sample f_c ∈ R^{HW},
 * normalised f̂_c = f_c / ‖f_c‖₂; with the polynomial kernel k(x, y) = (xᵀy)² (d = 2, c = 0):
 *
 *   MMD² = mean_{i,i'} k(ŝ_i, ŝ_i') + mean_{j,j'} k(t̂_j, t̂_j') − 2 · mean_{i,j} k(ŝ_i, t̂_j)
 *   nst  = β · mean over the batch of MMD²
 *
 * (i over the student's C_s channels, j over the teacher's C_t: the counts may differ, no
 * adapter). As RepDistiller, the larger H×W is average-pooled to the smaller first, and the
 * teacher–teacher part is kept so the value is the full MMD² (it has no gradient).
 * Options: `student`, `teacher`: [H, W, C] layer names (required, e.g. the cnn zoo's
 * `block2_conv2_relu`); `beta` β default 50 (RepDistiller's CIFAR-100 weight; the paper
 * writes λ/2 · MMD², here folded into β).
 * When it helps: matching *which* spatial patterns each channel selects when the widths
 * differ; a distribution match, softer than FitNets' point-wise one.
 * Loss name: `nst`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import type { KnowledgeTerm } from '../types.js';
import { checkMaps, matchSpatial } from './at.js';
import { l2Normalize, readPair, tapShape, tapTerm } from './common.js';

/** The options of `nst`: the one definition of their names, types, ranges and defaults. */
export const nstOptions = z.strictObject({
  /** Student layer with [H, W, C] output, e.g. the cnn zoo's `block2_conv2_relu`. Required. */
  student: z.string().min(1),
  /** Teacher layer with [H, W, C] output. Required. */
  teacher: z.string().min(1),
  /** Weight β ≥ 0. Default 50. */
  beta: z.number().min(0).default(50),
});
export type NstOptions = z.input<typeof nstOptions>;

/** [B, H, W, C] → [B, C, HW] with every channel's map of unit length. */
function channels(a: tf.Tensor4D): tf.Tensor3D {
  const [b, h, w, c] = a.shape;
  return l2Normalize(a.reshape([b, h * w, c]).transpose([0, 2, 1]) as tf.Tensor3D);
}

/** mean over [B, N, M] of (x_n · y_m)², batch mean included. */
const poly = (x: tf.Tensor3D, y: tf.Tensor3D) => tf.matMul(x, y, false, true).square().mean();

export function nstTerm(options: NstOptions): KnowledgeTerm {
  const key = 'nst';
  const { student, teacher, beta } = parseOptions('knowledge term `nst`', nstOptions, options);
  const pair = { student, teacher };
  return tapTerm(
    key,
    [pair],
    (inputs) => {
      const { s, t } = readPair(key, inputs, pair);
      checkMaps(key, pair, s.shape.slice(1), t.shape.slice(1));
      const [ms, mt] = matchSpatial(s as tf.Tensor4D, t as tf.Tensor4D);
      const [fs, ft] = [channels(ms), channels(mt)];
      const mmd = poly(fs, fs).add(poly(ft, ft)).sub(poly(fs, ft).mul(2));
      return { nst: mmd.mul(beta) as tf.Scalar };
    },
    {
      prepare: (shapes) =>
        checkMaps(
          key,
          pair,
          tapShape(key, shapes, 'student', pair.student),
          tapShape(key, shapes, 'teacher', pair.teacher),
        ),
    },
  );
}
