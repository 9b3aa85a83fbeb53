import type { ByteSizes, Compression, LatencyPair } from './types.js';

export interface CompressionOptions {
  teacher: { params: number; bytes: ByteSizes };
  model: { params: number; bytes: ByteSizes };
}

/**
 * How much smaller `model` is than the teacher: teacher params ÷ model params, and the
 * teacher's float32 bytes ÷ the model's bytes in each encoding (so the teacher's own row
 * shows what quantization alone buys, a student's what distillation + quantization buy).
 */
export function compression({ teacher, model }: CompressionOptions): Compression {
  const t = teacher.bytes.float32;
  return {
    params: ratio(teacher.params, model.params),
    bytes: {
      float32: ratio(t, model.bytes.float32),
      float16: ratio(t, model.bytes.float16),
      uint8: ratio(t, model.bytes.uint8),
    },
  };
}

export interface SpeedupOptions {
  teacher: LatencyPair;
  model: LatencyPair;
}

/** teacher latency ÷ model latency at each batch size (> 1 = faster than the teacher). */
export function speedup({ teacher, model }: SpeedupOptions): LatencyPair {
  return { batch1: ratio(teacher.batch1, model.batch1), batch64: ratio(teacher.batch64, model.batch64) };
}

function ratio(a: number, b: number): number {
  return b > 0 ? a / b : a > 0 ? Infinity : 1;
}
