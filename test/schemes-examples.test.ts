import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { parse } from 'yaml';
import type { RunReport } from '../src/eval/types.js';
import { schemes } from '../src/schemes/index.js';
import { runExperiment } from '../src/experiment/run.js';
import { fileSystem } from '../src/io/index.js';
import { SMALL_SLICE, smallTeacher } from './helpers.js';

/**
 * Every example of an online or self-distillation scheme runs end to end on a tiny slice
 * (1 seed, 2 epochs, 960 rows): its report has the seed's table for every model the scheme
 * produced (its own teacher in the teacher column), its scheme table, and exported models.
 */
const dir = mkdtempSync(join(tmpdir(), 'distill-scheme-examples-'));
const keyOf = (f: string) =>
  (parse(readFileSync(join('examples', f), 'utf8')) as { scheme?: { key: string } }).scheme?.key ?? 'offline';
const files = readdirSync('examples')
  .filter((f) => f.endsWith('.yaml') && keyOf(f) !== 'offline')
  .sort();

/** Per scheme: extra overrides, the report's columns (teacher first), and the scheme table's title start. */
const expected: Record<string, { set: string[]; models: string[]; table: string; rows: number }> = {
  assistant: {
    set: smallTeacher('teacher.kwargs', join(dir, 'teachers')),
    models: ['teacher', 'assistant 1', 'tiny (kd via assistant)', 'tiny (kd, direct)', 'tiny (labels)'],
    table: 'Teacher assistants',
    rows: 4,
  },
  residual: {
    set: smallTeacher('teacher.kwargs', join(dir, 'teachers')),
    models: ['teacher', 'small (kd)', 'small + assistant', 'small (labels)'],
    table: 'Residual assistant',
    rows: 3,
  },
  dml: {
    set: [],
    models: ['cohort ensemble (dml)', 'small-1 (dml)', 'small-2 (dml)', 'small-1 (labels)', 'small-2 (labels)'],
    table: 'Deep mutual learning',
    rows: 3,
  },
  ensemble: {
    set: ['students[1].model={key: mlp, kwargs: {hidden: [32]}}'],
    models: ['cohort ensemble (ensemble)', 'cnn (ensemble)', 'dwsep (ensemble)', 'cnn (labels)', 'dwsep (labels)'],
    table: 'Online ensemble',
    rows: 3,
  },
  streaming: {
    set: ['scheme.kwargs.chunks=2', 'scheme.kwargs.teacher.kwargs.width=0.25'],
    models: ['teacher (stream)', 'small (stream)', 'small (labels)'],
    table: 'Streaming',
    rows: 2,
  },
  byot: {
    set: ['students[0].model.kwargs.width=0.25'],
    models: [
      'net (byot)',
      'net exit1 (byot)',
      'net exit2 (byot)',
      'net (labels)',
      'net (deep supervision)',
      'net exit1 (deep supervision)',
      'net exit2 (deep supervision)',
    ],
    table: 'Be Your Own Teacher',
    rows: 3,
  },
  'born-again': {
    set: ['scheme.kwargs.generations=2'],
    models: ['small gen 0', 'small gen 1', 'small gen 2'],
    table: 'Born-again',
    rows: 3,
  },
  'previous-epoch': {
    set: ['epochs=2'],
    models: ['small (snapshot, epoch 1)', 'small (previous-epoch)', 'small (labels)'],
    table: 'Previous-epoch',
    rows: 2,
  },
};

const runs = new Map<string, Promise<string>>();
/**
 * Runs examples/<file> on the small slice, once per process (later callers share the run); resolves to its output
 * folder.
 */
function runExample(file: string): Promise<string> {
  let run = runs.get(file);
  if (run === undefined) {
    const key = keyOf(file);
    // by file: two examples may run one scheme (previous-epoch.yaml, pskd.yaml)
    const out = join(dir, file.replace(/\.yaml$/, ''));
    const set = [...SMALL_SLICE, 'data.kwargs.testSubset=200', ...expected[key]!.set];
    run = runExperiment({
      file: join('examples', file),
      set,
      out,
      backend: 'wasm',
      progress: 'quiet',
      log: () => {},
    }).then(() => out);
    runs.set(file, run);
  }
  return run;
}

test('there is an example per registered scheme', () => {
  const covered = new Set([...files.map(keyOf), 'offline']);
  assert.deepEqual(
    schemes.keys().filter((k) => !covered.has(k)),
    [],
  );
});

for (const file of files) {
  const key = keyOf(file);
  test(`examples/${file} (${key}) runs on a small slice`, async () => {
    const want = expected[key]!;
    const out = await runExample(file);
    const report = JSON.parse(readFileSync(join(out, 'seed-1', 'report.json'), 'utf8')) as RunReport;
    assert.deepEqual(
      report.models.map((m) => m.name),
      want.models,
    );
    assert.equal(report.models[0]!.role, 'teacher');
    for (const m of report.models)
      assert.ok(
        m.accuracy >= 0.2 && m.params! > 0 && m.latencyMs.batch1 > 0,
        `${m.name}: accuracy above chance (${m.accuracy}), size and latency`,
      );
    const table = report.tables?.[0];
    assert.ok(table?.title.startsWith(want.table), `scheme table, got ${table?.title}`);
    assert.equal(table!.rows.length, want.rows);
    const md = readFileSync(join(out, 'seed-1', 'report.md'), 'utf8');
    assert.ok(
      md.includes(`## ${table!.title}`) && md.includes(`| ${table!.columns.join(' | ')} |`),
      'report.md has the scheme table',
    );
    assert.ok(existsSync(join(out, 'summary.md')));
    // Every model with weights of its own is exported (an ensemble reference is its members).
    const exported = readdirSync(join(out, 'seed-1', 'students'));
    const notExported = want.models[0]!.startsWith('cohort') || want.models[0] === 'teacher' ? 1 : 0;
    assert.equal(exported.length, want.models.length - notExported);
    const last = await tf.loadLayersModel(
      fileSystem(join(out, 'seed-1', 'students', exported.find((e) => e.includes('exit')) ?? exported[0]!)),
    );
    assert.deepEqual(last.outputs[0]!.shape, [null, 10]);
    last.dispose();
  });
}

test('a scheme with a teacher of its own still accepts an external one: it is then the teacher column', async () => {
  const base = await runExample('byot.yaml'); // its student is the external teacher here
  assert.ok(existsSync(join(base, 'seed-1', 'students', 'net', 'model.json')));
  const out = join(dir, 'byot-ref');
  const set = [
    ...SMALL_SLICE,
    'data.kwargs.testSubset=200',
    'baseline=false',
    `teacher={key: file, kwargs: {path: ${join(base, 'seed-1', 'students', 'net')}}}`,
  ];
  const r = await runExperiment({
    file: 'examples/byot.yaml',
    set,
    out,
    backend: 'wasm',
    progress: 'quiet',
    log: () => {},
  });
  assert.deepEqual(
    r.reports[0]!.models.map((m) => `${m.name}:${m.role}`),
    ['teacher:teacher', 'net (byot):student', 'net exit1 (byot):student', 'net exit2 (byot):student'],
  );
  await assert.rejects(
    runExperiment({
      file: 'examples/kd.yaml',
      set: ['teacher={key: none}'],
      out: join(dir, 'kd-none'),
      backend: 'cpu',
      log: () => {},
    }),
    /teacher\.key: scheme `offline` learns from a frozen teacher; give one/,
  );
});
