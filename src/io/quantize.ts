import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { fileSystem, WEIGHTS_HASH_KEY } from './file-handler.js';

/** How weights are stored: plain float32, IEEE half floats, or 8-bit affine (`v·scale + min`). */
export type WeightEncoding = 'float32' | 'float16' | 'uint8';
export const WEIGHT_ENCODINGS: readonly WeightEncoding[] = ['float32', 'float16', 'uint8'];

/** Weight specs (the `weights` of a `weightsManifest` group) and the bytes they describe. */
export interface EncodedWeights {
  specs: tf.io.WeightsManifestEntry[];
  /** Concatenated weight values, in `specs` order: the content of `weights.bin`. */
  data: ArrayBuffer;
}

export interface EncodeModelOptions {
  model: tf.LayersModel;
  encoding: WeightEncoding;
}

/**
 * A LayersModel's weights (all of them, as `model.save` writes them: names are the
 * variables' original names) encoded as TF.js weight data. Quantized tensors carry the
 * manifest `quantization` field that `tf.io.decodeWeights`, `tf.loadLayersModel` and
 * `tf.loadGraphModel` dequantize on load:
 * - `float16`: `{ dtype: 'float16' }`, round-to-nearest-even half floats (2 bytes each);
 *   relative error ≤ 2⁻¹¹ in the normal range, values beyond ±65504 become ±Infinity.
 * - `uint8`: `{ dtype: 'uint8', min, scale }` per tensor, decoded as `q·scale + min`. The
 *   range is widened to include 0 and nudged so that 0 is exactly representable (zero
 *   weights and padding stay exact, as in tensorflowjs_converter); every value is within
 *   `scale/2` of its original.
 * Non-float32 weights (rare in LayersModels) are stored unquantized.
 */
export function encodeModelWeights({ model, encoding }: EncodeModelOptions): EncodedWeights {
  checkEncoding(encoding);
  const named = model.weights.map((w) => ({ name: w.originalName, tensor: w.read() }));
  return encodeTensors({ tensors: named, encoding });
}

/** `encodeModelWeights` for any named tensors (e.g. from `tf.io.decodeWeights`). */
export function encodeTensors({
  tensors,
  encoding,
}: {
  tensors: Array<{ name: string; tensor: tf.Tensor }>;
  encoding: WeightEncoding;
}): EncodedWeights {
  checkEncoding(encoding);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const { name, tensor } of tensors) {
    const dtype = tensor.dtype;
    if (dtype !== 'float32' && dtype !== 'int32' && dtype !== 'bool') {
      throw new Error(`encodeTensors: weight ${name} has dtype ${dtype}, which cannot be encoded`);
    }
    const spec: tf.io.WeightsManifestEntry = { name, shape: [...tensor.shape], dtype };
    const values = tensor.dataSync();
    if (dtype !== 'float32' || encoding === 'float32') {
      parts.push(
        dtype === 'bool'
          ? Uint8Array.from(values as Uint8Array)
          : new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
      );
    } else if (encoding === 'float16') {
      spec.quantization = { dtype: 'float16' };
      parts.push(new Uint8Array(toFloat16(values as Float32Array).buffer));
    } else {
      const { q, min, scale } = toUint8(values as Float32Array);
      spec.quantization = { dtype: 'uint8', min, scale };
      parts.push(q);
    }
    specs.push(spec);
  }
  const data = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const p of parts) {
    data.set(p, offset);
    offset += p.byteLength;
  }
  return { specs, data: data.buffer };
}

/**
 * Full model artifacts (topology + encoded weights), ready for any `tf.io` save handler or
 * `tf.io.fromMemory`: what `model.save` would write, with the chosen weight encoding.
 */
export function encodeModelArtifacts({ model, encoding }: EncodeModelOptions): tf.io.ModelArtifacts {
  const { specs, data } = encodeModelWeights({ model, encoding });
  return {
    modelTopology: model.toJSON(null, false) as tf.io.ModelArtifacts['modelTopology'],
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
    convertedBy: null,
    weightSpecs: specs,
    weightData: data,
  };
}

/** Byte sizes of the two files `saveEncodedModel` writes for these artifacts. */
export interface SavedSizes {
  modelJson: number;
  weights: number;
}

/**
 * Byte sizes of `model.json` and `weights.bin` exactly as `fileSystem` (file-handler.ts)
 * writes `artifacts` to a folder, computed in memory (same JSON fields, same order, the
 * sha256 entry included). `test/eval-size.test.ts` checks it against written files.
 */
export function savedSizes(artifacts: tf.io.ModelArtifacts, weightsName = 'weights.bin'): SavedSizes {
  const data = artifacts.weightData ?? [];
  const parts = (Array.isArray(data) ? data : [data]).map((b) => new Uint8Array(b));
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  const {
    modelTopology,
    format,
    generatedBy,
    convertedBy,
    signature,
    userDefinedMetadata,
    modelInitializer,
    initializerSignature,
    trainingConfig,
  } = artifacts;
  const modelJSON = {
    modelTopology,
    format,
    generatedBy,
    convertedBy,
    weightsManifest: [{ paths: [weightsName], weights: artifacts.weightSpecs ?? [] }],
    signature,
    userDefinedMetadata,
    modelInitializer,
    initializerSignature,
    trainingConfig,
    [WEIGHTS_HASH_KEY]: { [weightsName]: hash.digest('hex') },
  };
  return {
    modelJson: Buffer.byteLength(JSON.stringify(modelJSON), 'utf8'),
    weights: parts.reduce((n, p) => n + p.byteLength, 0),
  };
}

export interface SaveEncodedModelOptions extends EncodeModelOptions {
  /** A folder (→ `model.json` + `weights.bin`) or a `*.json` path, as for `fileSystem`. */
  path: string;
}

/**
 * Writes `model` with the chosen weight encoding through the atomic `fileSystem` handler;
 * `tf.loadLayersModel('file://…')` (after `registerFileRouters()`) or a browser loader
 * dequantizes it on load. Returns the paths and byte sizes of the files written.
 */
export async function saveEncodedModel({
  model,
  encoding,
  path,
}: SaveEncodedModelOptions): Promise<{ modelJsonPath: string; weightsPath: string } & SavedSizes> {
  const artifacts = encodeModelArtifacts({ model, encoding });
  await fileSystem(path).save!(artifacts);
  const modelJsonPath = /\.json$/i.test(path) ? resolve(path) : resolve(path, 'model.json');
  const name = basename(modelJsonPath);
  const weightsPath = resolve(
    dirname(modelJsonPath),
    name === 'model.json' ? 'weights.bin' : `${name.replace(/\.json$/i, '')}.weights.bin`,
  );
  const [j, w] = await Promise.all([stat(modelJsonPath), stat(weightsPath)]);
  return { modelJsonPath, weightsPath, modelJson: j.size, weights: w.size };
}

function checkEncoding(encoding: string): asserts encoding is WeightEncoding {
  if (!(WEIGHT_ENCODINGS as readonly string[]).includes(encoding)) {
    throw new UserError(`unknown weight encoding \`${encoding}\`; known: ${WEIGHT_ENCODINGS.join(', ')}`);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits of `v`, rounded to nearest, ties to even. */
export function float16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → Inf
  if (e <= 0) {
    // half subnormal (or zero): m · 2⁻²⁴
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++; // a carry may round up to Inf: correct
  return sign | half;
}

function toFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float16Bits(values[i]!);
  return out;
}

/** One tensor's affine uint8 encoding: the manifest's `min` and `scale`, and the codes `q`. */
export interface Uint8Encoding {
  q: Uint8Array;
  min: number;
  scale: number;
}

/**
 * Affine uint8 quantization of one tensor, the rule of the `uint8` export: an integer zero
 * point z ∈ [0, 255] and a scale chosen so that [min, min + 255·scale] ⊇ [lo, hi] with
 * min = −z·scale (0 exact). Quantization-aware training (`src/train/fake-quant.ts`) uses it too.
 */
export function toUint8(values: Float32Array): Uint8Encoding {
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v))
      throw new UserError(
        'cannot quantize weights containing NaN or Infinity to uint8; the model diverged, retrain it',
      );
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  let scale = 1;
  let zero = 0;
  if (hi > lo) {
    zero = Math.round((255 * -lo) / (hi - lo));
    if (lo < 0) zero = Math.max(zero, 1);
    if (hi > 0) zero = Math.min(zero, 254);
    scale = Math.max(lo < 0 ? -lo / zero : 0, hi > 0 ? hi / (255 - zero) : 0);
  }
  const min = zero === 0 ? 0 : -(zero * scale);
  const q = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    q[i] = Math.min(255, Math.max(0, Math.round((values[i]! - min) / scale)));
  }
  return { q, min, scale };
}

/**
 * The float32 values a loader gets back from `toUint8`'s encoding: `q·scale + min` computed
 * in double precision and rounded to float32, exactly as `tf.io.decodeWeights` (and so
 * `tf.loadLayersModel`) dequantizes a `uint8` weight.
 */
export function fromUint8({ q, min, scale }: Uint8Encoding, out = new Float32Array(q.length)): Float32Array {
  for (let i = 0; i < q.length; i++) out[i] = q[i]! * scale + min;
  return out;
}
