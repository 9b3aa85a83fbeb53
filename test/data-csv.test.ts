import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCsv } from '../src/data/csv.js';
import { assertUserError } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'distill-csv-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function csvFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const IRIS = `\uFEFFsepal_length,sepal_width,species,petal_length
5.1, 3.5,setosa,1.4
7.0,3.2,versicolor,4.7

6.3,3.3,virginica,6.0
4.9,3.0,setosa,1.4
`;

test('string labels become sorted class ids; features keep column order', () => {
  const d = loadCsv({ path: csvFile('iris.csv', IRIS), labelColumn: 'species' });
  assert.equal(d.size, 4);
  assert.deepEqual(d.sampleShape, [3]);
  assert.deepEqual(d.classNames, ['setosa', 'versicolor', 'virginica']);
  assert.equal(d.numClasses, 3);
  assert.deepEqual([...d.labels], [0, 1, 2, 0]);
  assert.deepEqual([...d.features.subarray(0, 3)], [5.1, 3.5, 1.4].map(Math.fround));
});

test('featureColumns picks and orders columns, by name or index', () => {
  const path = csvFile('iris2.csv', IRIS);
  const d = loadCsv({ path, labelColumn: 2, featureColumns: ['petal_length', 0] });
  assert.deepEqual(d.sampleShape, [2]);
  assert.deepEqual([...d.features.subarray(0, 2)], [1.4, 5.1].map(Math.fround));
});

test('integer labels are ordered numerically, without a header', () => {
  const d = loadCsv({ path: csvFile('ints.csv', '1,10\n2,9\n3,2\n4,10\n'), labelColumn: 1, header: false });
  assert.deepEqual(d.classNames, ['2', '9', '10']);
  assert.deepEqual([...d.labels], [2, 1, 0, 2]);
  assert.deepEqual([...d.features], [1, 2, 3, 4]);
});

test('a non-numeric value names file, line and column', () => {
  const path = csvFile('bad.csv', 'a,b,label\n1,2,x\n3,oops,y\n');
  assertUserError(
    () => loadCsv({ path, labelColumn: 'label' }),
    `${path}: line 3, column "b": "oops" is not a number; fix the value or leave the column out of featureColumns`,
  );
  const empty = csvFile('empty-cell.csv', '1,2,x\n3,,y\n');
  assertUserError(
    () => loadCsv({ path: empty, labelColumn: 2, header: false }),
    `${empty}: line 2, column 1: "" is not a number; fix the value or leave the column out of featureColumns`,
  );
});

test('unknown columns, ragged rows, missing labels and missing files are one-line UserErrors', () => {
  const path = csvFile('cols.csv', 'a,b,label\n1,2,x\n');
  assertUserError(
    () => loadCsv({ path, labelColumn: 'class' }),
    `${path}: no label column "class"; columns: a, b, label`,
  );
  assertUserError(
    () => loadCsv({ path, labelColumn: 'label', featureColumns: [5] }),
    `${path}: feature column 5 does not exist; the file has columns 0..2`,
  );
  const ragged = csvFile('ragged.csv', 'a,b,label\n1,2,x\n3,y\n');
  assertUserError(
    () => loadCsv({ path: ragged, labelColumn: 'label' }),
    `${ragged}: Invalid Record Length: expect 3, got 2 on line 3; fix the CSV file`,
  );
  const unlabeled = csvFile('unlabeled.csv', 'a,label\n1,x\n2,\n');
  assertUserError(
    () => loadCsv({ path: unlabeled, labelColumn: 'label' }),
    `${unlabeled}: line 3, label column "label" is empty; give every row a label, or put unlabeled rows in a file of their own (unlabeledPath)`,
  );
  assertUserError(
    () => loadCsv({ path, labelColumn: 'label', header: false }),
    `${path}: label column "label" needs a header line; give a column index or set header: true`,
  );
  const headerOnly = csvFile('header-only.csv', 'a,label\n');
  assertUserError(
    () => loadCsv({ path: headerOnly, labelColumn: 'label' }),
    `${headerOnly}: no data rows; check the file`,
  );
  const missing = join(dir, 'missing.csv');
  assertUserError(
    () => loadCsv({ path: missing, labelColumn: 'label' }),
    `${missing}: cannot read (ENOENT); check the path`,
  );
});
