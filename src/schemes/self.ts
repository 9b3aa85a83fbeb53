/**
 * Self-distillation (the survey's third scheme: the network teaches itself): the `byot`,
 * `born-again` and `previous-epoch` schemes of an experiment, on the one training loop.
 * The methods, callable from code, are in `byot.ts` (with `exits.ts`), `born-again.ts`
 * and `previous-epoch.ts`. Each takes the experiment's one student as the network.
 *
 * The report's teacher column, when the experiment has no teacher (`teacher: {key: none}`):
 * the deepest classifier (`byot`), generation 0 (`born-again`), the last snapshot
 * (`previous-epoch`): the model that taught. With an external teacher, that teacher is the
 * column (a reference; these schemes do not learn from it) and those models are student rows.
 */
import { z } from 'zod';
import type { ProducedModel, Scheme, SchemeContext, SchemeResult } from '../experiment/schemes.js';
import { UserError } from '../errors.js';
import { SIMILARITIES, type Similarity } from '../knowledge/feature/similarity.js';
import { createTerm } from '../knowledge/index.js';
import type { WeightedTerm } from '../train/types.js';
import { bornAgain } from './born-again.js';
import { beYourOwnTeacher } from './byot.js';
import { measure, pct } from './common.js';
import { attachExits, type ExitSpec } from './exits.js';
import { previousEpochTeacher } from './previous-epoch.js';

export { attachExits, type ExitSpec, type ExitModel, type AttachExitsOptions } from './exits.js';
export { beYourOwnTeacher, deepestTeaches, type ByotOptions } from './byot.js';
export { bornAgain, ensembleTeacher, type BornAgainOptions, type Generation } from './born-again.js';
export { previousEpochTeacher, snapshotKeeper, type PreviousEpochOptions, type PreviousEpochResult } from './previous-epoch.js';

function oneStudent(ctx: SchemeContext, scheme: string) {
  if (ctx.students.length !== 1) throw new UserError(`${scheme} distils one network into itself; the experiment lists ${ctx.students.length} students — keep one`);
  return ctx.students[0]!;
}

/** Response terms only: the self-teacher gives logits (and, in byot, the deepest features to the hint). */
function checkSelfTerms(scheme: string, terms: readonly WeightedTerm[]): void {
  const tapped = terms.find(({ term }) => (term.needs.teacherTaps ?? []).length > 0);
  if (tapped) throw new UserError(`\`${tapped.term.key}\` taps a teacher's layers; in ${scheme} the self-teacher gives its logits${scheme === 'byot' ? ' (the feature hint is the scheme\'s own: kwargs hint, hintLoss)' : ''}; use response terms (kd, soft-ce, logits-mse, dkd…)`);
  if (!terms.some(({ term }) => term.needs.teacher)) throw new UserError(`no term learns from a teacher, so ${scheme} would be plain training; add kd`);
}

const gain = (a: number, b: number | undefined) => (b === undefined ? '—' : `${a >= b ? '+' : '−'}${(Math.abs(a - b) * 100).toFixed(2)} pts`);

const exitSpec = z.strictObject({
  after: z.string().min(1), channels: z.int().positive().optional(), kernelSize: z.int().positive().optional(), stride: z.int().positive().optional(),
});
const byotKwargs = z.strictObject({
  /** Where the exits go, shallow to deep: `[{after: block1_pool}, …]`. */
  exits: z.array(exitSpec).min(1),
  /** Weight λ of the feature hint (0: off). */
  hint: z.number().min(0).default(1),
  hintLoss: z.enum(SIMILARITIES as unknown as [Similarity, ...Similarity[]]).default('mse'),
  /** The network's deepest features layer. */
  featureLayer: z.string().min(1).default('features'),
  /** With `baseline: true`: the plain network on the labels, the same network with exits each on the labels (deep supervision), or both. */
  baselines: z.array(z.enum(['plain', 'deep-supervision'])).default(['plain', 'deep-supervision']),
});

async function runByot(ctx: SchemeContext): Promise<SchemeResult> {
  const k = ctx.kwargs as z.output<typeof byotKwargs>;
  const s = oneStudent(ctx, 'byot');
  const test = ctx.data.test;
  const build = (seed: number) => {
    const net = s.build();
    return { net, ...attachExits({ model: net, exits: k.exits as ExitSpec[], featureLayer: k.featureLayer, seed: ctx.seed + seed }) };
  };
  const models: ProducedModel[] = [];
  const produce = (net: ReturnType<typeof build>, suffix: string, idSuffix: string, method: string, r: { history: Record<string, unknown[]>; seconds: number }, names: string[], baseline: boolean) => {
    const list: ProducedModel[] = [
      { id: `${s.name}${idSuffix}`, name: `${s.name} (${suffix})`, model: net.net, method, history: (r.history[names[0]!] ?? []) as ProducedModel['history'], trainSeconds: r.seconds, ...(baseline && { baseline }) },
      ...net.exits.map((e, i) => ({
        id: `${s.name}${idSuffix}.${e.name}`, name: `${s.name} ${e.name} (${suffix})`, model: e.model, method: `${method}; early exit after ${e.after}`,
        // Trained in the same phase as the network: its time is the phase's.
        history: (r.history[names[i + 1]!] ?? []) as ProducedModel['history'], trainSeconds: r.seconds, dispose: e.dispose, ...(baseline && { baseline }),
      })),
    ];
    return list;
  };
  // Built first: a wrong exit layer fails before any training.
  const net = build(0);
  const plain = ctx.baseline && k.baselines.includes('plain') ? s.build() : undefined;
  let plainModel: ProducedModel | undefined;
  if (plain) {
    const name = `${s.name} (labels)`;
    ctx.log(`seed ${ctx.seed}: ${name}: the plain network on the labels`);
    const r = await ctx.fit({ id: `${s.name}.labels`, label: name, learners: [{ name, model: plain, terms: [{ term: createTerm('ce'), weight: 1 }] }] });
    plainModel = { id: `${s.name}.labels`, name, model: plain, method: 'labels only, no exits', baseline: true, history: r.history[name] ?? [], trainSeconds: r.seconds };
  }
  let ds: ProducedModel[] = [];
  if (ctx.baseline && k.baselines.includes('deep-supervision')) {
    const twin = build(0);
    ctx.log(`seed ${ctx.seed}: ${s.name} with ${twin.exits.length} exits, each on the labels (deep supervision, no self-distillation)`);
    const r = await beYourOwnTeacher({ model: twin.net, exits: twin.exits, featureShape: twin.featureShape, featureLayer: k.featureLayer, terms: () => [], fit: ctx.fit, id: `${s.name}.ds`, name: `${s.name} ds`, mode: 'labels' });
    ds = produce(twin, 'deep supervision', '.ds', 'every exit on the labels (deep supervision)', r, r.names, true);
  }
  ctx.log(`seed ${ctx.seed}: ${s.name} with exits after ${k.exits.map((e) => e.after).join(', ')}: the deepest teaches each exit (${ctx.method.long}${k.hint > 0 ? ` + ${k.hint}·${k.hintLoss} hint` : ''})`);
  const r = await beYourOwnTeacher({
    model: net.net, exits: net.exits, featureShape: net.featureShape, featureLayer: k.featureLayer, terms: ctx.createTerms,
    hintWeight: k.hint, hintLoss: k.hintLoss, fit: ctx.fit, id: s.name, name: s.name,
  });
  const method = `byot: ${ctx.method.long}${k.hint > 0 ? ` + hint ${k.hint}·${k.hintLoss}(${k.featureLayer})` : ''}`;
  const [deepest, ...exits] = produce(net, 'byot', '', method, r, r.names, false);
  models.push(...exits, ...(plainModel ? [plainModel] : []), ...ds);

  // The exits table: each classifier of the network beside its counterparts trained without self-distillation.
  const rows: string[][] = [];
  const data: Array<Record<string, number | string | null>> = [];
  const classifiers = [...net.exits.map((e, i) => ({ label: e.name, after: e.after, own: exits[i]!, ds: ds[i + 1], plain: undefined as ProducedModel | undefined })),
    { label: 'deepest', after: k.featureLayer, own: deepest!, ds: ds[0], plain: plainModel }];
  for (const c of classifiers) {
    const own = await measure({ model: c.own.model, data: test });
    const dsAcc = c.ds ? (await measure({ model: c.ds.model, data: test })).accuracy : undefined;
    const plainAcc = c.plain ? (await measure({ model: c.plain.model, data: test })).accuracy : undefined;
    const params = c.own.model.countParams();
    rows.push([c.label, c.after, params.toLocaleString('en-US'), pct(own.accuracy), pct(dsAcc), gain(own.accuracy, dsAcc), pct(plainAcc), gain(own.accuracy, plainAcc)]);
    data.push({ exit: c.label, after: c.after, params, accuracy: own.accuracy, deepSupervisionAccuracy: dsAcc ?? null, plainAccuracy: plainAcc ?? null });
  }
  return {
    models,
    reference: { kind: 'model', produced: deepest! },
    tables: [{
      title: 'Be Your Own Teacher: every exit of the network',
      note: 'Test accuracy of each early exit and of the deepest classifier (exits: their own rows in the table above, with size and latency), beside the same network with the same exits each trained on the labels (deep supervision) and the plain network on the labels.',
      columns: ['classifier', 'after', 'params', 'accuracy (byot)', 'deep supervision', 'gain', 'plain network', 'gain'],
      rows, data,
    }],
  };
}

const bornAgainKwargs = z.strictObject({
  /** N generations after generation 0 (which learns from the labels). */
  generations: z.int().positive().default(3),
  /** Learn from the average of all earlier generations instead of the last. */
  ensemble: z.boolean().default(false),
});

async function runBornAgain(ctx: SchemeContext): Promise<SchemeResult> {
  const k = ctx.kwargs as z.output<typeof bornAgainKwargs>;
  const s = oneStudent(ctx, 'born-again');
  ctx.log(`seed ${ctx.seed}: born-again: ${s.name} gen 0 on the labels, then ${k.generations} generations, each from ${k.ensemble ? 'all earlier ones' : 'the previous one'} (${ctx.method.long})`);
  const gens = await bornAgain({ build: (g) => s.build(g), generations: k.generations, terms: ctx.createTerms, ensemble: k.ensemble, name: s.name, fit: ctx.fit, id: s.name });
  const produced: ProducedModel[] = gens.map((g) => ({
    id: `${s.name}.gen-${g.generation}`, name: g.name, model: g.model, history: g.history, trainSeconds: g.seconds,
    method: g.generation === 0 ? 'labels only (generation 0)' : `from ${k.ensemble && g.generation > 1 ? `generations 0–${g.generation - 1}` : `generation ${g.generation - 1}`}: ${ctx.method.long}`,
    ...(g.generation === 0 && { baseline: true }),
  }));
  const rows: string[][] = [];
  const data: Array<Record<string, number | string | null>> = [];
  let previous: Float32Array | undefined;
  let first: number | undefined;
  for (const g of gens) {
    const m = await measure({ model: g.model, data: ctx.data.test, reference: previous });
    first ??= m.accuracy;
    rows.push([String(g.generation), g.generation === 0 ? 'labels' : k.ensemble && g.generation > 1 ? `gens 0–${g.generation - 1}` : `gen ${g.generation - 1}`, pct(m.accuracy), gain(m.accuracy, g.generation === 0 ? undefined : first), pct(m.agreement)]);
    data.push({ generation: g.generation, accuracy: m.accuracy, agreementWithPrevious: m.agreement ?? null });
    previous = m.logits;
  }
  return {
    models: produced.slice(1),
    reference: { kind: 'model', produced: produced[0]! },
    tables: [{
      title: 'Born-again networks: one row per generation',
      note: 'Same architecture every generation, each freshly initialized; test accuracy, the gain over generation 0 (labels only), and the top-1 agreement with the previous generation.',
      columns: ['generation', 'teacher', 'accuracy', 'vs gen 0', 'agreement with previous'],
      rows, data,
    }],
  };
}

const previousEpochKwargs = z.strictObject({
  /** Refresh the snapshot every k epochs. */
  every: z.int().positive().default(1),
  /** Epochs on the labels before the first snapshot. */
  warmup: z.int().min(0).default(1),
});

async function runPreviousEpoch(ctx: SchemeContext): Promise<SchemeResult> {
  const k = ctx.kwargs as z.output<typeof previousEpochKwargs>;
  const s = oneStudent(ctx, 'previous-epoch');
  if (ctx.epochs <= k.warmup) throw new UserError(`previous-epoch needs more epochs (${ctx.epochs}) than warmup epochs (${k.warmup}); raise epochs or lower scheme.kwargs.warmup`);
  const models: ProducedModel[] = [];
  if (ctx.baseline) {
    const name = `${s.name} (labels)`;
    const model = s.build();
    ctx.log(`seed ${ctx.seed}: ${name} learns from the labels only`);
    const r = await ctx.fit({ id: `${s.name}.labels`, label: name, learners: [{ name, model, terms: [{ term: createTerm('ce'), weight: 1 }] }] });
    models.push({ id: `${s.name}.labels`, name, model, method: 'labels only', baseline: true, history: r.history[name] ?? [], trainSeconds: r.seconds });
  }
  const name = `${s.name} (previous-epoch)`;
  const model = s.build();
  const snapshot = s.build();
  ctx.log(`seed ${ctx.seed}: ${name}: ${k.warmup} warmup epoch${k.warmup === 1 ? '' : 's'} on the labels, then learns from its snapshot, refreshed every ${k.every} epoch${k.every === 1 ? '' : 's'} (${ctx.method.long})`);
  const r = await previousEpochTeacher({ model, snapshot, terms: ctx.createTerms, epochs: ctx.epochs, warmup: k.warmup, every: k.every, name, fit: ctx.fit, id: s.name });
  const last = r.teacherEpochs[r.teacherEpochs.length - 1]!;
  models.unshift({ id: s.name, name, model, method: `from its snapshot every ${k.every} epoch${k.every === 1 ? '' : 's'} after ${k.warmup} on the labels: ${ctx.method.long}`, history: r.history, trainSeconds: r.seconds });
  return {
    models,
    reference: { kind: 'model', produced: { id: `${s.name}.snapshot`, name: `${s.name} (snapshot, epoch ${last})`, model: snapshot, method: `the model after epoch ${last}: the last teacher`, history: [], trainSeconds: 0 } },
    tables: [{
      title: 'Previous-epoch teacher: who taught each epoch',
      note: 'Per training epoch: the epoch whose end state was the teacher (0: none, labels only), and the validation accuracy after the epoch.',
      columns: ['epoch', 'teacher: model after epoch', 'validation accuracy'],
      rows: r.history.map((h, i) => [String(h.epoch), i < k.warmup ? '— (labels)' : String(r.teacherEpochs[i - k.warmup]), pct(h.valAccuracy)]),
      data: r.history.map((h, i) => ({ epoch: h.epoch, teacherEpoch: i < k.warmup ? null : r.teacherEpochs[i - k.warmup]!, valAccuracy: h.valAccuracy ?? null })),
    }],
  };
}

/** The self-distillation schemes by key. */
export const selfSchemes: Record<string, Scheme> = {
  byot: {
    describe: 'Be Your Own Teacher: the deepest classifier teaches early exits attached by layer name (kwargs: exits, hint, hintLoss, featureLayer, baselines)',
    kwargs: byotKwargs as unknown as z.ZodType<Record<string, unknown>>,
    check: (terms) => checkSelfTerms('byot', terms),
    run: runByot,
  },
  'born-again': {
    describe: 'born-again networks: generation g+1 (same architecture) learns from generation g (kwargs: generations, ensemble)',
    kwargs: bornAgainKwargs as unknown as z.ZodType<Record<string, unknown>>,
    check: (terms) => checkSelfTerms('born-again', terms),
    run: runBornAgain,
  },
  'previous-epoch': {
    describe: 'previous-epoch teacher: a snapshot of the model from an earlier epoch teaches it (kwargs: every, warmup)',
    kwargs: previousEpochKwargs as unknown as z.ZodType<Record<string, unknown>>,
    check: (terms) => checkSelfTerms('previous-epoch', terms),
    run: runPreviousEpoch,
  },
};
