/** The native backend's fused Adam update (src/backend/fused-adam.ts): one addon pass per variable. */
import * as tf from '@tensorflow/tfjs';
import { adamScalars, type AdamStep } from '../fused-adam.js';
import type { NativeBackend } from './backend.js';

/**
 * Each of w, m, v is overwritten in place when the backend says nobody else can observe its
 * storage (see NativeBackend.isExclusive); otherwise the new values go to a fresh (recycled)
 * buffer that the variable is assigned to, as tfjs itself does.
 */
export function nativeAdamUpdate(
  b: NativeBackend,
  w: tf.Variable,
  g: tf.Tensor,
  m: tf.Variable,
  v: tf.Variable,
  a: AdamStep,
): void {
  const n = w.size;
  const targets = [w, m, v].map((t) => (b.isExclusive(t) ? null : b.makeOutputF32(t.shape, n)));
  const [wo, mo, vo] = [w, m, v].map((t, i) => targets[i]?.values ?? b.f32(t));
  b.addon.adam(b.f32(w), b.f32(g), b.f32(m), b.f32(v), wo, mo, vo, ...adamScalars(a));
  const engine = tf.engine();
  [w, m, v].forEach((t, i) => {
    const out = targets[i];
    if (out !== null) t.assign(engine.makeTensorFromTensorInfo(out.info, b) as tf.Tensor);
  });
}
