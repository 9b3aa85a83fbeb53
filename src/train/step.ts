import * as tf from '@tensorflow/tfjs';
import { installTrainingLayers } from '../backend/training-layers.js';
import { UserError } from '../errors.js';
import type { Teacher, TeacherOutput } from '../teachers/types.js';
import { checkTaps, layerNames } from '../models/taps.js';
import { type QuantGranularity, quantizedWeights, swapInFakeQuantized } from './fake-quant.js';
import type { Learner, TeacherSelector, TeachingSource } from './types.js';

export interface StepResult {
  /** Per learner: loss name → value; `loss` is the learner's total. */
  losses: Array<Record<string, number>>;
  /** Per learner: correctly classified samples of the batch. */
  correct: number[];
}

/** Taps every learner's terms ask for, and the teacher taps any term asks for. */
export function tapsNeeded(learners: Learner[]): { student: string[][]; teacher: string[] } {
  const teacher = new Set<string>();
  const student = learners.map((l) => {
    const names = new Set<string>(l.taps ?? []);
    for (const { term } of l.terms) {
      term.needs.studentTaps?.forEach((n) => names.add(n));
      term.needs.teacherTaps?.forEach((n) => teacher.add(n));
    }
    return [...names];
  });
  return { student, teacher: [...teacher] };
}

/**
 * Gives every term that asks for it the shapes of its taps, before any variable is listed.
 * Teacher taps come from the frozen teacher, or from `selected` when learners teach.
 */
function prepareTerms(learners: Learner[], teacher?: Teacher, selected: Record<string, readonly number[]> = {}): void {
  const teacherShapes: Record<string, readonly number[]> = {
    ...Object.fromEntries((teacher?.tapNames() ?? []).map((t) => [t.name, t.shape as number[]])),
    ...selected,
  };
  for (const l of learners) {
    const studentShapes = Object.fromEntries(layerNames(l.model).map((t) => [t.name, t.shape as number[]]));
    for (const { term } of l.terms) {
      if (!term.prepare) continue;
      for (const name of term.needs.teacherTaps ?? []) {
        if (!(name in teacherShapes)) {
          const known = Object.entries(teacherShapes)
            .map(([n, sh]) => `${n} [${sh.join(',')}]`)
            .join(', ');
          throw new UserError(
            `teacher has no tap \`${name}\` for ${term.key}; taps: ${known || 'none (this teacher gives logits only)'}`,
          );
        }
      }
      term.prepare({ student: studentShapes, teacher: teacherShapes });
    }
  }
}

/**
 * The training-mode forward pass of every learner: logits and taps. Learners whose models are
 * one graph (the same input tensor: a network and its early exits) run as one model with all
 * their outputs, so shared layers run once per step — once the BN statistics move and one
 * dropout mask, as in a PyTorch forward that branches — not once per learner.
 */
function sharedForward(
  learners: Learner[],
  taps: string[][],
): (x: tf.Tensor) => Array<{ logits: tf.Tensor2D; taps: Record<string, tf.Tensor> }> {
  const groups = new Map<tf.SymbolicTensor, number[]>();
  learners.forEach((l, i) => {
    checkTaps(l.model, taps[i]!, `student ${l.name}`);
    const input = l.model.inputs[0]!;
    groups.set(input, [...(groups.get(input) ?? []), i]);
  });
  const runs = [...groups.entries()].map(([input, members]) => {
    const outputs: tf.SymbolicTensor[] = [];
    const slot = (t: tf.SymbolicTensor) => (outputs.includes(t) ? outputs.indexOf(t) : outputs.push(t) - 1);
    const places = members.map((i) => ({
      i,
      logits: slot(learners[i]!.model.outputs[0]!),
      taps: taps[i]!.map(
        (name) => [name, slot(learners[i]!.model.getLayer(name).output as tf.SymbolicTensor)] as const,
      ),
    }));
    const model =
      members.length === 1 && taps[members[0]!]!.length === 0
        ? learners[members[0]!]!.model
        : tf.model({ inputs: input, outputs });
    return { model, places };
  });
  return (x) => {
    const result: Array<{ logits: tf.Tensor2D; taps: Record<string, tf.Tensor> }> = [];
    for (const { model, places } of runs) {
      const out = model.apply(x, { training: true });
      const list = (Array.isArray(out) ? out : [out]) as tf.Tensor[];
      for (const p of places) {
        result[p.i] = {
          logits: list[p.logits] as tf.Tensor2D,
          taps: Object.fromEntries(p.taps.map(([name, k]) => [name, list[k]!])),
        };
      }
    }
    return result;
  };
}

export const offlineTeacher: TeacherSelector = ({ teacher }) => ({ logits: teacher?.logits, taps: teacher?.taps });

/**
 * Builds the one training step every scheme uses: forward every learner, give each term
 * what it needs, sum weight × loss over terms and learners, and update exactly the
 * learners' trainable weights plus the terms' own variables (never a teacher's).
 * With `fakeQuantize` (quantization-aware distillation, `src/train/fake-quant.ts`) the
 * forward pass and its gradients see the learners' weights as the uint8 export stores them,
 * and the gradients update the float weights (straight-through estimator).
 */
export function createStep(
  learners: Learner[],
  optimizer: tf.Optimizer,
  select: TeacherSelector,
  teacher?: Teacher,
  teacherTapShapes?: Record<string, readonly number[]>,
) {
  installTrainingLayers();
  const taps = tapsNeeded(learners);
  const forward = sharedForward(learners, taps.student);
  prepareTerms(learners, teacher, teacherTapShapes);
  // A set: learners may share layers (self-distillation heads over one network).
  const variables = new Set<tf.Variable>();
  for (const l of learners) {
    for (const w of l.model.trainableWeights) variables.add(w.read() as tf.Variable);
    for (const { term } of l.terms) term.trainableVariables().forEach((v) => variables.add(v));
  }
  const numClasses = learners[0]!.model.outputs[0]!.shape[1] as number;
  // The learners' own weights (not the terms' adapters: they are not exported).
  const quantizable = quantizedWeights(learners.map((l) => l.model));

  return (
    x: tf.Tensor,
    labels: tf.Tensor1D,
    teacher?: TeacherOutput,
    indices?: Int32Array,
    fakeQuantize?: QuantGranularity,
  ): StepResult =>
    tf.tidy(() => {
      const recorded: tf.Scalar[][] = learners.map(() => []);
      const names: string[][] = learners.map(() => []);
      const correct: tf.Scalar[] = [];
      const restore = fakeQuantize !== undefined ? swapInFakeQuantized(quantizable, fakeQuantize) : undefined;
      let computed: { value: tf.Scalar; grads: tf.NamedTensorMap };
      try {
        computed = tf.variableGrads(() => {
          const outputs = forward(x);
          const logits = outputs.map((o) => o.logits);
          let total = tf.scalar(0);
          const allTaps = outputs.map((o) => o.taps);
          learners.forEach((learner, i) => {
            const teaching = select({ learner: i, logits, teacher, taps: allTaps });
            const single: TeachingSource = { logits: teaching.logits, taps: teaching.taps, weight: 1 };
            let learnerTotal = tf.scalar(0);
            for (const { term, weight } of learner.terms) {
              // A term that needs a teacher is computed once per teacher (several: weighted sum per loss name).
              const sources = term.needs.teacher && teaching.teachers ? teaching.teachers : [single];
              if (term.needs.teacher && (sources.length === 0 || sources.some((t) => !t.logits))) {
                throw new UserError(
                  `knowledge term \`${term.key}\` needs a teacher; give the run a teacher or use the ce term alone`,
                );
              }
              const summed: Record<string, tf.Scalar> = {};
              for (const source of sources) {
                const losses = term.compute({
                  studentLogits: logits[i]!,
                  teacherLogits: source.logits,
                  labels,
                  numClasses,
                  indices,
                  studentTaps: outputs[i]!.taps,
                  teacherTaps: source.taps,
                });
                for (const [name, loss] of Object.entries(losses)) {
                  const part = source.weight === 1 ? loss : (loss.mul(source.weight) as tf.Scalar);
                  summed[name] = summed[name] ? summed[name]!.add(part) : part;
                }
              }
              for (const [name, loss] of Object.entries(summed)) {
                const weighted = weight === 1 ? loss : (loss.mul(weight) as tf.Scalar);
                learnerTotal = learnerTotal.add(weighted);
                names[i]!.push(name);
                recorded[i]!.push(tf.keep(weighted));
              }
            }
            names[i]!.push('loss');
            recorded[i]!.push(tf.keep(learnerTotal));
            correct.push(tf.keep(logits[i]!.argMax(1).equal(labels).cast('float32').sum()));
            total = total.add(learnerTotal);
          });
          return total;
        }, [...variables]);
      } finally {
        // the float weights are back before the update: the gradient at q(w) moves w
        restore?.();
      }
      const { value, grads } = computed;
      optimizer.applyGradients(grads);
      value.dispose();
      const flat = tf.stack([...recorded.flat(), ...correct]).dataSync();
      tf.dispose([...recorded.flat(), ...correct]);
      let k = 0;
      const losses = names.map((list) => {
        const record: Record<string, number> = {};
        for (const name of list) record[name] = (record[name] ?? 0) + flat[k++]!;
        return record;
      });
      return { losses, correct: learners.map(() => flat[k++]!) };
    });
}
