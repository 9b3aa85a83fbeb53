// Measures wasm CNN training throughput (conv32-conv64-maxpool-dense128-dense10, batch 64,
// Adam) with the stock tfjs-backend-wasm kernels and with tfjs-distill's training kernels.
// Usage: node --import tsx bench/wasm-cnn.ts [stock|filled]
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installWasmTrainingKernels } from '../src/backend/wasm-training.js';
import { benchCnn } from './models.js';

const mode = process.argv[2] ?? 'filled';
tf.enableProdMode();
if (mode === 'filled') installWasmTrainingKernels();
await tf.setBackend('wasm');

const model = benchCnn();
const optimizer = tf.train.adam(1e-3);
const batch = 64;
const x = tf.randomUniform([batch, 28, 28, 1]);
const y = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32') as tf.Tensor1D, 10);
const step = () =>
  tf.tidy(() => {
    const loss = optimizer.minimize(
      () => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar,
      true,
    )!;
    return loss.dataSync()[0];
  });
try {
  step();
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t0 = performance.now();
    step();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  console.log(
    JSON.stringify({
      mode,
      backend: 'wasm',
      model: 'cnn',
      batch,
      medianStepMs: +median.toFixed(1),
      samplesPerSecond: Math.round(batch / (median / 1000)),
    }),
  );
} catch (error) {
  console.log(
    JSON.stringify({ mode, backend: 'wasm', model: 'cnn', batch, error: (error as Error).message.split('\n')[0] }),
  );
}
