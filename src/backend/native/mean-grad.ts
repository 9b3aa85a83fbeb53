/**
 * Gradient of Mean in one native pass. tfjs's is `div(mul(reshape(dy), ones(x.shape)), n)`:
 * a fresh ones tensor and two full-size passes per Mean (every batch-norm layer has two
 * through tf.moments, global average pooling one). Here: dx = broadcast(dy) / n, the same
 * float32 division. The registered gradient is wrapped once; the native path runs only while
 * the active backend is `native`, otherwise tfjs's own runs.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBackend } from './backend.js';
import { binaryGeom } from './elementwise.js';
import { wrapGradient, type KernelArgs, type KernelFn } from './util.js';

export const BROADCAST_DIV_KERNEL = 'TfjsDistillBroadcastDiv';
/** out = broadcast(x → attrs.shape) / attrs.divisor */
export function makeBroadcastDivKernel(backend: NativeBackend): KernelFn {
  return (args: KernelArgs) => {
    const { x } = args.inputs;
    const shape = args.attrs?.shape as number[];
    const g = binaryGeom(x.shape, shape);
    if (g === null || !tf.util.arraysEqual(g.out, shape))
      throw new Error(`${BROADCAST_DIV_KERNEL}: [${x.shape}] does not broadcast to [${shape}]`);
    const out = backend.makeOutputF32(shape);
    const divisor = Float32Array.of(Number(args.attrs?.divisor));
    const geometry = g.geometry.slice();
    geometry.fill(0, 8); // the divisor broadcasts everywhere
    backend.addon.binary(backend.ops.binary.RealDiv, backend.f32(x), divisor, out.values, geometry);
    return out.info;
  };
}

let patched = false;

export function patchMeanGradient(backendName: string): void {
  if (patched) return;
  // the broadcast-divide is linear: its own gradient (needed only for second-order
  // gradients) sums dy back over the broadcast axes
  tf.registerGradient({
    kernelName: BROADCAST_DIV_KERNEL,
    inputsToSave: ['x'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const g = Array.isArray(dy) ? dy[0] : dy;
      const [x] = saved;
      const shape = attrs.shape as number[];
      const pad = shape.length - x.rank;
      const axes = shape.map((d, i) => (i < pad || (x.shape[i - pad] === 1 && d !== 1) ? i : -1)).filter((i) => i >= 0);
      return { x: () => tf.reshape(tf.div(axes.length ? tf.sum(g, axes) : g, Number(attrs.divisor)), x.shape) };
    },
  });
  patched = wrapGradient('Mean', backendName, (g, saved, attrs) => {
    const [x] = saved;
    if (x == null || x.dtype !== 'float32' || g.dtype !== 'float32' || x.rank === 0) return undefined;
    const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape);
    const reduceSize = tf.util.sizeFromShape(tf.backend_util.computeOutAndReduceShapes(x.shape, axes)[1]);
    const expandedShape = x.shape.slice();
    axes.forEach((a) => {
      expandedShape[a] = 1;
    });
    if (binaryGeom(expandedShape, x.shape) === null) return undefined;
    return {
      x: () =>
        tf
          .engine()
          .runKernel(
            BROADCAST_DIV_KERNEL,
            { x: tf.reshape(g, expandedShape) },
            { shape: x.shape, divisor: reduceSize },
          ) as tf.Tensor,
    };
  });
}
