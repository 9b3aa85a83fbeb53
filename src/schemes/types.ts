/**
 * What a distillation scheme is (`scheme: { key, kwargs }`): who trains, who teaches, in
 * which phases. A scheme gets everything it needs in a `SchemeContext` — data, the frozen
 * teacher, student factories, knowledge-term factories, the training settings, and `fit`,
 * the one checkpointed training loop (progress, per-epoch checkpoints, resume, Ctrl-C) —
 * and returns the models it produced with their histories and training times. The run
 * evaluates, reports and exports them. The schemes themselves are registered in `index.ts`.
 */
import type * as tf from '@tensorflow/tfjs';
import type { z } from 'zod';
import type { ComponentNode } from '../config/experiment.js';
import type { ExperimentData } from '../data/sources.js';
import type { EvaluatedTeacher } from '../eval/evaluate.js';
import type { ReportSection } from '../eval/types.js';
import type { Teacher } from '../teachers/types.js';
import type { Fit } from '../train/fit.js';
import type { EpochRecord, WeightedTerm } from '../train/types.js';

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
  /** The external teacher's parameter count, when known (a LayersModel, or given by its source). */
  teacherParams?: number;
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
