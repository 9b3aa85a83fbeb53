/**
 * `writeFileAtomic` under a kill: a process SIGKILLed during its k-th write (after the temp file
 * is synced, before the rename) leaves the earlier files whole and the target's old content;
 * the next writer of that target removes the dead writer's temp, never a live one's or another
 * host's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempTag, writeFileAtomic } from '../src/io/atomic.js';

const writer = (dir: string, env: NodeJS.ProcessEnv) =>
  spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `import { writeFileAtomic } from './src/io/atomic.ts';
       for (const name of ['a', 'b', 'c']) await writeFileAtomic(${JSON.stringify(dir)} + '/' + name, 'new ' + name);`,
    ],
    { env: { ...process.env, ...env }, encoding: 'utf8' },
  );

test('KILL@2: killed during the second write; the first file is new, the second old, the third untouched', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'distill-atomic-kill-'));
  writeFileSync(join(dir, 'b'), 'old b');
  const trace = join(dir, 'trace');
  const r = writer(dir, { DISTILL_FAULT_WRITE: 'KILL@2', DISTILL_TRACE_WRITES: trace });
  assert.equal(r.signal, 'SIGKILL', r.stderr);
  assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'new a');
  assert.equal(readFileSync(join(dir, 'b'), 'utf8'), 'old b');
  assert.deepEqual(readFileSync(trace, 'utf8').trim().split('\n'), [join(dir, 'a'), join(dir, 'b')]);
  const temps = readdirSync(dir).filter((f) => f.startsWith('b.tmp-'));
  assert.equal(temps.length, 1, 'the killed write leaves its synced temp file');
  assert.equal(readFileSync(join(dir, temps[0]!), 'utf8'), 'new b');
  assert.ok(!readdirSync(dir).includes('c'));

  // a live writer's temp (this process) and another host's stay; the dead writer's goes
  const mine = `b.tmp-${tempTag()}-00000000`;
  const host = tempTag().split('-')[1];
  const otherHost = `b.tmp-${r.pid}-${host === '000000' ? '000001' : '000000'}-00000000`;
  writeFileSync(join(dir, mine), 'x');
  writeFileSync(join(dir, otherHost), 'x');
  await writeFileAtomic(join(dir, 'b'), 'newer b');
  assert.equal(readFileSync(join(dir, 'b'), 'utf8'), 'newer b');
  assert.deepEqual(
    readdirSync(dir)
      .filter((f) => f.startsWith('b.tmp-'))
      .sort(),
    [mine, otherHost].sort(),
  );
});
