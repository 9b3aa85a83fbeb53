import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';

/** Every layer of a model with its output shape (without batch), for error messages. */
export function layerNames(model: tf.LayersModel): Array<{ name: string; shape: readonly (number | null)[] }> {
  return model.layers.map((layer) => {
    const shape = layer.outputShape as (number | null)[] | (number | null)[][];
    const first = Array.isArray(shape[0]) ? (shape[0] as (number | null)[]) : (shape as (number | null)[]);
    return { name: layer.name, shape: first.slice(1) };
  });
}

/** Throws a UserError listing the layers when `model` has no layer of one of `names`. */
export function checkTaps(model: tf.LayersModel, names: readonly string[], owner = 'model'): void {
  const known = new Set(model.layers.map((l) => l.name));
  for (const name of names) {
    if (!known.has(name)) {
      const list = layerNames(model)
        .map((l) => `${l.name} [${l.shape.join(',')}]`)
        .join(', ');
      throw new UserError(`${owner} has no layer \`${name}\`; layers: ${list}`);
    }
  }
}

/**
 * A model over the same layers (weights shared, no copy) whose outputs are the original
 * output followed by the named intermediate outputs: features are tapped without editing
 * the user's model. With no names, the model itself.
 */
export function tapModel(model: tf.LayersModel, names: readonly string[], owner = 'model'): tf.LayersModel {
  if (names.length === 0) return model;
  checkTaps(model, names, owner);
  const taps = names.map((n) => model.getLayer(n).output as tf.SymbolicTensor);
  return tf.model({ inputs: model.inputs, outputs: [model.outputs[0]!, ...taps] });
}

/** Runs a tapped model: the logits and the taps by name. */
export function applyTapped(
  tapped: tf.LayersModel,
  names: readonly string[],
  x: tf.Tensor,
  training: boolean,
): { logits: tf.Tensor2D; taps: Record<string, tf.Tensor> } {
  const out = tapped.apply(x, { training });
  if (!Array.isArray(out)) return { logits: out as tf.Tensor2D, taps: {} };
  const taps: Record<string, tf.Tensor> = {};
  names.forEach((name, i) => (taps[name] = out[i + 1] as tf.Tensor));
  return { logits: out[0] as tf.Tensor2D, taps };
}

/** A fresh copy of one layer (unbuilt) and the weights to give it once built. */
export interface CopiedLayer {
  layer: tf.layers.Layer;
  weights: tf.Tensor[];
}

/** The layers after a tap, copied, and the tap's output shape (without batch): their input. */
export interface CopiedHead {
  inputShape: number[];
  layers: CopiedLayer[];
}

/**
 * Copies of the layers that map the output of layer `tap` to the model's output (the teacher's
 * classifier after its `features`, for SimKD), in order; they must form a chain. The copies are
 * unbuilt: apply them in order, then `layer.setWeights(weights)`.
 */
export function layersAfter(model: tf.LayersModel, tap: string, owner = 'model'): CopiedHead {
  checkTaps(model, [tap], owner);
  const chain: tf.layers.Layer[] = [];
  let layer = model.outputLayers[0]!;
  while (layer.name !== tap) {
    const inbound = layer.inboundNodes.flatMap((n) => n.inboundLayers);
    if (inbound.length !== 1 || inbound[0]!.getClassName() === 'InputLayer')
      throw new UserError(
        `${owner}: the layers after \`${tap}\` are not a single chain to the output (at \`${layer.name}\`); name a layer whose output feeds the classifier alone`,
      );
    chain.unshift(layer);
    layer = inbound[0]!;
  }
  const registered = tf.serialization.SerializationMap.getMap().classNameMap;
  const layers = chain.map((l) => {
    const [cls, fromConfig] = registered[l.getClassName()]!;
    return { layer: fromConfig(cls, l.getConfig()) as tf.layers.Layer, weights: l.getWeights() };
  });
  return { inputShape: (model.getLayer(tap).output as tf.SymbolicTensor).shape.slice(1) as number[], layers };
}
