import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { fileSystem } from '../src/io/index.js';
import { saveEncodedModel, type WeightEncoding } from '../src/io/quantize.js';
import { buildModel } from '../src/models/index.js';
import { CHROMIUM, launchChromium } from './helpers.js';

/**
 * An exported student loads in a real browser (Debian's chromium, driven by playwright-core)
 * with plain `@tensorflow/tfjs` from a local page, and predicts what Node predicts from the
 * same files: float32, float16 and uint8 weights. Everything is served from 127.0.0.1.
 */
const require = createRequire(import.meta.url);
const TF_JS = join(dirname(require.resolve('@tensorflow/tfjs/package.json')), 'dist', 'tf.min.js');
const ENCODINGS: WeightEncoding[] = ['float32', 'float16', 'uint8'];

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>tfjs-distill browser check</title>
<script src="/tf.min.js"></script>
<script>
  // The cpu backend runs the same kernels as Node's cpu backend: logits comparable to 1e-4.
  window.ready = tf.setBackend('cpu').then(() => tf.ready()).then(() => tf.getBackend());
  window.predict = async (url, values, shape) => {
    const model = await tf.loadLayersModel(url);
    const y = tf.tidy(() => model.predict(tf.tensor(values, shape)));
    const out = Array.from(await y.data());
    y.dispose();
    model.dispose();
    return out;
  };
</script></head><body>tfjs-distill</body></html>`;

function serve(root: string): Promise<{ server: Server; base: string }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const send = (type: string, body: string | Buffer) => res.writeHead(200, { 'content-type': type }).end(body);
    if (url.pathname === '/') return send('text/html', PAGE);
    if (url.pathname === '/tf.min.js') return send('text/javascript', readFileSync(TF_JS));
    const m = /^\/models\/(float32|float16|uint8)\/(model\.json|weights\.bin)$/.exec(url.pathname);
    if (m)
      return send(
        m[2] === 'model.json' ? 'application/json' : 'application/octet-stream',
        readFileSync(join(root, m[1]!, m[2]!)),
      );
    res.writeHead(404).end();
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({ server, base: `http://127.0.0.1:${port}` });
    }),
  );
}

const argmax = (row: number[]) => row.indexOf(Math.max(...row));

test('an exported student predicts in chromium exactly as in Node (float32, float16, uint8)', {
  skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} not found (apt-get install chromium)`,
}, async () => {
  tf.enableProdMode();
  await tf.setBackend('cpu');
  const dir = mkdtempSync(join(tmpdir(), 'distill-browser-'));
  const student = buildModel({
    key: 'cnn',
    kwargs: { width: 0.25, blocks: [32, 64], convsPerBlock: 1, dense: 256 },
    inputShape: [28, 28, 1],
    numClasses: 10,
    seed: 11,
  });
  for (const encoding of ENCODINGS) await saveEncodedModel({ model: student, encoding, path: join(dir, encoding) });
  student.dispose();
  const size = (e: WeightEncoding) => statSync(join(dir, e, 'weights.bin')).size;
  assert.ok(
    size('float16') * 2 === size('float32') && size('uint8') * 4 === size('float32'),
    'float16 halves and uint8 quarters the weights',
  );

  const images = loadFashionMnist({ trainSubset: 1, testSubset: 6 }).test;
  const values = Array.from(images.features);
  const shape = [images.size, 28, 28, 1];
  const node: Record<string, number[]> = {};
  for (const encoding of ENCODINGS) {
    const model = await tf.loadLayersModel(fileSystem(join(dir, encoding)));
    node[encoding] = Array.from(tf.tidy(() => model.predict(tf.tensor(values, shape)) as tf.Tensor).dataSync());
    model.dispose();
  }

  const { server, base } = await serve(dir);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const offsite: string[] = [];
    await page.route('**/*', (route) => {
      if (route.request().url().startsWith(base)) return route.continue();
      offsite.push(route.request().url());
      return route.abort();
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(base);
    assert.equal(await page.evaluate(() => (window as unknown as { ready: Promise<string> }).ready), 'cpu');
    for (const encoding of ENCODINGS) {
      const logits = await page.evaluate(
        ([url, v, s]) =>
          (
            window as unknown as {
              predict: (u: string, v: number[], s: number[]) => Promise<number[]>;
            }
          ).predict(url, v, s),
        [`${base}/models/${encoding}/model.json`, values, shape] as [string, number[], number[]],
      );
      const want = node[encoding]!;
      assert.equal(logits.length, want.length);
      for (let i = 0; i < images.size; i++) {
        const row = (a: number[]) => a.slice(i * 10, (i + 1) * 10);
        assert.equal(argmax(row(logits)), argmax(row(want)), `${encoding}: image ${i} class`);
      }
      const worst = Math.max(...logits.map((v, i) => Math.abs(v - want[i]!)));
      assert.ok(worst <= 1e-4, `${encoding}: logits differ by ${worst}`);
    }
    assert.deepEqual(errors, []);
    assert.deepEqual(offsite, [], 'the page asked for nothing beyond 127.0.0.1');
  } finally {
    await browser.close();
    server.close();
  }
});
