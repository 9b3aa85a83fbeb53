/**
 * Fused Adam update. tfjs's AdamOptimizer runs ~13 element-wise ops per variable (each a
 * full pass over memory and a new tensor); a backend that registers a fused update here does
 * the same arithmetic in one pass:
 *   m' = β1·m + (1-β1)·g,  v' = β2·v + (1-β2)·g²,
 *   w' = w - lr · (m'/(1-β1ᵗ)) / (sqrt(v'/(1-β2ᵗ)) + ε)
 * `AdamOptimizer.prototype.applyGradients` is wrapped once; the fused path runs only while
 * the active backend has registered one and every operand is float32, otherwise tfjs's own
 * code runs. State (`accBeta1/2`, `${name}/m`, `${name}/v`, iterations) is kept exactly as
 * tfjs keeps it, so getWeights/setWeights and saving still work.
 */
import * as tf from '@tensorflow/tfjs';

type NamedTensor = { name: string; tensor: tf.Tensor };

/** The scalars of one step, as the kernels take them (c1 = 1-β1ᵗ, c2 = 1-β2ᵗ, in float32). */
export interface AdamStep {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  negLr: number;
  epsilon: number;
  c1: number;
  c2: number;
}

/** The step's scalars in the order the kernels take them, after their arrays. */
export type AdamScalars = [
  beta1: number,
  oneMinusBeta1: number,
  beta2: number,
  oneMinusBeta2: number,
  negLr: number,
  epsilon: number,
  c1: number,
  c2: number,
];

export function adamScalars(a: AdamStep): AdamScalars {
  return [a.beta1, a.oneMinusBeta1, a.beta2, a.oneMinusBeta2, a.negLr, a.epsilon, a.c1, a.c2];
}

/** Updates w, m and v for one variable: in place, or by assigning them new tensors. */
export type FusedAdamUpdate = (w: tf.Variable, g: tf.Tensor, m: tf.Variable, v: tf.Variable, step: AdamStep) => void;

interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: { originalName: string; variable: tf.Variable }[];
  accumulatedSecondMoment: { originalName: string; variable: tf.Variable }[];
  incrementIterations(): void;
}

const updates = new Map<string, { update: FusedAdamUpdate; ready: () => boolean }>();
let patched = false;

/** Runs `update` for Adam's steps while `backendName` is the active backend and `ready()` says so. */
export function registerFusedAdam(backendName: string, update: FusedAdamUpdate, ready = () => true): void {
  updates.set(backendName, { update, ready });
  if (patched) return;
  patched = true;
  const proto = tf.AdamOptimizer.prototype as unknown as {
    applyGradients(this: unknown, g: tf.NamedTensorMap | NamedTensor[]): void;
  };
  const original = proto.applyGradients;
  proto.applyGradients = function (this: unknown, variableGradients: tf.NamedTensorMap | NamedTensor[]) {
    const fused = updates.get(tf.getBackend());
    if (!fused?.ready()) return original.call(this, variableGradients);
    const self = this as AdamInternals;
    const isArray = Array.isArray(variableGradients);
    const varNames = isArray ? (variableGradients as NamedTensor[]).map((v) => v.name) : Object.keys(variableGradients);
    const registered = tf.engine().registeredVariables;
    const gradientOf = (name: string, i: number) =>
      isArray ? (variableGradients as NamedTensor[])[i]!.tensor : (variableGradients as tf.NamedTensorMap)[name];
    for (let i = 0; i < varNames.length; i++) {
      const value = registered[varNames[i]!];
      const grad = gradientOf(varNames[i]!, i);
      if (value === undefined || value.dtype !== 'float32' || (grad != null && grad.dtype !== 'float32')) {
        return original.call(this, variableGradients);
      }
    }
    tf.tidy(() => {
      const accB1 = self.accBeta1.dataSync()[0]!,
        accB2 = self.accBeta2.dataSync()[0]!;
      const step: AdamStep = {
        beta1: self.beta1,
        oneMinusBeta1: 1 - self.beta1,
        beta2: self.beta2,
        oneMinusBeta2: 1 - self.beta2,
        negLr: -self.learningRate,
        epsilon: self.epsilon,
        c1: Math.fround(1 - accB1),
        c2: Math.fround(1 - accB2),
      };
      varNames.forEach((name, i) => {
        const value = registered[name]!;
        self.accumulatedFirstMoment[i] ??= {
          originalName: `${name}/m`,
          variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
        };
        self.accumulatedSecondMoment[i] ??= {
          originalName: `${name}/v`,
          variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
        };
        const gradient = gradientOf(name, i);
        if (gradient == null) return;
        fused.update(
          value,
          gradient,
          self.accumulatedFirstMoment[i]!.variable,
          self.accumulatedSecondMoment[i]!.variable,
          step,
        );
      });
      self.accBeta1.assign(tf.mul(self.accBeta1, self.beta1));
      self.accBeta2.assign(tf.mul(self.accBeta2, self.beta2));
    });
    self.incrementIterations();
  };
}
