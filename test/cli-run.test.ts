import { test } from 'node:test';
import { lockFolder } from '../src/io/folder-lock.js';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fileSystem } from '../src/io/index.js';
import { buildModel } from '../src/models/index.js';
import { readCheckpoint } from '../src/train/checkpoint.js';

interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The real `distill` CLI in a child process. */
function start(args: string[]): ChildProcess & { done: Promise<Done> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    env: { ...process.env, DISTILL_DATA: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Done>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return Object.assign(child, { done });
}
const distill = (args: string[]) => start(args).done;

async function waitFor(path: string, child: { exitCode: number | null }, ms = 120_000): Promise<void> {
  const until = Date.now() + ms;
  while (!existsSync(path)) {
    if (child.exitCode !== null) throw new Error(`the run ended before ${path} appeared`);
    if (Date.now() > until) throw new Error(`timed out waiting for ${path}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

tf.enableProdMode();
await tf.setBackend('cpu');
const dir = mkdtempSync(join(tmpdir(), 'distill-run-'));
const teacherDir = join(dir, 'teacher');
await buildModel({ key: 'mlp', kwargs: { hidden: [32] }, inputShape: [28, 28, 1], numClasses: 10, seed: 3 }).save(
  fileSystem(teacherDir),
);

const experiment = join(dir, 'exp.yaml');
writeFileSync(
  experiment,
  `# resume test: an MLP student with dropout, kd from a fixed teacher, 2 seeds
name: resume
seeds: [1, 2]
backend: wasm
data:
  key: fashion-mnist
  kwargs: {subset: 960, testSubset: 100, validationFraction: 0.1}
teacher:
  key: file
  kwargs: {path: ${teacherDir}}
students:
  - name: small
    model: {key: mlp, kwargs: {hidden: [48], dropout: 0.2}}
knowledge:
  - key: kd
    kwargs: {temperature: 4, alpha: 0.9}
baseline: false
optimizer: {key: adam, kwargs: {learningRate: 0.005}}
schedule: cosine
epochs: 3
batchSize: 16
evaluation: {latency: {warmup: 0, runs: 1}}
`,
);
const weights = (run: string, seed: number) =>
  readFileSync(join(run, `seed-${seed}`, 'students', 'small', 'weights.bin'));

test('bad input: one line naming file, line and path, exit 1, no stack trace, no output', async () => {
  const base = readFileSync(experiment, 'utf8');
  const cases: Array<[string, RegExp]> = [
    [
      base.replace('epochs: 3', 'epoch: 3'),
      /exp-0\.yaml:20: unknown key `epoch` at the top level \(did you mean `epochs`\?\); known: name, /,
    ],
    [
      base.replace('batchSize: 16', 'batchSize: sixteen'),
      /exp-1\.yaml:21: batchSize must be a number \(got "sixteen"\)$/,
    ],
    [
      base.replace('temperature: 4', 'temperature: -4'),
      /exp-2\.yaml:16: knowledge\[0\]\.kwargs\.temperature must be > 0 \(got -4\)$/,
    ],
    [
      base.replace(`path: ${teacherDir}`, `path: ${join(dir, 'missing', 'model.json')}`),
      /exp-3\.yaml:10: teacher\.kwargs\.path: teacher file .*missing\/model\.json does not exist; give a model\.json, an \.onnx file/,
    ],
    [
      base.replace('  - key: kd\n', '  - key: fitnets\n    kwargs: {student: fc9, teacher: features}\n  - key: kd\n'),
      /exp-4\.yaml:16: knowledge\[0\]\.kwargs: student small has no layer `fc9`; layers: input \[28,28,1\], flatten \[784\], fc1 \[48\], features \[48\], fc1_drop \[48\], logits \[10\]$/,
    ],
    [
      `${base}scheme: {key: online}\n`,
      /exp-5\.yaml:23: scheme\.key: unknown scheme `online`( \(did you mean `offline`\?\))?; known: assistant, born-again, byot, dml, ensemble, offline, previous-epoch, residual, streaming$/,
    ],
  ];
  const results = await Promise.all(
    cases.map(async ([text, pattern], i) => {
      const file = join(dir, `exp-${i}.yaml`);
      writeFileSync(file, text);
      return {
        pattern,
        out: join(dir, `bad-${i}`),
        r: await distill(['run', file, '--out', join(dir, `bad-${i}`), '--backend', 'cpu']),
      };
    }),
  );
  for (const { pattern, out, r } of results) {
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr.trimEnd(), /^distill: [^\n]+$/, 'one line');
    assert.match(r.stderr.trimEnd(), pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(existsSync(out), false, 'no partial output');
  }
});

test('SIGKILL mid-epoch, Ctrl-C, --resume: the same final weights as an uninterrupted run', async () => {
  const [a, b] = ['a', 'b'].map((n) => join(dir, n)) as [string, string];
  const whole = start(['run', experiment, '--out', a, '--json']);

  const killed = start(['run', experiment, '--out', b, '--quiet']);
  await waitFor(join(b, 'seed-1', 'checkpoints', 'small.ckpt'), killed);
  killed.kill('SIGKILL');
  assert.equal((await killed.done).signal, 'SIGKILL');
  const saved = await readCheckpoint(join(b, 'seed-1', 'checkpoints', 'small.ckpt'));
  assert.ok(saved!.epoch >= 1 && saved!.epoch < 3, `killed after epoch ${saved!.epoch} of 3`);
  assert.equal(existsSync(join(b, 'summary.json')), false);

  const resumed = start(['run', '--resume', b, '--quiet']);
  await waitFor(join(b, 'seed-2', 'checkpoints', 'small.ckpt'), resumed);
  resumed.kill('SIGINT');
  const interrupted = await resumed.done;
  assert.equal(interrupted.code, 130, interrupted.stderr);
  assert.match(
    interrupted.stderr,
    /distill: interrupted (in epoch \d\/3 after batch \d+|after epoch \d\/3) of small \(kd\); the last checkpoint is kept; resume with: distill run --resume .*\/b\n$/,
  );
  assert.doesNotMatch(interrupted.stderr, /\n\s+at /);

  // One process per run folder: the SIGKILLed run's lock was taken over by the resume; a live holder refuses.
  assert.equal(existsSync(join(b, '.lock')), false, 'an interrupted run releases its folder');
  const release = lockFolder(b, 'distill run');
  const refused = await distill(['run', '--resume', b, '--quiet']);
  release();
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    new RegExp(`^distill: /.*/b is in use by distill run \\(pid ${process.pid} on .+\\); wait for it or stop it`),
  );

  const [last, full] = await Promise.all([distill(['run', '--resume', b, '--quiet']), whole.done]);
  for (const r of [full, last]) assert.equal(r.code, 0, r.stderr);
  assert.match(last.stderr, /seed 1: finished earlier/);
  for (const seed of [1, 2])
    assert.ok(weights(a, seed).equals(weights(b, seed)), `seed ${seed}: killed, interrupted, resumed = uninterrupted`);
  assert.ok(!weights(a, 1).equals(weights(a, 2)), 'the seeds differ');
  const epochs = full.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { seed: number; model: string; epoch: number; losses: Record<string, number> });
  assert.deepEqual(
    epochs.map((e) => `${e.seed}:${e.epoch}`),
    ['1:1', '1:2', '1:3', '2:1', '2:2', '2:3'],
  );
  assert.deepEqual(Object.keys(epochs[0]!.losses).sort(), ['ce', 'kd', 'loss']);
  const summary = JSON.parse(readFileSync(join(b, 'summary.json'), 'utf8')) as {
    seeds: number[];
    models: Array<{ name: string; accuracy: { n: number } }>;
  };
  assert.deepEqual(summary.seeds, [1, 2]);
  assert.deepEqual(
    summary.models.map((m) => [m.name, m.accuracy.n]),
    [
      ['teacher', 2],
      ['small (kd)', 2],
    ],
  );
  const history = (
    JSON.parse(readFileSync(join(b, 'seed-1', 'report.json'), 'utf8')) as { models: Array<{ history?: unknown[] }> }
  ).models[1]!.history;
  assert.equal(history?.length, 3, 'the resumed history has every epoch');

  // A finished run refuses to be overwritten, and compare reads finished runs.
  const [again, cmp] = await Promise.all([
    distill(['run', experiment, '--out', a]),
    distill(['compare', a, b, '--out', join(dir, 'cmp')]),
  ]);
  assert.equal(again.code, 1);
  assert.match(
    again.stderr,
    /^distill: run folder .*\/a already exists; continue it with distill run --resume .*\/a, or choose another --out\n$/,
  );
  assert.equal(cmp.code, 0, cmp.stderr);
  assert.match(cmp.stdout, /\| resume \(a\) \| small \(kd\) \| student \|/);
  for (const f of ['compare.md', 'compare.json', 'compare.svg', 'compare.png'])
    assert.ok(existsSync(join(dir, 'cmp', f)), f);
});
