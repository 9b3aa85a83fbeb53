import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { parse } from 'yaml';
import { runExperiment } from '../src/experiment/run.js';
import { fileSystem } from '../src/io/index.js';
import { SMALL_SLICE, smallTeacher } from './helpers.js';

/**
 * Every examples/*.yaml runs end to end on a tiny slice (1 seed, 1 epoch, a small teacher
 * trained once and shared through the teacher cache): a new example is tested by existing.
 */
const dir = mkdtempSync(join(tmpdir(), 'distill-examples-'));
const schemeOf = (f: string) =>
  (parse(readFileSync(join('examples', f), 'utf8')) as { scheme?: { key: string } }).scheme?.key ?? 'offline';
// The examples of the online and self-distillation schemes run in test/schemes-examples.test.ts.
const files = readdirSync('examples')
  .filter((f) => f.endsWith('.yaml') && schemeOf(f) === 'offline')
  .sort();

function overrides(file: string): string[] {
  const raw = parse(readFileSync(join('examples', file), 'utf8')) as {
    data: { key: string };
    teacher: { key: string };
  };
  const set = [...SMALL_SLICE];
  if (file !== 'kd.yaml') set.push('baseline=false'); // the baseline path is the same for every method
  if (raw.data.key === 'fashion-mnist') set.push('data.kwargs.testSubset=200');
  if (raw.teacher.key === 'train') set.push(...smallTeacher('teacher.kwargs', join(dir, 'teachers')));
  if (raw.teacher.key === 'multi') {
    (raw.teacher as unknown as { kwargs: { teachers: unknown[] } }).kwargs.teachers.forEach((_, i) =>
      set.push(...smallTeacher(`teacher.kwargs.teachers[${i}].kwargs`, join(dir, 'teachers'))),
    );
  }
  return set;
}

test('there is an example per registered knowledge term', async () => {
  const { knowledge } = await import('../src/knowledge/index.js');
  // any scheme's example counts (pskd's is a previous-epoch one)
  const all = readdirSync('examples').filter((f) => f.endsWith('.yaml'));
  const used = new Set(
    all.flatMap((f) =>
      (parse(readFileSync(join('examples', f), 'utf8')) as { knowledge: Array<{ key: string }> }).knowledge.map(
        (k) => k.key,
      ),
    ),
  );
  const missing = knowledge.keys().filter((k) => !used.has(k) && !k.startsWith('test-'));
  assert.deepEqual(missing, [], `add an example for ${missing.join(', ')}`);
});

for (const file of files) {
  test(`examples/${file} runs on a small slice`, async () => {
    const out = join(dir, file.replace(/\.yaml$/, ''));
    const result = await runExperiment({
      file: join('examples', file),
      set: overrides(file),
      out,
      backend: 'wasm',
      progress: 'quiet',
      log: () => {},
    });
    const raw = parse(readFileSync(join('examples', file), 'utf8')) as {
      students: Array<{ name: string }>;
      baseline?: boolean;
      export?: { dtype?: string; evaluate?: string[] };
    };
    const roles = result.summary.models.map((m) => m.role);
    assert.equal(roles[0], 'teacher');
    // export.evaluate: a row per trained student and listed encoding, loaded back from its files
    const trained = raw.students.length * (file === 'kd.yaml' ? 2 : 1);
    const evaluated = raw.export?.evaluate ?? [];
    assert.equal(roles.length, 1 + trained * (1 + evaluated.length));
    if (file === 'kd.yaml') assert.equal(result.summary.gains.length, 1, 'what distilling bought over the baseline');
    // 14 steps on 432 rows: every model must have learned something (chance is 10 %)
    for (const m of result.summary.models) assert.ok(m.accuracy.mean >= 0.2, `${m.name} accuracy ${m.accuracy.mean}`);
    for (const name of ['experiment.yaml', 'summary.json', 'summary.md', 'seed-1/report.json', 'seed-1/report.html']) {
      assert.ok(existsSync(join(out, name)), name);
    }
    const exported = readdirSync(join(out, 'seed-1', 'students'));
    // an encoding other than export.dtype is written beside the export (`<id>-<encoding>/`)
    const extra = evaluated.filter((e) => e !== (raw.export?.dtype ?? 'float32')).length;
    assert.equal(exported.length, trained * (1 + extra));
    const student = await tf.loadLayersModel(fileSystem(join(out, 'seed-1', 'students', exported[0]!)));
    assert.deepEqual(student.outputs[0]!.shape, [null, 10]);
    student.dispose();
  });
}
