/**
 * The strong view of a batch of images, for terms that learn from two views (`mlkd`): per image,
 * a shift of up to ±`shift` pixels (zero fill), a horizontal flip with probability ½, a cutout
 * (a zeroed square of `cutout` × the height, at a random centre, clipped at the border) and a
 * contrast change around the image's mean by a factor in [1 − `contrast`, 1 + `contrast`].
 * A RandAugment-like policy for small grayscale or colour images; every draw comes from `rng`,
 * so a resumed run sees the same views.
 */
import type { Rng } from './rng.js';

export interface StrongViewOptions {
  shift?: number;
  cutout?: number;
  contrast?: number;
}

export function strongView(
  x: Float32Array,
  [b, h, w, c]: readonly [number, number, number, number],
  rng: Rng,
  { shift = 4, cutout = 0.35, contrast = 0.4 }: StrongViewOptions = {},
): Float32Array {
  const out = new Float32Array(x.length);
  const size = h * w * c;
  const side = Math.round(cutout * h);
  for (let n = 0; n < b; n++) {
    const dy = rng.nextInt(2 * shift + 1) - shift;
    const dx = rng.nextInt(2 * shift + 1) - shift;
    const flip = rng.nextFloat() < 0.5;
    const [cy, cx] = [rng.nextInt(h), rng.nextInt(w)];
    const factor = 1 + contrast * (2 * rng.nextFloat() - 1);
    const base = n * size;
    let mean = 0;
    for (let k = 0; k < size; k++) mean += x[base + k]!;
    mean /= size;
    for (let i = 0; i < h; i++) {
      const si = i - dy;
      for (let j = 0; j < w; j++) {
        const sj = flip ? w - 1 - (j - dx) : j - dx;
        const cut = Math.abs(i - cy) * 2 < side && Math.abs(j - cx) * 2 < side;
        for (let k = 0; k < c; k++) {
          const inside = si >= 0 && si < h && sj >= 0 && sj < w;
          const v = inside && !cut ? x[base + (si * w + sj) * c + k]! : 0;
          out[base + (i * w + j) * c + k] = inside && !cut ? (v - mean) * factor + mean : 0;
        }
      }
    }
  }
  return out;
}
