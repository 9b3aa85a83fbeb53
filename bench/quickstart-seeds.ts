/**
 * The quickstart's claims over several seeds: runs `distill quickstart` with each seed (the
 * teacher trained once, then shared through the cache) and prints, per seed and as
 * mean ± std, the teacher's and both students' test accuracy, the KD gain, the parameter
 * ratio, the batch-64 speed-ups and each run's wall time.
 *
 *   npm run bench:quickstart -- [--seeds 1,2,3] [--out DIR] [--cache DIR] [--temperature T] [--alpha A]
 *     [--epochs N] [--teacher-epochs N] [--student-width W] [--subset N]
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runQuickstart } from '../src/experiment/quickstart.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1,2,3' },
    out: { type: 'string', default: 'runs/quickstart-seeds' },
    cache: { type: 'string', default: '.distill-cache' },
    temperature: { type: 'string' },
    alpha: { type: 'string' },
    epochs: { type: 'string' },
    'student-width': { type: 'string' },
    'teacher-epochs': { type: 'string' },
    subset: { type: 'string' },
  },
});
const seeds = values.seeds.split(',').map(Number);
const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
const out = resolve(values.out);
mkdirSync(out, { recursive: true });

interface Row {
  seed: number;
  teacher: number;
  labels: number;
  kd: number;
  gain: number;
  params: number;
  speedupLabels: number;
  speedupKd: number;
  seconds: number;
}
const rows: Row[] = [];
for (const seed of seeds) {
  const t0 = performance.now();
  const { reports } = await runQuickstart({
    seeds: [seed],
    outDir: join(out, `seed-${seed}`),
    cacheDir: values.cache,
    progress: 'quiet',
    log: () => {},
    temperature: num(values.temperature),
    alpha: num(values.alpha),
    epochs: num(values.epochs),
    studentWidth: num(values['student-width']),
    teacherEpochs: num(values['teacher-epochs']),
    subset: num(values.subset),
  });
  const [t, l, k] = reports[0]!.models;
  rows.push({
    seed,
    teacher: t!.accuracy,
    labels: l!.accuracy,
    kd: k!.accuracy,
    gain: k!.accuracy - l!.accuracy,
    params: t!.params! / k!.params!,
    speedupLabels: l!.speedup.batch64,
    speedupKd: k!.speedup.batch64,
    seconds: (performance.now() - t0) / 1000,
  });
  process.stderr.write(`seed ${seed} done in ${rows.at(-1)!.seconds.toFixed(0)} s\n`);
}

const pct = (x: number) => (100 * x).toFixed(2);
const stat = (xs: number[], f: (x: number) => string) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return `${f(mean)} ± ${f(sd)}`;
};
const lines = [
  '| seed | teacher | student (labels) | student (kd) | kd gain (pts) | params teacher ÷ student | speed-up b64 labels / kd | wall time |',
  '|---|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.seed} | ${pct(r.teacher)} % | ${pct(r.labels)} % | ${pct(r.kd)} % | ${r.gain >= 0 ? '+' : ''}${pct(r.gain)} | ×${r.params.toFixed(1)} | ×${r.speedupLabels.toFixed(2)} / ×${r.speedupKd.toFixed(2)} | ${r.seconds.toFixed(0)} s |`,
  ),
  `| mean ± std | ${stat(
    rows.map((r) => r.teacher),
    pct,
  )} % | ${stat(
    rows.map((r) => r.labels),
    pct,
  )} % | ${stat(
    rows.map((r) => r.kd),
    pct,
  )} % | ${stat(
    rows.map((r) => r.gain),
    pct,
  )} | | ×${stat(
    rows.map((r) => r.speedupLabels),
    (x) => x.toFixed(2),
  )} / ×${stat(
    rows.map((r) => r.speedupKd),
    (x) => x.toFixed(2),
  )} | |`,
];
process.stdout.write(`${lines.join('\n')}\n`);
