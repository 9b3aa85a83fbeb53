/**
 * Step equivalence with an independent PyTorch implementation (bench/parity/steps.ts): the
 * zoo CNN's initial weights copied into PyTorch, the same batches, no dropout — tfjs-distill's
 * training step (forward, gradients, BN, Adam, per-step cosine) must give PyTorch's losses.
 * Needs Debian's python3-torch; skipped with a message without it, a failure under
 * DISTILL_REQUIRE_TORCH=1 (set by .ci/run).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { useBestBackend } from '../src/backend/index.js';
import { STEP_BARS, stepParity } from '../bench/parity/steps.js';

const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
const torchMissing =
  probe.status === 0 ? undefined : 'needs /usr/bin/python3 with torch (apt-get install python3-torch)';
if (torchMissing && process.env['DISTILL_REQUIRE_TORCH'] === '1')
  throw new Error(`DISTILL_REQUIRE_TORCH=1 but ${torchMissing}`);
if (torchMissing) console.log(`# skipping PyTorch step equivalence: ${torchMissing}`);

test("a training step equals PyTorch's: same weights, same batches, 60 steps", { skip: torchMissing }, async () => {
  await useBestBackend();
  const r = await stepParity({ width: 0.25, steps: 60, testRows: 2000 });
  assert.ok(r.earlyMaxDiff <= STEP_BARS.earlyMaxDiff, `first 10 steps differ by up to ${r.earlyMaxDiff}`);
  assert.ok(r.meanDiff <= STEP_BARS.meanDiff, `mean |Δloss| ${r.meanDiff}`);
  assert.ok(
    Math.abs(r.tfjsAccuracy - r.torchAccuracy) <= STEP_BARS.accuracy,
    `accuracy ${r.tfjsAccuracy} vs ${r.torchAccuracy}`,
  );
  assert.ok(r.ok);
  // the check sees a 10 % learning-rate difference handed to the reference
  const off = await stepParity({
    width: 0.25,
    steps: 60,
    testRows: 2000,
    referenceOverrides: { learningRate: 2.2e-3 },
  });
  assert.equal(off.ok, false);
  assert.ok(off.earlyMaxDiff > STEP_BARS.earlyMaxDiff);
});
