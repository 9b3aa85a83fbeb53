export { writeReport, type WriteReportOptions, type WrittenReport } from './write.js';
export { validateReport, runReportSchema } from './validate.js';
export { renderMarkdown, columnTitle } from './markdown.js';
export { renderHtml, inlineSvg } from './html.js';
export {
  renderPlots,
  renderSvg,
  svgToPng,
  tradeoffSpec,
  lossesSpec,
  accuracySpec,
  PLOT_FONT,
  type Plot,
} from './plots.js';
export {
  reportTable,
  distillationGains,
  TABLE_METRICS,
  formatBytes,
  formatMs,
  formatPercent,
  formatRatio,
  type ReportTable,
} from './table.js';
