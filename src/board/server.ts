/**
 * `distill board`: a local web page (127.0.0.1 only) over a runs folder: every run with its
 * state, live per-epoch curves of runs in progress (from their `epochs.jsonl`), links to each
 * seed's report, and a comparison of the runs a user selects (table + accuracy-vs-latency plot).
 * Read-only; files are served only from inside the runs folder.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { UserError } from '../errors.js';
import { compareRows, type CompareRow, formatStat } from '../experiment/compare.js';
import { escapeHtml } from '../report/html.js';
import { renderSvg } from '../report/plots.js';
import { formatBytes, formatInt } from '../report/table.js';
import { BOARD_PAGE } from './page.js';
import { describeRun, findRuns, readEpochs } from './runs.js';

export interface BoardOptions {
  /** The runs folder. */
  dir: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
}

export interface RunningBoard {
  url: string;
  server: Server;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.json': 'application/json',
  '.md': 'text/markdown; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.bin': 'application/octet-stream',
  '.yaml': 'text/plain; charset=utf-8',
  '.jsonl': 'text/plain; charset=utf-8',
};

const esc = escapeHtml;

/** Validation accuracy (and training loss) per epoch, one line per seed · phase/learner. */
export function curveSpec(dir: string): TopLevelSpec {
  const values = readEpochs(dir).flatMap((e) => {
    const series = `seed ${e.seed} · ${e.phase === e.model ? e.phase : `${e.phase}/${e.model}`}`;
    return [
      ...(e.record.valAccuracy !== undefined
        ? [{ series, epoch: e.record.epoch, metric: 'validation accuracy (%)', value: e.record.valAccuracy * 100 }]
        : []),
      { series, epoch: e.record.epoch, metric: 'training loss', value: e.record.losses['loss'] ?? 0 },
    ];
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    background: 'white',
    config: { font: 'DejaVu Sans, Verdana, Arial, sans-serif' },
    data: { values },
    facet: { column: { field: 'metric', type: 'nominal', title: null } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 320,
      height: 200,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1 } },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
        color: { field: 'series', type: 'nominal', title: null },
      },
    },
  } as TopLevelSpec;
}

function compareSpecLatency(rows: CompareRow[]): TopLevelSpec {
  const values = rows.map((r) => ({
    run: r.run,
    model: r.model,
    ms: r.latencyBatch64Ms.mean,
    accuracy: r.accuracy.mean * 100,
  }));
  const x = {
    field: 'ms',
    type: 'quantitative' as const,
    title: 'latency at batch 64 (ms, log)',
    scale: { type: 'log' as const },
  };
  const y = { field: 'accuracy', type: 'quantitative' as const, title: 'test accuracy (%)', scale: { zero: false } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    background: 'white',
    width: 520,
    height: 300,
    config: { font: 'DejaVu Sans, Verdana, Arial, sans-serif' },
    data: { values },
    layer: [
      { mark: { type: 'point', filled: true, size: 90 }, encoding: { x, y, color: { field: 'run', type: 'nominal' } } },
      {
        mark: { type: 'text', align: 'left', dx: 7, dy: -5, fontSize: 10 },
        encoding: { x, y, text: { field: 'model' } },
      },
    ],
  } as TopLevelSpec;
}

function compareHtml(rows: CompareRow[], svg: string): string {
  const pm = formatStat;
  const pct = (v: number) => (v * 100).toFixed(2);
  const head = [
    'run',
    'model',
    'method',
    'seeds',
    'params',
    'float32',
    'accuracy (%)',
    'agreement (%)',
    'latency b64 (ms)',
  ];
  const body = rows
    .map(
      (r) =>
        `<tr><td>${esc(r.run)}</td><td>${esc(r.model)}</td><td>${esc(r.method ?? '')}</td><td>${r.seeds}</td><td>${r.params === null ? '—' : formatInt(r.params)}</td><td>${r.bytesFloat32 === null ? '—' : formatBytes(r.bytesFloat32)}</td><td>${pm(r.accuracy, pct)}</td><td>${pm(r.agreement, pct)}</td><td>${pm(r.latencyBatch64Ms, (v) => v.toFixed(2))}</td></tr>`,
    )
    .join('\n');
  return `<table id="comparison"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${body}</tbody></table>\n<figure>${svg.replace(/^<\?xml[^>]*>\s*/, '')}</figure>`;
}

/** Starts the board; resolves once it listens. */
export function startBoard(o: BoardOptions): Promise<RunningBoard> {
  const root = resolve(o.dir);
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new UserError(`${o.dir} is not a folder; give the folder your runs are in (default runs/)`);
  const runDir = (id: string): string => {
    const dir = resolve(root, id);
    if (!(dir === root || dir.startsWith(root + sep)) || !existsSync(join(dir, 'experiment.yaml')))
      throw new UserError(`no run ${id}`);
    return dir;
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const send = (status: number, type: string, body: string | Buffer) =>
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    void (async () => {
      try {
        if (url.pathname === '/') return send(200, TYPES['.html']!, BOARD_PAGE);
        if (url.pathname === '/api/runs')
          return send(200, TYPES['.json']!, JSON.stringify(findRuns(root).map((d) => describeRun(root, d))));
        const curve = /^\/api\/curve\/(.+)$/.exec(url.pathname);
        if (curve) return send(200, TYPES['.svg']!, await renderSvg(curveSpec(runDir(decodeURIComponent(curve[1]!)))));
        if (url.pathname === '/api/compare') {
          const ids = url.searchParams.getAll('run');
          if (ids.length < 1) return send(400, 'text/plain', 'select runs to compare');
          const rows = compareRows(ids.map(runDir));
          return send(200, TYPES['.html']!, compareHtml(rows, await renderSvg(compareSpecLatency(rows))));
        }
        const file = /^\/files\/(.+)$/.exec(url.pathname);
        if (file) {
          const path = resolve(root, decodeURIComponent(file[1]!));
          if (!path.startsWith(root + sep) || !existsSync(path) || !statSync(path).isFile())
            return send(404, 'text/plain', 'not found');
          return send(200, TYPES[extname(path)] ?? 'application/octet-stream', readFileSync(path));
        }
        send(404, 'text/plain', 'not found');
      } catch (e) {
        send(e instanceof UserError ? 404 : 500, 'text/plain', (e as Error).message);
      }
    })();
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'EADDRINUSE' ? new UserError(`port ${o.port} is in use; choose another with --port`) : e),
    );
    server.listen(o.port ?? 8080, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolvePromise({
        url: `http://127.0.0.1:${port}/`,
        server,
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}
