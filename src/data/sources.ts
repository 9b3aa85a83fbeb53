/**
 * Data sources of an experiment (`data: { key, kwargs }`): each loads a training set, an
 * optional validation part split off it (seeded, independent of the run's seeds, so a
 * teacher-logits cache made with `distill cache-teacher --validation-fraction F --seed S`
 * lines up) and a test set.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { loadCsv } from './csv.js';
import type { Dataset } from './dataset.js';
import { loadFashionMnist } from './fashion-mnist.js';
import { UserError } from '../errors.js';
import { Registry } from '../registry.js';

export interface ExperimentData {
  /** Shown in reports, e.g. `Fashion-MNIST`. */
  name: string;
  train: Dataset;
  validation?: Dataset;
  test: Dataset;
  /** Random ±shift px translation of training images. */
  augment?: { shift: number };
}

export interface DataSource {
  describe: string;
  /** Validates (and resolves: defaults, absolute paths) the node's kwargs. */
  kwargs: z.ZodType<Record<string, unknown>>;
  /** Loads the data; gets the kwargs as `kwargs` parsed them. */
  load(kwargs: Record<string, unknown>): ExperimentData;
}

/** A data source whose `load` sees its kwargs typed by its schema. */
export function defineDataSource<S extends z.ZodType<Record<string, unknown>>>(d: {
  describe: string;
  kwargs: S;
  load(kwargs: z.output<S>): ExperimentData;
}): DataSource {
  return d as unknown as DataSource;
}

const path = z
  .string()
  .min(1)
  .transform((p) => resolve(p));
const common = {
  /** Use only the first N training rows. */
  subset: z.int().positive().optional(),
  /** Fraction of the training rows held out for per-epoch validation (0: none). */
  validationFraction: z.number().min(0).lt(1).default(0.1),
  /** Seed of that split. */
  seed: z.int().default(1),
  augment: z.strictObject({ shift: z.int().min(0) }).optional(),
};

function splitOff(train: Dataset, fraction: number, seed: number): { train: Dataset; validation?: Dataset } {
  return fraction === 0 ? { train } : train.split({ validationFraction: fraction, seed });
}

const fashionMnist = z.strictObject({
  /** Folder with the four IDX files (else $DISTILL_DATA, Debian's folder, ./data). */
  dir: path.optional(),
  ...common,
  /** Use only the first N test images (default: all, or max(500, subset/6) with `subset`). */
  testSubset: z.int().positive().optional(),
});

const csv = z.strictObject({
  /** The CSV file (numeric feature columns and a label column). */
  path,
  labelColumn: z.union([z.string().min(1), z.int().min(0)]),
  /** A CSV file of test rows; else `testFraction` of the rows are held out (seeded). */
  testPath: path.optional(),
  testFraction: z.number().gt(0).lt(1).default(0.2),
  ...common,
});

/** The data-source registry: `fashion-mnist`, `csv`. */
export const dataSources = new Registry<DataSource>('data source')
  .register(
    'fashion-mnist',
    defineDataSource({
      describe: 'Fashion-MNIST (Debian dataset-fashion-mnist, or --data / $DISTILL_DATA)',
      kwargs: fashionMnist,
      load(k): ExperimentData {
        const testSubset =
          k.testSubset ?? (k.subset === undefined ? undefined : Math.max(500, Math.round(k.subset / 6)));
        const { train, test } = loadFashionMnist({ dir: k.dir, trainSubset: k.subset, testSubset });
        return {
          name: 'Fashion-MNIST',
          ...splitOff(train, k.validationFraction, k.seed),
          test,
          ...(k.augment && { augment: k.augment }),
        };
      },
    }),
  )
  .register(
    'csv',
    defineDataSource({
      describe: 'a CSV file of numeric features and a label column',
      kwargs: csv,
      load(k): ExperimentData {
        let all = loadCsv({ path: k.path, labelColumn: k.labelColumn });
        let test: Dataset;
        if (k.testPath !== undefined) {
          test = loadCsv({ path: k.testPath, labelColumn: k.labelColumn });
          if ((test.classNames ?? []).join('\u0000') !== (all.classNames ?? []).join('\u0000')) {
            throw new UserError(
              `${k.testPath} has classes ${test.classNames?.join(', ')} but ${k.path} has ${all.classNames?.join(', ')}; both files need every class`,
            );
          }
        } else {
          ({ train: all, validation: test } = all.split({ validationFraction: k.testFraction, seed: k.seed + 7919 }));
        }
        if (k.subset !== undefined) all = all.subset(k.subset);
        return {
          name: k.path,
          ...splitOff(all, k.validationFraction, k.seed),
          test,
          ...(k.augment && { augment: k.augment }),
        };
      },
    }),
  );
