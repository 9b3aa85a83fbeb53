/**
 * Sizing a model of a zoo family to a parameter budget: the width multiplier whose model has
 * the parameter count closest to a target. Teacher assistants use it for TAKD's "auto" size,
 * the geometric mean of teacher and student (Mirzadeh et al. 2020 place the best assistant
 * between the two; on a log scale, halfway).
 */
import type * as tf from '@tensorflow/tfjs';
import { countParams } from '../models/common.js';
import { buildModel } from '../models/zoo.js';

export interface ZooNode {
  key: string;
  kwargs: Record<string, unknown>;
}

export interface SizeContext {
  inputShape: readonly number[];
  numClasses: number;
}

/** Parameters (trainable + BN statistics) of a zoo node built for `context`. */
export function paramsOf(node: ZooNode, context: SizeContext): number {
  const model: tf.LayersModel = buildModel({ key: node.key, kwargs: node.kwargs, ...context });
  try {
    return countParams(model);
  } finally {
    model.dispose();
  }
}

/**
 * The node with its `width` set so that its parameter count is closest to `target` (a bisection
 * on log-width; widths round units to whole channels, so the count moves in steps).
 */
export function widthForParams(node: ZooNode, target: number, context: SizeContext): { node: ZooNode; params: number } {
  const at = (width: number) => ({ key: node.key, kwargs: { ...node.kwargs, width } });
  let lo = Math.log(1 / 64);
  let hi = Math.log(64);
  for (let i = 0; i < 24 && hi - lo > 1e-3; i++) {
    const mid = (lo + hi) / 2;
    if (paramsOf(at(Math.exp(mid)), context) < target) lo = mid;
    else hi = mid;
  }
  const candidates = [lo, hi].map((l) => {
    const width = Number(Math.exp(l).toPrecision(3));
    return { node: at(width), params: paramsOf(at(width), context) };
  });
  return candidates.reduce((a, b) => (Math.abs(b.params - target) < Math.abs(a.params - target) ? b : a));
}

/** √(a·b): the assistant size halfway between teacher and student on a log scale. */
export function geometricMean(a: number, b: number): number {
  return Math.sqrt(a * b);
}
