import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../src/errors.js';
import { writeIdx } from '../src/data/idx.js';
import { assertUserError } from './helpers.js';
import {
  DEBIAN_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASS_NAMES,
  loadFashionMnist,
  locateFashionMnist,
} from '../src/data/fashion-mnist.js';

const root = mkdtempSync(join(tmpdir(), 'distill-fmnist-'));
const savedEnv = process.env['DISTILL_DATA'];
const savedCwd = process.cwd();
after(() => {
  process.chdir(savedCwd);
  if (savedEnv === undefined) delete process.env['DISTILL_DATA'];
  else process.env['DISTILL_DATA'] = savedEnv;
  rmSync(root, { recursive: true, force: true });
});

function setEnv(value: string | undefined): void {
  if (value === undefined) delete process.env['DISTILL_DATA'];
  else process.env['DISTILL_DATA'] = value;
}

/** A folder with tiny Fashion-MNIST-shaped IDX files: pixel values i % 256, labels i % 10. */
function fakeDataset(
  name: string,
  options: { train?: number; trainLabels?: number; test?: number; gzip?: boolean; skip?: string } = {},
): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const { train = 6, trainLabels = train, test = 4, gzip = true, skip } = options;
  const write = (stem: string, dims: number[], value: (i: number) => number) => {
    if (stem === skip) return;
    const n = dims.reduce((a, b) => a * b, 1);
    writeIdx({
      path: join(dir, stem + (gzip ? '.gz' : '')),
      array: { dtype: 'uint8', dims, data: Uint8Array.from({ length: n }, (_, i) => value(i)) },
    });
  };
  write('train-images-idx3-ubyte', [train, 28, 28], (i) => i % 256);
  write('train-labels-idx1-ubyte', [trainLabels], (i) => i % 10);
  write('t10k-images-idx3-ubyte', [test, 28, 28], (i) => i % 256);
  write('t10k-labels-idx1-ubyte', [test], (i) => i % 10);
  return dir;
}

const missingSystem = join(root, 'no-system-dir');

test('search order: --data, else $DISTILL_DATA, else the system folder, then ./data', () => {
  const explicit = fakeDataset('explicit');
  const env = fakeDataset('env');
  const system = fakeDataset('system', { gzip: false });
  const cwd = join(root, 'cwd');
  fakeDataset('cwd/data');
  process.chdir(cwd);
  try {
    setEnv(env);
    assert.equal(locateFashionMnist({ dir: explicit, systemDir: system }).dir, explicit);
    assert.equal(locateFashionMnist({ systemDir: system }).dir, env);
    setEnv(undefined);
    assert.equal(locateFashionMnist({ systemDir: system }).dir, system);
    assert.equal(locateFashionMnist({ systemDir: missingSystem }).dir, join(cwd, 'data'));
    setEnv('');
    assert.equal(
      locateFashionMnist({ systemDir: missingSystem }).dir,
      join(cwd, 'data'),
      'empty $DISTILL_DATA counts as unset',
    );
    // a folder the user named is used or refused, never skipped for another place
    setEnv(env);
    assert.throws(
      () => locateFashionMnist({ dir: join(root, 'nothing-here'), systemDir: system }),
      (e: unknown) =>
        e instanceof UserError &&
        e.message.startsWith(
          `Fashion-MNIST not found; searched --data ${join(root, 'nothing-here')} (no such folder); install`,
        ),
    );
  } finally {
    process.chdir(savedCwd);
    setEnv(savedEnv);
  }
});

test('files are found with or without .gz, raw preferred', () => {
  const gz = fakeDataset('gz');
  const raw = fakeDataset('mixed', { gzip: false, skip: 't10k-labels-idx1-ubyte' });
  fakeDataset('mixed', { gzip: true });
  const found = locateFashionMnist({ dir: gz, systemDir: missingSystem }).files;
  assert.equal(found.trainImages, join(gz, 'train-images-idx3-ubyte.gz'));
  const mixed = locateFashionMnist({ dir: raw, systemDir: missingSystem }).files;
  assert.deepEqual(mixed, {
    trainImages: join(raw, 'train-images-idx3-ubyte'),
    trainLabels: join(raw, 'train-labels-idx1-ubyte'),
    testImages: join(raw, 't10k-images-idx3-ubyte'),
    testLabels: join(raw, 't10k-labels-idx1-ubyte.gz'),
  });
});

test('not found: one line with every place searched and how to get the data', () => {
  const partial = fakeDataset('partial', { skip: 't10k-labels-idx1-ubyte' });
  const cwd = join(root, 'empty-cwd');
  mkdirSync(cwd);
  process.chdir(cwd);
  try {
    setEnv(undefined);
    assert.throws(
      () => locateFashionMnist({ dir: partial, systemDir: missingSystem }),
      (e: unknown) => {
        assert.ok(e instanceof UserError);
        assert.equal(
          e.message,
          'Fashion-MNIST not found; searched ' +
            `--data ${partial} (missing t10k-labels-idx1-ubyte[.gz]); ` +
            'install it with `apt-get install dataset-fashion-mnist`, or put the four IDX files ' +
            '(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, .gz optional) ' +
            'in a folder and pass --data DIR or set DISTILL_DATA',
        );
        return true;
      },
    );
    const empty = join(root, 'empty-data');
    mkdirSync(empty);
    setEnv(empty);
    assert.throws(
      () => locateFashionMnist({ systemDir: missingSystem }),
      (e: unknown) =>
        e instanceof UserError &&
        e.message.startsWith(
          `Fashion-MNIST not found; searched $DISTILL_DATA=${empty} (missing all four files); install it with`,
        ),
    );
    setEnv(undefined);
    mkdirSync('data');
    assert.throws(
      () => locateFashionMnist({ systemDir: join(partial, 'train-images-idx3-ubyte.gz') }),
      (e: unknown) =>
        e instanceof UserError &&
        e.message.startsWith(
          'Fashion-MNIST not found; searched $DISTILL_DATA (unset), ' +
            `${join(partial, 'train-images-idx3-ubyte.gz')} (not a folder), ./data (missing all four files); install it with`,
        ),
    );
  } finally {
    process.chdir(savedCwd);
    setEnv(savedEnv);
  }
});

test('loads a small generated copy: shapes, scaling to [0, 1], subsets', () => {
  const dir = fakeDataset('small', { train: 6, test: 4 });
  const { train, test: testSet } = loadFashionMnist({ dir, testSubset: 3 });
  assert.equal(train.size, 6);
  assert.equal(testSet.size, 3);
  assert.deepEqual(train.sampleShape, [28, 28, 1]);
  assert.equal(train.features[255], 1);
  assert.equal(train.features[256], 0);
  assert.equal(train.features[51], Math.fround(51 / 255));
  assert.deepEqual([...train.labels], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(train.classNames, FASHION_MNIST_CLASS_NAMES);
  assertUserError(() => loadFashionMnist({ dir, trainSubset: 0 }), 'trainSubset must be a whole number ≥ 1, got 0');
});

test('image/label count mismatch names both files and both counts', () => {
  const dir = fakeDataset('mismatch', { train: 5, trainLabels: 4 });
  assertUserError(
    () => loadFashionMnist({ dir }),
    `${join(dir, 'train-images-idx3-ubyte.gz')} has 5 images but ${join(dir, 'train-labels-idx1-ubyte.gz')} has 4 labels; ` +
      're-download or reinstall dataset-fashion-mnist',
  );
});

test('a corrupt file in the found folder is reported with the dataset fix', () => {
  const dir = fakeDataset('wrong-shape');
  const path = join(dir, 't10k-images-idx3-ubyte.gz');
  writeIdx({ path, array: { dtype: 'uint8', dims: [4, 28, 27], data: new Uint8Array(4 * 28 * 27) } });
  assertUserError(
    () => loadFashionMnist({ dir }),
    `${path}: expected uint8 [N, 28, 28], found uint8 [4, 28, 27]; re-download or reinstall dataset-fashion-mnist`,
  );
});

test("real Fashion-MNIST from Debian's dataset-fashion-mnist (subset)", () => {
  setEnv(undefined);
  try {
    const located = locateFashionMnist();
    assert.equal(located.dir, DEBIAN_FASHION_MNIST_DIR);
    const { train, test: testSet } = loadFashionMnist({ trainSubset: 1000, testSubset: 200 });
    assert.equal(train.size, 1000);
    assert.equal(testSet.size, 200);
    for (const d of [train, testSet]) {
      assert.deepEqual(d.sampleShape, [28, 28, 1]);
      assert.equal(d.features.length, d.size * 784);
      assert.equal(d.numClasses, 10);
      let min = Infinity;
      let max = -Infinity;
      for (const v of d.features) {
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      assert.equal(min, 0);
      assert.equal(max, 1);
      assert.ok(d.labels.every((l) => l >= 0 && l <= 9));
    }
    assert.equal(new Set(train.labels).size, 10, 'all ten classes appear in the first 1000');
    // the first training and test images are both ankle boots
    assert.equal(train.classNames![train.labels[0]!], 'Ankle boot');
    assert.equal(testSet.classNames![testSet.labels[0]!], 'Ankle boot');
    const mean = train.computeStats().mean[0]!;
    assert.ok(mean > 0.25 && mean < 0.32, `mean pixel ${mean} near Fashion-MNIST's 0.286`);
  } finally {
    setEnv(savedEnv);
  }
});
