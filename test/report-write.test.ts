import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Dataset } from '../src/data/dataset.js';
import {
  evaluateModels,
  modelPredictFn,
  type EpochRecord,
  type ReportModel,
  type RunReport,
} from '../src/eval/index.js';
import { mlp } from '../src/models/index.js';
import { TABLE_METRICS, validateReport, writeReport } from '../src/report/index.js';
import { assertUserError } from './helpers.js';

tf.enableProdMode();
await tf.setBackend('cpu');

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const history = (terms: string[], acc0: number): EpochRecord[] =>
  [1, 2, 3].map((epoch) => ({
    epoch,
    seconds: 1.5,
    losses: Object.fromEntries(terms.map((t, i) => [t, (i + 1) / epoch])),
    trainAccuracy: acc0 + 0.05 * epoch,
    valAccuracy: acc0 + 0.04 * epoch,
    valLoss: 1 / epoch,
  }));

function model(over: Partial<ReportModel> & Pick<ReportModel, 'name' | 'role'>): ReportModel {
  return {
    params: 1000,
    bytes: { float32: 5000, float16: 3000, uint8: 2000 },
    accuracy: 0.8,
    agreement: 0.9,
    klToTeacher: 0.1,
    ece: 0.05,
    latencyMs: { batch1: 0.5, batch64: 4 },
    compression: { params: 10, bytes: { float32: 8, float16: 13, uint8: 20 } },
    speedup: { batch1: 2, batch64: 5 },
    ...over,
  };
}

function sample(): RunReport {
  return {
    title: 'Test run',
    createdAt: '2025-01-02T03:04:05.000Z',
    backend: 'cpu',
    dataset: { name: 'synthetic', train: 1200, test: 300 },
    settings: { epochs: 3, kd: { temperature: 4 } },
    models: [
      model({
        name: 'big',
        role: 'teacher',
        params: 10000,
        bytes: { float32: 40000, float16: 20500, uint8: 10800 },
        accuracy: 0.9,
        agreement: 1,
        klToTeacher: 0,
        latencyMs: { batch1: 1, batch64: 20 },
        compression: { params: 1, bytes: { float32: 1, float16: 1.95, uint8: 3.7 } },
        speedup: { batch1: 1, batch64: 1 },
        trainSeconds: 30,
        history: history(['ce'], 0.7),
        method: 'labels',
      }),
      model({
        name: 'small-kd',
        role: 'student',
        accuracy: 0.85,
        agreement: 0.93,
        klToTeacher: 0.08,
        ece: 0.03,
        trainSeconds: 9,
        history: history(['ce', 'kd'], 0.6),
        method: 'kd T=4',
      }),
      model({
        name: 'small-ce',
        role: 'student',
        accuracy: 0.83,
        agreement: 0.88,
        klToTeacher: 0.15,
        ece: 0.06,
        trainSeconds: 4.2,
        history: history(['ce'], 0.6),
        method: 'labels only',
        baseline: true,
      }),
    ],
  };
}

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'report-'));
  try {
    await f(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('writes report.json, report.md with the table, self-contained report.html and PNG plots', () =>
  withDir(async (dir) => {
    const report = sample();
    const out = await writeReport({ outDir: join(dir, 'run'), report });
    const run = join(dir, 'run');
    assert.deepEqual((await readdir(run)).sort(), ['plots', 'report.html', 'report.json', 'report.md']);
    assert.deepEqual((await readdir(join(run, 'plots'))).sort(), ['accuracy.png', 'losses.png', 'tradeoff.png']);
    assert.deepEqual(JSON.parse(await readFile(out.json, 'utf8')), report);

    const md = await readFile(out.markdown, 'utf8');
    const lines = md.split('\n');
    const header = lines.find((l) => l.startsWith('| metric |'))!;
    assert.equal(header, '| metric | big | small-kd | small-ce |');
    const rows = lines.filter((l) => l.startsWith('| ') && !l.startsWith('| metric'));
    assert.deepEqual(
      rows.map((r) => r.split(' | ')[0]!.slice(2)),
      [...TABLE_METRICS],
    );
    const row = (metric: string) =>
      rows
        .find((r) => r.startsWith(`| ${metric} |`))!
        .split(' | ')
        .slice(1)
        .map((c) => c.replace(/ \|$/, ''));
    assert.deepEqual(row('parameters'), ['10,000', '1,000', '1,000']);
    assert.deepEqual(row('size, float32'), ['39.1 KiB', '4.88 KiB', '4.88 KiB']);
    assert.deepEqual(row('size, uint8'), ['10.5 KiB', '1.95 KiB', '1.95 KiB']);
    assert.deepEqual(row('test accuracy'), ['90.00 %', '85.00 %', '83.00 %']);
    assert.deepEqual(row('agreement with teacher (top-1)'), ['100.00 %', '93.00 %', '88.00 %']);
    assert.deepEqual(row('KL to teacher (nats, T=1)'), ['0.0000', '0.0800', '0.1500']);
    assert.deepEqual(row('ECE (15 bins)'), ['5.00 %', '3.00 %', '6.00 %']);
    assert.deepEqual(row('latency, batch 64 (median)'), ['20.0 ms', '4.00 ms', '4.00 ms']);
    assert.deepEqual(row('compression, params'), ['×1.00', '×10.0', '×10.0']);
    assert.deepEqual(row('speed-up, batch 64'), ['×1.00', '×5.00', '×5.00']);
    assert.deepEqual(row('train time'), ['30.0 s', '9.0 s', '4.2 s']);
    assert.match(md, /What distilling bought/);
    assert.match(
      md,
      /`small-kd` vs `small-ce` \(labels only, same size\): accuracy \+2\.00 pts \(85\.00 % vs 83\.00 %\)/,
    );

    const html = await readFile(out.html, 'utf8');
    assert.match(html, /^<!DOCTYPE html>/);
    assert.equal(html.match(/<svg\b/g)?.length, 3);
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|@import|url\(/i);
    assert.doesNotMatch(html, /(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    assert.doesNotMatch(html, /https?:/); // not even SVG namespace URIs
    for (const name of ['big', 'small-kd', 'small-ce', 'parameters', 'speed-up, batch 64', 'What distilling bought'])
      assert.ok(html.includes(name), name);

    for (const file of Object.values(out.plots)) assert.deepEqual([...(await readFile(file)).subarray(0, 8)], PNG);
  }));

test('without histories only the trade-off plot is drawn; no baseline → no gains line; rewriting replaces files', () =>
  withDir(async (dir) => {
    const report = sample();
    for (const m of report.models) {
      delete m.history;
      delete m.baseline;
    }
    await writeReport({ outDir: dir, report });
    const out = await writeReport({ outDir: dir, report: { ...report, title: 'Second' } });
    assert.deepEqual(Object.keys(out.plots), ['tradeoff']);
    const html = await readFile(out.html, 'utf8');
    assert.equal(html.match(/<svg\b/g)?.length, 1);
    assert.match(html, /No per-epoch history/);
    assert.match(html, /<title>Second<\/title>/);
    assert.doesNotMatch(await readFile(out.markdown, 'utf8'), /What distilling bought/);
    assert.ok((await readdir(dir)).every((f) => !f.includes('.tmp-')));
  }));

test('a missing or malformed field is a one-line UserError naming it; nothing is written', () =>
  withDir(async (dir) => {
    const report = sample() as unknown as { models: Array<Record<string, unknown>> } & Record<string, unknown>;
    delete report.models[1]!.accuracy;
    await assertUserError(
      writeReport({ outDir: join(dir, 'x'), report: report as unknown as RunReport }),
      /report\.models\[1\]\.accuracy is missing \(expected number\)/,
    );
    assert.deepEqual(await readdir(dir), []);
    const noTitle = { ...sample(), title: undefined } as unknown as RunReport;
    assert.throws(() => validateReport(noTitle), /report\.title is missing/);
    const badRole = sample();
    badRole.models.reverse();
    assertUserError(() => validateReport(badRole), /teacher first/);
    const dup = sample();
    dup.models[2]!.name = 'small-kd';
    assert.throws(() => validateReport(dup), /two models are named `small-kd`/);
    assert.throws(
      () => validateReport({ ...sample(), dataset: { name: 'x', train: 'many', test: 1 } }),
      /report\.dataset\.train: expected number/,
    );
  }));

test('end to end: evaluateModels on tiny models → writeReport', () =>
  withDir(async (dir) => {
    const n = 64;
    const features = new Float32Array(n * 6).map((_, i) => Math.cos(i * 0.9));
    const labels = new Int32Array(n).map((_, i) => i % 3);
    const testSet = new Dataset({ features, labels, sampleShape: [6], numClasses: 3 });
    const teacher = mlp({ inputShape: [6], numClasses: 3, hidden: [32], seed: 1 });
    const student = mlp({ inputShape: [6], numClasses: 3, hidden: [4], seed: 2 });
    const before = tf.memory().numTensors;
    const ev = await evaluateModels({
      teacher: { name: 'teacher', predict: modelPredictFn(teacher), model: teacher },
      students: [{ name: 'student', model: student }],
      test: testSet,
      latency: { warmup: 1, runs: 20 },
    });
    assert.equal(tf.memory().numTensors, before);
    const report: RunReport = {
      title: 'tiny',
      createdAt: new Date(0).toISOString(),
      backend: ev.backend,
      dataset: { name: 'cos', train: 0, test: n },
      settings: {},
      models: ev.models,
    };
    const out = await writeReport({ outDir: dir, report });
    const md = await readFile(out.markdown, 'utf8');
    assert.match(
      md,
      /\| metric \| teacher \| student \|\n\|---\|---:\|---:\|\n\| trained with \| pre-trained \(teacher\) \| — \|/,
    );
    assert.match(md, /\| train time \| — \| — \|/);
    teacher.dispose();
    student.dispose();
  }));
