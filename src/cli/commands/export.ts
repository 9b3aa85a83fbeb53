import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../errors.js';
import { fileSystem, registerFileRouters } from '../../io/file-handler.js';
import { saveEncodedModel, WEIGHT_ENCODINGS, type WeightEncoding } from '../../io/quantize.js';
import { formatBytes } from '../../report/table.js';

export interface ExportCommandOptions {
  out: string;
  dtype: string;
}

/**
 * `distill export`: a saved LayersModel rewritten with float32, float16 or uint8 weights
 * (TF.js manifest quantization: `tf.loadLayersModel` dequantizes on load, in Node or a browser).
 */
export async function exportCommand(
  path: string,
  o: ExportCommandOptions,
): Promise<{ modelJsonPath: string; bytes: number }> {
  if (!(WEIGHT_ENCODINGS as readonly string[]).includes(o.dtype)) {
    throw new UserError(`unknown --dtype \`${o.dtype}\`; known: ${WEIGHT_ENCODINGS.join(', ')}`);
  }
  tf.enableProdMode();
  await tf.setBackend('cpu');
  registerFileRouters();
  if (resolve(path).replace(/\/model\.json$/, '') === resolve(o.out).replace(/\/model\.json$/, '')) {
    throw new UserError(`--out ${o.out} is the model's own folder; export into another folder`);
  }
  const model = await tf.loadLayersModel(fileSystem(path));
  try {
    const saved = await saveEncodedModel({ model, encoding: o.dtype as WeightEncoding, path: o.out });
    process.stderr.write(
      `wrote ${saved.modelJsonPath} (${formatBytes(saved.modelJson)}) and weights.bin (${formatBytes(saved.weights)}), ${o.dtype} weights\n`,
    );
    return { modelJsonPath: saved.modelJsonPath, bytes: saved.modelJson + saved.weights };
  } finally {
    model.dispose();
  }
}
