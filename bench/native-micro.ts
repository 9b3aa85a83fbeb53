/**
 * Micro-benchmark of the `native` backend (not a test): samples/s of one training step for
 * an MLP, a CNN and a KD step on native / wasm / cpu, and sgemm GFLOP/s against OpenBLAS
 * called directly from the addon. Median of several repetitions (the machine may be shared).
 *
 *   npx tsx bench/native-micro.ts [--backends native,wasm,cpu] [--reps 7] [--profile] [--only mlp,cnn,kd,matmul]
 *
 * Reference (DESIGN.md, this machine, PyTorch 2 threads): MLP ~8,200, CNN ~850, KD ~10,300 samples/s.
 */
import * as tf from '@tensorflow/tfjs';
import { registerNativeBackend, nativeBackendInfo, nativeBackendInstance } from '../src/backend/native.js';
import { loadAddon } from '../src/backend/native/addon.js';

tf.enableProdMode();
const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const backends = opt('backends', 'native,wasm,cpu').split(',');
const only = opt('only', 'mlp,cnn,kd,matmul').split(',');
const REPS = Number(opt('reps', '7'));
const PROFILE = argv.includes('--profile');
const PYTORCH: Record<string, number> = { mlp: 8200, cnn: 850, kd: 10300 };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function mlp(sizes: number[], name: string): tf.Sequential {
  const m = tf.sequential({ name });
  sizes.slice(1).forEach((units, i) => {
    const last = i === sizes.length - 2;
    m.add(
      tf.layers.dense({
        units,
        activation: last ? 'linear' : 'relu',
        name: `${name}_d${i}`,
        ...(i === 0 ? { inputShape: [sizes[0]] } : {}),
      }),
    );
  });
  return m;
}

function cnn(): tf.Sequential {
  const m = tf.sequential({ name: 'cnn' });
  m.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu', name: 'c1' }));
  m.add(tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu', name: 'c2' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2, name: 'p' }));
  m.add(tf.layers.flatten({ name: 'f' }));
  m.add(tf.layers.dense({ units: 128, activation: 'relu', name: 'd1' }));
  m.add(tf.layers.dense({ units: 10, name: 'd2' }));
  return m;
}

interface Case {
  batch: number;
  step: () => void;
  dispose: () => void;
}

function trainCase(model: tf.LayersModel, xShape: number[], batch: number, teacher?: tf.LayersModel): Case {
  const x = tf.randomUniform([batch, ...xShape]);
  const y = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32'), 10).toFloat();
  const optimizer = tf.train.adam(1e-3);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  // the same loss as bench/pytorch_reference.py: α·T²·KL(teacher_T ‖ student_T) + (1-α)·CE
  const T = 4,
    alpha = 0.9;
  const step = () =>
    tf.tidy(() => {
      const tLogits = teacher ? (teacher.predict(x, { batchSize: batch }) as tf.Tensor) : null;
      const { grads } = tf.variableGrads(() => {
        const logits = model.apply(x, { training: true }) as tf.Tensor;
        const ce = tf.losses.softmaxCrossEntropy(y, logits);
        if (!tLogits) return ce as tf.Scalar;
        const lt = tf.logSoftmax(tf.div(tLogits, T));
        const ls = tf.logSoftmax(tf.div(logits, T));
        const kl = tf.div(tf.sum(tf.mul(tf.exp(lt), tf.sub(lt, ls))), batch);
        return tf.add(tf.mul(kl, alpha * T * T), tf.mul(ce, 1 - alpha)) as tf.Scalar;
      }, vars);
      const t0 = performance.now();
      optimizer.applyGradients(grads as tf.NamedTensorMap as Parameters<typeof optimizer.applyGradients>[0]);
      if (PROFILE) addProfile('(Adam applyGradients, total)', performance.now() - t0);
    });
  return {
    batch,
    step,
    dispose: () => {
      x.dispose();
      y.dispose();
      optimizer.dispose();
    },
  };
}

/** Median samples/s over `reps` runs, and the CPU time used per wall second (how many cores we got). */
function timeCase(
  c: Case,
  warmup: number,
  steps: number,
  reps: number,
): { rate: number; cores: number; perCpuSecond: number } {
  for (let i = 0; i < warmup; i++) c.step();
  const rates: number[] = [],
    cores: number[] = [],
    perCpu: number[] = [];
  for (let r = 0; r < reps; r++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) c.step();
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    rates.push((c.batch * steps * 1000) / ms);
    cores.push((cpu.user + cpu.system) / 1000 / ms);
    perCpu.push((c.batch * steps * 1e6) / (cpu.user + cpu.system));
  }
  return { rate: median(rates), cores: median(cores), perCpuSecond: median(perCpu) };
}

// ------------------------------------------------------------------ profiling
const profile = new Map<string, { ms: number; calls: number }>();
function addProfile(name: string, ms: number) {
  const e = profile.get(name) ?? { ms: 0, calls: 0 };
  e.ms += ms;
  e.calls++;
  profile.set(name, e);
}
function installProfiler(backendName: string) {
  for (const k of tf.getKernelsForBackend(backendName)) {
    const fn = k.kernelFunc;
    tf.unregisterKernel(k.kernelName, backendName);
    tf.registerKernel({
      ...k,
      kernelFunc: ((args: Parameters<typeof fn>[0]) => {
        const t0 = performance.now();
        const r = fn(args);
        addProfile(k.kernelName, performance.now() - t0);
        return r;
      }) as typeof fn,
    });
  }
}
function printProfile(label: string, steps: number, stepMs: number) {
  const rows = [...profile.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const kernelMs = rows.filter(([n]) => !n.startsWith('(')).reduce((s, [, v]) => s + v.ms, 0) / steps;
  console.log(
    `  profile ${label}: ${stepMs.toFixed(2)} ms/step, kernels ${kernelMs.toFixed(2)} ms/step, ` +
      `outside kernels (tfjs engine, tape, JS) ${(stepMs - kernelMs).toFixed(2)} ms/step`,
  );
  for (const [name, v] of rows.slice(0, Number(opt('profile-rows', '14')))) {
    console.log(
      `    ${name.padEnd(28)} ${(v.ms / steps).toFixed(3).padStart(8)} ms/step  ${(v.calls / steps).toFixed(0).padStart(4)} calls/step`,
    );
  }
  profile.clear();
}

// ------------------------------------------------------------------ main
async function useBackend(name: string): Promise<boolean> {
  try {
    if (name === 'native') {
      const r = registerNativeBackend();
      if (!r.ok) {
        console.log(`native: unavailable (${r.reason})`);
        return false;
      }
    }
    if (name === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
    }
    return await tf.setBackend(name);
  } catch (err) {
    console.log(`${name}: unavailable (${String((err as Error).message).split('\n')[0]})`);
    return false;
  }
}

const results: Record<string, Record<string, string>> = {};
const record = (bk: string, key: string, v: string) => {
  results[bk] ??= {};
  results[bk][key] = v;
};

for (const bk of backends) {
  if (!(await useBackend(bk))) continue;
  console.log(`\n== ${bk}`);
  const slow = bk === 'cpu';
  if (PROFILE && bk === 'native') installProfiler('native');
  const cases: [string, () => Case, number][] = [];
  if (only.includes('mlp'))
    cases.push(['mlp', () => trainCase(mlp([784, 1200, 1200, 10], 'mlp'), [784], 128), slow ? 2 : 20]);
  if (only.includes('cnn') && !slow) cases.push(['cnn', () => trainCase(cnn(), [28, 28, 1], 64), 6]);
  if (only.includes('kd')) {
    cases.push([
      'kd',
      () => trainCase(mlp([784, 800, 800, 10], 'student'), [784], 128, mlp([784, 1200, 1200, 10], 'teacher')),
      slow ? 2 : 20,
    ]);
  }
  for (const [name, make, steps] of cases) {
    let c: Case | undefined;
    try {
      c = make();
      const reps = slow ? 1 : REPS;
      const { rate, cores, perCpuSecond } = timeCase(c, slow ? 1 : 3, steps, reps);
      const ref = PYTORCH[name];
      // On a shared machine the wall-clock rate depends on how many cores we got; the rate
      // per CPU-second does not (with 1 thread it has no spin-waiting in it either).
      const line =
        `${rate.toFixed(0)} samples/s` +
        (ref ? ` (${(rate / ref).toFixed(2)}× PyTorch ${ref})` : '') +
        `  [got ${cores.toFixed(2)} cores; ${perCpuSecond.toFixed(0)} samples per CPU-second]`;
      console.log(`  ${name.padEnd(4)} ${line}`);
      record(bk, name, rate.toFixed(0));
      if (PROFILE && bk === 'native') {
        profile.clear();
        const t0 = performance.now();
        for (let i = 0; i < steps; i++) c.step();
        printProfile(name, steps, (performance.now() - t0) / steps);
      }
    } catch (err) {
      console.log(`  ${name.padEnd(4)} fails: ${String((err as Error).message).split('\n')[0]}`);
      record(bk, name, 'fails');
    } finally {
      c?.dispose();
      tf.disposeVariables();
    }
  }
  if (only.includes('matmul') && !slow && bk !== 'native') {
    const n = 1024;
    const a = tf.randomUniform([n, n]),
      b = tf.randomUniform([n, n]);
    tf.matMul(a, b).dispose();
    const times: number[] = [];
    for (let r = 0; r < Math.max(REPS, 5); r++) {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      c.dataSync();
      times.push(performance.now() - t0);
      c.dispose();
    }
    const gf = (2 * n ** 3) / (median(times) * 1e6);
    console.log(`  matmul 1024³ via tf.matMul: ${gf.toFixed(1)} GFLOP/s`);
    record(bk, 'matmul', gf.toFixed(1));
    a.dispose();
    b.dispose();
  }
  if (bk === 'native') {
    const st = nativeBackendInstance()?.recyclerStats();
    if (st)
      console.log(
        `  buffer recycler: ${(st.recycledBytes / 2 ** 20).toFixed(0)} MB held, ${st.hits} hits, ${st.misses} misses`,
      );
  }
}

if (only.includes('matmul') && backends.includes('native') && (await useBackend('native'))) {
  // Interleaved so that a load change on a shared machine hits all three alike.
  const loaded = loadAddon();
  if ('addon' in loaded) {
    const n = 1024,
      { addon } = loaded;
    const A = new Float32Array(n * n).map(() => Math.random()),
      B = new Float32Array(n * n).map(() => Math.random());
    const C = new Float32Array(n * n);
    const a = tf.tensor(A, [n, n]),
      b = tf.tensor(B, [n, n]);
    const threads = nativeBackendInfo().threads ?? 2;
    const fns: Record<string, () => void> = {
      'native tf.matMul': () => tf.matMul(a, b).dispose(),
      [`OpenBLAS cblas_sgemm direct (${threads} OpenBLAS threads)`]: () => addon.blasDirect(A, B, C, n, n, n, threads),
      "addon sgemm split over the addon's pool": () => addon.matmul(A, B, C, 1, n, n, n, 0, 0, 0, 0),
    };
    const times: Record<string, number[]> = {};
    for (const f of Object.values(fns)) f();
    for (let r = 0; r < Math.max(REPS, 7); r++) {
      for (const [k, f] of Object.entries(fns)) {
        const t0 = performance.now();
        f();
        times[k] ??= [];
        times[k].push(performance.now() - t0);
      }
    }
    console.log('\n== matmul 1024³ (interleaved, median)');
    const gf: Record<string, number> = {};
    for (const k of Object.keys(fns)) {
      gf[k] = (2 * n ** 3) / (median(times[k]) * 1e6);
      console.log(`  ${k}: ${gf[k].toFixed(1)} GFLOP/s`);
    }
    const [tfk, directk] = Object.keys(fns);
    console.log(`  native tf.matMul / direct OpenBLAS: ${((100 * gf[tfk]) / gf[directk]).toFixed(0)}%`);
    record('native', 'matmul_vs_openblas_pct', ((100 * gf[tfk]) / gf[directk]).toFixed(0));
    a.dispose();
    b.dispose();
  }
}
console.log(`\n${JSON.stringify(results)}`);
