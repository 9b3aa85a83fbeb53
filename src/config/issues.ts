/**
 * zod issues → one line a user can act on: where (file:line or --set), which path, what is
 * wrong, and for unknown keys the known ones (with a "did you mean").
 */
import type { z } from 'zod';
import type { core } from 'zod';
import { UserError } from '../errors.js';
import { formatPath, locate, type ConfigPath, type ConfigSource } from './source.js';

type Def = { type: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType; element?: z.ZodType; in?: z.ZodType; valueType?: z.ZodType; options?: z.ZodType[] };
const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The object keys a schema accepts at `path` (through optional/default/pipe wrappers). */
export function knownKeysAt(schema: z.ZodType, path: ConfigPath): string[] {
  let s: z.ZodType | undefined = schema;
  const unwrap = () => {
    for (let d = defOf(s!); ; d = defOf(s!)) {
      if (d.innerType && ['optional', 'default', 'nullable', 'prefault', 'readonly', 'catch', 'nonoptional'].includes(d.type)) s = d.innerType;
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
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
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

function valueAt(data: unknown, path: ConfigPath): unknown {
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
  number: 'a number', int: 'a whole number', string: 'a string', boolean: 'true or false',
  array: 'a list', object: 'a mapping', record: 'a mapping', bigint: 'a whole number',
};

/** What is wrong, after the path: `must be > 0 (got -1)`, `is required`, … */
function explain(issue: core.$ZodIssue, value: unknown): string {
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
      return `is not valid${got}`;
    default:
      return `${issue.message}${issue.code === 'invalid_format' ? got : ''}`;
  }
}

export interface IssueContext {
  source: ConfigSource;
  /** Prefix of the issue paths inside the config (when validating a component's kwargs). */
  base?: ConfigPath;
  /** The schema, for the known keys of an object with an unknown key. */
  schema: z.ZodType;
  /** The data that was validated (for "got …"). */
  data: unknown;
}

/** One issue as `where: path what`. */
export function issueMessage(issue: core.$ZodIssue, ctx: IssueContext): { at: string; line: number; rank: number; text: string } {
  const base = ctx.base ?? [];
  const path = [...base, ...(issue.path as Array<string | number>)];
  let text: string;
  let at: string;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const known = knownKeysAt(ctx.schema, issue.path as ConfigPath);
    const where = path.length === 0 ? 'at the top level' : `in ${formatPath(path)}`;
    text = `unknown key \`${key}\` ${where}${didYouMean(key, known)}; known: ${known.join(', ') || '(none)'}`;
    at = locate(ctx.source, [...path, key]);
  } else if (issue.code === 'custom' && /\{(path|parent)\}/.test(issue.message)) {
    text = issue.message.replaceAll('{path}', formatPath(path)).replaceAll('{parent}', formatPath(path.slice(0, -1)));
    at = locate(ctx.source, path);
  } else {
    text = `${formatPath(path)} ${explain(issue, valueAt(ctx.data, issue.path as ConfigPath))}`;
    at = locate(ctx.source, path);
  }
  const line = Number(/:(\d+)$/.exec(at)?.[1] ?? Infinity);
  // An unknown key first (a typo also makes the intended key "missing"), a missing key last.
  const missing = issue.code === 'invalid_type' && valueAt(ctx.data, issue.path as ConfigPath) === undefined;
  return { at, line, rank: issue.code === 'unrecognized_keys' ? 0 : missing ? 2 : 1, text };
}

/**
 * Validates `data` with `schema`; on failure throws one `UserError` for the most telling
 * issue (unknown keys, then wrong values, then missing keys; each in file order, overrides
 * last), with how many more there are.
 */
export function parseWith<S extends z.ZodType>(schema: S, data: unknown, ctx: Omit<IssueContext, 'schema' | 'data'>): z.output<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const messages = result.error.issues.map((i) => issueMessage(i, { ...ctx, schema, data }));
  messages.sort((a, b) => a.rank - b.rank || a.line - b.line);
  const first = messages[0]!;
  const more = messages.length > 1 ? ` (and ${messages.length - 1} more problem${messages.length > 2 ? 's' : ''})` : '';
  throw new UserError(`${first.at}: ${first.text}${more}`);
}
