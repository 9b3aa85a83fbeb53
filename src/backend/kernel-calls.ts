import * as tf from '@tensorflow/tfjs';

type Info = tf.TensorInfo;
type Attrs = Record<string, unknown>;

/**
 * Calls a backend's kernels directly, at the TensorInfo level, so a kernel can be
 * composed from other kernels without re-entering the engine (no tape, no tracking).
 * Every result is owned by the caller: release it with `free`.
 */
export class KernelCalls {
  private readonly funcs = new Map<string, tf.KernelFunc>();

  constructor(
    readonly backendName: string,
    private readonly backend: tf.KernelBackend,
    overrides: Record<string, tf.KernelFunc> = {},
  ) {
    for (const [name, func] of Object.entries(overrides)) this.funcs.set(name, func);
  }

  run(name: string, inputs: Record<string, Info> | Info[], attrs: Attrs = {}): Info {
    let func = this.funcs.get(name);
    if (!func) {
      const config = tf.getKernel(name, this.backendName);
      if (!config) throw new Error(`kernel ${name} is not registered for ${this.backendName}`);
      func = config.kernelFunc;
      this.funcs.set(name, func);
    }
    const out = func({
      inputs: inputs as unknown as tf.NamedTensorInfoMap,
      backend: this.backend,
      attrs: attrs as tf.NamedAttrMap,
    });
    return Array.isArray(out) ? out[0]! : out;
  }

  free(...infos: Info[]): void {
    for (const info of infos) this.backend.disposeData(info.dataId);
  }

  transpose(x: Info, perm: number[]): Info {
    return this.run('Transpose', { x }, { perm });
  }

  reshape(x: Info, shape: number[]): Info {
    return this.run('Reshape', { x }, { shape });
  }

  slice(x: Info, begin: number[], size: number[]): Info {
    return this.run('Slice', { x }, { begin, size });
  }

  /** Slices to `size` only when x is larger; otherwise returns x itself (not a copy). */
  cropTo(x: Info, size: number[]): Info {
    if (x.shape.every((d, i) => d === size[i])) return x;
    const out = this.slice(
      x,
      size.map(() => 0),
      size,
    );
    this.free(x);
    return out;
  }

  pad(x: Info, paddings: Array<[number, number]>): Info {
    return this.run('PadV2', { x }, { paddings, constantValue: 0 });
  }

  reverse(x: Info, dims: number[]): Info {
    return this.run('Reverse', { x }, { dims });
  }

  /** Inserts (s−1) zeros between rows and columns of an NHWC tensor (transposed-conv input). */
  dilateSpatial(x: Info, strideH: number, strideW: number): Info {
    if (strideH === 1 && strideW === 1) return this.reshape(x, x.shape);
    const [b, h, w, c] = x.shape as [number, number, number, number];
    const r6 = this.reshape(x, [b, h, 1, w, 1, c]);
    const padded = this.pad(r6, [
      [0, 0],
      [0, 0],
      [0, strideH - 1],
      [0, 0],
      [0, strideW - 1],
      [0, 0],
    ]);
    const r4 = this.reshape(padded, [b, h * strideH, w * strideW, c]);
    const out = this.slice(r4, [0, 0, 0, 0], [b, (h - 1) * strideH + 1, (w - 1) * strideW + 1, c]);
    this.free(r6, padded, r4);
    return out;
  }
}
