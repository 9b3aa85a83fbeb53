import type * as tf from '@tensorflow/tfjs';
import type { BatchStream } from '../data/batch-stream.js';
import type { Dataset } from '../data/dataset.js';
import type { Rng } from '../data/rng.js';
import type { KnowledgeTerm } from '../knowledge/types.js';
import type { Teacher, TeacherOutput } from '../teachers/types.js';
import type { QuantGranularity } from './fake-quant.js';

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
  /**
   * More layers to tap on every step beyond those its own terms ask for, so a
   * `selectTeacher` can hand them to other learners (e.g. the deepest features of a
   * network that teaches its own shallow exits).
   */
  taps?: string[];
}

/** One epoch of one learner. Losses are each term's contribution (weight included). */
export interface EpochRecord {
  epoch: number;
  seconds: number;
  losses: Record<string, number>;
  trainAccuracy?: number;
  valAccuracy?: number;
  valLoss?: number;
  /** What the terms learn besides the student, at the epoch's end (e.g. ctkd's `temperature`). */
  termState?: Record<string, number>;
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
  onBatchBegin?(batch: number): void | Promise<void>;
  onBatchEnd?(logs: BatchLogs): void | Promise<void>;
  onEpochEnd?(epoch: number, records: Record<string, EpochRecord>): void | Promise<void>;
  onTrainEnd?(history: Record<string, EpochRecord[]>): void | Promise<void>;
}

/** One teacher of a learner in one step, with its share of the learner's teacher terms. */
export interface TeachingSource {
  logits?: tf.Tensor2D;
  taps?: Record<string, tf.Tensor>;
  /** Multiplies every loss its terms return. */
  weight: number;
}

/**
 * What a selector returns: one teacher (`logits`, `taps`), or several (`teachers`): then
 * every term that needs a teacher is computed once per teacher and the weighted results
 * are summed per loss name (deep mutual learning: each peer, weight 1/(k−1)). Terms that
 * need no teacher are computed once.
 */
export interface Teaching {
  logits?: tf.Tensor2D;
  taps?: Record<string, tf.Tensor>;
  teachers?: TeachingSource[];
}

/**
 * Who teaches a learner in one step. Offline distillation returns the frozen teacher's
 * output; online schemes return peers' (detached) logits. `logits` and `taps` are every
 * learner's outputs of this step, in learner order (`taps` holds what its terms and its
 * `Learner.taps` asked for).
 */
export type TeacherSelector = (context: {
  learner: number;
  logits: tf.Tensor2D[];
  teacher?: TeacherOutput;
  taps: Array<Record<string, tf.Tensor>>;
}) => Teaching;

export interface TrainOptions {
  learners: Learner[];
  /** In memory (a Dataset) or streamed (a BatchStream: no teacher cache, no augmentation, no row indices). */
  train: Dataset | BatchStream;
  /** Evaluated after every epoch (accuracy and cross-entropy of each learner). */
  validation?: Dataset;
  /** A frozen teacher; its outputs are computed outside the gradient tape. */
  teacher?: Teacher;
  /** Who teaches whom; default: the frozen teacher teaches every learner. */
  selectTeacher?: TeacherSelector;
  /**
   * Shapes (without batch) of the taps a `selectTeacher` hands to terms as teacher taps
   * when a learner teaches (no frozen teacher has them), for the terms' `prepare`.
   */
  teacherTapShapes?: Record<string, readonly number[]>;
  /**
   * Cache the frozen teacher's logits per training row (default true, when inputs repeat).
   * Off for a teacher whose weights change during the run (a previous-epoch snapshot).
   */
  cacheTeacher?: boolean;
  epochs: number;
  /** Rows per batch of an in-memory Dataset (a BatchStream brings its own batches). */
  batchSize: number;
  /**
   * An optimizer instance (yours: its state can be checkpointed with getWeights and
   * restored with setWeights) or a registry node, e.g. `{ key: 'adam', learningRate: 1e-3 }`.
   */
  optimizer?: tf.Optimizer | OptimizerSpec;
  /**
   * Learning-rate schedule: `cosine` decays every step, from the optimizer's rate towards 0 at the end of the last
   * epoch. Default constant.
   */
  schedule?: 'constant' | 'cosine';
  seed: number;
  /**
   * The run's random stream (shuffling, augmentation, dropout). Give one to checkpoint
   * its state after an epoch and resume it later (`Rng.fromState`); default `new Rng(seed)`.
   */
  rng?: Rng;
  /** Random ±shift px translation of training images; disables the teacher-output cache. */
  augment?: { shift: number };
  /**
   * Stop when the first learner's validation accuracy has not improved by more than
   * `minDelta` for `patience` epochs. `previous`: its accuracies in epochs before
   * `initialEpoch` (a resumed run), so the count goes on where it was.
   */
  earlyStopping?: {
    patience: number;
    minDelta?: number;
    restoreBest?: boolean;
    previous?: readonly (number | undefined)[];
  };
  callbacks?: TrainCallbacks;
  /** Asked after every epoch's callbacks; true ends training there (e.g. `tf.callbacks.earlyStopping` set it). */
  stopRequested?: () => boolean;
  /** Visit the training rows in a new random order each epoch (default true), or in order. */
  shuffle?: boolean;
  /** Epoch to start from (resume); the caller restores weights and optimizer state. */
  initialEpoch?: number;
  /** Quantization-aware training in the last epochs (see `QuantizationAware`). */
  quantizationAware?: QuantizationAware;
}

/**
 * Quantization-aware distillation (QAD): in the last `lastEpochs` epochs of a phase (all of
 * them when it has fewer) every step's forward pass and gradients see the learners'
 * trainable weights fake-quantized to uint8 (`src/train/fake-quant.ts`), and the gradients
 * update the float weights (straight-through estimator), so the uint8 export keeps the
 * accuracy the float model reached. Validation after each epoch uses the float weights.
 */
export interface QuantizationAware {
  lastEpochs: number;
  /** `tensor` (default): what the TF.js uint8 export stores; `channel`: per output channel of each kernel. */
  granularity?: QuantGranularity;
}

/** An optimizer as a config names it: a key of the `optimizers` registry and its options. */
export interface OptimizerSpec {
  key: string;
  /** e.g. `{ learningRate: 2e-3 }`; see each optimizer's schema in `optimizers.ts`. */
  kwargs?: Record<string, unknown>;
}

export interface TrainResult {
  history: Record<string, EpochRecord[]>;
  seconds: number;
  stoppedEarly: boolean;
}
