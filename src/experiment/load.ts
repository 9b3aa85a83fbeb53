/**
 * Loading an experiment file into a validated, fully resolved config (defaults filled in,
 * relative paths made absolute). Every component is a `{ key, kwargs }` node looked up in
 * its registry; each registry entry validates its own kwargs (knowledge terms through their
 * factories), and every error names file, line and path.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { z } from 'zod';
import { experimentSchema, type ComponentNode, type ExperimentConfig } from '../config/experiment.js';
import { parseWith } from '../config/issues.js';
import { didYouMean } from '../options.js';
import {
  applyOverrides,
  setValue,
  configError,
  formatPath,
  locate,
  parseConfigSource,
  sourceData,
  type ConfigPath,
  type ConfigSource,
} from '../config/source.js';
import { dataSources } from '../data/sources.js';
import { UserError } from '../errors.js';
import { createTerm, knowledge, type KnowledgeTerm } from '../knowledge/index.js';
import { models } from '../models/zoo.js';
import type { Registry } from '../registry.js';
import { schemes } from '../schemes/index.js';
import { optimizers } from '../train/optimizers.js';
import { teacherSources } from './teacher-sources.js';

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
      throw new UserError(
        code === 'ENOENT'
          ? `experiment file ${path} does not exist; see examples/ for runnable ones`
          : `cannot read experiment file ${path} (${code ?? String(e)})`,
      );
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

  const node = <E>(
    registry: Registry<E>,
    what: string,
    path: ConfigPath,
    n: ComponentNode,
    schemaOf: (entry: E, key: string) => z.ZodType<Record<string, unknown>>,
  ): ComponentNode => {
    if (!registry.has(n.key)) {
      throw fail(
        [...path, 'key'],
        `${formatPath([...path, 'key'])}: unknown ${what} \`${n.key}\`${didYouMean(n.key, registry.keys())}; known: ${registry.keys().join(', ')}`,
      );
    }
    const schema = schemaOf(registry.get(n.key), n.key);
    return { key: n.key, kwargs: parseWith(schema, n.kwargs, { source, base: [...path, 'kwargs'] }) };
  };
  const own = <E extends WithKwargs>(entry: E) => entry.kwargs;

  const data = node(dataSources, 'data source', ['data'], raw.data, own);
  const teacher = raw.teacher && node(teacherSources, 'teacher source', ['teacher'], raw.teacher, own);
  const students = raw.students.map((s, i) => ({
    name: s.name,
    model: node(models, 'model', ['students', i, 'model'], s.model, own),
  }));
  const scheme = node(schemes, 'scheme', ['scheme'], raw.scheme, own);
  const optimizer = node(optimizers, 'optimizer', ['optimizer'], raw.optimizer, own);
  const terms = raw.knowledge.map((k, i) => {
    const { key, kwargs } = node(knowledge, 'knowledge term', ['knowledge', i], k, own);
    // the factory's own checks (beyond the schema), located at the term
    located(['knowledge', i, 'kwargs'], () => createTerm(key, kwargs).dispose());
    return { ...k, kwargs };
  });
  const config: ExperimentConfig = {
    ...raw,
    knowledge: terms,
    data,
    students,
    scheme,
    optimizer,
    out: resolve(raw.out ?? `runs/${raw.name}`),
    ...(teacher !== undefined && { teacher }),
  };
  return {
    config,
    source,
    fail,
    located,
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
