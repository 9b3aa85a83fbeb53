/**
 * Schema pieces shared by the experiment file's nodes. Each component's own options schema
 * lives beside the component (models/*.ts, knowledge/**, train/optimizers.ts, schemes/*.ts,
 * data/sources.ts, experiment/teacher-sources.ts) and its registry entry carries it.
 */
import { z } from 'zod';

/** A schema that accepts any mapping (for components without their own schema). */
export const anyKwargs: z.ZodType<Record<string, unknown>> = z.record(z.string(), z.unknown());

/**
 * A nested zoo node `{ key, kwargs }` (e.g. a teacher to train): the key must be a
 * registered model kind, the kwargs must fit that kind's schema.
 */
export function modelNode(kinds: {
  has(key: string): boolean;
  keys(): string[];
  get(key: string): { kwargs: z.ZodType<Record<string, unknown>> };
}) {
  return z
    .strictObject({ key: z.string().min(1), kwargs: z.record(z.string(), z.unknown()).default({}) })
    .check((ctx) => {
      const { key, kwargs } = ctx.value;
      if (!kinds.has(key)) {
        ctx.issues.push({
          code: 'custom',
          input: key,
          path: ['key'],
          message: `{path}: unknown model \`${key}\`; known: ${kinds.keys().join(', ')}`,
        });
        return;
      }
      const schema = kinds.get(key).kwargs;
      const result = schema.safeParse(kwargs);
      for (const issue of result?.success === false ? result.error.issues : []) {
        if (issue.code === 'unrecognized_keys') {
          const known = Object.keys((schema as unknown as { shape: Record<string, unknown> }).shape);
          ctx.issues.push({
            code: 'custom',
            input: kwargs,
            path: ['kwargs', ...issue.path, issue.keys[0]!],
            message: `unknown key \`${issue.keys[0]}\` in {parent}; known: ${known.join(', ')}`,
          });
        } else {
          ctx.issues.push({ ...issue, path: ['kwargs', ...issue.path] } as never);
        }
      }
    });
}
