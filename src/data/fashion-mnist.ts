/**
 * Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 28×28 grayscale images of clothing,
 * 60,000 train / 10,000 test, 10 classes, as four IDX files (optionally gzip-compressed).
 * Debian ships it as `dataset-fashion-mnist` in /usr/share/datasets/fashion-mnist.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { Dataset, UNLABELED } from './dataset.js';
import { readIdx, type IdxArray } from './idx.js';

export const FASHION_MNIST_CLASS_NAMES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Where Debian's `dataset-fashion-mnist` installs the files. */
export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

const FILE_STEMS = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

type FileKey = keyof typeof FILE_STEMS;

/** The folder that holds all four files, and each file's path (`.gz` or not). */
export interface FashionMnistFiles {
  dir: string;
  files: Record<FileKey, string>;
}

export interface LocateFashionMnistOptions {
  /** A folder given explicitly (the CLI's `--data DIR`); searched first. */
  dir?: string;
  /** The system folder searched after `$DISTILL_DATA`. Default: `DEBIAN_FASHION_MNIST_DIR`. */
  systemDir?: string;
}

const REINSTALL = 're-download or reinstall dataset-fashion-mnist';

/**
 * Finds the four Fashion-MNIST IDX files. A folder the user named (`dir`, else
 * `$DISTILL_DATA`) is the only place looked at: used, or refused with the reason. Without
 * one, searches `systemDir` (Debian's folder), then `./data`; the first holding all four wins. Each
 * file may be raw or `.gz` (raw preferred when both exist). Not found: a one-line
 * `UserError` listing each place searched, what was missing there, and how to get the data.
 */
export function locateFashionMnist({
  dir,
  systemDir = DEBIAN_FASHION_MNIST_DIR,
}: LocateFashionMnistOptions = {}): FashionMnistFiles {
  const places: { label: string; dir: string | undefined; explicit?: boolean }[] = [];
  const env = process.env['DISTILL_DATA'];
  if (dir !== undefined) {
    places.push({ label: `--data ${dir}`, dir, explicit: true });
  } else if (env) {
    places.push({ label: `$DISTILL_DATA=${env}`, dir: env, explicit: true });
  } else {
    places.push({ label: '$DISTILL_DATA', dir: undefined });
    places.push({ label: systemDir, dir: systemDir });
    places.push({ label: './data', dir: resolve('data') });
  }

  const searched: string[] = [];
  for (const place of places) {
    if (place.dir === undefined) {
      searched.push(`${place.label} (unset)`);
      continue;
    }
    const problem = folderProblem(place.dir);
    if (problem !== undefined) {
      searched.push(`${place.label} (${problem})`);
      if (place.explicit) break;
      continue;
    }
    const files: Partial<Record<FileKey, string>> = {};
    const missing: string[] = [];
    for (const [key, stem] of Object.entries(FILE_STEMS) as [FileKey, string][]) {
      const found = [stem, `${stem}.gz`].map((name) => join(place.dir!, name)).find(isFile);
      if (found === undefined) missing.push(`${stem}[.gz]`);
      else files[key] = found;
    }
    if (missing.length === 0) return { dir: place.dir, files: files as Record<FileKey, string> };
    searched.push(`${place.label} (missing ${missing.length === 4 ? 'all four files' : missing.join(', ')})`);
    // A place the user named (--data, $DISTILL_DATA) is used or refused, never silently skipped.
    if (place.explicit) break;
  }
  throw new UserError(
    `Fashion-MNIST not found; searched ${searched.join(', ')}; ` +
      'install it with `apt-get install dataset-fashion-mnist`, or put the four IDX files ' +
      `(${Object.values(FILE_STEMS).join(', ')}, .gz optional) in a folder and pass --data DIR or set DISTILL_DATA`,
  );
}

function folderProblem(path: string): string | undefined {
  if (!existsSync(path)) return 'no such folder';
  return statSync(path).isDirectory() ? undefined : 'not a folder';
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export interface LoadFashionMnistOptions {
  /** Explicit folder (the CLI's `--data DIR`); see `locateFashionMnist` for the search. */
  dir?: string;
  /** Keep only the first N training samples. */
  trainSubset?: number;
  /** Keep only the first N test samples. */
  testSubset?: number;
}

/**
 * Loads Fashion-MNIST as `{ train, test }` Datasets: samples `[28, 28, 1]`, pixel values
 * scaled to [0, 1] (x / 255), labels 0..9 with `FASHION_MNIST_CLASS_NAMES`.
 */
export function loadFashionMnist({ dir, trainSubset, testSubset }: LoadFashionMnistOptions = {}): {
  train: Dataset;
  test: Dataset;
} {
  for (const [name, value] of [
    ['trainSubset', trainSubset],
    ['testSubset', testSubset],
  ] as const) {
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
      throw new UserError(`${name} must be a whole number ≥ 1, got ${value}`);
    }
  }
  const { files } = locateFashionMnist(dir === undefined ? {} : { dir });
  return {
    train: loadSplit(files.trainImages, files.trainLabels, trainSubset),
    test: loadSplit(files.testImages, files.testLabels, testSubset),
  };
}

function loadSplit(imagesPath: string, labelsPath: string, limit: number | undefined): Dataset {
  const images = readIdx(imagesPath, { fix: REINSTALL });
  const labels = readIdx(labelsPath, { fix: REINSTALL });
  expectShape(imagesPath, images, 3);
  expectShape(labelsPath, labels, 1);
  if (images.dims[0] !== labels.dims[0]) {
    throw new UserError(
      `${imagesPath} has ${images.dims[0]} images but ${labelsPath} has ${labels.dims[0]} labels; ${REINSTALL}`,
    );
  }
  const n = Math.min(limit ?? Infinity, labels.dims[0]!);
  const pixels = images.data.subarray(0, n * 28 * 28);
  const features = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) features[i] = pixels[i]! / 255;
  const classIds = Int32Array.from(labels.data.subarray(0, n));
  const bad = classIds.findIndex((l) => l > 9);
  if (bad >= 0)
    throw new UserError(`${labelsPath}: label ${classIds[bad]} at row ${bad} is outside 0..9; ${REINSTALL}`);
  return new Dataset({
    features,
    labels: classIds,
    sampleShape: [28, 28, 1],
    numClasses: 10,
    classNames: FASHION_MNIST_CLASS_NAMES,
  });
}

/**
 * Unlabeled 28×28 images (a transfer set): an IDX file of uint8 `[N, 28, 28]` (optionally
 * gzipped), with no labels file; pixels scaled like the labeled images, every label `UNLABELED`.
 */
export function loadUnlabeledImages(path: string, limit?: number): Dataset {
  const fix = 'give an IDX file of uint8 [N, 28, 28] images (as train-images-idx3-ubyte)';
  const images = readIdx(path, { fix });
  if (images.dtype !== 'uint8' || images.dims.length !== 3 || images.dims[1] !== 28 || images.dims[2] !== 28) {
    throw new UserError(
      `${path}: expected uint8 [N, 28, 28], found ${images.dtype} [${images.dims.join(', ')}]; ${fix}`,
    );
  }
  const n = Math.min(limit ?? Infinity, images.dims[0]!);
  const pixels = images.data.subarray(0, n * 28 * 28);
  const features = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) features[i] = pixels[i]! / 255;
  return new Dataset({
    features,
    labels: new Int32Array(n).fill(UNLABELED),
    sampleShape: [28, 28, 1],
    numClasses: 10,
    classNames: FASHION_MNIST_CLASS_NAMES,
  });
}

function expectShape(path: string, array: IdxArray, ndim: 1 | 3): void {
  const ok =
    array.dtype === 'uint8' &&
    array.dims.length === ndim &&
    (ndim === 1 || (array.dims[1] === 28 && array.dims[2] === 28));
  if (!ok) {
    const expected = ndim === 1 ? '[N]' : '[N, 28, 28]';
    throw new UserError(
      `${path}: expected uint8 ${expected}, found ${array.dtype} [${array.dims.join(', ')}]; ${REINSTALL}`,
    );
  }
}
