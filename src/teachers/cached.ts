import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.js';
import { UserError } from '../errors.js';
import type { CopiedHead } from '../models/taps.js';
import type { Teacher, TeacherOutput, TeacherPredictOptions } from './types.js';

export interface CachedTeacherOptions {
  /** Number of dataset rows the cache covers. */
  size: number;
  numClasses: number;
  inputShape: readonly number[];
  /** Logits already known, row-major [size × numClasses] (e.g. read from a cache file). */
  logits?: Float32Array;
  /** The teacher that fills rows not yet cached. Without it, every row must be cached. */
  source?: Teacher;
}

/**
 * A teacher whose logits are looked up by dataset row. Rows are filled from `source` the
 * first time they are seen, so with fixed inputs (no augmentation) each sample's teacher
 * output is computed once per run, not once per epoch. Taps are not cached: asking for
 * them goes to `source`. The source stays the caller's: `dispose` does not dispose it.
 */
export class CachedTeacher implements Teacher {
  readonly kind = 'cached';
  readonly numClasses: number;
  readonly inputShape: readonly number[];
  readonly logits: Float32Array;
  private readonly known: Uint8Array;
  private readonly source?: Teacher;

  constructor({ size, numClasses, inputShape, logits, source }: CachedTeacherOptions) {
    if (logits && logits.length !== size * numClasses) {
      throw new UserError(
        `cached teacher logits have ${logits.length} values, expected ${size} rows × ${numClasses} classes; re-run distill cache-teacher for this dataset`,
      );
    }
    this.numClasses = numClasses;
    this.inputShape = inputShape;
    this.logits = logits ?? new Float32Array(size * numClasses);
    this.known = new Uint8Array(size).fill(logits ? 1 : 0);
    this.source = source;
  }

  /** The source's classifier copies (`simkd`), when the source is a LayersModel. */
  get layersAfter(): ((tap: string) => CopiedHead) | undefined {
    const source = this.source;
    return source?.layersAfter ? (tap) => source.layersAfter!(tap) : undefined;
  }

  get cachedRows(): number {
    return this.known.reduce((n, k) => n + k, 0);
  }

  async predict(x: tf.Tensor, options: TeacherPredictOptions = {}): Promise<TeacherOutput> {
    const { indices, taps = [] } = options;
    if (!indices || taps.length > 0) {
      if (!this.source)
        throw new UserError(
          'cached teacher logits are looked up by dataset row; this call gave no rows or asked for taps, so give a teacher model too',
        );
      return this.source.predict(x, options);
    }
    const missing = indices.some((row) => !this.known[row]);
    if (missing) {
      if (!this.source)
        throw new UserError(
          `cached teacher logits do not cover dataset row ${indices.find((r) => !this.known[r])}; re-run distill cache-teacher on the same data`,
        );
      const out = await this.source.predict(x, options);
      const values = out.logits.dataSync();
      indices.forEach((row, i) => {
        this.logits.set(values.subarray(i * this.numClasses, (i + 1) * this.numClasses), row * this.numClasses);
        this.known[row] = 1;
      });
      return out;
    }
    const batch = new Float32Array(indices.length * this.numClasses);
    indices.forEach((row, i) =>
      batch.set(this.logits.subarray(row * this.numClasses, (row + 1) * this.numClasses), i * this.numClasses),
    );
    return { logits: tf.tensor2d(batch, [indices.length, this.numClasses]), taps: {} };
  }

  /**
   * Fills every row not cached yet from `source`, in row order and in batches of `batchSize`, so
   * that a row's logits do not depend on the batch it first appears in. Some backends' kernels
   * round a row differently beside other rows; filled lazily, a run resumed mid-phase (its cache
   * empty, its batches in another order) would see other teacher logits than an uninterrupted run.
   */
  async fill(data: Dataset, batchSize = 256): Promise<void> {
    if (!this.source || this.known.every((k) => k === 1)) return;
    if (data.size !== this.known.length)
      throw new Error(`CachedTeacher.fill: ${data.size} rows for a cache of ${this.known.length}`);
    for (const { x, indices } of data.batches({ batchSize })) {
      if (indices.every((row) => this.known[row])) continue;
      const out = await this.predict(x, { indices });
      tf.dispose([out.logits, ...Object.values(out.taps)]);
    }
  }

  tapNames(): Array<{ name: string; shape: readonly (number | null)[] }> {
    return this.source?.tapNames() ?? [];
  }

  dispose(): void {}
}
