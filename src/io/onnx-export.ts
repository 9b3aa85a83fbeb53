/**
 * A TF.js LayersModel as an ONNX model (opset 13), for onnxruntime on mobile, C++ or Python
 * services. The protobuf messages come from `onnx-proto` (the ONNX schema compiled with
 * protobufjs); this file only maps layers to operators:
 *
 *   Dense → Gemm · Conv2D → Conv · DepthwiseConv2D → Conv (group = channels) ·
 *   BatchNormalization → BatchNormalization (inference statistics) · ReLU / Activation → Relu,
 *   Sigmoid, Tanh, Softmax · MaxPooling2D / AveragePooling2D → MaxPool / AveragePool ·
 *   GlobalAveragePooling2D → GlobalAveragePool + Flatten · Flatten → Transpose to NHWC + Flatten
 *   (TF.js flattens channels-last) · Add → Add · Dropout → nothing (inference).
 *
 * Images stay NCHW inside the graph (ONNX's convolution layout); the graph input is NHWC as the
 * TF.js model takes it (one Transpose first), or NCHW with `layout: 'nchw'`. 'same' padding is
 * written as explicit pads, TF's way (the extra pixel at the end).
 */
import type * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import { UserError } from '../errors.js';

const { onnx } = onnxProto;
export const ONNX_OPSET = 13;

export interface OnnxExportOptions {
  /** The graph input's layout for image models: `nhwc` (as TF.js, default) or `nchw`. */
  layout?: 'nhwc' | 'nchw';
  /** The ONNX graph's name. Default the model's name. */
  name?: string;
}

type Shape = Array<number | null>;
interface Value {
  name: string;
  /** Shape as TF.js sees it (channels last), batch first. */
  tfShape: Shape;
  /** 4-D values are held NCHW in the graph. */
  nchw: boolean;
}

interface LayerLike {
  name: string;
  getClassName(): string;
  getConfig(): Record<string, unknown>;
  getWeights(): tf.Tensor[];
  weights: Array<{ originalName: string; name: string }>;
  inboundNodes: Array<{ inboundLayers: LayerLike[]; nodeIndices: number[]; tensorIndices: number[] }>;
  outputShape: Shape | Shape[];
}

const ACTIVATIONS: Record<string, string | null> = {
  linear: null,
  relu: 'Relu',
  sigmoid: 'Sigmoid',
  tanh: 'Tanh',
  softmax: 'Softmax',
};

/** `[top, left, bottom, right]` pads of TF's 'same' padding for one spatial size each. */
function samePads(
  input: [number, number],
  kernel: [number, number],
  strides: [number, number],
  dilation: [number, number],
) {
  const pad = [0, 1].map((i) => {
    const k = (kernel[i]! - 1) * dilation[i]! + 1;
    const out = Math.ceil(input[i]! / strides[i]!);
    const total = Math.max((out - 1) * strides[i]! + k - input[i]!, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)] as const;
  });
  return [pad[0]![0], pad[1]![0], pad[0]![1], pad[1]![1]];
}

const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [v[0], v[1]] : [v as number, v as number]);

/** Writes the ONNX bytes of `model`; throws a UserError naming any layer it cannot map. */
export function exportOnnx(model: tf.LayersModel, options: OnnxExportOptions = {}): Uint8Array {
  const layout = options.layout ?? 'nhwc';
  const nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  const initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  const values = new Map<string, Value>();
  let counter = 0;
  const fresh = (base: string) => `${base}__${counter++}`;
  const node = (
    opType: string,
    inputs: string[],
    output: string,
    attributes: Record<string, number | number[] | string> = {},
  ) => {
    nodes.push(
      onnx.NodeProto.create({
        opType,
        input: inputs,
        output: [output],
        name: output,
        attribute: Object.entries(attributes).map(([name, v]) =>
          typeof v === 'string'
            ? { name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(v) }
            : Array.isArray(v)
              ? { name, type: onnx.AttributeProto.AttributeType.INTS, ints: v }
              : Number.isInteger(v) && name !== 'epsilon' && name !== 'alpha' && name !== 'beta'
                ? { name, type: onnx.AttributeProto.AttributeType.INT, i: v }
                : { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v },
        ),
      }),
    );
    return output;
  };
  const constant = (name: string, data: Float32Array | Int32Array, dims: number[], int64 = false) => {
    initializers.push(
      onnx.TensorProto.create({
        name,
        dims,
        dataType: int64 ? onnx.TensorProto.DataType.INT64 : onnx.TensorProto.DataType.FLOAT,
        ...(int64 ? { int64Data: Array.from(data) } : { rawData: new Uint8Array(new Float32Array(data).buffer) }),
      }),
    );
    return name;
  };
  /** `W` transposed by `perm` (TF.js layouts → ONNX layouts). */
  const permuted = (w: tf.Tensor, perm: number[]): { data: Float32Array; dims: number[] } => {
    const src = w.dataSync() as Float32Array;
    const shape = w.shape;
    const dims = perm.map((p) => shape[p]!);
    const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    const out = new Float32Array(src.length);
    const idx = new Array(dims.length).fill(0);
    for (let o = 0; o < out.length; o++) {
      let s = 0;
      for (let d = 0; d < dims.length; d++) s += idx[d]! * strides[perm[d]!]!;
      out[o] = src[s]!;
      for (let d = dims.length - 1; d >= 0; d--) {
        if (++idx[d]! < dims[d]!) break;
        idx[d] = 0;
      }
    }
    return { data: out, dims };
  };
  const activate = (out: string, activation: unknown, layer: string): string => {
    const a = (activation as string | undefined) ?? 'linear';
    if (!(a in ACTIVATIONS))
      throw new UserError(
        `ONNX export: layer \`${layer}\` has activation \`${a}\`; supported: ${Object.keys(ACTIVATIONS).join(', ')}`,
      );
    const op = ACTIVATIONS[a];
    if (!op) return out;
    return node(op, [out], fresh(`${layer}_${a}`), op === 'Softmax' ? { axis: -1 } : {});
  };
  /** The value as NHWC (a Transpose when it is held NCHW). */
  const channelsLast = (v: Value) =>
    v.nchw ? node('Transpose', [v.name], fresh(`${v.name}_nhwc`), { perm: [0, 2, 3, 1] }) : v.name;

  if (model.inputs.length !== 1)
    throw new UserError(`ONNX export: the model has ${model.inputs.length} inputs; one is supported`);
  const inputShape = model.inputs[0]!.shape;
  const image = inputShape.length === 4;
  const graphInputDims =
    image && layout === 'nchw' ? [inputShape[0], inputShape[3], inputShape[1], inputShape[2]] : inputShape;
  const inputName = 'input';
  const tensorType = (dims: Shape) => ({
    tensorType: {
      elemType: onnx.TensorProto.DataType.FLOAT,
      shape: {
        dim: dims.map((d, i) =>
          d === null || d === undefined ? { dimParam: i === 0 ? 'batch' : `d${i}` } : { dimValue: d },
        ),
      },
    },
  });

  const addInput = (l: LayerLike) => {
    const input =
      image && layout === 'nhwc'
        ? node('Transpose', [inputName], fresh('input_nchw'), { perm: [0, 3, 1, 2] })
        : inputName;
    values.set(l.name, { name: input, tfShape: inputShape as Shape, nchw: image });
  };
  for (const l of model.layers as unknown as LayerLike[]) {
    const cls = l.getClassName();
    const config = l.getConfig();
    const outShape = (Array.isArray(l.outputShape[0]) ? (l.outputShape as Shape[])[0] : l.outputShape) as Shape;
    if (cls === 'InputLayer') {
      addInput(l);
      continue;
    }
    const inbound = l.inboundNodes[0]!.inboundLayers.map((p) => {
      // A Sequential model's `layers` leave its input layer out.
      if (p.getClassName() === 'InputLayer' && !values.has(p.name)) addInput(p);
      const v = values.get(p.name);
      if (!v) throw new UserError(`ONNX export: layer \`${l.name}\` reads \`${p.name}\`, which is not exported yet`);
      return v;
    });
    const x = inbound[0]!;
    const w = l.getWeights();
    const is4d = outShape.length === 4;
    const set = (name: string, nchw = is4d) => values.set(l.name, { name, tfShape: outShape, nchw });
    switch (cls) {
      case 'Dropout':
      case 'SpatialDropout1D':
      case 'GaussianNoise':
      case 'GaussianDropout':
      case 'AlphaDropout':
        values.set(l.name, x);
        break;
      case 'Dense': {
        if (x.tfShape.length !== 2)
          throw new UserError(
            `ONNX export: Dense \`${l.name}\` on a ${x.tfShape.length}-D input is not supported; flatten first`,
          );
        const kernel = constant(`${l.name}_kernel`, w[0]!.dataSync() as Float32Array, w[0]!.shape);
        const bias = w[1] ? [constant(`${l.name}_bias`, w[1].dataSync() as Float32Array, w[1].shape)] : [];
        const out = node('Gemm', [x.name, kernel, ...bias], fresh(l.name));
        set(activate(out, config['activation'], l.name), false);
        break;
      }
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        if (config['dataFormat'] === 'channelsFirst')
          throw new UserError(`ONNX export: \`${l.name}\` is channelsFirst; only channelsLast models are supported`);
        const depthwise = cls === 'DepthwiseConv2D';
        const k = w[0]!;
        const [kh, kw] = [k.shape[0]!, k.shape[1]!];
        const cin = k.shape[2]!;
        // Conv2D [kh, kw, cin, cout] → [cout, cin, kh, kw]; depthwise [kh, kw, cin, m] → [cin·m, 1, kh, kw]
        const p = depthwise ? permuted(k, [2, 3, 0, 1]) : permuted(k, [3, 2, 0, 1]);
        const dims = depthwise ? [cin * k.shape[3]!, 1, kh, kw] : p.dims;
        const kernel = constant(`${l.name}_kernel`, p.data, dims);
        const bias = w[1] ? [constant(`${l.name}_bias`, w[1].dataSync() as Float32Array, w[1].shape)] : [];
        const strides = pair(config['strides']);
        const dilations = pair(config['dilationRate'] ?? 1);
        const pads =
          config['padding'] === 'same'
            ? samePads([x.tfShape[1] as number, x.tfShape[2] as number], [kh, kw], strides, dilations)
            : [0, 0, 0, 0];
        const out = node('Conv', [x.name, kernel, ...bias], fresh(l.name), {
          kernel_shape: [kh, kw],
          strides,
          dilations,
          pads,
          group: depthwise ? cin : 1,
        });
        set(activate(out, config['activation'], l.name));
        break;
      }
      case 'BatchNormalization': {
        const axis = config['axis'] as number;
        if (axis !== -1 && axis !== x.tfShape.length - 1)
          throw new UserError(
            `ONNX export: BatchNormalization \`${l.name}\` on axis ${axis}; only the channel (last) axis is supported`,
          );
        const byName = new Map(l.weights.map((v, i) => [v.originalName.split('/').at(-1)!, w[i]!]));
        const channels = x.tfShape.at(-1) as number;
        const get = (n: string, fill: number) =>
          (byName.get(n)?.dataSync() as Float32Array | undefined) ?? new Float32Array(channels).fill(fill);
        const out = node(
          'BatchNormalization',
          [
            x.name,
            constant(`${l.name}_gamma`, get('gamma', 1), [channels]),
            constant(`${l.name}_beta`, get('beta', 0), [channels]),
            constant(`${l.name}_mean`, get('moving_mean', 0), [channels]),
            constant(`${l.name}_var`, get('moving_variance', 1), [channels]),
          ],
          fresh(l.name),
          { epsilon: config['epsilon'] as number },
        );
        set(out, x.nchw);
        break;
      }
      case 'ReLU': {
        if (config['maxValue'] != null) {
          const max = constant(`${l.name}_max`, new Float32Array([config['maxValue'] as number]), []);
          const min = constant(`${l.name}_min`, new Float32Array([0]), []);
          set(node('Clip', [x.name, min, max], fresh(l.name)), x.nchw);
        } else set(node('Relu', [x.name], fresh(l.name)), x.nchw);
        break;
      }
      case 'Activation':
        set(activate(x.name, config['activation'], l.name), x.nchw);
        break;
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const size = pair(config['poolSize']);
        const strides = pair(config['strides'] ?? config['poolSize']);
        const pads =
          config['padding'] === 'same'
            ? samePads([x.tfShape[1] as number, x.tfShape[2] as number], size, strides, [1, 1])
            : [0, 0, 0, 0];
        const op = cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool';
        set(node(op, [x.name], fresh(l.name), { kernel_shape: size, strides, pads }));
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        const pooled = node(
          cls === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool',
          [x.name],
          fresh(`${l.name}_pool`),
        );
        set(node('Flatten', [pooled], fresh(l.name), { axis: 1 }), false);
        break;
      }
      case 'Flatten':
        set(node('Flatten', [channelsLast(x)], fresh(l.name), { axis: 1 }), false);
        break;
      case 'Reshape': {
        const target = [-1, ...((config['targetShape'] as number[]) ?? [])];
        if (target.length === 4) throw new UserError(`ONNX export: Reshape \`${l.name}\` to an image is not supported`);
        const shape = constant(`${l.name}_shape`, Int32Array.from(target), [target.length], true);
        set(node('Reshape', [channelsLast(x), shape], fresh(l.name)), false);
        break;
      }
      case 'Add': {
        if (new Set(inbound.map((v) => v.nchw)).size > 1)
          throw new UserError(`ONNX export: Add \`${l.name}\` mixes layouts`);
        let out = inbound[0]!.name;
        for (const v of inbound.slice(1)) out = node('Add', [out, v.name], fresh(l.name));
        set(out, x.nchw);
        break;
      }
      default:
        throw new UserError(
          `ONNX export: layer \`${l.name}\` is a ${cls}, which has no ONNX mapping here; supported: Dense, Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Activation, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Flatten, Reshape, Add, Dropout`,
        );
    }
  }
  const outLayer = (model.outputs[0] as unknown as { sourceLayer: LayerLike }).sourceLayer;
  const last = values.get(outLayer.name)!;
  const output = node('Identity', [last.nchw ? channelsLast(last) : last.name], 'output');
  const m = onnx.ModelProto.create({
    irVersion: 7,
    producerName: 'tfjs-distill',
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    graph: {
      name: options.name ?? model.name,
      node: nodes,
      initializer: initializers,
      input: [{ name: inputName, type: tensorType(graphInputDims as Shape) }],
      output: [{ name: output, type: tensorType(model.outputs[0]!.shape as Shape) }],
    },
  });
  return onnx.ModelProto.encode(m).finish();
}
