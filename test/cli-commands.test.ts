import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fileSystem } from '../src/io/index.js';
import { distillCli } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');
const dir = mkdtempSync(join(tmpdir(), 'distill-cmd-'));
const csv = join(dir, 'blobs.csv');
writeFileSync(
  csv,
  [
    'a,b,c,d,kind',
    ...Array.from({ length: 120 }, (_, i) => {
      const c = i % 3;
      return `${[0, 1, 2, 3].map((d) => ((d === c ? 2 : 0) + Math.sin(i * 7 + d)).toFixed(4)).join(',')},${['x', 'y', 'z'][c]}`;
    }),
  ].join('\n'),
);
const data = ['--csv', csv, '--label-column', 'kind', '--backend', 'cpu'];

test('train, eval, export: a model from scratch, measured, exported in three encodings', async () => {
  const [teacher, student, typo] = await Promise.all([
    distillCli([
      'train',
      ...data,
      '--model',
      'mlp',
      '--model-kwargs',
      '{hidden: [16]}',
      '--epochs',
      '3',
      '--lr',
      '0.01',
      '--out',
      join(dir, 'teacher'),
      '--quiet',
    ]),
    distillCli([
      'train',
      ...data,
      '--model',
      'mlp',
      '--width',
      '0.5',
      '--model-kwargs',
      '{hidden: [8]}',
      '--epochs',
      '2',
      '--seed',
      '2',
      '--out',
      join(dir, 'student'),
      '--json',
    ]),
    distillCli(['train', ...data, '--model', 'mlp', '--model-kwargs', '{hiden: [8]}', '--out', join(dir, 'typo')]),
  ]);
  assert.equal(teacher.code, 0, teacher.stderr);
  assert.match(teacher.stderr, /trained in [\d.]+ s, validation accuracy [\d.]+ %; saved .*teacher\/model\.json\n$/);
  assert.equal(student.code, 0, student.stderr);
  assert.deepEqual(
    student.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { epoch: number }).epoch),
    [1, 2],
  );
  const training = JSON.parse(readFileSync(join(dir, 'teacher', 'training.json'), 'utf8')) as {
    model: Record<string, unknown>;
    history: unknown[];
  };
  assert.deepEqual(training.model, { key: 'mlp', kwargs: { width: 1, init: 'pytorch', hidden: [16], dropout: 0 } });
  assert.equal(training.history.length, 3);
  assert.equal(typo.code, 1);
  assert.match(
    typo.stderr,
    /^distill: --model-kwargs:1: unknown key `hiden` at the top level \(did you mean `hidden`\?\); known: width, init, hidden, dropout\n$/,
  );
  assert.equal(existsSync(join(dir, 'typo')), false);

  const model = join(dir, 'student', 'model.json');
  const [evaluated, f16, u8, badType, missing] = await Promise.all([
    distillCli(['eval', model, ...data, '--teacher', join(dir, 'teacher'), '--latency-runs', '2', '--json']),
    distillCli(['export', model, '--out', join(dir, 'f16'), '--dtype', 'float16']),
    distillCli(['export', join(dir, 'student'), '--out', join(dir, 'u8'), '--dtype', 'uint8']),
    distillCli(['export', model, '--out', join(dir, 'i4'), '--dtype', 'int4']),
    distillCli(['eval', join(dir, 'nope', 'model.json'), ...data]),
  ]);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  const r = JSON.parse(evaluated.stdout) as Record<string, unknown> & {
    teacher: Record<string, number>;
    bytes: Record<string, number>;
    latencyMs: Record<string, number>;
  };
  assert.equal(r['samples'], 120);
  for (const k of ['accuracy', 'ece', 'params']) assert.equal(typeof r[k], 'number', k);
  for (const e of ['float32', 'float16', 'uint8']) assert.ok(r.bytes[e]! > 0, e);
  assert.ok(r.latencyMs['batch1']! > 0 && r.latencyMs['batch64']! > 0);
  assert.ok(r.teacher['agreement']! >= 0 && r.teacher['agreement']! <= 1 && r.teacher['klToTeacher']! >= 0);

  for (const e of [f16, u8]) assert.equal(e.code, 0, e.stderr);
  assert.match(u8.stderr, /^wrote .*u8\/model\.json \(.*\) and weights\.bin \(.*\), uint8 weights\n$/);
  const bytes = (d: string) => statSync(join(dir, d, 'weights.bin')).size;
  assert.equal(bytes('f16') * 2, bytes('student'));
  assert.ok(bytes('u8') * 4 <= bytes('student'));
  const x = tf.randomNormal([5, 4], 0, 1, 'float32', 1);
  const original = await tf.loadLayersModel(fileSystem(model));
  const quantized = await tf.loadLayersModel(fileSystem(join(dir, 'u8')));
  const diff = tf.tidy(
    () =>
      (original.predict(x) as tf.Tensor)
        .sub(quantized.predict(x) as tf.Tensor)
        .abs()
        .max()
        .dataSync()[0]!,
  );
  assert.ok(diff < 0.1, `uint8 logits within 0.1 (${diff})`);
  for (const [res, pattern] of [
    [badType, /^distill: unknown --dtype `int4`; known: float32, float16, uint8\n$/],
    [
      missing,
      /^distill: model file .*nope\/model\.json does not exist; check the path, or save the model there first\n$/,
    ],
  ] as const) {
    assert.equal(res.code, 1);
    assert.match(res.stderr, pattern);
  }
});

test('every command has --help with examples; compare refuses what is not a finished run', async () => {
  const commands = ['run', 'train', 'eval', 'export', 'compare'];
  const [notRun, ...helps] = await Promise.all([
    distillCli(['compare', dir, '--out', join(dir, 'cmp')]),
    ...commands.map((c) => distillCli([c, '--help'])),
  ]);
  helps.forEach((h, i) => {
    assert.equal(h.code, 0, commands[i]);
    assert.match(h.stdout, new RegExp(`Usage: distill ${commands[i]}`));
    assert.match(h.stdout, /Examples?:\n {2}\$ distill /, commands[i]);
  });
  assert.equal(notRun.code, 1);
  assert.match(
    notRun.stderr,
    /^distill: .* is not a run folder \(no summary\.json\); give folders written by distill run\n$/,
  );
  assert.equal(existsSync(join(dir, 'cmp')), false);
});
