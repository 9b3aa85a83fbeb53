import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

// A fresh process: importing the library must leave TensorFlow.js as it found it (no backend
// registered or chosen) until the user asks for one; plain tf code then runs at once.
const SCRIPT = `
import * as tf from '@tensorflow/tfjs';
await import('./src/index.ts');
const model = tf.sequential();
model.add(tf.layers.dense({ units: 1, inputShape: [2], kernelInitializer: 'ones' }));
const y = model.predict(tf.ones([1, 2]));
const { useBestBackend } = await import('./src/index.ts');
const before = { backend: tf.getBackend(), registered: Object.keys(tf.engine().registryFactory), y: y.dataSync()[0] };
const choice = await useBestBackend({ backend: 'wasm' });
console.log(JSON.stringify({ ...before, after: choice.name }));
`;

test('importing tfjs-distill changes nothing in tf until a backend is asked for', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
    backend: string;
    registered: string[];
    y: number;
    after: string;
  };
  assert.equal(r.backend, 'cpu', "tf's own default backend");
  assert.deepEqual(r.registered, ['cpu'], 'no backend registered by the import');
  assert.equal(r.y, 2);
  assert.equal(r.after, 'wasm', 'asked for, the wasm backend is there');
});
