/**
 * `distill search`: the most accurate student under a size / latency budget, searched with the
 * teacher's guidance (the seed's closing "adaptive teacher–student architecture"; the product
 * form follows Once-for-All's accuracy-vs-latency fronts and NNI's trial tables).
 *
 * 1. Candidates from the student factory (`deriveStudents` with `grid`: families × depths ×
 *    widths, each structure also fitted to the parameter budget), measured untrained beside the
 *    teacher on this backend (`measureCandidates`); those over any budget (params, latency at the
 *    chosen batch, bytes as float32 or uint8) are dropped before training. A structure whose
 *    widest feasible width is next to one over the latency budget gets its width bisected to that
 *    budget (`fitToLatency`). At most `--trials` enter training, spread over families and depths.
 * 2. Successive halving (Jamieson & Talwalkar 2016; η = 2): every candidate trains briefly with
 *    the experiment's knowledge terms; the better half (by validation accuracy — the test set
 *    never chooses) trains again with twice the epochs, until two finalists remain. They train
 *    with the experiment's full epochs and seeds, each beside its label-only baseline.
 * 3. The chosen student is the finalist with the best validation accuracy; its verdict is its test
 *    accuracy against its label-only baseline's. The Pareto front (validation accuracy vs latency
 *    vs params) is drawn over every trained candidate, each at the most epochs it reached.
 *
 * Every training is a trial (`src/trials/`), so a search runs on the local executor or on BullMQ
 * workers alike, and resumes (`--resume DIR`) from the trials that finished.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { deriveStudents } from '../architecture/factory.js';
import type { ZooNode } from '../architecture/size-search.js';
import { useBestBackend } from '../backend/index.js';
import type { ExperimentConfig } from '../config/experiment.js';
import { dataSources } from '../data/sources.js';
import { UserError } from '../errors.js';
import { loadExperiment } from '../experiment/load.js';
import { loadLayersModelFile, registerFileRouters } from '../io/file-handler.js';
import { writeFileAtomic } from '../io/atomic.js';
import { lockFolder } from '../io/folder-lock.js';
import { buildModel } from '../models/zoo.js';
import type { Executor, ExecutorRunOptions, TrialModel, TrialResult, TrialSpec } from '../trials/types.js';
import { type MeasuredModel, measureCandidates } from './candidates.js';
import { fitToLatency } from './latency-fit.js';
import { writeSearchReport } from './search-report.js';
import type { SearchBudget, SearchCandidate, SearchChosen, SearchResult, SearchRung } from './types.js';
import { displayPath, insideShared, runTrials, trialExperiment } from './trials.js';

export interface SearchOptions extends Partial<SearchBudget> {
  file?: string;
  text?: string;
  set?: string[];
  out?: string;
  resume?: string;
  /** At most this many candidates enter the first rung (the largest of each family first). Default 8. */
  trials?: number;
  threads?: number;
  backend?: string;
  /** Timed passes per batch size when measuring candidates. Default 20. */
  latencyRuns?: number;
  executor: Executor;
  onEvent?: ExecutorRunOptions['onEvent'];
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** What `--resume` needs: everything measured and decided before the first trial. */
interface SearchPlan {
  file: string;
  set: string[];
  budget: SearchResult['budget'];
  backend: string;
  teacher: SearchResult['teacher'];
  candidates: SearchCandidate[];
  threads: number;
  trialBackend?: string;
  epochs: number;
  seeds: number[];
  name: string;
}

const PLAN = 'search-plan.json';

function family(node: ZooNode): string {
  return node.key;
}

/** The budget each candidate breaks, or undefined. */
function overBudget(c: MeasuredModel, b: SearchBudget): string | undefined {
  const over: string[] = [];
  if (b.maxParams !== undefined && c.params > b.maxParams) over.push(`params ${c.params} > ${b.maxParams}`);
  const ms = b.latencyBatch === 1 ? c.latencyMs.batch1 : c.latencyMs.batch64;
  if (b.maxLatencyMs !== undefined && ms > b.maxLatencyMs)
    over.push(`latency ${ms.toFixed(3)} ms > ${b.maxLatencyMs} ms at batch ${b.latencyBatch}`);
  if (b.maxBytes !== undefined && c.bytes[b.dtype] > b.maxBytes)
    over.push(`${b.dtype} bytes ${c.bytes[b.dtype]} > ${b.maxBytes}`);
  return over.length > 0 ? over.join(', ') : undefined;
}

/**
 * Up to `k` of the feasible candidates, spread over the grid: round-robin over families and,
 * within a family, over its structures (depths), each time the largest remaining of that
 * structure — the widest that fits is the one most likely to be the most accurate of its shape.
 */
export function pickCandidates<C extends { node: ZooNode; params: number; structure: string }>(
  feasible: readonly C[],
  k: number,
): C[] {
  const families = new Map<string, Map<string, C[]>>();
  for (const c of [...feasible].sort((a, b) => b.params - a.params)) {
    const structures = families.get(family(c.node)) ?? new Map<string, C[]>();
    families.set(family(c.node), structures.set(c.structure, [...(structures.get(c.structure) ?? []), c]));
  }
  // Each family's candidates in the order its structures take turns.
  const queues = [...families.values()].map((structures) => {
    const lists = [...structures.values()];
    const order: C[] = [];
    for (let i = 0; order.length < lists.reduce((n, l) => n + l.length, 0); i++)
      for (const l of lists) if (l[i]) order.push(l[i]!);
    return order;
  });
  const out: C[] = [];
  for (let round = 0; out.length < k && out.length < feasible.length; round++)
    for (const q of queues) if (q[round] && out.length < k) out.push(q[round]!);
  return out;
}

/** Epochs of each halving rung before the finalists (η = 2): n candidates → ⌈log2(n/2)⌉ rungs, ending at E/2. */
export function rungEpochs(n: number, epochs: number): number[] {
  const rungs = n > 2 ? Math.ceil(Math.log2(n / 2)) : 0;
  return Array.from({ length: rungs }, (_, j) => Math.max(1, Math.round(epochs / 2 ** (rungs - j))));
}

/** Best first: validation accuracy, then (a tie) the lower latency at the budget's batch size, then fewer params. */
function rank(batch: 1 | 64): (a: SearchCandidate, b: SearchCandidate) => number {
  const ms = (c: SearchCandidate) => (batch === 1 ? c.latencyMs.batch1 : c.latencyMs.batch64);
  return (a, b) => (b.valAccuracy ?? 0) - (a.valAccuracy ?? 0) || ms(a) - ms(b) || a.params - b.params;
}

/** Whether rung `j` trains at all: a rung with the epochs of the one before would repeat its trainings exactly. */
function trainsAgain(plan: readonly number[], j: number): boolean {
  return j === 0 || plan[j]! > plan[j - 1]!;
}

/** Not dominated: no other point is at least as good on all three and better on one. */
export function paretoFront<P extends { acc: number; ms: number; params: number }>(points: readonly P[]): Set<P> {
  const dominates = (a: P, b: P) =>
    a.acc >= b.acc && a.ms <= b.ms && a.params <= b.params && (a.acc > b.acc || a.ms < b.ms || a.params < b.params);
  return new Set(points.filter((p) => !points.some((q) => q !== p && dominates(q, p))));
}

async function teacherForMeasuring(config: ExperimentConfig, shape: { inputShape: number[]; numClasses: number }) {
  const t = config.teacher;
  if (t.key === 'train') {
    const node = t.kwargs['model'] as ZooNode;
    return {
      node,
      model: buildModel({ ...node, ...shape, seed: 0, name: 'teacher' }),
      derivation: `zoo \`${node.key}\``,
    };
  }
  if (t.key === 'file' && /\.json$|[/\\]$/.test(String(t.kwargs['path'])) === true) {
    registerFileRouters();
    const model = await loadLayersModelFile(String(t.kwargs['path']));
    return { node: undefined, model, derivation: String(t.kwargs['path']) };
  }
  throw new UserError(
    `the search derives students from the teacher's layers and times it; teacher \`${t.key}\` must be a train teacher or a file teacher with a TF.js model.json`,
  );
}

async function makePlan(o: SearchOptions): Promise<SearchPlan> {
  if (o.file === undefined)
    throw new UserError('give an experiment file: distill search EXPERIMENT.yaml --max-params N');
  const budget: SearchBudget = {
    latencyBatch: o.latencyBatch ?? 64,
    dtype: o.dtype ?? 'float32',
    ...(o.maxParams !== undefined && { maxParams: o.maxParams }),
    ...(o.maxLatencyMs !== undefined && { maxLatencyMs: o.maxLatencyMs }),
    ...(o.maxLatencyFraction !== undefined && { maxLatencyFraction: o.maxLatencyFraction }),
    ...(o.maxBytes !== undefined && { maxBytes: o.maxBytes }),
  };
  for (const [flag, v] of [
    ['--max-params', budget.maxParams],
    ['--max-latency-ms', budget.maxLatencyMs],
    ['--max-latency-fraction', budget.maxLatencyFraction],
    ['--max-bytes', budget.maxBytes],
  ] as const)
    if (v !== undefined && !(v > 0)) throw new UserError(`${flag} must be a positive number (got ${v})`);
  if (
    budget.maxParams === undefined &&
    budget.maxLatencyMs === undefined &&
    budget.maxLatencyFraction === undefined &&
    budget.maxBytes === undefined
  )
    throw new UserError(
      'give a budget: --max-params N, --max-latency-ms X, --max-latency-fraction F or --max-bytes B (any of them)',
    );
  if (![1, 64].includes(budget.latencyBatch))
    throw new UserError(`--latency-batch must be 1 or 64 (got ${budget.latencyBatch})`);
  if (!['float32', 'uint8'].includes(budget.dtype))
    throw new UserError(`--dtype must be float32 or uint8 (got ${budget.dtype})`);
  const trials = o.trials ?? 8;
  if (!Number.isInteger(trials) || trials < 1)
    throw new UserError(`--trials must be a whole number >= 1 (got ${trials})`);
  const { config } = loadExperiment({ path: o.file, text: o.text, set: o.set });
  const backend = await useBestBackend({
    backend: o.backend ?? (config.backend === 'auto' ? undefined : config.backend),
  });
  const data = dataSources.get(config.data.key).load(config.data.kwargs as never);
  if (!data.validation || data.validation.size === 0)
    throw new UserError(
      'the search ranks candidates on validation data, never on the test set; set data.kwargs.validationFraction (e.g. 0.1)',
    );
  const shape = { inputShape: [...data.train.sampleShape], numClasses: data.train.numClasses };
  const teacher = await teacherForMeasuring(config, shape);
  try {
    const derived = deriveStudents({
      teacher: teacher.node ?? teacher.model,
      ...(teacher.node && shape),
      ...(budget.maxParams !== undefined && { paramsMax: budget.maxParams }),
      grid: true,
    });
    if (derived.length === 0)
      throw new UserError(`no student candidate fits in ${budget.maxParams} params; raise --max-params`);
    const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    log(`search: measuring the teacher and ${derived.length} untrained candidates on ${backend.name}`);
    const teacherToMeasure = {
      model: teacher.model,
      node: teacher.node ?? { key: 'file', kwargs: {} },
      derivation: teacher.derivation,
    };
    const measured = await measureCandidates({
      teacher: teacherToMeasure,
      candidates: derived,
      ...shape,
      runs: o.latencyRuns ?? 20,
    });
    if (budget.maxLatencyFraction !== undefined) {
      // The fraction of the teacher's latency, as measured in this very run beside the candidates.
      const t = measured.teacher.latencyMs[budget.latencyBatch === 1 ? 'batch1' : 'batch64'];
      const ms = Number((budget.maxLatencyFraction * t).toPrecision(3));
      budget.maxLatencyMs = Math.min(budget.maxLatencyMs ?? ms, ms);
      log(
        `search: latency budget ${budget.maxLatencyMs} ms (${budget.maxLatencyFraction} × the teacher's ${t.toFixed(3)} ms)`,
      );
    }
    const toCandidate = (m: MeasuredModel): SearchCandidate => {
      const dropped = overBudget(m, budget);
      return {
        name: m.name,
        family: family(m.node),
        structure: m.structure,
        derivation: m.derivation,
        node: m.node,
        params: m.params,
        bytes: { float32: m.bytes.float32, uint8: m.bytes.uint8 },
        latencyMs: m.latencyMs,
        ...(dropped && { dropped }),
        accuracy: null,
        valAccuracy: null,
        epochs: 0,
        onFront: false,
      };
    };
    const candidates = measured.candidates.map(toCandidate);
    if (budget.maxLatencyMs !== undefined) {
      const fitted = await fitToLatency({
        candidates,
        teacher: teacherToMeasure,
        ...shape,
        runs: o.latencyRuns ?? 20,
        maxLatencyMs: budget.maxLatencyMs,
        overBudget: (m) => overBudget(m, budget),
      });
      if (fitted.length > 0)
        log(
          `search: fitted to ${budget.maxLatencyMs} ms: ${fitted.map((m) => `${m.name} (${m.params} params)`).join(', ')}`,
        );
      candidates.push(...fitted.map(toCandidate));
      candidates.sort((a, b) => a.params - b.params || a.name.localeCompare(b.name));
    }
    const feasible = candidates.filter((c) => !c.dropped);
    if (feasible.length === 0) {
      const fastest = [...candidates].sort((a, b) => a.latencyMs.batch64 - b.latencyMs.batch64)[0]!;
      throw new UserError(
        `no candidate meets the budget (the fastest, ${fastest.name}: ${fastest.dropped}); loosen --max-latency-ms / --max-latency-fraction / --max-params / --max-bytes`,
      );
    }
    const picked = new Set(pickCandidates(feasible, trials).map((c) => c.name));
    for (const c of feasible) if (!picked.has(c.name)) c.dropped = `not among the --trials ${trials} picked`;
    const t = measured.teacher;
    return {
      file: resolve(o.file),
      set: o.set ?? [],
      budget: { ...budget, teacherLatencyMs: t.latencyMs },
      backend: backend.name,
      teacher: { params: t.params, bytes: { float32: t.bytes.float32, uint8: t.bytes.uint8 }, latencyMs: t.latencyMs },
      candidates,
      threads: o.threads ?? 1,
      ...(o.backend !== undefined && { trialBackend: o.backend }),
      epochs: config.epochs,
      seeds: config.seeds,
      name: config.name,
    };
  } finally {
    teacher.model.dispose();
  }
}

/** The distilled student's and its baseline's rows of a trial. */
function studentRows(r: TrialResult): { kd: TrialModel; labels?: TrialModel } {
  const students = r.models.filter((m) => m.role === 'student');
  const kd = students.find((m) => !m.baseline);
  if (!kd) throw new Error(`trial ${r.id} has no distilled student`);
  const labels = students.find((m) => m.baseline);
  return { kd, ...(labels && { labels }) };
}

/** Runs (or resumes) a search; writes search.json, search.md, search.html and the plot in the search folder. */
export async function runSearch(o: SearchOptions): Promise<SearchResult> {
  const started = performance.now();
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let dir: string;
  let plan: SearchPlan;
  if (o.resume !== undefined) {
    dir = resolve(o.resume);
    if (!existsSync(join(dir, PLAN))) throw new UserError(`${o.resume} is not a search folder (no ${PLAN})`);
    if (o.file !== undefined) throw new UserError('--resume continues a search as planned; drop the experiment file');
    plan = JSON.parse(readFileSync(join(dir, PLAN), 'utf8')) as SearchPlan;
  } else {
    dir = resolve(o.out ?? 'runs/search');
    if (existsSync(join(dir, PLAN)))
      throw new UserError(`${o.out ?? dir} already holds a search; continue it with --resume, or choose another --out`);
    plan = await makePlan(o);
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(join(dir, PLAN), `${JSON.stringify(plan, null, 2)}\n`);
  }
  const release = lockFolder(dir, 'distill search');
  try {
    const shared = o.executor.shared;
    const byName = new Map(plan.candidates.map((c) => [c.name, { ...c }]));
    const spec = (c: SearchCandidate, id: string, overrides: string[]): TrialSpec => {
      const { yaml } = trialExperiment(
        { file: plan.file, set: plan.set },
        [`students=${JSON.stringify([{ name: c.name, model: c.node }])}`, ...overrides],
        shared,
      );
      return {
        id,
        experiment: yaml,
        dir: insideShared(shared, join(dir, 'trials', id), 'the search folder'),
        threads: plan.threads,
        ...(plan.trialBackend !== undefined && { backend: plan.trialBackend }),
      };
    };
    // The first rung's first trial runs alone when the experiment trains its teacher (it caches it for the rest).
    const trainsTeacher = loadExperiment({ path: plan.file, set: plan.set }).config.teacher.key === 'train';
    const trials: SearchResult['trials'] = [];
    const run = async (specs: TrialSpec[], first: boolean) => {
      const results = await runTrials(o.executor, specs, {
        onEvent: o.onEvent,
        signal: o.signal,
        teacherFirst: first && trainsTeacher,
        resume: `distill search --resume ${displayPath(dir)}`,
      });
      trials.push(...results.map(({ id, worker, seconds, resumed }) => ({ id, worker, seconds, resumed })));
      return results;
    };
    let alive = plan.candidates.filter((c) => !c.dropped).map((c) => byName.get(c.name)!);
    const rungs: SearchRung[] = [];
    const epochsPlan = rungEpochs(alive.length, plan.epochs);
    log(
      `search: ${alive.length} candidates on ${o.executor.describe}; rungs of ${[...epochsPlan, plan.epochs].join(', ')} epochs; folder ${dir}`,
    );
    for (const [j, epochs] of epochsPlan.entries()) {
      const specs = alive.map((c) =>
        spec(c, `r${j}-${c.name}`, [`epochs=${epochs}`, 'baseline=false', `seeds=[${plan.seeds[0]}]`]),
      );
      if (trainsAgain(epochsPlan, j)) {
        const results = await run(specs, j === 0);
        results.forEach((r, i) => {
          const { kd } = studentRows(r);
          Object.assign(alive[i]!, { accuracy: kd.accuracy, valAccuracy: kd.valAccuracy, epochs });
        });
      }
      const ranked = [...alive].sort(rank(plan.budget.latencyBatch));
      const kept = ranked.slice(0, Math.max(2, Math.ceil(alive.length / 2)));
      rungs.push({ epochs, candidates: alive.map((c) => c.name), kept: kept.map((c) => c.name) });
      log(
        `search: rung ${j + 1} (${epochs} epoch${epochs === 1 ? '' : 's'}): ${ranked.map((c) => `${c.name} ${((c.valAccuracy ?? 0) * 100).toFixed(2)}%`).join(', ')}; on: ${kept.map((c) => c.name).join(', ')}`,
      );
      alive = kept;
    }
    // The finalists: full epochs and seeds, each beside its label-only baseline.
    const finals = await run(
      alive.map((c) => spec(c, `final-${c.name}`, ['baseline=true'])),
      epochsPlan.length === 0,
    );
    const finalRows = finals.map((r) => studentRows(r));
    finals.forEach((_, i) =>
      Object.assign(alive[i]!, {
        accuracy: finalRows[i]!.kd.accuracy,
        valAccuracy: finalRows[i]!.kd.valAccuracy,
        epochs: plan.epochs,
      }),
    );
    rungs.push({ epochs: plan.epochs, candidates: alive.map((c) => c.name), kept: [] });
    const best = [...alive].sort(rank(plan.budget.latencyBatch))[0]!;
    const bi = alive.indexOf(best);
    rungs[rungs.length - 1]!.kept = [best.name];
    const { kd, labels } = finalRows[bi]!;
    if (!labels) throw new Error('the final trial has no label-only baseline');
    const gain = kd.accuracy - labels.accuracy;
    const name = (kd.method ?? 'distillation').split(/[:(]/)[0]!.trim();
    const chosen: SearchChosen = {
      name: best.name,
      node: best.node,
      accuracy: kd.accuracy,
      baselineAccuracy: labels.accuracy,
      gain,
      verdict:
        gain === 0
          ? `${name} made no difference against the labels alone`
          : `${name} ${gain > 0 ? 'gained' : 'cost'} ${(Math.abs(gain) * 100).toFixed(2)} pts ${gain > 0 ? 'over' : 'against'} training ${best.name} on the labels alone (test, mean of ${plan.seeds.length} seed${plan.seeds.length === 1 ? '' : 's'})`,
      params: best.params,
      latencyMs: best.latencyMs,
      dir: finals[bi]!.dir,
    };
    const all = [...byName.values()];
    const trained = all.filter((c) => c.valAccuracy !== null);
    const ms = (c: SearchCandidate) => (plan.budget.latencyBatch === 1 ? c.latencyMs.batch1 : c.latencyMs.batch64);
    const points = trained.map((c) => ({ c, acc: c.valAccuracy!, ms: ms(c), params: c.params }));
    const front = paretoFront(points);
    for (const p of points) p.c.onFront = front.has(p);
    const result: SearchResult = {
      name: plan.name,
      createdAt: new Date().toISOString(),
      backend: plan.backend,
      executor: o.executor.describe,
      budget: plan.budget,
      teacher: plan.teacher,
      epochs: plan.epochs,
      seeds: plan.seeds,
      candidates: all,
      rungs,
      chosen,
      trials,
      seconds: (performance.now() - started) / 1000,
    };
    await writeSearchReport(dir, result);
    return result;
  } finally {
    release();
  }
}
