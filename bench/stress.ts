/**
 * `npm run stress`: the long reliability checks, not in `npm test` (see issue "Reliability and
 * security suite"). Prints a summary and exits non-zero when any check fails.
 *
 * 1. Crash anywhere: `distill run` (2 seeds, a label-only baseline, FitNets' hint stage and kd,
 *    a teacher trained and cached by the run) is SIGKILLed at random moments (seeded) and resumed
 *    each time, on each backend given; after every kill every JSON file in the run folder parses,
 *    every model.json loads and every checkpoint reads (or the run folder has none yet). The final
 *    weights.bin of every exported model must be byte-identical to an undisturbed run's.
 *    Then a kill aimed at each atomic write of such a run in turn (`killAtEveryWrite`, native by
 *    default: `--write-backends`), the teacher-cache save and the in-run student exports included.
 * 2. Hostile files: the fuzz test at `--fuzz N` cases per reader (default 5,000).
 * 3. Soak: 50 epochs of a small model, RSS and tf.memory().numTensors sampled every epoch;
 *    neither grows (RSS within 5 % of epoch 3's, tensors exactly) after epoch 3; and a streaming run
 *    that learns 60 chunks from a watched folder while they appear: RSS is a GC sawtooth, so the
 *    lowest RSS over the last 20 chunks must be back within 5 % of chunk 4's.
 *
 *   npm run stress                       # all, native and wasm, 10 kills each
 *   npm run stress -- --kills 20 --backends wasm --fuzz 1000 --skip soak
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import type { IdxArray } from '../src/data/idx.js';
import { Rng } from '../src/data/rng.js';
import { loadLayersModelFile, registerFileRouters } from '../src/io/file-handler.js';
import { readCheckpoint } from '../src/train/checkpoint.js';

const { values: args } = parseArgs({
  options: {
    kills: { type: 'string', default: '10' },
    backends: { type: 'string', default: 'native,wasm' },
    'write-backends': { type: 'string', default: 'native' },
    fuzz: { type: 'string', default: '5000' },
    skip: { type: 'string', default: '' },
    seed: { type: 'string', default: '1' },
    chunks: { type: 'string', default: '60' },
  },
});
const skip = new Set(args.skip.split(',').filter(Boolean));
const results: Array<{ check: string; ok: boolean; detail: string }> = [];
const say = (line: string) => process.stderr.write(`${line}\n`);

const EXPERIMENT = 'examples/fitnets.yaml';
const SET = [
  'seeds=[1,2]',
  'epochs=3',
  'batchSize=32',
  'data.kwargs.subset=1200',
  'data.kwargs.validationFraction=0.1',
  'teacher.kwargs.epochs=2',
  'teacher.kwargs.model.kwargs.width=0.5',
  'knowledge[0].kwargs.hintEpochs=1',
  'evaluation.latency.warmup=0',
  'evaluation.latency.runs=1',
].flatMap((s) => ['--set', s]);

function distill(argv: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...argv], {
    env: { ...process.env, TFJS_DISTILL_THREADS: '1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, done };
}

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile());
}

/** Every JSON parses, every model.json loads, every checkpoint reads: nothing half-written. */
async function checkFolder(dir: string): Promise<{ checked: number; problems: string[] }> {
  const problems: string[] = [];
  let checked = 0;
  for (const f of files(dir)) {
    if (/\.tmp-\d+|\.partial/.test(f)) continue; // a temp file being written is not the file
    try {
      if (f.endsWith('model.json')) {
        (await loadLayersModelFile(f)).dispose();
        checked++;
      } else if (f.endsWith('.json')) {
        JSON.parse(readFileSync(f, 'utf8'));
        checked++;
      } else if (f.endsWith('.ckpt')) {
        await readCheckpoint(f);
        checked++;
      }
    } catch (e) {
      problems.push(`${relative(dir, f)}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return { checked, problems };
}

const weightsOf = (dir: string) =>
  Object.fromEntries(
    files(dir)
      .filter((f) => f.endsWith('weights.bin') && f.includes(`${'/'}students${'/'}`))
      .map((f) => [relative(dir, f), createHash('sha256').update(readFileSync(f)).digest('hex')]),
  );

async function crashAnywhere(backend: string, kills: number, rng: Rng): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), `distill-stress-${backend}-`));
  const env = { DISTILL_BACKEND: backend };
  say(`crash: ${backend}: the undisturbed run`);
  const t0 = performance.now();
  const whole = await distill(
    [
      'run',
      EXPERIMENT,
      ...SET,
      '--set',
      `teacher.kwargs.cache=${join(root, 'cache-a')}`,
      '--out',
      join(root, 'a'),
      '--quiet',
    ],
    env,
  ).done;
  const seconds = (performance.now() - t0) / 1000;
  if (whole.code !== 0) {
    results.push({
      check: `crash ${backend}`,
      ok: false,
      detail: `the undisturbed run failed: ${whole.stderr.trim().split('\n').at(-1)}`,
    });
    return;
  }
  let killed = 0;
  let checkedFiles = 0;
  let rounds = 0;
  const problems: string[] = [];
  const moments: string[] = [];
  const want = weightsOf(join(root, 'a'));
  if (Object.keys(want).length === 0) problems.push('the undisturbed run exported no weights');
  // A run that finishes before all its kills is compared, then a fresh one takes the rest.
  while (killed < kills && problems.length === 0 && rounds < kills) {
    const b = join(root, `b${++rounds}`);
    let first = true;
    for (;;) {
      const argv = first
        ? ['run', EXPERIMENT, ...SET, '--set', `teacher.kwargs.cache=${join(root, `cache-b${rounds}`)}`, '--out', b]
        : ['run', '--resume', b];
      first = false;
      const run = distill(argv, env);
      // anywhere in the run: the whole run took `seconds`; each resume starts with ~1.5 s of imports
      // and goes on from its last checkpoint, so short windows spread the kills over the run
      const ms = 1500 + rng.nextFloat() * seconds * 1000 * 0.3;
      const timer = killed < kills ? setTimeout(() => run.child.kill('SIGKILL'), ms) : undefined;
      const end = await run.done;
      clearTimeout(timer);
      if (end.signal === 'SIGKILL') {
        killed++;
        const check = await checkFolder(b);
        checkedFiles += check.checked;
        problems.push(...check.problems.map((p) => `after kill ${killed} (${(ms / 1000).toFixed(1)} s): ${p}`));
        // what the run was doing: its last progress line
        const last = end.stderr.trim().split('\n').at(-1)?.slice(0, 70) ?? '';
        moments.push(`run ${rounds}, ${(ms / 1000).toFixed(1)} s (${last})`);
        continue;
      }
      // killed before the run kept anything: nothing to resume, it starts again (as a user would)
      if (end.code !== 0 && /stopped before it kept anything|left nothing to resume/.test(end.stderr)) {
        first = true;
        continue;
      }
      if (end.code !== 0) problems.push(`a run exited ${end.code}: ${end.stderr.trim().split('\n').at(-1)}`);
      break;
    }
    const got = weightsOf(b);
    const differ = Object.keys(want).filter((k) => want[k] !== got[k]);
    if (differ.length > 0)
      problems.push(`run ${rounds}: weights differ from the undisturbed run: ${differ.join(', ')}`);
  }
  results.push({
    check: `crash ${backend}`,
    ok: problems.length === 0 && killed === kills,
    detail: `${killed} kills in ${rounds} runs:\n    ${moments.join('\n    ')}\n  ${checkedFiles} files checked after the kills; ${Object.keys(want).length} weights files compared per run${problems.length ? `; ${problems.slice(0, 5).join('; ')}` : ''}`,
  });
}

/**
 * A kill aimed at every atomic write of a run: the undisturbed run lists its writes
 * (`DISTILL_TRACE_WRITES`); then for each k a fresh run is SIGKILLed during its k-th write, after
 * the temp file is synced and before the rename (`DISTILL_FAULT_WRITE=KILL@k`): the teacher
 * cache's save, the in-run student export, checkpoints, reports. After each kill the run folder
 * and the teacher cache pass `checkFolder`, the resumed run finishes, and its exported weights
 * are byte-identical to the undisturbed run's.
 */
async function killAtEveryWrite(backend: string): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), `distill-stress-writes-${backend}-`));
  const env = { DISTILL_BACKEND: backend };
  const argv = (tag: string) => [
    'run',
    EXPERIMENT,
    ...SET,
    '--set',
    `teacher.kwargs.cache=${join(root, `cache-${tag}`)}`,
    '--out',
    join(root, tag),
    '--quiet',
  ];
  const traceA = join(root, 'trace-a');
  const whole = await distill(argv('a'), { ...env, DISTILL_TRACE_WRITES: traceA }).done;
  // the run's folder (a, b1, …) and its cache (cache-a, …) by role; temp names and numbers generic
  const kinds = (f: string) =>
    relative(root, f)
      .replace(/^cache-[^/]+/, 'CACHE')
      .replace(/^[a-z]+\d*\//, 'RUN/')
      .replace(/\.tmp-[^/]+/, '.tmp')
      .replace(/-[0-9a-f]{16}/, '-HASH')
      .replace(/\d+/g, 'N');
  if (whole.code !== 0) {
    results.push({
      check: `kill at every write ${backend}`,
      ok: false,
      detail: `the undisturbed run failed: ${whole.stderr.trim().split('\n').at(-1)}`,
    });
    return;
  }
  const writes = readFileSync(traceA, 'utf8').trim().split('\n');
  const want = weightsOf(join(root, 'a'));
  say(`kill at every write: ${backend}: ${writes.length} writes`);
  const problems: string[] = [];
  let checked = 0;
  let orderDiffers = 0;
  for (let k = 1; k <= writes.length && problems.length < 5; k++) {
    const tag = `b${k}`;
    const trace = join(root, `trace-${tag}`);
    const killed = await distill(argv(tag), { ...env, DISTILL_TRACE_WRITES: trace, DISTILL_FAULT_WRITE: `KILL@${k}` })
      .done;
    const at = `kill at write ${k} (${kinds(writes[k - 1]!)})`;
    if (killed.signal !== 'SIGKILL') {
      problems.push(`${at}: the run was not killed (exit ${killed.code}: ${killed.stderr.trim().split('\n').at(-1)})`);
      continue;
    }
    if (kinds(readFileSync(trace, 'utf8').trim().split('\n').at(-1)!) !== kinds(writes[k - 1]!)) orderDiffers++;
    for (const dir of [join(root, tag), join(root, `cache-${tag}`)]) {
      const check = await checkFolder(dir);
      checked += check.checked;
      problems.push(...check.problems.map((p) => `${at}: ${p}`));
    }
    let resume = await distill(['run', '--resume', join(root, tag), '--quiet'], env).done;
    // killed before the run kept anything: nothing to resume, it starts again (as a user would)
    if (resume.code !== 0 && /stopped before it kept anything|left nothing to resume/.test(resume.stderr))
      resume = await distill(argv(tag), env).done;
    if (resume.code !== 0) {
      problems.push(`${at}: the resumed run exited ${resume.code}: ${resume.stderr.trim().split('\n').at(-1)}`);
      continue;
    }
    const got = weightsOf(join(root, tag));
    const differ = Object.keys(want).filter((w) => want[w] !== got[w]);
    if (differ.length > 0) problems.push(`${at}: weights differ from the undisturbed run: ${differ.join(', ')}`);
    const temps = files(join(root, tag)).filter((f) => /\.tmp-/.test(f));
    if (temps.length > 0)
      problems.push(`${at}: the finished run left temp files: ${temps.map((f) => relative(root, f)).join(', ')}`);
    rmSync(join(root, tag), { recursive: true, force: true });
  }
  const byKind = new Map<string, number>();
  for (const w of writes) byKind.set(kinds(w), (byKind.get(kinds(w)) ?? 0) + 1);
  results.push({
    check: `kill at every write ${backend}`,
    ok: problems.length === 0,
    detail: `${writes.length} kills, one at each write of the run (${[...byKind].map(([k, n]) => `${k} ×${n}`).join(', ')}); ${checked} files checked after the kills; ${orderDiffers} kills found the write order changed; ${Object.keys(want).length} weights files compared after each resume${problems.length ? `; ${problems.join('; ')}` : ''}`,
  });
}

/**
 * `distill export` and `distill cache-teacher` killed at random moments: the target is absent or
 * complete (the exported model loads; the cache reads, its checksum verified).
 */
async function killWriters(kills: number, rng: Rng): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'distill-stress-writers-'));
  const { buildModel } = await import('../src/models/zoo.js');
  const { fileSystem } = await import('../src/io/file-handler.js');
  const { readTeacherCache } = await import('../src/teachers/cache-file.js');
  const model = buildModel({ key: 'cnn', kwargs: { width: 1 }, inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
  const source = join(root, 'model');
  await model.save(fileSystem(source));
  model.dispose();
  const problems: string[] = [];
  let finished = 0;
  let absent = 0;
  let complete = 0;
  for (let i = 0; i < kills; i++) {
    for (const what of ['export', 'cache-teacher'] as const) {
      const target = join(root, `${what}-${i}${what === 'export' ? '' : '.logits'}`);
      const argv =
        what === 'export'
          ? ['export', source, '--out', target, '--dtype', 'uint8']
          : ['cache-teacher', '--teacher', join(source, 'model.json'), '--out', target, '--subset', '3000'];
      const run = distill(argv, { DISTILL_BACKEND: 'wasm' });
      const ms = 2000 + rng.nextFloat() * 4000;
      const timer = setTimeout(() => run.child.kill('SIGKILL'), ms);
      const end = await run.done;
      clearTimeout(timer);
      if (end.signal !== 'SIGKILL') finished++;
      else if (end.code !== null && end.code !== 0) problems.push(`${what} exited ${end.code}`);
      try {
        if (!existsSync(target)) absent++;
        else if (what === 'export') {
          (await loadLayersModelFile(target)).dispose();
          complete++;
        } else {
          await readTeacherCache({ path: target });
          complete++;
        }
      } catch (e) {
        problems.push(
          `${what} killed at ${(ms / 1000).toFixed(1)} s left ${target}: ${(e as Error).message.split('\n')[0]}`,
        );
      }
      const temps = files(root).filter((f) => /\.tmp-/.test(f) && f.startsWith(target));
      if (temps.length > 0 && end.signal !== 'SIGKILL') problems.push(`${what} left ${temps.length} temp files`);
    }
  }
  results.push({
    check: 'kill export / cache-teacher',
    ok: problems.length === 0,
    detail: `${2 * kills} runs: ${finished} finished before the kill, ${absent} targets absent, ${complete} complete and verified${problems.length ? `; ${problems.slice(0, 5).join('; ')}` : ''}`,
  });
}

function fuzz(runs: number): void {
  say(`fuzz: ${runs} cases per reader`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', 'test/fuzz-readers.test.ts'], {
    env: { ...process.env, DISTILL_FUZZ_RUNS: String(runs) },
    encoding: 'utf8',
  });
  const outcomes = /fuzz outcomes[^\n]*/.exec(r.stderr + r.stdout)?.[0] ?? 'no summary';
  results.push({ check: 'fuzz', ok: r.status === 0, detail: outcomes });
}

/**
 * The streaming soak: `distill run` with the streaming scheme watching a folder, while 20 chunk
 * files (IDX pairs of 300 Fashion-MNIST rows, written under a temp name and renamed) appear one
 * every 1.5 s, then END. The run's RSS (/proc/<pid>/status) is read as each chunk is consumed;
 * the last must be within 5 % of the 4th's, and all 20 chunks must have been learned.
 */
async function streamingSoak(chunks: number): Promise<void> {
  say(`soak: a stream of ${chunks} chunks`);
  const { locateFashionMnist } = await import('../src/data/fashion-mnist.js');
  const { readIdx, writeIdx } = await import('../src/data/idx.js');
  const root = mkdtempSync(join(tmpdir(), 'distill-stress-stream-'));
  const watch = join(root, 'stream');
  mkdirSync(watch);
  const experiment = join(root, 'stream.yaml');
  writeFileSync(
    experiment,
    `name: stream-soak
seeds: [1]
data: {key: fashion-mnist, kwargs: {subset: 1200, testSubset: 500, validationFraction: 0.1}}
teacher: {key: none}
students:
  - {name: small, model: {key: mlp, kwargs: {hidden: [64]}}}
knowledge:
  - {key: kd, kwargs: {temperature: 2, alpha: 0.5}}
baseline: false
scheme:
  key: streaming
  kwargs:
    teacher: {key: mlp, kwargs: {hidden: [256]}}
    watch: {dir: ${watch}, idleSeconds: 120, maxChunks: ${chunks}}
optimizer: {key: adam, kwargs: {learningRate: 0.002}}
epochs: 1
batchSize: 64
evaluation: {latency: {warmup: 0, runs: 1}}
`,
  );
  const { files: fm } = locateFashionMnist();
  const images = readIdx(fm.trainImages);
  const labels = readIdx(fm.trainLabels);
  const run = distill(['run', experiment, '--out', join(root, 'run')], { DISTILL_BACKEND: 'native' });
  const rssOf = () => {
    try {
      const status = readFileSync(`/proc/${run.child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    } catch {
      return 0;
    }
  };
  const consumed: number[] = [];
  let seenChunks = 0;
  run.child.stderr!.on('data', (d: Buffer) => {
    for (const m of String(d).matchAll(/chunk (\d+) \(/g)) {
      seenChunks = Math.max(seenChunks, Number(m[1]));
      consumed[seenChunks - 1] = rssOf();
    }
  });
  const rows = 300;
  for (let c = 0; c < chunks; c++) {
    await new Promise((r) => setTimeout(r, 1500));
    const at = 20_000 + c * rows; // rows the run's own training slice does not use
    const stem = join(watch, `chunk-${c + 1}`);
    const parts: Array<[string, IdxArray]> = [
      ['labels-idx1-ubyte', { dtype: 'uint8', dims: [rows], data: labels.data.slice(at, at + rows) }],
      [
        'images-idx3-ubyte',
        { dtype: 'uint8', dims: [rows, 28, 28], data: images.data.slice(at * 784, (at + rows) * 784) },
      ],
    ];
    for (const [suffix, array] of parts) {
      writeIdx({ path: join(watch, `.tmp-${c}-${suffix}`), array });
      renameSync(join(watch, `.tmp-${c}-${suffix}`), `${stem}-${suffix}`);
    }
  }
  writeFileSync(join(watch, 'END'), '');
  const end = await run.done;
  // RSS of a long-lived V8 process is a sawtooth (the heap grows until a major GC); a leak
  // raises its floor: the lowest RSS over the last third must be back within 5 % of chunk 4's.
  const base = consumed[3] ?? 0;
  const tail = consumed.slice(Math.floor((2 * chunks) / 3)).filter((v) => v > 0);
  const last = tail.length > 0 ? Math.min(...tail) : 0;
  const mb = (b: number) => (b / 2 ** 20).toFixed(0);
  const samples = [0, 3, ...Array.from({ length: Math.floor(chunks / 4) - 1 }, (_, i) => 4 * (i + 2) - 1)];
  results.push({
    check: 'stream soak',
    ok: end.code === 0 && seenChunks === chunks && base > 0 && last <= base * 1.05,
    detail: `${seenChunks} chunks learned (exit ${end.code}); RSS MiB after chunks ${samples.map((i) => i + 1).join(', ')}: ${samples.map((i) => mb(consumed[i] ?? 0)).join(', ')} (lowest over the last third vs chunk 4: ${base > 0 ? (((last - base) / base) * 100).toFixed(1) : '?'} %; peak ${mb(Math.max(...consumed.filter((v) => v > 0)))})`,
  });
}

/** The soak (bench/soak.ts) in a clean process: RSS within 5 % of epoch 3's, tensors exactly flat. */
function soak(): void {
  say('soak: 50 epochs');
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/soak.ts'], { encoding: 'utf8' });
  if (r.status !== 0) {
    results.push({
      check: 'soak',
      ok: false,
      detail: `bench/soak.ts exited ${r.status}: ${r.stderr.trim().split('\n').at(-1)}`,
    });
    return;
  }
  const { backend, rss, tensors } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
    backend: string;
    rss: number[];
    tensors: number[];
  };
  const base = rss[2]!;
  // growth is what a leak does; a drop (pages returned after a GC) is not one
  const worst = Math.max(0, ...rss.slice(3).map((v) => (v - base) / base));
  const tensorsFlat = tensors.slice(3).every((t) => t === tensors[2]);
  const mb = (b: number) => (b / 2 ** 20).toFixed(0);
  results.push({
    check: 'soak',
    ok: worst <= 0.05 && tensorsFlat,
    detail: `${backend}: RSS MiB at epochs 1, 3, 10, 20, 30, 40, 50: ${[0, 2, 9, 19, 29, 39, 49].map((i) => mb(rss[i]!)).join(', ')} (largest growth over epoch 3: ${(worst * 100).toFixed(1)} %); tensors ${tensors[2]} → ${tensors.at(-1)}`,
  });
}

registerFileRouters();
await tf.setBackend('cpu');
const rng = new Rng(Number(args.seed));
if (!skip.has('crash')) for (const b of args.backends.split(',')) await crashAnywhere(b, Number(args.kills), rng);
if (!skip.has('writes')) for (const b of args['write-backends'].split(',')) await killAtEveryWrite(b);
if (!skip.has('writers')) await killWriters(Number(args.kills), rng);
if (!skip.has('fuzz')) fuzz(Number(args.fuzz));
if (!skip.has('soak')) soak();
if (!skip.has('stream')) await streamingSoak(Number(args.chunks));
for (const r of results) process.stdout.write(`${r.ok ? 'ok  ' : 'FAIL'} ${r.check}: ${r.detail}\n`);
process.exitCode = results.every((r) => r.ok) ? 0 : 1;
