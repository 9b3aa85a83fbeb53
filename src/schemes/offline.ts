/**
 * `offline` (Hinton et al. 2015): a frozen, pre-trained teacher; each student learns from
 * it with the configured terms; with `baseline`, the same student (same initial weights,
 * data order and epochs) also learns from the labels alone, so the report can say what
 * distilling bought. Terms with `stage: hint` (FitNets) first train alone for their
 * `hintEpochs` (default a quarter of the epochs), then the other terms for all the epochs.
 */
import { z } from 'zod';
import { UserError } from '../errors.js';
import { reshapeStudent } from '../knowledge/index.js';
import type { EpochRecord, WeightedTerm } from '../train/types.js';
import { labelsBaseline } from './common.js';
import type { ProducedModel, Scheme, SchemeContext, SchemeResult } from './types.js';

/** Terms that ask to run as a first, separate stage (FitNets' hint training: `stage: hint`). */
function stages(terms: WeightedTerm[]): { hint: WeightedTerm[]; main: WeightedTerm[] } {
  const isHint = (t: WeightedTerm) => t.term.stage === 'hint';
  return { hint: terms.filter(isHint), main: terms.filter((t) => !isHint(t)) };
}

/** Trains each student on labels (baseline) and with the configured terms from the frozen teacher. */
async function offline(ctx: SchemeContext): Promise<SchemeResult> {
  const models: ProducedModel[] = [];
  for (const s of ctx.students) {
    if (ctx.baseline) models.push(await labelsBaseline(ctx, s));
    const name = `${s.name} (${ctx.method.short})`;
    const terms = ctx.createTerms();
    // simkd's student is trained and shipped with its projector and the teacher's classifier
    const model = reshapeStudent(terms, s.build(), ctx.teacher?.layersAfter?.bind(ctx.teacher));
    const { hint, main } = stages(terms);
    ctx.log(`seed ${ctx.seed}: ${name} learns from the teacher: ${ctx.method.long}`);
    try {
      let history: EpochRecord[] = [];
      let seconds = 0;
      if (hint.length > 0) {
        // FitNets' stage 1: the hint terms alone train the student up to its guided layer.
        const epochs = Math.max(...hint.map(({ term }) => term.hintEpochs ?? Math.max(1, Math.round(ctx.epochs / 4))));
        const r = await ctx.fit({
          id: `${s.name}.hint`,
          label: `${name} hint stage`,
          learners: [{ name, model, terms: hint }],
          teacher: ctx.teacher,
          epochs,
        });
        history = r.history[name] ?? [];
        seconds = r.seconds;
      }
      const r = await ctx.fit({
        id: s.name,
        label: name,
        learners: [{ name, model, terms: main }],
        teacher: ctx.teacher,
      });
      history = [...history, ...(r.history[name] ?? []).map((e) => ({ ...e, epoch: e.epoch + history.length }))];
      models.push({ id: s.name, name, model, method: ctx.method.long, history, trainSeconds: seconds + r.seconds });
    } finally {
      terms.forEach(({ term }) => term.dispose());
    }
  }
  return { models };
}

/** The `offline` scheme: frozen pre-trained teacher → students. */
export const offlineScheme: Scheme = {
  describe: 'frozen pre-trained teacher → students',
  needsTeacher: true,
  kwargs: z.strictObject({}),
  check(terms) {
    const { hint, main } = stages([...terms]);
    if (hint.length > 0 && main.length === 0) {
      throw new UserError(
        `\`${hint[0]!.term.key}\` with stage: hint is only the first stage; add the terms of the second stage (e.g. kd or ce), or use stage: joint`,
      );
    }
  },
  run: offline,
};
