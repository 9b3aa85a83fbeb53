/**
 * `distill compare`: finished runs side by side — one table (every run's models, mean ± std
 * over seeds) and one plot (accuracy ± std against float32 size, per run).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { errorLine, UserError } from '../errors.js';
import { renderSvg, svgToPng } from '../report/plots.js';
import { formatBytes, formatInt } from '../report/table.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { RunSummary, Stat } from './summary.js';

export interface CompareRunsOptions {
  /** Run folders written by `distill run` (each with summary.json). */
  runs: string[];
  /** Where compare.md, compare.json, compare.svg and compare.png go. */
  outDir: string;
}

export interface CompareRow {
  run: string;
  model: string;
  role: 'teacher' | 'student';
  method?: string;
  seeds: number;
  params: number | null;
  bytesFloat32: number | null;
  accuracy: Stat;
  agreement: Stat;
  ece: Stat;
  latencyBatch64Ms: Stat;
}

export interface CompareResult {
  rows: CompareRow[];
  markdown: string;
  files: { markdown: string; json: string; svg: string; png: string };
}

function readSummary(dir: string): RunSummary {
  const file = join(dir, 'summary.json');
  if (!existsSync(file)) {
    throw new UserError(
      existsSync(join(dir, 'experiment.yaml'))
        ? `run ${dir} has not finished (no summary.json); finish it with distill run --resume ${dir}`
        : `${dir} is not a run folder (no summary.json); give folders written by distill run`,
    );
  }
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RunSummary;
  } catch {
    throw new UserError(`${file} is not valid JSON; run distill run --resume ${dir} to write it again`);
  }
}

/** `mean ± std` over seeds (the mean alone for one seed), each formatted by `f`. */
export const formatStat = (s: Stat, f: (v: number) => string) => (s.n > 1 ? `${f(s.mean)} ± ${f(s.std)}` : f(s.mean));
const pm = formatStat;
const pct = (v: number) => (v * 100).toFixed(2);

/** The plot: accuracy (mean, ± std bars) against float32 size, colour per run, shape per role. */
export function compareSpec(rows: CompareRow[]): TopLevelSpec {
  const values = rows
    .filter((r) => r.bytesFloat32 !== null)
    .map((r) => ({
      run: r.run,
      model: r.model,
      role: r.role,
      kib: r.bytesFloat32! / 1024,
      accuracy: r.accuracy.mean * 100,
      lo: (r.accuracy.mean - r.accuracy.std) * 100,
      hi: (r.accuracy.mean + r.accuracy.std) * 100,
    }));
  const x = {
    field: 'kib',
    type: 'quantitative' as const,
    title: 'size, float32 (KiB, log scale)',
    scale: { type: 'log' as const },
  };
  const color = { field: 'run', type: 'nominal' as const, title: 'run' };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Accuracy vs size across runs',
      subtitle: 'points: mean over seeds; bars: ± one standard deviation',
      subtitleFontSize: 11,
      subtitleColor: '#555555',
    },
    width: 560,
    height: 340,
    background: 'white',
    config: {
      font: 'DejaVu Sans, Verdana, Arial, sans-serif',
      legend: { labelLimit: 260 },
      title: { anchor: 'start' },
    },
    data: { values },
    layer: [
      { mark: { type: 'rule' }, encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color } },
      {
        mark: { type: 'point', filled: true, size: 100, opacity: 1 },
        encoding: {
          x,
          color,
          y: { field: 'accuracy', type: 'quantitative', title: 'test accuracy (%)', scale: { zero: false } },
          shape: {
            field: 'role',
            type: 'nominal',
            title: 'role',
            scale: { domain: ['teacher', 'student'], range: ['diamond', 'circle'] },
          },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 8, dy: -6, fontSize: 10 },
        encoding: { x, y: { field: 'accuracy', type: 'quantitative' }, text: { field: 'model' }, color },
      },
    ],
  } as TopLevelSpec;
}

/** Every model of every finished run (its summary.json), one row each; the runs named apart when names repeat. */
export function compareRows(runs: readonly string[]): CompareRow[] {
  const summaries = runs.map((r) => ({ dir: resolve(r), summary: readSummary(r) }));
  const names = summaries.map((s) => s.summary.name);
  return summaries.flatMap(({ dir, summary }, i) => {
    const run =
      names.indexOf(summary.name) !== i || names.lastIndexOf(summary.name) !== i
        ? `${summary.name} (${basename(dir)})`
        : summary.name;
    return summary.models.map((m) => ({
      run,
      model: m.name,
      role: m.role,
      ...(m.method !== undefined && { method: m.method }),
      seeds: m.accuracy.n,
      params: m.params,
      bytesFloat32: m.bytes?.float32 ?? null,
      accuracy: m.accuracy,
      agreement: m.agreement,
      ece: m.ece,
      latencyBatch64Ms: m.latencyMs.batch64,
    }));
  });
}

/** Reads each run's summary and writes the table and the plot into `outDir`. */
export async function compareRuns({ runs, outDir }: CompareRunsOptions): Promise<CompareResult> {
  if (runs.length === 0) throw new UserError('give at least one run folder: distill compare RUN_DIR… --out DIR');
  const rows = compareRows(runs);
  const lines = [
    `# Comparison of ${runs.length} run${runs.length > 1 ? 's' : ''}`,
    '',
    "Mean ± sample standard deviation over each run's seeds.",
    '',
    '| run | model | role | method | seeds | params | size (float32) | accuracy (%) | agreement (%) | ECE (%) | latency b64 (ms) |',
    '|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|',
    ...rows.map(
      (r) =>
        `| ${r.run} | ${r.model} | ${r.role} | ${r.method ?? ''} | ${r.seeds} | ${r.params === null ? '—' : formatInt(r.params)} | ` +
        `${r.bytesFloat32 === null ? '—' : formatBytes(r.bytesFloat32)} | ${pm(r.accuracy, pct)} | ${pm(r.agreement, pct)} | ${pm(r.ece, pct)} | ` +
        `${pm(r.latencyBatch64Ms, (v) => v.toFixed(2))} |`,
    ),
    '',
    '![accuracy vs size](compare.png)',
  ];
  const markdown = `${lines.join('\n')}\n`;
  const svg = await renderSvg(compareSpec(rows));
  const dir = resolve(outDir);
  const files = {
    markdown: join(dir, 'compare.md'),
    json: join(dir, 'compare.json'),
    svg: join(dir, 'compare.svg'),
    png: join(dir, 'compare.png'),
  };
  try {
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(files.svg, svg);
    await writeFileAtomic(files.png, svgToPng({ svg }));
    await writeFileAtomic(files.json, `${JSON.stringify({ runs: runs.map((r) => resolve(r)), rows }, null, 2)}\n`);
    await writeFileAtomic(files.markdown, markdown);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot write to ${dir}: ${errorLine(e)}; choose a writable folder`);
  }
  return { rows, markdown, files };
}
