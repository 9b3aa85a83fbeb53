/**
 * A run's summary across seeds: every model's metrics as mean ± std over the seeds, and
 * what distilling bought each student over its label-only baseline (paired by seed).
 * Written as `summary.json` and `summary.md` in the run folder; `distill compare` reads it.
 */
import { join } from 'node:path';
import type { ByteSizes, RunReport } from '../eval/types.js';
import { formatBytes, formatInt, formatSeconds, formatTrainRows, verdict, baselineFor } from '../report/table.js';
import { writeFileAtomic } from '../io/atomic.js';

/** Mean and sample standard deviation (n − 1; 0 for one value) over seeds. */
export interface Stat {
  mean: number;
  std: number;
  n: number;
}

export interface SummaryModel {
  name: string;
  role: 'teacher' | 'student';
  method?: string;
  baseline?: boolean;
  params: number | null;
  bytes: ByteSizes | null;
  accuracy: Stat;
  agreement: Stat;
  klToTeacher: Stat;
  ece: Stat;
  latencyMs: { batch1: Stat; batch64: Stat };
  trainSeconds?: Stat;
}

/** A distilled student against its baseline (same parameter count), per-seed differences. */
export interface SummaryGain {
  student: string;
  baseline: string;
  /** Accuracy difference (student − baseline), as a fraction. */
  accuracy: Stat;
  agreement: Stat;
  klToTeacher: Stat;
}

export interface RunSummary {
  name: string;
  createdAt: string;
  backend: string;
  dataset: RunReport['dataset'];
  seeds: number[];
  models: SummaryModel[];
  gains: SummaryGain[];
}

export function stat(values: number[]): Stat {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, n);
  const std = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

/** Summarizes one report per seed (same models in each). */
export function summarizeReports({
  name,
  seeds,
  reports,
}: {
  name: string;
  seeds: number[];
  reports: RunReport[];
}): RunSummary {
  const first = reports[0]!;
  const models: SummaryModel[] = first.models.map((m) => {
    const all = reports.map((r) => r.models.find((x) => x.name === m.name)).filter((x) => x !== undefined);
    const trained = all.map((x) => x.trainSeconds).filter((s): s is number => s !== undefined);
    return {
      name: m.name,
      role: m.role,
      ...(m.method !== undefined && { method: m.method }),
      ...(m.baseline && { baseline: true }),
      params: m.params,
      bytes: m.bytes,
      accuracy: stat(all.map((x) => x.accuracy)),
      agreement: stat(all.map((x) => x.agreement)),
      klToTeacher: stat(all.map((x) => x.klToTeacher)),
      ece: stat(all.map((x) => x.ece)),
      latencyMs: {
        batch1: stat(all.map((x) => x.latencyMs.batch1)),
        batch64: stat(all.map((x) => x.latencyMs.batch64)),
      },
      ...(trained.length > 0 && { trainSeconds: stat(trained) }),
    };
  });
  const gains: SummaryGain[] = [];
  const students = first.models.filter((m) => m.role === 'student');
  const baselines = students.filter((m) => m.baseline);
  for (const s of students.filter((m) => !m.baseline)) {
    const b = baselineFor(s, baselines);
    if (!b) continue;
    const diff = (key: 'accuracy' | 'agreement' | 'klToTeacher') =>
      stat(
        reports
          .map((r) => {
            const a = r.models.find((x) => x.name === s.name);
            const c = r.models.find((x) => x.name === b.name);
            return a && c ? a[key] - c[key] : NaN;
          })
          .filter(Number.isFinite),
      );
    gains.push({
      student: s.name,
      baseline: b.name,
      accuracy: diff('accuracy'),
      agreement: diff('agreement'),
      klToTeacher: diff('klToTeacher'),
    });
  }
  return {
    name,
    createdAt: new Date().toISOString(),
    backend: first.backend,
    dataset: first.dataset,
    seeds,
    models,
    gains,
  };
}

const pm = (s: Stat, f: (v: number) => string) => (s.n > 1 ? `${f(s.mean)} ± ${f(s.std)}` : f(s.mean));
const pct = (v: number) => (v * 100).toFixed(2);
const signed = (v: number, f: (v: number) => string) => `${v >= 0 ? '+' : '−'}${f(Math.abs(v))}`;

/** The summary as Markdown: one table, then what distilling bought. */
export function renderSummaryMarkdown(s: RunSummary): string {
  const lines = [
    `# ${s.name}: summary over ${s.seeds.length} seed${s.seeds.length > 1 ? 's' : ''} (${s.seeds.join(', ')})`,
    '',
    `${s.dataset.name}: ${formatTrainRows(s.dataset, 'training')} / ${formatInt(s.dataset.test)} test samples; backend ${s.backend}. ` +
      (s.seeds.length > 1 ? 'Values are mean ± sample standard deviation over the seeds.' : 'One seed: no spread.'),
    '',
    '| model | role | method | params | size (float32) | accuracy (%) | agreement (%) | KL to teacher | ECE (%) | latency b1 (ms) | latency b64 (ms) | train time |',
    '|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const m of s.models) {
    lines.push(
      `| ${m.name} | ${m.role}${m.baseline ? ' (baseline)' : ''} | ${m.method ?? ''} | ${m.params === null ? '—' : formatInt(m.params)} | ` +
        `${m.bytes === null ? '—' : formatBytes(m.bytes.float32)} | ${pm(m.accuracy, pct)} | ${pm(m.agreement, pct)} | ` +
        `${pm(m.klToTeacher, (v) => v.toFixed(4))} | ${pm(m.ece, pct)} | ${pm(m.latencyMs.batch1, (v) => v.toFixed(3))} | ` +
        `${pm(m.latencyMs.batch64, (v) => v.toFixed(2))} | ${m.trainSeconds ? formatSeconds(m.trainSeconds.mean) : '—'} |`,
    );
  }
  if (s.gains.length > 0) {
    lines.push('', '## What distilling bought', '');
    for (const g of s.gains) {
      const spread = (x: Stat, f: (v: number) => string) => (x.n > 1 ? ` ± ${f(x.std)}` : '');
      const method = s.models.find((m) => m.name === g.student)?.method;
      lines.push(
        `- ${verdict(method, g.accuracy.mean, g.accuracy.n > 1 ? g.accuracy.std : undefined)}: \`${g.student}\` vs \`${g.baseline}\`: accuracy ${signed(g.accuracy.mean, pct)}${spread(g.accuracy, pct)} pts, ` +
          `agreement with the teacher ${signed(g.agreement.mean, pct)}${spread(g.agreement, pct)} pts, ` +
          `KL to teacher ${signed(g.klToTeacher.mean, (v) => v.toFixed(4))}${spread(g.klToTeacher, (v) => v.toFixed(4))} nats` +
          ` (paired by seed, n = ${g.accuracy.n}).`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Writes `summary.json` and `summary.md` into `dir` (atomically). */
export async function writeSummary({
  dir,
  summary,
}: {
  dir: string;
  summary: RunSummary;
}): Promise<{ json: string; markdown: string }> {
  const json = join(dir, 'summary.json');
  const markdown = join(dir, 'summary.md');
  await writeFileAtomic(json, `${JSON.stringify(summary, null, 2)}\n`);
  await writeFileAtomic(markdown, renderSummaryMarkdown(summary));
  return { json, markdown };
}
