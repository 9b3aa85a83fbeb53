import type * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.js';
import type { Rng } from '../data/rng.js';
import type { KnowledgeTerm } from '../knowledge/types.js';
import type { Teacher, TeacherOutput } from '../teachers/types.js';

/** A knowledge term and the weight it gets in the learner's total loss. */
export interface WeightedTerm {
  term: KnowledgeTerm;
  weight: number;
}

/** A model that trains, with the terms of its loss. */
export interface Learner {
  name: string;
  model: tf.LayersModel;
  terms: WeightedTerm[];
}

/** One epoch of one learner. Losses are each term's contribution (weight included). */
export interface EpochRecord {
  epoch: number;
  seconds: number;
  losses: Record<string, number>;
  trainAccuracy?: number;
  valAccuracy?: number;
  valLoss?: number;
}

export interface BatchLogs {
  batch: number;
  size: number;
  /** Per learner: each loss name's value on this batch, plus `loss` (the total). */
  losses: Record<string, Record<string, number>>;
}

/** TF.js-style callbacks. Any may be async; the trainer awaits them. */
export interface TrainCallbacks {
  onTrainBegin?(): void | Promise<void>;
  onEpochBegin?(epoch: number): void | Promise<void>;
  onBatchEnd?(logs: BatchLogs): void | Promise<void>;
  onEpochEnd?(epoch: number, records: Record<string, EpochRecord>): void | Promise<void>;
  onTrainEnd?(history: Record<string, EpochRecord[]>): void | Promise<void>;
}

/**
 * Who teaches a learner in one step. Offline distillation returns the frozen teacher's
 * output; online schemes return peers' (detached) logits. `logits` are every learner's
 * logits of this step, in learner order.
 */
export type TeacherSelector = (context: {
  learner: number;
  logits: tf.Tensor2D[];
  teacher?: TeacherOutput;
}) => { logits?: tf.Tensor2D; taps?: Record<string, tf.Tensor> };

export interface TrainOptions {
  learners: Learner[];
  train: Dataset;
  /** Evaluated after every epoch (accuracy and cross-entropy of each learner). */
  validation?: Dataset;
  /** A frozen teacher; its outputs are computed outside the gradient tape. */
  teacher?: Teacher;
  /** Who teaches whom; default: the frozen teacher teaches every learner. */
  selectTeacher?: TeacherSelector;
  epochs: number;
  batchSize: number;
  /**
   * An optimizer instance (yours: its state can be checkpointed with getWeights and
   * restored with setWeights) or a registry node, e.g. `{ key: 'adam', learningRate: 1e-3 }`.
   */
  optimizer?: tf.Optimizer | OptimizerSpec;
  /** Learning-rate schedule over epochs. Default constant. */
  schedule?: 'constant' | 'cosine';
  seed: number;
  /**
   * The run's random stream (shuffling, augmentation, dropout). Give one to checkpoint
   * its state after an epoch and resume it later (`Rng.fromState`); default `new Rng(seed)`.
   */
  rng?: Rng;
  /** Random ±shift px translation of training images; disables the teacher-output cache. */
  augment?: { shift: number };
  /** Stop when the first learner's validation accuracy has not improved for `patience` epochs. */
  earlyStopping?: { patience: number; minDelta?: number; restoreBest?: boolean };
  callbacks?: TrainCallbacks;
  /** Epoch to start from (resume); the caller restores weights and optimizer state. */
  initialEpoch?: number;
}

export interface OptimizerSpec {
  key: string;
  learningRate?: number;
  momentum?: number;
}

export interface TrainResult {
  history: Record<string, EpochRecord[]>;
  seconds: number;
  stoppedEarly: boolean;
}
