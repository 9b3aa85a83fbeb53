/** Small helpers shared by the native kernels. */
import * as tf from '@tensorflow/tfjs';
import type { NativeBackend } from './backend.js';

export type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: object; attrs?: tf.NamedAttrMap };
export type KernelFn = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

export function isF32(...ts: (tf.TensorInfo | undefined | null)[]): boolean {
  for (const t of ts) if (t != null && t.dtype !== 'float32') return false;
  return true;
}

/**
 * A vector operand (bias, PReLU weights) that broadcasts over the last axis of an output:
 * its size is 1, or it equals `n` with every other dimension 1. Returns its values or null
 * when the shape needs the general broadcasting path.
 */
export function lastAxisVector(
  backend: NativeBackend,
  t: tf.TensorInfo | undefined,
  n: number,
  outRank: number,
): Float32Array | null | undefined {
  if (t == null) return undefined;
  if (t.dtype !== 'float32' || t.shape.length > outRank) return null;
  const size = tf.util.sizeFromShape(t.shape);
  if (size === 1) return backend.f32(t);
  if (size !== n || t.shape[t.shape.length - 1] !== n) return null;
  return backend.f32(t);
}

/** Geometry array (native/src/conv.h) from a tfjs Conv2DInfo. */
export function geometry(ci: tf.backend_util.Conv2DInfo): Int32Array {
  return Int32Array.of(
    ci.batchSize,
    ci.inHeight,
    ci.inWidth,
    ci.inChannels,
    ci.outHeight,
    ci.outWidth,
    ci.outChannels,
    ci.filterHeight,
    ci.filterWidth,
    ci.strideHeight,
    ci.strideWidth,
    ci.dilationHeight,
    ci.dilationWidth,
    ci.padInfo.top,
    ci.padInfo.left,
  );
}

type GradConfig = Parameters<typeof tf.registerGradient>[0];
type GradMap = ReturnType<GradConfig['gradFunc']>;

/**
 * Re-registers the gradient of `kernelName` so that, while `backendName` is the active
 * backend, `native` computes it; `native` returns undefined for inputs it does not handle,
 * and tfjs's own gradient runs then (and on every other backend). False when tfjs has none.
 */
export function wrapGradient(
  kernelName: string,
  backendName: string,
  native: (dy: tf.Tensor, saved: tf.Tensor[], attrs: tf.NamedAttrMap) => GradMap | undefined,
): boolean {
  const original = tf.getGradient(kernelName);
  if (original === undefined) return false;
  tf.registerGradient({
    ...original,
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const g = Array.isArray(dy) ? dy[0] : dy;
      const mine = tf.getBackend() === backendName && g != null ? native(g, saved, attrs) : undefined;
      return mine ?? original.gradFunc(dy, saved, attrs);
    },
  });
  return true;
}
