import * as tf from '@tensorflow/tfjs';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { InferenceSession } from 'onnxruntime-node';
import { errorLine, UserError } from '../errors.js';
import type { Teacher, TeacherOutput, TeacherPredictOptions } from './types.js';

export type Layout = 'NHWC' | 'NCHW';

export interface OnnxTeacherOptions {
  /** The `.onnx` file. */
  path: string;
  /** The model input to feed. Default: its first input. */
  inputName?: string;
  /** The declared output holding the logits [batch, classes]. Default: the first output. */
  outputName?: string;
  /**
   * The model's image layout. Batches arrive NHWC (as the data pipeline makes them) and are
   * transposed to NCHW for an NCHW model. Default: inferred from the model's input shape
   * ([N,1,28,28] → NCHW, [N,28,28,1] → NHWC; ambiguous → NCHW, PyTorch's layout).
   */
  layout?: Layout;
  /** The data's sample shape, e.g. [28, 28, 1]; checked against the model, fills dynamic dims. */
  inputShape?: readonly number[];
  /** The data's class count; checked against the logits' width. */
  numClasses?: number;
  /** Declared outputs usable as taps. Default: every declared output but the logits. */
  taps?: string[];
  /** Intra-op threads of the ONNX Runtime session. Default 2 (the machine's cores). */
  threads?: number;
}

type Dims = ReadonlyArray<number | string>;
/** A fixed dimension (ONNX Runtime gives dynamic ones as names, or -1 when unnamed). */
const fixed = (d: number | string | null | undefined): d is number => typeof d === 'number' && d >= 0;
const fmt = (d: Dims | readonly (number | null)[]) => `[${d.map((x) => (fixed(x) ? x : 'N')).join(',')}]`;
const fits = (model: Dims, data: readonly number[]) =>
  model.length === data.length && model.every((d, i) => !fixed(d) || d === data[i]);
const toNhwc = <T>(s: readonly T[]) => [s[1]!, s[2]!, s[0]!];
const toNchw = <T>(s: readonly T[]) => [s[2]!, s[0]!, s[1]!];

/**
 * A frozen ONNX model (e.g. a PyTorch teacher exported with `torch.onnx.export`) run on the
 * CPU by `onnxruntime-node`. `predict` is asynchronous: it reads the batch, feeds it in the
 * model's layout, and returns the logits (and taps: declared graph outputs) as TF.js
 * tensors. Rank-4 taps of an NCHW model come back NHWC, like the student's activations.
 * Mismatches with the data (input name, sample shape, class count) fail here, at load.
 */
export async function loadOnnxTeacher(options: OnnxTeacherOptions): Promise<Teacher> {
  const { inputName, outputName, layout, inputShape, numClasses, taps, threads = 2 } = options;
  const file = resolve(options.path);
  const what = `ONNX model ${options.path}`;
  if (!(await stat(file).catch(() => null))?.isFile()) {
    throw new UserError(`${what} does not exist; check the path, or export the teacher with torch.onnx.export`);
  }
  const ort = await import('onnxruntime-node');
  let session: InferenceSession;
  try {
    session = await ort.InferenceSession.create(file, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      // Idle workers sleep instead of spinning: the trainer shares the cores with them.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
  } catch (e) {
    throw new UserError(`cannot load ${what}: ${errorLine(e)}; give a valid .onnx file`);
  }
  try {
    return await makeTeacher();
  } catch (e) {
    void session.release().catch(() => {});
    throw e;
  }

  async function makeTeacher(): Promise<Teacher> {
    const list = (ms: readonly InferenceSession.ValueMetadata[]) =>
      ms.map((m) => `${m.name} ${m.isTensor ? fmt(m.shape) : '(not a tensor)'}`).join(', ');
    const input =
      inputName === undefined ? session.inputMetadata[0] : session.inputMetadata.find((m) => m.name === inputName);
    if (!input)
      throw new UserError(`${what} has no input \`${inputName}\`; its inputs: ${list(session.inputMetadata)}`);
    if (!input.isTensor || input.type !== 'float32') {
      throw new UserError(
        `${what} input \`${input.name}\` is ${input.isTensor ? input.type : 'not a tensor'}, not float32; export the teacher with a float32 input`,
      );
    }
    const out =
      outputName === undefined ? session.outputMetadata[0] : session.outputMetadata.find((m) => m.name === outputName);
    if (!out)
      throw new UserError(`${what} has no output \`${outputName}\`; its outputs: ${list(session.outputMetadata)}`);
    if (!out.isTensor || out.shape.length !== 2) {
      throw new UserError(
        `${what} output \`${out.name}\` is ${out.isTensor ? fmt(out.shape) : 'not a tensor'}, not logits [batch, classes]; choose outputName among: ${list(session.outputMetadata)}`,
      );
    }

    // Where the data (NHWC samples) meets the model's input.
    const sample = input.shape.slice(1);
    let nchw = false;
    let feedDims: Dims = sample;
    let dataDims: Dims = sample;
    if (sample.length === 3) {
      const nhwcOk = !inputShape || fits(sample, inputShape);
      const nchwOk = !inputShape || (inputShape.length === 3 && fits(sample, toNchw(inputShape)));
      const ch = (d: number | string | undefined) => fixed(d) && d <= 4;
      nchw = layout
        ? layout === 'NCHW'
        : nchwOk && !nhwcOk
          ? true
          : nhwcOk && !nchwOk
            ? false
            : !(ch(sample[2]) && !ch(sample[0]));
      dataDims = nchw ? toNhwc(sample) : sample;
    } else if (
      sample.length === 1 &&
      inputShape?.length === 3 &&
      fixed(sample[0]) &&
      sample[0] === inputShape.reduce((a, b) => a * b, 1)
    ) {
      // A flat model input ([N, H·W·C]) fed image samples: flattened in the model's layout.
      if (inputShape[2]! > 1 && !layout) {
        throw new UserError(
          `${what} takes flat samples ${fmt(sample)} but the data's samples are [${inputShape.join(',')}] with ${inputShape[2]} channels; pass layout 'NCHW' (PyTorch flatten order) or 'NHWC'`,
        );
      }
      nchw = layout === 'NCHW' && inputShape[2]! > 1;
      dataDims = inputShape;
    }
    if (inputShape && !fits(dataDims, inputShape)) {
      const seen = nchw && sample.length === 3 ? ` (NCHW, i.e. ${fmt(dataDims)} NHWC)` : '';
      throw new UserError(
        `${what} input \`${input.name}\` takes samples ${fmt(sample)}${seen} but the data's samples are [${inputShape.join(',')}]; use data shaped for this model or another teacher`,
      );
    }
    if (!inputShape && !dataDims.every(fixed)) {
      throw new UserError(
        `${what} input \`${input.name}\` has dynamic sample dims ${fmt(sample)}; pass inputShape (the data's sample shape)`,
      );
    }
    const shape = inputShape ? [...inputShape] : (dataDims as number[]);
    if (sample.length === 3) feedDims = nchw ? toNchw(shape) : shape;
    else if (sample.length === 1 && shape.length === 3) feedDims = [shape.reduce((a, b) => a * b, 1)];
    else feedDims = shape;
    const fixedBatch = fixed(input.shape[0]) ? input.shape[0] : undefined;

    const declared = session.outputMetadata.filter((m) => m.name !== out.name);
    const tapShape = (m: InferenceSession.ValueMetadata) => {
      const s = (m.isTensor ? m.shape.slice(1) : []).map((d) => (fixed(d) ? d : null));
      return nchw && s.length === 3 ? toNhwc(s) : s;
    };
    const tapList = () => declared.map((m) => `${m.name} ${fmt(tapShape(m))}`).join(', ') || 'none';
    for (const t of taps ?? []) {
      if (!declared.some((m) => m.name === t)) {
        throw new UserError(
          `${what} declares no output \`${t}\` to tap; declared outputs besides the logits: ${tapList()}`,
        );
      }
    }
    const usable = taps ? declared.filter((m) => taps.includes(m.name)) : declared;

    async function run(x: tf.Tensor, names: string[]): Promise<TeacherOutput> {
      const n = x.shape[0]!;
      if (x.rank !== shape.length + 1 || !fits(shape, x.shape.slice(1))) {
        throw new UserError(
          `${what} teacher takes batches [N,${shape.join(',')}] but got ${fmt(x.shape)}; feed the data it was loaded for`,
        );
      }
      if (fixedBatch !== undefined && n !== fixedBatch) {
        throw new UserError(
          `${what} has a fixed batch size ${fixedBatch} but got a batch of ${n}; export it with a dynamic batch axis (torch.onnx.export dynamic_axes) or use batchSize ${fixedBatch}`,
        );
      }
      const feed = tf.tidy(() => {
        const f = x.dtype === 'float32' ? x : x.toFloat();
        return (nchw ? f.transpose([0, 3, 1, 2]) : f).reshape([n, ...(feedDims as number[])]);
      });
      let result: InferenceSession.OnnxValueMapType;
      try {
        const data = (await feed.data()) as Float32Array;
        result = await session.run({ [input!.name]: new ort.Tensor('float32', data, [n, ...(feedDims as number[])]) }, [
          out!.name,
          ...names,
        ]);
      } finally {
        feed.dispose();
      }
      const toTf = (name: string, transpose: boolean): tf.Tensor => {
        const v = result[name]!;
        const t = tf.tensor(Float32Array.from(v.data as ArrayLike<number>), v.dims as number[]);
        v.dispose();
        if (!transpose || t.rank !== 4) return t;
        const nhwc = t.transpose([0, 2, 3, 1]);
        t.dispose();
        return nhwc;
      };
      const logits = toTf(out!.name, false) as tf.Tensor2D;
      const tapped: Record<string, tf.Tensor> = {};
      for (const name of names) tapped[name] = toTf(name, nchw);
      return { logits, taps: tapped };
    }

    // The class count: declared, or seen on one zero sample when the width is dynamic.
    let width = out.shape[1];
    if (!fixed(width)) {
      const x = tf.zeros([fixedBatch ?? 1, ...shape]);
      const o = await run(x, []).finally(() => x.dispose());
      width = o.logits.shape[1];
      o.logits.dispose();
    }
    if (numClasses !== undefined && width !== numClasses) {
      throw new UserError(
        `${what} output \`${out.name}\` has ${width} classes but the data has ${numClasses}; use a teacher trained on the same classes`,
      );
    }
    const classes = width;

    return {
      kind: 'onnx',
      inputShape: shape,
      numClasses: classes,
      async predict(x: tf.Tensor, opts: TeacherPredictOptions = {}): Promise<TeacherOutput> {
        const names = opts.taps ?? [];
        for (const t of names) {
          if (!usable.some((m) => m.name === t)) {
            throw new UserError(
              `ONNX teacher ${options.path} has no tap \`${t}\`; declared outputs usable as taps: ${usable.map((m) => `${m.name} ${fmt(tapShape(m))}`).join(', ') || 'none'}`,
            );
          }
        }
        const o = await run(x, names);
        if (o.logits.rank !== 2 || o.logits.shape[1] !== classes) {
          const got = fmt(o.logits.shape);
          tf.dispose([o.logits, ...Object.values(o.taps)]);
          throw new UserError(
            `${what} returned logits ${got}, not [N,${classes}]; export the teacher with a fixed class count`,
          );
        }
        return o;
      },
      tapNames: () => usable.map((m) => ({ name: m.name, shape: tapShape(m) })),
      dispose: () => void session.release().catch(() => {}),
    };
  }
}
