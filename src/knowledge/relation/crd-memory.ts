/**
 * CRD's memory bank and NCE loss (Tian, Krishnan & Isola 2020, Eq. 18; as RepDistiller's
 * `ContrastMemory` + `ContrastLoss`). Two banks of N unit rows, one per view: M_s holds
 * student embeddings, M_t teacher embeddings, row n for dataset sample n. For an anchor v
 * (unit, [d]) of sample y, with K negative rows n_1 … n_K drawn uniformly:
 *
 *   P(v, m) = exp(vᵀm / τ) / Z            Z fixed on the first batch: mean exp(vᵀm / τ) · N
 *   nce     = −(1/B) Σ_b [ log( P_pos / (P_pos + K/N + ε) ) + Σ_k log( (K/N) / (P_k + K/N + ε) ) ]
 *
 * The teacher anchor is scored against M_s and the student anchor against M_t; the loss is
 * the sum of both. After the loss, rows y are updated: m ← normalise(μ·m + (1 − μ)·v).
 * Deviations from the reference: the K negatives are drawn once per batch and shared by
 * its anchors (one [B, d]×[d, K] product instead of gathering B×K rows), and the banks
 * start as random unit rows. Negatives come from `Math.random`, which `train()` seeds.
 */
import * as tf from '@tensorflow/tfjs';
import { l2Normalize } from '../feature/common.js';

const EPS = 1e-7;
let created = 0;

export class ContrastMemory {
  readonly student: tf.Variable;
  readonly teacher: tf.Variable;
  /**
   * [Z of the student anchor, Z of the teacher anchor], 0 until the first batch sets them (a variable, so
   * checkpoints keep it).
   */
  readonly normalizers: tf.Variable;

  constructor(
    readonly size: number,
    readonly dim: number,
    seed = 0,
  ) {
    const n = created++;
    const bank = (s: number, name: string) =>
      tf.tidy(() =>
        tf.variable(l2Normalize(tf.randomUniform([size, dim], -1, 1, 'float32', s)), false, `crd_memory_${n}/${name}`),
      );
    this.student = bank(seed, 'student');
    this.teacher = bank(seed + 1, 'teacher');
    this.normalizers = tf.variable(tf.zeros([2]), false, `crd_memory_${n}/normalizers`);
  }

  /** The normalisation constants, once the first batch has set them. */
  get z(): [number, number] | undefined {
    const [zs, zt] = this.normalizers.dataSync();
    return zs! > 0 ? [zs!, zt!] : undefined;
  }

  /** What a checkpoint must keep to resume exactly: both banks and the constants. */
  variables(): tf.Variable[] {
    return [this.student, this.teacher, this.normalizers];
  }

  /** Σ of both views' NCE losses; `indices` are the batch's dataset rows. Call inside a tidy. */
  loss(vs: tf.Tensor2D, vt: tf.Tensor2D, indices: Int32Array, negatives: number, temperature: number): tf.Scalar {
    const idx = tf.tensor1d(indices, 'int32');
    const neg = tf.tensor1d(
      Int32Array.from({ length: negatives }, () => Math.floor(Math.random() * this.size)),
      'int32',
    );
    const scores = (anchor: tf.Tensor2D, bank: tf.Variable) => {
      const pos = anchor.mul(tf.gather(bank, idx)).sum(1).div(temperature).exp() as tf.Tensor1D;
      const others = tf
        .matMul(anchor, tf.gather(bank, neg) as tf.Tensor2D, false, true)
        .div(temperature)
        .exp() as tf.Tensor2D;
      return { pos, others };
    };
    const fromStudent = scores(vs, this.teacher);
    const fromTeacher = scores(vt, this.student);
    let z = this.z;
    if (!z) {
      const mean = (x: { pos: tf.Tensor1D; others: tf.Tensor2D }) =>
        tf
          .concat([x.pos.expandDims(1), x.others], 1)
          .mean()
          .dataSync()[0]! * this.size;
      z = [mean(fromStudent), mean(fromTeacher)];
      this.normalizers.assign(tf.tensor1d(z));
    }
    const noise = negatives / this.size;
    const nce = ({ pos, others }: { pos: tf.Tensor1D; others: tf.Tensor2D }, z: number) => {
      const [p, q] = [pos.div(z), others.div(z)];
      const positive = tf.log(p.div(p.add(noise + EPS))).sum();
      const negative = tf.log(tf.div(noise, q.add(noise + EPS))).sum();
      return positive.add(negative).div(-vs.shape[0]);
    };
    return nce(fromStudent, z[0]).add(nce(fromTeacher, z[1])) as tf.Scalar;
  }

  /** Momentum update of the batch's rows in both banks (no gradient). Call inside a tidy. */
  update(vs: tf.Tensor2D, vt: tf.Tensor2D, indices: Int32Array, momentum: number): void {
    const idx = tf.tensor1d(indices, 'int32');
    for (const [bank, v] of [
      [this.student, vs],
      [this.teacher, vt],
    ] as const) {
      const rows = l2Normalize(
        tf
          .gather(bank, idx)
          .mul(momentum)
          .add(v.mul(1 - momentum)),
      );
      bank.assign(tf.tensorScatterUpdate(bank, idx.expandDims(1), rows));
    }
  }

  dispose(): void {
    tf.dispose(this.variables());
  }
}
