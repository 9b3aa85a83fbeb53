import * as tf from '@tensorflow/tfjs';
import { resolve } from 'node:path';
import { errorLine, UserError } from '../errors.js';
import { fileSystem } from '../io/file-handler.js';
import type { Teacher, TeacherOutput, TeacherPredictOptions } from './types.js';

export interface GraphTeacherOptions {
  model: tf.GraphModel;
  /** The node whose output is the logits [batch, classes]. Default: the model's first output. */
  outputName?: string;
  /** The data's sample shape, e.g. [28, 28, 1]; checked against the model, fills dynamic dims. */
  inputShape?: readonly number[];
  /** The data's class count; checked against the logits' width (needed for control-flow models). */
  numClasses?: number;
}

/** Ops that are not activations worth tapping. */
const NOT_TAPS = new Set(['Const', 'Placeholder', 'NoOp']);
const fmt = (s: readonly (number | null | undefined)[]) =>
  `[${s.map((d) => (d == null || d < 0 ? 'N' : d)).join(',')}]`;

/**
 * Node names and ops of a GraphModel. The converter keeps its graph private; this is the
 * one place that reaches into it (tfjs-converter 4.x: `executor.graph.nodes`).
 */
function graphNodes(model: tf.GraphModel): Array<{ name: string; op: string }> {
  const nodes =
    (model as unknown as { executor?: { graph?: { nodes?: Record<string, { op: string }> } } }).executor?.graph
      ?.nodes ?? {};
  return Object.entries(nodes).map(([name, n]) => ({ name, op: n.op }));
}

/**
 * A TF.js GraphModel (tfjs-converter output: `model.json` + weight shards, format
 * `graph-model`) as a frozen teacher. Batches go in as they come (converted TF/Keras models
 * are NHWC like the data). Taps are node names (`name` or `name:k` for output k); the
 * logits node defaults to the model's first output. Models with control flow run through
 * `executeAsync`, the rest through `execute`.
 */
export function graphTeacher({ model, outputName, inputShape, numClasses }: GraphTeacherOptions): Teacher {
  if (model.inputs.length !== 1) {
    throw new UserError(
      `graph teacher takes one input but the model has ${model.inputs.length}: ${model.inputNodes.join(', ')}; export a single-input model`,
    );
  }
  const nodes = graphNodes(model);
  const known = new Set(nodes.map((n) => n.name));
  const ops = nodes.filter((n) => !NOT_TAPS.has(n.op));
  const check = (name: string, role: string) => {
    if (known.has(name.replace(/:\d+$/, ''))) return;
    const key = name.toLowerCase();
    const some = [
      ...ops.filter((n) => n.name.toLowerCase().includes(key)),
      ...ops.filter((n) => !n.name.toLowerCase().includes(key)),
    ]
      .slice(0, 10)
      .map((n) => n.name);
    throw new UserError(
      `graph teacher has no node \`${name}\` ${role}; nodes include: ${some.join(', ')}${ops.length > 10 ? ` (${ops.length} in all)` : ''}`,
    );
  };
  const output = outputName ?? model.outputNodes[0]!;
  check(output, 'for the logits');

  const input = model.inputs[0]!;
  const modelSample = input.shape?.slice(1);
  if (
    inputShape &&
    modelSample &&
    (modelSample.length !== inputShape.length || modelSample.some((d, i) => d >= 0 && d !== inputShape[i]))
  ) {
    throw new UserError(
      `graph teacher input \`${input.name}\` takes samples ${fmt(modelSample)} but the data's samples are [${inputShape.join(',')}]; use data shaped for this model or another teacher`,
    );
  }
  const shape = inputShape ? [...inputShape] : modelSample;
  if (!shape || shape.some((d) => d < 0)) {
    throw new UserError(
      `graph teacher input \`${input.name}\` has ${shape ? `dynamic sample dims ${fmt(shape)}` : 'no declared shape'}; pass inputShape (the data's sample shape)`,
    );
  }
  const dtype = (input.dtype ?? 'float32') as tf.DataType;

  // One zero sample through the graph: the class count, and whether `execute` can run it.
  let useAsync = false;
  let width: number | undefined;
  try {
    const shapeOut = tf.tidy(() => (model.execute(tf.zeros([1, ...shape], dtype), output) as tf.Tensor).shape);
    if (shapeOut.length !== 2) {
      throw new UserError(
        `graph teacher node \`${output}\` gives ${fmt([null, ...shapeOut.slice(1)])}, not logits [batch, classes]; pass outputName of the logits node`,
      );
    }
    width = shapeOut[1];
  } catch (e) {
    if (e instanceof UserError) throw e;
    if (!/executeAsync/.test(String(e)))
      throw new UserError(
        `graph teacher cannot run on samples [${shape.join(',')}]: ${errorLine(e)}; check inputShape`,
      );
    useAsync = true;
  }
  if (width === undefined && numClasses === undefined) {
    throw new UserError('graph teacher has control flow, so its class count is not probed; pass numClasses');
  }
  if (width !== undefined && numClasses !== undefined && width !== numClasses) {
    throw new UserError(
      `graph teacher node \`${output}\` has ${width} classes but the data has ${numClasses}; use a teacher trained on the same classes`,
    );
  }
  const classes = width ?? numClasses!;

  let tapShapes: Array<{ name: string; shape: readonly (number | null)[] }> | undefined;
  return {
    kind: 'graph',
    inputShape: shape,
    numClasses: classes,
    async predict(x: tf.Tensor, options: TeacherPredictOptions = {}): Promise<TeacherOutput> {
      const taps = options.taps ?? [];
      for (const t of taps) check(t, 'to tap');
      const names = [output, ...taps];
      const feed = x.dtype === dtype ? x : tf.cast(x, dtype);
      let outs: tf.Tensor[];
      try {
        // One name gives one tensor, several an array.
        const got = useAsync ? await model.executeAsync(feed, names) : tf.tidy(() => model.execute(feed, names));
        outs = Array.isArray(got) ? got : [got];
      } finally {
        if (feed !== x) feed.dispose();
      }
      const result: Record<string, tf.Tensor> = {};
      taps.forEach((t, i) => (result[t] = outs[i + 1]!));
      return { logits: outs[0] as tf.Tensor2D, taps: result };
    },
    tapNames() {
      // Shapes seen on one zero sample, computed once; [] where the graph cannot say.
      if (!tapShapes) {
        let seen: number[][] | undefined;
        try {
          if (!useAsync) {
            seen = tf.tidy(() =>
              [
                model.execute(
                  tf.zeros([1, ...shape], dtype),
                  ops.map((n) => n.name),
                ),
              ]
                .flat()
                .map((t) => t.shape),
            );
          }
        } catch {
          /* shapes stay unknown */
        }
        tapShapes = ops.map((n, i) => ({ name: n.name, shape: seen?.[i]?.slice(1) ?? [] }));
      }
      return tapShapes;
    },
    dispose: () => model.dispose(),
  };
}

/**
 * Loads a graph teacher from a tfjs-converter `model.json` (a path, its folder, or a
 * file:// / http(s):// URL); local files go through `fileSystem` (sha256/size checked).
 */
export async function loadGraphTeacher({
  path,
  ...rest
}: { path: string } & Omit<GraphTeacherOptions, 'model'>): Promise<Teacher> {
  const local = !/^[a-z]+:\/\//.test(path) || path.startsWith('file://');
  const file = resolve(path.replace(/^file:\/\//, ''));
  let model: tf.GraphModel;
  if (local) {
    const artifacts = await fileSystem(file).load!();
    const topology = artifacts.modelTopology as { node?: unknown } | undefined;
    if (artifacts.format === 'layers-model' || !Array.isArray(topology?.node)) {
      throw new UserError(
        `${path} is not a graph model (format ${artifacts.format ?? 'unknown'}, no graph nodes); load a LayersModel with loadLayersTeacher, or convert with tensorflowjs_converter --output_format tfjs_graph_model`,
      );
    }
    try {
      model = await tf.loadGraphModel({ load: async () => artifacts });
    } catch (e) {
      throw new UserError(
        `cannot load graph model ${path}: ${errorLine(e)}; convert it again with tensorflowjs_converter`,
      );
    }
  } else {
    model = await tf.loadGraphModel(path);
  }
  try {
    return graphTeacher({ model, ...rest });
  } catch (e) {
    model.dispose();
    throw e;
  }
}
