/**
 * The experiment file's format: its schema (`experimentSchema`), the validated config it
 * describes (`ExperimentConfig`) and that config written back as YAML. Loading a file —
 * overrides, every component's kwargs checked by its registry, errors located at a line —
 * is `loadExperiment` (`src/experiment/load.ts`), which sits above the registries.
 */
import { stringify } from 'yaml';
import { z } from 'zod';
import { WEIGHT_ENCODINGS, type WeightEncoding } from '../io/quantize.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const name = z
  .string()
  .regex(NAME, 'must start with a letter or digit and hold only letters, digits, ".", "_" and "-"');
const kwargs = z.record(z.string(), z.unknown()).default({});
const component = z.strictObject({ key: z.string().min(1), kwargs });
const encoding = z.enum(WEIGHT_ENCODINGS as [WeightEncoding, ...WeightEncoding[]]);

/** The shape of an experiment file (component kwargs are checked by their registries). */
export const experimentSchema = z.strictObject({
  /** Names the run (default output folder `runs/<name>`). */
  name,
  description: z.string().optional(),
  /** One full run per seed (data order, dropout, initial weights); the summary gives mean ± std. */
  seeds: z
    .array(z.int())
    .min(1)
    .default([1])
    .check((ctx) => {
      if (new Set(ctx.value).size !== ctx.value.length)
        ctx.issues.push({ code: 'custom', input: ctx.value, message: 'must not repeat a seed' });
    }),
  backend: z.enum(['auto', 'native', 'wasm', 'cpu']).default('auto'),
  out: z.string().min(1).optional(),
  data: component,
  teacher: component,
  students: z
    .array(z.strictObject({ name, model: component }))
    .min(1)
    .check((ctx) => {
      const names = ctx.value.map((s) => s.name);
      const dup = names.findIndex((n, i) => names.indexOf(n) !== i);
      if (dup >= 0)
        ctx.issues.push({
          code: 'custom',
          input: ctx.value,
          path: [dup, 'name'],
          message: `must be unique (\`${names[dup]}\` is used twice)`,
        });
    }),
  knowledge: z.array(z.strictObject({ key: z.string().min(1), weight: z.number().min(0).default(1), kwargs })).min(1),
  /** Also train each student on labels only, to show what distilling bought. */
  baseline: z.boolean().default(true),
  scheme: component.default({ key: 'offline', kwargs: {} }),
  optimizer: component.default({ key: 'adam', kwargs: {} }),
  schedule: z.enum(['constant', 'cosine']).default('constant'),
  epochs: z.int().positive(),
  /** Stop a phase when the validation accuracy has not improved by more than minDelta for patience epochs. */
  earlyStopping: z.strictObject({ patience: z.int().positive(), minDelta: z.number().min(0).default(0) }).optional(),
  batchSize: z.int().positive().default(64),
  evaluation: z
    .strictObject({
      batchSize: z.int().positive().default(256),
      latency: z
        .strictObject({ warmup: z.int().min(0).default(10), runs: z.int().positive().default(50) })
        .default({ warmup: 10, runs: 50 }),
    })
    .default({ batchSize: 256, latency: { warmup: 10, runs: 50 } }),
  /**
   * How students are exported (`seed-<n>/students/<id>/`), and the encodings whose exported
   * files are loaded back and evaluated as rows of their own (`small (kd) · uint8`).
   */
  export: z
    .strictObject({
      dtype: encoding.default('float32'),
      evaluate: z
        .array(encoding)
        .default([])
        .check((ctx) => {
          if (new Set(ctx.value).size !== ctx.value.length)
            ctx.issues.push({ code: 'custom', input: ctx.value, message: 'must not repeat an encoding' });
        }),
    })
    .default({ dtype: 'float32', evaluate: [] }),
  /**
   * Quantization-aware distillation: the last `lastEpochs` epochs of every training phase of
   * a seed (students and label-only baselines; not the experiment's teacher) see the weights
   * fake-quantized to uint8 with straight-through gradients (`src/train/fake-quant.ts`).
   * `granularity: tensor` is what the TF.js uint8 export stores (one min/scale per tensor).
   */
  quantizationAware: z
    .strictObject({
      lastEpochs: z.int().positive(),
      granularity: z.enum(['tensor', 'channel']).default('tensor'),
    })
    .optional(),
});

export interface ComponentNode {
  key: string;
  kwargs: Record<string, unknown>;
}

/** A validated experiment: every default filled in, kwargs parsed by their components, paths absolute. */
export type ExperimentConfig = Omit<z.output<typeof experimentSchema>, 'out'> & { out: string };

/** The resolved config as YAML: what a run folder keeps as `experiment.yaml`. */
export function experimentYaml(config: ExperimentConfig): string {
  return `# Resolved experiment (defaults filled in, paths absolute): \`distill run --resume\` reads it.\n${stringify(config, { lineWidth: 0 })}`;
}
