import { test } from 'node:test';
import { parse } from 'yaml';
import { loadExperiment } from '../src/experiment/load.js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fileSystem } from '../src/io/index.js';

/** Runs the real `distill` CLI in a child process. */
function distill(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, DISTILL_DATA: '', ...env },
    timeout: 300_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('distill doctor names the backend and why, and the data found', () => {
  const r = distill(['doctor', '--json', '--backend', 'wasm']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { backend: string; why: string; fashionMnist: string };
  assert.equal(info.backend, 'wasm');
  assert.match(info.why, /asked for by --backend/);
});

test('user mistakes exit 1 with one line and no stack trace', () => {
  const empty = mkdtempSync(join(tmpdir(), 'distill-cli-'));
  for (const [args, pattern] of [
    [['doctor', '--backend', 'tpu'], /^distill: unknown backend `tpu`; known: auto, native, wasm, cpu\n$/],
    [
      ['quickstart', '--data', empty, '--out', join(empty, 'out')],
      /^distill: Fashion-MNIST not found; searched --data .*apt-get install dataset-fashion-mnist.*\n$/,
    ],
  ] as const) {
    const r = distill([...args]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  assert.ok(!existsSync(join(empty, 'out')), 'no partial output');
  const bad = distill(['quickstart', '--epochs', 'three']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /expected a whole number, got "three"/);
});

test('distill quickstart on a small slice writes the report and a loadable student', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'distill-qs-'));
  const out = join(dir, 'run');
  const r = distill([
    'quickstart',
    '--subset',
    '600',
    '--epochs',
    '1',
    '--teacher-epochs',
    '1',
    '--out',
    out,
    '--cache',
    join(dir, 'cache'),
    '--backend',
    'wasm',
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const epochs = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { model: string; losses: Record<string, number> });
  assert.deepEqual(
    epochs.map((e) => e.model),
    ['teacher', 'student (labels)', 'student (kd)'],
  );
  assert.deepEqual(Object.keys(epochs[2]!.losses).sort(), ['ce', 'kd', 'loss']);
  const report = JSON.parse(readFileSync(join(out, 'seed-1', 'report.json'), 'utf8')) as {
    models: Array<Record<string, unknown>>;
  };
  assert.equal(report.models.length, 3);
  for (const m of report.models) {
    for (const key of ['params', 'bytes', 'accuracy', 'agreement', 'klToTeacher', 'ece', 'latencyMs'])
      assert.ok(key in m, key);
  }
  assert.ok(readdirSync(join(out, 'seed-1', 'plots')).includes('tradeoff.png'));
  const student = await tf.loadLayersModel(fileSystem(join(out, 'seed-1', 'students', 'student')));
  assert.deepEqual(student.outputs[0]!.shape, [null, 10]);
  // A second run replaces the first one's folder and reuses the cached teacher instead of training it again.
  const again = distill([
    'quickstart',
    '--subset',
    '600',
    '--epochs',
    '1',
    '--teacher-epochs',
    '1',
    '--out',
    out,
    '--cache',
    join(dir, 'cache'),
    '--backend',
    'wasm',
    '--quiet',
  ]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /teacher: .* loaded from/);
  // the same run as an experiment file: --print-config gives the YAML distill run accepts
  const printed = distill(['quickstart', '--print-config', '--subset', '600', '--epochs', '3', '--seeds', '1,2']);
  assert.equal(printed.code, 0, printed.stderr);
  const config = parse(printed.stdout) as {
    name: string;
    seeds: number[];
    epochs: number;
    data: { kwargs: { subset: number } };
  };
  assert.deepEqual(
    [config.name, config.seeds, config.epochs, config.data.kwargs.subset],
    ['quickstart', [1, 2], 3, 600],
  );
  assert.equal(loadExperiment({ path: 'quickstart.yaml', text: printed.stdout }).config.knowledge[0]!.key, 'kd');
  // the answer is on the terminal too: the table and what distilling bought
  assert.match(again.stderr, /\n\| test accuracy \| [\d.]+ % \| [\d.]+ % \| [\d.]+ % \|\n/);
  assert.match(
    again.stderr,
    /\n- kd (gained|cost|made no difference)[^\n]*?: `student \(kd\)` vs `student \(labels\)`.*accuracy [+−-][\d.]+ pts/,
  );
});
