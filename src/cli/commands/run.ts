import { runExperiment } from '../../experiment/run.js';
import { renderSummaryMarkdown } from '../../experiment/summary.js';
import { Interrupted } from '../../train/fit.js';
import type { ProgressMode } from '../../train/progress.js';
import { abortOnSignals } from './trials.js';

export interface RunCommandOptions {
  set?: string[];
  resume?: string;
  out?: string;
  backend?: string;
  progress: ProgressMode;
}

/**
 * `distill run`: runs (or resumes) an experiment. The first Ctrl-C (or SIGTERM) stops at
 * the end of the current batch and keeps the last checkpoint; a second one quits at once.
 * Prints the summary table on stdout (unless `--json`, whose stdout is one object per epoch).
 */
export async function runCommand(file: string | undefined, o: RunCommandOptions): Promise<void> {
  const controller = new AbortController();
  const release = abortOnSignals(controller, 'stopping at the end of this batch');
  try {
    const result = await runExperiment({
      file,
      set: o.set,
      resume: o.resume,
      out: o.out,
      backend: o.backend,
      progress: o.progress,
      signal: controller.signal,
    });
    if (o.progress !== 'json') process.stdout.write(renderSummaryMarkdown(result.summary));
  } catch (e) {
    if (e instanceof Interrupted && o.progress === 'bar' && process.stderr.isTTY) process.stderr.write('\x1b[?25h\n');
    throw e;
  } finally {
    release();
  }
}
