/**
 * Fitting a structure's width to the latency budget. The factory fits each structure to the
 * parameter budget, but a structure can meet the parameter budget at a width whose latency
 * breaks the latency budget (a wide depthwise-separable net has few parameters and many
 * activations). Then its widest feasible grid width may be far narrower than it could be: a
 * bisection on log-width between that width and the narrowest one over the latency budget
 * finds the widest width that meets it, each probe built untrained and timed beside the teacher.
 */
import type { ZooNode } from '../architecture/size-search.js';
import { paramsOf } from '../architecture/size-search.js';
import type * as tf from '@tensorflow/tfjs';
import type { MeasuredModel } from './candidates.js';
import { measureCandidates } from './candidates.js';
import type { SearchCandidate } from './types.js';

export interface LatencyFitOptions {
  candidates: readonly SearchCandidate[];
  teacher: { model: tf.LayersModel; node: ZooNode; derivation: string };
  inputShape: readonly number[];
  numClasses: number;
  runs: number;
  maxLatencyMs: number;
  /** Why a measured probe breaks any budget, else undefined (the search's `overBudget`). */
  overBudget: (m: MeasuredModel) => string | undefined;
  /** Probes per structure. Default 3 (the width interval shrinks 8× on a log scale). */
  steps?: number;
}

const widthOf = (c: SearchCandidate) => c.node.kwargs['width'] as number;
/** The width multiplier a candidate's name carries (`cnn-1block-x0.25` → 0.25; none → 1). */
const multiplierOf = (c: SearchCandidate) => Number(/-x([\d.]+)$/.exec(c.name)?.[1] ?? 1);

/**
 * One new candidate per structure whose widest feasible width is followed, among the grid's
 * widths, by one dropped for its latency alone: the widest probe that meets every budget.
 */
export async function fitToLatency(o: LatencyFitOptions): Promise<MeasuredModel[]> {
  const out: MeasuredModel[] = [];
  const structures = new Set(o.candidates.map((c) => c.structure));
  for (const structure of structures) {
    const own = o.candidates
      .filter((c) => c.structure === structure && typeof c.node.kwargs['width'] === 'number')
      .sort((a, b) => widthOf(a) - widthOf(b));
    const feasible = own.filter((c) => !c.dropped);
    const widest = feasible.at(-1);
    if (!widest) continue;
    const over = own.find((c) => widthOf(c) > widthOf(widest) && c.dropped?.startsWith('latency'));
    if (!over || over.dropped!.includes(',')) continue;
    const base = widthOf(widest) / multiplierOf(widest);
    const structural = widest.derivation.replace(/(, )?width ×.*$/, '');
    let lo = Math.log(widthOf(widest));
    let hi = Math.log(widthOf(over));
    let best: MeasuredModel | undefined;
    for (let i = 0; i < (o.steps ?? 3); i++) {
      const width = Number(Math.exp((lo + hi) / 2).toPrecision(3));
      const m = Number((width / base).toPrecision(3));
      const node = { key: widest.node.key, kwargs: { ...widest.node.kwargs, width } };
      const params = paramsOf(node, { inputShape: o.inputShape, numClasses: o.numClasses });
      // Channels are whole numbers: a probe that builds the same model as an end is done.
      if (params === widest.params || params === over.params) break;
      const [probe] = (
        await measureCandidates({
          teacher: o.teacher,
          candidates: [
            {
              name: `${structure}-x${m}`,
              node,
              derivation: `${structural ? `${structural}, ` : ''}width ×${m} (fit to ${o.maxLatencyMs} ms)`,
              structure,
              params,
            },
          ],
          inputShape: o.inputShape,
          numClasses: o.numClasses,
          runs: o.runs,
        })
      ).candidates;
      if (o.overBudget(probe!)) hi = Math.log(width);
      else {
        lo = Math.log(width);
        best = probe;
      }
    }
    if (best && !o.candidates.some((c) => c.name === best!.name)) out.push(best);
  }
  return out;
}
