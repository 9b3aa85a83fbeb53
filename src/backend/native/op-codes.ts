/**
 * The native addon's op codes, by name. The numbers are defined once, in C (the X-macro tables
 * of native/src/ew.h and common.h); the addon's `opCodes()` hands them over by name and these
 * tables say which tf kernel (or fused activation) runs which C op. No number is copied by
 * hand: a name missing on either side makes the backend refuse to register, with the reason.
 */

/** tf unary kernel → C op of `TDN_UNARY_OPS`. */
export const UNARY_KERNELS = {
  Relu: 'RELU',
  Relu6: 'RELU6',
  Exp: 'EXP',
  Log: 'LOG',
  Neg: 'NEG',
  Sqrt: 'SQRT',
  Rsqrt: 'RSQRT',
  Square: 'SQUARE',
  Abs: 'ABS',
  Sigmoid: 'SIGMOID',
  Tanh: 'TANH',
  Step: 'STEP',
  Reciprocal: 'RECIPROCAL',
  Elu: 'ELU',
  LeakyRelu: 'LEAKYRELU',
  Softplus: 'SOFTPLUS',
  Log1p: 'LOG1P',
  Expm1: 'EXPM1',
  ClipByValue: 'CLIP',
} as const;

/** tf broadcasting binary kernel → C op of `TDN_BINARY_OPS`. */
export const BINARY_KERNELS = {
  Add: 'ADD',
  Sub: 'SUB',
  Multiply: 'MUL',
  RealDiv: 'DIV',
  Maximum: 'MAX',
  Minimum: 'MIN',
  SquaredDifference: 'SQDIFF',
  Pow: 'POW',
} as const;

/** tf reduction kernel → C op of `TDN_REDUCE_OPS`. */
export const REDUCE_KERNELS = { Sum: 'SUM', Mean: 'MEAN', Max: 'MAX', Min: 'MIN', Prod: 'PROD' } as const;

/** tf fused activation (`_FusedMatMul`, `FusedConv2D`…) → C activation of `TDN_ACTIVATIONS`. */
export const FUSED_ACTIVATIONS = {
  linear: 'LINEAR',
  relu: 'RELU',
  relu6: 'RELU6',
  prelu: 'PRELU',
  elu: 'ELU',
  leakyrelu: 'LEAKYRELU',
  sigmoid: 'SIGMOID',
} as const;

/** Layer op of an inference plan (src/backend/inference-plan.ts) → C op of `TDN_PLAN_OPS`. */
export const PLAN_OPS = {
  conv: 'CONV',
  depthwise: 'DWCONV',
  pool: 'POOL',
  dense: 'DENSE',
  globalAveragePool: 'GAP',
  scaleShift: 'SCALE_SHIFT',
  activation: 'ACT',
  softmax: 'SOFTMAX',
} as const;

/** C ops that no tf kernel maps to, on purpose. */
export const C_ONLY_OPS: Readonly<Record<keyof AddonOpCodes, readonly string[]>> = {
  unary: ['SCALE_SHIFT'],
  binary: [],
  reduce: [],
  activation: [],
  plan: [],
};

/** What the addon's `opCodes()` returns: each table's C names and their codes. */
export interface AddonOpCodes {
  unary: Record<string, number>;
  binary: Record<string, number>;
  reduce: Record<string, number>;
  activation: Record<string, number>;
  plan: Record<string, number>;
}

type Codes<T> = { readonly [K in keyof T]: number };

/** The codes every native kernel uses, keyed by tf name. */
export interface OpCodes {
  unary: Codes<typeof UNARY_KERNELS>;
  binary: Codes<typeof BINARY_KERNELS>;
  reduce: Codes<typeof REDUCE_KERNELS>;
  activation: Codes<typeof FUSED_ACTIVATIONS>;
  plan: Codes<typeof PLAN_OPS>;
}

const TABLES = {
  unary: UNARY_KERNELS,
  binary: BINARY_KERNELS,
  reduce: REDUCE_KERNELS,
  activation: FUSED_ACTIVATIONS,
  plan: PLAN_OPS,
};

/**
 * Resolves every mapping against the addon's tables. Throws naming each tf kernel whose C op is
 * missing and each C op that nothing maps (and is not in `C_ONLY_OPS`): either side changed alone.
 */
export function resolveOpCodes(table: AddonOpCodes): OpCodes {
  const problems: string[] = [];
  const resolved: Record<string, Record<string, number>> = {};
  for (const [kind, map] of Object.entries(TABLES) as Array<[keyof AddonOpCodes, Record<string, string>]>) {
    const codes = table[kind] ?? {};
    resolved[kind] = {};
    for (const [tfName, cName] of Object.entries(map)) {
      const code = codes[cName];
      if (typeof code === 'number') resolved[kind][tfName] = code;
      else problems.push(`${kind} ${tfName} → ${cName} is not in the addon`);
    }
    const used = new Set([...Object.values(map), ...C_ONLY_OPS[kind]]);
    for (const cName of Object.keys(codes)) if (!used.has(cName)) problems.push(`${kind} C op ${cName} has no mapping`);
  }
  if (problems.length > 0) throw new Error(`native op tables differ: ${problems.join('; ')}`);
  return resolved as unknown as OpCodes;
}

/** The C code of a tf fused activation, or undefined when the addon has none (the kernel falls back). */
export function activationCode(backend: { ops: OpCodes }, activation: string): number | undefined {
  return Object.hasOwn(FUSED_ACTIVATIONS, activation)
    ? backend.ops.activation[activation as keyof typeof FUSED_ACTIVATIONS]
    : undefined;
}
