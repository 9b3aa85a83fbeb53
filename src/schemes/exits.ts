/**
 * Early exits: auxiliary shallow classifiers attached after chosen layers of one network,
 * by layer name, as extra models over the same layers (weights shared, the network is not
 * edited). Each exit is a small bottleneck and a linear head:
 * - after a feature map [H, W, C]: `exit{i}_conv` (k×k conv, stride s, no bias) →
 *   `exit{i}_bn` → `exit{i}_relu` → `exit{i}_features` (global average pooling) → `exit{i}_logits`;
 * - after a vector [D]: `exit{i}_fc` (dense) → `exit{i}_features` (ReLU) → `exit{i}_logits`.
 * The bottleneck width defaults to the size of the network's `features` (its penultimate
 * vector), so an exit's features can be compared with the deepest ones without an adapter.
 * An exit model (input → shared layers → its head) saves and loads as any LayersModel: it is
 * an early-exit classifier of its own, smaller and faster than the whole network.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { BATCH_NORM } from '../models/common.js';
import { fanIn, layerInit, type InitScheme } from '../models/init.js';
import { layerNames } from '../models/taps.js';

export interface ExitSpec {
  /** The layer the exit is attached after (`block1_pool`, `stage2_block1_out`, …). */
  after: string;
  /** Channels (maps) or units (vectors) of the bottleneck. Default: the size of the network's features layer. */
  channels?: number;
  /** Kernel size of the bottleneck conv (maps). Default 3. */
  kernelSize?: number;
  /** Stride of the bottleneck conv (maps). Default 2. */
  stride?: number;
}

export interface ExitModel {
  /** `exit1`, `exit2`, … in the given order. */
  name: string;
  after: string;
  /** input → the network's layers up to `after` → the exit's head → logits. */
  model: tf.LayersModel;
  /** The layer holding the exit's bottleneck features (`exit{i}_features`). */
  featureLayer: string;
  /** Frees the exit's own layers (not the shared ones). */
  dispose(): void;
}

export interface AttachExitsOptions {
  model: tf.LayersModel;
  exits: ExitSpec[];
  /** The network's penultimate layer (the deepest features). Default `features`. */
  featureLayer?: string;
  /** Seed of the heads' initializers. */
  seed?: number;
  /** Initialization of the heads (see `InitScheme`). Default `pytorch`, the zoo's default. */
  init?: InitScheme;
}

const positive = (v: number | undefined, what: string, fallback: number) => {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < 1) throw new UserError(`exit ${what} must be a whole number >= 1 (got ${v})`);
  return x;
};

/** Builds one exit model per spec over `model`'s layers; also returns the deepest features' shape. */
export function attachExits({
  model,
  exits,
  featureLayer = 'features',
  seed = 0,
  init: scheme = 'pytorch',
}: AttachExitsOptions): { exits: ExitModel[]; featureShape: number[] } {
  const names = layerNames(model);
  const list = () => names.map((l) => `${l.name} [${l.shape.join(',')}]`).join(', ');
  const index = new Map(model.layers.map((l, i) => [l.name, i]));
  const deepest = names.find((l) => l.name === featureLayer);
  if (!deepest)
    throw new UserError(`the network has no layer \`${featureLayer}\` (its deepest features); layers: ${list()}`);
  const featureShape = deepest.shape as number[];
  if (exits.length === 0) throw new UserError('give at least one exit: exits: [{after: LAYER}]');
  const classes = model.outputs[0]!.shape[1] as number;
  let next = seed;
  const init = (x: tf.SymbolicTensor, kernelSize = 1) => layerInit(scheme, fanIn(x, kernelSize), next++);
  const seen = new Set<string>();
  const built = exits.map((spec, k) => {
    const i = k + 1;
    const at = names.find((l) => l.name === spec.after);
    if (!at) throw new UserError(`exits[${k}].after: the network has no layer \`${spec.after}\`; layers: ${list()}`);
    if (seen.has(spec.after))
      throw new UserError(`exits[${k}].after: two exits after \`${spec.after}\`; attach each exit after another layer`);
    seen.add(spec.after);
    if (index.get(spec.after)! >= index.get(featureLayer)!)
      throw new UserError(
        `exits[${k}].after: \`${spec.after}\` is not before \`${featureLayer}\`; an exit goes after a shallower layer`,
      );
    const width = positive(
      spec.channels,
      'channels',
      featureShape.reduce((a, b) => a * b, 1),
    );
    const own: tf.layers.Layer[] = [];
    const use = <L extends tf.layers.Layer>(layer: L) => {
      own.push(layer);
      return layer;
    };
    let x = model.getLayer(spec.after).output as tf.SymbolicTensor;
    if (at.shape.length === 3) {
      const kernelSize = positive(spec.kernelSize, 'kernelSize', 3);
      x = use(
        tf.layers.conv2d({
          name: `exit${i}_conv`,
          filters: width,
          kernelSize,
          strides: positive(spec.stride, 'stride', 2),
          padding: 'same',
          useBias: false,
          kernelInitializer: init(x, kernelSize).kernelInitializer,
        }),
      ).apply(x) as tf.SymbolicTensor;
      x = use(tf.layers.batchNormalization({ name: `exit${i}_bn`, ...BATCH_NORM })).apply(x) as tf.SymbolicTensor;
      x = use(tf.layers.reLU({ name: `exit${i}_relu` })).apply(x) as tf.SymbolicTensor;
      x = use(tf.layers.globalAveragePooling2d({ name: `exit${i}_features` })).apply(x) as tf.SymbolicTensor;
    } else if (at.shape.length === 1) {
      x = use(tf.layers.dense({ name: `exit${i}_fc`, units: width, ...init(x) })).apply(x) as tf.SymbolicTensor;
      x = use(tf.layers.reLU({ name: `exit${i}_features` })).apply(x) as tf.SymbolicTensor;
    } else {
      throw new UserError(
        `exits[${k}].after: \`${spec.after}\` outputs [${at.shape.join(',')}]; attach exits after a feature map [H,W,C] or a vector [D]`,
      );
    }
    const logits = use(tf.layers.dense({ name: `exit${i}_logits`, units: classes, ...init(x) })).apply(
      x,
    ) as tf.SymbolicTensor;
    const exitModel = tf.model({ inputs: model.inputs, outputs: logits, name: `${model.name}_exit${i}` });
    return {
      name: `exit${i}`,
      after: spec.after,
      model: exitModel,
      featureLayer: `exit${i}_features`,
      dispose: () => own.forEach((l) => l.dispose()),
    };
  });
  return { exits: built, featureShape };
}
