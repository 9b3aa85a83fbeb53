import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { PredictFn } from './metrics.js';

export interface LatencyOptions {
  /** One forward pass; its output is read back (`await data()`) inside the timed span. */
  predict: PredictFn;
  /** One example's shape, without the batch axis. */
  inputShape: readonly number[];
  /** Default `[1, 64]`. */
  batchSizes?: number[];
  /** Untimed passes before timing, per batch size. Default 5. */
  warmup?: number;
  /** Timed passes per batch size. Default 20. */
  runs?: number;
  /** Seed of the random input. Default 0. */
  seed?: number;
}

export interface LatencyStats {
  batchSize: number;
  /** Median wall-clock ms of one pass (predict + reading the result back). */
  medianMs: number;
  /** 90th percentile (nearest rank). */
  p90Ms: number;
  minMs: number;
  runs: number;
}

export interface LatencyResult {
  /** `tf.getBackend()` during the measurement. */
  backend: string;
  stats: LatencyStats[];
}

/**
 * Inference latency per batch size on the current TF.js backend. Each pass times
 * `predict(x)` and reading its output back to JS (`await data()`), so lazy or asynchronous
 * backends are charged for the work. The input (standard normal, fixed seed) is created
 * once per batch size, outside the timed span. Measure every model of a comparison in the
 * same process on the same backend (as `evaluateModels` does).
 */
export async function measureLatency(options: LatencyOptions): Promise<LatencyResult> {
  const { predict, inputShape, batchSizes = [1, 64], warmup = 5, runs = 20, seed = 0 } = options;
  if (!batchSizes.length || !batchSizes.every((b) => Number.isInteger(b) && b > 0)) {
    throw new UserError(`latency batchSizes must be whole numbers ≥ 1, got ${JSON.stringify(batchSizes)}`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) throw new UserError(`latency warmup must be a whole number ≥ 0, got ${warmup}`);
  if (!Number.isInteger(runs) || runs < 1) throw new UserError(`latency runs must be a whole number ≥ 1, got ${runs}`);
  const backend = tf.getBackend();
  const stats: LatencyStats[] = [];
  for (const batchSize of batchSizes) {
    const x = tf.randomNormal([batchSize, ...inputShape], 0, 1, 'float32', seed);
    try {
      const times: number[] = [];
      for (let i = 0; i < warmup + runs; i++) {
        const t0 = performance.now();
        const y = await predict(x);
        try {
          await y.data();
        } finally {
          y.dispose();
        }
        const ms = performance.now() - t0;
        if (i >= warmup) times.push(ms);
      }
      times.sort((a, b) => a - b);
      stats.push({ batchSize, medianMs: quantile(times, 0.5), p90Ms: nearestRank(times, 0.9), minMs: times[0]!, runs });
    } finally {
      x.dispose();
    }
  }
  return { backend, stats };
}

/** Median of sorted values (mean of the two middle ones for an even count). */
function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

function nearestRank(sorted: number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}
