/**
 * Pieces the online and self-distillation schemes share: detached ensembles of logits, an
 * evaluated ensemble for the report's teacher column, accuracy on held-out data, a `Fit`
 * for API use without a run folder, the formatting of scheme tables, and the checks of the
 * self-distillation schemes.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.js';
import { UserError } from '../errors.js';
import { modelPredictFn, type EvaluatedTeacher } from '../eval/evaluate.js';
import { accuracy, agreement, predictLogits, type PredictFn } from '../eval/metrics.js';
import { modelSize } from '../eval/size.js';
import type { ByteSizes } from '../eval/types.js';
import { createFit, type Fit, type FitSettings } from '../train/fit.js';
import { createTerm } from '../knowledge/index.js';
import { constant } from '../knowledge/response/common.js';
import { train } from '../train/trainer.js';
import type { Learner, OptimizerSpec, WeightedTerm } from '../train/types.js';
import type { ProducedModel, SchemeContext, StudentFactory } from './types.js';

/** The value of `x`, a constant for autodiff: a teacher's logits never pass a gradient back. */
export const detached = constant;

/** One check of ensemble weights for teachers and cohorts alike. */
export { normalizeWeights } from '../teachers/ensemble.js';

/** Σ_j w_j · z_j: the weighted average of logits (weights summing to 1). */
export function averageLogits(logits: readonly tf.Tensor2D[], weights: readonly number[]): tf.Tensor2D {
  return tf.tidy(() => logits.map((z, j) => z.mul(weights[j]!) as tf.Tensor2D).reduce((a, b) => a.add(b)));
}

/** A forward pass of several models whose logits are averaged with `weights` (inference mode). */
export function ensemblePredict(models: readonly tf.LayersModel[], weights: readonly number[]): PredictFn {
  return (x) =>
    tf.tidy(() =>
      averageLogits(
        models.map((m) => m.predict(x, { batchSize: x.shape[0] }) as tf.Tensor2D),
        weights,
      ),
    );
}

/** The cohort's ensemble as the report's teacher column: its predictions, its size the sum of its members'. */
export function ensembleEvaluated({
  name,
  models,
  weights,
}: {
  name: string;
  models: readonly tf.LayersModel[];
  weights: readonly number[];
}): EvaluatedTeacher {
  const sizes = models.map((m) => modelSize({ model: m }));
  const bytes: ByteSizes = { float32: 0, float16: 0, uint8: 0 };
  for (const s of sizes) for (const k of Object.keys(bytes) as Array<keyof ByteSizes>) bytes[k] += s.bytes[k];
  return { name, predict: ensemblePredict(models, weights), params: sizes.reduce((n, s) => n + s.params, 0), bytes };
}

/** Test logits, accuracy and (optionally) top-1 agreement with reference logits. */
export async function measure({
  predict,
  model,
  data,
  reference,
}: {
  predict?: PredictFn;
  model?: tf.LayersModel;
  data: Dataset;
  reference?: Float32Array;
}): Promise<{ logits: Float32Array; accuracy: number; agreement?: number }> {
  const fn = predict ?? modelPredictFn(model!);
  const logits = await predictLogits({ predict: fn, data });
  const numClasses = data.numClasses;
  return {
    logits,
    accuracy: accuracy({ logits, labels: data.labels, numClasses }),
    ...(reference !== undefined && { agreement: agreement({ logits, teacherLogits: reference, numClasses }) }),
  };
}

/** A percentage with two decimals, e.g. `91.24 %`; `—` when unknown. */
export function pct(x: number | undefined): string {
  return x === undefined ? '—' : `${(x * 100).toFixed(2)} %`;
}

/** Disposes the terms of learners (their adapters, memory banks). */
export function disposeTerms(learners: readonly Learner[]): void {
  for (const l of learners) l.terms.forEach(({ term }) => term.dispose());
}

export interface SimpleFitOptions {
  train: Dataset;
  validation?: Dataset;
  epochs: number;
  batchSize: number;
  seed: number;
  optimizer?: OptimizerSpec;
  schedule?: 'constant' | 'cosine';
  /** With a folder, phases are checkpointed there and resume (`createFit`); else they just train. */
  checkpointDir?: string;
  /** Progress output (with `checkpointDir`); default quiet. */
  progress?: FitSettings['progress'];
}

/**
 * A `Fit` for calling the schemes from code: every phase through `train()` with these
 * settings, checkpointed and resumable when `checkpointDir` is given.
 */
export function simpleFit(o: SimpleFitOptions): Fit {
  const optimizer = { key: 'adam', ...o.optimizer };
  if (o.checkpointDir !== undefined) {
    return createFit({
      seed: o.seed,
      data: { name: 'data', train: o.train, validation: o.validation, test: o.validation ?? o.train },
      epochs: o.epochs,
      batchSize: o.batchSize,
      optimizer,
      schedule: o.schedule ?? 'constant',
      checkpointDir: o.checkpointDir,
      progress: o.progress ?? 'quiet',
    });
  }
  return async (phase) => {
    const r = await train({
      learners: phase.learners,
      teacher: phase.teacher,
      selectTeacher: phase.selectTeacher,
      teacherTapShapes: phase.teacherTapShapes,
      cacheTeacher: phase.cacheTeacher,
      train: phase.train ?? o.train,
      validation: phase.validation ?? o.validation,
      epochs: phase.epochs ?? o.epochs,
      batchSize: o.batchSize,
      optimizer,
      schedule: o.schedule,
      seed: o.seed,
      callbacks: phase.callbacks,
    });
    return { history: r.history, seconds: r.seconds, restored: false };
  };
}

// Self-distillation (byot, born-again, previous-epoch): the experiment's one student is the network.

/** The student trained on the labels only (phase `<name>.labels`): the baseline every verdict compares with. */
export async function labelsBaseline(ctx: SchemeContext, s: StudentFactory): Promise<ProducedModel> {
  const name = `${s.name} (labels)`;
  const model = s.build();
  const terms = [{ term: createTerm('ce'), weight: 1 }];
  const rows = labeledRows(ctx);
  ctx.log(`seed ${ctx.seed}: ${name} learns from the labels only${rows.note}`);
  const r = await ctx.fit({
    id: `${s.name}.labels`,
    label: name,
    learners: [{ name, model, terms }],
    ...(rows.train && { train: rows.train, epochs: rows.epochs }),
  });
  return {
    id: `${s.name}.labels`,
    name,
    model,
    method: 'labels only',
    baseline: true,
    history: r.history[name] ?? [],
    trainSeconds: r.seconds,
  };
}

/**
 * What a label-only model trains on when some training rows are unlabeled: the labeled rows, for
 * as many optimizer steps as the experiment's epochs over all rows take (epochs × rows ÷ labeled
 * rows) — the same training compute as the distilled student's, the usual semi-supervised
 * baseline. Nothing to change when every row has a label.
 */
export function labeledRows(ctx: SchemeContext): { train?: Dataset; epochs?: number; note: string } {
  const all = ctx.data.train;
  const labeled = all.labeledSize;
  if (labeled === all.size) return { note: '' };
  if (labeled === 0)
    throw new UserError(
      'no training row has a label, so there is no label-only baseline; set baseline: false, or give some labeled rows',
    );
  const epochs = Math.max(ctx.epochs, Math.round((ctx.epochs * all.size) / labeled));
  return {
    train: all.labeledOnly(),
    epochs,
    note: ` (${labeled.toLocaleString('en-US')} labeled of ${all.size.toLocaleString('en-US')} rows, ${epochs} epochs: the distilled student's ${ctx.epochs} epochs' steps)`,
  };
}

/** The experiment's one student (a `UserError` with more). */
export function oneStudent(ctx: SchemeContext, scheme: string): StudentFactory {
  if (ctx.students.length !== 1)
    throw new UserError(
      `${scheme} distils one network into itself; the experiment lists ${ctx.students.length} students — keep one`,
    );
  return ctx.students[0]!;
}

/** Response terms only: the self-teacher gives logits (and, in byot, the deepest features to the hint). */
export function checkSelfTerms(scheme: string, terms: readonly WeightedTerm[]): void {
  const tapped = terms.find(({ term }) => (term.needs.teacherTaps ?? []).length > 0);
  if (tapped)
    throw new UserError(
      `\`${tapped.term.key}\` taps a teacher's layers; in ${scheme} the self-teacher gives its logits${scheme === 'byot' ? " (the feature hint is the scheme's own: kwargs hint, hintLoss)" : ''}; use response terms (kd, soft-ce, logits-mse, dkd…)`,
    );
  if (!terms.some(({ term }) => term.needs.teacher))
    throw new UserError(`no term learns from a teacher, so ${scheme} would be plain training; add kd`);
}

/** `+0.42 pts` / `−0.42 pts`: accuracy a over b; `—` when b is unknown. */
export const gain = (a: number, b: number | undefined): string =>
  b === undefined ? '—' : `${a >= b ? '+' : '−'}${(Math.abs(a - b) * 100).toFixed(2)} pts`;
