/**
 * `simkd` — Chen, Mei, Zhang, Wang, Feng & Chen, "Knowledge Distillation with the Reused
 * Teacher Classifier", CVPR 2022.
 *
 *   f̂_s   = P(f_s)                        a projector onto the teacher's feature shape
 *   simkd = β · mean( (f̂_s − f_t)² )       the only loss: no labels, no soft targets
 *   ŷ     = C_t(f̂_s)                       at inference, the teacher's own classifier
 *
 * f_s, f_t: the `student` and `teacher` taps (default `features`, the zoo's penultimate vector).
 * P is the paper's projector with bottleneck `factor` (default 2): three layers to
 * C_t/factor, C_t/factor, C_t channels, each without bias and followed by batch norm and
 * ReLU; 1×1, 3×3, 1×1 convolutions on [H, W, C] maps (H, W as the teacher's), dense layers
 * on vectors. C_t is every teacher layer after `teacher` (its classifier), copied with its
 * weights and frozen. The student is rebuilt before training as backbone → P → C_t
 * (`reshapeStudent`): what is trained, exported and evaluated carries P and C_t, and the
 * report's parameters and latency count them (P is most of the extra size). Its own
 * classifier is dropped, so `simkd` alone is the paper's setting (a `ce` beside it trains
 * through C_t, frozen, and P). β default 1 (the paper's and mdistiller's weight).
 * Offline scheme, and a TF.js LayersModel teacher (the classifier is copied from it).
 * When it helps: a student that can match the teacher's features but not learn as good a
 * classifier; the paper closes most of the gap on CIFAR-100 and ImageNet. It costs P's
 * parameters and latency at inference, and ties the student to the teacher's feature size.
 * Loss name: `simkd`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { UserError } from '../../errors.js';
import { parseOptions } from '../../options.js';
import { BATCH_NORM } from '../../models/common.js';
import { fanIn, layerInit } from '../../models/init.js';
import type { KnowledgeTerm } from '../types.js';
import { FEATURES, readPair, tapTerm } from './common.js';

/** The options of `simkd`: the one definition of their names, types, ranges and defaults. */
export const simkdOptions = z.strictObject({
  /** Student layer fed to the projector. Default `features`. */
  student: z.string().min(1).default(FEATURES),
  /** Teacher layer whose output the projector matches; every layer after it is the reused classifier. Default `features`. */
  teacher: z.string().min(1).default(FEATURES),
  /** Bottleneck of the projector: its first two layers have C_t / factor channels. Default 2. */
  factor: z.int().min(1).default(2),
  /** Weight β ≥ 0. Default 1. */
  beta: z.number().min(0).default(1),
  /** Seed of the projector's initializers. Default 0. */
  seed: z.int().min(0).default(0),
});
export type SimkdOptions = z.input<typeof simkdOptions>;

/** The projector's output, as the student's tap. */
export const SIMKD_TAP = 'simkd_projected';

export function simkdTerm(options: SimkdOptions = {}): KnowledgeTerm {
  const { student, teacher, factor, beta, seed } = parseOptions('knowledge term `simkd`', simkdOptions, options);
  const fail = (text: string): never => {
    throw new UserError(`knowledge term \`simkd\`: ${text}`);
  };
  const pair = { student: SIMKD_TAP, teacher };
  const term = tapTerm('simkd', [pair], (inputs) => {
    const { s, t } = readPair('simkd', inputs, pair);
    return { simkd: tf.losses.meanSquaredError(t, s).mul(beta) as tf.Scalar };
  });
  return {
    ...term,
    prepare(shapes) {
      if (!shapes.student[SIMKD_TAP])
        fail('the student has no projector and teacher classifier yet; simkd runs in the offline scheme');
    },
    reshapeStudent(model, teacherLayersAfter) {
      if (!teacherLayersAfter)
        fail(
          "it reuses the teacher's classifier: give a TF.js LayersModel teacher (not ONNX, a graph model or a logits cache)",
        );
      const head = teacherLayersAfter!(teacher);
      const to = head.inputShape;
      let x = model.getLayer(student).output as tf.SymbolicTensor;
      const from = x.shape.slice(1) as number[];
      if (from.length !== to.length || (to.length === 3 && (from[0] !== to[0] || from[1] !== to[1])))
        fail(
          `the student's \`${student}\` [${from}] and the teacher's \`${teacher}\` [${to}] need the same rank and, for maps, the same height and width`,
        );
      const channels = to.at(-1)!;
      [1, 3, 1].forEach((kernel, i) => {
        const filters = i < 2 ? Math.max(1, Math.floor(channels / factor)) : channels;
        const name = `simkd_proj${i + 1}`;
        const { kernelInitializer } = layerInit('pytorch', fanIn(x, to.length === 3 ? kernel : 1), seed + i);
        const layer =
          to.length === 3
            ? tf.layers.conv2d({
                name,
                filters,
                kernelSize: kernel,
                padding: 'same',
                useBias: false,
                kernelInitializer,
              })
            : tf.layers.dense({ name, units: filters, useBias: false, kernelInitializer });
        x = layer.apply(x) as tf.SymbolicTensor;
        x = tf.layers.batchNormalization({ name: `${name}_bn`, ...BATCH_NORM }).apply(x) as tf.SymbolicTensor;
        x = tf.layers.reLU({ name: i < 2 ? `${name}_relu` : SIMKD_TAP }).apply(x) as tf.SymbolicTensor;
      });
      for (const { layer } of head.layers) x = layer.apply(x) as tf.SymbolicTensor;
      for (const { layer, weights } of head.layers) {
        layer.setWeights(weights);
        layer.trainable = false;
      }
      const reshaped = tf.model({ inputs: model.inputs, outputs: x, name: model.name });
      // the student's own classifier is not in the new graph
      for (const layer of model.layers) if (!reshaped.layers.includes(layer)) layer.dispose();
      return reshaped;
    },
  };
}
