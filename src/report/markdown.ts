import type { RunReport } from '../eval/types.js';
import { distillationGains, formatTrainRows, reportTable } from './table.js';

const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** Column header: `name` with its role and, when given, its method. */
/** A column is headed by the model's name; role and method are the table's first row. */
export function columnTitle(c: { name: string }): string {
  return c.name;
}

/**
 * `report.md`: title, run facts, the size / accuracy / latency table (rows = metrics,
 * columns = teacher then each student), what distilling bought, settings, notes.
 */
export function renderMarkdown({ report }: { report: RunReport }): string {
  const t = reportTable(report);
  const lines: string[] = [`# ${report.title}`, ''];
  lines.push(`- created: ${report.createdAt}`);
  lines.push(
    `- dataset: ${report.dataset.name} (${formatTrainRows(report.dataset)}, ${report.dataset.test.toLocaleString('en-US')} test)`,
  );
  lines.push(`- backend: ${report.backend}`, '');
  lines.push(`| metric | ${t.columns.map((c) => esc(columnTitle(c))).join(' | ')} |`);
  lines.push(`|---|${t.columns.map(() => '---:').join('|')}|`);
  for (const r of t.rows) lines.push(`| ${esc(r.metric)} | ${r.cells.map(esc).join(' | ')} |`);
  lines.push('');
  const gains = distillationGains(report);
  if (gains.length > 0) {
    lines.push('**What distilling bought:**', '', ...gains.map((g) => `- ${g}`), '');
  }
  for (const table of report.tables ?? []) {
    lines.push(`## ${table.title}`, '');
    if (table.note !== undefined) lines.push(table.note, '');
    lines.push(`| ${table.columns.map(esc).join(' | ')} |`);
    lines.push(`|${table.columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
    for (const row of table.rows) lines.push(`| ${row.map(esc).join(' | ')} |`);
    lines.push('');
  }
  lines.push(...NOTES.map((n) => `- ${n}`), '');
  lines.push('## Settings', '', '```json', JSON.stringify(report.settings, null, 2), '```', '');
  return lines.join('\n');
}

/** What the table's numbers are (shared with the HTML report). */
export const NOTES: readonly string[] = [
  'Size: weights file + model.json as written by the file:// handler, per weight encoding (float16 = half floats; uint8 = per-tensor affine quantization, dequantized on load).',
  "Agreement: share of test samples where the model's top-1 class equals the teacher's. KL: mean KL(teacher ‖ model) of the softmax at T = 1. ECE: expected calibration error, 15 equal-width confidence bins (Guo et al. 2017).",
  'Latency: median wall-clock time of one forward pass including reading the result back, all models on the same backend in the same process, measured in alternating rounds (each timed pass right after an untimed one of the same model). Compression and speed-up: teacher ÷ model (size compression relative to the teacher in float32).',
];
