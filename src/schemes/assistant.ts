/**
 * Teacher assistants — Mirzadeh et al. 2020, "Improved Knowledge Distillation via Teacher
 * Assistant" (TAKD).
 *
 *   teacher → TA₁ → … → TAₙ → student,   each arrow an offline distillation with the terms:
 *   L(TAᵢ) = terms(z_TAᵢ, z_TAᵢ₋₁),   L(student) = terms(z_s, z_TAₙ)
 *
 * When teacher and student are far apart in size, a student can learn less from the large
 * teacher than from a mid-sized one (the "capacity gap"); the assistant, distilled from the
 * teacher first, bridges it. `assistants: auto` makes one assistant of the student's family
 * with the parameter count √(P_teacher · P_student) (halfway on a log scale; the paper finds
 * the best TA in that middle range); or list the assistants as zoo nodes, largest first.
 * Every assistant is a row of the report; so are the student distilled directly from the
 * teacher (`direct`, default on) and, with `baseline`, trained on labels only, so the report
 * answers "did the assistant help?".
 * When it helps: a large gap (the paper: ResNet-110 → ResNet-8 on CIFAR-100, +1–2 points over
 * direct KD); with a small gap it costs a second distillation for nothing.
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { geometricMean, paramsOf, widthForParams, type ZooNode } from '../architecture/size-search.js';
import { UserError } from '../errors.js';
import { countParams } from '../models/common.js';
import { buildModel } from '../models/zoo.js';
import { layersTeacher } from '../teachers/layers.js';
import type { Teacher } from '../teachers/types.js';
import { gain, labelsBaseline, measure, pct } from './common.js';
import type { ProducedModel, Scheme, SchemeContext, SchemeResult } from './types.js';

const node = z.strictObject({ key: z.string().min(1), kwargs: z.record(z.string(), z.unknown()).default({}) });

const assistantKwargs = z.strictObject({
  /** `auto` (one assistant, √(P_teacher·P_student) parameters, the student's family) or zoo nodes, largest first. */
  assistants: z.union([z.literal('auto'), z.array(node).min(1)]).default('auto'),
  /** Also distil the student directly from the teacher (the comparison TAKD must win). Default true. */
  direct: z.boolean().default(true),
});

/** Seed offset of the assistants' initial weights (the students use seed + 1000). */
const ASSISTANT_SEED = 3000;

/** The assistants of a run: given, or one sized halfway (log scale) between teacher and student. */
export function assistantNodes(
  kwargs: z.output<typeof assistantKwargs>,
  student: ZooNode,
  teacherParams: number | undefined,
  context: { inputShape: readonly number[]; numClasses: number },
): ZooNode[] {
  if (kwargs.assistants !== 'auto') return kwargs.assistants;
  if (teacherParams === undefined) {
    throw new UserError(
      "assistants: auto needs the teacher's parameter count (a LayersModel or zoo teacher); list the assistants as zoo nodes",
    );
  }
  const target = geometricMean(teacherParams, paramsOf(student, context));
  return [widthForParams(student, target, context).node];
}

async function runAssistant(ctx: SchemeContext): Promise<SchemeResult> {
  const k = ctx.kwargs as z.output<typeof assistantKwargs>;
  if (ctx.students.length !== 1) {
    throw new UserError(
      `assistant trains one student through its assistants; the experiment lists ${ctx.students.length}`,
    );
  }
  const s = ctx.students[0]!;
  const context = { inputShape: ctx.data.train.sampleShape, numClasses: ctx.data.train.numClasses };
  const chain = assistantNodes(k, s.model, ctx.teacherParams, context);
  const produced: ProducedModel[] = [];
  /** Trains `model` from `teacher` with the configured terms; returns its produced row. */
  const distil = async (id: string, name: string, model: tf.LayersModel, teacher: Teacher, method: string) => {
    const terms = ctx.createTerms();
    try {
      const r = await ctx.fit({ id, label: name, learners: [{ name, model, terms }], teacher });
      const row = { id, name, model, method, history: r.history[name] ?? [], trainSeconds: r.seconds };
      produced.push(row);
      return row;
    } finally {
      terms.forEach(({ term }) => term.dispose());
    }
  };

  let teacher = ctx.teacher!;
  let from = 'the teacher';
  for (const [i, a] of chain.entries()) {
    const name = `assistant ${i + 1}`;
    const model = buildModel({ ...a, ...context, seed: ctx.seed + ASSISTANT_SEED + i, name: `assistant-${i + 1}` });
    ctx.log(
      `seed ${ctx.seed}: ${name} (${a.key}, ${countParams(model).toLocaleString('en-US')} params) learns from ${from}`,
    );
    await distil(`assistant-${i + 1}`, name, model, teacher, `${ctx.method.long} from ${from}`);
    teacher = layersTeacher({ model });
    from = name;
  }
  const via = `${s.name} (${ctx.method.short} via ${chain.length === 1 ? 'assistant' : `${chain.length} assistants`})`;
  ctx.log(`seed ${ctx.seed}: ${via} learns from ${from}`);
  await distil(
    s.name,
    via,
    s.build(),
    teacher,
    `${ctx.method.long} via ${chain.length === 1 ? 'the assistant' : `${chain.length} assistants`}`,
  );
  if (k.direct) {
    const direct = `${s.name} (${ctx.method.short}, direct)`;
    ctx.log(`seed ${ctx.seed}: ${direct} learns from the teacher directly`);
    await distil(`${s.name}.direct`, direct, s.build(), ctx.teacher!, `${ctx.method.long} from the teacher directly`);
  }
  if (ctx.baseline) produced.push(await labelsBaseline(ctx, s));
  return { models: produced, tables: [await chainTable(ctx, produced, chain.length)] };
}

/** One row per model of the chain and the comparisons, with params and test accuracy. */
async function chainTable(ctx: SchemeContext, produced: ProducedModel[], assistants: number) {
  const student = produced[assistants]!;
  const rows: string[][] = [];
  const data: Array<Record<string, number | string | null>> = [];
  const measured = await Promise.all(produced.map((p) => measure({ model: p.model, data: ctx.data.test })));
  const direct = produced.findIndex((p) => p.id.endsWith('.direct'));
  produced.forEach((p, i) => {
    const accuracy = measured[i]!.accuracy;
    const versus = i === assistants && direct >= 0 ? gain(accuracy, measured[direct]!.accuracy) : '';
    rows.push([p.name, p.method, countParams(p.model).toLocaleString('en-US'), pct(accuracy), versus]);
    data.push({ model: p.name, params: countParams(p.model), accuracy });
  });
  return {
    title: 'Teacher assistants: the chain and the comparisons',
    note: `Teacher → ${produced
      .slice(0, assistants)
      .map((p) => `${p.name} (${countParams(p.model).toLocaleString('en-US')} params)`)
      .join(
        ' → ',
      )} → ${student.name}; the last column is the student through the assistants minus the student distilled directly.`,
    columns: ['model', 'trained', 'params', 'accuracy', 'via assistant − direct'],
    rows,
    data,
  };
}

/** The `assistant` scheme (TAKD): teacher → assistants → student, with direct KD and labels-only rows. */
export const assistantScheme: Scheme = {
  describe:
    'teacher assistants (TAKD): teacher → assistant(s) → student, each step distilled (kwargs: assistants, direct)',
  needsTeacher: true,
  kwargs: assistantKwargs as unknown as z.ZodType<Record<string, unknown>>,
  run: runAssistant,
};
