import type { ProgressMode } from '../train/progress.js';

/** `bar` on a terminal, `lines` otherwise, unless asked for `--json` or `--quiet`. */
export function defaultProgressMode({ json, quiet }: { json?: boolean; quiet?: boolean }): ProgressMode {
  if (quiet) return 'quiet';
  if (json) return 'json';
  return process.stderr.isTTY ? 'bar' : 'lines';
}
