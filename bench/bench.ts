/**
 * `npm run bench` (not a test): training speed of tfjs-distill's backends against PyTorch on
 * this machine, measured in ONE run, printed as a table and one JSON line.
 *
 * Cases (the same models, batch sizes and optimizer as bench/pytorch_reference.py):
 * - matmul 1024³ GFLOP/s (and OpenBLAS cblas_sgemm called directly from the addon);
 * - MLP 784-1200-1200-10 train step, batch 128, Adam;
 * - CNN conv32-conv64-maxpool-dense128-dense10 train step, batch 64, Adam;
 * - KD step: teacher MLP 1200×2 forward + student MLP 800×2 step, T=4, α=0.9, batch 128
 *   (the product's own training step, `createStep`, with the `kd` term);
 * - one offline-KD epoch on Fashion-MNIST (same MLPs) without and with the teacher-output
 *   cache, beside a label-only epoch; RSS and tf.memory().numTensors after each of 3 epochs.
 *
 *   npm run bench -- [--backends native,wasm] [--seconds 3] [--no-pytorch] [--no-epochs]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { useBestBackend } from '../src/backend/index.js';
import { benchCnn, benchMlp } from './models.js';
import { loadAddon } from '../src/backend/native/addon.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { createTerm } from '../src/knowledge/index.js';
import { layersTeacher } from '../src/teachers/layers.js';
import { createStep, offlineTeacher } from '../src/train/step.js';
import { train } from '../src/train/trainer.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : fallback;
};
const backends = arg('backends', 'native,wasm').split(',');
const seconds = Number(arg('seconds', '3'));
const withPytorch = !argv.includes('--no-pytorch');
const withEpochs = !argv.includes('--no-epochs');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Repeats `step` for about `seconds` after warm-up; returns per-call medians as rate = units / s. */
function rate(step: () => void, units: number): number {
  for (let i = 0; i < 3; i++) step();
  const times: number[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end || times.length < 5) {
    const t0 = performance.now();
    step();
    times.push(performance.now() - t0);
  }
  return units / (median(times) / 1000);
}

/** Samples/s of the product's training step for `model` (with a teacher for KD). */
function stepRate(model: tf.LayersModel, inputShape: number[], batch: number, teacherModel?: tf.LayersModel): number {
  const x = tf.randomUniform([batch, ...inputShape]);
  const y = tf.randomUniform([batch], 0, 10, 'int32') as tf.Tensor1D;
  const optimizer = tf.train.adam(1e-3);
  const term = teacherModel ? createTerm('kd', { temperature: 4, alpha: 0.9 }) : createTerm('ce');
  const step = createStep([{ name: 's', model, terms: [{ term, weight: 1 }] }], optimizer, offlineTeacher);
  const r = rate(() => {
    const logits = teacherModel ? tf.tidy(() => teacherModel.predict(x) as tf.Tensor2D) : undefined;
    step(x, y, logits ? { logits, taps: {} } : undefined);
    logits?.dispose();
  }, batch);
  tf.dispose([x, y]);
  optimizer.dispose();
  return r;
}

function matmulGflops(): number {
  const a = tf.randomNormal([1024, 1024]);
  const b = tf.randomNormal([1024, 1024]);
  // Kernels on these backends run synchronously, so the product is done when matMul returns;
  // reading it back (dataSync) would add a 4 MiB copy-out and a fresh allocation per call.
  const r = rate(
    () =>
      tf.tidy(() => {
        tf.matMul(a, b);
      }),
    (2 * 1024 ** 3) / 1e9,
  );
  tf.dispose([a, b]);
  return r;
}

function openblasDirectGflops(): number | undefined {
  const loaded = loadAddon();
  if (!('addon' in loaded)) return undefined;
  const n = 1024;
  const a = new Float32Array(n * n).map(() => Math.random());
  const b = new Float32Array(n * n).map(() => Math.random());
  const c = new Float32Array(n * n);
  const threads = loaded.addon.info().threads;
  return rate(() => loaded.addon.blasDirect(a, b, c, n, n, n, threads), (2 * n ** 3) / 1e9);
}

interface EpochFigures {
  labelOnly: number;
  kdNoCache: number;
  kdCached: number;
  rssMiB: number[];
  numTensors: number[];
}

/** Offline-KD epochs on Fashion-MNIST (MLP 1200×2 teacher → 800×2 student), samples/s. */
async function epochs(): Promise<EpochFigures> {
  const { train: data } = loadFashionMnist({});
  const flat = [784];
  const teacherModel = benchMlp([784, 1200, 1200, 10]);
  const reshaped = (m: tf.LayersModel) =>
    tf.sequential({ layers: [tf.layers.flatten({ inputShape: [28, 28, 1] }), m] });
  const fresh = () => reshaped(benchMlp([...flat, 800, 800, 10]));
  const teacherSeq = layersTeacher({ model: reshaped(teacherModel) });
  const run = async (withTeacher: boolean, cacheTeacher: boolean, n: number, record?: (e: number) => void) => {
    const model = fresh();
    const term = withTeacher ? createTerm('kd', { temperature: 4, alpha: 0.9 }) : createTerm('ce');
    const result = await train({
      learners: [{ name: 's', model, terms: [{ term, weight: 1 }] }],
      teacher: withTeacher ? teacherSeq : undefined,
      train: data,
      epochs: n,
      batchSize: 128,
      seed: 1,
      cacheTeacher,
      callbacks: { onEpochEnd: (e) => record?.(e) },
    });
    model.dispose();
    return result.history['s']!.map((r) => data.size / r.seconds);
  };
  const labelOnly = (await run(false, true, 1))[0]!;
  const kdNoCache = (await run(true, false, 1))[0]!;
  const rssMiB: number[] = [];
  const numTensors: number[] = [];
  const cached = await run(true, true, 3, () => {
    rssMiB.push(Math.round(process.memoryUsage().rss / 2 ** 20));
    numTensors.push(tf.memory().numTensors);
  });
  // Epoch 1 fills the cache; the later epochs are the cached cost.
  return { labelOnly, kdNoCache, kdCached: median(cached.slice(1)), rssMiB, numTensors };
}

function pytorch(): Record<string, number> | string {
  const python = '/usr/bin/python3';
  if (!existsSync(python)) return 'no /usr/bin/python3';
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return 'PyTorch is not installed (apt-get install python3-torch)';
  const r = spawnSync(
    python,
    [
      'bench/pytorch_reference.py',
      '--threads',
      '2',
      '--seconds',
      String(seconds),
      ...(withEpochs ? [] : ['--skip-epochs']),
    ],
    { encoding: 'utf8', env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } },
  );
  if (r.status !== 0) return `PyTorch reference failed: ${r.stderr.trim().split('\n').at(-1)}`;
  return JSON.parse(r.stdout) as Record<string, number>;
}

const results: Record<string, Record<string, number>> = {};
let epochFigures: EpochFigures | undefined;
for (const name of backends) {
  const choice = await useBestBackend({ backend: name }).catch((e: Error) => e);
  if (choice instanceof Error) {
    console.error(`${name}: not available (${choice.message})`);
    continue;
  }
  const r: Record<string, number> = {};
  r['matmulGflops'] = matmulGflops();
  if (name === 'native') {
    const direct = openblasDirectGflops();
    if (direct !== undefined) r['openblasDirectGflops'] = direct;
  }
  r['mlpTrain'] = stepRate(benchMlp([784, 1200, 1200, 10]), [784], 128);
  r['cnnTrain'] = stepRate(benchCnn(), [28, 28, 1], 64);
  r['kdStep'] = stepRate(benchMlp([784, 800, 800, 10]), [784], 128, benchMlp([784, 1200, 1200, 10]));
  if (withEpochs && name === backends[0]) {
    epochFigures = await epochs();
    r['kdEpoch'] = epochFigures.kdNoCache;
    r['kdEpochCached'] = epochFigures.kdCached;
    r['labelOnlyEpoch'] = epochFigures.labelOnly;
  }
  results[name] = r;
  console.error(`${name}: done`);
}
const torch = withPytorch ? pytorch() : 'skipped (--no-pytorch)';

const cases = [
  'matmulGflops',
  'openblasDirectGflops',
  'mlpTrain',
  'cnnTrain',
  'kdStep',
  'kdEpoch',
  'kdEpochCached',
  'labelOnlyEpoch',
];
const fmt = (v: number | undefined) =>
  v === undefined ? '—' : v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1);
const header = [
  'case (samples/s; GFLOP/s for matmul)',
  ...Object.keys(results),
  'pytorch',
  ...Object.keys(results).map((b) => `${b}/pytorch`),
];
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
const ratios: Record<string, Record<string, number>> = {};
for (const c of cases) {
  const t = typeof torch === 'object' ? torch[c] : undefined;
  const cells = Object.values(results).map((r) => fmt(r[c]));
  const rs = Object.entries(results).map(([b, r]) => {
    if (r[c] === undefined || t === undefined) return '—';
    ratios[b] ??= {};
    ratios[b][c] = r[c]! / t;
    return `${(r[c]! / t).toFixed(2)}×`;
  });
  if (cells.every((x) => x === '—') && t === undefined) continue;
  console.log(`| ${c} | ${cells.join(' | ')} | ${fmt(t)} | ${rs.join(' | ')} |`);
}
if (typeof torch === 'string') console.log(`\nPyTorch: ${torch}`);
const native = results['native'];
if (native?.['matmulGflops'] && native['openblasDirectGflops']) {
  console.log(
    `\nnative matmul / OpenBLAS direct: ${((100 * native['matmulGflops']) / native['openblasDirectGflops']).toFixed(1)}%`,
  );
}
if (epochFigures) {
  console.log(
    `offline-KD epoch with the teacher-output cache costs ${(epochFigures.labelOnly / epochFigures.kdCached).toFixed(2)}× a label-only epoch (without: ${(epochFigures.labelOnly / epochFigures.kdNoCache).toFixed(2)}×)`,
  );
  console.log(
    `RSS after epochs 1-3: ${epochFigures.rssMiB.join(', ')} MiB; tf.memory().numTensors: ${epochFigures.numTensors.join(', ')}`,
  );
}
console.log(JSON.stringify({ backends: results, pytorch: torch, ratios, epochs: epochFigures }));
