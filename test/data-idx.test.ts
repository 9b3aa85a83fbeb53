import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodeIdx, readIdx, writeIdx, type IdxArray } from '../src/data/idx.js';
import { assertUserError } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'distill-idx-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cases: { name: string; array: IdxArray }[] = [
  { name: 'ubyte-1d', array: { dtype: 'uint8', dims: [5], data: Uint8Array.from([0, 1, 127, 200, 255]) } },
  {
    name: 'ubyte-3d',
    array: { dtype: 'uint8', dims: [2, 3, 4], data: Uint8Array.from({ length: 24 }, (_, i) => i * 10) },
  },
  { name: 'byte-1d', array: { dtype: 'int8', dims: [3], data: Int8Array.from([-128, -1, 127]) } },
  { name: 'int16-1d', array: { dtype: 'int16', dims: [3], data: Int16Array.from([-32768, 258, 32767]) } },
  {
    name: 'int32-3d',
    array: { dtype: 'int32', dims: [1, 2, 2], data: Int32Array.from([-2147483648, -1, 0, 2147483647]) },
  },
  {
    name: 'float32-3d',
    array: { dtype: 'float32', dims: [2, 2, 2], data: Float32Array.from([0.5, -1.25, 3e-8, 1e30, 0, -0, 7, 0.1]) },
  },
  { name: 'float32-1d', array: { dtype: 'float32', dims: [4], data: Float32Array.from([1, 2.5, -3, Math.PI]) } },
  { name: 'float64-1d', array: { dtype: 'float64', dims: [2], data: Float64Array.from([Math.PI, -1e300]) } },
];

for (const { name, array } of cases) {
  for (const gzip of [false, true]) {
    test(`IDX round trip: ${name}${gzip ? ' (gzip)' : ' (raw)'}`, () => {
      const path = join(dir, `${name}${gzip ? '.gz' : ''}`);
      writeIdx({ path, array });
      const bytes = readFileSync(path);
      assert.equal(bytes[0] === 0x1f && bytes[1] === 0x8b, gzip, 'gzip iff the name ends in .gz');
      const back = readIdx(path);
      assert.equal(back.dtype, array.dtype);
      assert.deepEqual(back.dims, array.dims);
      assert.equal(back.data.constructor, array.data.constructor);
      assert.deepEqual([...back.data], [...array.data]);
    });
  }
}

test('IDX header and big-endian values are decoded from hand-written bytes', () => {
  const path = join(dir, 'hand-int16');
  // magic 00 00 0B 02, dims [2, 1], values 0x0102 = 258 and 0xFFFE = -2
  writeFileSync(path, Uint8Array.from([0, 0, 0x0b, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0x01, 0x02, 0xff, 0xfe]));
  const a = readIdx(path);
  assert.equal(a.dtype, 'int16');
  assert.deepEqual(a.dims, [2, 1]);
  assert.deepEqual([...a.data], [258, -2]);
  assert.deepEqual([...encodeIdx(a)], [...readFileSync(path)]);
});

test('gzip is detected by magic, not by name', () => {
  const array: IdxArray = { dtype: 'uint8', dims: [3], data: Uint8Array.from([1, 2, 3]) };
  const rawNamedGz = join(dir, 'raw-named.gz');
  writeIdx({ path: rawNamedGz, array, gzip: false });
  assert.deepEqual([...readIdx(rawNamedGz).data], [1, 2, 3]);
  const gzNamedRaw = join(dir, 'gz-named-raw');
  writeIdx({ path: gzNamedRaw, array, gzip: true });
  assert.deepEqual([...readIdx(gzNamedRaw).data], [1, 2, 3]);
});

test('a truncated file names the expected and found byte counts and the fix', () => {
  const path = join(dir, 'train-images-idx3-ubyte.gz');
  const header = encodeIdx({ dtype: 'uint8', dims: [60000, 28, 28], data: new Uint8Array(60000 * 784) }).subarray(
    0,
    16,
  );
  writeFileSync(path, gzipSync(Buffer.concat([header, new Uint8Array(1024)])));
  assertUserError(
    () => readIdx(path, { fix: 're-download or reinstall dataset-fashion-mnist' }),
    `${path}: truncated: expected 47040000 data bytes, found 1024; re-download or reinstall dataset-fashion-mnist`,
  );
});

test('extra bytes after the data are an error', () => {
  const path = join(dir, 'too-long');
  writeFileSync(
    path,
    Buffer.concat([encodeIdx({ dtype: 'int32', dims: [2], data: Int32Array.from([1, 2]) }), new Uint8Array(3)]),
  );
  assertUserError(() => readIdx(path), `${path}: too long: expected 8 data bytes, found 11; re-download the file`);
});

test('a truncated header is an error', () => {
  const path = join(dir, 'short-header');
  writeFileSync(path, Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 1]));
  assertUserError(
    () => readIdx(path),
    `${path}: truncated header: 3 dimensions need 16 bytes, found 8; re-download the file`,
  );
});

test('wrong magic (not gzip, not IDX) shows the first bytes', () => {
  const path = join(dir, 'page.gz');
  writeFileSync(path, '<html>Not Found</html>');
  assertUserError(
    () => readIdx(path),
    `${path}: not an IDX file (neither gzip nor IDX): first bytes 3c 68 74 6d, expected 00 00 <dtype> <ndim>; re-download the file`,
  );
  const empty = join(dir, 'empty');
  writeFileSync(empty, '');
  assertUserError(
    () => readIdx(empty),
    `${empty}: not an IDX file (neither gzip nor IDX): first bytes none, expected 00 00 <dtype> <ndim>; re-download the file`,
  );
});

test('an unknown dtype code lists the known ones', () => {
  const path = join(dir, 'dtype-07');
  writeFileSync(path, Uint8Array.from([0, 0, 0x07, 1, 0, 0, 0, 1, 42]));
  assertUserError(
    () => readIdx(path),
    `${path}: unknown IDX dtype code 0x07 ` +
      '(known: 0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64); re-download the file',
  );
});

test('zero dimensions are an error', () => {
  const path = join(dir, 'ndim-0');
  writeFileSync(path, Uint8Array.from([0, 0, 8, 0]));
  assertUserError(() => readIdx(path), `${path}: IDX header declares 0 dimensions; re-download the file`);
});

test("corrupt gzip is an error that names zlib's complaint", () => {
  const good = gzipSync(encodeIdx({ dtype: 'uint8', dims: [100], data: new Uint8Array(100) }));
  const cut = join(dir, 'cut.gz');
  writeFileSync(cut, good.subarray(0, good.length - 10));
  assertUserError(() => readIdx(cut), `${cut}: corrupt gzip (unexpected end of file); re-download the file`);
  const flipped = Buffer.from(good);
  flipped[good.length - 6] ^= 0xff; // inside the CRC32 trailer
  const bad = join(dir, 'crc.gz');
  writeFileSync(bad, flipped);
  assertUserError(() => readIdx(bad), `${bad}: corrupt gzip (incorrect data check); re-download the file`);
});

test('a missing file is a UserError naming the path', () => {
  const path = join(dir, 'nope');
  assertUserError(() => readIdx(path), `${path}: cannot read (ENOENT); check the path`);
});

test('encodeIdx refuses data that does not match dims', () => {
  assert.throws(
    () => encodeIdx({ dtype: 'uint8', dims: [2, 2], data: new Uint8Array(3) }),
    /hold 4 values, data has 3/,
  );
});
