import * as tf from '@tensorflow/tfjs';
import { resolve } from 'node:path';
import { UserError } from '../errors.js';
import { loadLayersModelFile } from '../io/file-handler.js';
import { applyTapped, layerNames, layersAfter, tapModel } from '../models/taps.js';
import type { Teacher, TeacherOutput, TeacherPredictOptions } from './types.js';

/** A TF.js LayersModel as a frozen teacher: inference mode, never trained. */
export function layersTeacher({ model }: { model: tf.LayersModel }): Teacher {
  const inputShape = model.inputs[0]!.shape.slice(1) as number[];
  const outShape = model.outputs[0]!.shape;
  if (outShape.length !== 2 || typeof outShape[1] !== 'number') {
    throw new UserError(`teacher output must be logits [batch, classes], got [${outShape.join(',')}]`);
  }
  const tapped = new Map<string, tf.LayersModel>();
  return {
    kind: 'layers',
    inputShape,
    numClasses: outShape[1],
    async predict(x: tf.Tensor, options: TeacherPredictOptions = {}): Promise<TeacherOutput> {
      const names = options.taps ?? [];
      const key = names.join('\u0000');
      let m = tapped.get(key);
      if (!m) {
        m = tapModel(model, names, 'teacher');
        tapped.set(key, m);
      }
      return tf.tidy(() => applyTapped(m!, names, x, false));
    },
    tapNames: () => layerNames(model),
    layersAfter: (tap) => layersAfter(model, tap, 'teacher'),
    dispose: () => model.dispose(),
  };
}

/** Loads a LayersModel teacher from `model.json` (a path or a file:// / http(s):// URL). */
export async function loadLayersTeacher({ path }: { path: string }): Promise<Teacher> {
  if (/^[a-z]+:\/\//.test(path)) return layersTeacher({ model: await tf.loadLayersModel(path) });
  return layersTeacher({ model: await loadLayersModelFile(resolve(path)) });
}
