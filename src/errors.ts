/**
 * A mistake the user can fix (bad path, bad config, missing data). The CLI prints its
 * message as one line, without a stack trace, and exits non-zero. The message names the
 * problem and the fix.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
}
