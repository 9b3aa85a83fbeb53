import type * as tf from '@tensorflow/tfjs';
import type { CopiedHead } from '../models/taps.js';

/** What a teacher returns for one batch. The caller disposes every tensor. */
export interface TeacherOutput {
  logits: tf.Tensor2D;
  /** Intermediate outputs by name, when asked for. */
  taps: Record<string, tf.Tensor>;
}

export interface TeacherPredictOptions {
  /** Dataset rows of the batch: lets a cached teacher answer without running the model. */
  indices?: Int32Array;
  /** Names of intermediate outputs to return beside the logits. */
  taps?: string[];
}

/**
 * A frozen, inference-only teacher: a TF.js LayersModel or GraphModel, an ONNX model, or
 * logits cached on disk. `predict` may be asynchronous (ONNX): the trainer awaits it
 * before entering `tf.tidy`.
 */
export interface Teacher {
  readonly kind: string;
  /** One example's shape, without the batch axis, e.g. [28, 28, 1]. */
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  predict(x: tf.Tensor, options?: TeacherPredictOptions): Promise<TeacherOutput>;
  /** Names that can be tapped, with their shapes (without batch), for error messages. */
  tapNames(): Array<{ name: string; shape: readonly (number | null)[] }>;
  /** Copies of the layers from layer `tap` to the output (its classifier, reused by `simkd`); TF.js LayersModel teachers only. */
  layersAfter?(tap: string): CopiedHead;
  dispose(): void;
}
