/**
 * Options of every component (model, optimizer, knowledge term, scheme, data and teacher source)
 * are one zod schema each, declared beside the component: the schema is the TS type (`z.input`),
 * the defaults and the validation, for the API and the experiment file alike. This file turns
 * zod issues into one line a user can act on.
 */
import type { core, z } from 'zod';
import { UserError } from './errors.js';

/** A path inside a config or an options object: keys and list indices. */
export type OptionPath = ReadonlyArray<string | number>;

type Def = {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  element?: z.ZodType;
  in?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
};
const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The object keys a schema accepts at `path` (through optional/default/pipe wrappers). */
export function knownKeysAt(schema: z.ZodType, path: OptionPath): string[] {
  let s: z.ZodType | undefined = schema;
  const unwrap = () => {
    for (let d = defOf(s!); ; d = defOf(s!)) {
      if (
        d.innerType &&
        ['optional', 'default', 'nullable', 'prefault', 'readonly', 'catch', 'nonoptional'].includes(d.type)
      )
        s = d.innerType;
      else if (d.type === 'pipe' && d.in) s = d.in;
      else return d;
    }
  };
  for (const seg of path) {
    const d = unwrap();
    if (d.type === 'object' && typeof seg === 'string') s = d.shape?.[seg];
    else if (d.type === 'array' && typeof seg === 'number') s = d.element;
    else if (d.type === 'record') s = d.valueType;
    else return [];
    if (s === undefined) return [];
  }
  const d = unwrap();
  return d.type === 'object' ? Object.keys(d.shape ?? {}) : [];
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(
        row[j]! + 1,
        row[j - 1]! + 1,
        prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1),
      );
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** ` (did you mean \`epochs\`?)` when a known name is close to `word`, else ''. */
export function didYouMean(word: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(word, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? ` (did you mean \`${best}\`?)` : '';
}

export function valueAt(data: unknown, path: OptionPath): unknown {
  let v = data;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

const EXPECTED: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  string: 'a string',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
  bigint: 'a whole number',
};

/** What is wrong, after the path: `must be > 0 (got -1)`, `is required`, … */
export function explain(issue: core.$ZodIssue, value: unknown): string {
  const got = value === undefined ? '' : ` (got ${describe(value)})`;
  switch (issue.code) {
    case 'invalid_type':
      return value === undefined ? 'is required' : `must be ${EXPECTED[issue.expected] ?? issue.expected}${got}`;
    case 'too_small': {
      const min = String(issue.minimum);
      if (issue.origin === 'array') return `must have at least ${min} item${min === '1' ? '' : 's'}`;
      if (issue.origin === 'string') return 'must not be empty';
      return `must be ${issue.inclusive ? '>=' : '>'} ${min}${got}`;
    }
    case 'too_big': {
      const max = String(issue.maximum);
      if (issue.origin === 'array') return `must have at most ${max} items`;
      if (issue.origin === 'string') return `must be at most ${max} characters`;
      return `must be ${issue.inclusive ? '<=' : '<'} ${max}${got}`;
    }
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => String(v)).join(', ')}${got}`;
    case 'not_multiple_of':
      return `must be a multiple of ${String(issue.divisor)}${got}`;
    case 'invalid_union':
      return value === undefined ? 'is required' : `is not valid${got}`;
    default:
      return `${issue.message}${issue.code === 'invalid_format' ? got : ''}`;
  }
}

/**
 * Validates a component's options with its schema and returns them with defaults filled in;
 * otherwise throws one `UserError` naming the component, the option and the fix, e.g.
 * "knowledge term `kd`: option `alpha` must be <= 1 (got 2)" or
 * "model `cnn`: unknown option `widht` (did you mean `width`?); known: width, blocks, …".
 */
export function parseOptions<S extends z.ZodType>(what: string, schema: S, options: unknown): z.output<S> {
  const result = schema.safeParse(options ?? {});
  if (result.success) return result.data;
  const issues = [...result.error.issues].sort((a, b) => issueRank(a, options) - issueRank(b, options));
  const issue = issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const known = knownKeysAt(schema, issue.path as OptionPath);
    const where = issue.path.length > 0 ? ` in \`${issue.path.join('.')}\`` : '';
    throw new UserError(
      `${what}: unknown option \`${key}\`${where}${didYouMean(key, known)}; known: ${known.join(', ') || '(none)'}`,
    );
  }
  const path = issue.path.join('.');
  const text = issue.code === 'custom' ? issue.message : explain(issue, valueAt(options, issue.path as OptionPath));
  throw new UserError(path === '' ? `${what}: ${text}` : `${what}: option \`${path}\` ${text}`);
}

/**
 * Which issue to tell first: unknown keys (a typo also makes the intended key "missing"), then
 * wrong values, then missing keys (`data` is what was validated).
 */
export function issueRank(issue: core.$ZodIssue, data: unknown): number {
  if (issue.code === 'unrecognized_keys') return 0;
  return issue.code === 'invalid_type' && valueAt(data, issue.path as OptionPath) === undefined ? 2 : 1;
}
