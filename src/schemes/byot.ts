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
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { fitnetsTerm } from '../knowledge/feature/fitnets.js';
import { SIMILARITIES, type Similarity } from '../knowledge/feature/similarity.js';
import { createTerm } from '../knowledge/index.js';
import { parseOptions } from '../options.js';
import type { Fit, FitResult } from '../train/fit.js';
import type { Learner, TeacherSelector, WeightedTerm } from '../train/types.js';
import { checkSelfTerms, detached, disposeTerms, gain, measure, oneStudent, pct } from './common.js';
import { attachExits, type ExitModel, type ExitSpec } from './exits.js';
import type { ProducedModel, Scheme, SchemeContext, SchemeResult } from './types.js';

/**
 * Learner 0 (the deepest) has no teacher; every other learner is taught by learner 0's logits and `featureLayer`
 * tap.
 */
export function deepestTeaches(featureLayer: string): TeacherSelector {
  return ({ learner, logits, taps }) =>
    learner === 0
      ? {}
      : {
          logits: detached(logits[0]!),
          taps: { [featureLayer]: detached(taps[0]![featureLayer]!) },
        };
}

/** BYOT's knobs: one schema for the API (`beYourOwnTeacher`) and the experiment file (`scheme.kwargs`). */
export const byotKnobs = z.strictObject({
  /** Weight λ of the feature hint (0: off). */
  hint: z.number().min(0).default(1),
  /** L_F of the hint. */
  hintLoss: z.enum(SIMILARITIES as unknown as [Similarity, ...Similarity[]]).default('mse'),
  /** The network's deepest features layer. */
  featureLayer: z.string().min(1).default('features'),
});

export type ByotOptions = z.input<typeof byotKnobs> & {
  /** The whole network (its output: the deepest classifier). */
  model: tf.LayersModel;
  /** Its exits (`attachExits`). */
  exits: ExitModel[];
  /** Shape of the deepest features (from `attachExits`). */
  featureShape: readonly number[];
  /** Fresh terms for one exit, e.g. `() => [{ term: createTerm('kd', { temperature: 3, alpha: 0.3 }), weight: 1 }]`. */
  terms: () => WeightedTerm[];
  /** Learner names: `<name>` for the deepest, `<name> <exit>` for the exits. Default the model's name. */
  name?: string;
  fit: Fit;
  /** Phase id. Default `byot`. */
  id?: string;
  epochs?: number;
  /** `self` (default): BYOT. `labels`: every exit on CE alone, no teacher (deep supervision, the ablation). */
  mode?: 'self' | 'labels';
};

/** Trains the network and its exits together; histories by learner name (see `name`). */
export async function beYourOwnTeacher(o: ByotOptions): Promise<FitResult & { names: string[] }> {
  const { hint, hintLoss, featureLayer } = parseOptions('scheme `byot`', byotKnobs, {
    hint: o.hint,
    hintLoss: o.hintLoss,
    featureLayer: o.featureLayer,
  });
  const name = o.name ?? o.model.name;
  const ce = () => [{ term: createTerm('ce'), weight: 1 }];
  const self = (o.mode ?? 'self') === 'self';
  const learners: Learner[] = [
    { name, model: o.model, terms: ce(), ...(self && { taps: [featureLayer] }) },
    ...o.exits.map((e) => ({
      name: `${name} ${e.name}`,
      model: e.model,
      terms: !self
        ? ce()
        : [
            ...o.terms(),
            ...(hint > 0
              ? [
                  {
                    term: fitnetsTerm({
                      student: e.featureLayer,
                      teacher: featureLayer,
                      beta: hint,
                      loss: hintLoss,
                    }),
                    weight: 1,
                  },
                ]
              : []),
          ],
    })),
  ];
  try {
    const r = await o.fit({
      id: o.id ?? 'byot',
      label: self ? `${name} + ${o.exits.length} exits (byot)` : `${name} + ${o.exits.length} exits (labels)`,
      learners,
      ...(self && {
        selectTeacher: deepestTeaches(featureLayer),
        teacherTapShapes: { [featureLayer]: o.featureShape },
      }),
      ...(o.epochs !== undefined && { epochs: o.epochs }),
    });
    return { ...r, names: learners.map((l) => l.name) };
  } finally {
    disposeTerms(learners);
  }
}

const exitSpec = z.strictObject({
  after: z.string().min(1),
  channels: z.int().positive().optional(),
  kernelSize: z.int().positive().optional(),
  stride: z.int().positive().optional(),
});
const byotKwargs = byotKnobs.extend({
  /** Where the exits go, shallow to deep: `[{after: block1_pool}, …]`. */
  exits: z.array(exitSpec).min(1),
  /**
   * With `baseline: true`: the plain network on the labels, the same network with exits each on the labels (deep
   * supervision), or both.
   */
  baselines: z.array(z.enum(['plain', 'deep-supervision'])).default(['plain', 'deep-supervision']),
});

async function runByot(ctx: SchemeContext): Promise<SchemeResult> {
  const k = ctx.kwargs as z.output<typeof byotKwargs>;
  const s = oneStudent(ctx, 'byot');
  const test = ctx.data.test;
  const build = (seed: number) => {
    const net = s.build();
    return {
      net,
      ...attachExits({ model: net, exits: k.exits as ExitSpec[], featureLayer: k.featureLayer, seed: ctx.seed + seed }),
    };
  };
  const models: ProducedModel[] = [];
  const produce = (
    net: ReturnType<typeof build>,
    suffix: string,
    idSuffix: string,
    method: string,
    r: { history: Record<string, unknown[]>; seconds: number },
    names: string[],
    baseline: boolean,
  ) => {
    const list: ProducedModel[] = [
      {
        id: `${s.name}${idSuffix}`,
        name: `${s.name} (${suffix})`,
        model: net.net,
        method,
        history: (r.history[names[0]!] ?? []) as ProducedModel['history'],
        trainSeconds: r.seconds,
        ...(baseline && { baseline }),
      },
      ...net.exits.map((e, i) => ({
        id: `${s.name}${idSuffix}.${e.name}`,
        name: `${s.name} ${e.name} (${suffix})`,
        model: e.model,
        method: `${method}; early exit after ${e.after}`,
        // Trained in the same phase as the network: its time is the phase's.
        history: (r.history[names[i + 1]!] ?? []) as ProducedModel['history'],
        trainSeconds: r.seconds,
        dispose: e.dispose,
        ...(baseline && { baseline }),
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
    const r = await ctx.fit({
      id: `${s.name}.labels`,
      label: name,
      learners: [{ name, model: plain, terms: [{ term: createTerm('ce'), weight: 1 }] }],
    });
    plainModel = {
      id: `${s.name}.labels`,
      name,
      model: plain,
      method: 'labels only, no exits',
      baseline: true,
      history: r.history[name] ?? [],
      trainSeconds: r.seconds,
    };
  }
  let ds: ProducedModel[] = [];
  if (ctx.baseline && k.baselines.includes('deep-supervision')) {
    const twin = build(0);
    ctx.log(
      `seed ${ctx.seed}: ${s.name} with ${twin.exits.length} exits, each on the labels (deep supervision, no self-distillation)`,
    );
    const r = await beYourOwnTeacher({
      model: twin.net,
      exits: twin.exits,
      featureShape: twin.featureShape,
      featureLayer: k.featureLayer,
      terms: () => [],
      fit: ctx.fit,
      id: `${s.name}.ds`,
      name: `${s.name} ds`,
      mode: 'labels',
    });
    ds = produce(twin, 'deep supervision', '.ds', 'every exit on the labels (deep supervision)', r, r.names, true);
  }
  ctx.log(
    `seed ${ctx.seed}: ${s.name} with exits after ${k.exits.map((e) => e.after).join(', ')}: the deepest teaches each exit (${ctx.method.long}${k.hint > 0 ? ` + ${k.hint}·${k.hintLoss} hint` : ''})`,
  );
  const r = await beYourOwnTeacher({
    model: net.net,
    exits: net.exits,
    featureShape: net.featureShape,
    featureLayer: k.featureLayer,
    terms: ctx.createTerms,
    hint: k.hint,
    hintLoss: k.hintLoss,
    fit: ctx.fit,
    id: s.name,
    name: s.name,
  });
  const method = `byot: ${ctx.method.long}${k.hint > 0 ? ` + hint ${k.hint}·${k.hintLoss}(${k.featureLayer})` : ''}`;
  const [deepest, ...exits] = produce(net, 'byot', '', method, r, r.names, false);
  models.push(...exits, ...(plainModel ? [plainModel] : []), ...ds);

  // The exits table: each classifier of the network beside its counterparts trained without self-distillation.
  const rows: string[][] = [];
  const data: Array<Record<string, number | string | null>> = [];
  const classifiers = [
    ...net.exits.map((e, i) => ({
      label: e.name,
      after: e.after,
      own: exits[i]!,
      ds: ds[i + 1],
      plain: undefined as ProducedModel | undefined,
    })),
    { label: 'deepest', after: k.featureLayer, own: deepest!, ds: ds[0], plain: plainModel },
  ];
  for (const c of classifiers) {
    const own = await measure({ model: c.own.model, data: test });
    const dsAcc = c.ds ? (await measure({ model: c.ds.model, data: test })).accuracy : undefined;
    const plainAcc = c.plain ? (await measure({ model: c.plain.model, data: test })).accuracy : undefined;
    const params = c.own.model.countParams();
    rows.push([
      c.label,
      c.after,
      params.toLocaleString('en-US'),
      pct(own.accuracy),
      pct(dsAcc),
      gain(own.accuracy, dsAcc),
      pct(plainAcc),
      gain(own.accuracy, plainAcc),
    ]);
    data.push({
      exit: c.label,
      after: c.after,
      params,
      accuracy: own.accuracy,
      deepSupervisionAccuracy: dsAcc ?? null,
      plainAccuracy: plainAcc ?? null,
    });
  }
  return {
    models,
    reference: { kind: 'model', produced: deepest! },
    tables: [
      {
        title: 'Be Your Own Teacher: every exit of the network',
        note: 'Test accuracy of each early exit and of the deepest classifier (exits: their own rows in the table above, with size and latency), beside the same network with the same exits each trained on the labels (deep supervision) and the plain network on the labels.',
        columns: [
          'classifier',
          'after',
          'params',
          'accuracy (byot)',
          'deep supervision',
          'gain',
          'plain network',
          'gain',
        ],
        rows,
        data,
      },
    ],
  };
}

/**
 * The `byot` scheme of an experiment: exits attached to its one student by layer name, with
 * label-only counterparts (the plain network, deep supervision) and the exits table. The
 * report's teacher column, without an external teacher, is the deepest classifier.
 */
export const byotScheme: Scheme = {
  describe:
    'Be Your Own Teacher: the deepest classifier teaches early exits attached by layer name (kwargs: exits, hint, hintLoss, featureLayer, baselines)',
  kwargs: byotKwargs as unknown as z.ZodType<Record<string, unknown>>,
  check: (terms) => checkSelfTerms('byot', terms),
  run: runByot,
};
