/**
 * Deep mutual learning — Zhang, Xiang, Hospedales & Lu 2018, "Deep Mutual Learning".
 *
 *   L_i = CE(y, p_i) + 1/(k−1) · Σ_{j≠i} T² · KL(p_j^T ‖ p_i^T)        (p_j held constant)
 *
 * A cohort of k ≥ 2 peers (same or different architectures) trains from scratch together,
 * on the same batches, with no pre-trained teacher. Every term of a peer that needs a
 * teacher is computed once per other peer and averaged (`teachers` of the step, weight
 * 1/(k−1)); so `kd` (T, α) gives α·T²·mean_j KL(p_j ‖ p_i) + (1−α)·CE, the paper's loss at
 * α = ½ up to a factor 2. Peers' logits are constants inside each term: a peer is updated
 * by its own loss only.
 * When it helps: no strong teacher exists, or the teacher would be no larger than the
 * students; each peer usually ends better than the same model trained alone (the paper:
 * +1–4 points on CIFAR-100), and the cohort's ensemble better still.
 */
import { z } from 'zod';
import { UserError } from '../errors.js';
import type { Fit, FitResult } from '../train/fit.js';
import type { Learner, TeacherSelector, WeightedTerm } from '../train/types.js';
import { checkPeerTerms, cohortCount, runCohort, type CohortMember } from './cohort.js';
import { detached, disposeTerms } from './common.js';
import type { Scheme } from './types.js';

/** Every other learner teaches learner i, each with weight 1/(k−1), logits detached. */
export function mutualSelector(): TeacherSelector {
  return ({ learner, logits }) => ({
    teachers: logits.flatMap((z, j) =>
      j === learner ? [] : [{ logits: detached(z), weight: 1 / (logits.length - 1) }],
    ),
  });
}

export interface DeepMutualLearningOptions {
  /** k ≥ 2 peers. */
  peers: CohortMember[];
  /** Fresh terms for one peer, e.g. `() => [{ term: createTerm('kd', { temperature: 1, alpha: 0.5 }), weight: 1 }]`. */
  terms: () => WeightedTerm[];
  /** The training loop (`createFit`, or `simpleFit` without a run folder). */
  fit: Fit;
  /** Phase id (checkpoint file name). Default `dml`. */
  id?: string;
  /** Progress label. Default `dml cohort`. */
  label?: string;
  /** Default: the fit's. */
  epochs?: number;
}

/** Trains the cohort with mutual learning; returns each peer's history (by name). */
export async function deepMutualLearning(o: DeepMutualLearningOptions): Promise<FitResult> {
  if (o.peers.length < 2)
    throw new UserError(
      `deep mutual learning needs a cohort of at least 2 peers, got ${o.peers.length}; add students or set peers: 2`,
    );
  const learners: Learner[] = o.peers.map((p) => ({ name: p.name, model: p.model, terms: o.terms() }));
  try {
    return await o.fit({
      id: o.id ?? 'dml',
      label: o.label ?? 'dml cohort',
      learners,
      selectTeacher: mutualSelector(),
      ...(o.epochs !== undefined && { epochs: o.epochs }),
    });
  } finally {
    disposeTerms(learners);
  }
}

/** The `dml` scheme of an experiment: the students (or `peers` copies of one) as the cohort; see `cohort.ts`. */
export const dmlScheme: Scheme = {
  describe: 'deep mutual learning: k ≥ 2 peers learn together, each from the others (kwargs: peers)',
  kwargs: z.strictObject({ peers: cohortCount }),
  check: (terms) => checkPeerTerms('dml', terms),
  run: (ctx) =>
    runCohort(ctx, {
      scheme: 'dml',
      count: ctx.kwargs['peers'] as number | undefined,
      countName: 'peers',
      learn: (peers) => deepMutualLearning({ terms: ctx.createTerms, fit: ctx.fit, peers }),
    }),
};
