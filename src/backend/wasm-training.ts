import * as tf from '@tensorflow/tfjs';
import { KernelCalls } from './kernel-calls.js';
import {
  conv2dBackpropFilter,
  conv2dBackpropInput,
  depthwiseBackpropFilter,
  depthwiseBackpropInput,
} from './conv-gradients.js';
import { asBlockSwap, blockSwapTranspose, heap, tile, type WasmBackend } from './wasm-heap-kernels.js';
import { copyBlock } from './block-copy.js';
import { type CopyStore, type KernelFn, makeCopyKernels } from './copy-kernels.js';
import { LABEL_CE_KERNEL, SOFT_KL_KERNEL, labelCeRows, scaleInPlace, softKlRows } from './loss-kernels.js';
import { batchNormTrain, batchNormTrainGrad } from './wasm-batch-norm.js';
import { BATCH_NORM_TRAIN_GRAD_KERNEL, BATCH_NORM_TRAIN_KERNEL } from './fused-kernels.js';
import { registerFusedAdam } from './fused-adam.js';
import {
  conv2dFilterGradByKernel,
  matMulByKernel,
  maxPoolGradByKernel,
  sumRowsByKernel,
  wasmAdamUpdate,
  wasmKernelsAvailable,
} from './wasm-kernels.js';

const WASM = 'wasm';
const callsByBackend = new WeakMap<tf.KernelBackend, KernelCalls>();
let installed = false;

function calls(backendArg: unknown, originals: Record<string, tf.KernelFunc>): KernelCalls {
  const backend = backendArg as tf.KernelBackend;
  let k = callsByBackend.get(backend);
  if (!k) {
    k = new KernelCalls(WASM, backend, originals);
    callsByBackend.set(backend, k);
  }
  return k;
}

function lastTwoSwapped(rank: number): number[] {
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return perm;
}

/** A loss kernel ([loss, ∂loss/∂s] of s [rows, cols]) whose `compute` fills the two outputs over the heap. */
function lossOverHeap(
  compute: (
    backend: WasmBackend,
    inputs: Record<string, tf.TensorInfo | undefined>,
    rows: number,
    cols: number,
    attrs: tf.NamedAttrMap,
    loss: Float32Array,
    grad: Float32Array,
  ) => void,
): tf.KernelFunc {
  return ({ inputs, backend: b, attrs }) => {
    const backend = b as WasmBackend;
    const s = inputs.s!;
    const [rows, cols] = s.shape as [number, number];
    const loss = backend.makeOutput([], 'float32');
    const grad = backend.makeOutput(s.shape, 'float32');
    const [lossValues, gradValues] = [heap(backend, loss), heap(backend, grad)];
    compute(backend, inputs, rows, cols, attrs ?? {}, lossValues, gradValues);
    scaleInPlace(Number(attrs?.scale ?? 1), lossValues, gradValues);
    return [loss, grad];
  };
}

const COPY_KERNELS = ['Slice', 'StridedSlice', 'SplitV', 'Unpack', 'GatherV2', 'UnsortedSegmentSum'];

/** The heap as a copy-kernels store: outputs are allocated before any view is taken. */
function heapStore(b: object): CopyStore {
  const backend = b as WasmBackend;
  return {
    output: (shape) => {
      const info = backend.makeOutput(shape, 'float32');
      return { info, values: heap(backend, info) };
    },
    f32: (t) => heap(backend, t),
    i32: (t) => backend.typedArrayFromHeap(t) as Int32Array,
    view: () => null,
    copy: copyBlock,
  };
}

function unsupported(name: string): KernelFn {
  return ({ inputs }) => {
    const shapes = Object.values(inputs).map((t) => `${t.dtype} [${t.shape}]`);
    throw new Error(`${name} on wasm takes float32 values and int32 ids, got ${shapes.join(' and ')}`);
  };
}

function replace(kernelName: string, kernelFunc: tf.KernelFunc): void {
  const existing = tf.getKernel(kernelName, WASM);
  if (existing) tf.unregisterKernel(kernelName, WASM);
  tf.registerKernel({ ...existing, kernelName, backendName: WASM, kernelFunc });
}

/**
 * Makes the TF.js wasm backend able to train every zoo model, fast. tfjs-backend-wasm 4.22
 * lacks Conv2DBackpropFilter and both depthwise backprops, and its Conv2DBackpropInput and
 * transposed-operand MatMul are 20–40× slower than the same work as transpose + plain
 * matmul or as a forward conv (XNNPACK). Call before the wasm backend is first used, since
 * the engine runs kernel setup functions when the backend initialises.
 */
export function installWasmTrainingKernels(): void {
  if (installed) return;
  installed = true;
  registerFusedAdam(WASM, wasmAdamUpdate, () => wasmKernelsAvailable(tf.backend()));
  const originals: Record<string, tf.KernelFunc> = {};
  for (const name of ['BatchMatMul', '_FusedMatMul']) {
    const original = tf.getKernel(name, WASM)!.kernelFunc;
    originals[name] = original;
    replace(name, (args) => {
      const { transposeA, transposeB, activation } = args.attrs as {
        transposeA: boolean;
        transposeB: boolean;
        activation?: string;
      };
      const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
      // a transposed operand is a gradient's product; an untransposed one under a recorded gradient
      // is a layer being trained, whose weights are new every step: our kernels read them in place
      // (in inference XNNPACK packs them once and keeps the packing)
      const recording = (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth > 0;
      if (
        (recording || transposeA || transposeB) &&
        !preluActivationWeights &&
        (!activation || activation === 'linear' || activation === 'relu')
      ) {
        const out = matMulByKernel(args.backend, a!, b!, transposeA, transposeB, bias, activation === 'relu');
        if (out) return out;
      }
      const k = calls(args.backend, originals);
      // the stock kernel reads batches of matrices (tf.fused.matMul reshapes before it calls;
      // training-layers.ts calls it with matrices) and is 20–40× slower with a transposed operand
      const a2 = transposeA ? k.transpose(a!, lastTwoSwapped(a!.shape.length)) : a!;
      const b2 = transposeB ? k.transpose(b!, lastTwoSwapped(b!.shape.length)) : b!;
      const [a3, b3] = [a2, b2].map((t) => k.reshape(t, t.shape.length === 2 ? [1, ...t.shape] : t.shape));
      const out3 = original({
        ...args,
        inputs: { ...args.inputs, a: a3!, b: b3! },
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      }) as tf.TensorInfo;
      const out = a!.shape.length === 2 ? k.reshape(out3, out3.shape.slice(1)) : out3;
      k.free(a3!, b3!);
      if (a2 !== a) k.free(a2);
      if (b2 !== b) k.free(b2);
      if (out !== out3) k.free(out3);
      return out;
    });
  }
  const transpose = tf.getKernel('Transpose', WASM)!.kernelFunc;
  replace('Transpose', (args) => {
    const x = args.inputs.x!;
    const perm = (args.attrs as unknown as tf.TransposeAttrs).perm;
    const swap = asBlockSwap(x.shape, perm);
    // where each is faster on this 2-core machine: the stock kernel for square-ish matrices
    // and for outer/inner swaps with a narrow side ([64,26,26,32] by [3,1,2,0]: 1.9 ms against 2.6)
    const blocked = swap && (swap.mid > 1 ? Math.min(swap.a, swap.c) >= 64 : Math.min(swap.a, swap.c) < 256);
    if (!blocked || (x.dtype !== 'float32' && x.dtype !== 'int32')) return transpose(args);
    return blockSwapTranspose(
      args.backend,
      x,
      perm.map((a) => x.shape[a]!),
      swap,
    );
  });
  const sum = tf.getKernel('Sum', WASM)!.kernelFunc;
  replace('Sum', (args) => {
    const x = args.inputs.x!;
    const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const k = axes.length;
    const leading = k > 0 && k < x.shape.length && [...axes].sort((a, b) => a - b).every((a, i) => a === i);
    if (!leading || x.dtype !== 'float32') return sum(args);
    const rest = x.shape.slice(k);
    const rows = x.shape.slice(0, k).reduce((n, d) => n * d, 1);
    const outShape = keepDims ? [...axes.map(() => 1), ...rest] : rest;
    return sumRowsByKernel(args.backend, x, rows, outShape) ?? sum(args);
  });
  // training batch norm as one kernel each way (training-layers.ts runs them where registered)
  replace(BATCH_NORM_TRAIN_KERNEL, ({ inputs, backend, attrs }) =>
    batchNormTrain(backend, inputs.x!, inputs.gamma!, inputs.beta!, Number(attrs!.epsilon)),
  );
  replace(BATCH_NORM_TRAIN_GRAD_KERNEL, ({ inputs, backend, attrs }) =>
    batchNormTrainGrad(
      backend,
      inputs as {
        x: tf.TensorInfo;
        dy: tf.TensorInfo;
        mean: tf.TensorInfo;
        variance: tf.TensorInfo;
        gamma: tf.TensorInfo;
      },
      Number(attrs!.epsilon),
    ),
  );
  // tfjs-backend-wasm casts to bool by the value's low byte (0.5 → false, 256 → false, 2 → a
  // stored 2): bool is x ≠ 0, as on cpu
  const stockCast = tf.getKernel('Cast', WASM)!.kernelFunc;
  replace('Cast', (args) => {
    const x = args.inputs.x!;
    const numeric = x.dtype === 'float32' || x.dtype === 'int32';
    if ((args.attrs as unknown as tf.CastAttrs).dtype !== 'bool' || !numeric) return stockCast(args);
    const k = calls(args.backend, originals);
    const zero = k.run('Fill', [], { shape: [], value: 0, dtype: x.dtype });
    const out = k.run('NotEqual', { a: x, b: zero });
    k.free(zero);
    return out;
  });
  const stockTile = tf.getKernel('Tile', WASM)!.kernelFunc;
  replace('Tile', (args) => {
    const x = args.inputs.x!;
    if (x.dtype === 'string') return stockTile(args);
    return tile(args.backend, x, (args.attrs as unknown as tf.TileAttrs).reps);
  });
  // slices, splits and gathers as block copies over the heap (the stock kernels walk elements:
  // 62 ms for half the channels of a [64, 28, 28, 64] map), and gather's gradient, which
  // tfjs-backend-wasm 4.22 lacks (UnsortedSegmentSum: tf.gather could not be trained through)
  const stock = new Map<string, KernelFn>();
  for (const name of COPY_KERNELS) {
    const k = tf.getKernel(name, WASM);
    stock.set(name, k ? (k.kernelFunc as unknown as KernelFn) : unsupported(name));
  }
  for (const [name, kernelFunc] of Object.entries(makeCopyKernels(heapStore, stock))) {
    replace(name, kernelFunc as unknown as tf.KernelFunc);
  }
  // the loss kernels (loss-kernels.ts) over the heap: a [B, classes] tensor's few thousand values
  // cost less than the dispatch of the ~35 stock kernels they replace
  replace(
    SOFT_KL_KERNEL,
    lossOverHeap((backend, { s, t }, rows, cols, attrs, loss, grad) =>
      softKlRows(heap(backend, s!), heap(backend, t!), rows, cols, Number(attrs.temperature), loss, grad),
    ),
  );
  replace(
    LABEL_CE_KERNEL,
    lossOverHeap((backend, { s, labels }, rows, cols, attrs, loss, grad) => {
      const labelValues = backend.typedArrayFromHeap(labels!) as Int32Array;
      labelCeRows(heap(backend, s!), labelValues, rows, cols, Number(attrs.smoothing), loss, grad);
    }),
  );
  const stockMaxPoolGrad = tf.getKernel('MaxPoolGrad', WASM)!.kernelFunc;
  replace('MaxPoolGrad', (args) => {
    const { inputs, backend, attrs } = args;
    return (
      maxPoolGradByKernel(backend, inputs.dy!, inputs.input!, attrs as unknown as tf.MaxPoolGradAttrs) ??
      stockMaxPoolGrad(args)
    );
  });
  replace('Conv2DBackpropFilter', ({ inputs, backend, attrs }) => {
    const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
    const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      a.filterShape as [number, number, number, number],
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
    );
    return conv2dFilterGradByKernel(backend, x, dy, info) ?? conv2dBackpropFilter(calls(backend, originals), x, dy, a);
  });
  replace('Conv2DBackpropInput', ({ inputs, backend, attrs }) =>
    conv2dBackpropInput(
      calls(backend, originals),
      inputs.dy!,
      inputs.filter!,
      attrs as unknown as tf.Conv2DBackpropInputAttrs,
    ),
  );
  replace('DepthwiseConv2dNativeBackpropFilter', ({ inputs, backend, attrs }) =>
    depthwiseBackpropFilter(
      calls(backend, originals),
      inputs.x!,
      inputs.dy!,
      attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs,
    ),
  );
  replace('DepthwiseConv2dNativeBackpropInput', ({ inputs, backend, attrs }) =>
    depthwiseBackpropInput(
      calls(backend, originals),
      inputs.dy!,
      inputs.filter!,
      attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs,
    ),
  );
}
