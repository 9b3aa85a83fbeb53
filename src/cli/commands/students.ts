import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { parse } from 'yaml';
import { deriveStudents, type StudentCandidate } from '../../architecture/factory.js';
import { zooEquivalent } from '../../architecture/from-layers.js';
import type { ZooNode } from '../../architecture/size-search.js';
import { useBestBackend } from '../../backend/index.js';
import { errorLine, UserError } from '../../errors.js';
import { loadLayersModelFile, registerFileRouters } from '../../io/file-handler.js';
import { countParams } from '../../models/common.js';
import { buildModel, models } from '../../models/zoo.js';
import { didYouMean } from '../../options.js';
import { dataSources } from '../../data/sources.js';
import { loadExperiment } from '../../experiment/load.js';
import { measureCandidates, type MeasuredModel } from '../../search/candidates.js';
import { formatBytes, formatInt, formatMs, formatRatio } from '../../report/table.js';

export interface StudentsCommandOptions {
  /** The zoo teacher's kwargs, a YAML mapping, e.g. `{width: 1, convsPerBlock: 1}`. */
  kwargs?: string;
  /** One example's shape (zoo teacher). Default `[28, 28, 1]` (Fashion-MNIST). */
  inputShape?: number[];
  /** Classes (zoo teacher). Default 10. */
  classes?: number;
  paramsMax?: number;
  /** Timed passes per batch size. Default 20. */
  latencyRuns?: number;
  /** Every family × depth × width (what \`distill search\` starts from), not one change at a time. */
  grid?: boolean;
  backend?: string;
  json?: boolean;
}

export type StudentsRow = MeasuredModel;

export interface StudentsResult {
  backend: string;
  inputShape: number[];
  numClasses: number;
  latencyRuns: number;
  teacher: StudentsRow & { source: string; notes: string[] };
  candidates: StudentsRow[];
}

const DEFAULT_INPUT_SHAPE = [28, 28, 1];
const DEFAULT_CLASSES = 10;

/**
 * `distill students TEACHER`: the student candidates of a zoo teacher or a model.json
 * (`deriveStudents`), each built untrained and measured: parameters, serialized float32 / uint8
 * bytes and median latency at batch 1 and 64 on the current backend, interleaved with the
 * teacher's (`measureLatencies`). Prints a Markdown table (teacher first) or, with `json`, one
 * JSON object.
 */
export async function studentsCommand(teacherGiven: string, given: StudentsCommandOptions): Promise<StudentsResult> {
  const { teacherArg, o } = /\.ya?ml$/.test(teacherGiven)
    ? teacherOfExperiment(teacherGiven, given)
    : { teacherArg: teacherGiven, o: given };
  const isZoo = models.has(teacherArg);
  if (!isZoo) checkTeacherPath(teacherArg);
  if (o.paramsMax !== undefined && !(o.paramsMax > 0)) {
    throw new UserError(`--params-max must be a positive number, got ${o.paramsMax}; pass e.g. --params-max 200000`);
  }
  const latencyRuns = o.latencyRuns ?? 20;
  if (!Number.isInteger(latencyRuns) || latencyRuns < 1) {
    throw new UserError(`--latency-runs must be a whole number ≥ 1, got ${latencyRuns}`);
  }
  if (!isZoo && o.kwargs !== undefined) {
    throw new UserError(
      `--kwargs applies to a zoo teacher; ${teacherArg} brings its own layers: drop --kwargs, or name a zoo model (${models.keys().join(', ')})`,
    );
  }
  const backend = await useBestBackend({ backend: o.backend });
  const built: tf.LayersModel[] = [];
  try {
    let teacherModel: tf.LayersModel;
    let teacherNode: ZooNode;
    let notes: string[] = [];
    let inputShape: number[];
    let numClasses: number;
    let candidates: StudentCandidate[];
    if (isZoo) {
      teacherNode = { key: teacherArg, kwargs: parseKwargs(o.kwargs) };
      inputShape = o.inputShape ?? DEFAULT_INPUT_SHAPE;
      numClasses = o.classes ?? DEFAULT_CLASSES;
      candidates = deriveStudents({
        teacher: teacherNode,
        inputShape,
        numClasses,
        paramsMax: o.paramsMax,
        ...(o.grid && { grid: true }),
      });
      teacherModel = buildModel({ ...teacherNode, inputShape, numClasses, seed: 0, name: 'teacher' });
      built.push(teacherModel);
    } else {
      teacherModel = await loadLayers(teacherArg);
      built.push(teacherModel);
      const eq = zooEquivalent({ model: teacherModel });
      ({ node: teacherNode, notes, inputShape, numClasses } = eq);
      if (o.inputShape !== undefined && o.inputShape.join(',') !== inputShape.join(',')) {
        throw new UserError(
          `${teacherArg} takes inputs of shape [${inputShape.join(',')}], not --input-shape ${o.inputShape.join(',')}: drop --input-shape (a model.json brings its own)`,
        );
      }
      if (o.classes !== undefined && o.classes !== numClasses) {
        throw new UserError(
          `${teacherArg} has ${numClasses} outputs, not --classes ${o.classes}: drop --classes (a model.json brings its own)`,
        );
      }
      candidates = deriveStudents({
        teacher: teacherModel,
        paramsMax: o.paramsMax,
        ...(o.grid && { grid: true }),
      });
      const flow = formatFlow(teacherNode.kwargs);
      process.stderr.write(
        `teacher read as ${teacherNode.key} ${flow}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}\n`,
      );
    }
    if (candidates.length === 0) {
      const all = deriveStudents({ teacher: isZoo ? teacherNode : teacherModel, inputShape, numClasses });
      const smallest = all[0];
      throw new UserError(
        smallest
          ? `no student candidate fits in ${formatInt(o.paramsMax ?? 0)} params, even at the narrowest width; raise --params-max (e.g. to ${smallest.params} for ${smallest.name})`
          : `no student candidate is smaller than the teacher (${formatInt(countParams(teacherModel))} params); give a larger teacher`,
      );
    }
    process.stderr.write(
      `backend: ${backend.name}; measuring the teacher and ${candidates.length} untrained candidates (${latencyRuns} timed pass${latencyRuns === 1 ? '' : 'es'} per batch size)\n`,
    );
    const measured = await measureCandidates({
      teacher: { model: teacherModel, node: teacherNode, derivation: isZoo ? `zoo \`${teacherArg}\`` : teacherArg },
      candidates,
      inputShape,
      numClasses,
      runs: latencyRuns,
    });
    const result: StudentsResult = {
      backend: backend.name,
      inputShape,
      numClasses,
      latencyRuns,
      teacher: { ...measured.teacher, source: isZoo ? 'zoo' : teacherArg, notes },
      candidates: measured.candidates,
    };
    process.stdout.write(o.json ? `${JSON.stringify(result)}\n` : renderStudents(result));
    return result;
  } finally {
    for (const m of built) m.dispose();
  }
}

/** The Markdown table (teacher first), a note on how it was measured, and the nodes as experiment students. */
export function renderStudents(r: StudentsResult): string {
  const header = [
    'model',
    'derivation',
    'params',
    'float32',
    'uint8',
    'batch 1',
    'batch 64',
    'speed-up (1)',
    'speed-up (64)',
  ];
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const rows = [r.teacher, ...r.candidates].map((c) =>
    line([
      `\`${c.name}\``,
      c.derivation,
      formatInt(c.params),
      formatBytes(c.bytes.float32),
      formatBytes(c.bytes.uint8),
      formatMs(c.latencyMs.batch1),
      formatMs(c.latencyMs.batch64),
      formatRatio(c.speedup.batch1),
      formatRatio(c.speedup.batch64),
    ]),
  );
  return [
    line(header),
    line(header.map((_, i) => (i < 2 ? '---' : '---:'))),
    ...rows,
    '',
    `Untrained, on [${r.inputShape.join(',')}] → ${r.numClasses} classes. Sizes: model.json + weights.bin. Latency: median of ${r.latencyRuns} passes per batch size on ${r.backend}, all models interleaved; speed-up = the teacher's median ÷ the model's.`,
    '',
    "As an experiment's students:",
    ...r.candidates.map(
      (c) => `  - {name: ${c.name}, model: {key: ${c.node.key}, kwargs: ${formatFlow(c.node.kwargs)}}}`,
    ),
    '',
  ].join('\n');
}

/** A value as YAML flow, e.g. `{width: 0.25, blocks: [32, 64]}`. */
function formatFlow(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(formatFlow).join(', ')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.entries(v)
      .map(([k, x]) => `${k}: ${formatFlow(x)}`)
      .join(', ')}}`;
  }
  return typeof v === 'string' && !/^[A-Za-z][\w.-]*$/.test(v) ? JSON.stringify(v) : String(v);
}

function parseKwargs(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = parse(text);
  } catch (e) {
    throw new UserError(
      `--kwargs is not valid YAML (${errorLine(e)}); write a mapping, e.g. --kwargs '{width: 1, convsPerBlock: 1}'`,
    );
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new UserError(
      `--kwargs must be a mapping of the model's options, got ${JSON.stringify(value)}; write e.g. --kwargs '{width: 1, convsPerBlock: 1}'`,
    );
  }
  return value as Record<string, unknown>;
}

/** A TEACHER that is not a zoo key must be an existing model.json (or its folder). */
function checkTeacherPath(path: string): void {
  const known = models.keys();
  if (!existsSync(path)) {
    const looksLikePath = /[/\\]|\.json$/.test(path);
    throw new UserError(
      looksLikePath
        ? `teacher ${path} does not exist; give the path of a TF.js model.json or a zoo model (${known.join(', ')})`
        : `unknown teacher \`${path}\`${didYouMean(path, known)}; give a zoo model (${known.join(', ')}) or the path of a TF.js model.json`,
    );
  }
  const json = statSync(path).isDirectory() ? join(path, 'model.json') : path;
  if (path.endsWith('.onnx')) {
    throw new UserError(
      `teacher ${path} is an ONNX model; students are derived from a TF.js LayersModel's layers or a zoo model (${known.join(', ')})`,
    );
  }
  let parsed: { format?: string; modelTopology?: { node?: unknown } };
  try {
    parsed = JSON.parse(readFileSync(json, 'utf8')) as typeof parsed;
  } catch {
    throw new UserError(`teacher ${json} is not a readable model.json; give a TF.js LayersModel's model.json`);
  }
  if (parsed.format === 'graph-model' || Array.isArray(parsed.modelTopology?.node)) {
    throw new UserError(
      `teacher ${json} is a TF.js GraphModel, which has no layers to read; give a LayersModel's model.json or a zoo model (${known.join(', ')})`,
    );
  }
}

async function loadLayers(path: string): Promise<tf.LayersModel> {
  registerFileRouters();
  try {
    return await loadLayersModelFile(resolve(path));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(
      `cannot load ${path} as a TF.js LayersModel (${errorLine(e)}); give a model.json written by model.save or distill train`,
    );
  }
}

/**
 * An experiment file's teacher as this command's arguments: a `train` teacher is its zoo node, a
 * `file` teacher its model.json; input shape and classes come from the experiment's data.
 */
function teacherOfExperiment(
  file: string,
  o: StudentsCommandOptions,
): { teacherArg: string; o: StudentsCommandOptions } {
  if (o.kwargs !== undefined || o.inputShape !== undefined || o.classes !== undefined) {
    throw new UserError(`${file} names the teacher and the data; drop --kwargs, --input-shape and --classes`);
  }
  const { config } = loadExperiment({ path: file });
  const data = dataSources.get(config.data.key).load(config.data.kwargs as never);
  const shape = { inputShape: [...data.train.sampleShape], classes: data.train.numClasses };
  const t = config.teacher;
  if (t.key === 'train') {
    const node = t.kwargs['model'] as ZooNode;
    return { teacherArg: node.key, o: { ...o, ...shape, kwargs: JSON.stringify(node.kwargs ?? {}) } };
  }
  if (t.key === 'file') return { teacherArg: String(t.kwargs['path']), o };
  throw new UserError(
    `${file}: teacher \`${t.key}\` is not one model; derive students from a train or file teacher (or name a zoo model)`,
  );
}
