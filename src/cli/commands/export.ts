import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../errors.js';
import { loadLayersModelFile, registerFileRouters } from '../../io/file-handler.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { exportOnnx, ONNX_OPSET } from '../../io/onnx-export.js';
import { saveEncodedModel, WEIGHT_ENCODINGS, type WeightEncoding } from '../../io/quantize.js';
import { formatBytes } from '../../report/table.js';

export interface ExportCommandOptions {
  out: string;
  dtype: string;
  format?: string;
  layout?: string;
}

/**
 * `distill export`: a saved LayersModel rewritten with float32, float16 or uint8 weights
 * (TF.js manifest quantization: `tf.loadLayersModel` dequantizes on load, in Node or a browser).
 */
export async function exportCommand(
  path: string,
  o: ExportCommandOptions,
): Promise<{ modelJsonPath: string; bytes: number }> {
  const format = o.format ?? 'tfjs';
  if (format !== 'tfjs' && format !== 'onnx') throw new UserError(`unknown --format \`${format}\`; known: tfjs, onnx`);
  if (format === 'onnx') return exportOnnxFile(path, o);
  if (!(WEIGHT_ENCODINGS as readonly string[]).includes(o.dtype)) {
    throw new UserError(`unknown --dtype \`${o.dtype}\`; known: ${WEIGHT_ENCODINGS.join(', ')}`);
  }
  tf.enableProdMode();
  await tf.setBackend('cpu');
  registerFileRouters();
  if (resolve(path).replace(/\/model\.json$/, '') === resolve(o.out).replace(/\/model\.json$/, '')) {
    throw new UserError(`--out ${o.out} is the model's own folder; export into another folder`);
  }
  const model = await loadLayersModelFile(path);
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

async function exportOnnxFile(
  path: string,
  o: ExportCommandOptions,
): Promise<{ modelJsonPath: string; bytes: number }> {
  const layout = o.layout ?? 'nhwc';
  if (layout !== 'nhwc' && layout !== 'nchw') throw new UserError(`unknown --layout \`${layout}\`; known: nhwc, nchw`);
  if (o.dtype !== 'float32')
    throw new UserError('--dtype applies to the tfjs format; ONNX export writes float32 weights');
  if (!o.out.endsWith('.onnx'))
    throw new UserError(`--out ${o.out}: give the .onnx file to write, e.g. --out student.onnx`);
  tf.enableProdMode();
  await tf.setBackend('cpu');
  registerFileRouters();
  const model = await loadLayersModelFile(path);
  try {
    const bytes = exportOnnx(model, { layout });
    await writeFileAtomic(o.out, bytes);
    process.stderr.write(`wrote ${o.out} (${formatBytes(bytes.length)}), ONNX opset ${ONNX_OPSET}, input ${layout}\n`);
    return { modelJsonPath: o.out, bytes: bytes.length };
  } finally {
    model.dispose();
  }
}
