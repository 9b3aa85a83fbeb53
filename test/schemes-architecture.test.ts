/** Teacher assistants (TAKD) and the residual assistant: chain order, sizes, the pair's arithmetic. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { geometricMean, paramsOf, widthForParams } from '../src/architecture/size-search.js';
import { createTerm } from '../src/knowledge/index.js';
import { countParams } from '../src/models/common.js';
import { buildModel } from '../src/models/zoo.js';
import { assistantNodes, assistantScheme } from '../src/schemes/assistant.js';
import { residualPair, residualScheme, residualTeacher } from '../src/schemes/residual.js';
import type { SchemeContext } from '../src/schemes/types.js';
import { layersTeacher } from '../src/teachers/layers.js';
import { createFit, type Fit, type FitPhase } from '../src/train/fit.js';
import { assertUserError } from './helpers.js';
import { data, mlp, settings } from './schemes-helpers.js';

await tf.setBackend('cpu');
const context = { inputShape: [6], numClasses: 4 };

test("auto assistant: the student's family sized to √(P_teacher · P_student) parameters", () => {
  const student = { key: 'mlp', kwargs: { hidden: [8] } };
  // mlp [6] → 8 → 4: 6·8+8 + 8·4+4 = 92 params; a teacher of 9,200 params: target √(92·9200) = 920
  assert.equal(paramsOf(student, context), 6 * 8 + 8 + 8 * 4 + 4);
  const target = geometricMean(92, 9200);
  assert.equal(target, 920);
  const [ta] = assistantNodes({ assistants: 'auto', direct: true }, student, 9200, context);
  // width w: units u = round(8w); params = 6u + u + 4u + 4 = 11u + 4 → u = 83 gives 917, the closest to 920
  assert.equal(paramsOf(ta!, context), 11 * 83 + 4);
  assert.equal(widthForParams(student, target, context).params, 917);
  // listed assistants are used as given; auto without the teacher's size is refused with the fix
  const listed = [{ key: 'mlp', kwargs: { hidden: [32] } }];
  assert.deepEqual(assistantNodes({ assistants: listed, direct: true }, student, undefined, context), listed);
  assertUserError(
    () => assistantNodes({ assistants: 'auto', direct: true }, student, undefined, context),
    /list the assistants as zoo nodes/,
  );
});

/** A scheme context over the blobs, with a fit that records each phase (and really trains it). */
function contextFor(
  kwargs: Record<string, unknown>,
  phases: FitPhase[],
  after?: (phase: FitPhase, restored: boolean) => void,
  checkpointDir = mkdtempSync(join(tmpdir(), 'distill-arch-')),
): SchemeContext {
  const teacherModel = mlp(9, [32]);
  const fit = createFit(settings(checkpointDir, undefined, { epochs: 1 }));
  const recording: Fit = async (phase) => {
    phases.push(phase);
    const r = await fit(phase);
    after?.(phase, r.restored ?? false);
    return r;
  };
  return {
    seed: 1,
    data,
    teacher: layersTeacher({ model: teacherModel }),
    teacherParams: countParams(teacherModel),
    students: [{ name: 'tiny', model: { key: 'mlp', kwargs: { hidden: [4] } }, build: () => mlp(2, [4]) }],
    createTerms: () => [{ term: createTerm('kd', { temperature: 2, alpha: 0.5 }), weight: 1 }],
    method: { short: 'kd', long: 'kd(temperature=2, alpha=0.5)' },
    baseline: true,
    epochs: 1,
    kwargs,
    fit: recording,
    log: () => {},
  };
}

test('TAKD: teacher → assistant 1 → assistant 2 → student, each taught by the previous model; then direct and labels', async () => {
  const phases: FitPhase[] = [];
  const ctx = contextFor(
    {
      assistants: [
        { key: 'mlp', kwargs: { hidden: [16] } },
        { key: 'mlp', kwargs: { hidden: [8] } },
      ],
      direct: true,
    },
    phases,
  );
  const result = await assistantScheme.run(ctx);
  assert.deepEqual(
    phases.map((p) => p.id),
    ['assistant-1', 'assistant-2', 'tiny', 'tiny.direct', 'tiny.labels'],
  );
  // each step's teacher answers what the previous model predicts (inference mode)
  const x = data.test.toTensors().x;
  const predicted = (m: tf.LayersModel) => (m.predict(x) as tf.Tensor).arraySync();
  const answer = async (p: FitPhase) => (await p.teacher!.predict(x)).logits.arraySync();
  assert.deepEqual(await answer(phases[1]!), predicted(result.models[0]!.model));
  assert.deepEqual(await answer(phases[2]!), predicted(result.models[1]!.model));
  assert.equal(phases[3]!.teacher, ctx.teacher);
  assert.equal(phases[4]!.teacher, undefined);
  assert.deepEqual(
    result.models.map((m) => [m.name, countParams(m.model)]),
    [
      ['assistant 1', 6 * 16 + 16 + 16 * 4 + 4],
      ['assistant 2', 6 * 8 + 8 + 8 * 4 + 4],
      ['tiny (kd via 2 assistants)', 6 * 4 + 4 + 4 * 4 + 4],
      ['tiny (kd, direct)', 48],
      ['tiny (labels)', 48],
    ],
  );
  assert.equal(result.tables?.[0]?.rows.length, 5);
  for (const m of result.models) m.model.dispose();
});

test('TAKD resumes: a second run over the same checkpoints retrains nothing and gives the same student', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'distill-arch-resume-'));
  const kwargs = { assistants: [{ key: 'mlp', kwargs: { hidden: [16] } }], direct: false };
  const restored: boolean[] = [];
  const first = await assistantScheme.run({ ...contextFor(kwargs, [], undefined, dir), baseline: false });
  const again = await assistantScheme.run({
    ...contextFor(kwargs, [], (_p, r) => restored.push(r), dir),
    baseline: false,
  });
  assert.deepEqual(restored, [true, true]); // the assistant and the student come from their checkpoints
  const weights = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));
  assert.deepEqual(weights(again.models[1]!.model), weights(first.models[1]!.model));
  for (const m of [...first.models, ...again.models]) m.model.dispose();
});

test("residual pair: its logits are the student's plus the assistant's; the assistant learns z_T − z_S", async () => {
  const named = (name: string, hidden: number[], seed: number) =>
    buildModel({ key: 'mlp', kwargs: { hidden }, inputShape: [6], numClasses: 4, seed, name });
  const student = named('student', [4], 3);
  const assistant = named('assistant', [2], 4);
  const teacher = named('teacher', [16], 5);
  assertUserError(() => residualPair(student, named('student', [2], 6), 'pair'), /distinct names/);
  const pair = residualPair(student, assistant, 'pair');
  const x = data.test.toTensors().x;
  const sum = tf.add(student.predict(x) as tf.Tensor, assistant.predict(x) as tf.Tensor);
  const got = pair.predict(x) as tf.Tensor;
  assert.ok(tf.max(tf.abs(got.sub(sum))).dataSync()[0]! < 1e-6);
  assert.equal(countParams(pair), countParams(student) + countParams(assistant));
  const residual = await residualTeacher(layersTeacher({ model: teacher }), student).predict(x);
  const want = tf.sub(teacher.predict(x) as tf.Tensor, student.predict(x) as tf.Tensor);
  assert.ok(tf.max(tf.abs(residual.logits.sub(want))).dataSync()[0]! < 1e-6);
  // training the assistant leaves the student's weights as they were
  const phases: FitPhase[] = [];
  let afterPhase1: number[][] = [];
  const snapshot = (p: FitPhase) => {
    if (p.id === 'tiny') afterPhase1 = p.learners[0]!.model.getWeights().map((w) => Array.from(w.dataSync()));
  };
  const ctx = contextFor({ assistant: { key: 'mlp', kwargs: { hidden: [2] } } }, phases, snapshot);
  const result = await residualScheme.run(ctx);
  assert.deepEqual(
    phases.map((p) => p.id),
    ['tiny', 'tiny.assistant', 'tiny.labels'],
  );
  const [s, p] = result.models;
  assert.equal(p!.name, 'tiny + assistant');
  assert.equal(phases[1]!.learners[0]!.model.trainableWeights.length, 4); // the assistant's 2 dense layers only
  assert.deepEqual(
    s!.model.getWeights().map((w) => Array.from(w.dataSync())),
    afterPhase1,
  );
  assert.equal(countParams(p!.model), countParams(s!.model) + 6 * 2 + 2 + 2 * 4 + 4);
});
