import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fileSystem, registerFileRouters, WEIGHTS_HASH_KEY } from '../src/io/index.js';
import { buildModel } from '../src/models/index.js';
import { assertUserError } from './helpers.js';

tf.enableProdMode();

let root = '';
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'distill-io-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const KINDS = ['cnn', 'dwsep', 'mlp', 'resnet'] as const;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const weightBytes = (m: tf.LayersModel) =>
  m.weights.map((w) => {
    const t = w.read();
    return `${w.originalName}:${Buffer.from((t.dataSync() as Float32Array).buffer).toString('hex')}`;
  });
async function assertNoTempFiles(dir: string) {
  const left = (await readdir(dir)).filter((f) => f.includes('.tmp'));
  assert.deepEqual(left, [], `temp files left in ${dir}`);
}

test('registerFileRouters is idempotent: one save and one load handler per file:// URL', () => {
  registerFileRouters();
  registerFileRouters();
  assert.equal(tf.io.getSaveHandlers('file:///tmp/x').length, 1);
  assert.equal(tf.io.getLoadHandlers('file:///tmp/x/model.json').length, 1);
  assert.equal(tf.io.getSaveHandlers('indexeddb://x').length, 0);
});

test('every zoo model round-trips bitwise, via fileSystem() and via file://', async () => {
  registerFileRouters();
  const x = tf.randomNormal([3, 12, 12, 1], 0, 1, 'float32', 11);
  for (const kind of KINDS) {
    const model = buildModel({ key: kind, kwargs: { width: 0.5 }, inputShape: [12, 12, 1], numClasses: 5, seed: 2 });
    const want = model.predict(x) as tf.Tensor;
    const dirA = join(root, 'zoo', kind, 'a', 'nested'); // nested: folders are created
    const dirB = join(root, 'zoo', kind, 'b');
    await model.save(fileSystem(dirA));
    await model.save(`file://${dirB}`);
    const [a, b] = [
      await tf.loadLayersModel(fileSystem(join(dirA, 'model.json'))),
      await tf.loadLayersModel(`file://${dirB}/model.json`),
    ];
    for (const [dir, loaded] of [
      [dirA, a],
      [dirB, b],
    ] as const) {
      assert.deepEqual((await readdir(dir)).sort(), ['model.json', 'weights.bin'], kind);
      await assertNoTempFiles(dir);
      const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
      assert.equal(json.format, 'layers-model');
      assert.equal(json[WEIGHTS_HASH_KEY]['weights.bin'], sha256(await readFile(join(dir, 'weights.bin'))));
      assert.deepEqual(weightBytes(loaded), weightBytes(model), `${kind} weights differ`);
      assert.deepEqual(
        loaded.layers.map((l) => l.name),
        model.layers.map((l) => l.name),
      );
      const got = loaded.predict(x) as tf.Tensor;
      assert.deepEqual(Array.from(got.dataSync()), Array.from(want.dataSync()), `${kind} predictions differ`);
      got.dispose();
      loaded.dispose();
    }
    want.dispose();
    model.dispose();
  }
  x.dispose();
});

test('a *.json path saves <name>.json + <name>.weights.bin and a folder path loads model.json', async () => {
  const model = buildModel({ key: 'mlp', kwargs: { hidden: [3] }, inputShape: [4], numClasses: 2, seed: 1 });
  const dir = join(root, 'named');
  await model.save(fileSystem(join(dir, 'teacher.json')));
  await model.save(fileSystem(dir));
  assert.deepEqual((await readdir(dir)).sort(), ['model.json', 'teacher.json', 'teacher.weights.bin', 'weights.bin']);
  const a = await tf.loadLayersModel(fileSystem(join(dir, 'teacher.json')));
  const b = await tf.loadLayersModel(fileSystem(dir));
  assert.deepEqual(weightBytes(a), weightBytes(model));
  assert.deepEqual(weightBytes(b), weightBytes(model));
  for (const m of [a, b, model]) m.dispose();
});

/** A hand-written GraphModel: y = BiasAdd(MatMul(x, w), b), weights in two converter-style shards. */
async function writeGraphFixture(dir: string, w: number[], b: number[]) {
  const f32 = { dtype: { type: 'DT_FLOAT' } };
  const dims = (...d: number[]) => ({ dim: d.map((size) => ({ size: String(size) })) });
  const modelJSON = {
    format: 'graph-model',
    generatedBy: '2.15.0',
    convertedBy: 'hand-written test fixture',
    modelTopology: {
      node: [
        { name: 'x', op: 'Placeholder', attr: { ...f32, shape: { shape: dims(-1, 3) } } },
        { name: 'w', op: 'Const', attr: { ...f32, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: dims(3, 2) } } } },
        { name: 'b', op: 'Const', attr: { ...f32, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: dims(2) } } } },
        {
          name: 'MatMul',
          op: 'MatMul',
          input: ['x', 'w'],
          attr: { T: { type: 'DT_FLOAT' }, transpose_a: { b: false }, transpose_b: { b: false } },
        },
        {
          name: 'y',
          op: 'BiasAdd',
          input: ['MatMul', 'b'],
          attr: { T: { type: 'DT_FLOAT' }, data_format: { s: Buffer.from('NHWC').toString('base64') } },
        },
      ],
      library: {},
      versions: { producer: 1482 },
    },
    weightsManifest: [
      {
        paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'],
        weights: [
          { name: 'w', shape: [3, 2], dtype: 'float32' },
          { name: 'b', shape: [2], dtype: 'float32' },
        ],
      },
    ],
  };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.json'), JSON.stringify(modelJSON));
  await writeFile(join(dir, 'group1-shard1of2.bin'), new Float32Array(w));
  await writeFile(join(dir, 'group1-shard2of2.bin'), new Float32Array(b));
}

test('GraphModel artefacts load (sharded, no hash), run, and re-save with a hash', async () => {
  registerFileRouters();
  const w = [0.5, -1, 2, 0.25, -0.75, 1.5];
  const b = [0.1, -0.2];
  const dir = join(root, 'graph');
  await writeGraphFixture(dir, w, b);
  const x = tf.tensor2d([
    [1, 2, 3],
    [-1, 0.5, 4],
  ]);
  const want = tf.add(tf.matMul(x, tf.tensor2d(w, [3, 2])), tf.tensor1d(b));
  for (const g of [
    await tf.loadGraphModel(fileSystem(join(dir, 'model.json'))),
    await tf.loadGraphModel(`file://${dir}/model.json`),
  ]) {
    const y = g.predict(x) as tf.Tensor;
    assert.deepEqual(y.shape, [2, 2]);
    assert.deepEqual(Array.from(y.dataSync()), Array.from(want.dataSync()));
    y.dispose();
    g.dispose();
  }
  // GraphModel.save through the router: standard layout plus the hash, and it loads again.
  const g = await tf.loadGraphModel(`file://${dir}/model.json`);
  const out = join(root, 'graph-resaved');
  await g.save(`file://${out}`);
  await assertNoTempFiles(out);
  const json = JSON.parse(await readFile(join(out, 'model.json'), 'utf8'));
  assert.equal(json.format, 'graph-model');
  assert.equal(json[WEIGHTS_HASH_KEY]['weights.bin'], sha256(await readFile(join(out, 'weights.bin'))));
  const g2 = await tf.loadGraphModel(`file://${out}/model.json`);
  const y2 = g2.predict(x) as tf.Tensor;
  assert.deepEqual(Array.from(y2.dataSync()), Array.from(want.dataSync()));
  tf.dispose([x, want, y2]);
  g.dispose();
  g2.dispose();
});

test('weights.bin that does not match model.json (interrupted save) is a one-line UserError', async () => {
  registerFileRouters();
  const dir = join(root, 'torn');
  const [m1, m2] = [1, 2].map((seed) =>
    buildModel({ key: 'cnn', kwargs: { width: 0.25 }, inputShape: [8, 8, 1], numClasses: 3, seed }),
  );
  await m1!.save(fileSystem(dir));
  // Simulate a crash between the renames: the new weights.bin landed, model.json is the old one.
  const other = join(root, 'torn-other');
  await m2!.save(fileSystem(other));
  await writeFile(join(dir, 'weights.bin'), await readFile(join(other, 'weights.bin')));
  const weightsPath = join(dir, 'weights.bin');
  await assertUserError(tf.loadLayersModel(fileSystem(dir)), [weightsPath, 'sha256', 'save the model again']);
  await assertUserError(tf.loadLayersModel(`file://${dir}/model.json`), [weightsPath, 'sha256']);
  // One flipped byte is caught too.
  const bytes = await readFile(join(other, 'weights.bin'));
  bytes[10] = bytes[10]! ^ 1;
  await writeFile(join(other, 'weights.bin'), bytes);
  await assertUserError(tf.loadLayersModel(fileSystem(other)), ['sha256']);
  m1!.dispose();
  m2!.dispose();
});

test('missing model.json, missing or truncated weights and bad JSON are one-line UserErrors naming the path', async () => {
  registerFileRouters();
  const nowhere = join(root, 'nowhere');
  await assertUserError(tf.loadLayersModel(fileSystem(nowhere)), [join(nowhere, 'model.json'), 'does not exist']);
  await assertUserError(tf.loadLayersModel(`file://${nowhere}/model.json`), [join(nowhere, 'model.json')]);
  await assertUserError(tf.loadGraphModel(`file://${nowhere}/model.json`), [join(nowhere, 'model.json')]);

  const bad = join(root, 'bad');
  await mkdir(bad, { recursive: true });
  await writeFile(join(bad, 'model.json'), '{"modelTopology": ');
  await assertUserError(tf.loadLayersModel(fileSystem(bad)), [join(bad, 'model.json'), 'not valid JSON']);
  await writeFile(join(bad, 'model.json'), '{"hello": 1}');
  await assertUserError(tf.loadLayersModel(fileSystem(bad)), [join(bad, 'model.json'), 'modelTopology']);

  const graph = join(root, 'graph-broken');
  await writeGraphFixture(graph, [1, 2, 3, 4, 5, 6], [1, 2]);
  await writeFile(join(graph, 'group1-shard2of2.bin'), new Float32Array([1]));
  await assertUserError(tf.loadGraphModel(fileSystem(graph)), [join(graph, 'model.json'), 'bytes']);
  await rm(join(graph, 'group1-shard2of2.bin'));
  await assertUserError(tf.loadGraphModel(fileSystem(graph)), [join(graph, 'group1-shard2of2.bin'), 'does not exist']);
});

test('saving where a folder cannot be made is a one-line UserError; no temp files after saves', async () => {
  const file = join(root, 'a-file');
  await writeFile(file, 'x');
  const model = buildModel({ key: 'mlp', kwargs: { hidden: [3] }, inputShape: [4], numClasses: 2 });
  await assertUserError(model.save(fileSystem(join(file, 'sub'))), ['cannot save model']);
  const dir = join(root, 'resave');
  for (let i = 0; i < 3; i++) await model.save(fileSystem(dir)); // overwrite in place
  await assertNoTempFiles(dir);
  assert.deepEqual((await readdir(dir)).sort(), ['model.json', 'weights.bin']);
  // A failing rename (model.json is a folder) removes its temp file too.
  const blocked = join(root, 'blocked');
  await mkdir(join(blocked, 'model.json'), { recursive: true });
  await assertUserError(model.save(fileSystem(blocked)), ['cannot save model', blocked]);
  await assertNoTempFiles(blocked);
  model.dispose();
});

test('a model.json whose weights paths leave its folder (../, absolute, symlink out) is refused before any read', async () => {
  registerFileRouters();
  const model = buildModel({ key: 'mlp', kwargs: { hidden: [4] }, inputShape: [3], numClasses: 2, seed: 1 });
  const dir = join(root, 'hostile', 'model');
  await model.save(fileSystem(dir));
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as {
    weightsManifest: Array<{ paths: string[] }>;
  };
  const secret = join(root, 'hostile', 'secret.bin');
  await writeFile(secret, new Uint8Array(64));
  const { symlink } = await import('node:fs/promises');
  await symlink(secret, join(dir, 'link.bin'));
  for (const path of ['../secret.bin', secret, 'link.bin']) {
    json.weightsManifest[0]!.paths = [path];
    await writeFile(join(dir, 'model.json'), JSON.stringify(json));
    await assertUserError(tf.loadLayersModel(fileSystem(dir)), [
      `lists weights at ${JSON.stringify(path)}, outside its folder; refusing to read it`,
    ]);
  }
});
