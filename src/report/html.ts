import type { RunReport } from '../eval/types.js';
import { NOTES } from './markdown.js';
import type { Plot } from './plots.js';
import { distillationGains, formatTrainRows, reportTable } from './table.js';

/** Text as HTML (element content and double-quoted attributes). */
export const escapeHtml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const esc = escapeHtml;
/** Markdown `code` spans of the gains sentences → <code>. */
const codeSpans = (s: string) => esc(s).replace(/`([^`]+)`/g, '<code>$1</code>');

/**
 * An SVG for inlining in HTML: the XML prolog and namespace declarations dropped (the HTML
 * parser puts <svg> in the SVG namespace itself), so the page references no URL at all.
 */
export function inlineSvg(svg: string): string {
  return svg
    .replace(/^<\?xml[^>]*>\s*/, '')
    .replace(/\s+xmlns(:\w+)?="[^"]*"/g, '')
    .replace(/<svg\b/, '<svg role="img"');
}

const CSS = `
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: .3rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.facts { color: #555; margin: 0 0 1rem; padding: 0; list-style: none; } .facts li { display: inline; margin-right: 1.5rem; }
table { border-collapse: collapse; font-size: .92rem; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid #e2e2e2; }
td { text-align: right; font-variant-numeric: tabular-nums; } td.metric, th.metric { text-align: left; }
thead th { border-bottom: 2px solid #888; vertical-align: bottom; } th .method { display: block; font-weight: normal; color: #666; font-size: .82rem; }
th.teacher { color: #b01c1c; } tbody tr:hover { background: #f6f6f6; }
.gains { background: #f3f8ee; border-left: 4px solid #6a9f3c; padding: .5rem 1rem; }
.notes { color: #555; font-size: .85rem; } figure { margin: 1rem 0 2rem; } figure svg { max-width: 100%; height: auto; }
pre { background: #f6f6f6; padding: .7rem; overflow-x: auto; font-size: .85rem; }
`;

/**
 * `report.html`: one self-contained file (inline CSS and SVG, no script, no external
 * resource): run facts, the table, what distilling bought, the plots, settings, notes.
 */
export function renderHtml({ report, plots }: { report: RunReport; plots: Plot[] }): string {
  const t = reportTable(report);
  const head = t.columns
    .map(
      (c) =>
        `<th class="${c.role}">${esc(c.name)}<span class="method">${esc(c.role)}${c.method !== undefined ? ` · ${esc(c.method)}` : ''}</span></th>`,
    )
    .join('');
  const body = t.rows
    .map((r) => `<tr><td class="metric">${esc(r.metric)}</td>${r.cells.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('\n');
  const gains = distillationGains(report);
  const figures = plots
    .map((p) => `<h2>${esc(p.title)}</h2>\n<figure id="plot-${esc(p.name)}">${inlineSvg(p.svg)}</figure>`)
    .join('\n');
  const tables = (report.tables ?? [])
    .map(
      (x) =>
        `<h2>${esc(x.title)}</h2>\n${x.note !== undefined ? `<p>${codeSpans(x.note)}</p>\n` : ''}` +
        `<table>\n<thead><tr>${x.columns.map((c, i) => `<th${i === 0 ? ' class="metric"' : ''}>${esc(c)}</th>`).join('')}</tr></thead>\n<tbody>\n` +
        `${x.rows.map((r) => `<tr>${r.map((c, i) => `<td${i === 0 ? ' class="metric"' : ''}>${esc(c)}</td>`).join('')}</tr>`).join('\n')}\n</tbody>\n</table>`,
    )
    .join('\n');
  const noHistory = report.models.every((m) => !m.history?.length)
    ? '<p class="notes">No per-epoch history in this run: loss and accuracy curves are not shown.</p>'
    : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(report.title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${esc(report.title)}</h1>
<ul class="facts"><li>created ${esc(report.createdAt)}</li><li>dataset ${esc(report.dataset.name)} (${esc(formatTrainRows(report.dataset))}, ${report.dataset.test.toLocaleString('en-US')} test)</li><li>backend ${esc(report.backend)}</li></ul>
<table>
<thead><tr><th class="metric">metric</th>${head}</tr></thead>
<tbody>
${body}
</tbody>
</table>
${gains.length > 0 ? `<div class="gains"><strong>What distilling bought:</strong><ul>${gains.map((g) => `<li>${codeSpans(g)}</li>`).join('')}</ul></div>` : ''}
${tables}
<ul class="notes">${NOTES.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>
${figures}
${noHistory}
<h2>Settings</h2>
<pre>${esc(JSON.stringify(report.settings, null, 2))}</pre>
</body>
</html>
`;
}
