import type { ReportModel, RunReport } from '../eval/types.js';

/** The report table: one row per metric, one column per model (teacher first). */
export interface ReportTable {
  /** Column headers after the metric column: `name` per model. */
  columns: Array<{ name: string; role: 'teacher' | 'student'; method?: string }>;
  rows: Array<{ metric: string; cells: string[] }>;
}

const DASH = '—';

/** `55,000 train` or, with unlabeled rows, `55,000 train (5,000 labeled, 50,000 unlabeled)`. */
export function formatTrainRows(d: { train: number; labeled?: number }, word = 'train'): string {
  const rows = `${formatInt(d.train)} ${word}`;
  return d.labeled === undefined
    ? rows
    : `${rows} (${formatInt(d.labeled)} labeled, ${formatInt(d.train - d.labeled)} unlabeled)`;
}

export function formatInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Binary units: B, KiB, MiB, GiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function formatPercent(x: number): string {
  return `${(x * 100).toFixed(2)} %`;
}

export function formatMs(ms: number): string {
  return `${ms < 1 ? ms.toFixed(3) : ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms`;
}

export function formatRatio(x: number): string {
  if (!Number.isFinite(x)) return '×∞';
  return `×${x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0)}`;
}

export function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return s < 3600 ? `${m} min ${Math.round(s - 60 * m)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

type Cell = (m: ReportModel) => string;
const orDash = <T>(v: T | null | undefined, f: (v: T) => string) => (v === null || v === undefined ? DASH : f(v));

/** Rows in the order the report shows them. */
const ROWS: Array<[string, Cell]> = [
  ['trained with', (m) => (m.role === 'teacher' ? `${m.method ?? 'pre-trained'} (teacher)` : (m.method ?? DASH))],
  ['parameters', (m) => orDash(m.params, formatInt)],
  ['size, float32', (m) => orDash(m.bytes, (b) => formatBytes(b.float32))],
  ['size, float16', (m) => orDash(m.bytes, (b) => formatBytes(b.float16))],
  ['size, uint8', (m) => orDash(m.bytes, (b) => formatBytes(b.uint8))],
  ['test accuracy', (m) => formatPercent(m.accuracy)],
  ['agreement with teacher (top-1)', (m) => formatPercent(m.agreement)],
  ['KL to teacher (nats, T=1)', (m) => m.klToTeacher.toFixed(4)],
  ['ECE (15 bins)', (m) => formatPercent(m.ece)],
  ['latency, batch 1 (median)', (m) => formatMs(m.latencyMs.batch1)],
  ['latency, batch 64 (median)', (m) => formatMs(m.latencyMs.batch64)],
  ['compression, params', (m) => orDash(m.compression, (c) => formatRatio(c.params))],
  ['compression, size float32', (m) => orDash(m.compression, (c) => formatRatio(c.bytes.float32))],
  ['compression, size uint8', (m) => orDash(m.compression, (c) => formatRatio(c.bytes.uint8))],
  ['speed-up, batch 1', (m) => formatRatio(m.speedup.batch1)],
  ['speed-up, batch 64', (m) => formatRatio(m.speedup.batch64)],
  ['train time', (m) => orDash(m.trainSeconds, formatSeconds)],
];

/** The metric labels, in row order (for tests and other renderers). */
export const TABLE_METRICS: readonly string[] = ROWS.map(([label]) => label);

export function reportTable(report: RunReport): ReportTable {
  return {
    columns: report.models.map((m) => ({
      name: m.name,
      role: m.role,
      ...(m.method !== undefined && { method: m.method }),
    })),
    rows: ROWS.map(([metric, cell]) => ({ metric, cells: report.models.map(cell) })),
  };
}

/**
 * The verdict in words: what `method` (e.g. `dml: kd(…)`, `kd(temperature=2, …)`) bought over
 * training on the labels alone, e.g. "dml cost 1.60 pts against training on the labels alone".
 * `spread` (the std over seeds of the difference) adds "within the seed spread" when |difference| ≤ spread.
 */
export function verdict(method: string | undefined, difference: number, spread?: number): string {
  const name = (method ?? 'distillation').split(/[:(]/)[0]!.trim() || 'distillation';
  const size = `${(Math.abs(difference) * 100).toFixed(2)} pts`;
  const within = spread !== undefined && Math.abs(difference) <= spread ? ' (within the seed spread)' : '';
  if (Math.abs(difference) < 5e-5) return `${name} made no difference against training on the labels alone`;
  return difference > 0
    ? `${name} gained ${size} over training on the labels alone${within}`
    : `${name} cost ${size} against training on the labels alone${within}`;
}

/** The weight encoding a row was evaluated from (`small (kd) · uint8` → `uint8`), '' for the trained model. */
function encodingOf(name: string): string {
  return / · (\w+)$/.exec(name)?.[1] ?? '';
}

/**
 * The label-only row a student is compared with: among the baselines, the one with the same
 * encoding (a uint8 export against the uint8 export of the baseline), the same parameter count
 * and the same name before ` (`; failing that, the same encoding and count; then the same count.
 */
export function baselineFor<M extends { name: string; params: number | null }>(
  student: M,
  baselines: readonly M[],
): M | undefined {
  const base = (name: string) => name.replace(/ \(.*$/, '');
  const enc = encodingOf(student.name);
  const same = (x: M) => x.params === student.params;
  return (
    baselines.find((x) => same(x) && encodingOf(x.name) === enc && base(x.name) === base(student.name)) ??
    baselines.find((x) => same(x) && encodingOf(x.name) === enc) ??
    baselines.find(same)
  );
}

/**
 * One sentence per distilled student saying what distillation bought over the student
 * trained on labels only (the model marked `baseline: true`, as `baselineFor` picks it; else
 * the first baseline). Empty when there is no baseline or no other student.
 */
export function distillationGains(report: RunReport): string[] {
  const students = report.models.filter((m) => m.role === 'student');
  const baselines = students.filter((m) => m.baseline === true);
  if (baselines.length === 0) return [];
  const pts = (a: number, b: number) => `${a >= b ? '+' : '−'}${(Math.abs(a - b) * 100).toFixed(2)} pts`;
  return students
    .filter((m) => m.baseline !== true)
    .map((s) => {
      const b = baselineFor(s, baselines) ?? baselines[0]!;
      const kl = s.klToTeacher - b.klToTeacher;
      const same =
        s.params === b.params ? 'same size' : `${orDash(s.params, formatInt)} vs ${orDash(b.params, formatInt)} params`;
      return (
        `${verdict(s.method, s.accuracy - b.accuracy)}: \`${s.name}\` vs \`${b.name}\` (labels only, ${same}): ` +
        `accuracy ${pts(s.accuracy, b.accuracy)} (${formatPercent(s.accuracy)} vs ${formatPercent(b.accuracy)}), ` +
        `agreement with the teacher ${pts(s.agreement, b.agreement)} (${formatPercent(s.agreement)} vs ${formatPercent(b.agreement)}), ` +
        `KL to teacher ${kl >= 0 ? '+' : '−'}${Math.abs(kl).toFixed(4)} nats (${s.klToTeacher.toFixed(4)} vs ${b.klToTeacher.toFixed(4)}), ` +
        `ECE ${pts(s.ece, b.ece)} (${formatPercent(s.ece)} vs ${formatPercent(b.ece)}; lower is better).`
      );
    });
}
