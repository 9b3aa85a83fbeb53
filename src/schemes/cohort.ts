/**
 * The cohort of the `dml` and `ensemble` schemes: the students (or one student replicated),
 * optional label-only twins, the cohort's ensemble as the report's teacher column when the
 * experiment has no teacher (the members' weighted average of logits, evaluated from the
 * members; its size is the sum of theirs), and the cohort table. With an external teacher,
 * that teacher is the column (a reference only: online schemes do not learn from it).
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { createTerm } from '../knowledge/index.js';
import type { FitResult } from '../train/fit.js';
import type { WeightedTerm } from '../train/types.js';
import { ensembleEvaluated, ensemblePredict, measure, normalizeWeights, pct } from './common.js';
import type { ProducedModel, SchemeContext, SchemeResult } from './types.js';

export interface CohortMember {
  /** Unique within the cohort: the learner's name in histories and checkpoints. */
  name: string;
  model: tf.LayersModel;
}

/** Terms that learn from peers must need a teacher and use logits only (peers give no taps). */
export function checkPeerTerms(scheme: string, terms: readonly WeightedTerm[]): void {
  const tapped = terms.find(({ term }) => (term.needs.teacherTaps ?? []).length > 0);
  if (tapped)
    throw new UserError(
      `\`${tapped.term.key}\` taps the teacher's layers, but in ${scheme} the peers teach with their logits; use response terms (kd, soft-ce, logits-mse, dkd…)`,
    );
  if (!terms.some(({ term }) => term.needs.teacher))
    throw new UserError(
      `no term learns from the other models, so ${scheme} would train each alone; add kd (e.g. temperature: 1, alpha: 0.5)`,
    );
}

/** The cohort: the students, or one student replicated `count` times (each its own initialization). */
function cohort(
  ctx: SchemeContext,
  count: number | undefined,
  what: string,
): Array<{ name: string; build: () => tf.LayersModel }> {
  if (count !== undefined && ctx.students.length > 1)
    throw new UserError(
      `${what} replicates a single student; with ${ctx.students.length} students the cohort is the students — remove ${what}`,
    );
  if (ctx.students.length === 1) {
    const s = ctx.students[0]!;
    return Array.from({ length: count ?? 2 }, (_, v) => ({ name: `${s.name}-${v + 1}`, build: () => s.build(v) }));
  }
  return ctx.students.map((s) => ({ name: s.name, build: () => s.build() }));
}

/** Cohort training (dml or ensemble) with optional label-only twins, the ensemble reference and the cohort table. */
export async function runCohort(
  ctx: SchemeContext,
  o: {
    scheme: 'dml' | 'ensemble';
    count: number | undefined;
    countName: string;
    weights?: number[];
    /** Trains the peers together (`deepMutualLearning`, `onlineEnsemble`) with the normalized weights. */
    learn(peers: CohortMember[], weights: number[]): Promise<FitResult>;
  },
): Promise<SchemeResult> {
  const members = cohort(ctx, o.count, o.countName);
  const weights = normalizeWeights(o.weights, members.length, 'ensemble weights');
  const models: ProducedModel[] = [];
  const alone: ProducedModel[] = [];
  if (ctx.baseline) {
    // The same models (same initial weights, same batches), each learning from the labels alone.
    const twins = members.map((m) => ({ name: `${m.name} (labels)`, model: m.build() }));
    const learners = twins.map((t) => ({
      name: t.name,
      model: t.model,
      terms: [{ term: createTerm('ce'), weight: 1 }],
    }));
    ctx.log(`seed ${ctx.seed}: ${members.map((m) => m.name).join(', ')} learn alone from the labels`);
    const r = await ctx.fit({ id: `${o.scheme}.alone`, label: 'each alone (labels)', learners });
    twins.forEach((t, i) =>
      alone.push({
        id: `${members[i]!.name}.labels`,
        name: t.name,
        model: t.model,
        method: 'labels only',
        baseline: true,
        history: r.history[t.name] ?? [],
        trainSeconds: r.seconds / twins.length,
      }),
    );
  }
  const peers = members.map((m) => ({ name: `${m.name} (${o.scheme})`, model: m.build() }));
  ctx.log(
    `seed ${ctx.seed}: ${o.scheme} cohort of ${peers.length}: ${members.map((m) => m.name).join(', ')}; ${ctx.method.long}`,
  );
  const r = await o.learn(peers, weights);
  const method =
    o.scheme === 'dml'
      ? `dml: ${ctx.method.long}, each other peer teaches`
      : `online ensemble teacher: ${ctx.method.long}`;
  peers.forEach((p, i) =>
    models.push({
      id: members[i]!.name,
      name: p.name,
      model: p.model,
      method,
      history: r.history[p.name] ?? [],
      trainSeconds: r.seconds / peers.length,
    }),
  );
  models.push(...alone);

  const describe = weights.every((w) => w === weights[0])
    ? 'uniform'
    : `weights ${weights.map((w) => w.toFixed(3)).join(', ')}`;
  const evaluated = ensembleEvaluated({
    name: `cohort ensemble (${o.scheme})`,
    models: peers.map((p) => p.model),
    weights,
  });
  const test = ctx.data.test;
  const ens = await measure({ predict: evaluated.predict, data: test });
  const aloneEns =
    alone.length > 0
      ? await measure({
          predict: ensemblePredict(
            alone.map((a) => a.model),
            weights,
          ),
          data: test,
        })
      : undefined;
  const rows: string[][] = [];
  const data: Array<Record<string, number | string | null>> = [];
  for (let i = 0; i < peers.length; i++) {
    const mine = await measure({ model: peers[i]!.model, data: test });
    const twin = alone[i] ? await measure({ model: alone[i]!.model, data: test }) : undefined;
    const params = peers[i]!.model.countParams();
    const gain = twin
      ? `${mine.accuracy >= twin.accuracy ? '+' : '−'}${(Math.abs(mine.accuracy - twin.accuracy) * 100).toFixed(2)} pts`
      : '—';
    rows.push([
      members[i]!.name,
      params.toLocaleString('en-US'),
      weights[i]!.toFixed(3),
      pct(mine.accuracy),
      pct(twin?.accuracy),
      gain,
    ]);
    data.push({
      model: members[i]!.name,
      params,
      weight: weights[i]!,
      accuracy: mine.accuracy,
      aloneAccuracy: twin?.accuracy ?? null,
    });
  }
  rows.push([
    `ensemble (${describe})`,
    '—',
    '1.000',
    pct(ens.accuracy),
    pct(aloneEns?.accuracy),
    aloneEns
      ? `${ens.accuracy >= aloneEns.accuracy ? '+' : '−'}${(Math.abs(ens.accuracy - aloneEns.accuracy) * 100).toFixed(2)} pts`
      : '—',
  ]);
  data.push({
    model: 'ensemble',
    params: null,
    weight: 1,
    accuracy: ens.accuracy,
    aloneAccuracy: aloneEns?.accuracy ?? null,
  });
  return {
    models,
    reference: {
      kind: 'ensemble',
      evaluated,
      method: `${describe} average of the ${peers.length} members' logits`,
      trainSeconds: r.seconds,
    },
    tables: [
      {
        title:
          o.scheme === 'dml'
            ? 'Deep mutual learning: each peer vs the same model trained alone'
            : 'Online ensemble: each member vs the same model trained alone',
        note: `Test accuracy of each ${o.scheme === 'dml' ? 'peer' : 'member'} after ${ctx.epochs} epochs together, beside the same model (same initial weights and batches) trained on the labels alone${ctx.baseline ? '' : ' (not trained: baseline is off)'}; last row: the average of the cohort's logits (weights as in the column).`,
        columns: ['model', 'params', 'weight', `accuracy (${o.scheme})`, 'accuracy (alone)', 'gain'],
        rows,
        data,
      },
    ],
  };
}

/** The cohort's size (`peers`, `members`): k ≥ 2, default 2 (one student replicated). */
export const cohortCount = z.int().min(2).optional();
