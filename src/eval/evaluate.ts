import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.js';
import { UserError } from '../errors.js';
import type { Teacher } from '../teachers/types.js';
import { compression, speedup } from './compare.js';
import { measureLatencies } from './latency.js';
import { classificationMetrics, predictLogits, type PredictFn } from './metrics.js';
import { modelSize } from './size.js';
import type { ByteSizes, LatencyPair, ModelEvaluation } from './types.js';

export interface EvaluatedTeacher {
  name: string;
  /** Logits for a batch (e.g. `teacherPredictFn(teacher)` or `modelPredictFn(model)`). */
  predict: PredictFn;
  /** The teacher's LayersModel, when it has one: gives params and bytes. */
  model?: tf.LayersModel;
  /** Params / bytes when there is no LayersModel (e.g. an ONNX teacher); else null in the report. */
  params?: number;
  bytes?: ByteSizes;
}

export interface EvaluatedStudent {
  name: string;
  model: tf.LayersModel;
  /** Its sizes when known better than `modelSize` (a model loaded from encoded files: those files, `loadExported`). */
  bytes?: ByteSizes;
}

export interface EvaluateModelsOptions {
  teacher: EvaluatedTeacher;
  students: EvaluatedStudent[];
  /** Held-out data: accuracy, agreement, KL and ECE are computed on all of it. */
  test: Dataset;
  /** Batch size for computing logits. Default 256. */
  batchSize?: number;
  /** Latency passes per batch size (1 and 64). Defaults: warmup 5, runs 20. */
  latency?: { warmup?: number; runs?: number };
  /** The teacher's logits on `test` if already computed (`predictLogits`); else computed once here. */
  teacherLogits?: Float32Array;
}

export interface EvaluationResult {
  /** Backend every latency was measured on. */
  backend: string;
  /** Teacher first, then the students in the given order. */
  models: ModelEvaluation[];
  /** The teacher's test logits, `[N × C]`, for reuse. */
  teacherLogits: Float32Array;
}

/** A `PredictFn` over a LayersModel: the whole batch in one pass, intermediates tidied. */
export function modelPredictFn(model: tf.LayersModel): PredictFn {
  return (x) => tf.tidy(() => model.predict(x, { batchSize: x.shape[0] }) as tf.Tensor2D);
}

/** A `PredictFn` over a `Teacher`: returns its logits, disposes anything else it returned. */
export function teacherPredictFn(teacher: Teacher): PredictFn {
  return async (x) => {
    const out = await teacher.predict(x);
    tf.dispose(Object.values(out.taps));
    return out.logits;
  };
}

/**
 * Measures the teacher and each student on `test`, on the current backend: params and
 * real serialized sizes (`modelSize`), accuracy, top-1 agreement with the teacher, mean
 * KL(teacher ‖ model), ECE, latency at batch 1 and 64 (`measureLatencies`, all models interleaved), and compression
 * and speed-up relative to the teacher. The teacher's logits are computed once.
 */
export async function evaluateModels(options: EvaluateModelsOptions): Promise<EvaluationResult> {
  const { teacher, students, test, batchSize = 256, latency = {} } = options;
  const names = [teacher.name, ...students.map((s) => s.name)];
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined)
    throw new UserError(`two models are named \`${dup}\`; give each model of a report its own name`);
  if (test.size === 0) throw new UserError('the test set is empty; evaluate on at least one sample');
  const backend = tf.getBackend();
  const labels = test.labels;
  const numClasses = test.numClasses;
  const teacherLogits =
    options.teacherLogits ?? (await predictLogits({ predict: teacher.predict, data: test, batchSize }));
  if (teacherLogits.length !== test.size * numClasses) {
    throw new UserError(
      `teacher logits have ${teacherLogits.length} values, expected ${test.size} × ${numClasses}; ` +
        'the teacher must output one logit per class of the test set',
    );
  }
  // all latencies in one interleaved measurement (see measureLatencies)
  const studentPredicts = students.map((s) => modelPredictFn(s.model));
  const latencies = (
    await measureLatencies({
      predicts: [teacher.predict, ...studentPredicts],
      inputShape: test.sampleShape,
      batchSizes: [1, 64],
      ...latency,
    })
  ).map(({ stats: [b1, b64] }) => ({
    median: { batch1: b1!.medianMs, batch64: b64!.medianMs },
    p90: { batch1: b1!.p90Ms, batch64: b64!.p90Ms },
  }));

  const tSize = teacher.model !== undefined ? modelSize({ model: teacher.model }) : undefined;
  const tParams = tSize?.params ?? teacher.params ?? null;
  const tBytes = tSize?.bytes ?? teacher.bytes ?? null;
  const tLatency = latencies[0]!;
  const tMetrics = classificationMetrics({ logits: teacherLogits, labels, numClasses });
  const compare = (params: number | null, bytes: ByteSizes | null) =>
    tParams !== null && tBytes !== null && params !== null && bytes !== null
      ? compression({ teacher: { params: tParams, bytes: tBytes }, model: { params, bytes } })
      : null;
  const one: LatencyPair = { batch1: 1, batch64: 1 };
  const models: ModelEvaluation[] = [
    {
      name: teacher.name,
      role: 'teacher',
      params: tParams,
      bytes: tBytes,
      accuracy: tMetrics.accuracy,
      agreement: 1,
      klToTeacher: 0,
      ece: tMetrics.ece,
      latencyMs: tLatency.median,
      latencyP90Ms: tLatency.p90,
      compression: compare(tParams, tBytes),
      speedup: one,
    },
  ];

  for (const [i, s] of students.entries()) {
    const predict = studentPredicts[i]!;
    const logits = await predictLogits({ predict, data: test, batchSize });
    const m = classificationMetrics({ logits, labels, numClasses, teacherLogits });
    const size = modelSize({ model: s.model });
    const bytes = s.bytes ?? size.bytes;
    const lat = latencies[i + 1]!;
    models.push({
      name: s.name,
      role: 'student',
      params: size.params,
      bytes,
      accuracy: m.accuracy,
      agreement: m.agreement!,
      klToTeacher: m.klToTeacher!,
      ece: m.ece,
      latencyMs: lat.median,
      latencyP90Ms: lat.p90,
      compression: compare(size.params, bytes),
      speedup: speedup({ teacher: tLatency.median, model: lat.median }),
    });
  }
  return { backend, models, teacherLogits };
}
