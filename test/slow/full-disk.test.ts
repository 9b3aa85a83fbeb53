/**
 * Full disks: a write that fails with ENOSPC (injected, and on a real 1 MiB tmpfs when this runs
 * as root) stops the run with one line naming the file, leaves every file that was there whole,
 * and `--resume` finishes the run once there is space, with the weights of an undisturbed run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { SMALL_SLICE, smallTeacher } from '../helpers.js';

const root = mkdtempSync(join(tmpdir(), 'distill-disk-'));
const cache = join(root, 'cache');

function distill(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    env: { ...process.env, TFJS_DISTILL_THREADS: '1', DISTILL_BACKEND: 'wasm', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, stderr })),
  );
}

const set = (out: string) =>
  [
    'run',
    'examples/kd.yaml',
    ...[...SMALL_SLICE, ...smallTeacher('teacher.kwargs', cache)].flatMap((s) => ['--set', s]),
  ].concat(['--out', out, '--quiet']);

function weights(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f === 'weights.bin' && p.includes('/students/'))
        out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

const undisturbed = join(root, 'whole');
test('an undisturbed run (the reference)', async () => {
  const r = await distill(set(undisturbed));
  assert.equal(r.code, 0, r.stderr);
});

test('an injected ENOSPC at any of several writes: one line naming the file, then --resume finishes the run', async () => {
  // The 2nd write is a checkpoint of the first phase; the 6th comes later (another checkpoint,
  // the report or an exported model, depending on the timing of phases).
  for (const at of [2, 6]) {
    const out = join(root, `injected-${at}`);
    const failed = await distill(set(out), { DISTILL_FAULT_WRITE: `ENOSPC@${at}` });
    assert.equal(failed.code, 1, failed.stderr);
    const line = failed.stderr.trim().split('\n').at(-1)!;
    assert.match(line, /cannot write \/.+: no space left on the device; free some space .* --resume continues a run/);
    assert.doesNotMatch(failed.stderr, /\n\s+at /, 'no stack');
    const named = /cannot write (\S+):/.exec(line)![1]!;
    assert.equal(existsSync(named) ? statSync(named).size > 0 : true, true);
    assert.equal(
      readdirSync(out, { recursive: true, encoding: 'utf8' }).filter((f) => /\.tmp-/.test(f)).length,
      0,
      'no temp file left',
    );
    const resumed = await distill(['run', '--resume', out, '--quiet']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual(weights(out), weights(undisturbed), `fault at write ${at}: the weights of an undisturbed run`);
  }
});

const isRoot = process.getuid?.() === 0;
test('a real 1 MiB tmpfs fills up: one line, the checkpoint intact, --resume after it grows', async (t) => {
  const mount = join(root, 'small-disk');
  mkdirSync(mount);
  try {
    if (!isRoot) throw new Error('not root');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mount], { stdio: 'pipe' });
  } catch (e) {
    t.skip(`cannot mount a tmpfs here (${(e as Error).message.split('\n')[0]}); the injected faults above still ran`);
    return;
  }
  try {
    const out = join(mount, 'run');
    const failed = await distill(set(out));
    assert.equal(failed.code, 1, failed.stderr);
    const line = failed.stderr.trim().split('\n').at(-1)!;
    assert.match(line, /cannot write .*: no space left on the device; free some space/);
    assert.doesNotMatch(failed.stderr, /\n\s+at /, 'no stack');
    const checkpoints = readdirSync(out, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ckpt'));
    for (const c of checkpoints) assert.ok(await readCheckpoint(join(out, c)), `${c} reads`);
    execFileSync('mount', ['-o', 'remount,size=64m', mount]);
    const resumed = await distill(['run', '--resume', out, '--quiet']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual(weights(out), weights(undisturbed));
  } finally {
    execFileSync('umount', [mount]);
  }
});
