/**
 * The wasm backend's threaded build in Node (src/backend/wasm-threads.ts): with
 * TFJS_DISTILL_THREADS=2 it starts 2 XNNPACK threads, computes what the single-threaded build
 * computes (a conv, a matmul and Adam steps through our own kernels, whose module imports the
 * heap shared in one build and plain in the other: bit for bit), and the process still exits by itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const script = `
import * as tf from '@tensorflow/tfjs';
import { useBestBackend } from './src/backend/index.ts';
import { wasmKernelsAvailable } from './src/backend/wasm-kernels.ts';
const choice = await useBestBackend({ backend: 'wasm' });
const x = tf.randomUniform([8, 12, 12, 8], -1, 1, 'float32', 1);
const k = tf.randomUniform([3, 3, 8, 16], -1, 1, 'float32', 2);
const a = tf.randomUniform([96, 80], -1, 1, 'float32', 3);
const conv = Array.from(tf.conv2d(x, k, 1, 'same').dataSync());
const mm = Array.from(tf.matMul(a, a, false, true).dataSync());
const model = tf.sequential({ layers: [tf.layers.dense({ units: 300, inputShape: [80], kernelInitializer: tf.initializers.randomUniform({ seed: 4 }) })] });
const optimizer = tf.train.adam(0.01);
for (let i = 0; i < 3; i++) optimizer.minimize(() => model.apply(a).square().mean());
const adam = Array.from(model.getWeights()[0].dataSync());
console.log(JSON.stringify({ reason: choice.attempts[0].reason, kernels: wasmKernelsAvailable(tf.backend()), conv, mm, adam }));
`;

function run(threads: string) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, TFJS_DISTILL_THREADS: threads },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `exits by itself (status ${r.status}, signal ${r.signal}): ${r.stderr.slice(-400)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
    reason: string;
    kernels: boolean;
    conv: number[];
    mm: number[];
    adam: number[];
  };
}

test('two XNNPACK threads, the same numbers as one, and the process exits', () => {
  const two = run('2');
  const one = run('1');
  assert.match(two.reason, /2 thread\(s\)/);
  assert.match(one.reason, /1 thread\(s\)/);
  assert.deepEqual(two.conv, one.conv);
  assert.deepEqual(two.mm, one.mm);
  assert.ok(two.kernels && one.kernels, 'our kernels run on both builds');
  assert.deepEqual(two.adam, one.adam);
});
