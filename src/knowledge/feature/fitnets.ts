/**
 * `fitnets` — Romero et al. 2015, "FitNets: Hints for Thin Deep Nets".
 *
 *   fitnets = β · L_F( Φ_s(f_s), f_t )
 *
 * f_s: the student's guided layer, f_t: the teacher's hint layer, Φ_s: an adapter (the
 * paper's regressor) made in `prepare` when their shapes differ (dense for vectors, 1×1
 * conv for feature maps, resized spatially when H×W differ; see `../adapters.ts`). L_F is
 * `loss`: mse (the paper's ½‖u_h − r(v_g)‖², as a mean), l1, smooth-l1 or cosine.
 * Options: `student`, `teacher` layer names (default `features`, the zoo's penultimate
 * vector; a mid-network map such as `block1_pool` is closer to the paper's hint);
 * `loss` default mse; `beta` β default 100 (RepDistiller's CIFAR-100 hint weight);
 * `seed` of the adapter's initializer, default 0.
 * `stage` (read by the experiment runner, not here): `joint` (default) — one stage, used
 * beside `kd`/`ce`, as RepDistiller; `hint` — the paper's two stages: first this term alone
 * for `hintEpochs` epochs (it trains the student up to the guided layer, plus Φ_s), then a
 * second `train()` with the KD terms only. The term computes the same in both stages.
 * When it helps: a thinner, deeper student whose middle layers need a target to start
 * from; hint stage first when the student trains poorly from scratch.
 * Loss name: `fitnets`.
 */
import { z } from 'zod';
import { parseOptions } from '../../options.js';
import { createAdapter, type Adapter } from '../adapters.js';
import type { KnowledgeTerm } from '../types.js';
import { FEATURES, readPair, tapShape, tapTerm } from './common.js';
import { featureLoss, SIMILARITIES } from './similarity.js';

/** The options of `fitnets`: the one definition of their names, types, ranges and defaults. */
export const fitnetsOptions = z.strictObject({
  /** Student layer whose output is guided. Default `features`. */
  student: z.string().min(1).default(FEATURES),
  /** Teacher layer giving the hint. Default `features`. */
  teacher: z.string().min(1).default(FEATURES),
  /** L_F. Default `mse`. */
  loss: z.enum(SIMILARITIES).default('mse'),
  /** Weight β ≥ 0. Default 100. */
  beta: z.number().min(0).default(100),
  /** `joint` (default) or `hint` (the first of the paper's two stages; the runner sequences it). */
  stage: z.enum(['joint', 'hint']).default('joint'),
  /** Epochs of the hint stage, when `stage` is `hint`; unset: the runner decides. */
  hintEpochs: z.int().min(1).optional(),
  /** Seed of the adapter's initializer. Default 0. */
  seed: z.int().min(0).default(0),
});
export type FitnetsOptions = z.input<typeof fitnetsOptions>;

export interface FitnetsTerm extends KnowledgeTerm {
  readonly stage: 'joint' | 'hint';
  readonly hintEpochs?: number;
  /** Φ_s, once `prepare` has run. */
  adapter(): Adapter | undefined;
}

export function fitnetsTerm(options: FitnetsOptions = {}): FitnetsTerm {
  const key = 'fitnets';
  const { student, teacher, loss, beta, stage, hintEpochs, seed } = parseOptions(
    'knowledge term `fitnets`',
    fitnetsOptions,
    options,
  );
  const pair = { student, teacher };
  let adapter: Adapter | undefined;

  const term = tapTerm(
    key,
    [pair],
    (inputs) => {
      const { s, t } = readPair(key, inputs, pair);
      const from = s.shape.slice(1);
      if (!adapter && from.join() === t.shape.slice(1).join()) adapter = createAdapter({ from, to: from });
      if (!adapter)
        throw new Error(
          `fitnets: call prepare(shapes) before compute: [${from}] → [${t.shape.slice(1)}] needs an adapter (train() prepares terms)`,
        );
      return { fitnets: featureLoss(loss, adapter.apply(s), t).mul(beta) };
    },
    {
      prepare: (shapes) => {
        const from = tapShape(key, shapes, 'student', pair.student);
        const to = tapShape(key, shapes, 'teacher', pair.teacher);
        if (adapter && adapter.from.join() === from.join() && adapter.to.join() === to.join()) return;
        adapter?.dispose();
        adapter = createAdapter({ from, to, seed, name: key });
      },
      variables: () => adapter?.variables ?? [],
      dispose: () => {
        adapter?.dispose();
        adapter = undefined;
      },
    },
  );
  return { ...term, stage, hintEpochs, adapter: () => adapter };
}
