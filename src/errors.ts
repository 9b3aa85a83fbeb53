/**
 * A mistake the user can fix (bad path, bad config, missing data). The CLI prints its
 * message as one line, without a stack trace, and exits non-zero. The message names the
 * problem and the fix.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
}

/**
 * The first line of an error's message, trimmed and cut to `max` characters: what a one-line
 * `UserError` quotes of a library's error (some span lines, or carry a C++ signature).
 */
export function errorLine(e: unknown, max = 200): string {
  const line = String(e instanceof Error ? e.message : e)
    .split('\n')[0]!
    .trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
