/**
 * A config is data: YAML tags that would build code or objects are not honoured, and a run
 * writes inside its --out folder only (the teacher's `cache:` where it says; here none).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadExperiment } from '../src/experiment/load.js';
import { fileSystem } from '../src/io/file-handler.js';
import { buildModel } from '../src/models/zoo.js';
import { UserError } from '../src/errors.js';

const root = mkdtempSync(join(tmpdir(), 'distill-contain-'));
const listing = (dir: string): string[] => readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();

test('YAML tags that would run code or build objects are not honoured', () => {
  const marker = join(root, 'executed');
  for (const tagged of [
    `name: !!js/function "function () { require('fs').writeFileSync('${marker}', 'x') }"`,
    `name: !!js/undefined ''`,
    `name: !<tag:yaml.org,2002:js/regexp> /x/`,
    `name: !!python/object/apply:os.system ["touch ${marker}"]`,
  ]) {
    try {
      const { config } = loadExperiment({ path: 'tagged.yaml', text: `${tagged}\nseeds: [1]\n` });
      assert.equal(typeof config.name, 'string', 'at most a string, never a function');
    } catch (e) {
      assert.ok(e instanceof UserError && !e.message.includes('\n'), String(e));
    }
  }
  assert.deepEqual(listing(root), [], 'nothing ran');
});

test('a run writes only inside its --out folder', async () => {
  const cwd = join(root, 'cwd');
  const teacher = join(root, 'teacher');
  mkdirSync(cwd);
  const model = buildModel({ key: 'mlp', kwargs: { hidden: [16] }, inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
  await model.save(fileSystem(teacher));
  model.dispose();
  const experiment = join(root, 'exp.yaml');
  writeFileSync(
    experiment,
    `name: contained
seeds: [1]
data: {key: fashion-mnist, kwargs: {subset: 480, testSubset: 100, validationFraction: 0.1}}
teacher: {key: file, kwargs: {path: ${teacher}}}
students: [{name: s, model: {key: mlp, kwargs: {hidden: [8]}}}]
knowledge: [{key: kd}]
epochs: 1
batchSize: 32
evaluation: {latency: {warmup: 0, runs: 1}}
`,
  );
  const before = { root: listing(root), teacher: listing(teacher) };
  const out = join(root, 'out');
  const code = await new Promise<number | null>((done) =>
    spawn(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), resolve('src/cli/main.ts'), 'run', experiment, '--out', out, '--quiet'],
      {
        cwd,
        env: { ...process.env, DISTILL_BACKEND: 'wasm' },
        stdio: 'ignore',
      },
    ).on('exit', done),
  );
  assert.equal(code, 0);
  const outside = listing(root).filter((f) => f !== 'out' && !f.startsWith(`out/`));
  assert.deepEqual(outside, before.root, 'nothing new beside --out');
  assert.deepEqual(listing(teacher), before.teacher, 'the teacher folder is only read');
  assert.deepEqual(listing(cwd), [], 'nothing in the working folder');
  assert.ok(listing(out).includes(join('seed-1', 'report.json')));
});
