/**
 * zod issues → one line a user can act on: where (file:line or --set), which path, what is
 * wrong, and for unknown keys the known ones (with a "did you mean").
 */
import type { core, z } from 'zod';
import { UserError } from '../errors.js';
import { didYouMean, explain, issueRank, knownKeysAt, valueAt } from '../options.js';
import { formatPath, locate, type ConfigPath, type ConfigSource } from './source.js';

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
export function issueMessage(
  issue: core.$ZodIssue,
  ctx: IssueContext,
): { at: string; line: number; rank: number; text: string } {
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
  return { at, line, rank: issueRank(issue, ctx.data), text };
}

/**
 * Validates `data` with `schema`; on failure throws one `UserError` for the most telling
 * issue (unknown keys, then wrong values, then missing keys; each in file order, overrides
 * last), with how many more there are.
 */
export function parseWith<S extends z.ZodType>(
  schema: S,
  data: unknown,
  ctx: Omit<IssueContext, 'schema' | 'data'>,
): z.output<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const messages = result.error.issues.map((i) => issueMessage(i, { ...ctx, schema, data }));
  messages.sort((a, b) => a.rank - b.rank || a.line - b.line);
  const first = messages[0]!;
  const more = messages.length > 1 ? ` (and ${messages.length - 1} more problem${messages.length > 2 ? 's' : ''})` : '';
  throw new UserError(`${first.at}: ${first.text}${more}`);
}
