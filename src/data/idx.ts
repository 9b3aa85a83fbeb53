/**
 * IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed.
 *
 * Layout: magic `00 00 <dtype> <ndim>`, then `ndim` big-endian uint32 dimensions, then
 * prod(dims) big-endian values. gzip is detected by its `1f 8b` magic, not by the name.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { UserError } from '../errors.js';

export type IdxDtype = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

/** A decoded IDX file: values in row-major order, in native byte order. */
export interface IdxArray {
  dtype: IdxDtype;
  dims: number[];
  data: IdxData;
}

interface DtypeInfo {
  code: number;
  dtype: IdxDtype;
  itemSize: number;
  make: (length: number) => IdxData;
  read: (view: DataView, offset: number) => number;
  write: (view: DataView, offset: number, value: number) => void;
}

const DTYPES: DtypeInfo[] = [
  {
    code: 0x08,
    dtype: 'uint8',
    itemSize: 1,
    make: (n) => new Uint8Array(n),
    read: (v, o) => v.getUint8(o),
    write: (v, o, x) => v.setUint8(o, x),
  },
  {
    code: 0x09,
    dtype: 'int8',
    itemSize: 1,
    make: (n) => new Int8Array(n),
    read: (v, o) => v.getInt8(o),
    write: (v, o, x) => v.setInt8(o, x),
  },
  {
    code: 0x0b,
    dtype: 'int16',
    itemSize: 2,
    make: (n) => new Int16Array(n),
    read: (v, o) => v.getInt16(o),
    write: (v, o, x) => v.setInt16(o, x),
  },
  {
    code: 0x0c,
    dtype: 'int32',
    itemSize: 4,
    make: (n) => new Int32Array(n),
    read: (v, o) => v.getInt32(o),
    write: (v, o, x) => v.setInt32(o, x),
  },
  {
    code: 0x0d,
    dtype: 'float32',
    itemSize: 4,
    make: (n) => new Float32Array(n),
    read: (v, o) => v.getFloat32(o),
    write: (v, o, x) => v.setFloat32(o, x),
  },
  {
    code: 0x0e,
    dtype: 'float64',
    itemSize: 8,
    make: (n) => new Float64Array(n),
    read: (v, o) => v.getFloat64(o),
    write: (v, o, x) => v.setFloat64(o, x),
  },
];

const KNOWN_CODES = '0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64';

const hex = (byte: number) => byte.toString(16).padStart(2, '0');

export interface ReadIdxOptions {
  /** The fix appended to every error message. Default: `re-download the file`. */
  fix?: string;
}

/**
 * Reads and validates an IDX file. Every problem (unreadable, corrupt gzip, wrong magic,
 * unknown dtype, truncated or oversized data) is a one-line `UserError` that starts with
 * `path` and ends with `options.fix`.
 */
export function readIdx(path: string, options: ReadIdxOptions = {}): IdxArray {
  const fix = options.fix ?? 're-download the file';
  const fail = (problem: string) => new UserError(`${path}: ${problem}; ${fix}`);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new UserError(`${path}: cannot read (${code}); check the path`);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw fail(`corrupt gzip (${(e as Error).message})`);
    }
  }
  return decodeIdx(bytes, fail);
}

function decodeIdx(bytes: Uint8Array, fail: (problem: string) => UserError): IdxArray {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    const first = [...bytes.subarray(0, 4)].map(hex).join(' ') || 'none';
    throw fail(`not an IDX file (neither gzip nor IDX): first bytes ${first}, expected 00 00 <dtype> <ndim>`);
  }
  const info = DTYPES.find((d) => d.code === bytes[2]);
  if (info === undefined) {
    throw fail(`unknown IDX dtype code 0x${hex(bytes[2]!).toUpperCase()} (known: ${KNOWN_CODES})`);
  }
  const ndim = bytes[3]!;
  if (ndim === 0) throw fail('IDX header declares 0 dimensions');
  const headerSize = 4 + 4 * ndim;
  if (bytes.length < headerSize) {
    throw fail(`truncated header: ${ndim} dimensions need ${headerSize} bytes, found ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i));
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = count * info.itemSize;
  if (!Number.isSafeInteger(expected)) {
    const shown = dims.length > 6 ? `${dims.slice(0, 6).join(', ')}, … (${dims.length} in all)` : dims.join(', ');
    throw fail(`dimensions [${shown}] are too large`);
  }
  const found = bytes.length - headerSize;
  if (found < expected) throw fail(`truncated: expected ${expected} data bytes, found ${found}`);
  if (found > expected) throw fail(`too long: expected ${expected} data bytes, found ${found}`);

  let data: IdxData;
  if (info.itemSize === 1) {
    const copy = new Uint8Array(count); // a copy: Buffer#slice would return a view
    copy.set(bytes.subarray(headerSize));
    data = info.dtype === 'uint8' ? copy : new Int8Array(copy.buffer);
  } else {
    data = info.make(count);
    for (let i = 0, o = headerSize; i < count; i++, o += info.itemSize) data[i] = info.read(view, o);
  }
  return { dtype: info.dtype, dims, data };
}

/** Encodes an array as IDX bytes (big-endian). Throws if `data.length` is not prod(dims). */
export function encodeIdx(array: IdxArray): Uint8Array {
  const info = DTYPES.find((d) => d.dtype === array.dtype);
  if (info === undefined) throw new Error(`encodeIdx: unknown dtype ${array.dtype}`);
  const { dims, data } = array;
  if (dims.length < 1 || dims.length > 255) throw new Error(`encodeIdx: ${dims.length} dimensions`);
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new Error(`encodeIdx: dims [${dims.join(', ')}] hold ${count} values, data has ${data.length}`);
  }
  const headerSize = 4 + 4 * dims.length;
  const bytes = new Uint8Array(headerSize + count * info.itemSize);
  const view = new DataView(bytes.buffer);
  bytes[2] = info.code;
  bytes[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  for (let i = 0, o = headerSize; i < count; i++, o += info.itemSize) info.write(view, o, data[i]!);
  return bytes;
}

export interface WriteIdxOptions {
  path: string;
  array: IdxArray;
  /** gzip-compress the file. Default: true when `path` ends in `.gz`. */
  gzip?: boolean;
}

/** Writes an IDX file atomically (temp file in the same folder, then rename). */
export function writeIdx({ path, array, gzip = path.endsWith('.gz') }: WriteIdxOptions): void {
  const raw = encodeIdx(array);
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(temp, gzip ? gzipSync(raw) : raw);
    renameSync(temp, path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw e;
  }
}
