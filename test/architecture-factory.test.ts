import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { deriveStudents } from '../src/architecture/factory.js';
import { zooEquivalent } from '../src/architecture/from-layers.js';
import { fileSystem } from '../src/io/index.js';
import { buildModel, countParams, models } from '../src/models/index.js';
import { assertUserError, distillCli } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');

/** A small CNN teacher: [8,8,1] → 3 classes, blocks 8 → 16 of two convs each, dense 32. */
const TEACHER = { key: 'cnn', kwargs: { blocks: [8, 16], convsPerBlock: 2, dense: 32, dropout: 0 } };
const SHAPE = { inputShape: [8, 8, 1], numClasses: 3 };

// conv k×k: k·k·in·out (no bias, BN follows); BN: 4 per channel; dense: in·out + out.
// Two 2×2 pools: 8×8 → 4×4 → 2×2, so the CNN's flatten has 2·2·(last filters) values.
const TEACHER_PARAMS =
  9 * 1 * 8 +
  4 * 8 +
  (9 * 8 * 8 + 4 * 8) +
  (9 * 8 * 16 + 4 * 16) +
  (9 * 16 * 16 + 4 * 16) +
  (64 * 32 + 32) +
  (32 * 3 + 3);

test('candidates of a small CNN: parameter counts by hand', () => {
  assert.equal(TEACHER_PARAMS, 6475);
  const got = deriveStudents({ teacher: TEACHER, ...SHAPE });
  const expected: Array<[string, string, number]> = [
    // width ×0.125: filters 1, 2, dense 4; flatten 2·2·2 = 8
    ['cnn-x0.125', 'width ×0.125', 9 + 4 + (9 + 4) + (18 + 8) + (36 + 8) + (8 * 4 + 4) + (4 * 3 + 3)],
    // width ×0.25: filters 2, 4, dense 8; flatten 16
    ['cnn-x0.25', 'width ×0.25', 18 + 8 + (36 + 8) + (72 + 16) + (144 + 16) + (16 * 8 + 8) + (8 * 3 + 3)],
    // dwsep: stem 3×3×1×8; blocks 8/s1, 16/s2, 16/s1 (the CNN's 2nd, 3rd, 4th convs), each a
    // 3×3 depthwise (9·in) + BN + 1×1 pointwise (in·out) + BN; global pooling → 16 → logits
    [
      'dwsep',
      'depthwise-separable',
      72 + 32 + (72 + 32 + 64 + 32) + (72 + 32 + 128 + 64) + (144 + 64 + 256 + 64) + (16 * 3 + 3),
    ],
    // width ×0.5: filters 4, 8, dense 16; flatten 32
    ['cnn-x0.5', 'width ×0.5', 36 + 16 + (144 + 16) + (288 + 32) + (576 + 32) + (32 * 16 + 16) + (16 * 3 + 3)],
    // MLP from CNN: 8·8·1 = 64 inputs → 32 (the CNN's dense width) → 3
    ['mlp', 'MLP from CNN', 64 * 32 + 32 + (32 * 3 + 3)],
    // 1 conv per block: 3×3×1×8, 3×3×8×16
    ['cnn-1conv', '1 conv per block', 72 + 32 + (1152 + 64) + (64 * 32 + 32) + (32 * 3 + 3)],
    // first block only: one pool, so flatten 4·4·8 = 128 (the dense layer grows)
    ['cnn-1block', 'first 1 block of 2', 72 + 32 + (576 + 32) + (128 * 32 + 32) + (32 * 3 + 3)],
  ];
  assert.deepEqual(
    got.map((c) => [c.name, c.derivation, c.params]),
    expected,
  );
  assert.deepEqual(
    expected.map((e) => e[2]),
    [147, 481, 1179, 1719, 2179, 3499, 4939],
  );
  assert.deepEqual(got.find((c) => c.name === 'dwsep')!.node, {
    key: 'dwsep',
    kwargs: {
      stemFilters: 8,
      stemStride: 1,
      blocks: [
        { filters: 8, stride: 1 },
        { filters: 16, stride: 2 },
        { filters: 16, stride: 1 },
      ],
    },
  });
});

test('every candidate passes its schema and builds with the parameters it reports', () => {
  const teachers = [
    TEACHER,
    { key: 'resnet', kwargs: { stages: [4, 8], blocksPerStage: 2 } },
    { key: 'mlp', kwargs: { hidden: [32, 16, 8] } },
    { key: 'dwsep', kwargs: { stemFilters: 4, blocks: [{ filters: 8 }, { filters: 16, stride: 2 }] } },
  ];
  for (const teacher of teachers) {
    const teacherParams = countOf(teacher);
    const candidates = deriveStudents({ teacher, ...SHAPE, paramsMax: teacherParams / 3 });
    assert.ok(candidates.length >= 3, `${teacher.key}: ${candidates.length} candidates`);
    for (const c of candidates) {
      assert.ok(models.get(c.node.key).kwargs.safeParse(c.node.kwargs).success, `${c.name} fails its schema`);
      assert.equal(countOf(c.node), c.params, c.name);
      assert.ok(c.params < teacherParams);
    }
    assert.deepEqual(
      candidates.map((c) => c.params),
      candidates.map((c) => c.params).sort((a, b) => a - b),
    );
  }
});

test('paramsMax filters, and adds width-fitted candidates just under it', () => {
  const all = deriveStudents({ teacher: TEACHER, ...SHAPE });
  const max = 1500;
  const under = deriveStudents({ teacher: TEACHER, ...SHAPE, paramsMax: max });
  assert.ok(under.every((c) => c.params <= max));
  for (const c of all.filter((a) => a.params <= max)) {
    assert.ok(
      under.some((u) => u.name === c.name),
      `${c.name} (${c.params}) missing`,
    );
  }
  const fitted = under.filter((c) => c.derivation.includes('fit to 1,500 params'));
  // The teacher, 1 conv per block, first block and the MLP are above 1,500: each comes back narrower.
  assert.deepEqual(fitted.map((c) => c.name.replace(/-x[\d.]+$/, '')).sort(), [
    'cnn',
    'cnn-1block',
    'cnn-1conv',
    'mlp',
  ]);
  for (const c of fitted) assert.ok(c.params > 1000, `${c.name}: ${c.params} is not close to the budget`);
  assert.deepEqual(deriveStudents({ teacher: TEACHER, ...SHAPE, paramsMax: 30 }), []);
});

test('a LayersModel that is not a zoo model is read as its zoo equivalent, then derived', () => {
  const teacher = smallSequential();
  const eq = zooEquivalent({ model: teacher });
  assert.deepEqual(eq.node, { key: 'cnn', kwargs: { blocks: [4, 8], convsPerBlock: 1, dense: 16, dropout: 0 } });
  assert.deepEqual([eq.inputShape, eq.numClasses, eq.notes], [[8, 8, 1], 3, []]);
  // conv 3·3·1·4 + 4, conv 3·3·4·8 + 8 (biases, no BN), 2·2·8 → 16, 16 → 3
  const teacherParams = 40 + 296 + (32 * 16 + 16) + (16 * 3 + 3);
  assert.equal(countParams(teacher), teacherParams);
  const candidates = deriveStudents({ teacher });
  assert.ok(candidates.length >= 3);
  assert.ok(candidates.every((c) => c.params < teacherParams));
  // width ×0.5 of the zoo equivalent: conv 3·3·1·2 + BN 8, conv 3·3·2·4 + BN 16, 2·2·4 → 8, 8 → 3
  const half = candidates.find((c) => c.derivation === 'width ×0.5');
  assert.equal(half?.params, 18 + 8 + (72 + 16) + (16 * 8 + 8) + (8 * 3 + 3));
  for (const c of candidates) assert.equal(countOf(c.node), c.params);
  teacher.dispose();

  // Zoo models read back as their own kwargs; a depthwise net as dwsep.
  for (const [key, kwargs] of [
    ['cnn', { blocks: [8, 16], convsPerBlock: 2, dense: 32, dropout: 0.25 }],
    ['resnet', { stages: [4, 8], blocksPerStage: 2, stemStride: 1 }],
    [
      'dwsep',
      {
        stemFilters: 4,
        stemStride: 1,
        blocks: [
          { filters: 8, stride: 1 },
          { filters: 16, stride: 2 },
        ],
      },
    ],
    ['mlp', { hidden: [32, 16], dropout: 0 }],
  ] as const) {
    const m = buildModel({ key, kwargs, ...SHAPE });
    assert.deepEqual(zooEquivalent({ model: m }).node, { key, kwargs }, key);
    m.dispose();
  }
  const mobile = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
      tf.layers.conv2d({ filters: 16, kernelSize: 1, activation: 'relu' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 3 }),
    ],
  });
  assert.deepEqual(zooEquivalent({ model: mobile }).node, {
    key: 'dwsep',
    kwargs: { stemFilters: 8, stemStride: 1, blocks: [{ filters: 16, stride: 2 }] },
  });
  mobile.dispose();
});

test('a bad teacher is refused with one line naming the problem and the fix', () => {
  const seq = tf.sequential({
    layers: [
      tf.layers.conv1d({ inputShape: [10, 2], filters: 4, kernelSize: 3 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3 }),
    ],
  });
  assertUserError(
    () => deriveStudents({ teacher: seq }),
    /layer `conv1d\w*` \(Conv1D\) has no zoo equivalent .*: derive students from a zoo teacher instead/,
  );
  seq.dispose();
  assertUserError(
    () => deriveStudents({ teacher: { key: 'vgg', kwargs: {} }, ...SHAPE }),
    'unknown model `vgg`; known: cnn, dwsep, mlp, resnet',
  );
  assertUserError(
    () => deriveStudents({ teacher: { key: 'cnn', kwargs: { widh: 1 } }, ...SHAPE }),
    /^teacher `cnn`: unknown option `widh` \(did you mean `width`\?\)/,
  );
  assertUserError(
    () => deriveStudents({ teacher: { key: 'cnn', kwargs: {} } }),
    /needs inputShape and numClasses; pass e\.g\. inputShape: \[28, 28, 1\]/,
  );
  assertUserError(
    () => deriveStudents({ teacher: 'cnn' as never, ...SHAPE }),
    /^teacher must be a zoo node \{ key, kwargs \}/,
  );
  assertUserError(() => deriveStudents({ teacher: TEACHER, ...SHAPE, widths: [2] }), /in \(0, 1\), got 2/);
});

test('distill students prints a table (teacher first) and valid --json; bad input is one line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'distill-students-'));
  const saved = smallSequential();
  await saved.save(fileSystem(join(dir, 'teacher')));
  saved.dispose();
  const zoo = [
    'cnn',
    '--kwargs',
    '{blocks: [8, 16], dense: 32, dropout: 0}',
    '--input-shape',
    '8,8,1',
    '--classes',
    '3',
  ];
  const fast = ['--latency-runs', '1', '--backend', 'cpu'];
  // an experiment file's teacher (a zoo node to train) and data (Fashion-MNIST: [28, 28, 1], 10 classes)
  const experiment = join(dir, 'exp.yaml');
  writeFileSync(
    experiment,
    'name: e\ndata: {key: fashion-mnist, kwargs: {subset: 100}}\nteacher: {key: train, kwargs: {model: {key: mlp, kwargs: {hidden: [64]}}}}\n' +
      'students: [{name: s, model: {key: mlp, kwargs: {hidden: [8]}}}]\nknowledge: [{key: kd}]\nepochs: 1\n',
  );
  const [table, json, file, unknown, badKwargs, fromExperiment, grid] = await Promise.all([
    distillCli(['students', ...zoo, ...fast]),
    distillCli(['students', ...zoo, '--params-max', '1500', '--json', ...fast]),
    distillCli(['students', join(dir, 'teacher'), '--json', ...fast]),
    distillCli(['students', 'cnnn', ...fast]),
    distillCli(['students', 'cnn', '--kwargs', '[1, 2]', ...fast]),
    distillCli(['students', experiment, '--json', ...fast]),
    distillCli(['students', ...zoo, '--grid', '--json', ...fast]),
  ]);
  assert.equal(grid.code, 0, grid.stderr);
  const names = (JSON.parse(grid.stdout) as { candidates: Array<{ name: string }> }).candidates.map((c) => c.name);
  for (const n of ['cnn-1conv-1block-x0.5', 'dwsep-2block-x0.25', 'mlp-x0.0625', 'cnn-x0.375'])
    assert.ok(names.includes(n), `--grid lists ${n}`);
  assert.equal(fromExperiment.code, 0, fromExperiment.stderr);
  // mlp [784] → 64 → 10: 784·64 + 64 + 64·10 + 10
  assert.equal(
    (JSON.parse(fromExperiment.stdout) as { teacher: { params: number } }).teacher.params,
    784 * 64 + 64 + 64 * 10 + 10,
  );
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.split('\n');
  assert.match(lines[0]!, /^\| model \| derivation \| params \| float32 \| uint8 \| batch 1 \| batch 64 \|/);
  assert.match(lines[2]!, /^\| `teacher` \| zoo `cnn` \| 6,475 \|/);
  assert.match(lines[3]!, /^\| `cnn-x0\.125` \| width ×0\.125 \| 147 \|/);
  assert.equal(lines.filter((l) => l.startsWith('| `')).length, 8);
  assert.match(table.stdout, /- \{name: dwsep, model: \{key: dwsep, kwargs: \{stemFilters: 8, /);

  assert.equal(json.code, 0, json.stderr);
  const r = JSON.parse(json.stdout) as {
    backend: string;
    teacher: { params: number; latencyMs: { batch1: number } };
    candidates: Array<{ name: string; params: number; bytes: { float32: number; uint8: number }; speedup: object }>;
  };
  assert.equal(r.backend, 'cpu');
  assert.equal(r.teacher.params, 6475);
  assert.ok(r.teacher.latencyMs.batch1 > 0);
  assert.ok(r.candidates.length > 0 && r.candidates.every((c) => c.params <= 1500));
  for (const c of r.candidates) assert.ok(c.bytes.uint8 > 0 && c.bytes.float32 > 0 && 'batch64' in c.speedup, c.name);

  assert.equal(file.code, 0, file.stderr);
  assert.match(file.stderr, /teacher read as cnn \{blocks: \[4, 8\], convsPerBlock: 1, dense: 16, dropout: 0\}/);
  assert.equal((JSON.parse(file.stdout) as { teacher: { params: number } }).teacher.params, 915);

  assert.equal(unknown.code, 1);
  assert.match(
    unknown.stderr,
    /^distill: unknown teacher `cnnn` \(did you mean `cnn`\?\); give a zoo model .*model\.json\n$/,
  );
  assert.equal(badKwargs.code, 1);
  assert.match(badKwargs.stderr, /^distill: --kwargs must be a mapping .*--kwargs '\{width: 1, convsPerBlock: 1\}'\n$/);
});

/** A Keras-style conv net (biases, no batch norm, softmax head): [8,8,1] → 3. */
function smallSequential(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 16, activation: 'relu' }),
      tf.layers.dense({ units: 3, activation: 'softmax' }),
    ],
  });
}

function countOf(node: { key: string; kwargs: Record<string, unknown> }): number {
  const m = buildModel({ ...node, ...SHAPE });
  try {
    return countParams(m);
  } finally {
    m.dispose();
  }
}

test('grid: every family × depth × width, each structure also fitted to the budget', () => {
  const widths = [0.5, 0.25];
  const grid = deriveStudents({ teacher: TEACHER, ...SHAPE, widths, grid: true });
  const structures = [...new Set(grid.map((c) => c.structure))].sort();
  // cnn: 2 convs × 2 blocks (1 conv, 1 block, both); dwsep: 3 blocks, then 2 and 1; MLP from CNN.
  assert.deepEqual(structures, [
    'cnn',
    'cnn-1block',
    'cnn-1conv',
    'cnn-1conv-1block',
    'dwsep',
    'dwsep-1block',
    'dwsep-2block',
    'mlp',
  ]);
  for (const s of structures.filter((x) => x !== 'cnn')) {
    // Each structure at full width (when smaller than the teacher) and at every multiplier.
    for (const m of widths)
      assert.ok(
        grid.some((c) => c.name === `${s}-x${m}`),
        `${s}-x${m} missing`,
      );
  }
  const byName = new Map(grid.map((c) => [c.name, c]));
  assert.deepEqual(byName.get('dwsep-2block-x0.5')!.node, {
    key: 'dwsep',
    kwargs: {
      stemFilters: 8,
      stemStride: 1,
      blocks: [
        { filters: 8, stride: 1 },
        { filters: 16, stride: 2 },
      ],
      width: 0.5,
    },
  });
  assert.equal(byName.get('cnn-1conv-1block-x0.25')!.derivation, '1 conv per block, first 1 block of 2, width ×0.25');
  for (const c of grid) assert.equal(countOf(c.node), c.params, c.name);
  // The one-change-at-a-time set is a subset of the grid.
  for (const c of deriveStudents({ teacher: TEACHER, ...SHAPE, widths })) {
    assert.ok(
      grid.some((g) => g.name === c.name && g.params === c.params),
      `${c.name} missing from the grid`,
    );
  }
  const max = 1500;
  const fitted = deriveStudents({ teacher: TEACHER, ...SHAPE, widths, grid: true, paramsMax: max });
  assert.ok(fitted.every((c) => c.params <= max));
  const fits = fitted.filter((c) => c.derivation.includes('fit to 1,500 params'));
  assert.ok(fits.length >= 4, `${fits.map((c) => c.name)}`);
  for (const c of fits) assert.ok(c.params > 1000, `${c.name}: ${c.params} is not close to the budget`);
});
