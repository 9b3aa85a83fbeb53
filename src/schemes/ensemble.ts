/**
 * Online ensemble teacher — as in ONE (Lan, Zhu & Gong 2018, "Knowledge Distillation by
 * On-the-Fly Native Ensemble") and KDCL (Guo et al. 2020), with fixed weights:
 *
 *   z_e = Σ_j w_j · z_j   (Σ w_j = 1, held constant),     L_i = terms(z_i, teacher z_e)
 *
 * k ≥ 2 members train together on the same batches; the cohort's weighted average of
 * logits, computed afresh at every step, teaches every member (itself included) through
 * the configured terms (e.g. `kd`: α·T²·KL(p_e^T ‖ p_i^T) + (1−α)·CE). The ensemble is a
 * constant inside the terms: each member is updated by its own loss only. Averaging logits
 * (not probabilities) keeps the teacher independent of the terms' temperatures.
 * When it helps: as deep mutual learning, with one target for all (a stronger, smoother
 * teacher than any single peer); give larger weights to members that are known to be better.
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { parseOptions } from '../options.js';
import type { Fit, FitResult } from '../train/fit.js';
import type { Learner, TeacherSelector, WeightedTerm } from '../train/types.js';
import { checkPeerTerms, cohortCount, runCohort, type CohortMember } from './cohort.js';
import { averageLogits, detached, disposeTerms, normalizeWeights } from './common.js';
import type { Scheme } from './types.js';

/** The weighted average of every learner's logits (detached) teaches each learner. */
export function ensembleSelector(weights: readonly number[]): TeacherSelector {
  let last: { of: tf.Tensor2D[]; value: tf.Tensor2D } | undefined;
  return ({ logits }) => {
    // One ensemble per step, shared by every learner of the step.
    if (last?.of !== logits || last.value.isDisposed)
      last = { of: logits, value: detached(averageLogits(logits, weights)) };
    return { logits: last.value };
  };
}

/** The online ensemble's knobs: one schema for the API (`onlineEnsemble`) and the experiment file. */
export const ensembleKnobs = z.strictObject({
  /** One weight ≥ 0 per member (normalized to sum 1). Default uniform. */
  weights: z.array(z.number().min(0)).min(2).optional(),
});

export type OnlineEnsembleOptions = z.input<typeof ensembleKnobs> & {
  /** k ≥ 2 members. */
  members: CohortMember[];
  /**
   * Fresh terms for one member, e.g. `() => [{ term: createTerm('kd', { temperature: 3, alpha: 0.5 }), weight: 1
   * }]`.
   */
  terms: () => WeightedTerm[];
  fit: Fit;
  /** Phase id. Default `ensemble`. */
  id?: string;
  label?: string;
  epochs?: number;
};

/** Trains the members under their online ensemble; returns each member's history and the normalized weights. */
export async function onlineEnsemble(o: OnlineEnsembleOptions): Promise<FitResult & { weights: number[] }> {
  if (o.members.length < 2)
    throw new UserError(
      `an online ensemble needs at least 2 members, got ${o.members.length}; add students or set members: 2`,
    );
  const knobs = parseOptions('scheme `ensemble`', ensembleKnobs, { weights: o.weights });
  const weights = normalizeWeights(knobs.weights, o.members.length);
  const learners: Learner[] = o.members.map((m) => ({ name: m.name, model: m.model, terms: o.terms() }));
  try {
    const r = await o.fit({
      id: o.id ?? 'ensemble',
      label: o.label ?? 'online ensemble',
      learners,
      selectTeacher: ensembleSelector(weights),
      ...(o.epochs !== undefined && { epochs: o.epochs }),
    });
    return { ...r, weights };
  } finally {
    disposeTerms(learners);
  }
}

/** The `ensemble` scheme of an experiment: the students (or `members` copies of one) as the cohort; see `cohort.ts`. */
export const ensembleScheme: Scheme = {
  describe: "online ensemble teacher: the cohort's weighted average teaches every member (kwargs: members, weights)",
  kwargs: ensembleKnobs.extend({ members: cohortCount }),
  check: (terms) => checkPeerTerms('ensemble', terms),
  run: (ctx) =>
    runCohort(ctx, {
      scheme: 'ensemble',
      count: ctx.kwargs['members'] as number | undefined,
      countName: 'members',
      weights: ctx.kwargs['weights'] as number[] | undefined,
      learn: (members, weights) => onlineEnsemble({ terms: ctx.createTerms, fit: ctx.fit, members, weights }),
    }),
};
