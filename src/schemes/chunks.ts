/**
 * Where a stream of training data comes from: an in-memory dataset cut into chunks (a
 * simulated stream), or a folder watched for new chunk files. Both are async iterables of
 * `Dataset`, the form `streamingDistillation` takes (any other source can be one too).
 *
 * Chunk files (one chunk each), taken in name order (natural: `chunk-2` before `chunk-10`):
 * - IDX pairs `<stem>-images-idx3-ubyte[.gz]` + `<stem>-labels-idx1-ubyte[.gz]` (uint8 pixels
 *   are scaled to [0, 1], as Fashion-MNIST; [N, H, W] images get a channel axis);
 * - `<stem>.csv`: numeric feature columns and a label column (integer class ids).
 * Write each file under another name (a leading `.` or a `.tmp` suffix) and rename it into
 * place, so a half-written file is never read. The stream ends when a file named `END`
 * appears, after `maxChunks` chunks, or when no new chunk arrived for `idleSeconds`.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadCsv } from '../data/csv.js';
import { Dataset } from '../data/dataset.js';
import { readIdx } from '../data/idx.js';
import { UserError } from '../errors.js';

/** `n` contiguous chunks of `data`, in row order, as a stream (sizes differ by at most one row). */
export async function* datasetChunks(data: Dataset, n: number): AsyncGenerator<Dataset> {
  if (!Number.isInteger(n) || n < 1) throw new UserError(`chunks must be a whole number >= 1, got ${n}`);
  if (n > data.size)
    throw new UserError(`cannot cut ${data.size} training rows into ${n} chunks; use fewer chunks or more data`);
  for (let k = 0; k < n; k++) yield data.slice(Math.round((k * data.size) / n), Math.round(((k + 1) * data.size) / n));
}

export interface WatchChunksOptions {
  dir: string;
  /** Shape of one sample and number of classes the chunks must have (the held-out data's). */
  sampleShape: readonly number[];
  numClasses: number;
  /** The label column of CSV chunks (name or 0-based index). Default `label`. */
  labelColumn?: string | number;
  /** End after this many seconds without a new chunk. Default 30. */
  idleSeconds?: number;
  /** End after this many chunks. */
  maxChunks?: number;
  /** How often the folder is listed, ms. Default 250. */
  pollMs?: number;
  signal?: AbortSignal;
}

const IMAGES = /^(.+)-images-idx3-ubyte(\.gz)?$/;
const hidden = (f: string) => f.startsWith('.') || f.endsWith('.tmp') || f.includes('.tmp-');
const natural = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

/** Chunk files now complete in `dir`, by name: `{ key, load }`. */
function listChunks(o: WatchChunksOptions): Array<{ key: string; load: () => Dataset }> {
  const files = readdirSync(o.dir).filter((f) => !hidden(f) && statSync(join(o.dir, f)).isFile());
  const have = new Set(files);
  const found: Array<{ key: string; load: () => Dataset }> = [];
  for (const f of files) {
    const m = IMAGES.exec(f);
    if (m) {
      const labels = [`${m[1]}-labels-idx1-ubyte`, `${m[1]}-labels-idx1-ubyte.gz`].find((l) => have.has(l));
      if (labels) found.push({ key: f, load: () => idxChunk(join(o.dir, f), join(o.dir, labels), o) });
    } else if (f.endsWith('.csv')) {
      found.push({
        key: f,
        load: () => checked(loadCsv({ path: join(o.dir, f), labelColumn: o.labelColumn ?? 'label' }), f, o, true),
      });
    }
  }
  return found.sort((a, b) => natural(a.key, b.key));
}

function checked(d: Dataset, name: string, o: WatchChunksOptions, csv = false): Dataset {
  if (d.sampleShape.join(',') !== o.sampleShape.join(',')) {
    throw new UserError(
      `chunk ${name} has samples of shape [${d.sampleShape.join(',')}] but the experiment's are [${o.sampleShape.join(',')}]`,
    );
  }
  if (!csv) return d;
  // CSV labels become class ids by sorted label text; integer labels must be the class ids themselves.
  const ids = (d.classNames ?? []).map(Number);
  if (!ids.every((v) => Number.isInteger(v) && v >= 0 && v < o.numClasses)) {
    throw new UserError(
      `chunk ${name}: labels must be class ids 0..${o.numClasses - 1}, got ${d.classNames?.join(', ')}`,
    );
  }
  return new Dataset({
    features: d.features,
    labels: d.labels.map((l) => ids[l]!),
    sampleShape: d.sampleShape,
    numClasses: o.numClasses,
  });
}

function idxChunk(images: string, labels: string, o: WatchChunksOptions): Dataset {
  const fix = 'write the chunk again (IDX images [N,H,W] or [N,H,W,C] and labels [N])';
  const x = readIdx(images, { fix });
  const y = readIdx(labels, { fix });
  if (y.dims.length !== 1 || y.dims[0] !== x.dims[0])
    throw new UserError(`${labels}: expected ${x.dims[0]} labels, found [${y.dims.join(', ')}]; ${fix}`);
  const shape = x.dims.length === 3 ? [...x.dims.slice(1), 1] : x.dims.slice(1);
  const scale = x.dtype === 'uint8' ? 1 / 255 : 1;
  const features = Float32Array.from(x.data as ArrayLike<number>, (v) => v * scale);
  const ids = Int32Array.from(y.data as ArrayLike<number>);
  const bad = ids.findIndex((l) => l < 0 || l >= o.numClasses);
  if (bad >= 0)
    throw new UserError(`${labels}: label ${ids[bad]} at row ${bad} is outside 0..${o.numClasses - 1}; ${fix}`);
  return checked(new Dataset({ features, labels: ids, sampleShape: shape, numClasses: o.numClasses }), images, o);
}

/** Chunks as they appear in a folder (see the module comment); ends on `END`, `maxChunks` or `idleSeconds`. */
export async function* watchChunks(o: WatchChunksOptions): AsyncGenerator<Dataset> {
  if (!existsSync(o.dir) || !statSync(o.dir).isDirectory())
    throw new UserError(`stream folder ${o.dir} does not exist; create it and write chunk files into it`);
  const seen = new Set<string>();
  let idleSince = Date.now();
  let count = 0;
  while (o.maxChunks === undefined || count < o.maxChunks) {
    const fresh = listChunks(o).filter((c) => !seen.has(c.key));
    if (fresh.length > 0) {
      const next = fresh[0]!;
      seen.add(next.key);
      count++;
      yield next.load();
      idleSince = Date.now();
      continue;
    }
    if (existsSync(join(o.dir, 'END'))) return;
    if (o.signal?.aborted) return;
    if (Date.now() - idleSince > (o.idleSeconds ?? 30) * 1000) return;
    await new Promise((r) => setTimeout(r, o.pollMs ?? 250));
  }
}
