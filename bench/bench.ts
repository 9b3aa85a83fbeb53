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
 * - offline-KD epochs on Fashion-MNIST (same MLPs) without and with the teacher-output cache,
 *   beside label-only epochs (cached and label-only: the median of 6 one-epoch runs each,
 *   alternating in ABBA order); RSS and tf.memory().numTensors after each epoch of a 3-epoch cached run;
 * - the quickstart teacher's train step (CNN 825k params with batch norm, batch 64) and the
 *   quickstart student's (the same CNN at width 0.25 with dropout 0.25, 52k params), beside their
 *   PyTorch twins;
 * - achieved GFLOP/s of every train step (FLOPs per sample from the layers, bench/flops.ts) and
 *   its share of the machine's sgemm limit: the fastest 1024³ sgemm of the run (the addon's,
 *   probed before and after the train steps, OpenBLAS's and PyTorch's, with and without †);
 *   PyTorch's share of the same limit beside it;
 * - where the machine sets OPENBLAS_CORETYPE, PyTorch once more with OpenBLAS's own kernel choice
 *   (the † columns: the reference at its fastest here);
 * - inference as a deploying user compares it: the quickstart student's median latency at batch
 *   1 and 64 on each backend beside onnxruntime-node running the same student (exported with
 *   `exportOnnx`), predict + read-back against session.run; on native also through
 *   `compileInference` (the whole model in one addon call).
 * PyTorch runs as one process beside the bench (pytorch_reference.py --serve) and measures each
 * case right after tfjs-distill's backend did, so that every ratio compares figures taken seconds
 * apart, not minutes.
 * `--repeat N` measures everything N times back to back and ends with min / median / max of
 * every ratio.
 *
 *   npm run bench -- [--backends native,wasm] [--seconds 3] [--repeat 3] [--no-pytorch] [--no-epochs]
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { useBestBackend } from '../src/backend/index.js';
import { benchCnn, benchMlp } from './models.js';
import { inferenceFlops, trainFlops } from './flops.js';
import { exportOnnx } from '../src/io/onnx-export.js';
import { compileInference } from '../src/backend/inference-plan.js';
import { buildModel } from '../src/models/zoo.js';
import { loadAddon } from '../src/backend/native/addon.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { createTerm } from '../src/knowledge/index.js';
import { CachedTeacher } from '../src/teachers/cached.js';
import { layersTeacher } from '../src/teachers/layers.js';
import type { Teacher } from '../src/teachers/types.js';
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
const repeat = Number(arg('repeat', '1'));

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
    // as the product's teacher runs (layersTeacher: one apply over the batch; predict() would
    // split it into batches of 32)
    const logits = teacherModel ? tf.tidy(() => teacherModel.apply(x, { training: false }) as tf.Tensor2D) : undefined;
    step(x, y, logits ? { logits, taps: {} } : undefined);
    logits?.dispose();
  }, batch);
  tf.dispose([x, y]);
  optimizer.dispose();
  // each --repeat builds its own models: dispose them, or every repeat adds their weights
  model.dispose();
  teacherModel?.dispose();
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
  // an inner model's weights outlive the outer model's dispose (it holds its own reference)
  const fresh = () => {
    const inner = benchMlp([...flat, 800, 800, 10]);
    return { model: reshaped(inner), inner };
  };
  const teacherOuter = reshaped(teacherModel);
  const teacherSeq = layersTeacher({ model: teacherOuter });
  const cache = new CachedTeacher({ size: data.size, numClasses: 10, inputShape: [28, 28, 1], source: teacherSeq });
  const run = async (teacher: Teacher | undefined, n: number, record?: (e: number) => void) => {
    const { model, inner } = fresh();
    const term = teacher ? createTerm('kd', { temperature: 4, alpha: 0.9 }) : createTerm('ce');
    const result = await train({
      learners: [{ name: 's', model, terms: [{ term, weight: 1 }] }],
      teacher,
      train: data,
      epochs: n,
      batchSize: 128,
      seed: 1,
      cacheTeacher: false,
      callbacks: { onEpochEnd: (e) => record?.(e) },
    });
    model.dispose();
    inner.dispose();
    return result.history['s']!.map((r) => data.size / r.seconds);
  };
  const kdNoCache = (await run(teacherSeq, 1))[0]!;
  // RSS and tensors across 3 epochs with the cache (filled here, before epoch 1, as train() fills it)
  await cache.fill(data);
  const rssMiB: number[] = [];
  const numTensors: number[] = [];
  await run(cache, 3, () => {
    rssMiB.push(Math.round(process.memoryUsage().rss / 2 ** 20));
    numTensors.push(tf.memory().numTensors);
  });
  // label-only against cached-KD epochs, alternating, each on a new student: on this VM two epochs
  // a minute apart differ by up to ±10 %, more than the difference measured
  const labelOnly: number[] = [];
  const kdCached: number[] = [];
  // in ABBA order, so that whatever the previous run leaves behind (garbage to collect, a warmer or
  // cooler core) falls on both kinds alike
  for (let round = 0; round < 6; round++) {
    if (round % 2 === 0) labelOnly.push((await run(undefined, 1))[0]!);
    kdCached.push((await run(cache, 1))[0]!);
    if (round % 2 === 1) labelOnly.push((await run(undefined, 1))[0]!);
  }
  // both: the inner model's weights go only when the outer, which holds a reference, is gone too
  teacherOuter.dispose();
  teacherModel.dispose();
  return { labelOnly: median(labelOnly), kdNoCache, kdCached: median(kdCached), rssMiB, numTensors };
}

/**
 * The PyTorch reference (bench/pytorch_reference.py --serve): one process that measures a case
 * when asked, so that each of its figures is taken right after ours for the same case. This VM's
 * speed drifts by up to 2× over minutes; measured minutes apart, a ratio would carry that drift.
 * With `ownBlas`, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed for that process alone, so
 * that OpenBLAS picks its own kernels (machines that set them pin older OpenBLAS builds to the
 * Haswell kernels; PyTorch's Linear layers then use half of an AVX-512 core's width).
 */
class TorchReference {
  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly lines: AsyncIterator<string>,
    private readonly stderr: () => string,
  ) {}

  static async start(ownBlas: boolean): Promise<TorchReference | string> {
    const python = '/usr/bin/python3';
    if (!existsSync(python)) return 'no /usr/bin/python3';
    const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
    if (probe.status !== 0) return 'PyTorch is not installed (apt-get install python3-torch)';
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' };
    if (ownBlas) {
      delete env['OPENBLAS_CORETYPE'];
      delete env['OPENBLAS_L2_SIZE'];
    }
    const args = ['bench/pytorch_reference.py', '--threads', '2', '--seconds', String(seconds), '--serve'];
    const child = spawn(python, args, { env });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const reference = new TorchReference(child, lines, () => err);
    const ready = await lines.next();
    return ready.done ? reference.failure() : reference;
  }

  private failure(): string {
    return `PyTorch reference failed: ${this.stderr().trim().split('\n').at(-1)}`;
  }

  /** The case's figure (samples/s; GFLOP/s for matmulGflops), or why there is none. */
  async measure(c: string): Promise<number | string> {
    this.child.stdin.write(`${c}\n`);
    const line = await this.lines.next();
    if (line.done) return this.failure();
    return (JSON.parse(line.value) as Record<string, number>)[c]!;
  }

  close(): void {
    this.child.stdin.end();
  }
}

/** The quickstart's teacher and student CNNs (src/experiment/quickstart.ts), seeded. */
const quickstartCnn = (width: number, dropout: number) =>
  buildModel({
    key: 'cnn',
    kwargs: { width, blocks: [32, 64], convsPerBlock: 1, dense: 256, dropout },
    inputShape: [28, 28, 1],
    numClasses: 10,
    seed: 1,
  });

/** Median ms of `run` over about `seconds` (after warm-up), at least 20 runs. */
async function latencyMs(run: () => Promise<void> | void): Promise<number> {
  for (let i = 0; i < 5; i++) await run();
  const times: number[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end || times.length < 20) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** The quickstart student's latency on the current backend, predict + read-back. */
async function tfjsLatency(predict: (x: tf.Tensor) => tf.Tensor, batch: number): Promise<number> {
  const x = tf.randomUniform([batch, 28, 28, 1]);
  const ms = await latencyMs(() => {
    const y = predict(x);
    y.dataSync();
    y.dispose();
  });
  x.dispose();
  return ms;
}

/** The same student in onnxruntime-node (2 threads, as the other rows), session.run per call. */
async function ortLatency(model: tf.LayersModel): Promise<Record<string, number> | string> {
  try {
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(exportOnnx(model), {
      intraOpNumThreads: 2,
      interOpNumThreads: 1,
    });
    const out: Record<string, number> = {};
    for (const batch of [1, 64]) {
      const data = Float32Array.from({ length: batch * 784 }, () => Math.random());
      const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', data, [batch, 28, 28, 1]) };
      out[`studentLatencyB${batch}`] = await latencyMs(async () => {
        await session.run(feeds);
      });
    }
    await session.release();
    return out;
  } catch (e) {
    return `onnxruntime-node unavailable: ${(e as Error).message.split('\n')[0]}`;
  }
}

const FLOPS = {
  mlpTrain: trainFlops(benchMlp([784, 1200, 1200, 10])),
  cnnTrain: trainFlops(benchCnn()),
  qsTeacherTrain: trainFlops(quickstartCnn(1, 0)),
  kdStep: trainFlops(benchMlp([784, 800, 800, 10])) + inferenceFlops(benchMlp([784, 1200, 1200, 10])),
};

/** Per tfjs backend, the PyTorch figure of each case measured right after that backend's. */
type Beside = Record<string, Record<string, number>>;

interface Measured {
  results: Record<string, Record<string, number>>;
  /** PyTorch's figures beside each backend's, or why there are none */
  torch: Beside | string;
  /** PyTorch with OpenBLAS's own kernel choice, when this machine sets OPENBLAS_CORETYPE */
  torchOwnBlas?: Beside | string;
  ort: Record<string, number> | string;
  epochFigures?: EpochFigures;
  ratios: Record<string, Record<string, number>>;
}

interface References {
  torch: TorchReference | string;
  /** with OpenBLAS's own kernel choice, when this machine sets OPENBLAS_CORETYPE */
  own?: TorchReference | string;
}

async function measure(references: References): Promise<Measured> {
  const results: Record<string, Record<string, number>> = {};
  let epochFigures: EpochFigures | undefined;
  const figures: { torch: Beside | string; own?: Beside | string } = {
    torch: typeof references.torch === 'string' ? references.torch : {},
    ...(references.own !== undefined && { own: typeof references.own === 'string' ? references.own : {} }),
  };
  /** PyTorch's figure for case c, measured now, beside backend `name`'s */
  const beside = async (name: string, c: string, withOwn = true) => {
    for (const k of withOwn ? (['torch', 'own'] as const) : (['torch'] as const)) {
      const reference = references[k];
      const into = figures[k];
      if (typeof reference !== 'object' || typeof into !== 'object') continue;
      const v = await reference.measure(c);
      if (typeof v === 'string') {
        figures[k] = v;
        continue;
      }
      into[name] ??= {};
      into[name][c] = v;
    }
  };
  for (const name of backends) {
    const choice = await useBestBackend({ backend: name }).catch((e: Error) => e);
    if (choice instanceof Error) {
      console.error(`${name}: not available (${choice.message})`);
      continue;
    }
    const r: Record<string, number> = {};
    r['matmulGflops'] = matmulGflops();
    await beside(name, 'matmulGflops');
    if (name === 'native') {
      const direct = openblasDirectGflops();
      if (direct !== undefined) r['openblasDirectGflops'] = direct;
    }
    r['mlpTrain'] = stepRate(benchMlp([784, 1200, 1200, 10]), [784], 128);
    await beside(name, 'mlpTrain');
    r['cnnTrain'] = stepRate(benchCnn(), [28, 28, 1], 64);
    await beside(name, 'cnnTrain');
    r['qsTeacherTrain'] = stepRate(quickstartCnn(1, 0), [28, 28, 1], 64);
    await beside(name, 'qsTeacherTrain');
    r['qsStudentTrain'] = stepRate(quickstartCnn(0.25, 0.25), [28, 28, 1], 64);
    await beside(name, 'qsStudentTrain');
    r['kdStep'] = stepRate(benchMlp([784, 800, 800, 10]), [784], 128, benchMlp([784, 1200, 1200, 10]));
    await beside(name, 'kdStep');
    // the 1024³ probe once more: a few busy seconds on a shared VM can halve one probe, and the
    // sgemm limit is the machine's best, not its worst
    if (name === 'native') r['matmulGflopsAfterSteps'] = matmulGflops();
    const student = quickstartCnn(0.25, 0.25);
    const predict = (x: tf.Tensor) => student.predict(x) as tf.Tensor;
    r['studentLatencyB1'] = await tfjsLatency(predict, 1);
    r['studentLatencyB64'] = await tfjsLatency(predict, 64);
    const plan = compileInference(student);
    if ('predict' in plan) {
      r['studentPlanLatencyB1'] = await tfjsLatency(plan.predict, 1);
      r['studentPlanLatencyB64'] = await tfjsLatency(plan.predict, 64);
    }
    student.dispose();
    if (withEpochs && name === backends[0]) {
      epochFigures = await epochs();
      r['kdEpoch'] = epochFigures.kdNoCache;
      r['kdEpochCached'] = epochFigures.kdCached;
      r['labelOnlyEpoch'] = epochFigures.labelOnly;
      await beside(name, 'kdEpoch', false);
      await beside(name, 'kdEpochCached', false);
    }
    results[name] = r;
    console.error(`${name}: done`);
  }
  const student = quickstartCnn(0.25, 0.25);
  const ort = await ortLatency(student);
  student.dispose();
  return {
    results,
    torch: figures.torch,
    ort,
    ratios: {},
    ...(figures.own !== undefined && { torchOwnBlas: figures.own }),
    ...(epochFigures && { epochFigures }),
  };
}

const cases = [
  'matmulGflops',
  'matmulGflopsAfterSteps',
  'openblasDirectGflops',
  'mlpTrain',
  'cnnTrain',
  'qsTeacherTrain',
  'qsStudentTrain',
  'kdStep',
  'kdEpoch',
  'kdEpochCached',
  'labelOnlyEpoch',
];
const fmt = (v: number | undefined) =>
  v === undefined ? '—' : v >= 100 ? Math.round(v).toLocaleString('en-US') : v >= 1 ? v.toFixed(1) : v.toFixed(3);

function print(m: Measured): void {
  const { results, torch, torchOwnBlas, ort, epochFigures } = m;
  const torchAt = typeof torch === 'object' ? torch : undefined;
  const ownAt = typeof torchOwnBlas === 'object' ? torchOwnBlas : undefined;
  const names = Object.keys(results);
  // the reference's figures beside the first backend (its column and its share of the limit)
  const firstOf = (at: Beside | undefined) => (at ? (at[names[0]!] ?? {}) : undefined);
  const own = firstOf(ownAt);
  const header = [
    'case (samples/s; GFLOP/s for matmul)',
    ...names,
    `pytorch (beside ${names.join(' / ')})`,
    ...names.map((b) => `${b}/pytorch`),
    ...(own ? ['pytorch†', ...names.map((b) => `${b}/pytorch†`)] : []),
  ];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  /** each backend's figure over the reference's measured right after it */
  const ratios = (c: string, at: Beside | undefined, suffix: string) =>
    Object.entries(results).map(([b, r]) => {
      const t = at?.[b]?.[c];
      if (r[c] === undefined || t === undefined) return '—';
      m.ratios[b] ??= {};
      m.ratios[b][`${c}${suffix}`] = r[c]! / t;
      return `${(r[c]! / t).toFixed(2)}×`;
    });
  const referenceCell = (at: Beside | undefined, c: string) => {
    const vs = names.map((b) => at?.[b]?.[c]).filter((v): v is number => v !== undefined);
    return vs.length === 0 ? '—' : vs.map(fmt).join(' / ');
  };
  for (const c of cases) {
    const cells = Object.values(results).map((r) => fmt(r[c]));
    const t = referenceCell(torchAt, c);
    const rs = ratios(c, torchAt, '');
    const extra = ownAt ? [referenceCell(ownAt, c), ...ratios(c, ownAt, 'VsTorchOwnBlas')] : [];
    if (cells.every((x) => x === '—') && t === '—') continue;
    console.log(`| ${c} | ${[...cells, t, ...rs, ...extra].join(' | ')} |`);
  }
  console.log(
    "\nEach ratio divides a backend's figure by PyTorch's for the same case, measured right after it (this VM's speed drifts over minutes).",
  );
  if (typeof torch === 'string') console.log(`\nPyTorch: ${torch}`);
  if (torchOwnBlas !== undefined)
    console.log(
      `\n† PyTorch with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for its command alone (this machine sets OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE}), so that OpenBLAS picks its own kernels${typeof torchOwnBlas === 'string' ? `: ${torchOwnBlas}` : ''}`,
    );
  // the machine's sgemm limit: the fastest 1024³ sgemm seen in this run: the addon's (its AVX-512
  // kernel where the CPU has one; probed before and after the train steps), OpenBLAS called
  // directly, and PyTorch's (with OpenBLAS's own kernel choice too, which can be the fastest)
  const native = results['native'];
  const probes = [
    ...['matmulGflops', 'matmulGflopsAfterSteps', 'openblasDirectGflops'].map((k) => native?.[k] ?? 0),
    ...[torchAt, ownAt].flatMap((at) => Object.values(at ?? {}).map((r) => r['matmulGflops'] ?? 0)),
  ];
  const limit = Math.max(...probes) > 0 ? Math.max(...probes) : undefined;
  console.log(
    `\nachieved GFLOP/s of the train steps, counting a convolution's FLOPs as the direct (im2col) algorithm makes them (native runs 3×3 stride-1 convs of ≥ 16 channels as Winograd F(4×4, 3×3), which multiplies up to 4× less, so its convolution figures are effective ones) (FLOPs per sample: ${Object.entries(
      FLOPS,
    )
      .map(([k, f]) => `${k} ${(f / 1e6).toFixed(1)} M`)
      .join(
        ', ',
      )})${limit ? `, and the share of the machine's sgemm limit (${limit.toFixed(0)} GFLOP/s: the fastest 1024³ sgemm of the run: the addon's before and after the steps, OpenBLAS direct, PyTorch's)` : ''}:`,
  );
  // the reference's share of the same limit, for the same FLOP counts
  const sharers: [string, Record<string, number>][] = [
    ...Object.entries(results),
    ...(torchAt ? [['pytorch', firstOf(torchAt)!] as [string, Record<string, number>]] : []),
    ...(own ? [['pytorch†', own] as [string, Record<string, number>]] : []),
  ];
  for (const [b, r] of sharers) {
    const parts = Object.entries(FLOPS).map(([k, f]) => {
      const g = ((r[k] ?? 0) * f) / 1e9;
      if (limit) {
        m.ratios[b] ??= {};
        m.ratios[b][`${k}SgemmShare`] = g / limit;
      }
      return `${k} ${g.toFixed(1)}${limit ? ` (${((100 * g) / limit).toFixed(0)} %)` : ''}`;
    });
    console.log(`- ${b}: ${parts.join(', ')}`);
  }
  console.log('\nthe quickstart student (52k params) at inference, median ms per call:');
  console.log('| backend | batch 1 | batch 64 | × onnxruntime batch 1 | × onnxruntime batch 64 |');
  console.log('|---|---:|---:|---:|---:|');
  for (const [b, r] of Object.entries(results))
    for (const [label, k1, k64] of [
      [`${b}, model.predict`, 'studentLatencyB1', 'studentLatencyB64'],
      [`${b}, compileInference`, 'studentPlanLatencyB1', 'studentPlanLatencyB64'],
    ] as const) {
      if (r[k1] === undefined) continue;
      const vs = (k: string) =>
        typeof ort === 'object' ? `${(r[k]! / ort[k.replace('Plan', '')]!).toFixed(2)}×` : '—';
      if (typeof ort === 'object')
        for (const k of [k1, k64]) {
          m.ratios[b] ??= {};
          m.ratios[b][`${k}VsOrt`] = r[k]! / ort[k.replace('Plan', '')]!;
        }
      console.log(`| ${label} | ${fmt(r[k1])} | ${fmt(r[k64])} | ${vs(k1)} | ${vs(k64)} |`);
    }
  if (typeof ort === 'object')
    console.log(
      `| onnxruntime-node | ${fmt(ort['studentLatencyB1'])} | ${fmt(ort['studentLatencyB64'])} | 1.00× | 1.00× |`,
    );
  else console.log(`\n${ort}`);
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
  console.log(
    JSON.stringify({
      backends: results,
      pytorch: torch,
      pytorchOwnBlas: torchOwnBlas,
      onnxruntime: ort,
      ratios: m.ratios,
      epochs: epochFigures,
    }),
  );
}

// the PyTorch processes serve every --repeat: started (and warmed up) once
const references: References = {
  torch: withPytorch ? await TorchReference.start(false) : 'skipped (--no-pytorch)',
  ...(withPytorch && process.env.OPENBLAS_CORETYPE !== undefined && { own: await TorchReference.start(true) }),
};
const runs: Measured[] = [];
for (let i = 0; i < repeat; i++) {
  if (repeat > 1) console.log(`\n## run ${i + 1} of ${repeat}\n`);
  const m = await measure(references);
  print(m);
  runs.push(m);
}
for (const reference of [references.torch, references.own]) if (typeof reference === 'object') reference.close();
if (repeat > 1) {
  console.log(`\n## every ratio over the ${repeat} runs: min / median / max\n`);
  console.log('| backend | ratio | min | median | max |');
  console.log('|---|---|---:|---:|---:|');
  for (const [b, first] of Object.entries(runs[0]!.ratios))
    for (const k of Object.keys(first)) {
      const vs = runs.map((r) => r.ratios[b]?.[k]).filter((v): v is number => v !== undefined);
      const sorted = [...vs].sort((x, y) => x - y);
      console.log(
        `| ${b} | ${k} | ${sorted[0]!.toFixed(2)} | ${median(vs).toFixed(2)} | ${sorted.at(-1)!.toFixed(2)} |`,
      );
    }
}
