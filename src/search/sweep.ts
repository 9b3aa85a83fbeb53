/**
 * `distill sweep`: every combination of `--grid path=[v1, v2, …]` values (or `--random N` of
 * them) as a trial of the experiment, run by an executor, then one `compare` table of all of
 * them. The sweep folder:
 *   sweep.json                 the trials (id, overrides, folder) and, once finished, their results
 *   trials/<id>/               each trial's run folder (report, students, trial.json)
 *   compare.{md,json,svg,png}  every trial's models side by side (`distill compare`)
 * `--resume DIR` runs the trials that have no result yet.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { Rng } from '../data/rng.js';
import { UserError } from '../errors.js';
import { compareRuns, type CompareResult } from '../experiment/compare.js';
import { writeFileAtomic } from '../io/atomic.js';
import { lockFolder } from '../io/folder-lock.js';
import type { Executor, ExecutorRunOptions, TrialResult, TrialSpec } from '../trials/types.js';
import { displayPath, insideShared, runTrials, trialExperiment } from './trials.js';

export interface GridAxis {
  path: string;
  values: unknown[];
}

/** `knowledge[0].kwargs.temperature=[1,2,4]` → its path and values (YAML). */
export function parseGrid(text: string): GridAxis {
  const eq = text.indexOf('=');
  const fix = `write it as path=[v1, v2], e.g. --grid 'knowledge[0].kwargs.temperature=[1,2,4]'`;
  if (eq <= 0) throw new UserError(`--grid ${text}: ${fix}`);
  const path = text.slice(0, eq).trim();
  let values: unknown;
  try {
    values = parse(text.slice(eq + 1));
  } catch {
    throw new UserError(`--grid ${text}: the values are not valid YAML; ${fix}`);
  }
  if (!Array.isArray(values) || values.length === 0)
    throw new UserError(`--grid ${text}: give a list of values; ${fix}`);
  return { path, values };
}

/** Every combination, first axis slowest; each as `path=value` overrides. */
export function gridCombinations(axes: readonly GridAxis[]): string[][] {
  return axes.reduce<string[][]>(
    (combos, axis) => combos.flatMap((c) => axis.values.map((v) => [...c, `${axis.path}=${JSON.stringify(v)}`])),
    [[]],
  );
}

/** `n` distinct combinations drawn with `seed` (all of them when n ≥ their count), in grid order. */
export function randomCombinations(axes: readonly GridAxis[], n: number, seed: number): string[][] {
  const all = gridCombinations(axes);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--random must be a whole number >= 1 (got ${n})`);
  const order = new Rng(seed).shuffle(all.map((_, i) => i));
  return order
    .slice(0, n)
    .sort((a, b) => a - b)
    .map((i) => all[i]!);
}

/** A folder-safe trial id from its overrides: `t03-temperature=4,alpha=0.5`. */
export function trialId(index: number, overrides: readonly string[]): string {
  const short = overrides
    .map((o) => {
      const [path, value] = [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)];
      return `${path.split('.').at(-1)}=${value.replace(/[^A-Za-z0-9._-]+/g, '_')}`;
    })
    .join(',');
  return `t${String(index + 1).padStart(2, '0')}${short ? `-${short}` : ''}`.slice(0, 120);
}

export interface SweepOptions {
  /** The experiment file (not with `resume`). */
  file?: string;
  /** Overrides of every trial. */
  set?: string[];
  grid?: string[];
  random?: number;
  /** Seed of `random`. Default 1. */
  randomSeed?: number;
  /** The sweep folder. */
  out?: string;
  resume?: string;
  /** Native threads per trial. Default 1. */
  threads?: number;
  backend?: string;
  executor: Executor;
  onEvent?: ExecutorRunOptions['onEvent'];
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface SweepTrial {
  id: string;
  overrides: string[];
  dir: string;
}

export interface SweepState {
  file: string;
  set: string[];
  trials: SweepTrial[];
  specs: TrialSpec[];
  teacherFirst: boolean;
  results?: TrialResult[];
}

export interface SweepResult {
  dir: string;
  state: SweepState;
  results: TrialResult[];
  compare: CompareResult;
}

function plan(o: SweepOptions, dir: string): SweepState {
  if (o.file === undefined) throw new UserError('give an experiment file: distill sweep EXPERIMENT.yaml --grid …');
  const axes = (o.grid ?? []).map(parseGrid);
  if (axes.length === 0) throw new UserError("give at least one --grid path=[v1, v2], e.g. --grid 'epochs=[5,10]'");
  const combos =
    o.random === undefined ? gridCombinations(axes) : randomCombinations(axes, o.random, o.randomSeed ?? 1);
  const shared = o.executor.shared;
  const trials: SweepTrial[] = combos.map((overrides, i) => {
    const id = trialId(i, overrides);
    return { id, overrides, dir: insideShared(shared, join(dir, 'trials', id), 'the sweep folder') };
  });
  let teacherFirst = false;
  const specs = trials.map((t) => {
    const { config, yaml } = trialExperiment({ file: o.file!, set: o.set }, t.overrides, shared);
    teacherFirst = config.teacher.key === 'train';
    return {
      id: t.id,
      experiment: yaml,
      dir: t.dir,
      threads: o.threads ?? 1,
      ...(o.backend && { backend: o.backend }),
    };
  });
  return { file: resolve(o.file), set: o.set ?? [], trials, specs, teacherFirst };
}

/** Plans (or reloads) the sweep, runs its trials on the executor and writes the compare table. */
export async function runSweep(o: SweepOptions): Promise<SweepResult> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let dir: string;
  let state: SweepState;
  if (o.resume !== undefined) {
    if (o.file !== undefined || (o.grid ?? []).length > 0)
      throw new UserError('--resume continues a sweep as planned; drop the experiment file and --grid');
    dir = resolve(o.resume);
    const file = join(dir, 'sweep.json');
    if (!existsSync(file)) throw new UserError(`${o.resume} is not a sweep folder (no sweep.json)`);
    state = JSON.parse(readFileSync(file, 'utf8')) as SweepState;
  } else {
    dir = resolve(o.out ?? 'runs/sweep');
    if (existsSync(join(dir, 'sweep.json')))
      throw new UserError(
        `${o.out ?? dir} already holds a sweep; continue it with --resume ${o.out ?? dir}, or choose another --out`,
      );
    state = plan(o, dir);
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(join(dir, 'sweep.json'), `${JSON.stringify(state, null, 2)}\n`);
  }
  const release = lockFolder(dir, 'distill sweep');
  try {
    log(`sweep: ${state.specs.length} trials on ${o.executor.describe}; folder ${dir}`);
    const results = await runTrials(o.executor, state.specs, {
      onEvent: o.onEvent,
      signal: o.signal,
      teacherFirst: state.teacherFirst,
      resume: `distill sweep --resume ${displayPath(dir)}`,
    });
    state = { ...state, results };
    await writeFileAtomic(join(dir, 'sweep.json'), `${JSON.stringify(state, null, 2)}\n`);
    const compare = await compareRuns({ runs: results.map((r) => join(o.executor.shared, r.dir)), outDir: dir });
    return { dir, state, results, compare };
  } finally {
    release();
  }
}
