import { createHash } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { errorLine, UserError } from '../errors.js';
import { z } from 'zod';
import { writeFileAtomic } from './atomic.js';

/** Top-level model.json key holding `{ "<weights file>": "<sha256 hex>" }`; loaders ignore it. */
export const WEIGHTS_HASH_KEY = 'weightsSha256';
const SCHEME = 'file://';

/**
 * A TF.js IOHandler for the local file system (what `tfjs-node`'s `file://` does; plain
 * `@tensorflow/tfjs` has none). Standard layout, loadable in a browser by
 * `tf.loadLayersModel` / `tf.loadGraphModel`:
 * - `path` is a folder (created if missing) → `path/model.json` + `path/weights.bin`;
 *   or a `*.json` file → that file + `<name>.weights.bin` beside it.
 * - save writes each file to a temp file in the same folder, fsyncs, then renames it;
 *   weights first, then model.json, which records the sha256 of the weights under
 *   `weightsSha256`. A crash between the two renames leaves a model.json whose hash does
 *   not match: load then fails with a UserError instead of using mismatched weights.
 * - load takes a model.json (any `*.json`) or its folder, and reads LayersModel and
 *   GraphModel artefacts, including converter output sharded over several files (no hash
 *   there: the byte size is still checked against the manifest).
 */
export function fileSystem(path: string): tf.io.IOHandler {
  return {
    save: (artifacts) => save(path, artifacts),
    load: () => load(path),
  };
}

/**
 * `tf.loadLayersModel` from a model.json (or its folder) through `fileSystem`, with every failure
 * — a damaged or foreign model.json, a topology TF.js cannot build, weights that do not fit — as
 * one `UserError` naming the file, never a TF.js stack.
 */
export async function loadLayersModelFile(path: string): Promise<tf.LayersModel> {
  const artifacts = await load(path);
  const variables = tf.engine().state.registeredVariables;
  const before = new Set(Object.keys(variables));
  let model: tf.LayersModel | undefined;
  try {
    // What tf.loadLayersModel does, with the decoded weights freed however it ends: it keeps
    // them when loading fails halfway.
    model = await tf.models.modelFromJSON({
      modelTopology: artifacts.modelTopology as tf.io.ModelJSON['modelTopology'],
    });
    const built = model;
    if (artifacts.weightData !== undefined && artifacts.weightSpecs !== undefined) {
      const data = artifacts.weightData;
      const specs = artifacts.weightSpecs;
      const named = tf.tidy(() => tf.io.decodeWeights(data, specs));
      try {
        built.loadWeights(named, true);
      } finally {
        tf.dispose(Object.values(named));
      }
    }
    return built;
  } catch (e) {
    model?.dispose();
    // a model that failed to build keeps the weights of the layers it built, as variables
    for (const [name, v] of Object.entries(variables)) if (!before.has(name) && !v.isDisposed) v.dispose();
    if (e instanceof UserError) throw e;
    throw new UserError(
      `cannot load the TF.js model ${path}: ${errorLine(e)}; give a model.json written by TF.js (model.save) with its weights files`,
    );
  }
}

/** Registers `fileSystem` for `file://` URLs with tf.io (save + load). Idempotent. */
export function registerFileRouters(): void {
  const flag = Symbol.for('tfjs-distill.fileRouters');
  const g = globalThis as Record<symbol, unknown>;
  if (g[flag]) return;
  g[flag] = true;
  const router = (url: string | string[]) =>
    (typeof url === 'string' && url.startsWith(SCHEME)
      ? fileSystem(url.slice(SCHEME.length))
      : null) as tf.io.IOHandler;
  tf.io.registerSaveRouter(router);
  tf.io.registerLoadRouter(router);
}

/** The shape of a model.json's `weightsManifest` that the loaders rely on (extra fields allowed). */
const weightsManifest = z.array(
  z.object({
    paths: z.array(z.string()),
    weights: z.array(
      z.object({
        name: z.string(),
        shape: z.array(z.int().min(0)),
        dtype: z.enum(['float32', 'int32', 'bool', 'string', 'complex64']),
      }),
    ),
  }),
);

/** The names TF.js accepts for layers and weights (tfjs-layers' `isValidTensorName`). */
const TENSOR_NAME = /^[A-Za-z0-9][-A-Za-z0-9._/]*$/;

/**
 * A functional LayersModel's graph as TF.js saves it: layers in topological order, each taking
 * its inputs from layers listed before it, and the model's inputs and outputs among its layers.
 * TF.js does not check this, and a damaged graph (an input from a missing layer) can send its
 * model builder into an endless loop: refused here, before anything is built.
 */
function checkLayerGraph(topology: unknown, jsonPath: string): void {
  const config =
    (topology as { config?: unknown } | null)?.config ??
    (topology as { model_config?: { config?: unknown } })?.model_config?.config;
  const layers = (config as { layers?: unknown } | undefined)?.layers;
  if (!Array.isArray(layers)) return;
  const damaged = (why: string) =>
    new UserError(`model file ${jsonPath} has a damaged layer graph (${why}); save or convert the model again`);
  // TF.js names each weight after its layer and fails on a name it cannot use, after it made the tensor
  for (const layer of layers as Array<{ name?: unknown; config?: { name?: unknown } }>) {
    for (const name of [layer?.name, layer?.config?.name])
      if (name !== undefined && (typeof name !== 'string' || !TENSOR_NAME.test(name)))
        throw damaged(`layer name ${JSON.stringify(name).slice(0, 60)} is not a TF.js name`);
  }
  // a Sequential model lists its layers in order, without inbound nodes: nothing more to check
  if (!layers.some((l) => Array.isArray(l?.inbound_nodes))) return;
  const seen = new Set<string>();
  const inbound = (node: unknown): string[] =>
    Array.isArray(node) ? node.flatMap((n) => (typeof n === 'string' ? [n] : inbound(n))) : [];
  for (const layer of layers as Array<{ name?: unknown; inbound_nodes?: unknown[] }>) {
    const name = layer?.name;
    if (typeof name !== 'string') throw damaged('a layer without a name');
    for (const node of layer.inbound_nodes ?? []) {
      // an inbound node is [[layerName, nodeIndex, tensorIndex, kwargs], …] (or a dict in newer Keras)
      const from = Array.isArray(node) ? node.map((n) => (Array.isArray(n) ? n[0] : undefined)) : [];
      for (const f of from)
        if (typeof f === 'string' && !seen.has(f))
          throw damaged(`layer ${name} takes its input from ${f}, which is not an earlier layer`);
    }
    seen.add(name);
  }
  for (const key of ['input_layers', 'output_layers'] as const) {
    const list = (config as Record<string, unknown>)[key];
    for (const f of inbound(list)) if (!seen.has(f)) throw damaged(`${key} names ${f}, which is not a layer`);
  }
}

function weightsNameFor(jsonPath: string): string {
  const name = basename(jsonPath);
  return name === 'model.json' ? 'weights.bin' : `${name.replace(/\.json$/i, '')}.weights.bin`;
}

async function save(path: string, artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
  if (artifacts.modelTopology instanceof ArrayBuffer) {
    throw new Error('fileSystem: binary (protobuf) model topologies cannot be saved; save a JSON topology');
  }
  const jsonPath = /\.json$/i.test(path) ? resolve(path) : resolve(path, 'model.json');
  const dir = dirname(jsonPath);
  const weightsName = weightsNameFor(jsonPath);
  const data = artifacts.weightData ?? [];
  const parts = (Array.isArray(data) ? data : [data]).map((b) => new Uint8Array(b));
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  const manifest: tf.io.WeightsManifestConfig = [{ paths: [weightsName], weights: artifacts.weightSpecs ?? [] }];
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
  // Same fields as tfjs-core's getModelJSONForModelArtifacts (not exported by tf.io).
  const modelJSON = {
    modelTopology,
    format,
    generatedBy,
    convertedBy,
    weightsManifest: manifest,
    signature,
    userDefinedMetadata,
    modelInitializer,
    initializerSignature,
    trainingConfig,
    [WEIGHTS_HASH_KEY]: { [weightsName]: hash.digest('hex') },
  };
  try {
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(join(dir, weightsName), Buffer.concat(parts));
    await writeFileAtomic(jsonPath, Buffer.from(JSON.stringify(modelJSON)));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot save model to ${dir}: ${errorLine(e)}; choose a writable folder`);
  }
  return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
}

async function load(path: string): Promise<tf.io.ModelArtifacts> {
  const isDir = !/\.json$/i.test(path) && (await stat(path).catch(() => null))?.isFile() !== true;
  const jsonPath = isDir ? resolve(path, 'model.json') : resolve(path);
  let text: string;
  try {
    text = await readFile(jsonPath, 'utf8');
  } catch (e) {
    throw new UserError(
      (e as NodeJS.ErrnoException).code === 'ENOENT'
        ? `model file ${jsonPath} does not exist; check the path, or save the model there first`
        : `cannot read model file ${jsonPath}: ${errorLine(e)}`,
    );
  }
  let json: tf.io.ModelJSON & Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`model file ${jsonPath} is not valid JSON (${errorLine(e)}); save or convert the model again`);
  }
  if (typeof json !== 'object' || json === null || json.modelTopology == null) {
    throw new UserError(
      `model file ${jsonPath} has no modelTopology, so it is not a TF.js model.json; point to the model.json written by model.save or tensorflowjs_converter`,
    );
  }
  checkLayerGraph(json.modelTopology, jsonPath);
  if (json.weightsManifest !== undefined && !weightsManifest.safeParse(json.weightsManifest).success)
    throw new UserError(
      `model file ${jsonPath} has a damaged weightsManifest (each group needs paths and weights with a name, a shape of whole numbers and a dtype); save or convert the model again`,
    );
  const hashes = (json[WEIGHTS_HASH_KEY] ?? {}) as Record<string, string>;
  return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
    // Every weights path stays inside the model's folder (no `../`, absolute paths or symlinks out),
    // checked for all of them before any is read: loading a model reads that model only.
    const folder = realpathSync(dirname(jsonPath));
    for (const group of manifest) {
      for (const p of group.paths) {
        const file = resolve(folder, p);
        const real = existsSync(file) ? realpathSync(file) : file;
        if (typeof p !== 'string' || !(real.startsWith(folder + sep) || real === folder))
          throw new UserError(
            `model file ${jsonPath} lists weights at ${JSON.stringify(p)}, outside its folder; refusing to read it (a model's weights live beside its model.json)`,
          );
      }
    }
    const specs: tf.io.WeightsManifestEntry[] = [];
    const buffers: ArrayBuffer[] = [];
    for (const group of manifest) {
      for (const p of group.paths) {
        const file = resolve(dirname(jsonPath), p);
        const bytes = await readFile(file).catch((e: NodeJS.ErrnoException) => {
          throw new UserError(
            e.code === 'ENOENT'
              ? `weights file ${file} (listed in ${jsonPath}) does not exist; copy it beside model.json or save the model again`
              : `cannot read weights file ${file}: ${errorLine(e)}`,
          );
        });
        const want = hashes[p];
        if (want !== undefined && createHash('sha256').update(bytes).digest('hex') !== want) {
          throw new UserError(
            `weights file ${file} does not match ${jsonPath} (sha256 differs: an interrupted save or files from different saves); save the model again`,
          );
        }
        buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
      }
      specs.push(...group.weights);
    }
    const have = buffers.reduce((n, b) => n + b.byteLength, 0);
    const need = expectedBytes(specs);
    if (need !== undefined && have !== need) {
      throw new UserError(
        `weights of ${jsonPath} have ${have} bytes but its weightsManifest needs ${need}; the weights files are truncated or from another model, save the model again`,
      );
    }
    return [specs, buffers.length === 1 ? buffers[0]! : buffers];
  });
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2, complex64: 8 };

/** Total bytes the specs describe, or undefined when not computable (strings). */
function expectedBytes(specs: tf.io.WeightsManifestEntry[]): number | undefined {
  let total = 0;
  for (const s of specs) {
    const per = BYTES[s.quantization?.dtype ?? s.dtype];
    if (per === undefined) return undefined;
    total += per * s.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}
