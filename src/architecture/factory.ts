/**
 * The student factory: candidate students derived from a teacher's structure, sized before any
 * training. The survey's teacher–student architecture section (Gou et al. 2021, "Knowledge
 * Distillation: A Survey") names the usual students: a simplified, structurally compressed
 * teacher — fewer layers and fewer channels per layer — or a small network built from efficient
 * operations. Each derivation here is one of those:
 *
 * - **width ×m** (default m = 0.5, 0.25, 0.125 of the teacher's width): every channel and unit
 *   count scaled; parameters fall ~m² (the input layer and logits ~m). The first thing to try:
 *   same depth, same receptive field, same feature-map names for feature-based KD.
 * - **depth**: cnn — fewer convs per block, fewer blocks; resnet — fewer blocks per stage, fewer
 *   stages; mlp — fewer hidden layers; dwsep — fewer blocks. Cuts latency more than parameters
 *   (each layer is a sequential step); dropping a cnn block can *grow* the dense layer (its input
 *   is less pooled), so such candidates are filtered out as not smaller.
 * - **depthwise-separable** (cnn, resnet → `dwsep`, the teacher's filter progression): every 3×3
 *   conv after the stem becomes a 3×3 depthwise + 1×1 pointwise conv, ~1/9 + 1/filters of the
 *   cost (MobileNet, Howard et al. 2017), and global pooling replaces the dense layer. Helps most
 *   when the convs, not the dense layer, dominate the time.
 * - **MLP from CNN** (cnn → `mlp`, one hidden layer of the CNN's dense width): no convolutions at
 *   all; the fastest at batch 1 on small images, at the cost of translation invariance.
 * - **fit to the budget** (with `paramsMax`): every derivation above the budget (the teacher
 *   included) again, its width set by `widthForParams` (size-search.ts) to just under it.
 *
 * With `grid: true` the derivations combine (what a student search wants): every family (the
 * teacher's, depthwise-separable, MLP) × every depth (fewer layers along each depth dimension,
 * and both at once) × every width multiplier, then each structure fitted to the budget — widened
 * when it is under it (a depthwise-separable net at the teacher's width is often far below).
 */
import type * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { countParams } from '../models/common.js';
import { models } from '../models/zoo.js';
import { parseOptions } from '../options.js';
import { type Derived, gridStructures, structuralDerivations } from './derivations.js';
import { zooEquivalent } from './from-layers.js';
import { paramsOf, type SizeContext, widthForParams, type ZooNode } from './size-search.js';

export interface StudentCandidate {
  /** A short name, usable as a student's `name` in an experiment, e.g. `cnn-x0.25`, `dwsep`. */
  name: string;
  /** The zoo node: the teacher's kwargs with the derivation's changes (validated, and it builds). */
  node: ZooNode;
  /** What was changed, e.g. `width ×0.25`, `1 conv per block`, `depthwise-separable`, `MLP from CNN`. */
  derivation: string;
  /** The name of its structure regardless of width, e.g. `cnn-1conv` for `cnn-1conv-x0.25`. */
  structure: string;
  /** All parameters (`countParams`) of the node built for the teacher's input shape and classes. */
  params: number;
}

export interface DeriveStudentsOptions {
  /** A zoo node `{ key, kwargs }`, or any LayersModel (read as its zoo equivalent: `zooEquivalent`). */
  teacher: ZooNode | tf.LayersModel;
  /** One example's shape, e.g. `[28, 28, 1]`. Required for a zoo node; a LayersModel's own by default. */
  inputShape?: readonly number[];
  /** Classes. Required for a zoo node; a LayersModel's own by default. */
  numClasses?: number;
  /** Keep only candidates with at most this many parameters (and add width-fitted ones just under it). */
  paramsMax?: number;
  /** Width multipliers relative to the teacher's width, each in (0, 1). Default `DEFAULT_WIDTHS`, with `grid` `GRID_WIDTHS`. */
  widths?: number[];
  /** Every family × depth × width combination, not one change at a time. Default false. */
  grid?: boolean;
}

export const DEFAULT_WIDTHS = [0.5, 0.25, 0.125] as const;
/** The widths of `grid` (a student search's): finer steps, down to 1/16 of the teacher's. */
export const GRID_WIDTHS = [0.5, 0.375, 0.25, 0.1875, 0.125, 0.0625] as const;

type Kwargs = Record<string, unknown>;

/**
 * Candidate students of `teacher` (see the derivations above), each validated by its zoo schema
 * and built once to count its parameters; candidates that do not build, are not smaller than the
 * teacher or exceed `paramsMax` are left out, duplicates (same node) kept once. Sorted by
 * parameters, smallest first. Nothing is trained: what they are worth is for a distillation run
 * to tell; their size and latency can be measured now (`distill students`).
 */
export function deriveStudents(options: DeriveStudentsOptions): StudentCandidate[] {
  const { paramsMax, widths = [...(options.grid ? GRID_WIDTHS : DEFAULT_WIDTHS)] } = options;
  if (paramsMax !== undefined && !(paramsMax > 0)) {
    throw new UserError(`paramsMax must be a positive number, got ${paramsMax}; pass e.g. 200000`);
  }
  const badWidth = widths.find((w) => !(w > 0 && w < 1));
  if (badWidth !== undefined) {
    throw new UserError(`width multipliers must be in (0, 1), got ${badWidth}; pass e.g. [0.5, 0.25]`);
  }
  const { teacher, parsed, context, teacherParams } = resolveTeacher(options);
  const base: Derived = { name: teacher.key, node: teacher, derivation: '', structure: teacher.key };
  const structures = options.grid
    ? [base, ...gridStructures(teacher.key, teacher.kwargs, parsed)]
    : [base, ...structuralDerivations(teacher.key, teacher.kwargs, parsed, false)];
  const derived: Derived[] = options.grid
    ? structures.flatMap((s) => [...(s === base ? [] : [s]), ...widths.map((m) => narrowed(s, m))])
    : [...widths.map((m) => narrowed(base, m)), ...structures.slice(1)];
  const out = new Map<string, StudentCandidate>();
  const keep = (d: Derived, params: number) => {
    const id = identity(d.node, params);
    if (params < teacherParams && (paramsMax === undefined || params <= paramsMax) && !out.has(id)) {
      out.set(id, { ...d, params });
    }
  };
  for (const d of derived) {
    const params = tryParams(d.node, context);
    if (params !== undefined) keep(d, params);
  }
  if (paramsMax !== undefined) {
    for (const d of structures) {
      const params = tryParams(d.node, context);
      // One change at a time only narrows; the grid also widens a structure that is under the budget.
      if (params === undefined || (params <= paramsMax && !options.grid)) continue;
      const fitted = fitWidth(d.node, paramsMax, context);
      if (!fitted) continue;
      const m = round((fitted.node.kwargs.width as number) / widthOf(d.node), 3);
      const label = `width ×${m} (fit to ${paramsMax.toLocaleString('en-US')} params)`;
      keep(
        {
          name: `${d.name}-x${m}`,
          node: fitted.node,
          derivation: d.derivation ? `${d.derivation}, ${label}` : label,
          structure: d.structure,
        },
        fitted.params,
      );
    }
  }
  return [...out.values()].sort((a, b) => a.params - b.params || a.name.localeCompare(b.name));
}

/** `d` with its width multiplied by `m`. */
function narrowed(d: Derived, m: number): Derived {
  return {
    name: `${d.name}-x${m}`,
    node: { key: d.node.key, kwargs: { ...d.node.kwargs, width: round(widthOf(d.node) * m, 4) } },
    derivation: d.derivation ? `${d.derivation}, width ×${m}` : `width ×${m}`,
    structure: d.structure,
  };
}

/** The node's width multiplier (its schema's default when not given). */
function widthOf(node: ZooNode): number {
  return models.get(node.key).kwargs.parse(node.kwargs).width as number;
}

/** The teacher as a validated zoo node, the size context and its own parameter count. */
function resolveTeacher(o: DeriveStudentsOptions): {
  teacher: ZooNode;
  parsed: Kwargs;
  context: SizeContext;
  teacherParams: number;
} {
  const t = o.teacher as unknown;
  if (isLayersModel(t)) {
    const eq = zooEquivalent({ model: t });
    const inputShape = o.inputShape ?? eq.inputShape;
    const numClasses = o.numClasses ?? eq.numClasses;
    if (inputShape.join(',') !== eq.inputShape.join(',') || numClasses !== eq.numClasses) {
      throw new UserError(
        `teacher model takes [${eq.inputShape.join(',')}] → ${eq.numClasses} classes, not [${inputShape.join(',')}] → ${numClasses}; leave inputShape and numClasses out to use the model's`,
      );
    }
    const parsed = parseOptions(`teacher \`${eq.node.key}\``, models.get(eq.node.key).kwargs, eq.node.kwargs);
    return { teacher: eq.node, parsed, context: { inputShape, numClasses }, teacherParams: countParams(t) };
  }
  if (t === null || typeof t !== 'object' || typeof (t as { key?: unknown }).key !== 'string') {
    throw new UserError(
      `teacher must be a zoo node { key, kwargs } (key one of ${models.keys().join(', ')}) or a tf.LayersModel, got ${typeof t === 'object' ? JSON.stringify(t) : String(t)}`,
    );
  }
  const node = t as ZooNode;
  const parsed = parseOptions(`teacher \`${node.key}\``, models.get(node.key).kwargs, node.kwargs ?? {});
  if (o.inputShape === undefined || o.numClasses === undefined) {
    throw new UserError(
      `a zoo teacher (\`${node.key}\`) needs inputShape and numClasses; pass e.g. inputShape: [28, 28, 1], numClasses: 10`,
    );
  }
  const teacher = { key: node.key, kwargs: { ...(node.kwargs ?? {}) } };
  const context = { inputShape: o.inputShape, numClasses: o.numClasses };
  return { teacher, parsed, context, teacherParams: paramsOf(teacher, context) };
}

function isLayersModel(t: unknown): t is tf.LayersModel {
  return (
    t !== null &&
    typeof t === 'object' &&
    Array.isArray((t as tf.LayersModel).layers) &&
    typeof (t as tf.LayersModel).predict === 'function'
  );
}

/** Parameters of `node`, or undefined when its kwargs fail the schema or it does not build. */
function tryParams(node: ZooNode, context: SizeContext): number | undefined {
  const entry = models.has(node.key) ? models.get(node.key) : undefined;
  if (!entry?.kwargs.safeParse(node.kwargs).success) return undefined;
  try {
    return paramsOf(node, context);
  } catch {
    return undefined;
  }
}

/** `node` at the width whose parameter count is closest to `paramsMax` without exceeding it. */
function fitWidth(
  node: ZooNode,
  paramsMax: number,
  context: SizeContext,
): { node: ZooNode; params: number } | undefined {
  let fit: { node: ZooNode; params: number } | undefined;
  try {
    fit = widthForParams(node, paramsMax, context);
  } catch {
    return undefined;
  }
  // Widths round to whole channels, so the closest count may be just above the budget: step down 1 %.
  for (let i = 0; i < 50 && fit.params > paramsMax; i++) {
    const width = round((fit.node.kwargs.width as number) * 0.99, 3);
    const next = { key: node.key, kwargs: { ...node.kwargs, width } };
    const params = tryParams(next, context);
    if (params === undefined) return undefined;
    fit = { node: next, params };
  }
  return fit.params <= paramsMax ? fit : undefined;
}

/** `x` to `digits` significant digits, as a number. */
function round(x: number, digits: number): number {
  return Number(x.toPrecision(digits));
}

/**
 * Two nodes are the same student when their validated kwargs (defaults filled in) other than the
 * width are equal and they have as many parameters: widths that round to the same channels.
 */
function identity(node: ZooNode, params: number): string {
  const { width: _, ...rest } = models.get(node.key).kwargs.parse(node.kwargs);
  return `${node.key}:${params}:${canonical(rest)}`;
}

/** JSON with object keys sorted at every level. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
