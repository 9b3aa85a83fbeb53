/**
 * Data sources of an experiment (`data: { key, kwargs }`): each loads a training set, an
 * optional validation part split off it (seeded, independent of the run's seeds, so a
 * teacher-logits cache made with `distill cache-teacher --validation-fraction F --seed S`
 * lines up) and a test set.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { loadCsv, loadUnlabeledCsv } from './csv.js';
import type { Dataset } from './dataset.js';
import { loadFashionMnist, loadUnlabeledImages } from './fashion-mnist.js';
import { UserError } from '../errors.js';
import { Registry } from '../registry.js';

export interface ExperimentData {
  /** Shown in reports, e.g. `Fashion-MNIST`. */
  name: string;
  /** May hold `UNLABELED` rows (a transfer set): teacher terms use every row, label terms the labeled ones. */
  train: Dataset;
  /**
   * The training rows with every label the source has, when `labeled` hid some: what a teacher
   * trained by the experiment learns from (as a pre-trained teacher would have). Else absent.
   */
  teacherTrain?: Dataset;
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
  /**
   * Keep the labels of only N training rows (seeded random choice, after the validation split);
   * the others become unlabeled. Simulates few labels and many unlabeled inputs.
   */
  labeled: z.int().positive().optional(),
};

/**
 * The options that choose which training labels a student sees, not which data exist: a teacher
 * trained by the experiment is the same with or without them (its cache key leaves them out).
 */
export const STUDENT_LABEL_OPTIONS = ['labeled', 'unlabeled', 'unlabeledPath'] as const;

/**
 * The validation part split off (seeded; it keeps its labels), then `labeled` applied to the rest,
 * then the rows of an unlabeled file appended.
 */
function trainingParts(
  train: Dataset,
  k: { validationFraction: number; seed: number; labeled?: number },
  unlabeled?: () => Dataset,
): { train: Dataset; validation?: Dataset; teacherTrain?: Dataset } {
  const split =
    k.validationFraction === 0 ? { train } : train.split({ validationFraction: k.validationFraction, seed: k.seed });
  let rows = split.train;
  if (k.labeled !== undefined) rows = rows.keepLabels(k.labeled, k.seed + 104729);
  if (unlabeled !== undefined) rows = rows.concat(unlabeled());
  return {
    ...split,
    train: rows,
    ...(k.labeled !== undefined && { teacherTrain: split.train }),
  };
}

const fashionMnist = z.strictObject({
  /** Folder with the four IDX files (else $DISTILL_DATA, Debian's folder, ./data). */
  dir: path.optional(),
  ...common,
  /** Use only the first N test images (default: all, or max(500, subset/6) with `subset`). */
  testSubset: z.int().positive().optional(),
  /** An IDX file of unlabeled uint8 [N, 28, 28] images appended to the training rows (a transfer set). */
  unlabeled: path.optional(),
});

const csv = z.strictObject({
  /** The CSV file (numeric feature columns and a label column). */
  path,
  labelColumn: z.union([z.string().min(1), z.int().min(0)]),
  /** A CSV file of test rows; else `testFraction` of the rows are held out (seeded). */
  testPath: path.optional(),
  testFraction: z.number().gt(0).lt(1).default(0.2),
  /** A CSV file of unlabeled rows (the same feature columns, no label) appended to the training rows. */
  unlabeledPath: path.optional(),
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
        const unlabeled = k.unlabeled;
        return {
          name: 'Fashion-MNIST',
          ...trainingParts(train, k, unlabeled === undefined ? undefined : () => loadUnlabeledImages(unlabeled)),
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
        const loaded = loadCsv({ path: k.path, labelColumn: k.labelColumn });
        let all = loaded;
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
        const unlabeledPath = k.unlabeledPath;
        return {
          name: k.path,
          ...trainingParts(
            all,
            k,
            unlabeledPath === undefined ? undefined : () => loadUnlabeledCsv({ path: unlabeledPath, like: loaded }),
          ),
          test,
          ...(k.augment && { augment: k.augment }),
        };
      },
    }),
  );
