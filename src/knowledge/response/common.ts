/**
 * Shared pieces of the response-based terms: the term skeleton and the numerically stable
 * building blocks (log-softmax everywhere, never `log(softmax)`). Each term's options are a
 * zod schema in its own file, validated with `parseOptions` (`../../options.ts`).
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { labelCeByKernel, softKlByKernel } from '../../backend/loss-kernels.js';
import { UserError } from '../../errors.js';
import type { KnowledgeTerm } from '../types.js';

/** The value of `x`, seen by autodiff as a constant (tfjs has no `stopGradient`). */
export function constant<T extends tf.Tensor>(x: T): T {
  const f = tf.customGrad((input) => ({
    value: (input as tf.Tensor).clone(),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }));
  return f(x) as T;
}

/** Named losses, each weight × value; parts weighted 0 are neither computed nor returned. */
export function weighted(parts: Record<string, [number, () => tf.Scalar]>): Record<string, tf.Scalar> {
  const out: Record<string, tf.Scalar> = {};
  for (const [name, [weight, value]] of Object.entries(parts)) {
    if (weight !== 0) out[name] = weight === 1 ? value() : value().mul(weight);
  }
  return out;
}

type Compute = (student: tf.Tensor2D, labels: tf.Tensor1D, teacher: tf.Tensor2D) => Record<string, tf.Scalar>;

/**
 * The skeleton every response term shares: labels as int32, the teacher's logits checked
 * against the student's and held constant, intermediates freed, no variables.
 */
export function responseTerm(key: string, needsTeacher: boolean, compute: Compute): KnowledgeTerm {
  return {
    key,
    needs: { teacher: needsTeacher },
    compute: (inputs) => {
      const { studentLogits: s, teacherLogits: t } = inputs;
      if (needsTeacher) {
        if (t === undefined) {
          throw new UserError(`knowledge term \`${key}\` needs teacher logits; use it in a scheme that has a teacher`);
        }
        if (t.shape.join() !== s.shape.join()) {
          throw new UserError(
            `knowledge term \`${key}\`: teacher logits [${t.shape}] and student logits [${s.shape}] differ; teacher and student must predict the same classes`,
          );
        }
      }
      return tf.tidy(() => {
        const labels = inputs.labels.dtype === 'int32' ? inputs.labels : inputs.labels.toInt();
        return compute(s, labels, needsTeacher ? constant(t as tf.Tensor2D) : s);
      });
    },
    trainableVariables: () => [],
    dispose: () => {},
  };
}

/**
 * Logit standardization (Sun, Ren, Li, Wang & Cao, CVPR 2024, "Logit Standardization in Knowledge
 * Distillation"): each row's logits as z-scores, (z − mean) / std (std with n − 1, as torch.std).
 * The student then has to match the teacher's relations between classes, not its logit range;
 * the temperature acts on the z-scores. The `standardize` option of `kd`, `soft-ce` and `dkd`.
 */
export function standardized(z: tf.Tensor2D): tf.Tensor2D {
  const centred = z.sub<tf.Tensor2D>(z.mean(1, true));
  // + 1e-12 under the root keeps the gradient finite for a row of equal logits
  const std = centred
    .square()
    .sum(1, true)
    .div(z.shape[1] - 1)
    .add(1e-12)
    .sqrt();
  return centred.div<tf.Tensor2D>(std.add(1e-7));
}

/** The options every temperature term shares: logit standardization (see `standardized`). */
export const standardizeOption = {
  /** Standardize student and teacher logits per row before the temperature (logit standardization). Default false. */
  standardize: z.boolean().default(false),
};

/** log softmax(z / T), row-wise. */
export function logProbs(z: tf.Tensor2D, temperature = 1): tf.Tensor2D {
  return tf.logSoftmax(temperature === 1 ? z : z.div<tf.Tensor2D>(temperature));
}

/** Batch mean of Σ_k p_k (log p_k − log q_k), from log-probabilities (PyTorch `batchmean`). */
export function klDiv(logP: tf.Tensor2D, logQ: tf.Tensor2D): tf.Scalar {
  return tf.exp(logP).mul(logP.sub(logQ)).sum(1).mean();
}

/**
 * `scale` × batch mean of KL(softmax(t/T) ‖ softmax(s/T)), the kd loss's core: one kernel
 * (and one for its gradient, the scale inside both) on native and wasm, `klDiv` of
 * log-softmaxes elsewhere; t is a constant.
 */
export function softKl(s: tf.Tensor2D, t: tf.Tensor2D, temperature: number, scale = 1): tf.Scalar {
  const byKernel = softKlByKernel(s, t, temperature, scale);
  if (byKernel) return byKernel;
  const kl = klDiv(logProbs(t, temperature), logProbs(s, temperature));
  return scale === 1 ? kl : kl.mul(scale);
}

/** Batch mean of −Σ_k p_k log q_k, from log-probabilities. */
export function softCrossEntropy(logP: tf.Tensor2D, logQ: tf.Tensor2D): tf.Scalar {
  return tf.neg(tf.exp(logP).mul(logQ).sum(1).mean<tf.Scalar>());
}

/**
 * `scale` × the cross-entropy of the logits with int32 labels; smoothing ε targets (1−ε)·onehot +
 * ε/K. The mean runs over the labeled rows only: an unlabeled row (label −1) adds nothing, and a
 * batch with no labeled row gives 0. On native and wasm, one kernel each way with the scale inside.
 */
export function labelCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, smoothing = 0, scale = 1): tf.Scalar {
  const byKernel = labelCeByKernel(logits, labels, smoothing, scale);
  if (byKernel) return byKernel;
  if (scale !== 1) return labelCrossEntropy(logits, labels, smoothing).mul(scale);
  const k = logits.shape[1];
  const labeled = labels.greaterEqual(0).toFloat();
  let target = tf.oneHot(labels, k).toFloat();
  if (smoothing > 0) target = target.mul(1 - smoothing).add(labeled.expandDims(1).mul(smoothing / k));
  const perRow = target.mul(logProbs(logits)).sum(1);
  return tf.neg(perRow.sum().div<tf.Scalar>(labeled.sum().maximum(1)));
}

/**
 * The target class of each row for terms that split it from the rest (DKD, NKD): the label, or
 * for an unlabeled row (−1) the teacher's top class.
 */
export function targetClasses(labels: tf.Tensor1D, teacher: tf.Tensor2D): tf.Tensor1D {
  return tf.where(labels.greaterEqual(0), labels, tf.argMax(teacher, 1).toInt()) as tf.Tensor1D;
}
