import { useBestBackend } from '../../backend/index.js';
import { predictLogits } from '../../eval/metrics.js';
import { teacherPredictFn } from '../../eval/evaluate.js';
import { datasetFingerprint, writeTeacherCache } from '../../teachers/cache-file.js';
import { loadTeacher } from '../../teachers/load.js';
import type { Layout } from '../../teachers/onnx.js';
import { selectData, type DataOptions } from '../data-options.js';

export interface CacheTeacherOptions extends DataOptions {
  teacher: string;
  out: string;
  layout?: Layout;
  inputName?: string;
  outputName?: string;
  backend?: string;
  batchSize?: number;
}

/** `distill cache-teacher`: the teacher's logits for every row of a dataset, in one file. */
export async function cacheTeacher(o: CacheTeacherOptions): Promise<{ rows: number; seconds: number }> {
  const data = selectData(o);
  await useBestBackend({ backend: o.backend });
  const teacher = await loadTeacher({
    path: o.teacher,
    data,
    layout: o.layout,
    inputName: o.inputName,
    outputName: o.outputName,
  });
  const started = performance.now();
  try {
    const logits = await predictLogits({ predict: teacherPredictFn(teacher), data, batchSize: o.batchSize ?? 256 });
    await writeTeacherCache({
      path: o.out,
      logits,
      numClasses: data.numClasses,
      datasetFingerprint: datasetFingerprint(data),
    });
  } finally {
    teacher.dispose();
  }
  return { rows: data.size, seconds: (performance.now() - started) / 1000 };
}
