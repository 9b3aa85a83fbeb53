/**
 * Reading a LayersModel that was not built by the zoo as the nearest zoo node, so students can
 * be derived from any TF.js classifier (`deriveStudents` starts from that node).
 *
 * The mapping, from the model's layers in order (InputLayer, batch norm, activations, dropout,
 * flatten, reshape and padding carry no structure and are skipped):
 * - Dense layers only → `mlp`: `hidden` = the units of every Dense but the last (the logits).
 * - Conv2D (no depthwise, no Add) → `cnn`: a block is a run of Conv2D layers ended by a pooling
 *   layer (or by the next strided conv); `blocks` = the last conv's filters of each block,
 *   `convsPerBlock` = the mean number of convs per block (rounded), `dense` = the first hidden
 *   Dense layer's units (the last block's filters when there is none).
 * - DepthwiseConv2D or SeparableConv2D → `dwsep`: the convs before the first depthwise one are
 *   the stem (`stemFilters`, `stemStride`), each depthwise conv is a block (its stride; the
 *   filters of the 1×1 conv after it); a full k×k conv after the stem is read as one block.
 * - Conv2D with Add layers (residual connections) → `resnet`: the first conv is the stem; each
 *   Add ends a block whose filters are its last k×k conv's and whose stride is the largest in
 *   it; a block starts a new stage when it strides or changes filters; `blocksPerStage` = the
 *   mean number of blocks per stage (rounded).
 * - `dropout` (mlp, cnn) = the first Dropout layer's rate. Everything is read at width 1.
 * What the zoo family cannot express (kernel sizes, hidden Dense layers of a conv net, uneven
 * blocks, residual connections in a depthwise net) is listed in `notes`. Recurrent, attention,
 * 1-D/3-D, concatenating or nested layers have no zoo equivalent: a `UserError` names the layer.
 */
import type * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { ZooNode } from './size-search.js';

export interface ZooEquivalent {
  /** The zoo node (key and the kwargs read from the layers; `width` is 1). */
  node: ZooNode;
  /** One example's shape, from the model's input. */
  inputShape: number[];
  /** Classes: the width of the model's output. */
  numClasses: number;
  /** What the zoo node approximates (empty when the mapping is exact in structure). */
  notes: string[];
}

/** Layers without structure of their own: skipped. */
const SKIPPED = new Set([
  'InputLayer',
  'BatchNormalization',
  'LayerNormalization',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'PReLU',
  'ELU',
  'ThresholdedReLU',
  'Softmax',
  'Dropout',
  'SpatialDropout2D',
  'AlphaDropout',
  'GaussianDropout',
  'GaussianNoise',
  'Flatten',
  'Reshape',
  'ZeroPadding2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
]);
const POOLS = new Set(['MaxPooling2D', 'AveragePooling2D']);
const KNOWN = new Set([...SKIPPED, ...POOLS, 'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'Dense', 'Add']);

interface Layer {
  name: string;
  kind: string;
  config: Record<string, unknown>;
  /** Channels (last axis) of the layer's output, when known. */
  channels?: number;
}

const first = (v: unknown): number => (Array.isArray(v) ? Number(v[0]) : Number(v ?? 1));

/**
 * The zoo node nearest to `model` (see the mapping above), with the input shape and class count
 * read from the model. Throws a `UserError` naming the first layer that has no zoo equivalent.
 */
export function zooEquivalent({ model }: { model: tf.LayersModel }): ZooEquivalent {
  const what = `teacher model \`${model.name}\``;
  const fix = 'derive students from a zoo teacher instead (e.g. `distill students cnn --kwargs …`)';
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new UserError(
      `${what} has ${model.inputs.length} inputs and ${model.outputs.length} outputs; students are derived from classifiers with one input and one output: ${fix}`,
    );
  }
  const inputShape = model.inputs[0]!.shape.slice(1);
  const outputShape = model.outputs[0]!.shape;
  if (!inputShape.every((d) => typeof d === 'number' && d > 0) || outputShape.length !== 2 || !outputShape[1]) {
    throw new UserError(
      `${what} takes [${inputShape.join(',')}] and returns [${outputShape.join(',')}]; students are derived from classifiers with a fixed input shape and one output vector per example: ${fix}`,
    );
  }
  const layers: Layer[] = model.layers.map((l) => {
    const out = l.outputShape;
    const last =
      Array.isArray(out) && typeof out[out.length - 1] === 'number' ? (out[out.length - 1] as number) : undefined;
    return {
      name: l.name,
      kind: l.getClassName(),
      config: l.getConfig() as Record<string, unknown>,
      ...(last !== undefined && { channels: last }),
    };
  });
  const unknown = layers.find((l) => !KNOWN.has(l.kind));
  if (unknown) {
    throw new UserError(
      `${what}: layer \`${unknown.name}\` (${unknown.kind}) has no zoo equivalent (the zoo has Dense, Conv2D, depthwise-separable and residual nets): ${fix}`,
    );
  }
  const dense = layers.filter((l) => l.kind === 'Dense');
  if (dense.length === 0) {
    throw new UserError(`${what} has no Dense layer, so no logits layer to keep: ${fix}`);
  }
  const hidden = dense.slice(0, -1).map((l) => Number(l.config.units));
  const drop = layers.find((l) => l.kind === 'Dropout');
  const dropout = drop ? Math.min(0.9, Number(drop.config.rate ?? 0)) : 0;
  const convs = layers.filter(
    (l) => l.kind === 'Conv2D' || l.kind === 'DepthwiseConv2D' || l.kind === 'SeparableConv2D',
  );
  const numClasses = outputShape[1] as number;
  const result = (node: ZooNode, notes: string[]): ZooEquivalent => ({
    node,
    inputShape: inputShape as number[],
    numClasses,
    notes,
  });
  if (convs.length === 0) return result({ key: 'mlp', kwargs: { hidden, dropout } }, []);
  if (inputShape.length !== 3) {
    throw new UserError(
      `${what} has conv layers but takes inputs of shape [${inputShape.join(',')}], not [height, width, channels]: ${fix}`,
    );
  }
  const notes: string[] = [];
  const kernels = [
    ...new Set(
      convs
        .filter((l) => l.kind !== 'Conv2D' || first(l.config.kernelSize) !== 1)
        .map((l) => first(l.config.kernelSize)),
    ),
  ];
  if (kernels.some((k) => k !== 3)) notes.push(`${kernels.join('/')}-wide kernels read as 3×3`);
  if (layers.some((l) => l.kind === 'DepthwiseConv2D' || l.kind === 'SeparableConv2D')) {
    if (layers.some((l) => l.kind === 'Add')) notes.push('residual connections dropped (dwsep has none)');
    if (hidden.length > 0) notes.push(`hidden Dense layers (${hidden.join(', ')}) dropped (dwsep: pooling → logits)`);
    return result(depthwiseNode(layers, notes), notes);
  }
  if (layers.some((l) => l.kind === 'Add')) {
    if (hidden.length > 0) notes.push(`hidden Dense layers (${hidden.join(', ')}) dropped (resnet: pooling → logits)`);
    return result(residualNode(layers, notes, what, fix), notes);
  }
  return result(convNode(layers, hidden, dropout, notes), notes);
}

/** `cnn`: blocks of convs ended by pooling (or by the next strided conv). */
function convNode(layers: Layer[], hidden: number[], dropout: number, notes: string[]): ZooNode {
  const groups: number[][] = [[]];
  for (const l of layers) {
    const open = groups[groups.length - 1]!;
    if (l.kind === 'Conv2D') {
      if (first(l.config.strides) > 1 && open.length > 0) groups.push([Number(l.config.filters)]);
      else open.push(Number(l.config.filters));
    } else if (POOLS.has(l.kind) && open.length > 0) groups.push([]);
  }
  const blocks = groups.filter((g) => g.length > 0);
  const counts = blocks.map((g) => g.length);
  const convsPerBlock = Math.max(1, Math.round(counts.reduce((a, b) => a + b, 0) / counts.length));
  if (counts.some((c) => c !== convsPerBlock))
    notes.push(`${counts.join('/')} convs per block read as ${convsPerBlock}`);
  const filters = blocks.map((g) => g[g.length - 1]!);
  const denseUnits = hidden[0] ?? filters[filters.length - 1]!;
  if (hidden.length === 0) notes.push(`no hidden Dense layer: \`dense\` set to the last block's ${denseUnits} filters`);
  if (hidden.length > 1)
    notes.push(`${hidden.length} hidden Dense layers (${hidden.join(', ')}) read as one of ${denseUnits}`);
  return { key: 'cnn', kwargs: { blocks: filters, convsPerBlock, dense: denseUnits, dropout } };
}

/** `dwsep`: a stem, then one block per depthwise (or separable, or full k×k) conv. */
function depthwiseNode(layers: Layer[], notes: string[]): ZooNode {
  const start = layers.findIndex((l) => l.kind === 'DepthwiseConv2D' || l.kind === 'SeparableConv2D');
  const stem = layers.slice(0, start).find((l) => l.kind === 'Conv2D');
  const blocks: Array<{ filters: number; stride: number }> = [];
  let full = 0;
  layers.slice(start).forEach((l, i, rest) => {
    const stride = first(l.config.strides);
    if (l.kind === 'SeparableConv2D') blocks.push({ filters: Number(l.config.filters), stride });
    else if (l.kind === 'DepthwiseConv2D') {
      const next = rest.slice(i + 1).find((n) => n.kind !== 'BatchNormalization' && !SKIPPED.has(n.kind));
      const pointwise = next?.kind === 'Conv2D' && first(next.config.kernelSize) === 1 ? next : undefined;
      blocks.push({ filters: Number(pointwise?.config.filters ?? l.channels ?? 1), stride });
    } else if (l.kind === 'Conv2D' && first(l.config.kernelSize) > 1) {
      full++;
      blocks.push({ filters: Number(l.config.filters), stride });
    } else if (POOLS.has(l.kind) && blocks.length > 0) {
      // A pooling layer halves H×W as a strided block would: the next block strides instead.
      blocks[blocks.length - 1] = { ...blocks[blocks.length - 1]!, stride: 2 };
    }
  });
  if (full > 0) notes.push(`${full} full k×k conv layer(s) after the stem read as depthwise-separable blocks`);
  if (!stem) notes.push(`no stem conv: \`stemFilters\` set to the first block's ${blocks[0]!.filters}`);
  return {
    key: 'dwsep',
    kwargs: {
      stemFilters: Number(stem?.config.filters ?? blocks[0]!.filters),
      stemStride: stem ? first(stem.config.strides) : 1,
      blocks,
    },
  };
}

/** `resnet`: the stem conv, then blocks ended by Add layers, grouped into stages. */
function residualNode(layers: Layer[], notes: string[], what: string, fix: string): ZooNode {
  const stemAt = layers.findIndex((l) => l.kind === 'Conv2D');
  const stem = layers[stemAt]!;
  const blocks: Array<{ filters: number; stride: number }> = [];
  let segment: Layer[] = [];
  for (const l of layers.slice(stemAt + 1)) {
    if (l.kind === 'Add') {
      const full = segment.filter((c) => first(c.config.kernelSize) > 1);
      const filters = Number((full[full.length - 1] ?? segment[segment.length - 1])?.config.filters ?? Number.NaN);
      if (!Number.isFinite(filters)) {
        throw new UserError(
          `${what}: Add layer \`${l.name}\` has no conv before it; no zoo resnet block matches: ${fix}`,
        );
      }
      blocks.push({ filters, stride: Math.max(1, ...segment.map((c) => first(c.config.strides))) });
      segment = [];
    } else if (l.kind === 'Conv2D') segment.push(l);
  }
  if (segment.length > 0) notes.push(`${segment.length} conv layer(s) after the last residual block dropped`);
  const stages: number[][] = [];
  blocks.forEach((b, i) => {
    if (i === 0 || b.stride > 1 || b.filters !== blocks[i - 1]!.filters) stages.push([b.filters]);
    else stages[stages.length - 1]!.push(b.filters);
  });
  const counts = stages.map((s) => s.length);
  const blocksPerStage = Math.max(1, Math.round(counts.reduce((a, b) => a + b, 0) / counts.length));
  if (counts.some((c) => c !== blocksPerStage))
    notes.push(`${counts.join('/')} blocks per stage read as ${blocksPerStage}`);
  const filters = stages.map((s) => s[0]!);
  if (Number(stem.config.filters) !== filters[0]) {
    notes.push(
      `stem of ${String(stem.config.filters)} filters read as ${filters[0]} (resnet's stem has the first stage's)`,
    );
  }
  return { key: 'resnet', kwargs: { stages: filters, blocksPerStage, stemStride: first(stem.config.strides) } };
}
