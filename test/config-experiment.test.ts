import { test } from 'node:test';
import { z } from 'zod';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { experimentYaml } from '../src/config/experiment.js';
import { loadExperiment } from '../src/experiment/load.js';
import { runExperiment } from '../src/experiment/run.js';
import { fileSystem } from '../src/io/index.js';
import { crossEntropyTerm, knowledge, defineTerm } from '../src/knowledge/index.js';
import { buildModel } from '../src/models/index.js';
import { assertUserError } from './helpers.js';

const BASE = `name: t
seeds: [1]
data:
  key: fashion-mnist
  kwargs: {subset: 100}
teacher:
  key: file
  kwargs: {path: teacher/model.json}
students:
  - name: s
    model: {key: mlp, kwargs: {hidden: [8]}}
knowledge:
  - key: kd
    kwargs:
      temperature: 4
epochs: 1
`;

test('a valid experiment is resolved: defaults filled in, paths absolute, YAML round trip', () => {
  const { config } = loadExperiment({ path: 't.yaml', text: BASE });
  assert.equal(config.baseline, true);
  assert.deepEqual(config.scheme, { key: 'offline', kwargs: {} });
  assert.deepEqual(config.optimizer, { key: 'adam', kwargs: { learningRate: 0.001 } }); // the optimizer's default, filled in
  assert.equal(config.batchSize, 64);
  assert.equal(config.schedule, 'constant');
  assert.equal(config.out, resolve('runs/t'));
  assert.deepEqual(config.data.kwargs, { subset: 100, validationFraction: 0.1, seed: 1 });
  assert.equal(config.teacher.kwargs['path'], resolve('teacher/model.json'));
  assert.deepEqual(config.knowledge, [
    { key: 'kd', weight: 1, kwargs: { temperature: 4, alpha: 0.9, standardize: false } },
  ]); // alpha, standardize: kd's defaults
  const again = loadExperiment({ path: 'experiment.yaml', text: experimentYaml(config) }).config;
  assert.deepEqual(again, config);
});

test('--set overrides values (parsed as YAML) and creates missing keys', () => {
  const { config } = loadExperiment({
    path: 't.yaml',
    text: BASE,
    set: ['epochs=3', 'seeds=[1, 2]', 'knowledge[0].kwargs.alpha=0.5', 'schedule=cosine'],
  });
  assert.equal(config.epochs, 3);
  assert.deepEqual(config.seeds, [1, 2]);
  assert.deepEqual(config.knowledge[0]!.kwargs, { temperature: 4, alpha: 0.5, standardize: false });
  assert.equal(config.schedule, 'cosine');
  const stopping = loadExperiment({ path: 't.yaml', text: BASE, set: ['earlyStopping={patience: 2}'] }).config
    .earlyStopping;
  assert.deepEqual(stopping, { patience: 2, minDelta: 0 });
  assert.equal(loadExperiment({ path: 't.yaml', text: BASE }).config.earlyStopping, undefined);
});

test('mistakes name the file, line and path in one line', () => {
  const cases: Array<[string, RegExp, string[]?]> = [
    [
      BASE.replace('epochs: 1', 'epoch: 1'),
      /^t\.yaml:16: unknown key `epoch` at the top level \(did you mean `epochs`\?\); known: name, description, seeds, backend, out, data, teacher, students, knowledge, baseline, scheme, optimizer, schedule, epochs, earlyStopping, batchSize, evaluation, export, quantizationAware \(and 1 more problem\)$/,
    ],
    [BASE.replace('epochs: 1', 'epochs: three'), /^t\.yaml:16: epochs must be a number \(got "three"\)$/],
    [BASE.replace('epochs: 1', 'epochs: 0'), /^t\.yaml:16: epochs must be > 0 \(got 0\)$/],
    [
      BASE.replace('temperature: 4', 'temperature: -1'),
      /^t\.yaml:15: knowledge\[0\]\.kwargs\.temperature must be > 0 \(got -1\)$/,
    ],
    [
      BASE.replace('temperature: 4', 'temprature: 4'),
      /^t\.yaml:15: unknown key `temprature` in knowledge\[0\]\.kwargs \(did you mean `temperature`\?\); known: temperature, alpha, standardize$/,
    ],
    [
      BASE.replace('key: kd', 'key: kdd'),
      /^t\.yaml:13: knowledge\[0\]\.key: unknown knowledge term `kdd` \(did you mean `kd`\?\); known: .*\bce, .*\bkd, .*$/,
    ],
    [
      BASE.replace('key: mlp', 'key: transformer'),
      /^t\.yaml:11: students\[0\]\.model\.key: unknown model `transformer`; known: cnn, dwsep, mlp, resnet$/,
    ],
    [
      BASE.replace('hidden: [8]', 'hiden: [8]'),
      /^t\.yaml:11: unknown key `hiden` in students\[0\]\.model\.kwargs \(did you mean `hidden`\?\); known: width, init, hidden, dropout$/,
    ],
    [
      BASE.replace('hidden: [8]', 'hidden: 8'),
      /^t\.yaml:11: students\[0\]\.model\.kwargs\.hidden must be a list \(got 8\)$/,
    ],
    [
      BASE.replace('key: fashion-mnist', 'key: mnist'),
      /^t\.yaml:4: data\.key: unknown data source `mnist`; known: csv, fashion-mnist$/,
    ],
    [
      BASE.replace('key: file', 'key: onnx'),
      /^t\.yaml:7: teacher\.key: unknown teacher source `onnx`; known: file, multi, none, train$/,
    ],
    [
      BASE.replace('kwargs: {path: teacher/model.json}', 'kwargs: {file: t.json}'),
      /^t\.yaml:8: unknown key `file` in teacher\.kwargs; known: path, logits, layout, inputName, outputName/,
    ],
    [
      BASE.replace('kwargs: {path: teacher/model.json}', 'kwargs: {model: {key: cnn, kwargs: {widht: 1}}}').replace(
        'key: file',
        'key: train',
      ),
      /^t\.yaml:8: unknown key `widht` in teacher\.kwargs\.model\.kwargs; known: width, init, blocks, convsPerBlock, dense, dropout$/,
    ],
    [
      BASE.replace('name: t', 'name: "my run"'),
      /^t\.yaml:1: name must start with a letter or digit and hold only letters, digits, "\.", "_" and "-" \(got "my run"\)$/,
    ],
    [
      BASE.replace('knowledge:', '  - name: s\n    model: {key: mlp}\nknowledge:'),
      /^t\.yaml:12: students\[1\]\.name must be unique \(`s` is used twice\)$/,
    ],
    [
      BASE.replace('epochs: 1', 'epochs: !!js/function "return 1"'),
      /^t\.yaml:16: YAML tag `!!js\/function` is not allowed; configs are plain data \(remove the tag\)$/,
    ],
    [BASE.replace('epochs: 1', 'epochs: !include other.yaml'), /^t\.yaml:16: YAML tag `!include` is not allowed/],
    [BASE.replace('seeds: [1]', 'seeds: [1'), /^t\.yaml:\d+: YAML syntax error: /],
    ['- a\n- b\n', /^t\.yaml:1: an experiment is a mapping of keys/],
    [
      BASE,
      /^--set knowledge\[0\]\.kwargs\.temperature=-2: knowledge\[0\]\.kwargs\.temperature must be > 0 \(got -2\)$/,
      ['knowledge[0].kwargs.temperature=-2'],
    ],
    [BASE, /^--set epoch=2: unknown key `epoch` at the top level \(did you mean `epochs`\?\)/, ['epoch=2']],
    [BASE, /^--set seeds=\[1, 1\]: seeds must not repeat a seed/, ['seeds=[1, 1]']],
    [BASE, /^--set epochs\.x=1: epochs is not a mapping or list/, ['epochs.x=1']],
    [
      BASE,
      /^--set earlyStopping=\{patience: 0\}: earlyStopping\.patience must be > 0 \(got 0\)$/,
      ['earlyStopping={patience: 0}'],
    ],
  ];
  for (const [text, pattern, set = []] of cases)
    assertUserError(() => loadExperiment({ path: 't.yaml', text, set }), pattern);
});

test('run: an unknown tapped layer and a missing teacher fail before anything is written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'distill-cfg-'));
  const csv = join(dir, 'd.csv');
  writeFileSync(
    csv,
    ['a,b,c,y', ...Array.from({ length: 40 }, (_, i) => `${i % 2},${(i * 7) % 5},${i % 3},${i % 2 ? 'p' : 'q'}`)].join(
      '\n',
    ),
  );
  await tf.setBackend('cpu');
  const teacher = buildModel({ key: 'mlp', kwargs: { hidden: [4] }, inputShape: [3], numClasses: 2, seed: 1 });
  await teacher.save(fileSystem(join(dir, 'teacher')));
  if (!knowledge.has('test-tap')) {
    knowledge.register(
      'test-tap',
      defineTerm(z.strictObject({ layer: z.string() }), (o) => ({
        ...crossEntropyTerm({}),
        key: 'test-tap',
        needs: { teacher: false, studentTaps: [o.layer] },
      })),
    );
  }
  const experiment = join(dir, 'exp.yaml');
  writeFileSync(
    experiment,
    `name: tap
data: {key: csv, kwargs: {path: ${csv}, labelColumn: y}}
teacher: {key: file, kwargs: {path: ${join(dir, 'teacher')}}}
students:
  - name: s
    model: {key: mlp, kwargs: {hidden: [4]}}
knowledge:
  - key: test-tap
    kwargs: {layer: fc9}
epochs: 1
backend: cpu
`,
  );
  const out = join(dir, 'run');
  const quiet = { out, progress: 'quiet' as const, log: () => {} };
  await assert.rejects(
    runExperiment({ file: experiment, ...quiet }),
    /^UserError: .*exp\.yaml:9: knowledge\[0\]\.kwargs: student s has no layer `fc9`; layers: input \[3\], flatten \[3\], fc1 \[4\], features \[4\], logits \[2\]$/,
  );
  await assert.rejects(
    runExperiment({
      file: experiment,
      ...quiet,
      set: ['knowledge[0].key=ce', 'knowledge[0].kwargs={}', `teacher.kwargs.path=${join(dir, 'nope.json')}`],
    }),
    /^UserError: --set teacher\.kwargs\.path=.*nope\.json: teacher\.kwargs\.path: teacher file .*nope\.json does not exist/,
  );
  assert.equal(existsSync(out), false, 'no partial output');
});
