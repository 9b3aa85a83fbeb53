/**
 * Be Your Own Teacher — Zhang et al. 2019, "Be Your Own Teacher: Improve the Performance of
 * Convolutional Neural Networks via Self Distillation".
 *
 *   deepest C:    L_C = CE(y, p_C)
 *   each exit i:  L_i = terms(z_i, teacher z_C) + λ · L_F( Φ(f_i), f_C )      (z_C, f_C constant)
 *
 * One network with early exits (`attachExits`): the deepest classifier teaches each shallow
 * exit through the configured terms (BYOT: `kd` at T = 3, i.e. (1−α)·CE + α·T²·KL) plus a
 * feature hint, the mean squared (or `hintLoss`) distance between the exit's bottleneck
 * features f_i and the deepest features f_C (an adapter Φ, trained with the exit, when their
 * sizes differ; FitNets' term). Exits share the network's layers up to where they attach,
 * so their losses also train that part of the trunk; the deeper layers are trained by the
 * deepest CE only (its outputs are constants for the exits).
 * When it helps: one network should answer at several costs (early exits on an edge
 * device), and the shallow layers gain from the deep supervision; the paper also reports a
 * better deepest classifier (+1–3 points on CIFAR-100).
 */
import { UserError } from '../errors.js';
import type { Fit, FitResult } from '../experiment/fit.js';
import { fitnetsTerm } from '../knowledge/feature/fitnets.js';
import type { Similarity } from '../knowledge/feature/similarity.js';
import { createTerm } from '../knowledge/index.js';
import type * as tf from '@tensorflow/tfjs';
import type { Learner, TeacherSelector, WeightedTerm } from '../train/types.js';
import { detached, disposeTerms } from './common.js';
import type { ExitModel } from './exits.js';

/** Learner 0 (the deepest) has no teacher; every other learner is taught by learner 0's logits and `featureLayer` tap. */
export function deepestTeaches(featureLayer: string): TeacherSelector {
  return ({ learner, logits, taps }) => (learner === 0 ? {} : {
    logits: detached(logits[0]!), taps: { [featureLayer]: detached(taps[0]![featureLayer]!) },
  });
}

export interface ByotOptions {
  /** The whole network (its output: the deepest classifier). */
  model: tf.LayersModel;
  /** Its exits (`attachExits`). */
  exits: ExitModel[];
  /** Shape of the deepest features (from `attachExits`). */
  featureShape: readonly number[];
  /** The network's deepest features layer. Default `features`. */
  featureLayer?: string;
  /** Fresh terms for one exit, e.g. `() => [{ term: createTerm('kd', { temperature: 3, alpha: 0.3 }), weight: 1 }]`. */
  terms: () => WeightedTerm[];
  /** Weight λ of the feature hint (0: none). Default 1. */
  hintWeight?: number;
  /** L_F of the hint. Default `mse`. */
  hintLoss?: Similarity;
  /** Learner names: `<name>` for the deepest, `<name> <exit>` for the exits. Default the model's name. */
  name?: string;
  fit: Fit;
  /** Phase id. Default `byot`. */
  id?: string;
  epochs?: number;
  /** `self` (default): BYOT. `labels`: every exit on CE alone, no teacher (deep supervision, the ablation). */
  mode?: 'self' | 'labels';
}

/** Trains the network and its exits together; histories by learner name (see `name`). */
export async function beYourOwnTeacher(o: ByotOptions): Promise<FitResult & { names: string[] }> {
  const featureLayer = o.featureLayer ?? 'features';
  const hint = o.hintWeight ?? 1;
  if (!(hint >= 0)) throw new UserError(`byot hint weight must be >= 0 (got ${hint})`);
  const name = o.name ?? o.model.name;
  const ce = () => [{ term: createTerm('ce'), weight: 1 }];
  const self = (o.mode ?? 'self') === 'self';
  const learners: Learner[] = [
    { name, model: o.model, terms: ce(), ...(self && { taps: [featureLayer] }) },
    ...o.exits.map((e) => ({
      name: `${name} ${e.name}`, model: e.model,
      terms: !self ? ce() : [
        ...o.terms(),
        ...(hint > 0 ? [{ term: fitnetsTerm({ student: e.featureLayer, teacher: featureLayer, beta: hint, loss: o.hintLoss ?? 'mse' }), weight: 1 }] : []),
      ],
    })),
  ];
  try {
    const r = await o.fit({
      id: o.id ?? 'byot', label: self ? `${name} + ${o.exits.length} exits (byot)` : `${name} + ${o.exits.length} exits (labels)`, learners,
      ...(self && { selectTeacher: deepestTeaches(featureLayer), teacherTapShapes: { [featureLayer]: o.featureShape } }),
      ...(o.epochs !== undefined && { epochs: o.epochs }),
    });
    return { ...r, names: learners.map((l) => l.name) };
  } finally {
    disposeTerms(learners);
  }
}
