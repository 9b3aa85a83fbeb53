/**
 * Distillation schemes (`scheme: { key, kwargs }`): who trains, who teaches, in which
 * phases. A scheme gets everything it needs in a `SchemeContext` — data, the frozen
 * teacher, student factories, knowledge-term factories, the training settings, and `fit`,
 * the one checkpointed training loop (progress, per-epoch checkpoints, resume, Ctrl-C) —
 * and returns the models it produced with their histories and training times. The run
 * evaluates, reports and exports them.
 *
 * `offline` (Hinton et al. 2015): a frozen, pre-trained teacher; each student learns from
 * it with the configured terms; with `baseline`, the same student (same initial weights,
 * data order and epochs) also learns from the labels alone, so the report can say what
 * distilling bought. Terms with `stage: hint` (FitNets) first train alone for their
 * `hintEpochs` (default a quarter of the epochs), then the other terms for all the epochs.
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { ComponentNode } from '../config/experiment.js';
import { createTerm } from '../knowledge/index.js';
import { UserError } from '../errors.js';
import { Registry } from '../registry.js';
import type { Teacher } from '../teachers/types.js';
import type { EpochRecord, WeightedTerm } from '../train/types.js';
import type { EvaluatedTeacher } from '../eval/evaluate.js';
import type { ReportSection } from '../eval/types.js';
import { onlineSchemes } from '../schemes/online.js';
import { selfSchemes } from '../schemes/self.js';
import type { ExperimentData } from './data-sources.js';
import type { Fit } from './fit.js';

/** Builds one configured student. */
export interface StudentFactory {
  /** The student's name in the config, e.g. `small`. */
  name: string;
  /** Its zoo node, e.g. `{ key: 'cnn', kwargs: { width: 0.25 } }`. */
  model: ComponentNode;
  /**
   * A new model with this seed's initial weights: every call gives the same weights.
   * `variant` k > 0 gives another initialization, as well seeded (cohort peers of one
   * architecture, born-again generations), in a model named `<name>-<k>`.
   */
  build(variant?: number): tf.LayersModel;
}

export interface SchemeContext {
  seed: number;
  data: ExperimentData;
  /**
   * The experiment's frozen teacher (its outputs on the training rows are cached by the
   * trainer); absent with `teacher: { key: none }`, when a scheme that makes its own
   * teacher returns it as `reference` for the report's teacher column.
   */
  teacher?: Teacher;
  students: StudentFactory[];
  /** Fresh instances of the configured knowledge terms with their weights (dispose them after use). */
  createTerms(): WeightedTerm[];
  /** The configured terms, short (`kd`, `logits-mse+ce`) and long (`kd(temperature=4, alpha=0.9)`). */
  method: { short: string; long: string };
  /** Whether the experiment asks for label-only baselines. */
  baseline: boolean;
  /** The experiment's epochs (a phase's default). */
  epochs: number;
  /** The scheme's own kwargs, validated by its schema. */
  kwargs: Record<string, unknown>;
  /** The checkpointed training loop; every phase of a scheme goes through it. */
  fit: Fit;
  log(line: string): void;
  /** The run's stop signal (Ctrl-C), for schemes that wait for data between phases. */
  signal?: AbortSignal;
}

/** A model a scheme produced: evaluated on the test set, reported and exported. */
export interface ProducedModel {
  /** File-safe: the export folder `students/<id>/`. */
  id: string;
  /** Name in reports, e.g. `small (kd)`. */
  name: string;
  model: tf.LayersModel;
  /** How it was trained, e.g. `kd(temperature=4)` or `labels only`. */
  method: string;
  /** Trained on labels only (same architecture): the report compares the others with it. */
  baseline?: boolean;
  history: EpochRecord[];
  trainSeconds: number;
  /**
   * Frees it after the report; default `model.dispose()`. A model that shares layers with
   * another produced model (an early exit over its network) frees only its own layers.
   */
  dispose?(): void;
}

/**
 * The scheme's own teacher, shown in the report's teacher column when the experiment has
 * no external teacher (`teacher: { key: none }`): a produced model (the deepest exit, the
 * first generation, the online teacher), or an ensemble evaluated from its members.
 */
export type SchemeReference =
  | { kind: 'model'; produced: ProducedModel }
  | { kind: 'ensemble'; evaluated: EvaluatedTeacher; method: string; trainSeconds?: number };

export interface SchemeResult {
  models: ProducedModel[];
  /** The teacher column when the experiment has no teacher of its own (required then). */
  reference?: SchemeReference;
  /** Extra report tables (per chunk, per exit, per generation…). */
  tables?: ReportSection[];
}

export interface Scheme {
  describe: string;
  /** Learns from a frozen external teacher (`offline`): `teacher: { key: none }` is refused. */
  needsTeacher?: boolean;
  kwargs: z.ZodType<Record<string, unknown>>;
  /** Checks the configured terms before anything runs (throw a `UserError`). */
  check?(terms: readonly WeightedTerm[], kwargs: Record<string, unknown>): void;
  run(ctx: SchemeContext): Promise<SchemeResult>;
}

/** Terms that ask to run as a first, separate stage (FitNets' hint training: `stage: hint`). */
function stages(terms: WeightedTerm[]): { hint: WeightedTerm[]; main: WeightedTerm[] } {
  const isHint = (t: WeightedTerm) => (t.term as { stage?: string }).stage === 'hint';
  return { hint: terms.filter(isHint), main: terms.filter((t) => !isHint(t)) };
}

/** Trains each student on labels (baseline) and with the configured terms from the frozen teacher. */
async function offline(ctx: SchemeContext): Promise<SchemeResult> {
  const models: ProducedModel[] = [];
  for (const s of ctx.students) {
    if (ctx.baseline) {
      const name = `${s.name} (labels)`;
      const model = s.build();
      const terms = [{ term: createTerm('ce'), weight: 1 }];
      ctx.log(`seed ${ctx.seed}: ${name} learns from the labels only`);
      const r = await ctx.fit({ id: `${s.name}.labels`, label: name, learners: [{ name, model, terms }] });
      models.push({ id: `${s.name}.labels`, name, model, method: 'labels only', baseline: true, history: r.history[name] ?? [], trainSeconds: r.seconds });
    }
    const name = `${s.name} (${ctx.method.short})`;
    const model = s.build();
    const terms = ctx.createTerms();
    const { hint, main } = stages(terms);
    ctx.log(`seed ${ctx.seed}: ${name} learns from the teacher: ${ctx.method.long}`);
    try {
      let history: EpochRecord[] = [];
      let seconds = 0;
      if (hint.length > 0) {
        // FitNets' stage 1: the hint terms alone train the student up to its guided layer.
        const epochs = Math.max(...hint.map(({ term }) => (term as { hintEpochs?: number }).hintEpochs ?? Math.max(1, Math.round(ctx.epochs / 4))));
        const r = await ctx.fit({ id: `${s.name}.hint`, label: `${name} hint stage`, learners: [{ name, model, terms: hint }], teacher: ctx.teacher, epochs });
        history = r.history[name] ?? [];
        seconds = r.seconds;
      }
      const r = await ctx.fit({ id: s.name, label: name, learners: [{ name, model, terms: main }], teacher: ctx.teacher });
      history = [...history, ...(r.history[name] ?? []).map((e) => ({ ...e, epoch: e.epoch + history.length }))];
      models.push({ id: s.name, name, model, method: ctx.method.long, history, trainSeconds: seconds + r.seconds });
    } finally {
      terms.forEach(({ term }) => term.dispose());
    }
  }
  return { models };
}

/**
 * The scheme registry: `offline`; online (`dml`, `ensemble`, `streaming`: `src/schemes/online.ts`);
 * self-distillation (`byot`, `born-again`, `previous-epoch`: `src/schemes/self.ts`).
 */
export const schemes = new Registry<Scheme>('scheme')
  .register('offline', {
    describe: 'frozen pre-trained teacher → students',
    needsTeacher: true,
    kwargs: z.strictObject({}),
    check(terms) {
      const { hint, main } = stages([...terms]);
      if (hint.length > 0 && main.length === 0) {
        throw new UserError(`\`${hint[0]!.term.key}\` with stage: hint is only the first stage; add the terms of the second stage (e.g. kd or ce), or use stage: joint`);
      }
    },
    run: offline,
  })
  .register('dml', onlineSchemes['dml']!)
  .register('ensemble', onlineSchemes['ensemble']!)
  .register('streaming', onlineSchemes['streaming']!)
  .register('byot', selfSchemes['byot']!)
  .register('born-again', selfSchemes['born-again']!)
  .register('previous-epoch', selfSchemes['previous-epoch']!);
