import * as tf from '@tensorflow/tfjs';
import type { KernelCalls } from './kernel-calls.js';

type Info = tf.TensorInfo;
type Shape4 = [number, number, number, number];
type Pad = Array<[number, number]>;

/**
 * Convolution gradients written as forward convolutions, for backends whose forward conv
 * is fast (XNNPACK in wasm) but whose backprop kernels are missing or slow.
 *
 * dW[kh,kw,ci,co] = Σ_{b,oh,ow} x[b, oh·s+kh−pt, ow·s+kw−pl, ci] · dy[b,oh,ow,co]
 *   is a convolution of xᵀ ([Ci,H,W,B]) with dyᵀ ([OH,OW,B,Co]) at dilation s.
 * dx[b,h,w,ci] = Σ dy_dilated[b, h+kh'−(K−1−pt), …] · W[K−1−kh', …, ci, co]
 *   is a stride-1 convolution of the zero-dilated dy with the flipped, transposed filter.
 */
export function conv2dBackpropFilter(k: KernelCalls, x: Info, dy: Info, attrs: tf.Conv2DBackpropFilterAttrs): Info {
  const filterShape = attrs.filterShape as Shape4;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4,
    filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const [kh, kw, ci, co] = filterShape;
  const { top, left } = info.padInfo;
  const viaInput = filterFromInputAsFilter(k, x, dy, info, filterShape);
  if (viaInput) return viaInput;
  const xT = k.transpose(x, [3, 1, 2, 0]);
  const dyT = k.transpose(dy, [1, 2, 0, 3]);
  const bottom = Math.max(0, kh - info.inHeight - top + (info.outHeight - 1) * info.strideHeight);
  const right = Math.max(0, kw - info.inWidth - left + (info.outWidth - 1) * info.strideWidth);
  const pad: Pad = [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
  const conv = k.run(
    'Conv2D',
    { x: xT, filter: dyT },
    {
      strides: [1, 1],
      pad,
      dataFormat: 'NHWC',
      dilations: [info.strideHeight, info.strideWidth],
    },
  );
  k.free(xT, dyT);
  const cropped = k.cropTo(conv, [ci, kh, kw, co]);
  const out = k.transpose(cropped, [1, 2, 0, 3]);
  k.free(cropped);
  return out;
}

/**
 * dW as a forward conv whose filter is the input: with p = KH−1−kh, q = KW−1−kw,
 *   out[co,p,q,ci] = Σ_{h,w,b} dyPad[co, p+h, q+w, b] · x[h,w,b,ci]   (x as [H,W,B,Ci])
 * where dyPad is dy as [Co,OH,OW,B] padded by KH−1−top above and KW−1−left on the left. XNNPACK
 * packs the filter operand anew on every call, and the packing grows with the filter's output
 * channels; with Ci < Co the input packs cheaper than dy (bench CNN conv2, Ci 32 → Co 64: 40 ms
 * against 57; the quickstart teacher's first layer, 28×28×1 → 32 at batch 64: 8.7 ms against 15.7).
 * Stride 1 and Ci < Co only; undefined where it does not apply.
 */
function filterFromInputAsFilter(
  k: KernelCalls,
  x: Info,
  dy: Info,
  info: tf.backend_util.Conv2DInfo,
  [kh, kw, ci, co]: Shape4,
): Info | undefined {
  if (info.strideHeight !== 1 || info.strideWidth !== 1 || ci >= co) return undefined;
  const [, h, w] = x.shape as Shape4;
  const { top, left } = info.padInfo;
  const pad: Pad = [
    [0, 0],
    [kh - 1 - top, h - info.outHeight + top],
    [kw - 1 - left, w - info.outWidth + left],
    [0, 0],
  ];
  if (pad.flat().some((p) => p < 0)) return undefined;
  const dyT = k.transpose(dy, [3, 1, 2, 0]);
  const dyPad = k.pad(dyT, pad);
  const xF = k.transpose(x, [1, 2, 0, 3]);
  const conv = k.run(
    'Conv2D',
    { x: dyPad, filter: xF },
    {
      strides: [1, 1],
      pad: 'valid',
      dataFormat: 'NHWC',
      dilations: [1, 1],
    },
  );
  const flipped = k.reverse(conv, [1, 2]);
  const out = k.transpose(flipped, [1, 2, 3, 0]);
  k.free(dyT, dyPad, xF, conv, flipped);
  return out;
}

/** Shifts a dilated gradient so its top/left padding is ≥ 0; returns the paddings to use. */
function alignForTransposedConv(k: KernelCalls, dyd: Info, padTop: number, padLeft: number) {
  const cutTop = Math.max(0, -padTop);
  const cutLeft = Math.max(0, -padLeft);
  if (cutTop === 0 && cutLeft === 0) return { input: dyd, top: padTop, left: padLeft };
  const [b, h, w, c] = dyd.shape as Shape4;
  const input = k.slice(dyd, [0, cutTop, cutLeft, 0], [b, h - cutTop, w - cutLeft, c]);
  k.free(dyd);
  return { input, top: Math.max(0, padTop), left: Math.max(0, padLeft) };
}

/** The gradient w.r.t. a conv2d input, as one forward conv2d (or depthwise conv2d). */
function transposedConv(
  k: KernelCalls,
  dy: Info,
  flipped: Info,
  inputShape: Shape4,
  info: tf.backend_util.Conv2DInfo,
  kernel: 'Conv2D' | 'DepthwiseConv2dNative',
  outChannels: number,
): Info {
  const { filterHeight: fh, filterWidth: fw, dilationHeight: dh, dilationWidth: dw } = info;
  const dyd = k.dilateSpatial(dy, info.strideHeight, info.strideWidth);
  const aligned = alignForTransposedConv(k, dyd, (fh - 1) * dh - info.padInfo.top, (fw - 1) * dw - info.padInfo.left);
  const [b, h, w] = inputShape;
  const [, hd, wd] = aligned.input.shape as Shape4;
  const bottom = Math.max(0, h - hd - aligned.top + (fh - 1) * dh);
  const right = Math.max(0, w - wd - aligned.left + (fw - 1) * dw);
  const pad: Pad = [
    [0, 0],
    [aligned.top, bottom],
    [aligned.left, right],
    [0, 0],
  ];
  const conv = k.run(
    kernel,
    { x: aligned.input, filter: flipped },
    {
      strides: [1, 1],
      pad,
      dataFormat: 'NHWC',
      dilations: [dh, dw],
    },
  );
  k.free(aligned.input);
  return k.cropTo(conv, [b, h, w, outChannels]);
}

export function conv2dBackpropInput(k: KernelCalls, dy: Info, filter: Info, attrs: tf.Conv2DBackpropInputAttrs): Info {
  const inputShape = attrs.inputShape as Shape4;
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as Shape4,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const reversed = k.reverse(filter, [0, 1]);
  const flipped = k.transpose(reversed, [0, 1, 3, 2]);
  k.free(reversed);
  const out = transposedConv(k, dy, flipped, inputShape, info, 'Conv2D', inputShape[3]);
  k.free(flipped);
  return out;
}

export function depthwiseBackpropInput(
  k: KernelCalls,
  dy: Info,
  filter: Info,
  attrs: tf.DepthwiseConv2dNativeBackpropInputAttrs,
): Info {
  const inputShape = attrs.inputShape as Shape4;
  const [fh, fw, c, m] = filter.shape as Shape4;
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as Shape4,
    attrs.strides,
    attrs.dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  const reversed = k.reverse(filter, [0, 1]);
  const flipped = k.reshape(reversed, [fh, fw, c * m, 1]);
  k.free(reversed);
  const perChannel = transposedConv(k, dy, flipped, inputShape, info, 'DepthwiseConv2dNative', c * m);
  k.free(flipped);
  if (m === 1) return perChannel;
  const [b, h, w] = inputShape;
  const split = k.reshape(perChannel, [b, h, w, c, m]);
  const out = k.run('Sum', { x: split }, { axis: [4], keepDims: false });
  k.free(perChannel, split);
  return out;
}

/** dW[kh,kw,c,m] = Σ_{b,oh,ow} x_pad[b, oh·s+kh·d, ow·s+kw·d, c] · dy[b,oh,ow,c·M+m], one tap at a time. */
export function depthwiseBackpropFilter(
  k: KernelCalls,
  x: Info,
  dy: Info,
  attrs: tf.DepthwiseConv2dNativeBackpropFilterAttrs,
): Info {
  const filterShape = attrs.filterShape as Shape4;
  const [fh, fw, c, m] = filterShape;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4,
    filterShape,
    attrs.strides,
    attrs.dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  const { top, left } = info.padInfo;
  const {
    outHeight: oh,
    outWidth: ow,
    strideHeight: sh,
    strideWidth: sw,
    dilationHeight: dh,
    dilationWidth: dw,
  } = info;
  const [b, h, w] = x.shape as Shape4;
  const bottom = Math.max(0, (fh - 1) * dh + (oh - 1) * sh + 1 - h - top);
  const right = Math.max(0, (fw - 1) * dw + (ow - 1) * sw + 1 - w - left);
  const xPad = k.pad(x, [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ]);
  const dy5 = k.reshape(dy, [b, oh, ow, c, m]);
  const taps: Info[] = [];
  for (let i = 0; i < fh; i++) {
    for (let j = 0; j < fw; j++) {
      const patch = k.run(
        'StridedSlice',
        { x: xPad },
        {
          begin: [0, i * dh, j * dw, 0],
          end: [b, i * dh + (oh - 1) * sh + 1, j * dw + (ow - 1) * sw + 1, c],
          strides: [1, sh, sw, 1],
          beginMask: 0,
          endMask: 0,
          ellipsisMask: 0,
          newAxisMask: 0,
          shrinkAxisMask: 0,
        },
      );
      const patch5 = k.reshape(patch, [b, oh, ow, c, 1]);
      const product = k.run('Multiply', { a: patch5, b: dy5 });
      taps.push(k.run('Sum', { x: product }, { axis: [0, 1, 2], keepDims: false }));
      k.free(patch, patch5, product);
    }
  }
  const stacked = k.run('Pack', taps, { axis: 0 });
  const out = k.reshape(stacked, filterShape);
  k.free(xPad, dy5, stacked, ...taps);
  return out;
}
