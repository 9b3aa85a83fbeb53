/** The data-movement and nearest-resize kernels (../copy-kernels.ts, ../resize-kernels.ts) over the native backend's recycled arrays. */
import * as tf from '@tensorflow/tfjs';
import { copyBlock, mergeBlock } from '../block-copy.js';
import { type CopyStore, makeCopyKernels } from '../copy-kernels.js';
import { makeResizeKernels } from '../resize-kernels.js';
import type { NativeBackend } from './backend.js';
import type { KernelFn } from './util.js';

/** Blocks this large and larger go to the addon; below, the call costs more than the JavaScript loops. */
const ADDON_MIN_FLOATS = 4096;

export function makeNativeCopyKernels(backend: NativeBackend, cpu: Map<string, KernelFn>): Record<string, KernelFn> {
  const { addon } = backend;
  // an addon built before copyStrided existed copies nothing itself
  const inC = typeof addon.copyStrided === 'function';
  const store: CopyStore = {
    output: (shape) => backend.makeOutputF32(shape),
    f32: (t) => backend.f32(t),
    i32: (t) => backend.i32(t),
    view: (x, offset, length, shape) =>
      backend.makeTensorInfo(shape, 'float32', backend.f32(x).subarray(offset, offset + length)),
    // the addon: a memcpy per run, 32 × 32 tiles for transposes, both cores
    copy: (src, sOff, sStr, dst, dOff, dStr, shape) => {
      const merged =
        inC && tf.util.sizeFromShape([...shape]) >= ADDON_MIN_FLOATS ? mergeBlock(sStr, dStr, shape) : null;
      if (merged === null || merged.n.length === 0 || merged.n.length > 8) {
        copyBlock(src, sOff, sStr, dst, dOff, dStr, shape);
        return;
      }
      addon.copyStrided(src, sOff, dst, dOff, Int32Array.from([...merged.n, ...merged.ss, ...merged.ds]));
    },
  };
  return { ...makeCopyKernels(() => store, cpu), ...makeResizeKernels(() => store, cpu) };
}
