import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { parseOptions } from '../options.js';
import { fanIn, INIT_SCHEMES, layerInit, type InitScheme, type LayerInit } from './init.js';

/** What a zoo builder gets from the run (the data and the seed), not from the model's options. */
export interface ModelContext {
  /** Shape of one example, without the batch dimension, e.g. `[28, 28, 1]`. */
  inputShape: readonly number[];
  /** Number of classes: the width of the `logits` layer. */
  numClasses: number;
  /** Seed for the weight initializers: the same seed gives identical initial weights. */
  seed?: number;
  /** Name of the returned model. Defaults to the builder's kind. */
  name?: string;
}

/** The options every zoo model has; each model's schema extends it (the one definition of its options). */
export const modelOptions = z.strictObject({
  /** Multiplier on every channel / unit count (not on the logits). Default 1. */
  width: z.number().positive().default(1),
  /** Kernel and bias initialization (see `InitScheme`). Default `pytorch`. */
  init: z.enum(INIT_SCHEMES as [InitScheme, ...InitScheme[]]).default('pytorch'),
});

/** A builder's argument: the run's context and the model's options, e.g. `cnn({ inputShape, numClasses, width: 0.25 })`. */
export type ModelOptions = ModelContext & z.input<typeof modelOptions>;

const CONTEXT_KEYS = ['inputShape', 'numClasses', 'seed', 'name'] as const;

/** Splits a builder's argument into the run's context and its options, validated by the model's schema. */
export function modelArgs<S extends z.ZodType>(
  kind: string,
  schema: S,
  options: ModelContext & object,
): { context: ModelContext; o: z.output<S> } {
  const context: ModelContext = { inputShape: options.inputShape, numClasses: options.numClasses };
  if (options.seed !== undefined) context.seed = options.seed;
  if (options.name !== undefined) context.name = options.name;
  const rest = Object.fromEntries(
    Object.entries(options).filter(([k]) => !(CONTEXT_KEYS as readonly string[]).includes(k)),
  );
  return { context, o: parseOptions(`model \`${kind}\``, schema, rest) };
}

/** Shared field schemas of the zoo's options. */
export const positiveInt = z.int().positive();
export const positiveInts = z.array(positiveInt).min(1);
export const dropoutRate = z.number().min(0).lt(1);

/**
 * Batch-norm settings of every zoo layer: running statistics move 10 % towards each batch's, as
 * PyTorch's (Keras moves 1 %: after 250 steps 8 % of the initial values remain, so short runs
 * were evaluated with stale statistics). ε stays Keras' 1e-3: with PyTorch's 1e-5, float32
 * gradients of narrow, nearly constant channels disagree between backends by 0.3–0.7 %.
 */
export const BATCH_NORM = { momentum: 0.9, epsilon: 1e-3 } as const;

/** Layer factory shared by the builders: width scaling, seeded initializers, checks. */
export class Builder {
  private next = 0;
  readonly width: number;
  readonly scheme: InitScheme;

  constructor(
    readonly kind: string,
    readonly opts: ModelContext,
    common: z.output<typeof modelOptions>,
    imageRank: boolean,
  ) {
    const { inputShape, numClasses, seed } = opts;
    const where = `model \`${kind}\`:`;
    if (
      !Array.isArray(inputShape) ||
      inputShape.length === 0 ||
      !inputShape.every((d) => Number.isInteger(d) && d > 0)
    ) {
      throw new UserError(
        `${where} inputShape must be a list of positive integers, got ${JSON.stringify(inputShape)}; pass e.g. [28, 28, 1]`,
      );
    }
    if (imageRank && inputShape.length !== 3) {
      throw new UserError(
        `${where} inputShape must be [height, width, channels], got ${JSON.stringify(inputShape)}; add a channel axis, e.g. [28, 28, 1]`,
      );
    }
    if (!Number.isInteger(numClasses) || numClasses < 1) {
      throw new UserError(`${where} numClasses must be a positive integer, got ${numClasses}`);
    }
    if (seed !== undefined && !Number.isFinite(seed)) {
      throw new UserError(`${where} seed must be a number, got ${seed}`);
    }
    this.width = common.width;
    this.scheme = common.init;
  }

  /** `n` scaled by the width multiplier, at least 1. */
  units(n: number): number {
    return Math.max(1, Math.round(n * this.width));
  }

  /**
   * Initializers of the next layer, which is applied to `x` (kernelSize × kernelSize window;
   * `depthwise`: one input channel per output); seeded (base seed + layer counter) when a seed is set.
   */
  init(x: tf.SymbolicTensor, kernelSize = 1, depthwise = false): LayerInit {
    const seed = this.opts.seed === undefined ? undefined : this.opts.seed + this.next++;
    return layerInit(this.scheme, fanIn(x, kernelSize, depthwise), seed);
  }

  /** A Dense layer named `name` applied to `x`, initialized by the model's scheme. */
  dense(x: tf.SymbolicTensor, name: string, units: number): tf.SymbolicTensor {
    return tf.layers.dense({ name, units, ...this.init(x) }).apply(x) as tf.SymbolicTensor;
  }

  input(): tf.SymbolicTensor {
    return tf.input({ shape: [...this.opts.inputShape], name: 'input' });
  }

  /** Conv (no bias: BN has one) → BatchNorm → ReLU, named `name`, `name_bn`, `name_relu`. */
  convBnRelu(
    x: tf.SymbolicTensor,
    name: string,
    filters: number,
    kernelSize = 3,
    strides = 1,
    relu = true,
  ): tf.SymbolicTensor {
    let y = tf.layers
      .conv2d({
        name,
        filters,
        kernelSize,
        strides,
        padding: 'same',
        useBias: false,
        kernelInitializer: this.init(x, kernelSize).kernelInitializer,
      })
      .apply(x) as tf.SymbolicTensor;
    y = tf.layers.batchNormalization({ name: `${name}_bn`, ...BATCH_NORM }).apply(y) as tf.SymbolicTensor;
    return relu ? (tf.layers.reLU({ name: `${name}_relu` }).apply(y) as tf.SymbolicTensor) : y;
  }

  /** The linear `logits` head and the model. */
  finish(input: tf.SymbolicTensor, features: tf.SymbolicTensor): tf.LayersModel {
    const logits = this.dense(features, 'logits', this.opts.numClasses);
    return tf.model({ inputs: input, outputs: logits, name: this.opts.name ?? this.kind });
  }
}

/** All parameters: trainable + non-trainable (e.g. batch-norm moving mean / variance). */
export function countParams(model: tf.LayersModel): number {
  return sizeOf(model.weights);
}

/** Parameters an optimizer would update (frozen layers excluded). */
export function trainableParamCount(model: tf.LayersModel): number {
  return sizeOf(model.trainableWeights);
}

function sizeOf(weights: { shape: (number | null)[] }[]): number {
  return weights.reduce((n, w) => n + w.shape.reduce<number>((a, d) => a * (d ?? 0), 1), 0);
}
