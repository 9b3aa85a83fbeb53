/**
 * Residual assistant — after Gao et al. 2020, "Residual Knowledge Distillation" (the assistant
 * learns the residual error between teacher and student; they work on feature maps) and Li et
 * al. 2020, "ResKD" (a res-student corrects the student's logits). Here, on the logits:
 *
 *   phase 1:  student S learns from the teacher with the configured terms (offline KD);
 *   phase 2:  S frozen; assistant A regresses the residual:  L(A) = mean (z_A − (z_T − z_S))²;
 *   deployed: the pair  z(x) = z_S(x) + z_A(x),  one LayersModel holding both networks.
 *
 * The residual targets z_T − z_S are computed once per training row (both frozen, inference
 * mode). Rows: the student alone, the pair (params, size and latency of both together) and,
 * with `baseline`, the student on labels only. The assistant defaults to the student's family at
 * half its width (`assistant` takes any zoo node).
 * When it helps: a student that plateaus far below its teacher, where a small second network
 * is cheaper than a wider student; compare the pair with a student of the pair's size.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { createTerm } from '../knowledge/index.js';
import { buildModel } from '../models/zoo.js';
import { countParams } from '../models/common.js';
import type { Teacher, TeacherOutput, TeacherPredictOptions } from '../teachers/types.js';
import { labelsBaseline, measure, pct } from './common.js';
import type { ProducedModel, Scheme, SchemeContext, SchemeResult } from './types.js';

const node = z.strictObject({ key: z.string().min(1), kwargs: z.record(z.string(), z.unknown()).default({}) });

const residualKwargs = z.strictObject({
  /** The assistant: a zoo node, or `auto` (the student's family at half the student's width). */
  assistant: z.union([z.literal('auto'), node]).default('auto'),
});

const ASSISTANT_SEED = 4000;

/** A frozen teacher answering z_T − z_S: the residual the assistant learns. */
export function residualTeacher(teacher: Teacher, student: tf.LayersModel): Teacher {
  return {
    kind: 'residual',
    inputShape: teacher.inputShape,
    numClasses: teacher.numClasses,
    tapNames: () => [],
    async predict(x: tf.Tensor, options: TeacherPredictOptions = {}): Promise<TeacherOutput> {
      const t = await teacher.predict(x, { indices: options.indices });
      const logits = tf.tidy(
        () => t.logits.sub(student.predict(x, { batchSize: x.shape[0] }) as tf.Tensor2D) as tf.Tensor2D,
      );
      tf.dispose([t.logits, ...Object.values(t.taps)]);
      return { logits, taps: {} };
    },
    dispose: () => {},
  };
}

/** One LayersModel whose logits are the student's plus the assistant's (both nested, both exported). */
export function residualPair(student: tf.LayersModel, assistant: tf.LayersModel, name: string): tf.LayersModel {
  const names = [student.name, assistant.name];
  if (new Set([...names, 'input', 'logits']).size !== 4) {
    throw new UserError(
      `the student and the assistant must have distinct names other than input and logits, got ${names.join(', ')}; rename the student`,
    );
  }
  const input = tf.input({ shape: student.inputs[0]!.shape.slice(1) as number[], name: 'input' });
  const sum = tf.layers
    .add({ name: 'logits' })
    .apply([student.apply(input) as tf.SymbolicTensor, assistant.apply(input) as tf.SymbolicTensor]);
  return tf.model({ inputs: input, outputs: sum as tf.SymbolicTensor, name });
}

async function runResidual(ctx: SchemeContext): Promise<SchemeResult> {
  const k = ctx.kwargs as z.output<typeof residualKwargs>;
  if (ctx.students.length !== 1) {
    throw new UserError(`residual pairs one student with an assistant; the experiment lists ${ctx.students.length}`);
  }
  const s = ctx.students[0]!;
  const context = { inputShape: ctx.data.train.sampleShape, numClasses: ctx.data.train.numClasses };
  const width = Number(s.model.kwargs['width'] ?? 1);
  const a =
    k.assistant === 'auto' ? { key: s.model.key, kwargs: { ...s.model.kwargs, width: width / 2 } } : k.assistant;
  const produced: ProducedModel[] = [];
  const name = `${s.name} (${ctx.method.short})`;
  ctx.log(`seed ${ctx.seed}: ${name} learns from the teacher: ${ctx.method.long}`);
  const student = s.build();
  const terms = ctx.createTerms();
  let studentRow: ProducedModel;
  try {
    const r = await ctx.fit({
      id: s.name,
      label: name,
      learners: [{ name, model: student, terms }],
      teacher: ctx.teacher,
    });
    studentRow = {
      id: s.name,
      name,
      model: student,
      method: ctx.method.long,
      history: r.history[name] ?? [],
      trainSeconds: r.seconds,
    };
  } finally {
    terms.forEach(({ term }) => term.dispose());
  }
  const assistant = buildModel({ ...a, ...context, seed: ctx.seed + ASSISTANT_SEED, name: 'assistant' });
  const aName = `${s.name} assistant`;
  ctx.log(
    `seed ${ctx.seed}: ${aName} (${a.key}, ${countParams(assistant).toLocaleString('en-US')} params) learns the residual z_T − z_S`,
  );
  const mse = [{ term: createTerm('logits-mse'), weight: 1 }];
  const r = await ctx.fit({
    id: `${s.name}.assistant`,
    label: aName,
    learners: [{ name: aName, model: assistant, terms: mse }],
    teacher: residualTeacher(ctx.teacher!, student),
  });
  const pair = residualPair(student, assistant, `${s.name}-pair`);
  const pairRow: ProducedModel = {
    id: `${s.name}.pair`,
    name: `${s.name} + assistant`,
    model: pair,
    method: `student (${ctx.method.short}) + assistant on the residual`,
    history: r.history[aName] ?? [],
    trainSeconds: studentRow.trainSeconds + r.seconds,
    // the pair owns only its add layer; the student is its own row, the assistant is freed with it
    dispose: () => assistant.dispose(),
  };
  produced.push(studentRow, pairRow);
  if (ctx.baseline) produced.push(await labelsBaseline(ctx, s));
  const alone = await measure({ model: student, data: ctx.data.test });
  const both = await measure({ model: pair, data: ctx.data.test });
  const rows = [
    [studentRow.name, countParams(student).toLocaleString('en-US'), pct(alone.accuracy)],
    ['assistant', countParams(assistant).toLocaleString('en-US'), '— (a residual, not a classifier)'],
    [pairRow.name, countParams(pair).toLocaleString('en-US'), pct(both.accuracy)],
  ];
  return {
    models: produced,
    tables: [
      {
        title: 'Residual assistant: the student, its assistant, and the pair',
        note: "The assistant regresses the teacher's logits minus the frozen student's; the deployed pair adds both networks' logits.",
        columns: ['model', 'params', 'accuracy'],
        rows,
        data: [
          { model: 'student', params: countParams(student), accuracy: alone.accuracy },
          { model: 'assistant', params: countParams(assistant), accuracy: null },
          { model: 'pair', params: countParams(pair), accuracy: both.accuracy },
        ],
      },
    ],
  };
}

/** The `residual` scheme: student by KD, then an assistant on the residual; the pair is deployed. */
export const residualScheme: Scheme = {
  describe:
    'residual assistant: student by KD, then an assistant learns z_T − z_S; deploy student + assistant (kwargs: assistant)',
  needsTeacher: true,
  kwargs: residualKwargs as unknown as z.ZodType<Record<string, unknown>>,
  run: runResidual,
};
