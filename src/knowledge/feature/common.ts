/**
 * Shared pieces of the feature- and relation-based terms: the default tap names, what the
 * step must tap, reading a tap (the teacher's held constant), L2 normalisation, and the
 * term skeleton. A tap named `logits` is the logits the step already has: no extra tap,
 * and it works with any teacher, a logits cache included.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../errors.js';
import { constant } from '../response/common.js';
import type { KnowledgeTerm, TapShapes, TermInputs } from '../types.js';

export { weighted, constant } from '../response/common.js';

/** The tap name meaning "the logits", never an extra tap. */
export const LOGITS = 'logits';
/** The zoo's name for the penultimate vector: the default tap of the vector-based terms. */
export const FEATURES = 'features';

export interface TapPair {
  student: string;
  teacher: string;
}
type Compute = (inputs: TermInputs) => Record<string, tf.Scalar>;

const fail = (key: string, text: string): never => {
  throw new UserError(`knowledge term \`${key}\`: ${text}`);
};

/** The shape (without batch) of a tap, from the shapes `prepare` receives. */
export function tapShape(key: string, shapes: TapShapes, side: 'student' | 'teacher', name: string): number[] {
  const sh = shapes[side][name] ?? (name === LOGITS ? (shapes.student[LOGITS] ?? shapes.teacher[LOGITS]) : undefined);
  if (!sh) fail(key, `the ${side} has no output \`${name}\`; name a layer it has`);
  if (!sh!.every((d) => Number.isInteger(d) && d > 0))
    fail(key, `the ${side}'s \`${name}\` has no fixed shape [${sh!.join(',')}]; tap a layer of fixed size`);
  return [...sh!];
}

/** The student's and the (constant) teacher's outputs for one pair of names. */
export function readPair(key: string, inputs: TermInputs, pair: TapPair): { s: tf.Tensor; t: tf.Tensor } {
  const s = pair.student === LOGITS ? inputs.studentLogits : inputs.studentTaps?.[pair.student];
  const t = pair.teacher === LOGITS ? inputs.teacherLogits : inputs.teacherTaps?.[pair.teacher];
  if (!s)
    fail(key, `the step gave no student output \`${pair.student}\`; list it in the term's needs (train() does this)`);
  if (!t)
    fail(
      key,
      `needs the teacher's \`${pair.teacher}\` output; use a teacher whose layers can be tapped (a LayersModel or GraphModel), not a logits cache`,
    );
  if (s!.shape[0] !== t!.shape[0]) fail(key, `student batch ${s!.shape[0]} and teacher batch ${t!.shape[0]} differ`);
  return { s: s!, t: constant(t!) };
}

/** Rows flattened to [B, D]. */
export function flat(x: tf.Tensor): tf.Tensor2D {
  return x.reshape([x.shape[0]!, -1]) as tf.Tensor2D;
}

/** x / max(‖x‖₂, 1e-12) along `axis` (PyTorch's F.normalize); gradient-safe at 0. */
export function l2Normalize<T extends tf.Tensor>(x: T, axis = -1): T {
  return x.div(tf.sqrt(tf.maximum(x.square().sum(axis, true), 1e-24))) as T;
}

export interface TermParts {
  prepare?(shapes: TapShapes): void;
  variables?(): tf.Variable[];
  dispose?(): void;
}

/**
 * The skeleton of a tap-based term: needs the teacher and the named taps (`logits`
 * excluded), computes inside `tf.tidy`, owns whatever variables `parts` give.
 */
export function tapTerm(key: string, pairs: TapPair[], compute: Compute, parts: TermParts = {}): KnowledgeTerm {
  const names = (side: 'student' | 'teacher') => [...new Set(pairs.map((p) => p[side]).filter((n) => n !== LOGITS))];
  return {
    key,
    needs: { teacher: true, studentTaps: names('student'), teacherTaps: names('teacher') },
    prepare: parts.prepare ?? (() => {}),
    compute: (inputs) => tf.tidy(() => compute(inputs)),
    trainableVariables: parts.variables ?? (() => []),
    dispose: parts.dispose ?? (() => {}),
  };
}
