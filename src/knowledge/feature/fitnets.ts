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
import { createAdapter, type Adapter } from '../adapters.js';
import type { KnowledgeTerm } from '../types.js';
import { checkKeys, enumOption, FEATURES, intOption, layerOption, numberOption, readPair, tapShape, tapTerm } from './common.js';
import { featureLoss, SIMILARITIES, type Similarity } from './similarity.js';

export interface FitnetsOptions {
  /** Student layer whose output is guided. Default `features`. */
  student?: string;
  /** Teacher layer giving the hint. Default `features`. */
  teacher?: string;
  /** L_F. Default `mse`. */
  loss?: Similarity;
  /** Weight β ≥ 0. Default 100. */
  beta?: number;
  /** `joint` (default) or `hint` (the first of the paper's two stages; the runner sequences it). */
  stage?: 'joint' | 'hint';
  /** Epochs of the hint stage, when `stage` is `hint`; unset: the runner decides. */
  hintEpochs?: number;
  /** Seed of the adapter's initializer. Default 0. */
  seed?: number;
}

export interface FitnetsTerm extends KnowledgeTerm {
  readonly stage: 'joint' | 'hint';
  readonly hintEpochs?: number;
  /** Φ_s, once `prepare` has run. */
  adapter(): Adapter | undefined;
}

export function fitnetsTerm(options: FitnetsOptions = {}): FitnetsTerm {
  const o = options as Record<string, unknown>;
  const key = 'fitnets';
  checkKeys(key, o, ['student', 'teacher', 'loss', 'beta', 'stage', 'hintEpochs', 'seed']);
  const pair = { student: layerOption(key, o, 'student', FEATURES), teacher: layerOption(key, o, 'teacher', FEATURES) };
  const loss = enumOption(key, o, 'loss', SIMILARITIES, 'mse');
  const beta = numberOption(key, o, 'beta', 100, 'nonNegative');
  const stage = enumOption(key, o, 'stage', ['joint', 'hint'] as const, 'joint');
  const hintEpochs = o['hintEpochs'] === undefined ? undefined : intOption(key, o, 'hintEpochs', 1);
  const seed = intOption(key, o, 'seed', 0, 0);
  let adapter: Adapter | undefined;

  const term = tapTerm(key, [pair], (inputs) => {
    const { s, t } = readPair(key, inputs, pair);
    const from = s.shape.slice(1);
    if (!adapter && from.join() === t.shape.slice(1).join()) adapter = createAdapter({ from, to: from });
    if (!adapter) throw new Error(`fitnets: call prepare(shapes) before compute: [${from}] → [${t.shape.slice(1)}] needs an adapter (train() prepares terms)`);
    return { fitnets: featureLoss(loss, adapter.apply(s), t).mul(beta) };
  }, {
    prepare: (shapes) => {
      const from = tapShape(key, shapes, 'student', pair.student);
      const to = tapShape(key, shapes, 'teacher', pair.teacher);
      if (adapter && adapter.from.join() === from.join() && adapter.to.join() === to.join()) return;
      adapter?.dispose();
      adapter = createAdapter({ from, to, seed, name: key });
    },
    variables: () => adapter?.variables ?? [],
    dispose: () => { adapter?.dispose(); adapter = undefined; },
  });
  return { ...term, stage, hintEpochs, adapter: () => adapter };
}
