/**
 * The soak of `npm run stress`, in a process of its own (nothing else loaded): a small student
 * distilled for 50 epochs through the Distiller on the best backend, RSS (after a GC) and
 * tf.memory().numTensors sampled at every epoch's end. Prints one JSON line: { backend, rss, tensors }.
 *
 *   node --expose-gc --import tsx bench/soak.ts [backend]
 */
import * as tf from '@tensorflow/tfjs';
import { useBestBackend } from '../src/backend/index.js';
import { Distiller } from '../src/distiller/distiller.js';

const backend = await useBestBackend(process.argv[2] ? { backend: process.argv[2] } : {});
const n = 2048;
const x = tf.randomNormal([n, 16], 0, 1, 'float32', 1);
const y = tf.oneHot(tf.randomUniform([n], 0, 4, 'int32', 2) as tf.Tensor1D, 4);
const mlp = (units: number) =>
  tf.sequential({
    layers: [tf.layers.dense({ inputShape: [16], units, activation: 'relu' }), tf.layers.dense({ units: 4 })],
  });
const rss: number[] = [];
const tensors: number[] = [];
await new Distiller({ teacher: mlp(128), student: mlp(64), knowledge: [{ key: 'kd' }] }).fit(x, y, {
  epochs: 50,
  batchSize: 64,
  callbacks: {
    onEpochEnd: () => {
      global.gc?.();
      rss.push(process.memoryUsage().rss);
      tensors.push(tf.memory().numTensors);
    },
  },
});
process.stdout.write(`${JSON.stringify({ backend: backend.name, rss, tensors })}\n`);
