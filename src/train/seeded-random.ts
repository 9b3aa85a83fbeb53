import type { Rng } from '../data/rng.js';

/**
 * Runs `fn` with `Math.random` drawing from `rng`. TF.js seeds every unseeded random op
 * (dropout masks among them) from `Math.random`, and a dropout layer given a fixed seed
 * draws the same mask on every call; so this is how a training step's dropout becomes
 * reproducible from the run's seed (and resumable from its saved RNG state).
 */
export function withSeededMathRandom<T>(rng: Rng, fn: () => T): T {
  const original = Math.random;
  Math.random = () => rng.nextFloat();
  try {
    return fn();
  } finally {
    Math.random = original;
  }
}
