/**
 * Students as their exported files give them back: a model saved with a weight encoding is
 * loaded again through the `file://` router, so its evaluation (accuracy, agreement, KL,
 * ECE, latency) measures exactly what a browser would run after `tf.loadLayersModel`, with
 * the float16 / uint8 rounding in its weights, and its size is that of the files written.
 */
import * as tf from '@tensorflow/tfjs';
import { registerFileRouters } from '../io/file-handler.js';
import { saveEncodedModel, type SavedSizes, type WeightEncoding } from '../io/quantize.js';
import { modelSize } from './size.js';
import type { ByteSizes } from './types.js';

/** What `saveEncodedModel` reports about the files it wrote. */
export type SavedModelFiles = { modelJsonPath: string; weightsPath: string } & SavedSizes;

export interface ExportedModel {
  /** Loaded from the files (TF.js dequantizes on load: it runs in float32). */
  model: tf.LayersModel;
  encoding: WeightEncoding;
  files: SavedModelFiles;
  /**
   * Its sizes per encoding: `bytes[encoding]` is the files written (model.json + weights.bin);
   * the other encodings re-encode the loaded weights, as `modelSize` does for any model.
   */
  bytes: ByteSizes;
}

/** Loads a model `saveEncodedModel` wrote with `encoding` (its result: `files`) back from disk. */
export async function loadExported({
  files,
  encoding,
}: {
  files: SavedModelFiles;
  encoding: WeightEncoding;
}): Promise<ExportedModel> {
  registerFileRouters();
  // the router takes `file://` + a plain path (file-handler.ts), not a percent-encoded URL
  const model = await tf.loadLayersModel(`file://${files.modelJsonPath}`);
  const bytes = { ...modelSize({ model }).bytes, [encoding]: files.modelJson + files.weights };
  return { model, encoding, files, bytes };
}

/** Saves `model` with `encoding` into `path` (a folder or a `*.json` path) and loads it back (`loadExported`). */
export async function saveAndLoad({
  model,
  encoding,
  path,
}: {
  model: tf.LayersModel;
  encoding: WeightEncoding;
  path: string;
}): Promise<ExportedModel> {
  const files = await saveEncodedModel({ model, encoding, path });
  return loadExported({ files, encoding });
}
