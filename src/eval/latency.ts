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
  /** Untimed passes before timing, per batch size. Default 10. */
  warmup?: number;
  /** Timed passes per batch size. Default 50. */
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

export interface LatenciesOptions extends Omit<LatencyOptions, 'predict'> {
  /** The models to compare, each as one forward pass. */
  predicts: PredictFn[];
}

/**
 * Inference latency per batch size on the current TF.js backend. Each pass times
 * `predict(x)` and reading its output back to JS (`await data()`), so lazy or asynchronous
 * backends are charged for the work. The input (standard normal, fixed seed) is created
 * once per batch size, outside the timed span.
 */
export async function measureLatency(options: LatencyOptions): Promise<LatencyResult> {
  const { predict, ...rest } = options;
  return (await measureLatencies({ ...rest, predicts: [predict] }))[0]!;
}

/**
 * `measureLatency` for several models at once, interleaved: every round times one pass of
 * each model in turn, so a slow spell of a shared machine hits all of them alike and their
 * ratios (the report's speed-ups) stay fair. Each timed pass directly follows an untimed pass
 * of the same model, so it runs with that model's weights and buffers in cache, not the
 * previous model's (else whichever model follows the teacher is charged for the cold caches).
 * Defaults: 10 warm-up and 50 timed rounds.
 */
export async function measureLatencies(options: LatenciesOptions): Promise<LatencyResult[]> {
  const { predicts, inputShape, batchSizes = [1, 64], warmup = 10, runs = 50, seed = 0 } = options;
  if (!batchSizes.length || !batchSizes.every((b) => Number.isInteger(b) && b > 0)) {
    throw new UserError(`latency batchSizes must be whole numbers ≥ 1, got ${JSON.stringify(batchSizes)}`);
  }
  if (!Number.isInteger(warmup) || warmup < 0)
    throw new UserError(`latency warmup must be a whole number ≥ 0, got ${warmup}`);
  if (!Number.isInteger(runs) || runs < 1) throw new UserError(`latency runs must be a whole number ≥ 1, got ${runs}`);
  const backend = tf.getBackend();
  const stats: LatencyStats[][] = predicts.map(() => []);
  for (const batchSize of batchSizes) {
    const x = tf.randomNormal([batchSize, ...inputShape], 0, 1, 'float32', seed);
    try {
      const times: number[][] = predicts.map(() => []);
      const pass = async (predict: PredictFn) => {
        const t0 = performance.now();
        const y = await predict(x);
        try {
          await y.data();
        } finally {
          y.dispose();
        }
        return performance.now() - t0;
      };
      for (let i = 0; i < warmup + runs; i++) {
        for (const [m, predict] of predicts.entries()) {
          if (predicts.length > 1) await pass(predict);
          const ms = await pass(predict);
          if (i >= warmup) times[m]!.push(ms);
        }
      }
      times.forEach((t, m) => {
        t.sort((a, b) => a - b);
        stats[m]!.push({ batchSize, medianMs: quantile(t, 0.5), p90Ms: nearestRank(t, 0.9), minMs: t[0]!, runs });
      });
    } finally {
      x.dispose();
    }
  }
  return stats.map((s) => ({ backend, stats: s }));
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
