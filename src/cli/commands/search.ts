import { resolve } from 'node:path';
import { renderSearchMarkdown } from '../../search/search-report.js';
import { runSearch } from '../../search/search.js';
import { type ExecutorCliOptions, withTrials } from './trials.js';

export interface SearchCommandOptions extends ExecutorCliOptions {
  set: string[];
  maxParams?: number;
  maxLatencyMs?: number;
  maxLatencyFraction?: number;
  latencyBatch?: number;
  maxBytes?: number;
  dtype?: string;
  trials?: number;
  latencyRuns?: number;
  out?: string;
  resume?: string;
  backend?: string;
  verbose?: boolean;
}

/** `distill search`: see `src/search/search.ts`; prints search.md. */
export async function searchCommand(file: string | undefined, o: SearchCommandOptions): Promise<void> {
  const dir = resolve(o.resume ?? o.out ?? 'runs/search');
  await withTrials(o, dir, async ({ executor, onEvent, signal, done }) => {
    const r = await runSearch({
      file,
      set: o.set,
      maxParams: o.maxParams,
      maxLatencyMs: o.maxLatencyMs,
      maxLatencyFraction: o.maxLatencyFraction,
      latencyBatch: o.latencyBatch as 1 | 64 | undefined,
      maxBytes: o.maxBytes,
      dtype: o.dtype as 'float32' | 'uint8' | undefined,
      trials: o.trials,
      latencyRuns: o.latencyRuns,
      out: o.resume === undefined ? dir : undefined,
      resume: o.resume,
      threads: o.threads,
      backend: o.backend,
      executor,
      onEvent,
      signal,
    });
    done();
    process.stdout.write(renderSearchMarkdown(r));
    process.stderr.write(`wrote ${dir}/search.{json,md,html,png}\n`);
  });
}
