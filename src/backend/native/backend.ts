/**
 * The `native` backend: tfjs's CPU backend (same storage, every cpu kernel still works) plus
 * a recycler for the Float32Arrays that native kernels allocate. Fresh large typed
 * arrays cost page faults and zeroing (~100 µs for 600 KB); a training step allocates the
 * same sizes every step, so reuse matters once the math itself is fast.
 *
 * Safety of reuse: only arrays allocated here (`allocF32`) are recycled, only when no data
 * id refers to their buffer any more (views made by cpu kernels such as Slice are counted
 * through `write`/`move`), and never after their contents escaped to user code through
 * `read`/`readSync` (`dataSync()`, `data()`, `bufferSync()`, `array()`).
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.js';
import type { OpCodes } from './op-codes.js';

type DataId = object;
type Values = tf.backend_util.BackendValues;

const DEFAULT_RECYCLE_BYTES = 768 * 1024 * 1024;
const MAX_PER_SIZE = 64;
/** Arrays shorter than this are not recycled (allocation is cheap; tracking would cost more). */
const MIN_RECYCLED = 64;

export class NativeBackend extends tf.MathBackendCPU {
  readonly addon: NativeAddon;
  private readonly free = new Map<number, Float32Array[]>();
  private recycledBytes = 0;
  private readonly maxRecycledBytes: number;
  /** buffers allocated by allocF32 → the full-length array to hand out again */
  private readonly owned = new WeakMap<ArrayBufferLike, Float32Array>();
  /** owned buffer → number of live data ids whose values are on it */
  private readonly refs = new WeakMap<ArrayBufferLike, number>();
  private readonly escaped = new WeakSet<ArrayBufferLike>();
  /** data id → its kernel's side array (attachBytes), and the side arrays free for reuse by size */
  private readonly attached = new Map<DataId, Uint8Array>();
  private readonly freeBytes = new Map<number, Uint8Array[]>();
  recycleHits = 0;
  recycleMisses = 0;

  /** The addon's op codes for each tf kernel (op-codes.ts). */
  readonly ops: OpCodes;

  constructor(addon: NativeAddon, ops: OpCodes) {
    super();
    this.addon = addon;
    this.ops = ops;
    const env = Number(process.env.TFJS_DISTILL_RECYCLE_MB);
    this.maxRecycledBytes = Number.isFinite(env) && env >= 0 ? env * 1024 * 1024 : DEFAULT_RECYCLE_BYTES;
  }

  /** A Float32Array of exactly n elements with arbitrary contents (kernels overwrite all of it). */
  allocF32(n: number): Float32Array {
    const list = this.free.get(n);
    if (list !== undefined && list.length > 0) {
      const a = list.pop()!;
      this.recycledBytes -= a.byteLength;
      this.recycleHits++;
      return a;
    }
    this.recycleMisses++;
    const a = new Float32Array(n);
    if (n >= MIN_RECYCLED) this.owned.set(a.buffer, a);
    return a;
  }

  /** Output tensor info backed by a recycled array. */
  makeOutputF32(
    shape: number[],
    n: number = tf.util.sizeFromShape(shape),
  ): { info: tf.TensorInfo; values: Float32Array } {
    const values = this.allocF32(n);
    const info = this.makeTensorInfo(shape, 'float32', values);
    return { info, values };
  }

  /** The Float32Array of a float32 tensor (no copy, unless its data is not stored as floats). */
  f32(t: tf.TensorInfo): Float32Array {
    const values = this.data.get(t.dataId).values;
    // A float32 tensor can sit on an Int32Array: the cpu backend casts int32 → float32 by
    // relabelling the same data. C code must never read those bytes as floats.
    return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
  }

  /** The Int32Array of an int32 tensor (no copy, unless its data is not stored as int32). */
  i32(t: tf.TensorInfo): Int32Array {
    const values = this.data.get(t.dataId).values;
    return values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>);
  }

  /**
   * True when `t`'s storage can be overwritten in place without anyone noticing: one tensor
   * refers to its data id, its array was allocated here (not handed in by user code), no
   * other data id views the same buffer, and it was never read out to user code.
   */
  isExclusive(t: tf.TensorInfo): boolean {
    if (!this.data.has(t.dataId)) return false;
    const entry = this.data.get(t.dataId);
    if (entry.refCount !== 1 || entry.complexTensorInfos != null) return false;
    const v = entry.values;
    if (!(v instanceof Float32Array)) return false;
    const buf = v.buffer;
    return this.owned.get(buf) === v && this.refs.get(buf) === 1 && !this.escaped.has(buf);
  }

  // Views (e.g. cpu Slice's subarray) of a recycled buffer count too, however short they are:
  // the test is on the buffer's size, not the view's.
  private track(values: Values | undefined): void {
    if (values === undefined || values === null || !ArrayBuffer.isView(values)) return;
    const buf = (values as Float32Array).buffer;
    if (buf.byteLength < MIN_RECYCLED * 4 || !this.owned.has(buf)) return;
    this.refs.set(buf, (this.refs.get(buf) ?? 0) + 1);
  }

  private release(values: Values | undefined): void {
    if (values === undefined || values === null || !ArrayBuffer.isView(values)) return;
    const buf = (values as Float32Array).buffer;
    if (buf.byteLength < MIN_RECYCLED * 4) return;
    const full = this.owned.get(buf);
    if (full === undefined) return;
    const n = (this.refs.get(buf) ?? 1) - 1;
    if (n > 0) {
      this.refs.set(buf, n);
      return;
    }
    this.refs.delete(buf);
    if (this.escaped.has(buf)) {
      this.owned.delete(buf);
      return;
    }
    if (this.recycledBytes + full.byteLength > this.maxRecycledBytes) return;
    let list = this.free.get(full.length);
    if (list === undefined) {
      list = [];
      this.free.set(full.length, list);
    }
    if (list.length >= MAX_PER_SIZE) return;
    list.push(full);
    this.recycledBytes += full.byteLength;
  }

  override write(values: Values, shape: number[], dtype: tf.DataType): DataId {
    const id = super.write(values, shape, dtype);
    this.track(values);
    return id;
  }

  override move(dataId: DataId, values: Values, shape: number[], dtype: tf.DataType, refCount: number): void {
    if (this.data.has(dataId)) this.release(this.data.get(dataId).values);
    super.move(dataId, values, shape, dtype, refCount);
    this.track(values);
  }

  override readSync(dataId: DataId): Values {
    if (this.data.has(dataId)) {
      const v = this.data.get(dataId).values;
      if (v !== undefined && v !== null && ArrayBuffer.isView(v)) this.escaped.add((v as Float32Array).buffer);
    }
    return super.readSync(dataId);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const entry = this.data.has(dataId) ? this.data.get(dataId) : undefined;
    const removed = super.disposeData(dataId, force);
    if (entry !== undefined && !this.data.has(dataId)) {
      this.release(entry.values);
      this.detachBytes(dataId);
    }
    return removed;
  }

  /**
   * A Uint8Array of n bytes (arbitrary contents) that a kernel keeps beside an output it made
   * (a max pool's argmax for its gradient), found again with `attachedBytes` while that output
   * lives, and recycled once it is disposed.
   */
  attachBytes(dataId: DataId, n: number): Uint8Array {
    const bytes = this.freeBytes.get(n)?.pop() ?? new Uint8Array(n);
    this.attached.set(dataId, bytes);
    return bytes;
  }

  attachedBytes(dataId: DataId): Uint8Array | undefined {
    return this.attached.get(dataId);
  }

  /** Recycles the side array of dataId, if it has one. */
  detachBytes(dataId: DataId): void {
    const bytes = this.attached.get(dataId);
    if (bytes === undefined) return;
    this.attached.delete(dataId);
    const list = this.freeBytes.get(bytes.length) ?? [];
    this.freeBytes.set(bytes.length, list);
    if (list.length < MAX_PER_SIZE) list.push(bytes);
  }

  /** Drops every recycled array (they are garbage collected). */
  clearRecycled(): void {
    this.free.clear();
    this.freeBytes.clear();
    this.recycledBytes = 0;
  }

  recyclerStats(): { recycledBytes: number; hits: number; misses: number } {
    return { recycledBytes: this.recycledBytes, hits: this.recycleHits, misses: this.recycleMisses };
  }

  override dispose(): void {
    this.clearRecycled();
    super.dispose();
  }
}
