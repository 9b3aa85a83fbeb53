import { existsSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { RunReport } from '../eval/types.js';

/** Font family the plots ask for; its files ship with Debian's `fonts-dejavu-core`. */
export const PLOT_FONT = 'DejaVu Sans';
const FONT_STACK = `${PLOT_FONT}, Verdana, Arial, sans-serif`;

export interface Plot {
  /** File stem: `plots/<name>.png`. */
  name: string;
  title: string;
  svg: string;
}

const CONFIG = {
  font: FONT_STACK,
  background: 'white',
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 260 },
  header: { labelFontSize: 12, titleFontSize: 12 },
  title: { fontSize: 14, anchor: 'start' as const },
  view: { stroke: '#cccccc' },
};

/** Accuracy vs batch-64 latency, one labelled point per model, with the Pareto front. */
export function tradeoffSpec(report: RunReport): TopLevelSpec {
  const points = report.models.map((m) => ({
    model: m.name,
    role: m.role,
    latency: m.latencyMs.batch64,
    accuracy: m.accuracy * 100,
    label: `${m.name}${m.params !== null ? ` (${compact(m.params)} params)` : ''}`,
  }));
  // Pareto front: no other model is both faster and at least as accurate.
  const front = [...points]
    .sort((a, b) => a.latency - b.latency || b.accuracy - a.accuracy)
    .filter((p, i, all) => all.slice(0, i).every((q) => q.accuracy < p.accuracy));
  const lat = points.map((p) => p.latency);
  const logX = Math.max(...lat) / Math.min(...lat) > 20;
  const acc = points.map((p) => p.accuracy);
  const pad = Math.max(1, (Math.max(...acc) - Math.min(...acc)) * 0.25);
  const x = {
    field: 'latency',
    type: 'quantitative' as const,
    title: 'latency, batch 64 (ms, median)',
    scale: logX ? { type: 'log' as const } : { zero: true, nice: true },
  };
  const y = {
    field: 'accuracy',
    type: 'quantitative' as const,
    title: 'test accuracy (%)',
    scale: { domain: [Math.max(0, Math.min(...acc) - pad), Math.min(100, Math.max(...acc) + pad)], nice: true },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Accuracy vs latency (batch 64, ${report.backend})`,
      subtitle:
        front.length > 1 ? 'dashed: Pareto front (models no other model beats on both latency and accuracy)' : '',
      subtitleFontSize: 11,
      subtitleColor: '#555555',
    },
    width: 520,
    height: 320,
    config: CONFIG,
    layer: [
      { data: { values: front }, mark: { type: 'line', strokeDash: [4, 4], color: '#999999' }, encoding: { x, y } },
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 110, opacity: 1 },
        encoding: {
          x,
          y,
          shape: {
            field: 'role',
            type: 'nominal',
            title: 'role',
            scale: { domain: ['teacher', 'student'], range: ['diamond', 'circle'] },
          },
          color: {
            field: 'role',
            type: 'nominal',
            title: 'role',
            scale: { domain: ['teacher', 'student'], range: ['#d62728', '#1f77b4'] },
          },
        },
      },
      {
        data: { values: points },
        mark: { type: 'text', align: 'left', dx: 9, dy: -7, fontSize: 11 },
        encoding: { x, y, text: { field: 'label' } },
      },
    ],
  } as TopLevelSpec;
}

/** Per-epoch loss terms, one panel per model that has a history. */
export function lossesSpec(report: RunReport): TopLevelSpec | undefined {
  const values = report.models
    .flatMap((m) =>
      (m.history ?? []).flatMap((e) => [
        ...Object.entries(e.losses).map(([term, value]) => ({ model: m.name, epoch: e.epoch, term, value })),
        ...(e.valLoss !== undefined
          ? [{ model: m.name, epoch: e.epoch, term: 'validation loss', value: e.valLoss }]
          : []),
      ]),
    )
    .filter((v) => Number.isFinite(v.value));
  if (values.length === 0) return undefined;
  const panels = new Set(values.map((v) => v.model)).size;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Loss terms per epoch',
    config: CONFIG,
    data: { values },
    columns: Math.min(panels, 3),
    facet: { field: 'model', type: 'nominal', title: null, sort: report.models.map((m) => m.name) },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 260,
      height: 180,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
        y: { field: 'value', type: 'quantitative', title: 'loss', scale: { zero: false } },
        color: { field: 'term', type: 'nominal', title: 'loss term' },
      },
    },
  } as TopLevelSpec;
}

/** Train and validation accuracy per epoch, one line per model and split. */
export function accuracySpec(report: RunReport): TopLevelSpec | undefined {
  const values = report.models.flatMap((m) =>
    (m.history ?? []).flatMap((e) => [
      ...(e.trainAccuracy !== undefined
        ? [{ model: m.name, epoch: e.epoch, split: 'train', accuracy: e.trainAccuracy * 100 }]
        : []),
      ...(e.valAccuracy !== undefined
        ? [{ model: m.name, epoch: e.epoch, split: 'validation', accuracy: e.valAccuracy * 100 }]
        : []),
    ]),
  );
  if (values.length === 0) return undefined;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Accuracy per epoch',
    config: CONFIG,
    width: 520,
    height: 300,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'accuracy', type: 'quantitative', title: 'accuracy (%)', scale: { zero: false } },
      color: { field: 'model', type: 'nominal', title: 'model', sort: report.models.map((m) => m.name) },
      strokeDash: {
        field: 'split',
        type: 'nominal',
        title: 'split',
        scale: {
          domain: ['train', 'validation'],
          range: [
            [1, 0],
            [6, 4],
          ],
        },
        legend: {
          symbolType: 'stroke',
          symbolStrokeWidth: 2,
          symbolSize: 400,
          encode: { symbols: { update: { stroke: { value: '#555555' } } } },
        },
      },
    },
  } as TopLevelSpec;
}

/** vega-lite → vega → SVG string, rendered in Node without a browser or canvas. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The report's plots that have data: `tradeoff`, then `losses` and `accuracy` when histories exist. */
export async function renderPlots({ report }: { report: RunReport }): Promise<Plot[]> {
  const specs: Array<[string, string, TopLevelSpec | undefined]> = [
    ['tradeoff', 'Accuracy vs latency (batch 64)', tradeoffSpec(report)],
    ['losses', 'Loss terms per epoch', lossesSpec(report)],
    ['accuracy', 'Accuracy per epoch', accuracySpec(report)],
  ];
  const plots: Plot[] = [];
  for (const [name, title, spec] of specs) {
    if (spec !== undefined) plots.push({ name, title, svg: await renderSvg(spec) });
  }
  return plots;
}

const DEJAVU = '/usr/share/fonts/truetype/dejavu';

/**
 * PNG of an SVG at `scale`× with resvg. Text uses DejaVu Sans (Debian `fonts-dejavu-core`,
 * loaded directly when present); other system fonts are loaded as fallbacks. On a system
 * without any font the PNG has no text (the SVG still has it).
 */
export function svgToPng({ svg, scale = 2 }: { svg: string; scale?: number }): Uint8Array {
  const fontFiles = existsSync(DEJAVU)
    ? [`${DEJAVU}/DejaVuSans.ttf`, `${DEJAVU}/DejaVuSans-Bold.ttf`].filter(existsSync)
    : [];
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    font: {
      loadSystemFonts: fontFiles.length === 0,
      fontFiles,
      defaultFontFamily: PLOT_FONT,
      sansSerifFamily: PLOT_FONT,
    },
  });
  return resvg.render().asPng();
}

function compact(n: number): string {
  if (n < 1e3) return String(n);
  if (n < 1e6) return `${+(n / 1e3).toFixed(n < 1e4 ? 1 : 0)}k`;
  return `${+(n / 1e6).toFixed(n < 1e7 ? 2 : 1)}M`;
}
