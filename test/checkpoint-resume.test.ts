import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { useBestBackend } from '../src/backend/index.js';
import { registerNativeBackend } from '../src/backend/native.js';
import { createFit, Interrupted } from '../src/train/fit.js';
import { createTerm, type KnowledgeTerm } from '../src/knowledge/index.js';
import { buildModel } from '../src/models/index.js';
import { layersTeacher } from '../src/teachers/layers.js';
import { captureCheckpoint, readCheckpoint, restoreOptimizer } from '../src/train/checkpoint.js';
import type { Learner } from '../src/train/types.js';
import { assertUserError, blobs, nativeTest } from './helpers.js';

/** A term that owns a variable (like a feature adapter): CE of the logits times a learned scale. */
function scaledCe(): KnowledgeTerm {
  let v: tf.Variable | undefined;
  return {
    key: 'scaled-ce',
    needs: { teacher: false },
    prepare: () => {
      v = tf.variable(tf.scalar(1), true);
    },
    compute: ({ studentLogits, labels, numClasses }) => ({
      'scaled-ce': tf.losses.softmaxCrossEntropy(tf.oneHot(labels, numClasses), studentLogits.mul(v!)) as tf.Scalar,
    }),
    trainableVariables: () => (v ? [v] : []),
    dispose: () => v?.dispose(),
  };
}

await useBestBackend({ backend: 'cpu' });
const data = { name: 'blobs', train: blobs(96, 1, 1), validation: blobs(32, 2, 1), test: blobs(32, 3, 1) };
const teacherModel = buildModel({ key: 'mlp', kwargs: { hidden: [12] }, inputShape: [6], numClasses: 4, seed: 5 });

function learners(): Learner[] {
  const student = buildModel({
    key: 'mlp',
    kwargs: { hidden: [16], dropout: 0.3 },
    inputShape: [6],
    numClasses: 4,
    seed: 9,
  });
  return [
    {
      name: 'student',
      model: student,
      terms: [
        { term: createTerm('kd', { temperature: 3, alpha: 0.7 }), weight: 1 },
        { term: scaledCe(), weight: 0.5 },
        // state that changes without gradients: CRD's memory banks and normalisers
        { term: createTerm('crd', { mode: 'memory', datasetSize: 96, negatives: 16, featDim: 4 }), weight: 0.1 },
      ],
    },
  ];
}

const values = (l: Learner[]) => [
  ...l[0]!.model.getWeights().map((w) => Array.from(w.dataSync())),
  ...l[0]!.terms.flatMap(({ term }) =>
    [
      ...term.trainableVariables(),
      ...((term as { stateVariables?: () => tf.Variable[] }).stateVariables?.() ?? []),
    ].map((v) => Array.from(v.dataSync())),
  ),
];

const nativeUnavailable = await useBestBackend({ backend: 'native' }).then(
  () => false as const,
  (e: Error) => {
    const registered = registerNativeBackend();
    return registered.ok ? e.message : registered.reason;
  },
);
await useBestBackend({ backend: 'cpu' });

for (const backend of ['cpu', 'wasm', 'native'] as const) {
  (backend === 'native' ? nativeTest(nativeUnavailable) : test)(
    `a phase interrupted mid-epoch and resumed ends with exactly the uninterrupted weights (${backend})`,
    async () => {
      await useBestBackend({ backend });
      const dir = mkdtempSync(join(tmpdir(), 'distill-ckpt-'));
      const settings = (name: string, signal?: AbortSignal) => ({
        seed: 4,
        data,
        epochs: 3,
        batchSize: 8,
        schedule: 'cosine' as const,
        optimizer: { key: 'adam', kwargs: { learningRate: 0.01 } },
        checkpointDir: join(dir, name),
        progress: 'quiet' as const,
        signal,
      });
      const teacher = layersTeacher({ model: teacherModel });

      const whole = learners();
      const a = await createFit(settings('a'))({ id: 'student', label: 'student', learners: whole, teacher });
      assert.equal(a.history['student']!.length, 3);

      const controller = new AbortController();
      const first = learners();
      let batches = 0;
      await assert.rejects(
        createFit(settings('b', controller.signal))({
          id: 'student',
          label: 'student',
          learners: first,
          teacher,
          callbacks: {
            onBatchEnd: () => {
              if (++batches === 15) controller.abort();
            },
          }, // 12 batches per epoch; seen at the next batch end
        }),
        (e: unknown) => e instanceof Interrupted && /in epoch 2\/3 after batch 4/.test(e.message),
      );
      const saved = await readCheckpoint(join(dir, 'b', 'student.ckpt'));
      assert.equal(saved?.epoch, 1, 'the last complete checkpoint is the end of epoch 1');

      const tensorsBefore = tf.memory().numTensors;
      const resumed = learners();
      const b = await createFit(settings('b'))({ id: 'student', label: 'student', learners: resumed, teacher });
      assert.equal(b.restored, false);
      assert.deepEqual(values(resumed), values(whole), 'weights and term variables equal bit for bit');
      assert.deepEqual(
        b.history['student']!.map((e) => e.losses),
        a.history['student']!.map((e) => e.losses),
      );
      assert.ok(
        tf.memory().numTensors - tensorsBefore <= values(resumed).length + 8,
        'no tensors leak beyond the new models',
      );

      // A finished phase is restored, not retrained.
      const again = learners();
      const c = await createFit(settings('b'))({ id: 'student', label: 'student', learners: again, teacher });
      assert.equal(c.restored, true);
      const weights = (l: Learner[]) => l[0]!.model.getWeights().map((w) => Array.from(w.dataSync()));
      assert.deepEqual(weights(again), weights(whole));
      for (const l of [...whole, ...first, ...resumed, ...again]) {
        l.model.dispose();
        l.terms.forEach(({ term }) => term.dispose());
      }
      assert.deepEqual(readdirSync(join(dir, 'b')), ['student.ckpt'], 'no temp files left');
    },
  );
}

test('a damaged or mismatched checkpoint is a one-line UserError', async () => {
  await useBestBackend({ backend: 'cpu' });
  const dir = mkdtempSync(join(tmpdir(), 'distill-ckpt-'));
  const s = {
    seed: 1,
    data,
    epochs: 1,
    batchSize: 32,
    schedule: 'constant' as const,
    optimizer: { key: 'sgd' },
    checkpointDir: dir,
    progress: 'quiet' as const,
  };
  const l = learners();
  await createFit(s)({ id: 'p', label: 'p', learners: l, teacher: layersTeacher({ model: teacherModel }) });
  await assertUserError(
    createFit({ ...s, epochs: 2 })({ id: 'p', label: 'p', learners: learners() }),
    /is for 1 epochs but this run has 2/,
  );
  const other = [
    { ...l[0]!, model: buildModel({ key: 'mlp', kwargs: { hidden: [8] }, inputShape: [6], numClasses: 4, seed: 1 }) },
  ];
  await assert.rejects(
    createFit(s)({ id: 'p', label: 'p', learners: other }),
    /does not fit this run: weight .* is \[6,16\] there, \[6,8\] here/,
  );
  writeFileSync(join(dir, 'p.ckpt'), 'DSTLCKP1garbage');
  await assertUserError(readCheckpoint(join(dir, 'p.ckpt')), /is damaged/);
});

test("Adam's running β powers are restored exactly (its setWeights would recompute them with pow)", async () => {
  await useBestBackend({ backend: 'cpu' });
  const v = tf.variable(tf.tensor1d([1, -2, 3]));
  const original = tf.train.adam(0.01);
  for (let i = 0; i < 50; i++) original.minimize(() => v.square().sum() as tf.Scalar, false, [v]);
  const learner = {
    name: 'x',
    model: buildModel({ key: 'mlp', kwargs: { hidden: [] }, inputShape: [2], numClasses: 2, seed: 1 }),
    terms: [],
  };
  const ckpt = await captureCheckpoint({
    learners: [learner],
    optimizer: original,
    rngState: [1, 2, 3, 4],
    epoch: 1,
    epochs: 2,
    history: {},
    seconds: 0,
  });
  const restored = tf.train.adam(0.01);
  await restoreOptimizer(ckpt, restored);
  const acc = (o: tf.Optimizer) =>
    ['accBeta1', 'accBeta2'].map((k) => (o as unknown as Record<string, tf.Tensor>)[k]!.dataSync()[0]);
  assert.deepEqual(acc(restored), acc(original));
  assert.equal(restored.iterations, 50);
});

test('early stopping: a stalled phase stops, stays stopped, and a resumed one counts on from its history', async () => {
  await useBestBackend({ backend: 'cpu' });
  const dir = mkdtempSync(join(tmpdir(), 'distill-stop-'));
  const teacher = layersTeacher({ model: teacherModel });
  // learning rate 0: the validation accuracy never improves after the first epoch
  const settings = (name: string, patience: number, signal?: AbortSignal) => ({
    seed: 4,
    data,
    epochs: 5,
    batchSize: 8,
    schedule: 'constant' as const,
    optimizer: { key: 'adam', kwargs: { learningRate: 1e-12 } }, // stalls: the accuracy cannot move
    checkpointDir: join(dir, name),
    progress: 'quiet' as const,
    signal,
    earlyStopping: { patience, minDelta: 0 },
  });
  const phase = (l: Learner[], callbacks?: object) => ({
    id: 'student',
    label: 'student',
    learners: l,
    teacher,
    callbacks,
  });

  const a = await createFit(settings('a', 1))(phase(learners()));
  assert.equal(a.history['student']!.length, 2, 'epoch 1 sets the best, epoch 2 does not beat it');
  const again = await createFit(settings('a', 1))(phase(learners()));
  assert.equal(again.restored, true, 'a stopped phase is finished');

  const whole = await createFit(settings('b', 2))(phase(learners()));
  assert.equal(whole.history['student']!.length, 3);
  const controller = new AbortController();
  await assert.rejects(
    createFit(settings('c', 2, controller.signal))(
      phase(learners(), {
        onEpochEnd: () => controller.abort(),
      }),
    ),
    Interrupted,
  );
  assert.equal((await readCheckpoint(join(dir, 'c', 'student.ckpt')))?.epoch, 1);
  const resumed = await createFit(settings('c', 2))(phase(learners()));
  assert.equal(resumed.history['student']!.length, 3, 'the resumed run stops where the uninterrupted one did');
});
