import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import type { Dataset } from '../data/dataset.js';
import { CachedTeacher } from './cached.js';
import { readTeacherCache, datasetFingerprint } from './cache-file.js';
import { loadGraphTeacher } from './graph.js';
import { loadLayersTeacher } from './layers.js';
import { loadOnnxTeacher, type Layout } from './onnx.js';
import type { Teacher } from './types.js';

export interface LoadTeacherOptions {
  /** A LayersModel or GraphModel `model.json` (or its folder), an `.onnx` file, or a logits cache. */
  path: string;
  /** The data the teacher will see: its sample shape and classes are checked against the teacher's. */
  data: Dataset;
  /** ONNX only: input layout, input and output names. */
  layout?: Layout;
  inputName?: string;
  outputName?: string;
}

/**
 * Loads a teacher from a file, whatever it is: `.onnx` → ONNX (onnxruntime-node);
 * `model.json` → TF.js LayersModel or GraphModel (told apart by its format); a file
 * written by `distill cache-teacher` → cached logits for exactly this dataset.
 */
export async function loadTeacher({ path, data, layout, inputName, outputName }: LoadTeacherOptions): Promise<Teacher> {
  const full = resolve(path);
  if (!existsSync(full))
    throw new UserError(
      `teacher file ${path} does not exist; give a model.json, an .onnx file or a distill cache-teacher file`,
    );
  const common = { inputShape: [...data.sampleShape], numClasses: data.numClasses };
  if (full.endsWith('.onnx')) return loadOnnxTeacher({ path: full, layout, inputName, outputName, ...common });
  const json = statSync(full).isDirectory() ? join(full, 'model.json') : full;
  if (json.endsWith('.json')) {
    let parsed: { format?: string; modelTopology?: { node?: unknown } };
    try {
      parsed = JSON.parse(readFileSync(json, 'utf8')) as typeof parsed;
    } catch {
      throw new UserError(`teacher file ${json} is not valid JSON; give a TF.js model.json`);
    }
    const graph = parsed.format === 'graph-model' || Array.isArray(parsed.modelTopology?.node);
    const teacher = graph ? await loadGraphTeacher({ path: json, ...common }) : await loadLayersTeacher({ path: json });
    return checked(teacher, data, path);
  }
  const cache = await readTeacherCache({ path: full, expectedFingerprint: datasetFingerprint(data) });
  if (cache.numClasses !== data.numClasses) {
    throw new UserError(`cached teacher ${path} has ${cache.numClasses} classes but the data has ${data.numClasses}`);
  }
  return new CachedTeacher({
    size: cache.size,
    numClasses: cache.numClasses,
    inputShape: data.sampleShape,
    logits: cache.logits,
  });
}

function checked(teacher: Teacher, data: Dataset, path: string): Teacher {
  const want = data.sampleShape.join(',');
  if (teacher.inputShape.join(',') !== want) {
    teacher.dispose();
    throw new UserError(
      `teacher ${path} takes inputs of shape [${teacher.inputShape.join(',')}] but the data's samples are [${want}]`,
    );
  }
  if (teacher.numClasses !== data.numClasses) {
    teacher.dispose();
    throw new UserError(`teacher ${path} has ${teacher.numClasses} classes but the data has ${data.numClasses}`);
  }
  return teacher;
}
