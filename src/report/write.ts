import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { errorLine, UserError } from '../errors.js';
import type { RunReport } from '../eval/types.js';
import { renderHtml } from './html.js';
import { renderMarkdown } from './markdown.js';
import { renderPlots, svgToPng } from './plots.js';
import { validateReport } from './validate.js';
import { writeFileAtomic } from '../io/atomic.js';

export interface WriteReportOptions {
  /** Folder to write into (created if missing). */
  outDir: string;
  report: RunReport;
}

export interface WrittenReport {
  json: string;
  markdown: string;
  html: string;
  /** `plots/<name>.png` by plot name (`tradeoff`, `losses`, `accuracy`; the last two only with histories). */
  plots: Record<string, string>;
}

/**
 * Validates `report` (a clear UserError names missing fields) and writes into `outDir`:
 * `plots/<name>.png`, `report.json` (the report as given), `report.md` (the table) and
 * `report.html` (table + inline SVG plots, self-contained). Each file is written to a
 * temp file in its folder and renamed into place, so readers never see a partial file.
 */
export async function writeReport({ outDir, report }: WriteReportOptions): Promise<WrittenReport> {
  const valid = validateReport(report);
  const dir = resolve(outDir);
  const plots = await renderPlots({ report: valid });
  const written: WrittenReport = {
    json: join(dir, 'report.json'),
    markdown: join(dir, 'report.md'),
    html: join(dir, 'report.html'),
    plots: {},
  };
  try {
    await mkdir(join(dir, 'plots'), { recursive: true });
    for (const p of plots) {
      const file = join(dir, 'plots', `${p.name}.png`);
      await writeFileAtomic(file, svgToPng({ svg: p.svg }));
      written.plots[p.name] = file;
    }
    await writeFileAtomic(written.json, `${JSON.stringify(valid, null, 2)}\n`);
    await writeFileAtomic(written.markdown, renderMarkdown({ report: valid }));
    await writeFileAtomic(written.html, renderHtml({ report: valid, plots }));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot write the report to ${dir}: ${errorLine(e)}; choose a writable folder`);
  }
  return written;
}
