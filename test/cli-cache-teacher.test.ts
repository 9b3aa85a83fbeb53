import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadCsv } from '../src/data/csv.js';
import { fileSystem } from '../src/io/index.js';
import { createTerm } from '../src/knowledge/index.js';
import { buildModel } from '../src/models/index.js';
import { layersTeacher } from '../src/teachers/layers.js';
import { loadTeacher } from '../src/teachers/load.js';
import { train } from '../src/train/trainer.js';

tf.enableProdMode();
await tf.setBackend('cpu');

function distill(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'distill-cache-'));
const csv = join(dir, 'blobs.csv');
const rows = ['a,b,c,d,kind'];
for (let i = 0; i < 90; i++) {
  const c = i % 3;
  rows.push(
    `${[0, 1, 2, 3].map((d) => ((d === c ? 2 : 0) + Math.sin(i * 7 + d)).toFixed(4)).join(',')},${['x', 'y', 'z'][c]}`,
  );
}
writeFileSync(csv, rows.join('\n'));

test('cache-teacher writes logits that train exactly like the teacher model', async () => {
  const teacherModel = buildModel({ key: 'mlp', kwargs: { hidden: [8] }, inputShape: [4], numClasses: 3, seed: 3 });
  await teacherModel.save(fileSystem(join(dir, 'teacher')));
  const out = join(dir, 'teacher.logits');
  const r = distill([
    'cache-teacher',
    '--teacher',
    join(dir, 'teacher', 'model.json'),
    '--csv',
    csv,
    '--label-column',
    'kind',
    '--validation-fraction',
    '0.2',
    '--seed',
    '5',
    '--out',
    out,
    '--backend',
    'cpu',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /for 72 rows/);

  const data = loadCsv({ path: csv, labelColumn: 'kind' }).split({ validationFraction: 0.2, seed: 5 }).train;
  const run = async (teacher: Awaited<ReturnType<typeof loadTeacher>>) => {
    const student = buildModel({ key: 'mlp', kwargs: { hidden: [4] }, inputShape: [4], numClasses: 3, seed: 9 });
    const result = await train({
      learners: [{ name: 's', model: student, terms: [{ term: createTerm('kd'), weight: 1 }] }],
      teacher,
      train: data,
      epochs: 2,
      batchSize: 16,
      seed: 2,
    });
    return result.history['s']!.map((e) => e.losses['kd']!);
  };
  const fromFile = await run(await loadTeacher({ path: out, data }));
  const fromModel = await run(layersTeacher({ model: teacherModel }));
  fromFile.forEach((v, i) =>
    assert.ok(Math.abs(v - fromModel[i]!) <= 1e-5 * Math.abs(fromModel[i]!), `${v} vs ${fromModel[i]}`),
  );

  const other = loadCsv({ path: csv, labelColumn: 'kind' }).split({ validationFraction: 0.3, seed: 5 }).train;
  await assert.rejects(loadTeacher({ path: out, data: other }), /fingerprint|other data|different/i);
});

test('cache-teacher refuses a teacher whose classes differ from the data, in one line', async () => {
  const wrong = buildModel({ key: 'mlp', kwargs: { hidden: [8] }, inputShape: [4], numClasses: 5, seed: 3 });
  await wrong.save(fileSystem(join(dir, 'wrong')));
  const r = distill([
    'cache-teacher',
    '--teacher',
    join(dir, 'wrong'),
    '--csv',
    csv,
    '--label-column',
    'kind',
    '--out',
    join(dir, 'x.logits'),
    '--backend',
    'cpu',
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^distill: teacher .* has 5 classes but the data has 3\n$/);
});
