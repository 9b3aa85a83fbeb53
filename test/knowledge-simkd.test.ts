/**
 * simkd's student: rebuilt as backbone → projector → the teacher's classifier (copied, frozen).
 * Its logits are the teacher's classifier on the projected features; training moves the
 * backbone and the projector, never the copied classifier or the teacher; the parameter count
 * includes both; and the errors of a wrong setting are one line each.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { simkdTerm } from '../src/knowledge/index.js';
import { countParams } from '../src/models/common.js';
import { buildModel } from '../src/models/zoo.js';
import { layersTeacher } from '../src/teachers/layers.js';
import { assertUserError, closeAll } from './helpers.js';

await tf.setBackend('cpu');

const cnn = (width: number, seed: number, dropout = 0) =>
  buildModel({
    key: 'cnn',
    kwargs: { width, blocks: [8, 16], dense: 32, dropout },
    inputShape: [12, 12, 1],
    numClasses: 4,
    seed,
  });

test('the rebuilt student: teacher classifier on projected features, frozen, counted', () => {
  const teacherModel = cnn(1, 1, 0.25);
  const teacher = layersTeacher({ model: teacherModel });
  const student = cnn(0.5, 2);
  const before = countParams(student);
  const term = simkdTerm({ factor: 2 });
  const reshaped = term.reshapeStudent!(student, (tap) => teacher.layersAfter!(tap));
  const x = tf.randomUniform([3, 12, 12, 1], 0, 1, 'float32', 7);
  // logits = the teacher's dropout + dense, applied to the projector's output
  const projected = tf.model({ inputs: reshaped.inputs, outputs: reshaped.getLayer('simkd_projected').output });
  const p = projected.predict(x) as tf.Tensor;
  const want = teacherModel.getLayer('logits').apply(p) as tf.Tensor;
  closeAll(Array.from((reshaped.predict(x) as tf.Tensor).dataSync()), Array.from(want.dataSync()), 1e-6, 'logits');
  assert.deepEqual(p.shape, [3, 32], 'projected onto the teacher features');
  // frozen copy: the classifier's weights are in the model but not trainable
  const trainable = new Set(reshaped.trainableWeights.map((w) => w.name));
  assert.ok(reshaped.getLayer('logits').weights.every((w) => !trainable.has(w.name)));
  // params: the student without its own logits (16·4+4 = 68), + projector, + the teacher's logits (32·4+4)
  const projector = [16 * 16, 4 * 16, 16 * 16, 4 * 16, 16 * 32, 4 * 32].reduce((a, b) => a + b, 0);
  assert.equal(countParams(reshaped), before - 68 + projector + 132);

  // a few steps of the simkd loss move the projector and backbone, not the classifier or the teacher
  const frozen = reshaped
    .getLayer('logits')
    .getWeights()
    .map((w) => w.dataSync().slice());
  const teacherLogits = teacherModel
    .getLayer('logits')
    .getWeights()
    .map((w) => w.dataSync().slice());
  const proj1 = reshaped.getLayer('simkd_proj1').getWeights()[0]!.dataSync().slice();
  const tapped = tf.model({
    inputs: reshaped.inputs,
    outputs: [reshaped.outputs[0]!, reshaped.getLayer('simkd_projected').output as tf.SymbolicTensor],
  });
  const opt = tf.train.adam(0.01);
  const vars = reshaped.trainableWeights.map((w) => w.read() as tf.Variable);
  for (let i = 0; i < 3; i++)
    tf.tidy(() => {
      const t = teacherModel.getLayer('features').output as tf.SymbolicTensor;
      const tFeatures = tf.model({ inputs: teacherModel.inputs, outputs: t }).predict(x) as tf.Tensor;
      opt.minimize(
        () => {
          const [logits, s] = tapped.apply(x, { training: true }) as tf.Tensor[];
          return term.compute({
            studentLogits: logits as tf.Tensor2D,
            labels: tf.zeros([3], 'int32') as tf.Tensor1D,
            numClasses: 4,
            studentTaps: { simkd_projected: s! },
            teacherTaps: { features: tFeatures },
          }).simkd!;
        },
        false,
        vars,
      );
    });
  const same = (a: Float32Array | Int32Array | Uint8Array, b: Float32Array | Int32Array | Uint8Array) =>
    a.every((v, i) => v === b[i]);
  reshaped
    .getLayer('logits')
    .getWeights()
    .forEach((w, i) => assert.ok(same(w.dataSync(), frozen[i]!)));
  teacherModel
    .getLayer('logits')
    .getWeights()
    .forEach((w, i) => assert.ok(same(w.dataSync(), teacherLogits[i]!)));
  assert.ok(!same(reshaped.getLayer('simkd_proj1').getWeights()[0]!.dataSync(), proj1), 'the projector trains');
  tf.dispose([x, p, want]);
  reshaped.dispose();
  teacher.dispose();
});

test('settings simkd cannot use are one line each', () => {
  const student = cnn(0.5, 2);
  assertUserError(
    () => simkdTerm().reshapeStudent!(student, undefined),
    "knowledge term `simkd`: it reuses the teacher's classifier: give a TF.js LayersModel teacher (not ONNX, a graph model or a logits cache)",
  );
  const teacher = layersTeacher({ model: cnn(1, 1) });
  assertUserError(
    () => simkdTerm({ student: 'block2_conv1_relu' }).reshapeStudent!(student, (tap) => teacher.layersAfter!(tap)),
    "knowledge term `simkd`: the student's `block2_conv1_relu` [6,6,8] and the teacher's `features` [32] need the same rank and, for maps, the same height and width",
  );
  const input = tf.input({ shape: [4] });
  const a = tf.layers.dense({ units: 4, name: 'a' }).apply(input) as tf.SymbolicTensor;
  const b = tf.layers.dense({ units: 4, name: 'b' }).apply(a) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: 'skip' }).apply([a, b]) as tf.SymbolicTensor;
  const branched = layersTeacher({
    model: tf.model({ inputs: input, outputs: tf.layers.dense({ units: 2 }).apply(sum) as tf.SymbolicTensor }),
  });
  assertUserError(
    () => branched.layersAfter!('a'),
    'teacher: the layers after `a` are not a single chain to the output (at `skip`); name a layer whose output feeds the classifier alone',
  );
  branched.dispose();
  assertUserError(
    () => simkdTerm().prepare!({ student: { features: [16] }, teacher: { features: [32] } }),
    'knowledge term `simkd`: the student has no projector and teacher classifier yet; simkd runs in the offline scheme',
  );
  student.dispose();
  teacher.dispose();
});
