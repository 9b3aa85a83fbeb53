import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startBoard } from '../src/board/server.js';
import { runExperiment } from '../src/experiment/run.js';
import { distillCli, launchChromium, SMALL_SLICE, smallTeacher } from './helpers.js';

/**
 * `distill board` in Debian's chromium (playwright-core): a run in progress gains a curve point
 * per epoch on the page; two finished runs are selected and compared.
 */
test('board: live curves of a run in progress, reports, and a comparison of two finished runs', async () => {
  const root = mkdtempSync(join(tmpdir(), 'board-'));
  const cache = join(root, '.teacher');
  const slice = [...SMALL_SLICE, ...smallTeacher('teacher.kwargs', cache), 'epochs=1'];
  for (const [name, t] of [
    ['a', 1],
    ['b', 4],
  ] as const)
    await runExperiment({
      file: 'examples/kd.yaml',
      set: [...slice, `knowledge[0].kwargs.temperature=${t}`],
      out: join(root, name),
      progress: 'quiet',
      log: () => {},
    });
  // The live run: long enough to be watched for a few epochs.
  const live = distillCli([
    'run',
    'examples/kd.yaml',
    ...[...slice, 'epochs=8', 'data.kwargs.subset=4000', 'baseline=false'].flatMap((s) => ['--set', s]),
    '--out',
    join(root, 'live'),
    '--quiet',
  ]);
  const board = await startBoard({ dir: root, port: 0 });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(board.url);
    const points = async () => Number((await page.getAttribute('tr[data-run="live"]', 'data-points')) ?? 0);
    await page.waitForSelector('tr[data-run="live"][data-status="running"]', { timeout: 120_000 });
    await page.waitForFunction(
      () => Number(document.querySelector('tr[data-run="live"]')?.getAttribute('data-points')) >= 1,
      null,
      { timeout: 120_000 },
    );
    const first = await points();
    await page.waitForFunction(
      (n) => Number(document.querySelector('tr[data-run="live"]')?.getAttribute('data-points')) > n,
      first,
      { timeout: 120_000 },
    );
    const later = await points();
    assert.ok(later > first, `the curve gained points: ${first} → ${later}`);
    const img = await page.waitForSelector(`div.curve[data-run="live"][data-points="${later}"] img`, {
      timeout: 10_000,
    });
    assert.match((await img.getAttribute('src')) ?? '', new RegExp(`/api/curve/live\\?points=${later}$`));
    assert.ok(await img.evaluate((i) => (i as HTMLImageElement).complete), 'the curve image loads');

    // Two finished runs, selected and compared.
    await page.check('tr[data-run="a"] input.pick');
    await page.check('tr[data-run="b"] input.pick');
    await page.click('#compare');
    await page.waitForSelector('#comparison tbody tr');
    const rows = await page.$$eval('#comparison tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    assert.equal(rows.length, 6, 'teacher, labels and kd of each run');
    assert.ok(rows.some((r) => r.startsWith('kd (a)')) && rows.some((r) => r.startsWith('kd (b)')), rows.join('\n'));
    assert.ok(await page.$('#comparison-area figure svg'), 'the accuracy-vs-latency plot');
    const report = await page.getAttribute('tr[data-run="a"] a', 'href');
    assert.equal(report, '/files/a/seed-1/report.html');
    const res = await fetch(new URL(report!, board.url));
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<table/);
    const outside = await fetch(new URL('/files/..%2F..%2Fetc%2Fpasswd', board.url));
    assert.equal(outside.status, 404, 'nothing outside the runs folder is served');
  } finally {
    await browser.close();
    await board.close();
    const r = await live;
    assert.equal(r.code, 0, r.stderr);
  }
});
