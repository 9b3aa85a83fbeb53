/**
 * `reviewkd` — Chen, Liu, Zhao & Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021.
 *
 * Student taps S_1…S_n and teacher taps T_1…T_n, shallow to deep. From the deepest stage up,
 * attention-based fusion (ABF) lets each stage review the student's deeper ones:
 *   x_n = BN(conv1×1(S_n)),   x_i = a ⊙ BN(conv1×1(S_i)) + b ⊙ up(x_{i+1}),
 *   [a, b] = σ(conv1×1([BN(conv1×1(S_i)), up(x_{i+1})]))       two attention maps
 *   F_i = BN(conv3×3(x_i))                                      on T_i's size and channels
 *   reviewkd = β · λ · Σ_i HCL(F_i, T_i)
 *   HCL(F, T) = (mse(F, T) + Σ_{l ∈ 4,2,1; l < H} 2^{−k_l} mse(P_l F, P_l T)) / (1 + Σ 2^{−k_l})
 * `midChannels` wide (x_i); up: nearest resize to S_i's size, and x_i to T_i's before conv3×3;
 * P_l: adaptive average pooling to l×l (k_l = 1, 2, 3); BN with the batch's statistics (the
 * ABFs exist only in training, never in the exported student). Vector taps (`features`) are
 * 1×1 maps. λ = min((epoch + 1) / `warmupEpochs`, 1). Defaults as mdistiller's CIFAR-100
 * setting: β = 1, 64 mid channels, warm-up 20 epochs (of 240; scale it to your schedule),
 * trained beside `ce`.
 * When it helps: conv students several stages deep; the review paths carry deep student
 * features to shallow teacher stages. It costs an ABF per stage in training time.
 * Loss name: `reviewkd`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { UserError } from '../../errors.js';
import { parseOptions } from '../../options.js';
import { adaptiveAvgPool, initVariable, uniqueName } from '../adapters.js';
import type { KnowledgeTerm } from '../types.js';
import { readPair, tapShape, tapTerm } from './common.js';

const layers = z.array(z.string().min(1)).min(1);

/** The options of `reviewkd`: the one definition of their names, types, ranges and defaults. */
export const reviewkdOptions = z.strictObject({
  /** Student layers, shallow to deep ([H, W, C] maps or vectors). Required. */
  student: layers,
  /** Teacher layers, one per student layer. Required. */
  teacher: layers,
  /** Channels of the fused features. Default 64. */
  midChannels: z.int().min(1).default(64),
  /** Weight β ≥ 0. Default 1. */
  beta: z.number().min(0).default(1),
  /** Epochs over which the weight ramps up linearly (0: none). Default 20. */
  warmupEpochs: z.int().min(0).default(20),
  /** Seed of the ABFs' initializers. Default 0. */
  seed: z.int().min(0).default(0),
});
export type ReviewkdOptions = z.input<typeof reviewkdOptions>;

type Map3 = [number, number, number];
interface Stage {
  from: Map3;
  to: Map3;
  vars: Record<string, tf.Variable>;
}

const as3 = (sh: number[]): Map3 => (sh.length === 1 ? [1, 1, sh[0]!] : (sh as Map3));
const as4 = (x: tf.Tensor) => (x.rank === 4 ? x : x.reshape([x.shape[0]!, 1, 1, -1])) as tf.Tensor4D;
const batchNorm = (x: tf.Tensor4D, gamma: tf.Variable, beta: tf.Variable): tf.Tensor4D => {
  const { mean, variance } = tf.moments(x, [0, 1, 2]);
  return tf.batchNorm(x, mean, variance, beta, gamma, 1e-5) as tf.Tensor4D;
};
/**
 * Nearest resize as PyTorch's `interpolate(mode='nearest')` (source ⌊i·H/h⌋). Upsampling by whole
 * factors: resizeNearestNeighbor with the sum-pooling gradient given here (tfjs-backend-cpu
 * 4.22's own reads dy at the input's batch stride: wrong for a batch of more than one); anything
 * else gathers (exact, slow gradient on large maps).
 */
function resize(x: tf.Tensor4D, [h, w]: Map3): tf.Tensor4D {
  const [, H, W] = x.shape;
  if (H === h && W === w) return x;
  if (h % H === 0 && w % W === 0) {
    const [fh, fw] = [h / H, w / W];
    const up = tf.customGrad(((input: tf.Tensor4D) => ({
      value: tf.image.resizeNearestNeighbor(input, [h, w]),
      gradFunc: (dy: tf.Tensor4D) => tf.avgPool(dy, [fh, fw], [fh, fw], 'valid').mul(fh * fw),
    })) as Parameters<typeof tf.customGrad>[0]);
    return up(x) as tf.Tensor4D;
  }
  const source = (n: number, N: number) => Array.from({ length: n }, (_, i) => Math.floor((i * N) / n));
  return tf.gather(tf.gather(x, source(h, H), 1), source(w, W), 2);
}

function hcl(f: tf.Tensor4D, t: tf.Tensor4D): tf.Scalar {
  let loss = tf.losses.meanSquaredError(t, f);
  let [weight, total] = [1, 1];
  for (const l of [4, 2, 1].filter((l) => l < f.shape[1])) {
    weight /= 2;
    total += weight;
    loss = loss.add(tf.losses.meanSquaredError(adaptiveAvgPool(t, l), adaptiveAvgPool(f, l)).mul(weight));
  }
  return loss.div(total) as tf.Scalar;
}

export function reviewkdTerm(options: ReviewkdOptions): KnowledgeTerm {
  const key = 'reviewkd';
  const o = parseOptions('knowledge term `reviewkd`', reviewkdOptions, options);
  if (o.student.length !== o.teacher.length)
    throw new UserError(
      `knowledge term \`reviewkd\`: ${o.student.length} student layers but ${o.teacher.length} teacher layers; give one teacher layer per student layer`,
    );
  const pairs = o.student.map((s, i) => ({ student: s, teacher: o.teacher[i]! }));
  let stages: Stage[] = [];
  let lambda = o.warmupEpochs > 0 ? 1 / o.warmupEpochs : 1;
  const dispose = () => stages.forEach((s) => Object.values(s.vars).forEach((v) => v.dispose()));

  const term = tapTerm(
    key,
    pairs,
    (inputs) => {
      let residual: tf.Tensor4D | undefined;
      let total = tf.scalar(0);
      for (let i = pairs.length - 1; i >= 0; i--) {
        const { s, t } = readPair(key, inputs, pairs[i]!);
        const { from, to, vars: v } = stages[i]!;
        let x = batchNorm(tf.conv2d(as4(s), v.conv1 as tf.Tensor4D, 1, 'same'), v.gamma1!, v.beta1!);
        if (residual) {
          const y = resize(residual, from);
          // [a, b] = σ(conv1×1 of [x, y] concatenated): per output map, the sum of the kernel's
          // two input halves (tfjs-cpu concatenates and slices channels element by element)
          const gate = (k: number) => {
            const kernel = (from: number) => v.att!.slice([0, 0, from, k], [1, 1, x.shape[3], 1]) as tf.Tensor4D;
            const z = tf.conv2d(x, kernel(0), 1, 'same').add(tf.conv2d(y, kernel(x.shape[3]), 1, 'same'));
            return tf.sigmoid(z.add(v.attBias!.slice([k], [1])));
          };
          x = x.mul(gate(0)).add(y.mul(gate(1))) as tf.Tensor4D;
        }
        residual = resize(x, to);
        const f = batchNorm(tf.conv2d(residual, v.conv2 as tf.Tensor4D, 1, 'same'), v.gamma2!, v.beta2!);
        total = total.add(hcl(f, as4(t)));
      }
      return { reviewkd: total.mul(o.beta * lambda) as tf.Scalar };
    },
    {
      prepare(shapes) {
        dispose();
        stages = pairs.map((p, i) => {
          const [from, to] = [
            as3(tapShape(key, shapes, 'student', p.student)),
            as3(tapShape(key, shapes, 'teacher', p.teacher)),
          ];
          const [m, cs, ct, seed] = [o.midChannels, from[2], to[2], o.seed + 10 * i];
          const ones = (n: number) => tf.variable(tf.ones([n]));
          const zeros = (n: number) => tf.variable(tf.zeros([n]));
          const vars: Record<string, tf.Variable> = {
            conv1: initVariable('kernel', [1, 1, cs, m], cs, seed, uniqueName(`${key}_conv1`)),
            gamma1: ones(m),
            beta1: zeros(m),
            conv2: initVariable('kernel', [3, 3, m, ct], 9 * m, seed + 1, uniqueName(`${key}_conv2`)),
            gamma2: ones(ct),
            beta2: zeros(ct),
          };
          if (i < pairs.length - 1) {
            const att = uniqueName(`${key}_att`);
            vars.att = initVariable('kernel', [1, 1, 2 * m, 2], 2 * m, seed + 2, att);
            vars.attBias = initVariable('bias', [2], 2 * m, seed + 2, att);
          }
          return { from, to, vars };
        });
      },
      variables: () => stages.flatMap((s) => Object.values(s.vars)),
      dispose,
    },
  );
  return {
    ...term,
    onEpochBegin: (epoch) => {
      lambda = o.warmupEpochs > 0 ? Math.min((epoch + 1) / o.warmupEpochs, 1) : 1;
    },
    describeState: () => ({ lambda }),
  };
}
