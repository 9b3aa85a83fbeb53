/**
 * Online distillation (the survey's second scheme: teacher and students learn together, no
 * pre-trained teacher): the `dml`, `ensemble` and `streaming` schemes of an experiment, on
 * the one training loop. The methods themselves, callable from code, are in `dml.ts`,
 * `ensemble.ts` and `streaming.ts`.
 *
 * The report's teacher column, when the experiment has no teacher (`teacher: {key: none}`):
 * the cohort's ensemble (`dml`, `ensemble`: the members' weighted average of logits,
 * evaluated from the members; its size is the sum of theirs) or the online teacher
 * (`streaming`). With an external teacher, that teacher is the column (a reference only:
 * online schemes do not learn from it) and the online teacher becomes a student row.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { modelNode } from '../config/components.js';
import { Interrupted } from '../experiment/fit.js';
import type { ProducedModel, Scheme, SchemeContext, SchemeResult } from '../experiment/schemes.js';
import { UserError } from '../errors.js';
import { createTerm } from '../knowledge/index.js';
import { buildModel, models as zoo } from '../models/zoo.js';
import type { WeightedTerm } from '../train/types.js';
import { datasetChunks, watchChunks } from './chunks.js';
import { ensembleEvaluated, ensemblePredict, measure, normalizeWeights, pct } from './common.js';
import { deepMutualLearning, type CohortMember } from './dml.js';
import { onlineEnsemble } from './ensemble.js';
import { streamingDistillation } from './streaming.js';

export { deepMutualLearning, mutualSelector, type CohortMember, type DeepMutualLearningOptions } from './dml.js';
export { onlineEnsemble, ensembleSelector, type OnlineEnsembleOptions } from './ensemble.js';
export { streamingDistillation, type StreamingOptions, type StreamingResult, type ChunkRecord } from './streaming.js';
export { datasetChunks, watchChunks, type WatchChunksOptions } from './chunks.js';

/** Terms that learn from peers must need a teacher and use logits only (peers give no taps). */
function checkPeerTerms(scheme: string, terms: readonly WeightedTerm[]): void {
  const tapped = terms.find(({ term }) => (term.needs.teacherTaps ?? []).length > 0);
  if (tapped) throw new UserError(`\`${tapped.term.key}\` taps the teacher's layers, but in ${scheme} the peers teach with their logits; use response terms (kd, soft-ce, logits-mse, dkd…)`);
  if (!terms.some(({ term }) => term.needs.teacher)) throw new UserError(`no term learns from the other models, so ${scheme} would train each alone; add kd (e.g. temperature: 1, alpha: 0.5)`);
}

/** The cohort: the students, or one student replicated `count` times (each its own initialization). */
function cohort(ctx: SchemeContext, count: number | undefined, what: string): Array<{ name: string; build: () => CohortMember['model'] }> {
  if (count !== undefined && ctx.students.length > 1) throw new UserError(`${what} replicates a single student; with ${ctx.students.length} students the cohort is the students — remove ${what}`);
  if (ctx.students.length === 1) {
    const s = ctx.students[0]!;
    return Array.from({ length: count ?? 2 }, (_, v) => ({ name: `${s.name}-${v + 1}`, build: () => s.build(v) }));
  }
  return ctx.students.map((s) => ({ name: s.name, build: () => s.build() }));
}

/** Cohort training (dml or ensemble) with optional label-only twins, the ensemble reference and the cohort table. */
async function runCohort(ctx: SchemeContext, o: {
  scheme: 'dml' | 'ensemble'; count: number | undefined; countName: string; weights?: number[];
}): Promise<SchemeResult> {
  const members = cohort(ctx, o.count, o.countName);
  const weights = normalizeWeights(o.weights, members.length, 'ensemble weights');
  const models: ProducedModel[] = [];
  const alone: ProducedModel[] = [];
  if (ctx.baseline) {
    // The same models (same initial weights, same batches), each learning from the labels alone.
    const twins = members.map((m) => ({ name: `${m.name} (labels)`, model: m.build() }));
    const learners = twins.map((t) => ({ name: t.name, model: t.model, terms: [{ term: createTerm('ce'), weight: 1 }] }));
    ctx.log(`seed ${ctx.seed}: ${members.map((m) => m.name).join(', ')} learn alone from the labels`);
    const r = await ctx.fit({ id: `${o.scheme}.alone`, label: 'each alone (labels)', learners });
    twins.forEach((t, i) => alone.push({ id: `${members[i]!.name}.labels`, name: t.name, model: t.model, method: 'labels only', baseline: true, history: r.history[t.name] ?? [], trainSeconds: r.seconds / twins.length }));
  }
  const peers = members.map((m) => ({ name: `${m.name} (${o.scheme})`, model: m.build() }));
  ctx.log(`seed ${ctx.seed}: ${o.scheme} cohort of ${peers.length}: ${members.map((m) => m.name).join(', ')}; ${ctx.method.long}`);
  const common = { terms: ctx.createTerms, fit: ctx.fit };
  const r = o.scheme === 'dml'
    ? await deepMutualLearning({ ...common, peers })
    : await onlineEnsemble({ ...common, members: peers, weights });
  const method = o.scheme === 'dml' ? `dml: ${ctx.method.long}, each other peer teaches` : `online ensemble teacher: ${ctx.method.long}`;
  peers.forEach((p, i) => models.push({ id: members[i]!.name, name: p.name, model: p.model, method, history: r.history[p.name] ?? [], trainSeconds: r.seconds / peers.length }));
  models.push(...alone);

  const describe = weights.every((w) => w === weights[0]) ? 'uniform' : `weights ${weights.map((w) => w.toFixed(3)).join(', ')}`;
  const evaluated = ensembleEvaluated({ name: `cohort ensemble (${o.scheme})`, models: peers.map((p) => p.model), weights });
  const test = ctx.data.test;
  const ens = await measure({ predict: evaluated.predict, data: test });
  const aloneEns = alone.length > 0 ? await measure({ predict: ensemblePredict(alone.map((a) => a.model), weights), data: test }) : undefined;
  const rows: string[][] = [];
  const data: Array<Record<string, number | string | null>> = [];
  for (let i = 0; i < peers.length; i++) {
    const mine = await measure({ model: peers[i]!.model, data: test });
    const twin = alone[i] ? await measure({ model: alone[i]!.model, data: test }) : undefined;
    const params = peers[i]!.model.countParams();
    const gain = twin ? `${mine.accuracy >= twin.accuracy ? '+' : '−'}${(Math.abs(mine.accuracy - twin.accuracy) * 100).toFixed(2)} pts` : '—';
    rows.push([members[i]!.name, params.toLocaleString('en-US'), weights[i]!.toFixed(3), pct(mine.accuracy), pct(twin?.accuracy), gain]);
    data.push({ model: members[i]!.name, params, weight: weights[i]!, accuracy: mine.accuracy, aloneAccuracy: twin?.accuracy ?? null });
  }
  rows.push([`ensemble (${describe})`, '—', '1.000', pct(ens.accuracy), pct(aloneEns?.accuracy), aloneEns ? `${ens.accuracy >= aloneEns.accuracy ? '+' : '−'}${(Math.abs(ens.accuracy - aloneEns.accuracy) * 100).toFixed(2)} pts` : '—']);
  data.push({ model: 'ensemble', params: null, weight: 1, accuracy: ens.accuracy, aloneAccuracy: aloneEns?.accuracy ?? null });
  return {
    models,
    reference: { kind: 'ensemble', evaluated, method: `${describe} average of the ${peers.length} members' logits`, trainSeconds: r.seconds },
    tables: [{
      title: o.scheme === 'dml' ? 'Deep mutual learning: each peer vs the same model trained alone' : 'Online ensemble: each member vs the same model trained alone',
      note: `Test accuracy of each ${o.scheme === 'dml' ? 'peer' : 'member'} after ${ctx.epochs} epochs together, beside the same model (same initial weights and batches) trained on the labels alone${ctx.baseline ? '' : ' (not trained: baseline is off)'}; last row: the average of the cohort's logits (weights as in the column).`,
      columns: ['model', 'params', 'weight', `accuracy (${o.scheme})`, 'accuracy (alone)', 'gain'],
      rows, data,
    }],
  };
}

const cohortCount = z.int().min(2).optional();

const dml: Scheme = {
  describe: 'deep mutual learning: k ≥ 2 peers learn together, each from the others (kwargs: peers)',
  kwargs: z.strictObject({ peers: cohortCount }),
  check: (terms) => checkPeerTerms('dml', terms),
  run: (ctx) => runCohort(ctx, { scheme: 'dml', count: ctx.kwargs['peers'] as number | undefined, countName: 'peers' }),
};

const ensemble: Scheme = {
  describe: 'online ensemble teacher: the cohort\'s weighted average teaches every member (kwargs: members, weights)',
  kwargs: z.strictObject({ members: cohortCount, weights: z.array(z.number().min(0)).min(2).optional() }),
  check: (terms) => checkPeerTerms('ensemble', terms),
  run: (ctx) => runCohort(ctx, { scheme: 'ensemble', count: ctx.kwargs['members'] as number | undefined, countName: 'members', weights: ctx.kwargs['weights'] as number[] | undefined }),
};

const streamingKwargs = z.strictObject({
  /** The online teacher, a zoo node (e.g. `{ key: cnn, kwargs: { width: 1 } }`). */
  teacher: modelNode(zoo),
  /** Cut the training data into this many chunks, in row order (a simulated stream). */
  chunks: z.int().positive().nullish(),
  /** Or watch a folder for chunk files (IDX pairs or CSV; see `chunks.ts`). */
  watch: z.strictObject({
    dir: z.string().min(1).transform((p) => resolve(p)),
    idleSeconds: z.number().positive().default(30),
    maxChunks: z.int().positive().optional(),
    labelColumn: z.union([z.string().min(1), z.int().min(0)]).optional(),
  }).nullish(),
}).check((ctx) => {
  if ((ctx.value.chunks == null) === (ctx.value.watch == null)) {
    ctx.issues.push({ code: 'custom', input: ctx.value, message: 'give either chunks (cut the training data) or watch (a folder of chunk files)' });
  }
});

async function runStreaming(ctx: SchemeContext): Promise<SchemeResult> {
  const k = ctx.kwargs as z.output<typeof streamingKwargs>;
  if (ctx.students.length !== 1) throw new UserError(`streaming distils into one student; the experiment lists ${ctx.students.length}`);
  const s = ctx.students[0]!;
  const { train, test } = ctx.data;
  const teacherModel = buildModel({ kind: k.teacher.key, ...k.teacher.kwargs, inputShape: train.sampleShape, numClasses: train.numClasses, seed: ctx.seed + 2000, name: 'teacher' });
  const teacher = { name: 'teacher (stream)', model: teacherModel };
  const student = { name: `${s.name} (stream)`, model: s.build() };
  const alone = ctx.baseline ? { name: `${s.name} (labels)`, model: s.build() } : undefined;
  const chunks = k.watch
    ? watchChunks({ ...k.watch, sampleShape: train.sampleShape, numClasses: train.numClasses, signal: ctx.signal })
    : datasetChunks(train, k.chunks!);
  ctx.log(`seed ${ctx.seed}: streaming ${k.watch ? `chunks from ${k.watch.dir}` : `${train.size} rows in ${k.chunks} chunks`}: the teacher learns each chunk, then ${s.name} learns it from the teacher (${ctx.method.long})`);
  const r = await streamingDistillation({
    chunks, teacher, student, alone, terms: ctx.createTerms, heldOut: test, fit: ctx.fit,
    onChunk: (c) => ctx.log(`seed ${ctx.seed}: chunk ${c.chunk} (${c.samples} rows): teacher ${pct(c.teacherAccuracy)}, ${s.name} ${pct(c.studentAccuracy)}${c.aloneAccuracy !== undefined ? `, alone ${pct(c.aloneAccuracy)}` : ''}`),
  });
  if (ctx.signal?.aborted) throw new Interrupted('interrupted while waiting for the next chunk');
  const produced = (m: { name: string; model: typeof teacherModel }, id: string, method: string, baseline = false): ProducedModel => ({
    id, name: m.name, model: m.model, method, ...(baseline && { baseline }), history: r.history[m.name] ?? [], trainSeconds: r.seconds[m.name] ?? 0,
  });
  const n = r.chunks.length;
  return {
    reference: { kind: 'model', produced: produced(teacher, 'teacher', `labels, ${n} chunks as they came`) },
    models: [
      produced(student, s.name, `from the online teacher, ${n} chunks: ${ctx.method.long}`),
      ...(alone ? [produced(alone, `${s.name}.labels`, `labels only, ${n} chunks`, true)] : []),
    ],
    tables: [{
      title: 'Streaming: accuracy after every chunk',
      note: `After each chunk the teacher has learned it from the labels, then the student from the updated teacher; both measured on the test set (${test.size} samples).${alone ? ' "alone": the same student on the labels of the same chunks.' : ''}`,
      columns: ['chunk', 'samples', 'seen', 'teacher', 'student', 'student alone', 'agreement', 'train time'],
      rows: r.chunks.map((c) => [String(c.chunk), c.samples.toLocaleString('en-US'), c.seen.toLocaleString('en-US'), pct(c.teacherAccuracy), pct(c.studentAccuracy), pct(c.aloneAccuracy), pct(c.agreement), `${c.seconds.toFixed(1)} s`]),
      data: r.chunks.map((c) => ({ chunk: c.chunk, samples: c.samples, seen: c.seen, teacherAccuracy: c.teacherAccuracy, studentAccuracy: c.studentAccuracy, aloneAccuracy: c.aloneAccuracy ?? null, agreement: c.agreement, seconds: c.seconds })),
    }],
  };
}

const streaming: Scheme = {
  describe: 'streaming: per chunk of data the online teacher learns, then the student learns from it (kwargs: teacher, chunks | watch)',
  kwargs: streamingKwargs as unknown as z.ZodType<Record<string, unknown>>,
  run: runStreaming,
};

/** The online schemes by key. */
export const onlineSchemes: Record<string, Scheme> = { dml, ensemble, streaming };
