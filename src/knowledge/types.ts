import type * as tf from '@tensorflow/tfjs';
import type { CopiedHead } from '../models/taps.js';

/** What one training step hands to every knowledge term. Labels are int32 class ids. */
export interface TermInputs {
  studentLogits: tf.Tensor2D;
  teacherLogits?: tf.Tensor2D;
  labels: tf.Tensor1D;
  numClasses: number;
  /** The dataset row of each sample (for terms that keep per-sample state, e.g. CRD's memory bank). */
  indices?: Int32Array;
  /** Intermediate outputs by layer name, when the term asked for them in `needs`. */
  studentTaps?: Record<string, tf.Tensor>;
  teacherTaps?: Record<string, tf.Tensor>;
}

/** What a term needs from the step, so the trainer only computes that. */
export interface TermNeeds {
  teacher: boolean;
  /**
   * `weak+strong`: the step's batch is the batch as loaded (the weak view) followed by its strong
   * view (`src/data/augment.ts`), 2B rows, labels and indices repeated; the teacher runs on both
   * views, never from a logits cache (mlkd).
   */
  views?: 'weak+strong';
  studentTaps?: string[];
  teacherTaps?: string[];
}

/**
 * A knowledge term: one KD method. It returns named scalar losses (already weighted by
 * its own kwargs such as α); the trainer multiplies by the term's weight, sums, and logs
 * each name. Terms that own variables (adapters) expose them to the optimizer.
 */
/** Shapes (without the batch axis) of the tapped outputs, by name. */
export interface TapShapes {
  student: Record<string, readonly number[]>;
  teacher: Record<string, readonly number[]>;
}

export interface KnowledgeTerm {
  readonly key: string;
  readonly needs: TermNeeds;
  /**
   * Called once before training with the shapes of the taps in `needs`, so a term can
   * create its variables (e.g. adapters Φ) before the optimizer sees the variable list.
   */
  prepare?(shapes: TapShapes): void;
  compute(inputs: TermInputs): Record<string, tf.Scalar>;
  trainableVariables(): tf.Variable[];
  /** Variables the term updates itself (e.g. memory banks, a snapshot's weights): kept in checkpoints. */
  stateVariables?(): tf.Variable[];
  /**
   * `hint`: the term trains alone in a first stage of `hintEpochs` epochs before the other terms
   * (FitNets' two stages; the offline scheme sequences it). Default `joint`: one stage with the others.
   */
  readonly stage?: 'joint' | 'hint';
  /** Epochs of the `hint` stage; unset: the scheme decides. */
  readonly hintEpochs?: number;
  /** Called before each epoch (0-based) of the phase, for terms with a schedule (ctkd's λ). */
  onEpochBegin?(epoch: number): void;
  /**
   * For a term whose student ships with more layers than it was built with (simkd: a projector
   * and the teacher's classifier): the student to train, export and evaluate in place of
   * `student`, made before training (the offline scheme calls it). `teacherLayersAfter` copies
   * the teacher's layers after a tap; undefined when the teacher is not a TF.js LayersModel.
   */
  reshapeStudent?(
    student: tf.LayersModel,
    teacherLayersAfter: ((tap: string) => CopiedHead) | undefined,
  ): tf.LayersModel;
  /** Numbers the term learns besides the student (ctkd's temperature), logged per epoch. */
  describeState?(): Record<string, number>;
  dispose(): void;
}

export type TermFactory<Options = Record<string, unknown>> = (options: Options) => KnowledgeTerm;
