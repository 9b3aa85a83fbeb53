/**
 * The committed wasm kernels (src/backend/wasm-kernels-binary.ts) are what wasm/src/kernels.c
 * builds to, and the build's own checks hold (no data segment, no stack in the shared heap).
 * Needs clang-14, lld-14 and wabt; CI installs them and sets DISTILL_REQUIRE_CLANG=1, so there it
 * runs, never skips.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const clang = spawnSync('clang-14', ['--version']);
const skip = clang.status !== 0 && process.env.DISTILL_REQUIRE_CLANG !== '1' ? 'clang-14 is not installed' : undefined;

test('the committed wasm kernels are what wasm/src/kernels.c builds to', { skip }, () => {
  const r = spawnSync(process.execPath, ['scripts/build-wasm-kernels.mjs', '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});
