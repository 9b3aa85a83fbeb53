/**
 * Previous-epoch teacher — self-distillation across time, as in PS-KD (Kim et al. 2021,
 * "Self-Knowledge Distillation with Progressive Refinement of Targets") and snapshot
 * distillation (Yang et al. 2019):
 *
 *   epochs < w:   L = CE(y, p_θ)
 *   epoch e ≥ w:  L = terms(z_θ, teacher z_θ')     θ' = θ at the start of the last epoch e'
 *                                                   with (e' − w) divisible by k
 *
 * The model learns from a frozen snapshot of itself: after `warmup` w epochs on the labels,
 * the snapshot is refreshed from the current weights every `every` k epochs (k = 1: always
 * the previous epoch's model). The snapshot is a second model of the same architecture; a
 * checkpoint keeps its weights (as state of a loss-free term), so a resumed run learns from
 * exactly the snapshot it would have had.
 * When it helps: no teacher at all; the model's own earlier, softer predictions act as
 * adaptive label smoothing (better calibration, often a small accuracy gain).
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { createTerm } from '../knowledge/index.js';
import type { KnowledgeTerm } from '../knowledge/types.js';
import { parseOptions } from '../options.js';
import { layersTeacher } from '../teachers/layers.js';
import type { Teacher } from '../teachers/types.js';
import type { Fit } from '../train/fit.js';
import type { EpochRecord, Learner, WeightedTerm } from '../train/types.js';
import { checkSelfTerms, disposeTerms, labelsBaseline, oneStudent, pct } from './common.js';
import type { ProducedModel, Scheme, SchemeContext, SchemeResult } from './types.js';

/** A loss-free term that carries the snapshot's weights as state, so checkpoints keep and restore them. */
export function snapshotKeeper(snapshot: tf.LayersModel): KnowledgeTerm & { stateVariables(): tf.Variable[] } {
  return {
    key: 'snapshot',
    needs: { teacher: false },
    compute: () => ({}),
    trainableVariables: () => [],
    stateVariables: () => snapshot.weights.map((w) => w.read() as tf.Variable),
    dispose: () => {},
  };
}

/** The previous-epoch scheme's knobs: one schema for the API (`previousEpochTeacher`) and the experiment file. */
export const previousEpochKnobs = z.strictObject({
  /** Refresh the snapshot every k epochs. */
  every: z.int().positive().default(1),
  /** Epochs on the labels before the first snapshot. */
  warmup: z.int().min(0).default(1),
});

export type PreviousEpochOptions = z.input<typeof previousEpochKnobs> & {
  /** The model that learns. */
  model: tf.LayersModel;
  /** A model of the same architecture that holds the teacher snapshot (its own weights are overwritten). */
  snapshot: tf.LayersModel;
  /** Fresh terms, e.g. `() => [{ term: createTerm('kd', { temperature: 2, alpha: 0.5 }), weight: 1 }]`. */
  terms: () => WeightedTerm[];
  /** All epochs, warmup included. */
  epochs: number;
  name: string;
  fit: Fit;
  /** Phase id. Default `previous-epoch`. */
  id?: string;
};

export interface PreviousEpochResult {
  history: EpochRecord[];
  seconds: number;
  /** The epochs (1-based, warmup included) whose end state each training epoch's teacher was, in order. */
  teacherEpochs: number[];
}

/** `term` from epoch `from` on (before it: no loss), reading the epoch from `epoch()`. */
function fromEpoch(term: KnowledgeTerm, from: number, epoch: () => number, before = false): KnowledgeTerm {
  const on = () => epoch() >= from !== before;
  return {
    key: term.key,
    needs: term.needs,
    ...(term.prepare && { prepare: (shapes) => term.prepare!(shapes) }),
    compute: (inputs) => (on() ? term.compute(inputs) : {}),
    trainableVariables: () => term.trainableVariables(),
    ...(term.stateVariables && { stateVariables: () => term.stateVariables!() }),
    // schedules (pskd's α, ctkd's λ) follow the run's epoch
    ...(term.onEpochBegin && { onEpochBegin: (e: number) => term.onEpochBegin!(e) }),
    ...(term.describeState && { describeState: () => term.describeState!() }),
    dispose: () => term.dispose(),
  };
}

/**
 * Warmup on the labels, then learning from the snapshot; see the module comment. One training
 * phase: one optimizer and one learning-rate schedule over all epochs, warmup included (as a
 * PyTorch loop that switches its loss after the warmup), so the warmup is not a run of its own
 * whose schedule decays to 0 before the self-distillation starts.
 */
export async function previousEpochTeacher(o: PreviousEpochOptions): Promise<PreviousEpochResult> {
  const { warmup, every } = parseOptions('scheme `previous-epoch`', previousEpochKnobs, {
    warmup: o.warmup,
    every: o.every,
  });
  if (o.epochs <= warmup)
    throw new UserError(`previous-epoch needs more epochs (${o.epochs}) than warmup epochs (${warmup})`);
  if (o.snapshot.weights.length !== o.model.weights.length)
    throw new UserError('the snapshot must have the architecture of the model');
  let epoch = 0;
  const now = () => epoch;
  const learners: Learner[] = [
    {
      name: o.name,
      model: o.model,
      terms: [
        ...(warmup > 0 ? [{ term: fromEpoch(createTerm('ce'), warmup, now, true), weight: 1 }] : []),
        ...o.terms().map(({ term, weight }) => ({ term: fromEpoch(term, warmup, now), weight })),
        { term: snapshotKeeper(o.snapshot), weight: 1 },
      ],
    },
  ];
  const snapshot = layersTeacher({ model: o.snapshot });
  // during the warmup nobody reads the snapshot's logits: zeros instead of a forward pass
  const teacher: Teacher = {
    ...snapshot,
    predict: (x, options) =>
      epoch < warmup
        ? Promise.resolve({ logits: tf.zeros([x.shape[0], snapshot.numClasses]) as tf.Tensor2D, taps: {} })
        : snapshot.predict(x, options),
  };
  const teacherEpochs = Array.from({ length: o.epochs - warmup }, (_, e) => warmup + e - (e % every));
  try {
    const r = await o.fit({
      id: o.id ?? 'previous-epoch',
      label: `${o.name} (warmup on labels, then from its snapshot)`,
      learners,
      teacher,
      cacheTeacher: false,
      epochs: o.epochs,
      callbacks: {
        // At the start of the epoch (after a resume has restored the snapshot): refresh when due.
        onEpochBegin: (e) => {
          epoch = e;
          if (e >= warmup && (e - warmup) % every === 0) o.snapshot.setWeights(o.model.getWeights());
        },
      },
    });
    return { history: r.history[o.name] ?? [], seconds: r.seconds, teacherEpochs };
  } finally {
    disposeTerms(learners);
  }
}

async function runPreviousEpoch(ctx: SchemeContext): Promise<SchemeResult> {
  const k = ctx.kwargs as z.output<typeof previousEpochKnobs>;
  const s = oneStudent(ctx, 'previous-epoch');
  if (ctx.epochs <= k.warmup)
    throw new UserError(
      `previous-epoch needs more epochs (${ctx.epochs}) than warmup epochs (${k.warmup}); raise epochs or lower scheme.kwargs.warmup`,
    );
  const models: ProducedModel[] = [];
  if (ctx.baseline) models.push(await labelsBaseline(ctx, s));
  const name = `${s.name} (previous-epoch)`;
  const model = s.build();
  const snapshot = s.build();
  ctx.log(
    `seed ${ctx.seed}: ${name}: ${k.warmup} warmup epoch${k.warmup === 1 ? '' : 's'} on the labels, then learns from its snapshot, refreshed every ${k.every} epoch${k.every === 1 ? '' : 's'} (${ctx.method.long})`,
  );
  const r = await previousEpochTeacher({
    model,
    snapshot,
    terms: ctx.createTerms,
    epochs: ctx.epochs,
    warmup: k.warmup,
    every: k.every,
    name,
    fit: ctx.fit,
    id: s.name,
  });
  const last = r.teacherEpochs[r.teacherEpochs.length - 1]!;
  models.unshift({
    id: s.name,
    name,
    model,
    method: `previous-epoch: from its snapshot every ${k.every} epoch${k.every === 1 ? '' : 's'} after ${k.warmup} on the labels: ${ctx.method.long}`,
    history: r.history,
    trainSeconds: r.seconds,
  });
  return {
    models,
    reference: {
      kind: 'model',
      produced: {
        id: `${s.name}.snapshot`,
        name: `${s.name} (snapshot, epoch ${last})`,
        model: snapshot,
        method: `the model after epoch ${last}: the last teacher`,
        history: [],
        trainSeconds: 0,
      },
    },
    tables: [
      {
        title: 'Previous-epoch teacher: who taught each epoch',
        note: 'Per training epoch: the epoch whose end state was the teacher (0: none, labels only), and the validation accuracy after the epoch.',
        columns: ['epoch', 'teacher: model after epoch', 'validation accuracy'],
        rows: r.history.map((h, i) => [
          String(h.epoch),
          i < k.warmup ? '— (labels)' : String(r.teacherEpochs[i - k.warmup]),
          pct(h.valAccuracy),
        ]),
        data: r.history.map((h, i) => ({
          epoch: h.epoch,
          teacherEpoch: i < k.warmup ? null : r.teacherEpochs[i - k.warmup]!,
          valAccuracy: h.valAccuracy ?? null,
        })),
      },
    ],
  };
}

/**
 * The `previous-epoch` scheme of an experiment: its one student taught by its own snapshot,
 * with a label-only twin and the who-taught-each-epoch table. The report's teacher column,
 * without an external teacher, is the last snapshot.
 */
export const previousEpochScheme: Scheme = {
  describe: 'previous-epoch teacher: a snapshot of the model from an earlier epoch teaches it (kwargs: every, warmup)',
  kwargs: previousEpochKnobs as unknown as z.ZodType<Record<string, unknown>>,
  check: (terms) => checkSelfTerms('previous-epoch', terms),
  run: runPreviousEpoch,
};
