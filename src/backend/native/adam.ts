/**
 * Fused Adam update. tfjs's AdamOptimizer runs ~13 element-wise ops per variable (each a
 * full pass over memory and a new tensor); this does the same arithmetic in one pass:
 *   m' = β1·m + (1-β1)·g,  v' = β2·v + (1-β2)·g²,
 *   w' = w - lr · (m'/(1-β1ᵗ)) / (sqrt(v'/(1-β2ᵗ)) + ε)
 * `AdamOptimizer.prototype.applyGradients` is wrapped once; the fused path runs only while
 * the active backend is `native` and every operand is float32, otherwise tfjs's own code
 * runs. State (`accBeta1/2`, `${name}/m`, `${name}/v`, iterations) is kept exactly as tfjs
 * keeps it, so getWeights/setWeights and saving still work.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBackend } from './backend.js';

type NamedTensor = { name: string; tensor: tf.Tensor };

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

/**
 * One fused update. Each of w, m, v is overwritten in place when the backend says nobody
 * else can observe its storage (see NativeBackend.isExclusive); otherwise the new values go
 * to a fresh (recycled) buffer that the variable is assigned to, as tfjs itself does.
 */
function fusedUpdate(
  b: NativeBackend,
  w: tf.Variable,
  g: tf.Tensor,
  m: tf.Variable,
  v: tf.Variable,
  a: Record<string, number>,
): void {
  const n = w.size;
  const targets = [w, m, v].map((t) => (b.isExclusive(t) ? null : b.makeOutputF32(t.shape, n)));
  const [wo, mo, vo] = [w, m, v].map((t, i) => targets[i]?.values ?? b.f32(t));
  b.addon.adam(
    b.f32(w),
    b.f32(g),
    b.f32(m),
    b.f32(v),
    wo,
    mo,
    vo,
    a.beta1,
    a.oneMinusBeta1,
    a.beta2,
    a.oneMinusBeta2,
    a.negLr,
    a.epsilon,
    a.c1,
    a.c2,
  );
  const engine = tf.engine();
  [w, m, v].forEach((t, i) => {
    const out = targets[i];
    if (out !== null) t.assign(engine.makeTensorFromTensorInfo(out.info, b) as tf.Tensor);
  });
}

let patched = false;

export function patchAdam(backendName: string, backend: () => NativeBackend): void {
  if (patched) return;
  const proto = tf.AdamOptimizer.prototype as unknown as {
    applyGradients(this: unknown, g: tf.NamedTensorMap | NamedTensor[]): void;
  };
  const original = proto.applyGradients;
  proto.applyGradients = function (this: unknown, variableGradients: tf.NamedTensorMap | NamedTensor[]) {
    if (tf.getBackend() !== backendName) return original.call(this, variableGradients);
    const self = this as AdamInternals;
    const isArray = Array.isArray(variableGradients);
    const varNames = isArray ? (variableGradients as NamedTensor[]).map((v) => v.name) : Object.keys(variableGradients);
    const registered = tf.engine().registeredVariables;
    for (let i = 0; i < varNames.length; i++) {
      const value = registered[varNames[i]];
      const grad = isArray
        ? (variableGradients as NamedTensor[])[i].tensor
        : (variableGradients as tf.NamedTensorMap)[varNames[i]];
      if (value === undefined || value.dtype !== 'float32' || (grad != null && grad.dtype !== 'float32')) {
        return original.call(this, variableGradients);
      }
    }
    tf.tidy(() => {
      const accB1 = self.accBeta1.dataSync()[0],
        accB2 = self.accBeta2.dataSync()[0];
      const attrs = {
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
        const value = registered[name];
        if (self.accumulatedFirstMoment[i] == null) {
          self.accumulatedFirstMoment[i] = {
            originalName: `${name}/m`,
            variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
          };
        }
        if (self.accumulatedSecondMoment[i] == null) {
          self.accumulatedSecondMoment[i] = {
            originalName: `${name}/v`,
            variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
          };
        }
        const gradient = isArray
          ? (variableGradients as NamedTensor[])[i].tensor
          : (variableGradients as tf.NamedTensorMap)[name];
        if (gradient == null) return;
        const m = self.accumulatedFirstMoment[i].variable,
          v = self.accumulatedSecondMoment[i].variable;
        fusedUpdate(backend(), value, gradient, m, v, attrs);
      });
      self.accBeta1.assign(tf.mul(self.accBeta1, self.beta1));
      self.accBeta2.assign(tf.mul(self.accBeta2, self.beta2));
    });
    self.incrementIterations();
  };
  patched = true;
}
