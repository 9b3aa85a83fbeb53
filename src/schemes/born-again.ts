/**
 * Born-again networks — Furlanello et al. 2018, "Born-Again Neural Networks".
 *
 *   generation 0:   L = CE(y, p_0)
 *   generation g:   L = terms(z_g, teacher z_{g−1})            (or teacher: mean_{j<g} z_j)
 *
 * A chain of models of one architecture: generation 0 learns from the labels, each next
 * generation (freshly initialized) from the frozen previous one through the configured
 * terms, for N generations; with `ensemble`, from the average of the logits of all earlier
 * generations (the paper's BAN ensemble as a teacher). The teacher of a generation is
 * frozen, so its logits are computed once per training row.
 * When it helps: no larger teacher is available; a student of the same size often ends
 * better than its teacher (the paper: DenseNets on CIFAR-100, +1–2 points), with most of
 * the gain in the first generation or two.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { Fit } from '../experiment/fit.js';
import { createTerm } from '../knowledge/index.js';
import { layersTeacher } from '../teachers/layers.js';
import type { Teacher } from '../teachers/types.js';
import type { EpochRecord, Learner, WeightedTerm } from '../train/types.js';
import { averageLogits, disposeTerms } from './common.js';

/** A frozen teacher that averages the logits of several models (inference mode). */
export function ensembleTeacher(models: readonly tf.LayersModel[]): Teacher {
  if (models.length === 0) throw new UserError('an ensemble teacher needs at least one model');
  const first = layersTeacher({ model: models[0]! });
  const weights = models.map(() => 1 / models.length);
  return {
    kind: 'ensemble', inputShape: first.inputShape, numClasses: first.numClasses,
    predict: async (x) => ({ logits: tf.tidy(() => averageLogits(models.map((m) => m.predict(x, { batchSize: x.shape[0] }) as tf.Tensor2D), weights)), taps: {} }),
    tapNames: () => [],
    dispose: () => {},
  };
}

export interface Generation {
  /** 0 = trained on the labels. */
  generation: number;
  name: string;
  model: tf.LayersModel;
  history: EpochRecord[];
  seconds: number;
}

export interface BornAgainOptions {
  /** A new model of the architecture for generation g (each its own initialization). */
  build: (generation: number) => tf.LayersModel;
  /** N ≥ 1 generations after generation 0. */
  generations: number;
  /** Fresh terms of one generation, e.g. `() => [{ term: createTerm('kd', { temperature: 1, alpha: 1 }), weight: 1 }]`. */
  terms: () => WeightedTerm[];
  /** Learn from the average of all earlier generations instead of the last one. Default false. */
  ensemble?: boolean;
  /** Display name prefix: `<name> gen <g>`. */
  name: string;
  fit: Fit;
  /** Phase id prefix. Default `born-again`. */
  id?: string;
  /** Called after each generation has trained. */
  onGeneration?(g: Generation): void | Promise<void>;
}

/** Trains generation 0 on the labels, then each next one from the last (or all earlier); returns every generation. */
export async function bornAgain(o: BornAgainOptions): Promise<Generation[]> {
  if (!Number.isInteger(o.generations) || o.generations < 1) throw new UserError(`generations must be a whole number >= 1 (got ${o.generations})`);
  const done: Generation[] = [];
  for (let g = 0; g <= o.generations; g++) {
    const name = `${o.name} gen ${g}`;
    const model = o.build(g);
    const learners: Learner[] = [{ name, model, terms: g === 0 ? [{ term: createTerm('ce'), weight: 1 }] : o.terms() }];
    const teacher = g === 0 ? undefined : o.ensemble && g > 1 ? ensembleTeacher(done.map((d) => d.model)) : layersTeacher({ model: done[g - 1]!.model });
    try {
      const r = await o.fit({ id: `${o.id ?? 'born-again'}.gen-${g}`, label: g === 0 ? `${name} (labels)` : `${name} (from ${o.ensemble && g > 1 ? `gens 0–${g - 1}` : `gen ${g - 1}`})`, learners, ...(teacher && { teacher }) });
      const gen = { generation: g, name, model, history: r.history[name] ?? [], seconds: r.seconds };
      done.push(gen);
      await o.onGeneration?.(gen);
    } finally {
      disposeTerms(learners);
    }
  }
  return done;
}
