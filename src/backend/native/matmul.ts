/** BatchMatMul and _FusedMatMul on OpenBLAS sgemm (bias + activation fused into the epilogue). */
import * as tf from '@tensorflow/tfjs';
import type { NativeBackend } from './backend.js';
import { isF32, lastAxisVector, type KernelArgs, type KernelFn } from './util.js';
import { activationCode } from './op-codes.js';

interface MatMulPlan {
  batch: number;
  m: number;
  n: number;
  k: number;
  strideA: number;
  strideB: number;
  outShape: number[];
}

function plan(a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): MatMulPlan | null {
  const aRank = a.shape.length,
    bRank = b.shape.length;
  if (aRank < 2 || bRank < 2) return null;
  const k = transposeA ? a.shape[aRank - 2] : a.shape[aRank - 1];
  const kb = transposeB ? b.shape[bRank - 1] : b.shape[bRank - 2];
  if (k !== kb) return null;
  const m = transposeA ? a.shape[aRank - 1] : a.shape[aRank - 2];
  const n = transposeB ? b.shape[bRank - 2] : b.shape[bRank - 1];
  const outerA = a.shape.slice(0, -2),
    outerB = b.shape.slice(0, -2);
  const batchA = tf.util.sizeFromShape(outerA),
    batchB = tf.util.sizeFromShape(outerB);
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null;
  let outer: number[];
  try {
    outer = tf.backend_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return null;
  }
  const batch = Math.max(batchA, batchB);
  if (tf.util.sizeFromShape(outer) !== batch) return null;
  return {
    batch,
    m,
    n,
    k,
    strideA: batchA === 1 ? 0 : m * k,
    strideB: batchB === 1 ? 0 : k * n,
    outShape: [...outer, m, n],
  };
}

export function makeMatMulKernels(backend: NativeBackend, cpu: Map<string, KernelFn>): Record<string, KernelFn> {
  const addon = backend.addon;
  const batchMatMulCpu = cpu.get('BatchMatMul')!;
  const fusedCpu = cpu.get('_FusedMatMul')!;

  const batchMatMul: KernelFn = (args: KernelArgs) => {
    const { a, b } = args.inputs;
    const transposeA = Boolean(args.attrs?.transposeA),
      transposeB = Boolean(args.attrs?.transposeB);
    const p = isF32(a, b) ? plan(a, b, transposeA, transposeB) : null;
    if (p === null) return batchMatMulCpu(args);
    const out = backend.makeOutputF32(p.outShape);
    addon.matmul(
      backend.f32(a),
      backend.f32(b),
      out.values,
      p.batch,
      p.m,
      p.n,
      p.k,
      transposeA ? 1 : 0,
      transposeB ? 1 : 0,
      p.strideA,
      p.strideB,
    );
    return out.info;
  };

  const fusedMatMul: KernelFn = (args: KernelArgs) => {
    const { a, b, bias, preluActivationWeights } = args.inputs;
    const attrs = args.attrs ?? {};
    const transposeA = Boolean(attrs.transposeA),
      transposeB = Boolean(attrs.transposeB);
    const activation = (attrs.activation as string | undefined) ?? 'linear';
    const act = activationCode(backend, activation);
    const p = isF32(a, b) && act !== undefined ? plan(a, b, transposeA, transposeB) : null;
    if (p === null) return fusedCpu(args);
    const rank = p.outShape.length;
    const biasV = lastAxisVector(backend, bias, p.n, rank);
    const preluV =
      act === backend.ops.activation.prelu ? lastAxisVector(backend, preluActivationWeights, p.n, rank) : undefined;
    if (biasV === null || preluV === null || (act === backend.ops.activation.prelu && preluV === undefined))
      return fusedCpu(args);
    const out = backend.makeOutputF32(p.outShape);
    addon.matmul(
      backend.f32(a),
      backend.f32(b),
      out.values,
      p.batch,
      p.m,
      p.n,
      p.k,
      transposeA ? 1 : 0,
      transposeB ? 1 : 0,
      p.strideA,
      p.strideB,
      biasV ?? null,
      act,
      Number(attrs.leakyreluAlpha ?? 0.2),
      preluV ?? null,
    );
    return out.info;
  };

  return { BatchMatMul: batchMatMul, _FusedMatMul: fusedMatMul };
}
