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
import { UserError } from '../../errors.js';
import { denseLayer, type Adapter } from '../adapters.js';
import type { KnowledgeTerm, TermInputs } from '../types.js';
import { checkKeys, enumOption, FEATURES, flat, intOption, l2Normalize, layerOption, numberOption, readPair, tapShape, tapTerm } from '../feature/common.js';
import { ContrastMemory } from './crd-memory.js';

export interface CrdOptions {
  student?: string;
  teacher?: string;
  /** Embedding size. Default 128. */
  featDim?: number;
  /** `batch` (default, in-batch negatives) or `memory` (the paper's memory bank; needs indices). */
  mode?: 'batch' | 'memory';
  /** K, negatives per anchor in `memory` mode. Default 16384. */
  negatives?: number;
  /** τ > 0. Default 0.07. */
  temperature?: number;
  /** μ ∈ [0, 1] of the memory update. Default 0.5. */
  momentum?: number;
  /** N, rows of the memory banks: the training set's size. Required in `memory` mode. */
  datasetSize?: number;
  /** Weight β ≥ 0. Default 0.8. */
  beta?: number;
  seed?: number;
}

/** The step inputs CRD can use: `indices` are the batch's dataset rows (memory mode). */
export type CrdInputs = TermInputs & { indices?: Int32Array | tf.Tensor1D };

export interface CrdTerm extends KnowledgeTerm {
  /** The memory banks, in `memory` mode once prepared. */
  memory(): ContrastMemory | undefined;
  /** The memory's variables (`memory` mode), for checkpoints. */
  stateVariables(): tf.Variable[];
}

export function crdTerm(options: CrdOptions = {}): CrdTerm {
  const o = options as Record<string, unknown>;
  const key = 'crd';
  checkKeys(key, o, ['student', 'teacher', 'featDim', 'mode', 'negatives', 'temperature', 'momentum', 'datasetSize', 'beta', 'seed']);
  const pair = { student: layerOption(key, o, 'student', FEATURES), teacher: layerOption(key, o, 'teacher', FEATURES) };
  const featDim = intOption(key, o, 'featDim', 128);
  const mode = enumOption(key, o, 'mode', ['batch', 'memory'] as const, 'batch');
  const negatives = intOption(key, o, 'negatives', 16384);
  const tau = numberOption(key, o, 'temperature', 0.07, 'positive');
  const momentum = numberOption(key, o, 'momentum', 0.5, 'unit');
  const beta = numberOption(key, o, 'beta', 0.8, 'nonNegative');
  const seed = intOption(key, o, 'seed', 0, 0);
  const size = o['datasetSize'] === undefined ? undefined : intOption(key, o, 'datasetSize', 1);
  if (mode === 'memory' && size === undefined) throw new UserError('knowledge term `crd`: mode `memory` needs option `datasetSize` (the number of training samples); or use mode `batch`');
  let heads: [Adapter, Adapter] | undefined;
  let memory: ContrastMemory | undefined;

  const term = tapTerm(key, [pair], (inputs: CrdInputs) => {
    if (!heads) throw new Error('crd: call prepare(shapes) before compute (train() prepares terms)');
    const { s, t } = readPair(key, inputs, pair);
    const vs = l2Normalize(heads[0].apply(flat(s)) as tf.Tensor2D);
    const vt = l2Normalize(heads[1].apply(flat(t)) as tf.Tensor2D);
    if (mode === 'batch') {
      const logits = tf.matMul(vs, vt, false, true).div(tau) as tf.Tensor2D;
      const ce = (l: tf.Tensor2D) => tf.neg(tf.logSoftmax(l).mul(tf.eye(l.shape[0])).sum(1).mean());
      return { crd: ce(logits).add(ce(logits.transpose())).mul(beta) };
    }
    if (inputs.indices === undefined) throw new UserError('knowledge term `crd`: mode `memory` needs the dataset indices of each batch (the trainer passes them); use mode `batch` when calling it directly');
    const idx = inputs.indices instanceof tf.Tensor ? Int32Array.from(inputs.indices.dataSync()) : inputs.indices;
    const loss = memory!.loss(vs, vt, idx, negatives, tau);
    memory!.update(vs, vt, idx, momentum);
    return { crd: loss.mul(beta) };
  }, {
    prepare: (shapes) => {
      if (heads) return;
      const dims = (side: 'student' | 'teacher') => tapShape(key, shapes, side, pair[side]).reduce((a, b) => a * b, 1);
      heads = [denseLayer(dims('student'), featDim, seed, 'crd_student'), denseLayer(dims('teacher'), featDim, seed + 1, 'crd_teacher')];
      if (mode === 'memory') memory = new ContrastMemory(size!, featDim, seed);
    },
    variables: () => heads?.flatMap((h) => h.variables) ?? [],
    dispose: () => { heads?.forEach((h) => h.dispose()); memory?.dispose(); heads = undefined; memory = undefined; },
  });
  // the memory banks change every step without gradients: a checkpoint keeps them (see checkpoint.ts)
  return { ...term, memory: () => memory, stateVariables: () => memory?.variables() ?? [] };
}
