/* Kernels for the TF.js wasm backend that tfjs-backend-wasm lacks or runs as many passes, built
 * to WebAssembly SIMD (scripts/build-wasm-kernels.mjs). They work on the backend's own heap:
 * the module imports its memory, so a tensor's bytes are read and written where they are.
 *
 * Rules that make sharing that heap safe: no static data, no stack (every value in locals),
 * no allocation. The build checks the first two in the module it writes. */
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))

/* Adam, one pass (as native/src/ew.c's tdn_adam): m' = β1·m + (1-β1)·g, v' = β2·v + (1-β2)·g²,
 * w' = w + (-lr)·(m'/c1) / (sqrt(v'/c2) + ε). The outputs may be their inputs (in-place update). */
EXPORT(adam)
void adam(const float *w, const float *g, const float *m, const float *v, float *wo, float *mo, float *vo, int n,
          float b1, float ob1, float b2, float ob2, float nlr, float eps, float c1, float c2) {
  const float r1 = 1.f / c1, r2 = 1.f / c2;
  const v128_t vb1 = wasm_f32x4_splat(b1), vob1 = wasm_f32x4_splat(ob1), vb2 = wasm_f32x4_splat(b2),
               vob2 = wasm_f32x4_splat(ob2), vnlr = wasm_f32x4_splat(nlr), veps = wasm_f32x4_splat(eps),
               vr1 = wasm_f32x4_splat(r1), vr2 = wasm_f32x4_splat(r2);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t gi = wasm_v128_load(g + i);
    const v128_t m1 = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(m + i), vb1), wasm_f32x4_mul(gi, vob1));
    const v128_t v1 =
        wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(v + i), vb2), wasm_f32x4_mul(wasm_f32x4_mul(gi, gi), vob2));
    const v128_t mh = wasm_f32x4_mul(m1, vr1), vh = wasm_f32x4_mul(v1, vr2);
    const v128_t step = wasm_f32x4_div(mh, wasm_f32x4_add(wasm_f32x4_sqrt(vh), veps));
    const v128_t w1 = wasm_f32x4_add(wasm_f32x4_mul(step, vnlr), wasm_v128_load(w + i));
    wasm_v128_store(mo + i, m1);
    wasm_v128_store(vo + i, v1);
    wasm_v128_store(wo + i, w1);
  }
  for (; i < n; i++) {
    const float gi = g[i];
    const float m1 = m[i] * b1 + gi * ob1, v1 = v[i] * b2 + (gi * gi) * ob2;
    const float mh = m1 * r1, vh = v1 * r2;
    wo[i] = (mh / (__builtin_sqrtf(vh) + eps)) * nlr + w[i];
    mo[i] = m1;
    vo[i] = v1;
  }
}
