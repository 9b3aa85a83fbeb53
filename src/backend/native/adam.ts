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
import type { KernelArgs, KernelFn } from './util.js';

export const ADAM_KERNEL = 'TfjsDistillAdam';

type NamedTensor = { name: string; tensor: tf.Tensor };

export function makeAdamKernel(backend: NativeBackend): KernelFn {
  return (args: KernelArgs) => {
    const { w, g, m, v } = args.inputs;
    const a = args.attrs as Record<string, number>;
    const n = tf.util.sizeFromShape(w.shape);
    const wo = backend.makeOutputF32(w.shape, n), mo = backend.makeOutputF32(w.shape, n), vo = backend.makeOutputF32(w.shape, n);
    backend.addon.adam(backend.f32(w), backend.f32(g), backend.f32(m), backend.f32(v), wo.values, mo.values, vo.values,
      a.beta1, a.oneMinusBeta1, a.beta2, a.oneMinusBeta2, a.negLr, a.epsilon, a.c1, a.c2);
    return [wo.info, mo.info, vo.info];
  };
}

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

let patched = false;

export function patchAdam(backendName: string): void {
  if (patched) return;
  const proto = tf.AdamOptimizer.prototype as unknown as {
    applyGradients(this: unknown, g: tf.NamedTensorMap | NamedTensor[]): void;
  };
  const original = proto.applyGradients;
  proto.applyGradients = function (this: unknown, variableGradients: tf.NamedTensorMap | NamedTensor[]) {
    if (tf.getBackend() !== backendName) return original.call(this, variableGradients);
    const self = this as AdamInternals;
    const isArray = Array.isArray(variableGradients);
    const varNames = isArray
      ? (variableGradients as NamedTensor[]).map((v) => v.name)
      : Object.keys(variableGradients);
    const registered = tf.engine().registeredVariables;
    for (let i = 0; i < varNames.length; i++) {
      const value = registered[varNames[i]];
      const grad = isArray ? (variableGradients as NamedTensor[])[i].tensor : (variableGradients as tf.NamedTensorMap)[varNames[i]];
      if (value === undefined || value.dtype !== 'float32' || (grad != null && grad.dtype !== 'float32')) {
        return original.call(this, variableGradients);
      }
    }
    const engine = tf.engine();
    tf.tidy(() => {
      const accB1 = self.accBeta1.dataSync()[0], accB2 = self.accBeta2.dataSync()[0];
      const attrs = {
        beta1: self.beta1, oneMinusBeta1: 1 - self.beta1, beta2: self.beta2, oneMinusBeta2: 1 - self.beta2,
        negLr: -self.learningRate, epsilon: self.epsilon,
        c1: Math.fround(1 - accB1), c2: Math.fround(1 - accB2),
      };
      varNames.forEach((name, i) => {
        const value = registered[name];
        if (self.accumulatedFirstMoment[i] == null) {
          self.accumulatedFirstMoment[i] = {
            originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
          };
        }
        if (self.accumulatedSecondMoment[i] == null) {
          self.accumulatedSecondMoment[i] = {
            originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
          };
        }
        const gradient = isArray ? (variableGradients as NamedTensor[])[i].tensor : (variableGradients as tf.NamedTensorMap)[name];
        if (gradient == null) return;
        const m = self.accumulatedFirstMoment[i].variable, v = self.accumulatedSecondMoment[i].variable;
        const [w2, m2, v2] = engine.runKernel(ADAM_KERNEL, { w: value, g: gradient, m, v }, attrs) as tf.Tensor[];
        m.assign(m2);
        v.assign(v2);
        value.assign(w2);
      });
      self.accBeta1.assign(tf.mul(self.accBeta1, self.beta1));
      self.accBeta2.assign(tf.mul(self.accBeta2, self.beta2));
    });
    self.incrementIterations();
  };
  patched = true;
}
