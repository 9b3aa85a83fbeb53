/**
 * What the board knows of a runs folder: every run folder under it (one with experiment.yaml),
 * its state, and its per-epoch log (`epochs.jsonl`, written by `runExperiment` as it trains).
 * Read-only: the board never writes into a run.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { parse } from 'yaml';
import { EPOCHS_FILE } from '../experiment/run.js';
import type { EpochInfo } from '../train/fit.js';

export interface BoardRun {
  /** The folder relative to the runs folder, `/`-separated. */
  id: string;
  name: string;
  /** `done` (summary.json), `running` (its epoch log grew in the last minute), or `stopped`. */
  status: 'done' | 'running' | 'stopped';
  /** Epoch lines logged so far (every phase, seed and learner). */
  points: number;
  /** The last epoch logged: `seed 1 · small (kd) 3/5`. */
  last?: string;
  updatedAt: string;
  /** Seeds with a report, as `seed-<n>/report.html` paths relative to the run. */
  reports: string[];
  /** Test accuracy of each student (mean over seeds) once done. */
  students?: Array<{ name: string; accuracy: number }>;
}

const SKIP = new Set(['students', 'checkpoints', 'plots', 'node_modules', 'teacher', 'teacher-cache']);
const LIVE_MS = 60_000;

/** Run folders under `root`, up to `depth` levels down (sweeps keep theirs in trials/). */
export function findRuns(root: string, depth = 4): string[] {
  const out: string[] = [];
  const walk = (dir: string, level: number) => {
    if (existsSync(join(dir, 'experiment.yaml'))) out.push(dir);
    if (level >= depth) return;
    let entries: string[] = [];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const e of entries.sort()) {
      if (SKIP.has(e) || e.startsWith('.') || /^seed-\d+$/.test(e)) continue;
      const p = join(dir, e);
      try {
        if (statSync(p).isDirectory()) walk(p, level + 1);
      } catch {}
    }
  };
  walk(resolve(root), 0);
  return out;
}

/** The epoch log of a run; a line cut short by a kill is skipped; a resumed epoch keeps its last line. */
export function readEpochs(dir: string): EpochInfo[] {
  const file = join(dir, EPOCHS_FILE);
  if (!existsSync(file)) return [];
  const byKey = new Map<string, EpochInfo>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      const e = JSON.parse(line) as EpochInfo;
      byKey.set(`${e.seed}\u0000${e.phase}\u0000${e.model}\u0000${e.record.epoch}`, e);
    } catch {}
  }
  return [...byKey.values()];
}

export function describeRun(root: string, dir: string, now = Date.now()): BoardRun {
  const id = relative(resolve(root), dir).split(sep).join('/') || '.';
  let name = id;
  try {
    name = (parse(readFileSync(join(dir, 'experiment.yaml'), 'utf8')) as { name?: string }).name ?? id;
  } catch {}
  const epochs = readEpochs(dir);
  const logFile = join(dir, EPOCHS_FILE);
  const updated = existsSync(logFile) ? statSync(logFile).mtimeMs : statSync(join(dir, 'experiment.yaml')).mtimeMs;
  const summaryFile = join(dir, 'summary.json');
  const done = existsSync(summaryFile);
  const last = epochs.at(-1);
  const reports = readdirSync(dir)
    .filter((e) => /^seed-\d+$/.test(e) && existsSync(join(dir, e, 'report.html')))
    .map((e) => `${e}/report.html`);
  let students: BoardRun['students'];
  if (done) {
    try {
      const summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as {
        models: Array<{ name: string; role: string; accuracy: { mean: number } }>;
      };
      students = summary.models
        .filter((m) => m.role === 'student')
        .map((m) => ({ name: m.name, accuracy: m.accuracy.mean }));
    } catch {}
  }
  return {
    id,
    name,
    status: done ? 'done' : now - updated < LIVE_MS ? 'running' : 'stopped',
    points: epochs.length,
    ...(last && {
      last: `seed ${last.seed} · ${last.model === last.phase ? last.phase : `${last.phase}/${last.model}`} ${last.record.epoch}/${last.epochs}`,
    }),
    updatedAt: new Date(updated).toISOString(),
    reports,
    ...(students && { students }),
  };
}
