import { useBestBackend } from '../../backend/index.js';
import { UserError } from '../../errors.js';
import { modelPredictFn, teacherPredictFn } from '../../eval/evaluate.js';
import { measureLatency } from '../../eval/latency.js';
import { classificationMetrics, predictLogits } from '../../eval/metrics.js';
import { modelSize } from '../../eval/size.js';
import { loadLayersModelFile, registerFileRouters } from '../../io/file-handler.js';
import { formatBytes, formatInt, formatMs, formatPercent } from '../../report/table.js';
import { loadTeacher } from '../../teachers/load.js';
import { selectData, type DataOptions } from '../data-options.js';

export interface EvalCommandOptions extends DataOptions {
  teacher?: string;
  batchSize?: number;
  latencyRuns?: number;
  backend?: string;
  json?: boolean;
}

export interface EvalResult {
  model: string;
  backend: string;
  split: string;
  samples: number;
  accuracy: number;
  ece: number;
  params: number;
  bytes: { float32: number; float16: number; uint8: number };
  latencyMs: { batch1: number; batch64: number };
  teacher?: { path: string; accuracy: number; agreement: number; klToTeacher: number };
}

/** `distill eval`: a saved model on a dataset — accuracy, ECE, size, latency; with a teacher, agreement and KL. */
export async function evalCommand(path: string, o: EvalCommandOptions): Promise<EvalResult> {
  const split = o.split ?? (o.csv !== undefined ? 'train' : 'test');
  const data = selectData({ ...o, split });
  const backend = await useBestBackend({ backend: o.backend });
  registerFileRouters();
  const model = await loadLayersModelFile(path);
  try {
    const shape = (model.inputs[0]!.shape.slice(1) as number[]).join(',');
    if (shape !== data.sampleShape.join(',')) {
      throw new UserError(
        `model ${path} takes inputs of shape [${shape}] but the data's samples are [${data.sampleShape.join(',')}]`,
      );
    }
    const classes = model.outputs[0]!.shape[1];
    if (classes !== data.numClasses)
      throw new UserError(`model ${path} has ${classes} outputs but the data has ${data.numClasses} classes`);
    const batchSize = o.batchSize ?? 256;
    const predict = modelPredictFn(model);
    const logits = await predictLogits({ predict, data, batchSize });
    let teacherLogits: Float32Array | undefined;
    if (o.teacher !== undefined) {
      const teacher = await loadTeacher({ path: o.teacher, data });
      try {
        teacherLogits = await predictLogits({ predict: teacherPredictFn(teacher), data, batchSize });
      } finally {
        teacher.dispose();
      }
    }
    const m = classificationMetrics({ logits, labels: data.labels, numClasses: data.numClasses, teacherLogits });
    const size = modelSize({ model });
    const lat = await measureLatency({
      predict,
      inputShape: data.sampleShape,
      batchSizes: [1, 64],
      runs: o.latencyRuns ?? 20,
      warmup: Math.min(5, o.latencyRuns ?? 5),
    });
    const result: EvalResult = {
      model: path,
      backend: backend.name,
      split,
      samples: data.size,
      accuracy: m.accuracy,
      ece: m.ece,
      params: size.params,
      bytes: size.bytes,
      latencyMs: { batch1: lat.stats[0]!.medianMs, batch64: lat.stats[1]!.medianMs },
      ...(teacherLogits && {
        teacher: {
          path: o.teacher!,
          accuracy: classificationMetrics({ logits: teacherLogits, labels: data.labels, numClasses: data.numClasses })
            .accuracy,
          agreement: m.agreement!,
          klToTeacher: m.klToTeacher!,
        },
      }),
    };
    if (o.json) {
      console.log(JSON.stringify(result));
    } else {
      const out = [
        `model      ${path}`,
        `data       ${o.csv ?? 'Fashion-MNIST'} (${split}), ${formatInt(data.size)} samples`,
        `accuracy   ${formatPercent(result.accuracy)}`,
        `ECE        ${formatPercent(result.ece)} (15 bins)`,
        `params     ${formatInt(result.params)}`,
        `size       ${formatBytes(result.bytes.float32)} float32 · ${formatBytes(result.bytes.float16)} float16 · ${formatBytes(result.bytes.uint8)} uint8`,
        `latency    ${formatMs(result.latencyMs.batch1)} (batch 1) · ${formatMs(result.latencyMs.batch64)} (batch 64), median on ${backend.name}`,
      ];
      if (result.teacher) {
        out.push(
          `teacher    ${result.teacher.path}: accuracy ${formatPercent(result.teacher.accuracy)}; agreement ${formatPercent(result.teacher.agreement)}, KL(teacher ‖ model) ${result.teacher.klToTeacher.toFixed(4)} nats`,
        );
      }
      console.log(out.join('\n'));
    }
    return result;
  } finally {
    model.dispose();
  }
}
