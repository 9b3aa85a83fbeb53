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
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { createTerm } from '../knowledge/index.js';
import { parseOptions } from '../options.js';
import { layersTeacher } from '../teachers/layers.js';
import { ensembleTeacher } from '../teachers/ensemble.js';
import type { Fit } from '../train/fit.js';
import type { EpochRecord, Learner, WeightedTerm } from '../train/types.js';
import { checkSelfTerms, disposeTerms, gain, measure, oneStudent, pct } from './common.js';
import type { ProducedModel, Scheme, SchemeContext, SchemeResult } from './types.js';

export interface Generation {
  /** 0 = trained on the labels. */
  generation: number;
  name: string;
  model: tf.LayersModel;
  history: EpochRecord[];
  seconds: number;
}

/** Born-again's knobs: one schema for the API (`bornAgain`) and the experiment file (`scheme.kwargs`). */
export const bornAgainKnobs = z.strictObject({
  /** N generations after generation 0 (which learns from the labels). */
  generations: z.int().positive().default(3),
  /** Learn from the average of all earlier generations instead of the last. */
  ensemble: z.boolean().default(false),
});

export type BornAgainOptions = z.input<typeof bornAgainKnobs> & {
  /** A new model of the architecture for generation g (each its own initialization). */
  build: (generation: number) => tf.LayersModel;
  /**
   * Fresh terms of one generation, e.g. `() => [{ term: createTerm('kd', { temperature: 1, alpha: 1 }), weight: 1
   * }]`.
   */
  terms: () => WeightedTerm[];
  /** Display name prefix: `<name> gen <g>`. */
  name: string;
  fit: Fit;
  /** Phase id prefix. Default `born-again`. */
  id?: string;
  /** Called after each generation has trained. */
  onGeneration?(g: Generation): void | Promise<void>;
};

/** Trains generation 0 on the labels, then each next one from the last (or all earlier); returns every generation. */
export async function bornAgain(o: BornAgainOptions): Promise<Generation[]> {
  const { generations, ensemble } = parseOptions('scheme `born-again`', bornAgainKnobs, {
    generations: o.generations,
    ensemble: o.ensemble,
  });
  const done: Generation[] = [];
  for (let g = 0; g <= generations; g++) {
    const name = `${o.name} gen ${g}`;
    const model = o.build(g);
    const learners: Learner[] = [{ name, model, terms: g === 0 ? [{ term: createTerm('ce'), weight: 1 }] : o.terms() }];
    const teacher =
      g === 0
        ? undefined
        : ensemble && g > 1
          ? ensembleTeacher({ members: done.map((d) => layersTeacher({ model: d.model })) })
          : layersTeacher({ model: done[g - 1]!.model });
    try {
      const r = await o.fit({
        id: `${o.id ?? 'born-again'}.gen-${g}`,
        label:
          g === 0 ? `${name} (labels)` : `${name} (from ${ensemble && g > 1 ? `gens 0–${g - 1}` : `gen ${g - 1}`})`,
        learners,
        ...(teacher && { teacher }),
      });
      const gen = { generation: g, name, model, history: r.history[name] ?? [], seconds: r.seconds };
      done.push(gen);
      await o.onGeneration?.(gen);
    } finally {
      disposeTerms(learners);
    }
  }
  return done;
}

async function runBornAgain(ctx: SchemeContext): Promise<SchemeResult> {
  const k = ctx.kwargs as z.output<typeof bornAgainKnobs>;
  const s = oneStudent(ctx, 'born-again');
  ctx.log(
    `seed ${ctx.seed}: born-again: ${s.name} gen 0 on the labels, then ${k.generations} generations, each from ${k.ensemble ? 'all earlier ones' : 'the previous one'} (${ctx.method.long})`,
  );
  const gens = await bornAgain({
    build: (g) => s.build(g),
    generations: k.generations,
    terms: ctx.createTerms,
    ensemble: k.ensemble,
    name: s.name,
    fit: ctx.fit,
    id: s.name,
  });
  const produced: ProducedModel[] = gens.map((g) => ({
    id: `${s.name}.gen-${g.generation}`,
    name: g.name,
    model: g.model,
    history: g.history,
    trainSeconds: g.seconds,
    method:
      g.generation === 0
        ? 'labels only (generation 0)'
        : `from ${k.ensemble && g.generation > 1 ? `generations 0–${g.generation - 1}` : `generation ${g.generation - 1}`}: ${ctx.method.long}`,
    ...(g.generation === 0 && { baseline: true }),
  }));
  const rows: string[][] = [];
  const data: Array<Record<string, number | string | null>> = [];
  let previous: Float32Array | undefined;
  let first: number | undefined;
  for (const g of gens) {
    const m = await measure({ model: g.model, data: ctx.data.test, reference: previous });
    first ??= m.accuracy;
    rows.push([
      String(g.generation),
      g.generation === 0
        ? 'labels'
        : k.ensemble && g.generation > 1
          ? `gens 0–${g.generation - 1}`
          : `gen ${g.generation - 1}`,
      pct(m.accuracy),
      gain(m.accuracy, g.generation === 0 ? undefined : first),
      pct(m.agreement),
    ]);
    data.push({ generation: g.generation, accuracy: m.accuracy, agreementWithPrevious: m.agreement ?? null });
    previous = m.logits;
  }
  return {
    models: produced.slice(1),
    reference: { kind: 'model', produced: produced[0]! },
    tables: [
      {
        title: 'Born-again networks: one row per generation',
        note: 'Same architecture every generation, each freshly initialized; test accuracy, the gain over generation 0 (labels only), and the top-1 agreement with the previous generation.',
        columns: ['generation', 'teacher', 'accuracy', 'vs gen 0', 'agreement with previous'],
        rows,
        data,
      },
    ],
  };
}

/**
 * The `born-again` scheme of an experiment: generations of its one student and the
 * per-generation table. The report's teacher column, without an external teacher, is
 * generation 0 (labels only).
 */
export const bornAgainScheme: Scheme = {
  describe:
    'born-again networks: generation g+1 (same architecture) learns from generation g (kwargs: generations, ensemble)',
  kwargs: bornAgainKnobs as unknown as z.ZodType<Record<string, unknown>>,
  check: (terms) => checkSelfTerms('born-again', terms),
  run: runBornAgain,
};
