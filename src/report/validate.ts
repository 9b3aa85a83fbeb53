import { z } from 'zod';
import { UserError } from '../errors.js';
import type { RunReport } from '../eval/types.js';

const num = z.number();
const bytes = z.object({ float32: num, float16: num, uint8: num });
const pair = z.object({ batch1: num, batch64: num });
const epoch = z.object({
  epoch: z.number().int(),
  seconds: num,
  losses: z.record(z.string(), num),
  trainAccuracy: num.optional(),
  valAccuracy: num.optional(),
  valLoss: num.optional(),
  termState: z.record(z.string(), num).optional(),
});
const model = z.object({
  name: z.string().min(1),
  role: z.enum(['teacher', 'student']),
  params: num.nullable(),
  bytes: bytes.nullable(),
  accuracy: num,
  agreement: num,
  klToTeacher: num,
  ece: num,
  latencyMs: pair,
  latencyP90Ms: pair.optional(),
  compression: z.object({ params: num, bytes }).nullable(),
  speedup: pair,
  trainSeconds: num.optional(),
  history: z.array(epoch).optional(),
  method: z.string().optional(),
  baseline: z.boolean().optional(),
});
/** zod schema of `RunReport`. */
export const runReportSchema = z.object({
  title: z.string().min(1),
  createdAt: z.string().min(1),
  backend: z.string().min(1),
  dataset: z.object({
    name: z.string().min(1),
    train: z.number().int().min(0),
    test: z.number().int().min(0),
    labeled: z.number().int().min(0).optional(),
  }),
  settings: z.record(z.string(), z.unknown()),
  models: z.array(model).min(1),
  tables: z
    .array(
      z
        .object({
          title: z.string().min(1),
          note: z.string().optional(),
          columns: z.array(z.string()).min(1),
          rows: z.array(z.array(z.string())),
          data: z.array(z.record(z.string(), z.union([z.number(), z.string(), z.null()]))).optional(),
        })
        .check((ctx) => {
          const bad = ctx.value.rows.findIndex((r) => r.length !== ctx.value.columns.length);
          if (bad >= 0)
            ctx.issues.push({
              code: 'custom',
              input: ctx.value,
              path: ['rows', bad],
              message: `has ${ctx.value.rows[bad]!.length} cells for ${ctx.value.columns.length} columns`,
            });
        }),
    )
    .optional(),
});

/**
 * Checks `report` against `RunReport` and the rules a report table needs (the teacher
 * first and only once, unique model names). Throws a one-line UserError that names the
 * first problems by path, e.g. `report.models[1].accuracy is missing (expected number)`.
 */
export function validateReport(report: unknown): RunReport {
  const r = runReportSchema.safeParse(report);
  if (!r.success) {
    const problems = r.error.issues.slice(0, 3).map((i) => {
      const path = `report${i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}`;
      const missing = i.code === 'invalid_type' && /received undefined$/.test(i.message);
      return missing
        ? `${path} is missing (expected ${(i as { expected?: string }).expected ?? 'a value'})`
        : `${path}: ${i.message.replace(/^Invalid input: /, '')}`;
    });
    const more = r.error.issues.length > 3 ? ` (and ${r.error.issues.length - 3} more)` : '';
    throw new UserError(
      `invalid run report: ${problems.join('; ')}${more}; fill these in from evaluateModels and the trainer before writing the report`,
    );
  }
  const models = r.data.models;
  if (models[0]!.role !== 'teacher' || models.slice(1).some((m) => m.role === 'teacher')) {
    throw new UserError(
      `invalid run report: models must list the teacher first and once, got roles ${models.map((m) => m.role).join(', ')}; put the teacher's evaluation first`,
    );
  }
  const names = models.map((m) => m.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined)
    throw new UserError(`invalid run report: two models are named \`${dup}\`; give each model its own name`);
  return report as RunReport;
}
