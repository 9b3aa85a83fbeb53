import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { paretoFront, pickCandidates, rungEpochs, runSearch } from '../src/search/search.js';
import type { SearchResult } from '../src/search/types.js';
import { gridCombinations, parseGrid, randomCombinations, runSweep, trialId } from '../src/search/sweep.js';
import { localExecutor } from '../src/trials/local.js';
import type { TrialEvent } from '../src/trials/types.js';
import { assertUserError, SMALL_SLICE, smallTeacher } from './helpers.js';

const tmp = (name: string) => mkdtempSync(join(tmpdir(), `${name}-`));

test('sweep grid: every combination, first axis slowest; random picks distinct ones; bad grids are one line', () => {
  const axes = [parseGrid('knowledge[0].kwargs.temperature=[1, 4]'), parseGrid('epochs=[2,3,5]')];
  const all = gridCombinations(axes);
  assert.equal(all.length, 6);
  assert.deepEqual(all[0], ['knowledge[0].kwargs.temperature=1', 'epochs=2']);
  assert.deepEqual(all[5], ['knowledge[0].kwargs.temperature=4', 'epochs=5']);
  const some = randomCombinations(axes, 3, 7);
  assert.equal(new Set(some.map((c) => c.join())).size, 3);
  assert.ok(some.every((c) => all.some((a) => a.join() === c.join())));
  assert.deepEqual(randomCombinations(axes, 3, 7), some, 'seeded');
  assert.equal(randomCombinations(axes, 99, 7).length, 6);
  assert.equal(trialId(2, all[0]!), 't03-temperature=1,epochs=2');
  assertUserError(() => parseGrid('epochs'), /--grid epochs: write it as path=\[v1, v2\]/);
  assertUserError(() => parseGrid('epochs=3'), /give a list of values/);
  assertUserError(() => parseGrid('epochs=[1,'), /not valid YAML/);
});

test('successive halving: rungs double their epochs up to half the budget; front and picks', () => {
  assert.deepEqual(rungEpochs(8, 8), [2, 4]);
  assert.deepEqual(rungEpochs(7, 5), [1, 3]);
  assert.deepEqual(rungEpochs(4, 10), [5]);
  assert.deepEqual(rungEpochs(2, 10), []);
  const a = { acc: 0.9, ms: 2, params: 100 };
  const b = { acc: 0.8, ms: 1, params: 100 };
  const c = { acc: 0.8, ms: 2, params: 100 }; // beaten by a (accuracy) and b (latency)
  const d = { acc: 0.7, ms: 1, params: 50 };
  assert.deepEqual([...paretoFront([a, b, c, d])], [a, b, d]);
  const node = (key: string) => ({ key, kwargs: {} });
  const picked = pickCandidates(
    [
      { name: 'c1', node: node('cnn'), structure: 'cnn', params: 50 },
      { name: 'c2', node: node('cnn'), structure: 'cnn', params: 40 },
      { name: 'c3', node: node('cnn'), structure: 'cnn', params: 30 },
      { name: 'b1', node: node('cnn'), structure: 'cnn-1block', params: 35 },
      { name: 'm1', node: node('mlp'), structure: 'mlp', params: 45 },
    ],
    4,
  );
  assert.deepEqual(
    picked.map((c) => c.name),
    ['c1', 'm1', 'b1', 'c2'],
    'round-robin over families, then over the structures of each family, the largest of each first',
  );
});

const searchSlice = (cache: string) => [
  ...SMALL_SLICE,
  ...smallTeacher('teacher.kwargs', cache),
  'epochs=4',
  'data.kwargs.subset=1200',
];

test('search on the local executor: budget filter, halving, finalists with baselines, the search.json contract; resume reruns nothing', async () => {
  const cache = tmp('search-cache');
  const out = join(tmp('search'), 's');
  const events: TrialEvent[] = [];
  const run = (o: { resume?: string }) =>
    runSearch({
      ...(o.resume === undefined && {
        file: 'examples/kd.yaml',
        set: searchSlice(cache),
        maxParams: 20000,
        maxLatencyMs: 1000,
        latencyRuns: 2,
        trials: 4,
        out,
      }),
      ...(o.resume !== undefined && { resume: o.resume }),
      executor: localExecutor({ shared: out, workers: 2 }),
      onEvent: (e) => events.push(e),
      log: () => {},
    });
  const r: SearchResult = await run({});
  const json = JSON.parse(readFileSync(join(out, 'search.json'), 'utf8')) as SearchResult;
  assert.deepEqual(json.chosen, r.chosen);
  for (const c of json.candidates) {
    assert.ok(c.params <= 20000 || c.dropped, `${c.name} is within the parameter budget or dropped`);
    for (const k of ['name', 'family', 'structure', 'params', 'bytes', 'latencyMs', 'accuracy', 'epochs', 'onFront'])
      assert.ok(k in c, `candidate ${c.name} has ${k}`);
    assert.ok(c.bytes.uint8 > 0 && c.bytes.float32 > 0 && c.latencyMs.batch1 > 0 && c.latencyMs.batch64 > 0);
  }
  const trained = json.candidates.filter((c) => c.epochs > 0);
  assert.equal(trained.filter((c) => c.epochs === 4).length, 2, 'two finalists at the full epochs');
  assert.ok(trained.length >= 3 && trained.length <= 4);
  assert.ok(trained.some((c) => c.onFront));
  assert.ok(
    trained.filter((c) => c.epochs === 4).every((c) => c.valAccuracy! > 0.2),
    'the finalists beat chance',
  );
  assert.deepEqual(
    json.rungs.map((g) => g.epochs),
    [...rungEpochs(trained.length, 4), 4],
  );
  const chosen = json.candidates.find((c) => c.name === json.chosen.name)!;
  assert.equal(chosen.epochs, 4);
  assert.ok(json.chosen.baselineAccuracy > 0.2 && json.chosen.accuracy > 0.2);
  assert.equal(json.chosen.gain, json.chosen.accuracy - json.chosen.baselineAccuracy);
  assert.match(json.chosen.verdict, /^kd (gained|cost) \d+\.\d\d pts|made no difference/);
  for (const f of ['search.md', 'search.html', 'search.png', 'search.svg']) assert.ok(existsSync(join(out, f)), f);
  const html = readFileSync(join(out, 'search.html'), 'utf8');
  assert.ok(html.includes('<svg') && !/(src|href)="https?:/.test(html), 'self-contained, with the plot inline');
  assert.ok(existsSync(join(out, json.chosen.dir, 'seed-1', 'report.md')), "the chosen student's run and report");

  // Resumed, every trial is read from its folder: nothing trains, the result is the same.
  events.length = 0;
  const mtime = statSync(join(out, json.chosen.dir, 'trial.json')).mtimeMs;
  const again = await run({ resume: out });
  assert.ok(events.length > 0 && events.every((e) => e.type === 'end' && e.reused));
  assert.deepEqual(again.chosen, r.chosen);
  assert.equal(statSync(join(out, json.chosen.dir, 'trial.json')).mtimeMs, mtime);
});

test('search refuses impossible budgets and missing validation data in one line', async () => {
  const cache = tmp('search-cache');
  const base = { file: 'examples/kd.yaml', latencyRuns: 1, log: () => {} };
  const executor = localExecutor({ shared: tmp('search-bad'), workers: 1 });
  await assertUserError(
    runSearch({ ...base, set: searchSlice(cache), executor }),
    'give a budget: --max-params N, --max-latency-ms X, --max-latency-fraction F or --max-bytes B (any of them)',
  );
  // A fraction of the teacher's latency, resolved to milliseconds once the teacher is timed.
  await assertUserError(
    runSearch({ ...base, set: searchSlice(cache), maxLatencyFraction: 1e-6, executor }),
    /^no candidate meets the budget \(the fastest, .+: latency .+ ms > [\d.e-]+ ms at batch 64\); loosen/,
  );
  await assertUserError(
    runSearch({ ...base, set: searchSlice(cache), maxLatencyFraction: -1, executor }),
    '--max-latency-fraction must be a positive number (got -1)',
  );
  await assertUserError(
    runSearch({ ...base, set: searchSlice(cache), maxLatencyMs: 0.000001, executor }),
    /^no candidate meets the budget \(the fastest, .+: latency .+ ms > 0\.000001 ms at batch 64\); loosen/,
  );
  await assertUserError(
    runSearch({ ...base, set: [...searchSlice(cache), 'data.kwargs.validationFraction=0'], maxParams: 1e5, executor }),
    /ranks candidates on validation data, never on the test set; set data.kwargs.validationFraction/,
  );
});

test('sweep on the local executor: one trial per combination, a compare table, and a resumed sweep reuses them', async () => {
  const cache = tmp('sweep-cache');
  const out = join(tmp('sweep'), 'sw');
  const executor = localExecutor({ shared: out, workers: 2 });
  const r = await runSweep({
    file: 'examples/kd.yaml',
    set: [...SMALL_SLICE, ...smallTeacher('teacher.kwargs', cache), 'baseline=false'],
    grid: ['knowledge[0].kwargs.temperature=[1,4]', 'knowledge[0].kwargs.alpha=[0.5,0.9]'],
    out,
    executor,
    log: () => {},
  });
  assert.equal(r.results.length, 4);
  assert.deepEqual(
    r.state.trials.map((t) => t.id),
    [
      't01-temperature=1,alpha=0.5',
      't02-temperature=1,alpha=0.9',
      't03-temperature=4,alpha=0.5',
      't04-temperature=4,alpha=0.9',
    ],
  );
  for (const t of r.results) {
    const student = t.models.find((m) => m.role === 'student')!;
    assert.ok(student.accuracy > 0.2, `${t.id} beats chance`);
  }
  assert.equal(r.compare.rows.filter((row) => row.role === 'student').length, 4);
  assert.ok(existsSync(join(out, 'compare.md')));
  await assertUserError(
    runSweep({ file: 'examples/kd.yaml', grid: ['epochs=[1]'], out, executor, log: () => {} }),
    /already holds a sweep; continue it with --resume/,
  );
  const events: TrialEvent[] = [];
  const again = await runSweep({ resume: out, executor, log: () => {}, onEvent: (e) => events.push(e) });
  assert.deepEqual(again.results, r.results);
  assert.ok(events.every((e) => e.type === 'end' && e.reused));
});

test('a sweep or search folder is used by one process at a time; a dead holder on this host is taken over', async () => {
  const { lockFolder } = await import('../src/io/folder-lock.js');
  const { writeFileSync } = await import('node:fs');
  const { hostname } = await import('node:os');
  const dir = tmp('lock');
  const release = lockFolder(dir, 'distill sweep');
  assertUserError(
    () => lockFolder(dir, 'distill search'),
    new RegExp(`is in use by distill sweep \\(pid ${process.pid} on `),
  );
  release();
  lockFolder(dir, 'distill search')();
  // A holder that no longer exists (pid 2^22 + 1 is above Linux's pid_max default).
  writeFileSync(join(dir, '.lock'), JSON.stringify({ host: hostname(), pid: 4194305, what: 'distill sweep' }));
  lockFolder(dir, 'distill sweep')();
  writeFileSync(join(dir, '.lock'), JSON.stringify({ host: 'elsewhere', pid: 1, what: 'distill search' }));
  assertUserError(
    () => lockFolder(dir, 'distill sweep'),
    /in use by distill search \(pid 1 on elsewhere\); .*delete .*\.lock\)$/,
  );
});
