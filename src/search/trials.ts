/**
 * From an experiment to trial specs, for sweeps and the student search: each trial is the
 * experiment with overrides, validated here (a bad override fails before anything runs), its
 * paths inside the shared folder written `@shared/…` so that every worker finds them.
 */
import { relative, resolve, sep } from 'node:path';
import { experimentYaml, type ExperimentConfig } from '../config/experiment.js';
import { UserError } from '../errors.js';
import { loadExperiment } from '../experiment/load.js';
import { Interrupted } from '../train/fit.js';
import type { Executor, ExecutorRunOptions, TrialResult, TrialSpec } from '../trials/types.js';
import { SHARED } from '../trials/types.js';

/** A folder as the user would type it: relative to the working directory when inside it. */
export function displayPath(dir: string): string {
  const rel = relative(process.cwd(), dir);
  return rel !== '' && !rel.startsWith('..') ? rel : dir;
}

/** `dir` relative to `shared`; refuses a folder outside it. */
export function insideShared(shared: string, dir: string, what: string): string {
  const rel = relative(resolve(shared), resolve(dir));
  if (rel === '' || rel.startsWith('..') || resolve(rel) === rel)
    throw new UserError(`${what} ${dir} must be inside the shared folder ${shared}; choose --out inside --shared`);
  return rel.split(sep).join('/');
}

export interface TrialExperiment {
  /** The experiment file (for messages, and read unless `text`). */
  file: string;
  text?: string;
  /** Overrides of every trial, before its own. */
  set?: readonly string[];
}

/**
 * The experiment with `overrides` applied and validated, as a trial's YAML: a `train` teacher
 * is cached in the shared folder (trained by the first trial, loaded by the others).
 */
export function trialExperiment(
  base: TrialExperiment,
  overrides: readonly string[],
  shared: string,
): { config: ExperimentConfig; yaml: string } {
  const loaded = loadExperiment({ path: base.file, text: base.text, set: [...(base.set ?? []), ...overrides] });
  const config = { ...loaded.config };
  if (config.teacher.key === 'train' && config.teacher.kwargs['cache'] === undefined)
    config.teacher = {
      ...config.teacher,
      kwargs: { ...config.teacher.kwargs, cache: resolve(shared, 'teacher-cache') },
    };
  const abs = `${resolve(shared)}/`;
  return { config, yaml: experimentYaml(config).split(abs).join(SHARED) };
}

/**
 * Runs the specs; when their teacher is trained (`train`), the first trial runs alone so that
 * the others load the teacher it caches instead of each training it.
 */
export async function runTrials(
  executor: Executor,
  specs: readonly TrialSpec[],
  o: ExecutorRunOptions & { teacherFirst: boolean; resume: string },
): Promise<TrialResult[]> {
  try {
    if (!o.teacherFirst || specs.length < 2) return await executor.run(specs, o);
    const [first] = await executor.run(specs.slice(0, 1), o);
    return [first!, ...(await executor.run(specs.slice(1), o))];
  } catch (e) {
    // The trial's own hint names its run folder; the whole sweep or search is what to resume.
    if (e instanceof Interrupted)
      throw new Interrupted(
        `${e.message.split(';')[0]}; finished trials and checkpoints are kept; resume with: ${o.resume}`,
      );
    throw e;
  }
}
