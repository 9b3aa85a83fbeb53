/**
 * Training checkpoints: everything a run needs to continue exactly where it stopped —
 * every learner's weights (trainable and not, e.g. BatchNorm statistics), the knowledge
 * terms' own variables (adapters), the optimizer's state, the random stream's state, the
 * history and the epoch — in ONE file, written atomically (temp file in the same folder,
 * fsync, rename), so a reader sees the previous checkpoint or the new one, never a mix.
 *
 * File layout: `DSTLCKP1` · uint32 LE header length · header (JSON) · tensor bytes. The
 * header lists each tensor (group, name, dtype, shape, byte offset) and the body's sha256.
 *
 * With the same seed, data and backend, `train` continued from a checkpoint (its rng from
 * `rngState`, `initialEpoch: epoch`) ends with exactly the weights of an uninterrupted run
 * on the deterministic backends (cpu, wasm).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { RngState } from '../data/rng.js';
import { errorLine, UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { z } from 'zod';
import type { EpochRecord, Learner } from './types.js';

const MAGIC = 'DSTLCKP1';

/** A tensor's values, detached from any backend. */
export interface SavedTensor {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  values: Float32Array | Int32Array;
}

export interface TrainingCheckpoint {
  /** Epochs completed. */
  epoch: number;
  /** Epochs planned: the checkpoint is complete when `epoch === epochs`. */
  epochs: number;
  /** The random stream at the end of `epoch` (shuffle, augmentation, dropout of the next). */
  rngState: RngState;
  /** Per learner name: its epoch records so far. */
  history: Record<string, EpochRecord[]>;
  /** Training seconds so far. */
  seconds: number;
  /** Per learner name: `model.weights` in order. */
  models: Record<string, SavedTensor[]>;
  /** Per learner name, per term (config order): the term's variables (trainable, then `stateVariables()`). */
  terms: Record<string, SavedTensor[][]>;
  /** `optimizer.getWeights()` plus internal accumulators `setWeights` would only approximate. */
  optimizer: { weights: SavedTensor[]; extra: Record<string, SavedTensor> };
  /** Anything else the caller wants back (JSON). */
  meta?: Record<string, unknown>;
}

/**
 * A term's variables as a checkpoint keeps them: its trainable ones (adapters, heads), then
 * any state it lists in an optional `stateVariables()` (e.g. memory banks updated by momentum).
 */
function termVariables(term: Learner['terms'][number]['term']): tf.Variable[] {
  const state = term.stateVariables?.() ?? [];
  return [...term.trainableVariables(), ...state];
}

function save(name: string, t: tf.Tensor): SavedTensor {
  if (t.dtype !== 'float32' && t.dtype !== 'int32') throw new Error(`checkpoint: tensor ${name} has dtype ${t.dtype}`);
  const values = t.dataSync() as Float32Array | Int32Array;
  return { name, dtype: t.dtype, shape: [...t.shape], values: values.slice() };
}

const toTensor = (s: SavedTensor) => tf.tensor(s.values.slice(), s.shape, s.dtype);

/**
 * Adam keeps β₁ᵗ and β₂ᵗ as running products; its `setWeights` recomputes them with `pow`,
 * which differs in the last float32 bits. Saving them keeps a resumed run exact.
 */
const OPTIMIZER_EXTRAS = ['accBeta1', 'accBeta2'] as const;

export interface CaptureOptions {
  learners: readonly Learner[];
  optimizer: tf.Optimizer;
  rngState: RngState;
  epoch: number;
  epochs: number;
  history: Record<string, EpochRecord[]>;
  seconds: number;
  meta?: Record<string, unknown>;
}

/** Reads the whole training state into memory (call between steps, e.g. in `onEpochEnd`). */
export async function captureCheckpoint(o: CaptureOptions): Promise<TrainingCheckpoint> {
  const models: Record<string, SavedTensor[]> = {};
  const terms: Record<string, SavedTensor[][]> = {};
  for (const l of o.learners) {
    models[l.name] = l.model.weights.map((w) => save(w.originalName, w.read()));
    terms[l.name] = l.terms.map(({ term }) => termVariables(term).map((v) => save(v.name, v)));
  }
  const named = await o.optimizer.getWeights();
  const weights = named.map((n) => save(n.name, n.tensor));
  tf.dispose(named.filter((n) => !(n.tensor instanceof tf.Variable)).map((n) => n.tensor));
  const extra: Record<string, SavedTensor> = {};
  for (const key of OPTIMIZER_EXTRAS) {
    const v = (o.optimizer as unknown as Record<string, unknown>)[key];
    if (v instanceof tf.Tensor) extra[key] = save(key, v);
  }
  return {
    epoch: o.epoch,
    epochs: o.epochs,
    rngState: o.rngState,
    history: structuredClone(o.history),
    seconds: o.seconds,
    models,
    terms,
    optimizer: { weights, extra },
    ...(o.meta !== undefined && { meta: o.meta }),
  };
}

/** Where a tensor's bytes are in the body and what they are. */
const count = z.int().min(0);
const tensorEntry = z.object({
  kind: z.enum(['model', 'term', 'optimizer', 'optimizer-extra']),
  learner: z.string().optional(),
  term: count.optional(),
  name: z.string(),
  dtype: z.enum(['float32', 'int32']),
  shape: z.array(count),
  offset: count,
  bytes: count,
});
type TensorEntry = z.infer<typeof tensorEntry>;

/** The header as written (the body's sha256 covers the tensors; this covers the header's shape). */
const checkpointHeader = z.object({
  epoch: count,
  epochs: count,
  rngState: z.unknown(),
  history: z.record(z.string(), z.array(z.unknown())),
  seconds: z.number(),
  meta: z.record(z.string(), z.unknown()).default({}),
  learners: z.record(z.string(), count),
  tensors: z.array(tensorEntry),
  bodySha256: z.string(),
});

function mismatch(what: string, path: string | undefined): UserError {
  return new UserError(
    `checkpoint${path ? ` ${path}` : ''} does not fit this run: ${what}; the experiment changed since it was written — start a new run (another --out)`,
  );
}

/** Puts saved weights back into the learners' models (shapes are checked). */
export function restoreModels(ckpt: TrainingCheckpoint, learners: readonly Learner[], path?: string): void {
  for (const l of learners) {
    const saved = ckpt.models[l.name];
    if (!saved) throw mismatch(`it has no model \`${l.name}\``, path);
    if (saved.length !== l.model.weights.length)
      throw mismatch(`${l.name} has ${saved.length} weights there, ${l.model.weights.length} here`, path);
    l.model.weights.forEach((w, i) => {
      if (w.shape.join(',') !== saved[i]!.shape.join(','))
        throw mismatch(`weight ${w.originalName} of ${l.name} is [${saved[i]!.shape}] there, [${w.shape}] here`, path);
    });
    const tensors = saved.map(toTensor);
    l.model.setWeights(tensors);
    tf.dispose(tensors);
  }
}

/**
 * Puts the terms' variables back (call after the terms are prepared, e.g. in `onTrainBegin`).
 * With `existingOnly`, terms whose variables do not exist yet (made by `prepare`) are
 * skipped: a finished phase restores the state its terms hold from the start (a snapshot).
 */
export function restoreTermVariables(
  ckpt: TrainingCheckpoint,
  learners: readonly Learner[],
  path?: string,
  options: { existingOnly?: boolean } = {},
): void {
  for (const l of learners) {
    const saved = ckpt.terms[l.name] ?? [];
    l.terms.forEach(({ term }, i) => {
      const vars = termVariables(term);
      const values = saved[i] ?? [];
      if (options.existingOnly && vars.length === 0) return;
      if (values.length !== vars.length)
        throw mismatch(`term ${term.key} of ${l.name} has ${values.length} variables there, ${vars.length} here`, path);
      vars.forEach((v, j) => {
        if (v.shape.join(',') !== values[j]!.shape.join(','))
          throw mismatch(`a variable of term ${term.key} is [${values[j]!.shape}] there, [${v.shape}] here`, path);
        tf.tidy(() => v.assign(toTensor(values[j]!)));
      });
    });
  }
}

/** Restores the optimizer's state (before its first step in this process). */
export async function restoreOptimizer(ckpt: TrainingCheckpoint, optimizer: tf.Optimizer): Promise<void> {
  const named = ckpt.optimizer.weights.map((s) => ({ name: s.name, tensor: toTensor(s) }));
  await optimizer.setWeights(named);
  tf.dispose(named.map((n) => n.tensor));
  for (const [key, s] of Object.entries(ckpt.optimizer.extra)) {
    const v = (optimizer as unknown as Record<string, unknown>)[key];
    if (v instanceof tf.Variable) tf.tidy(() => v.assign(toTensor(s)));
  }
}

/** Writes `ckpt` to `path` atomically (temp file in the same folder, fsync, rename). */
export async function writeCheckpoint(path: string, ckpt: TrainingCheckpoint): Promise<void> {
  const entries: TensorEntry[] = [];
  const parts: Uint8Array[] = [];
  let offset = 0;
  const add = (group: Pick<TensorEntry, 'kind' | 'learner' | 'term'>, s: SavedTensor) => {
    const bytes = new Uint8Array(s.values.buffer, s.values.byteOffset, s.values.byteLength);
    entries.push({ ...group, name: s.name, dtype: s.dtype, shape: s.shape, offset, bytes: bytes.byteLength });
    parts.push(bytes);
    offset += bytes.byteLength;
  };
  for (const [learner, list] of Object.entries(ckpt.models)) list.forEach((s) => add({ kind: 'model', learner }, s));
  for (const [learner, terms] of Object.entries(ckpt.terms))
    terms.forEach((list, term) => list.forEach((s) => add({ kind: 'term', learner, term }, s)));
  ckpt.optimizer.weights.forEach((s) => add({ kind: 'optimizer' }, s));
  for (const s of Object.values(ckpt.optimizer.extra)) add({ kind: 'optimizer-extra' }, s);
  const body = Buffer.concat(parts);
  const header = {
    format: MAGIC,
    epoch: ckpt.epoch,
    epochs: ckpt.epochs,
    rngState: ckpt.rngState,
    history: ckpt.history,
    seconds: ckpt.seconds,
    meta: ckpt.meta ?? {},
    learners: Object.fromEntries(Object.entries(ckpt.terms).map(([n, t]) => [n, t.length])),
    tensors: entries,
    bodySha256: createHash('sha256').update(body).digest('hex'),
  };
  const json = Buffer.from(JSON.stringify(header));
  const head = Buffer.alloc(12);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(json.length, 8);
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, Buffer.concat([head, json, body]));
}

/** Reads a checkpoint; `undefined` when there is none; a damaged one is a `UserError`. */
export async function readCheckpoint(path: string): Promise<TrainingCheckpoint | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError(`cannot read checkpoint ${path}: ${errorLine(e)}`);
  }
  const damaged = (why: string) =>
    new UserError(`checkpoint ${path} is damaged (${why}); delete it to restart that training phase from scratch`);
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== MAGIC) throw damaged('not a tfjs-distill checkpoint');
  const len = buf.readUInt32LE(8);
  if (12 + len > buf.length) throw damaged('truncated header');
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8', 12, 12 + len));
  } catch {
    throw damaged('bad header');
  }
  const checked = checkpointHeader.safeParse(parsed);
  if (!checked.success) throw damaged('header fields');
  const header = checked.data;
  const body = buf.subarray(12 + len);
  if (createHash('sha256').update(body).digest('hex') !== header.bodySha256)
    throw damaged('sha256 of the tensors differs');
  const ckpt: TrainingCheckpoint = {
    epoch: header.epoch,
    epochs: header.epochs,
    rngState: header.rngState as RngState,
    history: header.history as Record<string, EpochRecord[]>,
    seconds: header.seconds,
    models: {},
    terms: Object.fromEntries(
      Object.entries(header.learners).map(([n, k]) => [n, Array.from({ length: k }, () => [])]),
    ),
    optimizer: { weights: [], extra: {} },
    meta: header.meta,
  };
  for (const e of header.tensors) {
    const values = e.shape.reduce((a, b) => a * b, 1);
    const fits =
      e.offset + e.bytes <= body.length &&
      e.bytes === values * 4 &&
      (e.kind !== 'model' || e.learner !== undefined) &&
      (e.kind !== 'term' || ckpt.terms[e.learner ?? '']?.[e.term ?? -1] !== undefined);
    if (!fits) throw damaged(`tensor ${e.name} does not fit the file`);
    const bytes = body.subarray(e.offset, e.offset + e.bytes);
    const copy = new Uint8Array(bytes).buffer;
    const data = e.dtype === 'int32' ? new Int32Array(copy) : new Float32Array(copy);
    const s: SavedTensor = { name: e.name, dtype: e.dtype, shape: e.shape, values: data };
    if (e.kind === 'model') {
      ckpt.models[e.learner!] ??= [];
      ckpt.models[e.learner!]!.push(s);
    } else if (e.kind === 'term') ckpt.terms[e.learner!]![e.term!]!.push(s);
    else if (e.kind === 'optimizer') ckpt.optimizer.weights.push(s);
    else ckpt.optimizer.extra[e.name] = s;
  }
  return ckpt;
}
