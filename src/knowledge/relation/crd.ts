/**
 * `crd` — Tian, Krishnan & Isola 2020, "Contrastive Representation Distillation".
 *
 * Embedding heads (linear + L2 norm, trained with the student; the teacher is frozen):
 *   v_s = normalise(W_s f_s + b_s),  v_t = normalise(W_t f_t + b_t)      ([B, featDim])
 * and a contrastive objective that pulls a sample's student and teacher embeddings
 * together and pushes other samples' apart:
 * - `mode: 'memory'` (the paper): NCE against K negatives from memory banks of every
 *   sample's past embeddings, updated with momentum; see `crd-memory.ts`. Needs each
 *   batch's dataset indices in the step inputs (`indices`), and `datasetSize` N.
 * - `mode: 'batch'` (default; needs no indices): the other B − 1 samples of the batch are
 *   the negatives, InfoNCE both ways, L_ij = v_s,i · v_t,j / τ:
 *     crd = β · [ CE(L, diag) + CE(Lᵀ, diag) ]        (CE: batch mean of −log softmax)
 * Options: `student`, `teacher` layer names, default `features` (the penultimate vector, as
 * the paper); `featDim` 128, `temperature` τ 0.07, `negatives` K 16384, `momentum` 0.5
 * (RepDistiller's nce_k, nce_t, nce_m); `beta` β 0.8 (RepDistiller's CRD weight);
 * `mode`, `datasetSize`; `seed` 0 for the heads and banks.
 * When it helps: it transfers the structure of the teacher's representation, with mutual-
 * information grounding; strongest across architectures and beside `kd` (CRD+KD).
 * Loss name: `crd`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { UserError } from '../../errors.js';
import { parseOptions } from '../../options.js';
import { denseLayer, type Adapter } from '../adapters.js';
import type { KnowledgeTerm, TermInputs } from '../types.js';
import { FEATURES, flat, l2Normalize, readPair, tapShape, tapTerm } from '../feature/common.js';
import { ContrastMemory } from './crd-memory.js';

/** The options of `crd`: the one definition of their names, types, ranges and defaults. */
export const crdOptions = z.strictObject({
  /** Student layer. Default `features`. */
  student: z.string().min(1).default(FEATURES),
  /** Teacher layer. Default `features`. */
  teacher: z.string().min(1).default(FEATURES),
  /** Embedding size. Default 128. */
  featDim: z.int().min(1).default(128),
  /** `batch` (default, in-batch negatives) or `memory` (the paper's memory bank; needs indices). */
  mode: z.enum(['batch', 'memory']).default('batch'),
  /** K, negatives per anchor in `memory` mode. Default 16384. */
  negatives: z.int().min(1).default(16384),
  /** τ > 0. Default 0.07. */
  temperature: z.number().positive().default(0.07),
  /** μ ∈ [0, 1] of the memory update. Default 0.5. */
  momentum: z.number().min(0).max(1).default(0.5),
  /** N, rows of the memory banks: the training set's size. Required in `memory` mode. */
  datasetSize: z.int().min(1).optional(),
  /** Weight β ≥ 0. Default 0.8. */
  beta: z.number().min(0).default(0.8),
  /** Seed of the heads' and memory banks' initializers. Default 0. */
  seed: z.int().min(0).default(0),
});
export type CrdOptions = z.input<typeof crdOptions>;

/** The step inputs CRD can use: `indices` are the batch's dataset rows (memory mode). */
export type CrdInputs = TermInputs & { indices?: Int32Array | tf.Tensor1D };

export interface CrdTerm extends KnowledgeTerm {
  /** The memory banks, in `memory` mode once prepared. */
  memory(): ContrastMemory | undefined;
  /** The memory's variables (`memory` mode), for checkpoints. */
  stateVariables(): tf.Variable[];
}

export function crdTerm(options: CrdOptions = {}): CrdTerm {
  const key = 'crd';
  const o = parseOptions('knowledge term `crd`', crdOptions, options);
  const pair = { student: o.student, teacher: o.teacher };
  const { featDim, mode, negatives, temperature: tau, momentum, beta, seed, datasetSize: size } = o;
  if (mode === 'memory' && size === undefined)
    throw new UserError(
      'knowledge term `crd`: mode `memory` needs option `datasetSize` (the number of training samples); or use mode `batch`',
    );
  let heads: [Adapter, Adapter] | undefined;
  let memory: ContrastMemory | undefined;

  const term = tapTerm(
    key,
    [pair],
    (inputs: CrdInputs) => {
      if (!heads) throw new Error('crd: call prepare(shapes) before compute (train() prepares terms)');
      const { s, t } = readPair(key, inputs, pair);
      const vs = l2Normalize(heads[0].apply(flat(s)) as tf.Tensor2D);
      const vt = l2Normalize(heads[1].apply(flat(t)) as tf.Tensor2D);
      if (mode === 'batch') {
        const logits = tf.matMul(vs, vt, false, true).div(tau) as tf.Tensor2D;
        const ce = (l: tf.Tensor2D) => tf.neg(tf.logSoftmax(l).mul(tf.eye(l.shape[0])).sum(1).mean());
        return { crd: ce(logits).add(ce(logits.transpose())).mul(beta) };
      }
      if (inputs.indices === undefined)
        throw new UserError(
          'knowledge term `crd`: mode `memory` needs the dataset indices of each batch (the trainer passes them); use mode `batch` when calling it directly',
        );
      const idx = inputs.indices instanceof tf.Tensor ? Int32Array.from(inputs.indices.dataSync()) : inputs.indices;
      const loss = memory!.loss(vs, vt, idx, negatives, tau);
      memory!.update(vs, vt, idx, momentum);
      return { crd: loss.mul(beta) };
    },
    {
      prepare: (shapes) => {
        if (heads) return;
        const dims = (side: 'student' | 'teacher') =>
          tapShape(key, shapes, side, pair[side]).reduce((a, b) => a * b, 1);
        heads = [
          denseLayer(dims('student'), featDim, seed, 'crd_student'),
          denseLayer(dims('teacher'), featDim, seed + 1, 'crd_teacher'),
        ];
        if (mode === 'memory') memory = new ContrastMemory(size!, featDim, seed);
      },
      variables: () => heads?.flatMap((h) => h.variables) ?? [],
      dispose: () => {
        heads?.forEach((h) => h.dispose());
        memory?.dispose();
        heads = undefined;
        memory = undefined;
      },
    },
  );
  // the memory banks change every step without gradients: a checkpoint keeps them (see checkpoint.ts)
  return { ...term, memory: () => memory, stateVariables: () => memory?.variables() ?? [] };
}
