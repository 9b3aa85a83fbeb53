/**
 * kwargs schemas of the components whose factories do not validate their own options:
 * the model zoo (a typo such as `widht` would otherwise be silently ignored) and the
 * optimizers. A kind registered later without a schema here is passed through and
 * checked by its builder.
 */
import { z } from 'zod';
import { INIT_SCHEMES, type InitScheme } from '../models/init.js';

const positiveInt = z.int().positive();
const positiveInts = z.array(positiveInt).min(1);
const rate = z.number().min(0).lt(1);
const width = z.number().positive();
const init = z.enum(INIT_SCHEMES as [InitScheme, ...InitScheme[]]).optional();

/** Model kwargs by zoo kind. `inputShape`, `numClasses`, `seed` and `name` come from the run. */
export const modelKwargs: Record<string, z.ZodType<Record<string, unknown>>> = {
  mlp: z.strictObject({ width: width.optional(), init, hidden: z.array(positiveInt).optional(), dropout: rate.optional() }),
  cnn: z.strictObject({
    width: width.optional(), blocks: positiveInts.optional(), convsPerBlock: positiveInt.optional(),
    dense: positiveInt.optional(), dropout: rate.optional(), init,
  }),
  resnet: z.strictObject({
    width: width.optional(), stages: positiveInts.optional(), blocksPerStage: positiveInt.optional(),
    stemStride: positiveInt.optional(), init,
  }),
  dwsep: z.strictObject({
    width: width.optional(), stemFilters: positiveInt.optional(), stemStride: positiveInt.optional(),
    blocks: z.array(z.strictObject({ filters: positiveInt, stride: positiveInt.optional() })).min(1).optional(), init,
  }),
};

const learningRate = z.number().positive().optional();

/** Optimizer kwargs by registry key (`src/train/optimizers.ts`). */
export const optimizerKwargs: Record<string, z.ZodType<Record<string, unknown>>> = {
  adam: z.strictObject({ learningRate }),
  sgd: z.strictObject({ learningRate }),
  momentum: z.strictObject({ learningRate, momentum: rate.optional() }),
  rmsprop: z.strictObject({ learningRate }),
};

/** A schema that accepts any mapping (for components without their own schema). */
export const anyKwargs: z.ZodType<Record<string, unknown>> = z.record(z.string(), z.unknown());

/**
 * A nested zoo node `{ key, kwargs }` (e.g. a teacher to train): the key must be a
 * registered model kind, the kwargs must fit that kind's schema.
 */
export function modelNode(kinds: { has(key: string): boolean; keys(): string[] }) {
  return z.strictObject({ key: z.string().min(1), kwargs: z.record(z.string(), z.unknown()).default({}) }).check((ctx) => {
    const { key, kwargs } = ctx.value;
    if (!kinds.has(key)) {
      ctx.issues.push({ code: 'custom', input: key, path: ['key'], message: `{path}: unknown model \`${key}\`; known: ${kinds.keys().join(', ')}` });
      return;
    }
    const schema = modelKwargs[key];
    const result = schema?.safeParse(kwargs);
    for (const issue of result?.success === false ? result.error.issues : []) {
      if (issue.code === 'unrecognized_keys') {
        const known = Object.keys((schema as unknown as { shape: Record<string, unknown> }).shape);
        ctx.issues.push({ code: 'custom', input: kwargs, path: ['kwargs', ...issue.path, issue.keys[0]!], message: `unknown key \`${issue.keys[0]}\` in {parent}; known: ${known.join(', ')}` });
      } else {
        ctx.issues.push({ ...issue, path: ['kwargs', ...issue.path] } as never);
      }
    }
  });
}
