/**
 * The experiment file: its schema, and loading it into a validated, fully resolved config
 * (defaults filled in, relative paths made absolute). Every component is a `{ key, kwargs }`
 * node looked up in its registry; each registry entry validates its own kwargs (knowledge
 * terms through their factories), and every error names file, line and path.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { dataSources } from '../experiment/data-sources.js';
import { schemes } from '../experiment/schemes.js';
import { teacherSources } from '../experiment/teacher-sources.js';
import { WEIGHT_ENCODINGS, type WeightEncoding } from '../io/quantize.js';
import { createTerm, knowledge, type KnowledgeTerm } from '../knowledge/index.js';
import { models } from '../models/zoo.js';
import type { Registry } from '../registry.js';
import { optimizers } from '../train/optimizers.js';
import { anyKwargs, modelKwargs, optimizerKwargs } from './components.js';
import { didYouMean, parseWith } from './issues.js';
import { applyOverrides, setValue, configError, formatPath, locate, parseConfigSource, sourceData, type ConfigPath, type ConfigSource } from './source.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const name = z.string().regex(NAME, 'must start with a letter or digit and hold only letters, digits, ".", "_" and "-"');
const kwargs = z.record(z.string(), z.unknown()).default({});
const component = z.strictObject({ key: z.string().min(1), kwargs });

/** The shape of an experiment file (component kwargs are checked by their registries). */
export const experimentSchema = z.strictObject({
  /** Names the run (default output folder `runs/<name>`). */
  name,
  description: z.string().optional(),
  /** One full run per seed (data order, dropout, initial weights); the summary gives mean ± std. */
  seeds: z.array(z.int()).min(1).default([1]).check((ctx) => {
    if (new Set(ctx.value).size !== ctx.value.length) ctx.issues.push({ code: 'custom', input: ctx.value, message: 'must not repeat a seed' });
  }),
  backend: z.enum(['auto', 'native', 'wasm', 'cpu']).default('auto'),
  out: z.string().min(1).optional(),
  data: component,
  teacher: component,
  students: z.array(z.strictObject({ name, model: component })).min(1).check((ctx) => {
    const names = ctx.value.map((s) => s.name);
    const dup = names.findIndex((n, i) => names.indexOf(n) !== i);
    if (dup >= 0) ctx.issues.push({ code: 'custom', input: ctx.value, path: [dup, 'name'], message: `must be unique (\`${names[dup]}\` is used twice)` });
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
  evaluation: z.strictObject({
    batchSize: z.int().positive().default(256),
    latency: z.strictObject({ warmup: z.int().min(0).default(10), runs: z.int().positive().default(50) }).default({ warmup: 10, runs: 50 }),
  }).default({ batchSize: 256, latency: { warmup: 10, runs: 50 } }),
  export: z.strictObject({ dtype: z.enum(WEIGHT_ENCODINGS as [WeightEncoding, ...WeightEncoding[]]).default('float32') }).default({ dtype: 'float32' }),
});

export interface ComponentNode {
  key: string;
  kwargs: Record<string, unknown>;
}

/** A validated experiment: every default filled in, kwargs parsed by their components, paths absolute. */
export type ExperimentConfig = Omit<z.output<typeof experimentSchema>, 'out'> & { out: string };

export interface LoadExperimentOptions {
  /** The experiment file (named in error messages as given). */
  path: string;
  /** Its text, when already read (else read from `path`). */
  text?: string;
  /** `path=value` overrides, applied in order. */
  set?: readonly string[];
  /** Overrides with values already typed (e.g. `--backend`, `--out`), applied after `set`. */
  values?: ReadonlyArray<{ path: ConfigPath; value: unknown; label: string }>;
}

export interface LoadedExperiment {
  config: ExperimentConfig;
  source: ConfigSource;
  /** `file:line` (or `--set …`) of a config path. */
  at(path: ConfigPath): string;
  /** A one-line `UserError` located at `path`. */
  fail(path: ConfigPath, message: string): UserError;
  /** Calls `fn` (sync or async); a `UserError` it throws is re-thrown located at `path`. */
  located<T>(path: ConfigPath, fn: () => T): T;
  /** Fresh instances of the configured knowledge terms with their weights, in config order. */
  createTerms(): Array<{ term: KnowledgeTerm; weight: number }>;
}

/** A registry entry that validates its kwargs with a zod schema. */
export interface WithKwargs {
  kwargs: z.ZodType<Record<string, unknown>>;
}

/**
 * Reads, overrides and validates an experiment file. Synchronous and side-effect free:
 * nothing is loaded, built or written (see `prepareExperiment` for the checks that need data).
 */
export function loadExperiment({ path, text, set = [], values = [] }: LoadExperimentOptions): LoadedExperiment {
  let body = text;
  if (body === undefined) {
    try {
      body = readFileSync(path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UserError(code === 'ENOENT' ? `experiment file ${path} does not exist; see examples/ for runnable ones`
        : `cannot read experiment file ${path} (${code ?? String(e)})`);
    }
  }
  const source = parseConfigSource({ text: body, file: path });
  applyOverrides(source, set);
  for (const v of values) setValue(source, v.path, v.value, v.label);
  const raw = parseWith(experimentSchema, sourceData(source), { source });
  const fail = (p: ConfigPath, message: string) => configError(source, p, message);
  const located = <T>(p: ConfigPath, fn: () => T): T => {
    const rethrow = (e: unknown): never => {
      if (!(e instanceof UserError) || e instanceof LocatedError) throw e;
      throw relocate(source, p, e);
    };
    try {
      const result = fn();
      return (result instanceof Promise ? result.catch(rethrow) : result) as T;
    } catch (e) {
      return rethrow(e);
    }
  };

  const node = <E>(registry: Registry<E>, what: string, path: ConfigPath, n: ComponentNode, schemaOf: (entry: E, key: string) => z.ZodType<Record<string, unknown>>): ComponentNode => {
    if (!registry.has(n.key)) {
      throw fail([...path, 'key'], `${formatPath([...path, 'key'])}: unknown ${what} \`${n.key}\`${didYouMean(n.key, registry.keys())}; known: ${registry.keys().join(', ')}`);
    }
    const schema = schemaOf(registry.get(n.key), n.key);
    return { key: n.key, kwargs: parseWith(schema, n.kwargs, { source, base: [...path, 'kwargs'] }) };
  };
  const own = <E extends WithKwargs>(entry: E) => entry.kwargs;

  const data = node(dataSources, 'data source', ['data'], raw.data, own);
  const teacher = raw.teacher && node(teacherSources, 'teacher source', ['teacher'], raw.teacher, own);
  const students = raw.students.map((s, i) => ({
    name: s.name,
    model: node(models, 'model', ['students', i, 'model'], s.model, (_e, key) => modelKwargs[key] ?? anyKwargs),
  }));
  const scheme = node(schemes, 'scheme', ['scheme'], raw.scheme, own);
  const optimizer = node(optimizers, 'optimizer', ['optimizer'], raw.optimizer, (_e, key) => optimizerKwargs[key] ?? anyKwargs);
  raw.knowledge.forEach((k, i) => {
    if (!knowledge.has(k.key)) {
      throw fail(['knowledge', i, 'key'], `knowledge[${i}].key: unknown knowledge term \`${k.key}\`${didYouMean(k.key, knowledge.keys())}; known: ${knowledge.keys().join(', ')}`);
    }
    located(['knowledge', i, 'kwargs'], () => createTerm(k.key, k.kwargs).dispose());
  });
  const config: ExperimentConfig = {
    ...raw, data, students, scheme, optimizer, out: resolve(raw.out ?? `runs/${raw.name}`),
    ...(teacher !== undefined && { teacher }),
  };
  return {
    config, source, fail, located,
    at: (p) => locate(source, p),
    createTerms: () => config.knowledge.map((k) => ({ term: createTerm(k.key, k.kwargs), weight: k.weight })),
  };
}

/** A `UserError` that already says where in the config it comes from. */
class LocatedError extends UserError {}

/**
 * A component's `UserError` re-thrown at the config path it came from: when its message
 * names an option (`option \`temperature\``) that the config holds, at that option's line.
 */
function relocate(source: ConfigSource, path: ConfigPath, error: UserError): UserError {
  const option = /option `([^`]+)`/.exec(error.message)?.[1];
  const precise = option !== undefined ? [...path, option] : path;
  const where = locate(source, precise);
  return new LocatedError(`${where}: ${formatPath(precise)}: ${error.message}`);
}

/** The resolved config as YAML: what a run folder keeps as `experiment.yaml`. */
export function experimentYaml(config: ExperimentConfig): string {
  return `# Resolved experiment (defaults filled in, paths absolute): \`distill run --resume\` reads it.\n${stringify(config, { lineWidth: 0 })}`;
}
