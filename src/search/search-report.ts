/**
 * A search's files: `search.json` (the contract below), `search.md`, and `search.html` (one
 * self-contained page: the Pareto plot inline, the table of named candidates), plus
 * `search.svg`/`search.png`.
 *
 * search.json: { candidates: [{ name, family, params, bytes: {float32, uint8}, latencyMs: {batch1,
 * batch64}, accuracy, valAccuracy, epochs, onFront, dropped? }], chosen: { name, accuracy,
 * baselineAccuracy, params, latencyMs, … }, budget, rungs, teacher, … }.
 */
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from '../io/atomic.js';
import { escapeHtml, inlineSvg } from '../report/html.js';
import { renderSvg, svgToPng } from '../report/plots.js';
import { formatBytes, formatInt, formatMs } from '../report/table.js';
import type { SearchCandidate, SearchResult } from './types.js';

const pct = (v: number | null) => (v === null ? '—' : (v * 100).toFixed(2));

function budgetLine(r: SearchResult): string {
  const b = r.budget;
  const parts = [
    b.maxParams !== undefined && `≤ ${formatInt(b.maxParams)} params`,
    b.maxLatencyMs !== undefined &&
      `≤ ${b.maxLatencyMs} ms at batch ${b.latencyBatch}${b.maxLatencyFraction !== undefined ? ` (${b.maxLatencyFraction} × the teacher's)` : ''}`,
    b.maxBytes !== undefined && `≤ ${formatBytes(b.maxBytes)} as ${b.dtype}`,
  ].filter(Boolean);
  const t = b.latencyBatch === 1 ? b.teacherLatencyMs.batch1 : b.teacherLatencyMs.batch64;
  return `${parts.join(', ')} (the teacher: ${formatInt(r.teacher.params)} params, ${formatMs(t)} at batch ${b.latencyBatch})`;
}

const COLUMNS = [
  'candidate',
  'derivation',
  'params',
  'float32',
  'uint8',
  'batch 1',
  'batch 64',
  'epochs',
  'val acc (%)',
  'test acc (%)',
  'front',
  'dropped',
];

function rows(r: SearchResult): string[][] {
  const order = [...r.candidates].sort(
    (a, b) => b.epochs - a.epochs || (b.valAccuracy ?? -1) - (a.valAccuracy ?? -1) || a.params - b.params,
  );
  return order.map((c: SearchCandidate) => [
    c.name === r.chosen.name ? `**${c.name}** (chosen)` : c.name,
    c.derivation,
    formatInt(c.params),
    formatBytes(c.bytes.float32),
    formatBytes(c.bytes.uint8),
    formatMs(c.latencyMs.batch1),
    formatMs(c.latencyMs.batch64),
    String(c.epochs),
    pct(c.valAccuracy),
    pct(c.accuracy),
    c.onFront ? 'yes' : '',
    c.dropped ?? '',
  ]);
}

export function renderSearchMarkdown(r: SearchResult): string {
  const c = r.chosen;
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    `# Student search: ${r.name}`,
    '',
    `Budget: ${budgetLine(r)}. Backend ${r.backend}; trials on ${r.executor}; ${r.seconds.toFixed(0)} s.`,
    '',
    `**Chosen: ${c.name}** — ${formatInt(c.params)} params, ${formatMs(c.latencyMs.batch1)} at batch 1, ${formatMs(c.latencyMs.batch64)} at batch 64; test accuracy ${pct(c.accuracy)} % distilled vs ${pct(c.baselineAccuracy)} % on labels alone: ${c.verdict}. Its run: \`${c.dir}\`.`,
    '',
    `Rungs (successive halving, ranked by validation accuracy): ${r.rungs.map((g) => `${g.candidates.length} × ${g.epochs} epoch${g.epochs === 1 ? '' : 's'}`).join(' → ')}.`,
    '',
    line(COLUMNS),
    line(COLUMNS.map((_, i) => (i < 2 ? '---' : '---:'))),
    ...rows(r).map(line),
    '',
    'Latency: untrained models, median per forward pass on this backend, interleaved with the teacher. Accuracy: the distilled candidate at its last rung (candidates that stopped early trained fewer epochs). The front: not beaten on validation accuracy, latency at the budget batch size and params all at once.',
    '',
    '![accuracy vs latency](search.png)',
    '',
    '## Trials',
    '',
    line(['trial', 'worker', 'seconds', 'resumed']),
    line(['---', '---', '---:', '---']),
    ...r.trials.map((t) => line([t.id, t.worker, t.seconds.toFixed(0), t.resumed ? 'yes' : ''])),
    '',
  ].join('\n');
}

export function searchSpec(r: SearchResult): TopLevelSpec {
  const batch = r.budget.latencyBatch;
  const values = r.candidates
    .filter((c) => c.valAccuracy !== null)
    .map((c) => ({
      name: c.name,
      ms: batch === 1 ? c.latencyMs.batch1 : c.latencyMs.batch64,
      accuracy: c.valAccuracy! * 100,
      params: c.params,
      kind: c.name === r.chosen.name ? 'chosen' : c.onFront ? 'on the front' : 'dominated',
      epochs: c.epochs,
    }));
  const x = {
    field: 'ms',
    type: 'quantitative' as const,
    title: `latency at batch ${batch} (ms)`,
    scale: { zero: false },
  };
  const y = {
    field: 'accuracy',
    type: 'quantitative' as const,
    title: 'validation accuracy (%)',
    scale: { zero: false },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Student search: accuracy vs latency',
      subtitle: 'point size: parameters; each at its last rung',
      anchor: 'start',
    },
    width: 560,
    height: 340,
    background: 'white',
    config: { font: 'DejaVu Sans, Verdana, Arial, sans-serif' },
    data: { values },
    layer: [
      {
        mark: { type: 'line', color: '#888', strokeDash: [4, 3] },
        transform: [{ filter: "datum.kind != 'dominated'" }],
        encoding: { x, y, order: { field: 'ms' } },
      },
      {
        mark: { type: 'point', filled: true, opacity: 0.9 },
        encoding: {
          x,
          y,
          size: { field: 'params', type: 'quantitative', title: 'params' },
          color: {
            field: 'kind',
            type: 'nominal',
            title: '',
            scale: { domain: ['chosen', 'on the front', 'dominated'], range: ['#b01c1c', '#2a6fb0', '#aaaaaa'] },
          },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 8, dy: -6, fontSize: 10 },
        encoding: { x, y, text: { field: 'name' } },
      },
    ],
  } as TopLevelSpec;
}

const esc = escapeHtml;

function renderSearchHtml(r: SearchResult, svg: string): string {
  const c = r.chosen;
  const body = rows(r)
    .map(
      (cells) =>
        `<tr>${cells.map((x, i) => `<td${i < 2 ? ' class="l"' : ''}>${esc(x).replace(/\*\*(.+)\*\*/, '<b>$1</b>')}</td>`).join('')}</tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Student search: ${esc(r.name)}</title>
<style>body{font-family:"DejaVu Sans",Verdana,Arial,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222}
table{border-collapse:collapse;font-size:.88rem}th,td{padding:.3rem .6rem;border-bottom:1px solid #e2e2e2;text-align:right}
.l{text-align:left}thead th{border-bottom:2px solid #888}.chosen{background:#f3f8ee;border-left:4px solid #6a9f3c;padding:.5rem 1rem}
figure svg{max-width:100%;height:auto}</style></head><body>
<h1>Student search: ${esc(r.name)}</h1>
<p>Budget: ${esc(budgetLine(r))}. Backend ${esc(r.backend)}; trials on ${esc(r.executor)}; ${r.seconds.toFixed(0)} s.</p>
<p class="chosen"><b>Chosen: ${esc(c.name)}</b> — ${esc(formatInt(c.params))} params, ${esc(formatMs(c.latencyMs.batch64))} at batch 64; test accuracy ${pct(c.accuracy)} % distilled vs ${pct(c.baselineAccuracy)} % on labels alone: ${esc(c.verdict)}.</p>
<figure>${inlineSvg(svg)}</figure>
<table><thead><tr>${COLUMNS.map((h, i) => `<th${i < 2 ? ' class="l"' : ''}>${esc(h)}</th>`).join('')}</tr></thead>
<tbody>
${body}
</tbody></table>
<p>Rungs: ${esc(r.rungs.map((g) => `${g.candidates.length} × ${g.epochs} epochs`).join(' → '))}; ranked by validation accuracy.</p>
</body></html>
`;
}

export async function writeSearchReport(dir: string, r: SearchResult): Promise<void> {
  const svg = await renderSvg(searchSpec(r));
  await writeFileAtomic(join(dir, 'search.svg'), svg);
  await writeFileAtomic(join(dir, 'search.png'), svgToPng({ svg }));
  await writeFileAtomic(join(dir, 'search.md'), renderSearchMarkdown(r));
  await writeFileAtomic(join(dir, 'search.html'), renderSearchHtml(r, svg));
  await writeFileAtomic(join(dir, 'search.json'), `${JSON.stringify(r, null, 2)}\n`);
}
