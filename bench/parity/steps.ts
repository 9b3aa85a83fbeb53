/**
 * Step equivalence: the deterministic check under every parity case. tfjs-distill's own
 * training step (`createStep`, its Adam, the per-step cosine, the zoo CNN with its init) runs
 * `steps` steps on training rows 0…steps·64−1 in order, without dropout; `reference.py --steps`
 * copies the same initial weights into its own PyTorch model and runs the same batches. With
 * nothing random left, the two loss curves must agree to float32 rounding (which grows slowly
 * over the steps), and so must the test accuracy.
 *
 * What this separates: a gap here is arithmetic (forward pass, gradients, BN, optimizer,
 * schedule); a parity gap with this check passing is in what differs between runs (seeds,
 * data order, dropout masks) — variance unless it persists over seeds.
 *
 *   npm run parity:steps -- [--width 1] [--steps 100] [--seed 7] [--threads 2]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import {
  buildModel,
  createOptimizer,
  crossEntropyTerm,
  evaluateAccuracy,
  loadFashionMnist,
  useBestBackend,
} from '../../src/index.js';
import { createStep, offlineTeacher } from '../../src/train/step.js';
import { cosineRate, setLearningRate } from '../../src/train/optimizers.js';

const here = dirname(fileURLToPath(import.meta.url));

export interface StepParityOptions {
  width?: number;
  steps?: number;
  seed?: number;
  testRows?: number;
  python?: string;
  threads?: number;
  /** Testing the check itself: settings handed to the reference instead of tfjs-distill's. */
  referenceOverrides?: Partial<{ adamEpsilon: number; bnEpsilon: number; bnMomentum: number; learningRate: number }>;
}

export interface StepParityResult {
  steps: number;
  tfjsLosses: number[];
  torchLosses: number[];
  tfjsAccuracy: number;
  torchAccuracy: number;
  /** max |Δloss| over the first 10 steps, and mean |Δloss| over all steps. */
  earlyMaxDiff: number;
  meanDiff: number;
  ok: boolean;
}

/** Bars: float32 rounding moves the curves apart slowly; a wrong gradient or update shows at once. */
export const STEP_BARS = { earlyMaxDiff: 0.002, meanDiff: 0.01, accuracy: 0.01 };

export async function stepParity(o: StepParityOptions = {}): Promise<StepParityResult> {
  const width = o.width ?? 1;
  const steps = o.steps ?? 100;
  const batchSize = 64;
  const learningRate = 2e-3;
  const testRows = o.testRows ?? 5000;
  const node = { key: 'cnn', kwargs: { width, blocks: [32, 64], convsPerBlock: 1, dense: 256, dropout: 0 } };
  const { train, test } = loadFashionMnist({ trainSubset: batchSize * steps, testSubset: testRows });
  const model = buildModel({ ...node, inputShape: [28, 28, 1], numClasses: 10, seed: o.seed ?? 7 });
  const bn = model.layers.find((l) => l.getClassName() === 'BatchNormalization')!.getConfig() as {
    momentum: number;
    epsilon: number;
  };

  const dir = mkdtempSync(join(tmpdir(), 'distill-steps-'));
  try {
    const weightsPath = join(dir, 'weights.bin');
    const initial = model.getWeights();
    writeFileSync(
      weightsPath,
      Buffer.concat(initial.map((w) => Buffer.from((w.dataSync() as Float32Array).slice().buffer))),
    );
    const optimizer = createOptimizer({ key: 'adam', kwargs: { learningRate } });
    const spec = {
      model: node,
      steps,
      batchSize,
      learningRate,
      testRows,
      weightsPath,
      adamEpsilon: (optimizer as unknown as { epsilon: number }).epsilon,
      bnMomentum: bn.momentum,
      bnEpsilon: bn.epsilon,
      weights: model.weights.map((w, i) => ({ name: w.originalName, shape: initial[i]!.shape })),
      ...o.referenceOverrides,
    };
    const specPath = join(dir, 'spec.json');
    writeFileSync(specPath, JSON.stringify(spec));
    const torch = runReference<{ losses: number[]; accuracy: number }>(o.python ?? '/usr/bin/python3', [
      '--steps',
      specPath,
      '--threads',
      String(o.threads ?? 1),
    ]);

    const step = createStep(
      [{ name: 'net', model, terms: [{ term: crossEntropyTerm(), weight: 1 }] }],
      optimizer,
      offlineTeacher,
    );
    const tfjsLosses: number[] = [];
    for (let t = 0; t < steps; t++) {
      setLearningRate(optimizer, cosineRate(learningRate, t, steps));
      const batch = train.slice(t * batchSize, (t + 1) * batchSize).toTensors();
      tfjsLosses.push(step(batch.x, batch.y).losses[0]!['loss']!);
      tf.dispose([batch.x, batch.y]);
    }
    const tfjsAccuracy = evaluateAccuracy(model, test).accuracy;
    optimizer.dispose();
    model.dispose();
    const ref = await torch;
    const diffs = tfjsLosses.map((l, i) => Math.abs(l - ref.losses[i]!));
    const earlyMaxDiff = Math.max(...diffs.slice(0, 10));
    const meanDiff = diffs.reduce((a, b) => a + b, 0) / diffs.length;
    const ok =
      earlyMaxDiff <= STEP_BARS.earlyMaxDiff &&
      meanDiff <= STEP_BARS.meanDiff &&
      Math.abs(tfjsAccuracy - ref.accuracy) <= STEP_BARS.accuracy;
    return {
      steps,
      tfjsLosses,
      torchLosses: ref.losses,
      tfjsAccuracy,
      torchAccuracy: ref.accuracy,
      earlyMaxDiff,
      meanDiff,
      ok,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `reference.py` with `args`; resolves to the JSON object of its last stdout line (progress goes to stderr). */
export function runReference<T>(python: string, args: string[]): Promise<T> {
  return new Promise((ok, fail) => {
    const child = spawn(python, [join(here, 'reference.py'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', fail);
    child.on('close', (code) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !line.startsWith('{'))
        fail(
          new Error(`reference.py ${args.join(' ')} exited ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`),
        );
      else ok(JSON.parse(line) as T);
    });
  });
}

/** One line for the parity table's header. */
export function describeStepParity(r: StepParityResult): string {
  const pct = (x: number) => (100 * x).toFixed(2);
  return (
    `step equivalence (same weights and batches, ${r.steps} steps, no dropout): ` +
    `max |Δloss| first 10 steps ${r.earlyMaxDiff.toFixed(4)} (bar ${STEP_BARS.earlyMaxDiff}), ` +
    `mean |Δloss| ${r.meanDiff.toFixed(4)} (bar ${STEP_BARS.meanDiff}); ` +
    `test accuracy tfjs ${pct(r.tfjsAccuracy)} % vs PyTorch ${pct(r.torchAccuracy)} % — ${r.ok ? 'ok' : '**differs**'}`
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    options: {
      width: { type: 'string', default: '1' },
      steps: { type: 'string', default: '100' },
      seed: { type: 'string', default: '7' },
      threads: { type: 'string', default: '2' },
      python: { type: 'string', default: '/usr/bin/python3' },
    },
  });
  process.env['TFJS_DISTILL_THREADS'] ??= values.threads;
  await useBestBackend();
  const r = await stepParity({
    width: Number(values.width),
    steps: Number(values.steps),
    seed: Number(values.seed),
    threads: Number(values.threads),
    python: values.python,
  });
  console.log(describeStepParity(r));
  console.log(JSON.stringify({ stepParity: { ...r, tfjsLosses: undefined, torchLosses: undefined } }));
  process.exit(r.ok ? 0 : 1);
}
