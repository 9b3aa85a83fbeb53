import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { Dataset } from '../data/dataset.js';
import { errorLine, UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';

/**
 * Teacher logits cached on disk (what `distill cache-teacher` writes; the trainer reads them
 * into a `CachedTeacher`). One file, any name (e.g. `teacher-logits.bin`):
 *
 * | bytes | content |
 * |---|---|
 * | 0–7 | magic `TDLOGITS` (ASCII) |
 * | 8–11 | header length H, uint32 little-endian |
 * | 12 … 12+H | header, UTF-8 JSON, space-padded so the body starts at a multiple of 4:
 * `{"format":"tfjs-distill/teacher-logits","version":1,"dtype":"float32","size":…,"numClasses":…,"datasetFingerprint":"…","sha256":"…"}`
 * |
 * | 12+H … | body: size × numClasses float32 little-endian, row-major (row = dataset row) |
 *
 * `sha256` is the body's. The file is exactly 12 + H + 4·size·numClasses bytes: a shorter
 * one is reported as truncated. Written atomically (temp file in the same folder, fsync,
 * rename), so a reader never sees a half-written cache under the final name.
 */
export const TEACHER_CACHE_MAGIC = 'TDLOGITS';
const FORMAT = 'tfjs-distill/teacher-logits';
const VERSION = 1;
const PREFIX = 12;

export interface TeacherCacheHeader {
  format: string;
  version: number;
  dtype: 'float32';
  size: number;
  numClasses: number;
  datasetFingerprint: string;
  sha256: string;
}

export interface WriteTeacherCacheOptions {
  path: string;
  /** Row-major [size × numClasses] logits, one row per dataset row. */
  logits: Float32Array;
  numClasses: number;
  /** `datasetFingerprint(dataset)` of the data the logits were computed on. */
  datasetFingerprint: string;
}

export interface TeacherCache {
  logits: Float32Array;
  numClasses: number;
  /** Number of dataset rows. */
  size: number;
  datasetFingerprint: string;
}

const LE = endianness() === 'LE';
/** The bytes of a 4-byte-element array, little-endian: a view on LE hosts, a swapped copy on BE. */
function leBytes(a: Float32Array | Int32Array): Uint8Array {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return LE ? bytes : swap(bytes.slice());
}
/** Reverses each 4-byte group in place (little- ↔ big-endian). */
function swap(bytes: Uint8Array): Uint8Array {
  for (let i = 0; i + 3 < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return bytes;
}
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Writes cached teacher logits atomically; see the format above. */
export async function writeTeacherCache({
  path,
  logits,
  numClasses,
  datasetFingerprint: fingerprint,
}: WriteTeacherCacheOptions): Promise<void> {
  if (!Number.isInteger(numClasses) || numClasses < 1 || logits.length % numClasses !== 0) {
    throw new UserError(
      `teacher cache: ${logits.length} logits do not split into rows of ${numClasses} classes; give numClasses of the teacher`,
    );
  }
  const body = leBytes(logits);
  const header: TeacherCacheHeader = {
    format: FORMAT,
    version: VERSION,
    dtype: 'float32',
    size: logits.length / numClasses,
    numClasses,
    datasetFingerprint: fingerprint,
    sha256: sha256(body),
  };
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((4 - ((PREFIX + json.length) % 4)) % 4, 0x20)]);
  const prefix = Buffer.alloc(PREFIX);
  prefix.write(TEACHER_CACHE_MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(json.length, 8);
  const file = resolve(path);
  try {
    await mkdir(dirname(file), { recursive: true });
    await writeFileAtomic(file, [prefix, json, body]);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot write teacher cache ${path}: ${errorLine(e)}; choose a writable folder`);
  }
}

/**
 * Reads a cache written by `writeTeacherCache`. With `expectedFingerprint` (the current
 * data's `datasetFingerprint`), a cache made for other data is refused.
 */
export async function readTeacherCache({
  path,
  expectedFingerprint,
}: {
  path: string;
  expectedFingerprint?: string;
}): Promise<TeacherCache> {
  const redo = 're-run distill cache-teacher';
  let bytes: Buffer;
  try {
    bytes = await readFile(resolve(path));
  } catch (e) {
    throw new UserError(
      (e as NodeJS.ErrnoException).code === 'ENOENT'
        ? `teacher cache ${path} does not exist; run distill cache-teacher to make it`
        : `cannot read teacher cache ${path}: ${errorLine(e)}`,
    );
  }
  if (bytes.length < PREFIX || bytes.toString('ascii', 0, 8) !== TEACHER_CACHE_MAGIC) {
    throw new UserError(
      `${path} is not a teacher cache (it does not start with ${TEACHER_CACHE_MAGIC}); point to a file written by distill cache-teacher`,
    );
  }
  const headerLength = bytes.readUInt32LE(8);
  if (bytes.length < PREFIX + headerLength) {
    throw new UserError(
      `teacher cache ${path} is truncated: ${bytes.length} bytes, its header alone needs ${PREFIX + headerLength}; ${redo}`,
    );
  }
  let h: TeacherCacheHeader;
  try {
    h = JSON.parse(bytes.toString('utf8', PREFIX, PREFIX + headerLength));
  } catch (e) {
    throw new UserError(`teacher cache ${path} has a damaged header (${errorLine(e)}); ${redo}`);
  }
  if (h.format !== FORMAT || h.version !== VERSION || h.dtype !== 'float32') {
    throw new UserError(
      `teacher cache ${path} is ${h.format} version ${h.version} (${h.dtype}); this tfjs-distill reads ${FORMAT} version ${VERSION} (float32), ${redo}`,
    );
  }
  if (!Number.isInteger(h.size) || h.size < 0 || !Number.isInteger(h.numClasses) || h.numClasses < 1) {
    throw new UserError(
      `teacher cache ${path} has a damaged header (size ${h.size}, numClasses ${h.numClasses}); ${redo}`,
    );
  }
  const have = bytes.length - PREFIX - headerLength;
  const need = 4 * h.size * h.numClasses;
  if (have !== need) {
    throw new UserError(
      `teacher cache ${path} is ${have < need ? 'truncated' : 'too long'}: ${have} bytes of logits, its header (${h.size} rows × ${h.numClasses} classes) needs ${need}; ${redo}`,
    );
  }
  const body = new Uint8Array(
    bytes.buffer.slice(bytes.byteOffset + PREFIX + headerLength, bytes.byteOffset + bytes.length),
  );
  if (sha256(body) !== h.sha256) {
    throw new UserError(`teacher cache ${path} is corrupted (sha256 of its logits differs from its header); ${redo}`);
  }
  if (expectedFingerprint !== undefined && h.datasetFingerprint !== expectedFingerprint) {
    throw new UserError(
      `teacher cache ${path} was made for other data (dataset fingerprint ${h.datasetFingerprint}, this data's is ${expectedFingerprint}); ${redo} on this data`,
    );
  }
  return {
    logits: new Float32Array((LE ? body : swap(body)).buffer),
    numClasses: h.numClasses,
    size: h.size,
    datasetFingerprint: h.datasetFingerprint,
  };
}

/** Rows whose features go into the fingerprint (evenly spaced, first and last included). */
const SAMPLED_ROWS = 256;

/**
 * A 128-bit hex hash identifying a dataset for the teacher cache: its size, sample shape,
 * class count, every label, and the features of up to 256 evenly spaced rows (so hashing
 * 60k images stays fast). Different rows, order, labels or preprocessing (normalization
 * changes the feature bytes) give another fingerprint.
 */
export function datasetFingerprint(dataset: Dataset): string {
  const hash = createHash('sha256');
  hash.update(
    JSON.stringify({ v: 1, size: dataset.size, sampleShape: dataset.sampleShape, numClasses: dataset.numClasses }),
  );
  hash.update(leBytes(dataset.labels));
  const n = Math.min(dataset.size, SAMPLED_ROWS);
  for (let i = 0; i < n; i++) {
    const row = n === 1 ? 0 : Math.round((i * (dataset.size - 1)) / (n - 1));
    hash.update(leBytes(dataset.features.subarray(row * dataset.sampleSize, (row + 1) * dataset.sampleSize)));
  }
  return hash.digest('hex').slice(0, 32);
}
