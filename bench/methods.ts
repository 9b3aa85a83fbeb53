/**
 * The full-budget method table (docs/benchmarks.md): every registered knowledge term on the
 * quickstart's teacher and student, full Fashion-MNIST (55k train / 5k validation / 10k test),
 * 15 epochs with a cosine schedule, seeds 1 and 2, each gain paired by seed with the
 * label-only student (`labels`: the `ce` term alone, same initial weights and batch order).
 *
 * Each method is one trial (an experiment run in a child process, `src/trials/`) in
 * `--out/<method>/`; a finished trial is reused, so the command continues where it stopped and
 * methods added to the list later run alone. `--table-only` writes the table from what has
 * finished.
 *
 * `--width 0.0625` gives the large-gap pair: the same teacher, the student CNN 16× narrower than
 * the teacher (the quickstart's is 4×); give it its own `--out` and `--table`.
 *
 *   npm run methods -- [--out runs/methods] [--seeds 1,2] [--epochs 15] [--workers 2] [--threads 1]
 *     [--width 0.25] [--dropout 0.25] [--only kd,dkd] [--table docs/benchmarks.md] [--table-only]
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import type { RunReport } from '../src/eval/types.js';
import { quickstartExperiment } from '../src/experiment/quickstart.js';
import { stat } from '../src/experiment/summary.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { runTrials, trialExperiment } from '../src/search/trials.js';
import { localExecutor } from '../src/trials/local.js';

type Term = { key: string; weight?: number; kwargs?: Record<string, unknown> };
interface Method {
  name: string;
  /** Where the setting comes from. */
  source: string;
  knowledge: Term[];
}

const ce: Term = { key: 'ce' };
const kd4: Term = { key: 'kd', kwargs: { temperature: 4, alpha: 0.9 } };
const taps2 = ['block1_conv1_relu', 'block2_conv1_relu'];
const features = { student: 'features', teacher: 'features' };

/** Every term with its paper's (or example's) setting, `+ ce` where the paper trains with the labels too. */
export const METHODS: Method[] = [
  { name: 'labels', source: 'cross-entropy on the labels only', knowledge: [ce] },
  { name: 'kd', source: 'Hinton et al. 2015; T=4, α=0.9 (mdistiller)', knowledge: [kd4] },
  {
    name: 'kd-t2',
    source: 'the quickstart default, T=2, α=0.7',
    knowledge: [{ key: 'kd', kwargs: { temperature: 2, alpha: 0.7 } }],
  },
  {
    name: 'kd+ls',
    source: 'Sun et al. 2024, logit standardization on kd',
    knowledge: [{ key: 'kd', kwargs: { temperature: 4, alpha: 0.9, standardize: true } }],
  },
  {
    name: 'soft-ce',
    source: 'soft cross-entropy, T=4, α=0.9',
    knowledge: [{ key: 'soft-ce', kwargs: { temperature: 4, alpha: 0.9 } }],
  },
  {
    name: 'hard',
    source: "the teacher's argmax as the label, α=0.5",
    knowledge: [{ key: 'hard', kwargs: { alpha: 0.5 } }],
  },
  { name: 'logits-l1', source: 'L1 on logits (weight 0.5) + ce', knowledge: [{ key: 'logits-l1', weight: 0.5 }, ce] },
  {
    name: 'logits-mse',
    source: 'Ba & Caruana 2014, weight 0.1, + ce',
    knowledge: [{ key: 'logits-mse', weight: 0.1 }, ce],
  },
  {
    name: 'dkd',
    source: 'Zhao et al. 2022; T=4, α=1, β=8',
    knowledge: [{ key: 'dkd', kwargs: { temperature: 4, alpha: 1, beta: 8, ceWeight: 1 } }],
  },
  {
    name: 'dkd+ls',
    source: 'Sun et al. 2024, logit standardization on dkd',
    knowledge: [{ key: 'dkd', kwargs: { temperature: 4, alpha: 1, beta: 8, ceWeight: 1, standardize: true } }],
  },
  {
    name: 'dist',
    source: 'Huang et al. 2022; τ=4, β=γ=2, + ce',
    knowledge: [{ key: 'dist', kwargs: { temperature: 4, beta: 2, gamma: 2 } }, ce],
  },
  {
    name: 'nkd',
    source: 'Yang et al. 2023; λ=1, γ=1.5, + ce',
    knowledge: [{ key: 'nkd', kwargs: { temperature: 1, gamma: 1.5 } }, ce],
  },
  {
    name: 'ctkd',
    source: 'Li et al. 2023; curriculum over the first 8 epochs',
    knowledge: [{ key: 'ctkd', kwargs: { rampEpochs: 8 } }],
  },
  {
    name: 'fitnets',
    source: 'Romero et al. 2015; hint stage (2 epochs), then kd',
    knowledge: [
      { key: 'fitnets', kwargs: { student: 'block1_pool', teacher: 'block1_pool', stage: 'hint', hintEpochs: 2 } },
      kd4,
    ],
  },
  {
    name: 'at',
    source: 'Zagoruyko & Komodakis 2017, + ce',
    knowledge: [{ key: 'at', kwargs: { student: taps2, teacher: taps2 } }, ce],
  },
  {
    name: 'nst',
    source: 'Huang & Wang 2017, + ce',
    knowledge: [{ key: 'nst', kwargs: { student: 'block2_conv1_relu', teacher: 'block2_conv1_relu' } }, ce],
  },
  { name: 'pkt', source: 'Passalis & Tefas 2018, + ce', knowledge: [{ key: 'pkt', kwargs: features }, ce] },
  { name: 'sp', source: 'Tung & Mori 2019, + ce', knowledge: [{ key: 'sp', kwargs: features }, ce] },
  {
    name: 'cc',
    source: 'Peng et al. 2019, + ce',
    knowledge: [{ key: 'cc', kwargs: { ...features, gamma: 0.4, order: 2, beta: 1 } }, ce],
  },
  {
    name: 'rkd',
    source: 'Park et al. 2019; distance 25, angle 50, + ce',
    knowledge: [{ key: 'rkd', kwargs: { ...features, distanceWeight: 25, angleWeight: 50 } }, ce],
  },
  {
    name: 'crd',
    source: 'Tian et al. 2020; in-batch negatives, + ce',
    knowledge: [{ key: 'crd', kwargs: { ...features, mode: 'batch', featDim: 64, temperature: 0.07 } }, ce],
  },
  {
    name: 'mlkd',
    source: 'Jin et al. 2023; T=4, weak + strong views (no teacher cache)',
    knowledge: [{ key: 'mlkd', kwargs: { temperature: 4 } }],
  },
  {
    name: 'simkd',
    source: "Chen et al. 2022; projector (factor 2) + the teacher's classifier, shipped in the student",
    knowledge: [{ key: 'simkd', kwargs: { factor: 2 } }],
  },
  {
    name: 'reviewkd',
    source: 'Chen et al. 2021; 3 stages, 64 mid channels, warm-up 1 epoch, + ce',
    knowledge: [
      {
        key: 'reviewkd',
        kwargs: {
          student: [...taps2, 'features'],
          teacher: [...taps2, 'features'],
          midChannels: 64,
          warmupEpochs: 1,
        },
      },
      ce,
    ],
  },
  {
    name: 'crd+kd',
    source: "Tian et al. 2020's CRD+KD",
    knowledge: [{ key: 'crd', kwargs: { ...features, mode: 'batch', featDim: 64, temperature: 0.07 } }, kd4],
  },
  {
    name: 'hard+dist',
    source: 'the two best logit methods of the 0.25-width table: hard (α=0.5) + dist',
    knowledge: [
      { key: 'hard', kwargs: { alpha: 0.5 } },
      { key: 'dist', kwargs: { temperature: 4, beta: 2, gamma: 2 } },
    ],
  },
  {
    name: 'dist+rkd',
    source: 'the best logit and the best feature relation of the 0.25-width table: dist + rkd + ce',
    knowledge: [
      { key: 'dist', kwargs: { temperature: 4, beta: 2, gamma: 2 } },
      { key: 'rkd', kwargs: { ...features, distanceWeight: 25, angleWeight: 50 } },
      ce,
    ],
  },
];

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'runs/methods' },
    seeds: { type: 'string', default: '1,2' },
    epochs: { type: 'string', default: '15' },
    workers: { type: 'string', default: '2' },
    threads: { type: 'string', default: '1' },
    width: { type: 'string', default: '0.25' },
    dropout: { type: 'string', default: '0.25' },
    only: { type: 'string' },
    table: { type: 'string', default: 'docs/benchmarks.md' },
    'table-only': { type: 'boolean', default: false },
  },
});
const out = resolve(values.out);
const seeds = values.seeds.split(',').map(Number);
const epochs = Number(values.epochs);
const only = values.only?.split(',');
const unknown = only?.filter((n) => !METHODS.some((m) => m.name === n)) ?? [];
if (unknown.length > 0) {
  process.stderr.write(`--only ${unknown.join(',')}: unknown; known: ${METHODS.map((m) => m.name).join(', ')}\n`);
  process.exit(2);
}
const chosen = METHODS.filter((m) => only === undefined || only.includes(m.name) || m.name === 'labels');

const base = {
  ...quickstartExperiment({
    seeds,
    epochs,
    studentWidth: Number(values.width),
    studentDropout: Number(values.dropout),
  }),
  baseline: false,
  name: 'methods',
};
const baseText = stringify(base);
const specs = chosen.map((m) => {
  const { yaml } = trialExperiment(
    { file: 'methods', text: baseText },
    [`knowledge=${JSON.stringify(m.knowledge)}`],
    out,
  );
  return { id: m.name, experiment: yaml, dir: m.name, threads: Number(values.threads) };
});

if (!values['table-only']) {
  await mkdir(out, { recursive: true });
  const executor = localExecutor({ workers: Number(values.workers), threads: Number(values.threads), shared: out });
  process.stderr.write(`methods: ${specs.length} trials on ${executor.describe}; folder ${out}\n`);
  await runTrials(executor, specs, {
    teacherFirst: true,
    resume: 'npm run methods (finished methods are reused)',
    onEvent: (e) => {
      if (e.type === 'start') process.stderr.write(`${new Date().toISOString()} start ${e.id}\n`);
      if (e.type === 'end')
        process.stderr.write(
          `${new Date().toISOString()} end ${e.id}${e.reused ? ' (reused)' : ` ${e.result.seconds.toFixed(0)} s`}\n`,
        );
    },
  });
}

interface Row {
  method: Method;
  /** The seeds of `--seeds` this method has finished (at least 2), in order. */
  seeds: number[];
  accuracy: number[];
  agreement: number[];
  ece: number[];
  trainSeconds: number[];
  params: number;
}
/**
 * A method's row from the seeds it has: a third seed (run in its own `--out` with `--seeds 3`
 * and its `seed-3` folder copied in) is added only where the spread of the first two overlapped.
 */
function readRow(m: Method): Row | undefined {
  const have = seeds.filter((s) => existsSync(join(out, m.name, `seed-${s}`, 'report.json')));
  if (have.length < Math.min(2, seeds.length) || !existsSync(join(out, m.name, 'trial.json'))) return undefined;
  const students = have.map(
    (s) =>
      (JSON.parse(readFileSync(join(out, m.name, `seed-${s}`, 'report.json'), 'utf8')) as RunReport).models.find(
        (x) => x.role === 'student',
      )!,
  );
  return {
    method: m,
    seeds: have,
    accuracy: students.map((s) => s.accuracy),
    agreement: students.map((s) => s.agreement),
    ece: students.map((s) => s.ece),
    trainSeconds: students.map((s) => s.trainSeconds ?? Number.NaN),
    params: students[0]!.params ?? Number.NaN,
  };
}

const rows = METHODS.map(readRow).filter((r): r is Row => r !== undefined);
const labels = rows.find((r) => r.method.name === 'labels');
const pct = (v: number[]) => {
  const s = stat(v.map((x) => x * 100));
  return `${s.mean.toFixed(2)} ± ${s.std.toFixed(2)}`;
};
/** Gains over labels-only, paired by seed (seeds labels-only lacks are left out). */
const gainOf = (r: Row) =>
  labels
    ? r.seeds.flatMap((s, i) => {
        const j = labels.seeds.indexOf(s);
        return j < 0 ? [] : [(r.accuracy[i]! - labels.accuracy[j]!) * 100];
      })
    : [];
const sorted = [...rows].sort((a, b) => stat(gainOf(b)).mean - stat(gainOf(a)).mean);
const teacher = existsSync(join(out, 'labels', 'seed-1', 'report.json'))
  ? (JSON.parse(readFileSync(join(out, 'labels', 'seed-1', 'report.json'), 'utf8')) as RunReport).models.find(
      (x) => x.role === 'teacher',
    )
  : undefined;
const table = [
  '| method | setting | student params | test accuracy % | gain over labels (paired) | per seed | agreement % | ECE % | train s |',
  '|---|---|---:|---:|---:|---|---:|---:|---:|',
  ...sorted.map((r) => {
    const g = gainOf(r);
    const gs = stat(g);
    return `| ${r.method.name} | ${r.method.source} | ${r.params.toLocaleString('en-US')} | ${pct(r.accuracy)} | ${r === labels ? '—' : `${gs.mean >= 0 ? '+' : '−'}${Math.abs(gs.mean).toFixed(2)} ± ${gs.std.toFixed(2)}`} | ${r === labels ? '—' : g.map((x) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(2)}`).join(', ')} | ${pct(r.agreement)} | ${pct(r.ece)} | ${stat(r.trainSeconds).mean.toFixed(0)} |`;
  }),
];
const missing = METHODS.filter((m) => !rows.some((r) => r.method === m)).map((m) => m.name);
// The independent check: PyTorch's kd against labels on the same pair (a parity case: `npm run parity`,
// whose full run is bench/parity/last-full.json; `-- --cases kd-large-gap` alone writes its own file).
const parityCase =
  values.dropout !== '0.25'
    ? undefined
    : values.width === '0.25'
      ? 'kd'
      : values.width === '0.0625'
        ? 'kd-large-gap'
        : undefined;
type ParityRow = { case: string; row: string; tfjsMean: number; torchMean: number };
const parity =
  [resolve('bench/parity/last-full.json'), resolve(`bench/parity/${parityCase}.json`)]
    .filter((f) => parityCase !== undefined && existsSync(f))
    .map((f) =>
      (JSON.parse(readFileSync(f, 'utf8')) as { parity: ParityRow[] }).parity.filter((r) => r.case === parityCase),
    )
    .find((rows) => rows.length > 0) ?? [];
const kdRow = (row: string) => parity.find((r) => r.row === row);
const [pl, ps] = [kdRow('labels'), kdRow('student')];
const signed = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(2)}`;
const parityLine =
  pl && ps
    ? `The same comparison in an independent PyTorch implementation (parity case \`${parityCase}\` of bench/parity/cases.json: this student, 10 epochs on 12,000 rows, kd T=4 α=0.9, 2 seeds): kd − labels = ${signed((ps.tfjsMean - pl.tfjsMean) * 100)} pts in tfjs-distill and ${signed((ps.torchMean - pl.torchMean) * 100)} pts in PyTorch.`
    : '';
/** The paired gain of a row of this table, signed, for the reading below ('?' when not run). */
const gainText = (name: string) => {
  const r = rows.find((x) => x.method.name === name);
  return r ? signed(stat(gainOf(r)).mean) : '?';
};
const row = (name: string) => rows.find((x) => x.method.name === name);
const timesLabels = (name: string) =>
  row(name) && labels ? (stat(row(name)!.trainSeconds).mean / stat(labels.trainSeconds).mean).toFixed(0) : '?';
const beyondSpread = rows
  .filter((r) => r !== labels && stat(gainOf(r)).mean > 0 && stat(gainOf(r)).mean > stat(gainOf(r)).std)
  .map((r) => `${r.method.name} (${gainText(r.method.name)})`);
const spreadText =
  beyondSpread.length === 0
    ? 'No method beats labels-only by more than its seed spread'
    : `Beyond their seed spread, only ${beyondSpread.join(', ')} beat labels-only`;
/** What the table shows, per student width and dropout, written from the measured rows. */
const READING: Record<string, string[]> = {
  '0.25/0.25': [
    'The student has dropout. In this table, methods that keep the labels at full weight and add a light teacher signal stay',
    "closest to labels; those that replace most of the label signal with the teacher's (kd at α=0.9, dkd with",
    'β=8, mlkd) lose the most, and logit standardization recovers part of what kd and dkd lose. `kd` and',
    "`soft-ce` differ by the teacher's entropy, a constant: identical gradients, identical students. The two",
    `combinations of the best methods (\`hard+dist\` ${gainText('hard+dist')}, \`dist+rkd\` ${gainText('dist+rkd')}) add nothing to their parts.`,
    `reviewkd costs ${timesLabels('reviewkd')}× the labels' train time (its attention fusions run 64-channel convs at full`,
    'resolution); its seed 2 ran after the native convolution of narrow layers changed (session 8): same',
    'weights and batches as its paired labels run, different rounding. A larger teacher–student gap:',
    '[the large-gap table](benchmarks-large-gap.md).',
  ],
  '0.0625/0.25': [
    `The student is ${row('labels') && teacher ? (teacher.params! / row('labels')!.params).toFixed(0) : '?'}× smaller than the teacher. ${spreadText};`,
    `simkd (${gainText('simkd')}) ships a ${row('simkd') && row('labels') ? (row('simkd')!.params / row('labels')!.params).toFixed(0) : '?'}× larger student (its projector and the teacher's classifier).`,
    `Methods that put most of the weight on the teacher lose more than at width 0.25: kd ${gainText('kd')}, nkd`,
    `${gainText('nkd')}, kd+ls ${gainText('kd+ls')}, dkd+ls ${gainText('dkd+ls')}. This student keeps the quickstart student's dropout (0.25,`,
    'on a 16-unit dense layer): it underfits, and soft targets weaken its signal further. Without dropout',
    '([its own table](benchmarks-large-gap-dropout0.md), `--dropout 0`) the label-only student is several',
    'points better and kd stays within a few tenths of it.',
  ],
  '0.0625/0': [
    `Without dropout this student reaches ${row('labels') ? (stat(row('labels')!.accuracy).mean * 100).toFixed(2) : '?'} % on labels alone (with the quickstart's dropout 0.25: see`,
    `[the large-gap table](benchmarks-large-gap.md)); kd moves it by ${gainText('kd')} and kd-t2 by ${gainText('kd-t2')} pts.`,
  ],
};
const extraSeeds = seeds.slice(2);
const withExtra = rows.filter((r) => r.seeds.some((x) => extraSeeds.includes(x))).map((r) => r.method.name);
const extraSeedsText =
  withExtra.length > 0
    ? `Seed ${extraSeeds.join(', ')} ran as \`npm run methods -- --seeds ${extraSeeds.join(',')} --out ${values.out}-s${extraSeeds.join('')} --only ${withExtra.filter((n) => n !== 'labels').join(',')}\`, its seed folders copied into \`${values.out}/<method>/\`, then \`--table-only --seeds ${seeds.join(',')}\`.`
    : '';
const rerun = `npm run methods -- --width ${values.width}${values.dropout === '0.25' ? '' : ` --dropout ${values.dropout}`} --out ${values.out} --table ${values.table}`;
const doc = [
  `# Knowledge terms at full budget${values.width === '0.25' ? '' : `, student width ${values.width}`}${values.dropout === '0.25' ? '' : `, dropout ${values.dropout}`}`,
  '',
  `Made by \`${rerun}\` (bench/methods.ts) on ${new Date().toISOString().slice(0, 10)}: the quickstart's teacher`,
  `(CNN, 824,746 parameters${teacher ? `, ${(teacher.accuracy * 100).toFixed(2)} % test accuracy` : ''}) and student (the same CNN at`,
  `width ${values.width}, dropout ${values.dropout}, ${labels ? labels.params.toLocaleString('en-US') : '?'} parameters); full Fashion-MNIST, 55,000 train / 5,000 validation /`,
  `10,000 test; ${epochs} epochs, Adam 0.002, cosine schedule, batch 64; seeds ${seeds.slice(0, 2).join(', ')}${seeds.length > 2 ? ` (and ${seeds.slice(2).join(', ')} where the first two seeds' gains spread across zero; "per seed" lists the gains in seed order)` : ''}. Every method trains the`,
  'same student from the same initial weights in the same batch order as `labels` for the same seed,',
  'so the gain is paired by seed. Agreement is top-1 agreement with the teacher; ECE 15 bins.',
  `Train time is per seed, ${values.workers} trials at once with ${values.threads} native thread${values.threads === '1' ? '' : 's'} each on a 2-core machine.`,
  ...(extraSeedsText ? [extraSeedsText] : []),
  '',
  ...table,
  '',
  teacher && labels
    ? `Reading it: the teacher is ${((teacher.accuracy - stat(labels.accuracy).mean) * 100).toFixed(2)} pts above the label-only student at this budget.`
    : '',
  ...(READING[`${values.width}/${values.dropout}`] ?? []),
  parityLine,
  '',
  missing.length > 0 ? `Not run yet: ${missing.join(', ')} (\`${rerun}\` runs them and keeps the rows above).` : '',
  '',
];
await writeFileAtomic(resolve(values.table), `${doc.join('\n').trimEnd()}\n`);
process.stdout.write(`${table.join('\n')}\n`);
process.stderr.write(`wrote ${values.table}\n`);
