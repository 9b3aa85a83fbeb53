/** Conv2D family (im2col + sgemm), depthwise convolutions and pooling, NHWC only. */
import * as tf from '@tensorflow/tfjs';
import type { NativeBackend } from './backend.js';
import { geometry, isF32, lastAxisVector, type KernelArgs, type KernelFn } from './util.js';
import { activationCode } from './op-codes.js';
import {
  CONV2D_BACKPROP_INPUT_RELU_KERNEL,
  MAX_POOL_RELU_GRAD_KERNEL,
  reluMaskedGradients,
  reluOutputs,
} from '../fused-kernels.js';

type Attrs = tf.NamedAttrMap & Record<string, unknown>;
const bu = tf.backend_util;

function nhwc(dataFormat: unknown): boolean {
  return dataFormat === undefined || dataFormat === null || dataFormat === 'NHWC' || dataFormat === 'channelsLast';
}

function dims4(...ts: tf.TensorInfo[]): boolean {
  return ts.every((t) => t.shape.length === 4);
}

/** The tf kernels this file serves, and the kernels of fused-kernels.ts that pass a ReLU's gradient. */
function convKernels(
  backend: NativeBackend,
  cpu: Map<string, KernelFn>,
): { tf: Record<string, KernelFn>; reluPassing: Record<string, KernelFn> } {
  const addon = backend.addon;
  const fallback = (name: string) => cpu.get(name)!;

  const conv2D: KernelFn = (args: KernelArgs) => {
    const { x, filter } = args.inputs;
    const a = args.attrs as Attrs;
    if (!isF32(x, filter) || !dims4(x, filter) || !nhwc(a.dataFormat)) return fallback('Conv2D')(args);
    const ci = bu.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      a.strides as number | [number, number],
      a.dilations as number | [number, number],
      a.pad as 'same',
      a.dimRoundingMode as 'floor',
      false,
      'channelsLast',
    );
    const out = backend.makeOutputF32(ci.outShape);
    addon.conv2d(geometry(ci), backend.f32(x), backend.f32(filter), out.values);
    return out.info;
  };

  const fusedConv2D: KernelFn = (args: KernelArgs) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs;
    const a = args.attrs as Attrs;
    const act = activationCode(backend, (a.activation as string | undefined) ?? 'linear');
    if (!isF32(x, filter) || !dims4(x, filter) || !nhwc(a.dataFormat) || act === undefined)
      return fallback('FusedConv2D')(args);
    const ci = bu.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      a.strides as number | [number, number],
      a.dilations as number | [number, number],
      a.pad as 'same',
      a.dimRoundingMode as 'floor',
      false,
      'channelsLast',
    );
    const biasV = lastAxisVector(backend, bias, ci.outChannels, 4);
    const preluV =
      act === backend.ops.activation.prelu
        ? lastAxisVector(backend, preluActivationWeights, ci.outChannels, 4)
        : undefined;
    if (biasV === null || preluV === null || (act === backend.ops.activation.prelu && preluV === undefined))
      return fallback('FusedConv2D')(args);
    const out = backend.makeOutputF32(ci.outShape);
    addon.conv2d(
      geometry(ci),
      backend.f32(x),
      backend.f32(filter),
      out.values,
      biasV ?? null,
      act,
      Number(a.leakyreluAlpha ?? 0.2),
      preluV ?? null,
    );
    if (act === backend.ops.activation.relu) reluOutputs.add(out.info.dataId);
    return out.info;
  };

  const conv2DBackpropInput: KernelFn = (args: KernelArgs) => {
    const { dy, filter, y } = args.inputs;
    const a = args.attrs as Attrs;
    const inputShape = a.inputShape as [number, number, number, number];
    if (!isF32(dy, filter) || !dims4(dy, filter) || !nhwc(a.dataFormat) || inputShape?.length !== 4) {
      if (y) throw new Error(`${CONV2D_BACKPROP_INPUT_RELU_KERNEL} takes float32 NHWC`);
      return fallback('Conv2DBackpropInput')(args);
    }
    const ci = bu.computeConv2DInfo(
      inputShape,
      filter.shape as [number, number, number, number],
      a.strides as number | [number, number],
      1,
      a.pad as 'same',
      a.dimRoundingMode as 'floor',
      false,
      'channelsLast',
    );
    const out = backend.makeOutputF32(ci.inShape);
    const dBias = y ? new Float32Array(ci.inChannels) : null;
    const reluY = y ? backend.f32(y) : null;
    if (!addon.conv2dBackpropInput(geometry(ci), backend.f32(dy), backend.f32(filter), out.values, reluY, dBias))
      throw new Error('native conv input gradient: out of memory');
    if (dBias) reluMaskedGradients.set(out.info.dataId, dBias);
    return out.info;
  };

  const conv2DBackpropFilter: KernelFn = (args: KernelArgs) => {
    const { x, dy } = args.inputs;
    const a = args.attrs as Attrs;
    const filterShape = a.filterShape as [number, number, number, number];
    if (!isF32(x, dy) || !dims4(x, dy) || !nhwc(a.dataFormat) || filterShape?.length !== 4) {
      return fallback('Conv2DBackpropFilter')(args);
    }
    const ci = bu.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filterShape,
      a.strides as number | [number, number],
      1,
      a.pad as 'same',
      a.dimRoundingMode as 'floor',
      false,
      'channelsLast',
    );
    const out = backend.makeOutputF32(filterShape);
    addon.conv2dBackpropFilter(geometry(ci), backend.f32(x), backend.f32(dy), out.values);
    return out.info;
  };

  const depthwise: KernelFn = (args: KernelArgs) => {
    const { x, filter } = args.inputs;
    const a = args.attrs as Attrs;
    if (!isF32(x, filter) || !dims4(x, filter)) return fallback('DepthwiseConv2dNative')(args);
    const ci = bu.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      a.strides as number | [number, number],
      (a.dilations ?? 1) as number | [number, number],
      a.pad as 'same',
      a.dimRoundingMode as 'floor',
      true,
    );
    const out = backend.makeOutputF32(ci.outShape);
    addon.depthwiseConv2d(geometry(ci), backend.f32(x), backend.f32(filter), out.values);
    return out.info;
  };

  const fusedDepthwise: KernelFn = (args: KernelArgs) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs;
    const a = args.attrs as Attrs;
    const act = activationCode(backend, (a.activation as string | undefined) ?? 'linear');
    if (!isF32(x, filter) || !dims4(x, filter) || !nhwc(a.dataFormat) || act === undefined) {
      return fallback('FusedDepthwiseConv2D')(args);
    }
    const ci = bu.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      a.strides as number | [number, number],
      (a.dilations ?? 1) as number | [number, number],
      a.pad as 'same',
      a.dimRoundingMode as 'floor',
      true,
    );
    const biasV = lastAxisVector(backend, bias, ci.outChannels, 4);
    const preluV =
      act === backend.ops.activation.prelu
        ? lastAxisVector(backend, preluActivationWeights, ci.outChannels, 4)
        : undefined;
    if (biasV === null || preluV === null || (act === backend.ops.activation.prelu && preluV === undefined))
      return fallback('FusedDepthwiseConv2D')(args);
    const out = backend.makeOutputF32(ci.outShape);
    addon.depthwiseConv2d(
      geometry(ci),
      backend.f32(x),
      backend.f32(filter),
      out.values,
      biasV ?? null,
      act,
      Number(a.leakyreluAlpha ?? 0.2),
      preluV ?? null,
    );
    return out.info;
  };

  const depthwiseBackpropInput: KernelFn = (args: KernelArgs) => {
    const { dy, filter } = args.inputs;
    const a = args.attrs as Attrs;
    const inputShape = a.inputShape as [number, number, number, number];
    if (!isF32(dy, filter) || !dims4(dy, filter) || inputShape?.length !== 4) {
      return fallback('DepthwiseConv2dNativeBackpropInput')(args);
    }
    const ci = bu.computeConv2DInfo(
      inputShape,
      filter.shape as [number, number, number, number],
      a.strides as number | [number, number],
      (a.dilations ?? 1) as number | [number, number],
      a.pad as 'same',
      a.dimRoundingMode as 'floor',
      true,
    );
    const out = backend.makeOutputF32(ci.inShape);
    addon.depthwiseBackpropInput(geometry(ci), backend.f32(dy), backend.f32(filter), out.values);
    return out.info;
  };

  const depthwiseBackpropFilter: KernelFn = (args: KernelArgs) => {
    const { x, dy } = args.inputs;
    const a = args.attrs as Attrs;
    const filterShape = a.filterShape as [number, number, number, number];
    if (!isF32(x, dy) || !dims4(x, dy) || filterShape?.length !== 4) {
      return fallback('DepthwiseConv2dNativeBackpropFilter')(args);
    }
    const ci = bu.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filterShape,
      a.strides as number | [number, number],
      (a.dilations ?? 1) as number | [number, number],
      a.pad as 'same',
      a.dimRoundingMode as 'floor',
      true,
    );
    const out = backend.makeOutputF32(filterShape);
    addon.depthwiseBackpropFilter(geometry(ci), backend.f32(x), backend.f32(dy), out.values);
    return out.info;
  };

  const poolInfo = (shape: number[], a: Attrs) =>
    bu.computePool2DInfo(
      shape as [number, number, number, number],
      a.filterSize as number | [number, number],
      a.strides as number | [number, number],
      1,
      a.pad as 'same',
      a.dimRoundingMode as 'floor',
    );

  const makePool =
    (name: string, isMax: number): KernelFn =>
    (args: KernelArgs) => {
      const { x } = args.inputs;
      if (!isF32(x) || !dims4(x)) return fallback(name)(args);
      const ci = poolInfo(x.shape, args.attrs as Attrs);
      const out = backend.makeOutputF32(ci.outShape);
      // while a gradient is recorded, where each window's maximum was (the backward then skips x)
      const recording = isMax && tf.engine().state.gradientDepth > 0;
      const argmax = recording ? backend.attachBytes(out.info.dataId, out.values.length) : null;
      if (!addon.pool2d(geometry(ci), isMax, backend.f32(x), out.values, argmax) && argmax)
        backend.detachBytes(out.info.dataId); // a geometry without the 2×2 path: nothing written
      return out.info;
    };

  /** MaxPoolGrad ({dy, input, output}), through the input's ReLU when relu is 1 (then with its bias sums). */
  const maxPoolBackward = (args: KernelArgs, relu: number): { dx: tf.TensorInfo; dBias: Float32Array | null } => {
    const { dy, input, output } = args.inputs;
    const ci = poolInfo(input.shape, args.attrs as Attrs);
    const out = backend.makeOutputF32(input.shape);
    const dBias = relu ? new Float32Array(ci.inChannels) : null;
    const argmax = output ? backend.attachedBytes(output.dataId) : undefined;
    const g = geometry(ci);
    if (!addon.maxPoolGrad(g, backend.f32(dy), backend.f32(input), out.values, relu, dBias, argmax ?? null))
      throw new Error('native max-pool gradient: out of memory');
    return { dx: out.info, dBias };
  };

  const maxPoolGrad: KernelFn = (args: KernelArgs) => {
    const { dy, input } = args.inputs;
    if (!isF32(dy, input) || !dims4(dy, input)) return fallback('MaxPoolGrad')(args);
    return maxPoolBackward(args, 0).dx;
  };

  const maxPoolReluGrad: KernelFn = (args: KernelArgs) => {
    const { dy, input } = args.inputs;
    if (!isF32(dy, input) || !dims4(dy, input)) throw new Error(`${MAX_POOL_RELU_GRAD_KERNEL} takes float32 NHWC`);
    const { dx, dBias } = maxPoolBackward(args, 1);
    reluMaskedGradients.set(dx.dataId, dBias!);
    return dx;
  };
  const avgPoolGrad: KernelFn = (args: KernelArgs) => {
    const { dy, input } = args.inputs;
    if (!isF32(dy, input) || !dims4(dy, input)) return fallback('AvgPoolGrad')(args);
    const ci = poolInfo(input.shape, args.attrs as Attrs);
    const out = backend.makeOutputF32(input.shape);
    addon.avgPoolGrad(geometry(ci), backend.f32(dy), out.values);
    return out.info;
  };

  return {
    tf: {
      Conv2D: conv2D,
      FusedConv2D: fusedConv2D,
      Conv2DBackpropInput: conv2DBackpropInput,
      Conv2DBackpropFilter: conv2DBackpropFilter,
      DepthwiseConv2dNative: depthwise,
      FusedDepthwiseConv2D: fusedDepthwise,
      DepthwiseConv2dNativeBackpropInput: depthwiseBackpropInput,
      DepthwiseConv2dNativeBackpropFilter: depthwiseBackpropFilter,
      MaxPool: makePool('MaxPool', 1),
      AvgPool: makePool('AvgPool', 0),
      MaxPoolGrad: maxPoolGrad,
      AvgPoolGrad: avgPoolGrad,
    },
    reluPassing: {
      [MAX_POOL_RELU_GRAD_KERNEL]: maxPoolReluGrad,
      [CONV2D_BACKPROP_INPUT_RELU_KERNEL]: conv2DBackpropInput,
    },
  };
}

export function makeConvKernels(backend: NativeBackend, cpu: Map<string, KernelFn>): Record<string, KernelFn> {
  return convKernels(backend, cpu).tf;
}

/** MAX_POOL_RELU_GRAD_KERNEL and CONV2D_BACKPROP_INPUT_RELU_KERNEL (float32 NHWC only: no cpu twin). */
export function makeReluPassingKernels(backend: NativeBackend): Record<string, KernelFn> {
  return convKernels(backend, new Map()).reluPassing;
}
