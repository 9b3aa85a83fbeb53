/** Tabular classification data from a CSV file: numeric feature columns plus a label column. */
import { readFileSync } from 'node:fs';
import { CsvError, parse } from 'csv-parse/sync';
import { UserError } from '../errors.js';
import { Dataset, UNLABELED } from './dataset.js';

export interface LoadCsvOptions {
  path: string;
  /** The label column: a header name, or a 0-based column index. */
  labelColumn: string | number;
  /** The first line names the columns. Default true. */
  header?: boolean;
  /** Feature columns (names or 0-based indices). Default: every column but the label. */
  featureColumns?: (string | number)[];
}

/**
 * Reads a CSV file into a Dataset with sample shape `[D]` (D = number of feature columns).
 * Labels, strings or integers, become class ids in sorted order (numeric order when all
 * labels are integers); `classNames` holds the original label text. Features are not
 * normalized: use `computeStats()` on the training part and `normalize()` on every part.
 */
export function loadCsv({ path, labelColumn, header = true, featureColumns }: LoadCsvOptions): Dataset {
  const { names, rows, width, columnIndex } = readCsv(path, header);
  const labelIndex = columnIndex(labelColumn, 'label');
  const featureIndices =
    featureColumns === undefined
      ? [...Array(width).keys()].filter((c) => c !== labelIndex)
      : featureColumns.map((c) => columnIndex(c, 'feature'));
  if (featureIndices.length === 0) throw new UserError(`${path}: no feature columns besides the label; check the file`);
  const features = readFeatures(path, names, rows, featureIndices);
  const labelText: string[] = [];
  for (const { record, info } of rows) {
    const label = record[labelIndex]!;
    if (label === '') {
      throw new UserError(
        `${path}: line ${info.lines}, label column ${describeColumn(names, labelIndex)} is empty; give every row a label, or put unlabeled rows in a file of their own (unlabeledPath)`,
      );
    }
    labelText.push(label);
  }

  const classNames = [...new Set(labelText)];
  const integers = classNames.every((l) => /^[+-]?\d+$/.test(l));
  classNames.sort(integers ? (a, b) => Number(a) - Number(b) : undefined);
  const classId = new Map(classNames.map((name, id) => [name, id]));
  const labels = Int32Array.from(labelText, (l) => classId.get(l)!);
  const dataset = new Dataset({
    features,
    labels,
    sampleShape: [featureIndices.length],
    numClasses: classNames.length,
    classNames,
  });
  featureNamesOf.set(dataset, names ? featureIndices.map((c) => names[c]!) : undefined);
  return dataset;
}

/** The feature column names a dataset was read with (for reading its unlabeled rows alike). */
const featureNamesOf = new WeakMap<Dataset, string[] | undefined>();

export interface LoadUnlabeledCsvOptions {
  path: string;
  /** The labeled dataset (from `loadCsv`) these rows extend: its classes, and its feature columns by name. */
  like: Dataset;
  header?: boolean;
}

/**
 * Reads a CSV file of rows without labels (a transfer set): the feature columns of `like`, found
 * by name when both files have a header (extra columns, such as an empty label column, are
 * ignored), else every column in order. Every row's label is `UNLABELED`.
 */
export function loadUnlabeledCsv({ path, like, header = true }: LoadUnlabeledCsvOptions): Dataset {
  const { names, rows, width, columnIndex } = readCsv(path, header);
  const wanted = featureNamesOf.get(like);
  const featureIndices =
    wanted !== undefined && names !== undefined
      ? wanted.map((n) => columnIndex(n, 'feature'))
      : [...Array(width).keys()];
  if (featureIndices.length !== like.sampleSize) {
    throw new UserError(
      `${path}: ${featureIndices.length} feature columns, but the labeled data has ${like.sampleSize}; give the unlabeled file the same feature columns`,
    );
  }
  return new Dataset({
    features: readFeatures(path, names, rows, featureIndices),
    labels: new Int32Array(rows.length).fill(UNLABELED),
    sampleShape: [featureIndices.length],
    numClasses: like.numClasses,
    ...(like.classNames !== undefined && { classNames: like.classNames }),
  });
}

type Row = { record: string[]; info: { lines: number } };

function describeColumn(names: string[] | undefined, c: number): string {
  return names ? `"${names[c]}"` : String(c);
}

/** The parsed rows of a CSV file, its header, and a column lookup that fails with one line. */
function readCsv(path: string, header: boolean) {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new UserError(`${path}: cannot read (${code}); check the path`);
  }
  let rows: Row[];
  try {
    rows = parse(text, { bom: true, trim: true, skip_empty_lines: true, info: true });
  } catch (e) {
    if (e instanceof CsvError) throw new UserError(`${path}: ${e.message}; fix the CSV file`);
    throw e;
  }
  const names = header ? rows.shift()?.record : undefined;
  if (rows.length === 0) throw new UserError(`${path}: no data rows; check the file`);
  const width = rows[0]!.record.length;
  const columnIndex = (column: string | number, role: string): number => {
    if (typeof column === 'number') {
      if (Number.isInteger(column) && column >= 0 && column < width) return column;
      throw new UserError(`${path}: ${role} column ${column} does not exist; the file has columns 0..${width - 1}`);
    }
    const index = names?.indexOf(column) ?? -1;
    if (index >= 0) return index;
    if (names === undefined) {
      throw new UserError(
        `${path}: ${role} column "${column}" needs a header line; give a column index or set header: true`,
      );
    }
    throw new UserError(`${path}: no ${role} column "${column}"; columns: ${names.join(', ')}`);
  };
  return { names, rows, width, columnIndex };
}

/** The feature columns of every row as float32, refusing a cell that is not a finite number. */
function readFeatures(path: string, names: string[] | undefined, rows: Row[], featureIndices: number[]): Float32Array {
  const features = new Float32Array(rows.length * featureIndices.length);
  rows.forEach(({ record, info }, r) => {
    featureIndices.forEach((c, j) => {
      const value = record[c] ?? '';
      const x = value === '' ? NaN : Number(value);
      if (!Number.isFinite(x)) {
        throw new UserError(
          `${path}: line ${info.lines}, column ${describeColumn(names, c)}: "${value}" is not a number; ` +
            'fix the value or leave the column out of featureColumns',
        );
      }
      features[r * featureIndices.length + j] = x;
    });
  });
  return features;
}
