import { loadCsv } from '../data/csv.js';
import type { Dataset } from '../data/dataset.js';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { UserError } from '../errors.js';

export interface DataOptions {
  /** Fashion-MNIST folder (else the usual places), unless `csv` is given. */
  data?: string;
  /** A CSV file of numeric features and a label column. */
  csv?: string;
  labelColumn?: string;
  subset?: number;
  /** Which part: the training rows left after the validation split, the validation rows, or the test set. */
  split?: string;
  validationFraction?: number;
  seed?: number;
}

/**
 * The dataset a command works on. `train` and `validation` are the two parts of the
 * training set split with `validationFraction` and `seed`, exactly as a training run
 * splits it, so cached teacher outputs line up row for row.
 */
export function selectData(o: DataOptions): Dataset {
  const split = o.split ?? 'train';
  if (!['train', 'validation', 'test'].includes(split)) {
    throw new UserError(`unknown split \`${split}\`; known: train, validation, test`);
  }
  let train: Dataset;
  let test: Dataset | undefined;
  if (o.csv !== undefined) {
    if (o.labelColumn === undefined)
      throw new UserError('--csv needs --label-column NAME (the column holding the class)');
    if (split === 'test')
      throw new UserError('a CSV file has no test split; give the test rows as their own CSV file with --split train');
    train = loadCsv({ path: o.csv, labelColumn: o.labelColumn });
    if (o.subset !== undefined) train = train.subset(o.subset);
  } else {
    ({ train, test } = loadFashionMnist({ dir: o.data, trainSubset: o.subset, testSubset: o.subset }));
  }
  if (split === 'test') return test!;
  const fraction = o.validationFraction ?? 0;
  if (fraction === 0) {
    if (split === 'validation') throw new UserError('--split validation needs --validation-fraction > 0');
    return train;
  }
  const parts = train.split({ validationFraction: fraction, seed: o.seed ?? 1 });
  return split === 'train' ? parts.train : parts.validation;
}

/**
 * The training rows and (with `validationFraction` > 0) the validation rows, loaded once:
 * the same split `selectData` makes for `train` and `validation`.
 */
export function selectTrainValidation(o: Omit<DataOptions, 'split'>): { train: Dataset; validation?: Dataset } {
  let all: Dataset;
  if (o.csv !== undefined) {
    if (o.labelColumn === undefined)
      throw new UserError('--csv needs --label-column NAME (the column holding the class)');
    all = loadCsv({ path: o.csv, labelColumn: o.labelColumn });
    if (o.subset !== undefined) all = all.subset(o.subset);
  } else {
    all = loadFashionMnist({ dir: o.data, trainSubset: o.subset, testSubset: 1 }).train;
  }
  const fraction = o.validationFraction ?? 0;
  return fraction === 0 ? { train: all } : all.split({ validationFraction: fraction, seed: o.seed ?? 1 });
}
