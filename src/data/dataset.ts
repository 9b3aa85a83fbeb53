import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { Rng } from './rng.js';

/** The label of a row that has none (a transfer-set row: the teacher's outputs are its only target). */
export const UNLABELED = -1;

export interface DatasetOptions {
  /** Row-major features, `size × prod(sampleShape)` values. */
  features: Float32Array;
  /** One class id in [0, numClasses) per sample, or `UNLABELED` (-1). */
  labels: Int32Array;
  /** Shape of one sample, e.g. `[28, 28, 1]` (height, width, channels) or `[D]`. */
  sampleShape: readonly number[];
  numClasses: number;
  /** One name per class id. */
  classNames?: readonly string[];
}

/**
 * Mean and standard deviation per channel: one value per entry of the last axis of the
 * sample shape (per feature for `[D]`, per colour channel for `[H, W, C]`). Plain arrays,
 * so they can be saved as JSON beside a model and applied again at inference.
 */
export interface NormalizationStats {
  mean: number[];
  std: number[];
}

/** One mini-batch. Its tensors belong to the generator: see `Dataset.batches`. */
export interface Batch {
  /** Features, shape `[batch, ...sampleShape]`, float32. */
  x: tf.Tensor;
  /** Class ids, int32. */
  y: tf.Tensor1D;
  /** The dataset row of each sample (e.g. to look up cached teacher outputs). */
  indices: Int32Array;
}

export interface BatchOptions {
  batchSize: number;
  /** Visit rows in a random order (drawn when `batches()` is called). Default false. */
  shuffle?: boolean;
  /** Seed for shuffling and augmentation. */
  seed?: number;
  /** A generator to draw from instead of `seed` (it advances, so epochs differ). */
  rng?: Rng;
  /** Random translation of images by up to ±`shift` pixels per axis, zero fill. */
  augment?: { shift: number };
  /** Skip a last batch smaller than `batchSize`. Default false. */
  dropLast?: boolean;
}

/**
 * An in-memory classification dataset: float32 features and int32 labels. A Dataset is
 * never mutated: `slice`/`subset` share memory with their source, every other method
 * returns new arrays.
 */
export class Dataset {
  readonly features: Float32Array;
  readonly labels: Int32Array;
  readonly sampleShape: readonly number[];
  readonly numClasses: number;
  readonly classNames?: readonly string[];
  /** Number of values in one sample: prod(sampleShape). */
  readonly sampleSize: number;

  constructor({ features, labels, sampleShape, numClasses, classNames }: DatasetOptions) {
    if (sampleShape.length === 0 || !sampleShape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new Error(`Dataset: bad sample shape [${sampleShape.join(', ')}]`);
    }
    const sampleSize = sampleShape.reduce((a, b) => a * b, 1);
    if (features.length !== labels.length * sampleSize) {
      throw new Error(
        `Dataset: ${labels.length} labels need ${labels.length * sampleSize} feature values ` +
          `for sample shape [${sampleShape.join(', ')}], got ${features.length}`,
      );
    }
    if (!Number.isInteger(numClasses) || numClasses < 1) throw new Error(`Dataset: numClasses ${numClasses}`);
    const bad = labels.findIndex((l) => (l < 0 && l !== UNLABELED) || l >= numClasses);
    if (bad >= 0) throw new Error(`Dataset: label ${labels[bad]} at row ${bad} is outside 0..${numClasses - 1}`);
    if (classNames !== undefined && classNames.length !== numClasses) {
      throw new Error(`Dataset: ${classNames.length} class names for ${numClasses} classes`);
    }
    this.features = features;
    this.labels = labels;
    this.sampleShape = [...sampleShape];
    this.numClasses = numClasses;
    if (classNames !== undefined) this.classNames = [...classNames];
    this.sampleSize = sampleSize;
  }

  get size(): number {
    return this.labels.length;
  }

  /** Rows that have a label (all of them unless some are `UNLABELED`). */
  get labeledSize(): number {
    let n = 0;
    for (const l of this.labels) if (l !== UNLABELED) n++;
    return n;
  }

  /** The labeled rows (this dataset itself when every row has a label). */
  labeledOnly(): Dataset {
    if (this.labeledSize === this.size) return this;
    const rows: number[] = [];
    this.labels.forEach((l, i) => l !== UNLABELED && rows.push(i));
    return this.gather(rows);
  }

  /**
   * A copy in which only `keep` rows, drawn at random (seeded) from the labeled ones, keep their
   * label; every other row becomes `UNLABELED`. Simulates a transfer set with few labels.
   */
  keepLabels(keep: number, seed: number): Dataset {
    const labeled: number[] = [];
    this.labels.forEach((l, i) => l !== UNLABELED && labeled.push(i));
    if (!Number.isInteger(keep) || keep < 1 || keep > labeled.length) {
      throw new UserError(
        `labeled must be a whole number in 1..${labeled.length} (the labeled training rows), got ${keep}`,
      );
    }
    const kept = new Rng(seed).shuffle(Int32Array.from(labeled)).subarray(0, keep);
    const labels = new Int32Array(this.size).fill(UNLABELED);
    for (const r of kept) labels[r] = this.labels[r]!;
    return this.derive(this.features, labels);
  }

  /** This dataset's rows followed by `other`'s (same sample shape and classes), copied. */
  concat(other: Dataset): Dataset {
    if (other.sampleShape.join() !== this.sampleShape.join() || other.numClasses !== this.numClasses) {
      throw new UserError(
        `cannot append samples [${other.sampleShape.join(', ')}] of ${other.numClasses} classes to samples [${this.sampleShape.join(', ')}] of ${this.numClasses}; the files must match`,
      );
    }
    const features = new Float32Array(this.features.length + other.features.length);
    features.set(this.features);
    features.set(other.features, this.features.length);
    const labels = new Int32Array(this.size + other.size);
    labels.set(this.labels);
    labels.set(other.labels, this.size);
    return this.derive(features, labels);
  }

  /** Rows [start, end) as a view sharing memory with this dataset. */
  slice(start: number, end: number = this.size): Dataset {
    const s = Math.max(0, Math.min(start, this.size));
    const e = Math.max(s, Math.min(end, this.size));
    return this.derive(this.features.subarray(s * this.sampleSize, e * this.sampleSize), this.labels.subarray(s, e));
  }

  /** The first min(n, size) rows, as a view. */
  subset(n: number): Dataset {
    if (!Number.isInteger(n) || n < 0) throw new UserError(`subset size must be a whole number ≥ 0, got ${n}`);
    return this.slice(0, n);
  }

  /** The given rows, in the given order, copied. */
  gather(rows: ArrayLike<number>): Dataset {
    const features = new Float32Array(rows.length * this.sampleSize);
    const labels = new Int32Array(rows.length);
    this.copyRows(rows, features, labels);
    return this.derive(features, labels);
  }

  /**
   * A seeded random split: `round(size × validationFraction)` rows go to `validation`, the
   * rest to `train`; each part keeps the original row order. Not stratified.
   */
  split({ validationFraction, seed }: { validationFraction: number; seed: number }): {
    train: Dataset;
    validation: Dataset;
  } {
    if (!(validationFraction > 0 && validationFraction < 1)) {
      throw new UserError(`validationFraction must be between 0 and 1 (exclusive), got ${validationFraction}`);
    }
    const nValidation = Math.round(this.size * validationFraction);
    if (nValidation === 0 || nValidation === this.size) {
      throw new UserError(
        `cannot split ${this.size} samples with validationFraction ${validationFraction}: ` +
          'one part would be empty; use more data or another fraction',
      );
    }
    const order = new Rng(seed).shuffle(range(this.size));
    return {
      validation: this.gather(order.subarray(0, nValidation).sort()),
      train: this.gather(order.subarray(nValidation).sort()),
    };
  }

  /** Mean and std per channel (last axis), see `NormalizationStats`. A std of 0 becomes 1. */
  computeStats(): NormalizationStats {
    const channels = this.sampleShape[this.sampleShape.length - 1]!;
    const sum = new Float64Array(channels);
    const sumSq = new Float64Array(channels);
    const x = this.features;
    for (let i = 0; i < x.length; i++) {
      const c = i % channels;
      sum[c] += x[i]!;
      sumSq[c] += x[i]! * x[i]!;
    }
    const n = x.length / channels;
    const mean = [...sum].map((s) => (n > 0 ? s / n : 0));
    const std = mean.map((m, c) => {
      const variance = n > 0 ? Math.max(0, sumSq[c]! / n - m * m) : 0;
      return variance > 1e-12 ? Math.sqrt(variance) : 1;
    });
    return { mean, std };
  }

  /** A copy with `(x - mean) / std` per channel. Compute stats on training data only. */
  normalize(stats: NormalizationStats): Dataset {
    const channels = this.sampleShape[this.sampleShape.length - 1]!;
    if (stats.mean.length !== channels || stats.std.length !== channels) {
      throw new UserError(
        `normalization stats have ${stats.mean.length} means and ${stats.std.length} stds, ` +
          `but samples of shape [${this.sampleShape.join(', ')}] have ${channels} channels; ` +
          'compute the stats on a dataset of the same shape',
      );
    }
    const features = new Float32Array(this.features.length);
    for (let i = 0; i < features.length; i++) {
      const c = i % channels;
      features[i] = (this.features[i]! - stats.mean[c]!) / stats.std[c]!;
    }
    return this.derive(features, this.labels);
  }

  /** How many batches `batches()` yields with these options. */
  countBatches({ batchSize, dropLast = false }: { batchSize: number; dropLast?: boolean }): number {
    checkBatchSize(batchSize);
    return dropLast ? Math.floor(this.size / batchSize) : Math.ceil(this.size / batchSize);
  }

  /**
   * Mini-batches over the dataset, each row exactly once. The generator owns each batch's
   * tensors: it disposes them when the consumer asks for the next batch, when iteration ends,
   * and when the consumer leaves a `for…of` early (break, return, throw). A consumer that
   * keeps a batch beyond its loop step must `clone()` the tensors it keeps. A consumer that
   * calls `next()` by hand and stops early must call `return()`.
   *
   * Randomness comes from `rng` if given, else from `new Rng(seed)`: the shuffle is drawn
   * when `batches()` is called, shift offsets as each batch is made. To resume a run exactly,
   * save `rng.getState()` between epochs.
   *
   * Each batch gets a fresh feature buffer that its tensor adopts without copying. Buffers are
   * deliberately not reused: the cpu backend keeps the array itself, and a `clone()` shares
   * it, so refilling the buffer would change batches the consumer kept.
   */
  batches(options: BatchOptions): Generator<Batch, void, undefined> {
    const { batchSize, shuffle = false, dropLast = false } = options;
    checkBatchSize(batchSize);
    const shift = options.augment?.shift ?? 0;
    if (!Number.isInteger(shift) || shift < 0) {
      throw new UserError(`augment.shift must be a whole number of pixels ≥ 0, got ${shift}`);
    }
    if (shift > 0 && this.sampleShape.length !== 3) {
      throw new UserError(
        `shift augmentation needs image samples [height, width, channels], ` +
          `got [${this.sampleShape.join(', ')}]; remove augment.shift for this dataset`,
      );
    }
    let rng = options.rng;
    if (rng === undefined && (shuffle || shift > 0)) {
      if (options.seed === undefined) throw new Error('batches: shuffle and augment need `seed` or `rng`');
      rng = new Rng(options.seed);
    }
    const order = range(this.size);
    if (shuffle) rng!.shuffle(order);
    const count = this.countBatches({ batchSize, dropLast });
    return this.generateBatches(order, batchSize, count, shift, rng);
  }

  private *generateBatches(
    order: Int32Array,
    batchSize: number,
    count: number,
    shift: number,
    rng: Rng | undefined,
  ): Generator<Batch, void, undefined> {
    let current: Batch | undefined;
    try {
      for (let b = 0; b < count; b++) {
        const indices = order.slice(b * batchSize, (b + 1) * batchSize);
        const features = new Float32Array(indices.length * this.sampleSize);
        const labels = new Int32Array(indices.length);
        if (shift > 0) this.copyShiftedRows(indices, features, labels, shift, rng!);
        else this.copyRows(indices, features, labels);
        current = {
          x: tf.tensor(features, [indices.length, ...this.sampleShape], 'float32'),
          y: tf.tensor1d(labels, 'int32'),
          indices,
        };
        yield current;
        tf.dispose([current.x, current.y]);
        current = undefined;
      }
    } finally {
      if (current !== undefined) tf.dispose([current.x, current.y]);
    }
  }

  /**
   * Like `copyRows`, but each image is moved by its own random (dy, dx) in [-shift, shift]²;
   * pixels moved in from outside stay 0 (`features` must be zero-filled).
   */
  private copyShiftedRows(rows: Int32Array, features: Float32Array, labels: Int32Array, shift: number, rng: Rng): void {
    const [height, width, channels] = this.sampleShape as [number, number, number];
    const rowSize = width * channels;
    for (let i = 0; i < rows.length; i++) {
      const source = rows[i]! * this.sampleSize;
      const target = i * this.sampleSize;
      labels[i] = this.labels[rows[i]!]!;
      const dy = rng.nextInt(2 * shift + 1) - shift;
      const dx = rng.nextInt(2 * shift + 1) - shift;
      const x0 = Math.max(0, dx);
      const x1 = Math.min(width, width + dx);
      if (x1 <= x0) continue;
      for (let y = Math.max(0, dy); y < Math.min(height, height + dy); y++) {
        const from = source + (y - dy) * rowSize + (x0 - dx) * channels;
        features.set(this.features.subarray(from, from + (x1 - x0) * channels), target + y * rowSize + x0 * channels);
      }
    }
  }

  /**
   * All samples as tensors `{ x: [size, ...sampleShape], y: [size] }`, on copies of the
   * arrays (the cpu backend adopts arrays without copying). The caller disposes them.
   */
  toTensors(): { x: tf.Tensor; y: tf.Tensor1D } {
    return {
      x: tf.tensor(this.features.slice(), [this.size, ...this.sampleShape], 'float32'),
      y: tf.tensor1d(this.labels.slice(), 'int32'),
    };
  }

  private copyRows(rows: ArrayLike<number>, features: Float32Array, labels: Int32Array): void {
    const s = this.sampleSize;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (!(r >= 0 && r < this.size && Number.isInteger(r)))
        throw new RangeError(`row ${r} is outside 0..${this.size - 1}`);
      features.set(this.features.subarray(r * s, (r + 1) * s), i * s);
      labels[i] = this.labels[r]!;
    }
  }

  private derive(features: Float32Array, labels: Int32Array): Dataset {
    return new Dataset({
      features,
      labels,
      sampleShape: this.sampleShape,
      numClasses: this.numClasses,
      ...(this.classNames !== undefined && { classNames: this.classNames }),
    });
  }
}

function range(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new UserError(`batchSize must be a whole number ≥ 1, got ${batchSize}`);
  }
}
