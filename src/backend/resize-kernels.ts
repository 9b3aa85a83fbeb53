/**
 * Nearest-neighbour resize and its gradient for float32 NHWC images, over a `CopyStore`.
 *
 * tfjs-backend-cpu 4.22's ResizeNearestNeighborGrad reads dy at the input's batch stride, so for
 * a batch of more than one it returns wrong gradients (and it ignores `halfPixelCenters`): every
 * model with an UpSampling2D layer trained on cpu, or on native (whose fallbacks are the cpu
 * kernels), learned from them. Here the gradient is the forward pass's adjoint: each output pixel
 * adds its dy to the input pixel it was copied from, found by the same rule as the forward pass.
 */
import * as tf from '@tensorflow/tfjs';
import { copyBlock, copyRun } from './block-copy.js';
import type { CopyStore, KernelFn } from './copy-kernels.js';

type Info = tf.TensorInfo;

/** The input row (or column) each of `outSize` output rows copies, as tfjs computes it. */
export function nearestSources(
  inSize: number,
  outSize: number,
  alignCorners: boolean,
  halfPixelCenters: boolean,
): Int32Array {
  const corners = alignCorners && outSize > 1;
  const ratio = (corners ? inSize - 1 : inSize) / (corners ? outSize - 1 : outSize);
  const src = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const frac = halfPixelCenters ? ratio * (i + 0.5) : ratio * i;
    const nearest = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
    src[i] = halfPixelCenters ? Math.max(0, nearest) : nearest;
  }
  return src;
}

/**
 * For each output pixel of resizing [b, h, w, ·] to [b, oh, ow, ·], the input pixel it copies
 * (pixel indices, row-major), by `nearestSources`'s rule.
 */
function sourcePixels(b: number, h: number, w: number, oh: number, ow: number, attrs?: tf.NamedAttrMap): Int32Array {
  const [corners, half] = [attrs?.alignCorners === true, attrs?.halfPixelCenters === true];
  const rows = nearestSources(h, oh, corners, half);
  const cols = nearestSources(w, ow, corners, half);
  const src = new Int32Array(b * oh * ow);
  let o = 0;
  for (let n = 0; n < b; n++) {
    for (let i = 0; i < oh; i++) {
      const row = (n * h + rows[i]!) * w;
      for (let j = 0; j < ow; j++) src[o++] = row + cols[j]!;
    }
  }
  return src;
}

export function makeResizeKernels(
  storeOf: (backend: object) => CopyStore,
  fallbacks: Map<string, KernelFn>,
): Record<string, KernelFn> {
  const kernels: Record<string, KernelFn> = {};
  const forward = fallbacks.get('ResizeNearestNeighbor');
  const backward = fallbacks.get('ResizeNearestNeighborGrad');
  if (forward) {
    kernels.ResizeNearestNeighbor = (args) => {
      const images = args.inputs.images!;
      if (images.dtype !== 'float32' || images.shape.length !== 4) return forward(args);
      const store = storeOf(args.backend);
      const [b, h, w, c] = images.shape as [number, number, number, number];
      const [oh, ow] = args.attrs!.size as [number, number];
      const src = sourcePixels(b, h, w, oh, ow, args.attrs);
      const out = store.output([b, oh, ow, c]);
      const [y, x] = [out.values, store.f32(images)];
      for (let p = 0, o = 0; p < src.length; p++, o += c) copyRun(x, src[p]! * c, y, o, c);
      return out.info;
    };
  }
  if (backward) {
    kernels.ResizeNearestNeighborGrad = (args) => {
      const { images, dy } = args.inputs as { images: Info; dy: Info };
      if (dy.dtype !== 'float32' || images.shape.length !== 4) return backward(args);
      const store = storeOf(args.backend);
      const [b, h, w, c] = images.shape as [number, number, number, number];
      const [, oh, ow] = dy.shape as [number, number, number, number];
      const src = sourcePixels(b, h, w, oh, ow, args.attrs);
      const out = store.output([b, h, w, c]);
      const [dx, g] = [out.values.fill(0), store.f32(dy)];
      for (let p = 0, o = 0; p < src.length; p++, o += c) {
        const s = src[p]! * c;
        for (let k = 0; k < c; k++) dx[s + k]! += g[o + k]!;
      }
      return out.info;
    };
  }
  return kernels;
}

/** The cpu backend's storage as a CopyStore (fresh arrays; views of its values). */
function cpuStore(b: object): CopyStore {
  const backend = b as tf.MathBackendCPU;
  const f32 = (t: Info) => {
    const v = backend.data.get(t.dataId).values;
    return v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
  };
  return {
    output: (shape) => {
      const values = new Float32Array(tf.util.sizeFromShape(shape));
      return { info: backend.makeTensorInfo(shape, 'float32', values), values };
    },
    f32,
    i32: (t) => Int32Array.from(backend.data.get(t.dataId).values as ArrayLike<number>),
    view: (x, offset, length, shape) =>
      backend.makeTensorInfo(shape, 'float32', f32(x).subarray(offset, offset + length)),
    copy: copyBlock,
  };
}

let cpuFixed = false;
/** Replaces tfjs-backend-cpu's wrong ResizeNearestNeighborGrad (see the module comment) with the adjoint. */
export function fixCpuResizeGradient(): void {
  if (cpuFixed) return;
  const stock = tf.getKernel('ResizeNearestNeighborGrad', 'cpu');
  if (!stock) return;
  cpuFixed = true;
  const fallbacks = new Map([['ResizeNearestNeighborGrad', stock.kernelFunc as unknown as KernelFn]]);
  const fixed = makeResizeKernels(cpuStore, fallbacks).ResizeNearestNeighborGrad!;
  tf.unregisterKernel('ResizeNearestNeighborGrad', 'cpu');
  tf.registerKernel({ ...stock, kernelFunc: fixed as unknown as tf.KernelFunc });
}
