import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UNLABELED } from '../src/data/dataset.js';
import { writeIdx } from '../src/data/idx.js';
import { dataSources } from '../src/data/sources.js';
import type { RunReport } from '../src/eval/types.js';
import { runExperiment } from '../src/experiment/run.js';
import { createTerm } from '../src/knowledge/index.js';
import { labelCrossEntropy } from '../src/knowledge/response/common.js';
import { assertUserError, blobs, close, SMALL_SLICE, smallTeacher } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');

const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), `distill-${prefix}-`));

test('keepLabels hides all but N labels (seeded), labeledOnly and concat keep rows and classes', () => {
  const d = blobs(200, 3);
  const few = d.keepLabels(30, 7);
  assert.equal(few.size, 200);
  assert.equal(few.labeledSize, 30);
  assert.deepEqual(few.labels, d.keepLabels(30, 7).labels, 'the same seed keeps the same rows');
  assert.notDeepEqual(few.labels, d.keepLabels(30, 8).labels);
  few.labels.forEach((l, i) => assert.ok(l === UNLABELED || l === d.labels[i], `row ${i} keeps its own label`));
  const labeled = few.labeledOnly();
  assert.equal(labeled.size, 30);
  assert.ok(labeled.labels.every((l) => l >= 0));
  assert.equal(d.labeledOnly(), d, 'a fully labeled dataset is its own labeled part');
  const both = labeled.concat(few);
  assert.equal(both.size, 230);
  assert.equal(both.labeledSize, 60);
  assertUserError(
    () => d.keepLabels(201, 1),
    'labeled must be a whole number in 1..200 (the labeled training rows), got 201',
  );
  assertUserError(() => d.keepLabels(0, 1), /got 0$/);
});

test('label cross-entropy: unlabeled rows add nothing, the mean runs over labeled rows', () => {
  const logits = tf.tensor2d([
    [2, 0, -1],
    [0.5, 0.1, 0.3],
    [-1, 3, 0],
    [0, 0, 4],
  ]);
  const labels = tf.tensor1d([0, UNLABELED, 1, UNLABELED], 'int32');
  const onLabeled = labelCrossEntropy(tf.gather(logits, [0, 2]) as tf.Tensor2D, tf.tensor1d([0, 1], 'int32'));
  close(labelCrossEntropy(logits, labels).dataSync()[0]!, onLabeled.dataSync()[0]!, 1e-6);
  close(
    labelCrossEntropy(logits, labels, 0.1).dataSync()[0]!,
    labelCrossEntropy(tf.gather(logits, [0, 2]) as tf.Tensor2D, tf.tensor1d([0, 1], 'int32'), 0.1).dataSync()[0]!,
    1e-6,
    'with label smoothing',
  );
  const none = tf.tensor1d([UNLABELED, UNLABELED, UNLABELED, UNLABELED], 'int32');
  assert.equal(Math.abs(labelCrossEntropy(logits, none).dataSync()[0]!), 0);
  const grad = tf.grad((z: tf.Tensor) => labelCrossEntropy(z as tf.Tensor2D, labels))(logits);
  const g = grad.arraySync() as number[][];
  assert.deepEqual([g[1], g[3]].flat().map(Math.abs), [0, 0, 0, 0, 0, 0], 'no gradient from unlabeled rows');
  // kd: its label part skips the row, its teacher part does not
  const kd = createTerm('kd', { temperature: 2, alpha: 0.5 });
  const teacher = tf.tensor2d([
    [1, 0, 0],
    [0, 2, 0],
    [0, 1, 0],
    [0, 0, 1],
  ]);
  const parts = kd.compute({ studentLogits: logits, teacherLogits: teacher, labels, numClasses: 3 });
  close(parts.ce!.dataSync()[0]!, 0.5 * onLabeled.dataSync()[0]!, 1e-6);
  const kg = tf.grad(
    (z: tf.Tensor) =>
      kd.compute({ studentLogits: z as tf.Tensor2D, teacherLogits: teacher, labels, numClasses: 3 }).kd!,
  )(logits);
  assert.ok(Math.abs((kg.arraySync() as number[][])[1]![1]!) > 1e-3, 'the teacher term learns from unlabeled rows');
});

test('dkd and nkd take the teacher top class as the target of an unlabeled row', () => {
  const student = tf.tensor2d([
    [0.2, 1.5, -0.3, 0.1],
    [1, 0, 0.5, -1],
  ]);
  const teacher = tf.tensor2d([
    [0.1, 3, 0, -1],
    [0, 0.5, 2.5, 0],
  ]);
  for (const key of ['dkd', 'nkd']) {
    const term = createTerm(key, key === 'dkd' ? { ceWeight: 0 } : {});
    const value = (labels: number[]) => {
      const parts = term.compute({
        studentLogits: student,
        teacherLogits: teacher,
        labels: tf.tensor1d(labels, 'int32'),
        numClasses: 4,
      });
      return Object.values(parts).reduce((a, p) => a + p.dataSync()[0]!, 0);
    };
    close(value([UNLABELED, UNLABELED]), value([1, 2]), 1e-6, key);
    assert.ok(Math.abs(value([UNLABELED, UNLABELED]) - value([0, 0])) > 1e-4, `${key} depends on the target`);
  }
});

test('unlabeled files: an IDX of images for fashion-mnist, a CSV without the label column', () => {
  const dir = tmp('unlabeled');
  const images = new Uint8Array(7 * 28 * 28).map((_, i) => i % 251);
  writeIdx({ path: join(dir, 'extra-images-idx3-ubyte'), array: { dtype: 'uint8', dims: [7, 28, 28], data: images } });
  const fm = dataSources.get('fashion-mnist');
  const kwargs = (k: Record<string, unknown>) => fm.kwargs.parse({ subset: 300, validationFraction: 0.1, ...k });
  const plain = fm.load(kwargs({}));
  const withExtra = fm.load(kwargs({ unlabeled: join(dir, 'extra-images-idx3-ubyte') }));
  assert.equal(withExtra.train.size, plain.train.size + 7);
  assert.equal(withExtra.train.labeledSize, plain.train.size);
  assert.equal(withExtra.validation!.labeledSize, withExtra.validation!.size, 'validation keeps its labels');
  close(withExtra.train.features[plain.train.size * 784 + 5]!, 5 / 255, 1e-7, 'pixels scaled as the labeled ones');
  const few = fm.load(kwargs({ labeled: 40 }));
  assert.equal(few.train.labeledSize, 40);
  assert.equal(few.teacherTrain!.labeledSize, few.train.size, 'the teacher keeps every label');
  writeIdx({ path: join(dir, 'labels'), array: { dtype: 'uint8', dims: [7], data: new Uint8Array(7) } });
  assertUserError(
    () => fm.load(kwargs({ unlabeled: join(dir, 'labels') })),
    /labels: expected uint8 \[N, 28, 28\], found uint8 \[7\]; give an IDX file of uint8 \[N, 28, 28\] images/,
  );

  writeFileSync(join(dir, 'l.csv'), 'a,b,label\n1,2,x\n2,1,y\n1,1,x\n3,3,y\n0,1,x\n');
  writeFileSync(join(dir, 'u.csv'), 'b,a\n10,20\n30,40\n');
  writeFileSync(join(dir, 'bad.csv'), 'a,c\n1,2\n');
  const csv = dataSources.get('csv');
  const ck = (k: Record<string, unknown>) =>
    csv.kwargs.parse({
      path: join(dir, 'l.csv'),
      labelColumn: 'label',
      testFraction: 0.2,
      validationFraction: 0,
      ...k,
    });
  const d = csv.load(ck({ unlabeledPath: join(dir, 'u.csv') }));
  assert.equal(d.train.size, 6);
  assert.equal(d.train.labeledSize, 4);
  assert.deepEqual([...d.train.features.subarray(8)], [20, 10, 40, 30], 'columns matched by name');
  assertUserError(
    () => csv.load(ck({ unlabeledPath: join(dir, 'bad.csv') })),
    /bad\.csv: no feature column "b"; columns: a, c/,
  );
});

test('a run with few labels: the report counts them, the baseline learns from the labeled rows for as many steps', async () => {
  const cache = tmp('unlabeled-cache');
  const lines: string[] = [];
  const out = join(tmp('unlabeled-run'), 'run');
  await runExperiment({
    file: 'examples/kd.yaml',
    set: [...SMALL_SLICE, ...smallTeacher('teacher.kwargs', cache), 'data.kwargs.labeled=108', `out=${out}`],
    progress: 'quiet',
    log: (l) => lines.push(l),
  });
  const report = JSON.parse(readFileSync(join(out, 'seed-1', 'report.json'), 'utf8')) as RunReport;
  // 960 rows, 96 for validation: 864 training rows, 108 of them labeled → 2 × 864 / 108 = 16 epochs
  assert.deepEqual(report.dataset, { name: 'Fashion-MNIST', train: 864, test: 500, labeled: 108 });
  assert.ok(
    lines.some((l) => l.includes('learns from the labels only (108 labeled of 864 rows, 16 epochs')),
    lines.join('\n'),
  );
  const md = readFileSync(join(out, 'seed-1', 'report.md'), 'utf8');
  assert.ok(md.includes('864 train (108 labeled, 756 unlabeled)'));
  const baseline = report.models.find((m) => m.name.endsWith('(labels)'))!;
  assert.ok(baseline.accuracy! > 0.2, 'the baseline beats chance');
  // The teacher ignores `labeled`: the same cached teacher serves a run with every label.
  const again: string[] = [];
  await runExperiment({
    file: 'examples/kd.yaml',
    set: [...SMALL_SLICE, ...smallTeacher('teacher.kwargs', cache), `out=${out}-all`],
    progress: 'quiet',
    log: (l) => again.push(l),
  });
  assert.ok(
    again.some((l) => /^teacher: .* loaded from /.test(l)),
    again.join('\n'),
  );
});
