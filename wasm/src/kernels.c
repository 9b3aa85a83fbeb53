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

/* One tile of a product, 4 rows × 8 columns of C in registers over K:
 *   c[r][0..8] = (accumulate ? c[r] : bias ? bias : 0) + Σ_k a[r·rs + k·ks] · b[k·ldb + 0..8]   (then ReLU)
 * for r < rows: element (r, k) of A at a[r·rs + k·ks] serves A's rows (rs = lda, ks = 1: x·W) and
 * its columns (rs = 1, ks = lda: xᵀ·dy); rows past `rows` are neither read nor written. */
static inline __attribute__((always_inline)) void tile(int K, const float *a, int rs, int ks, const float *b, int ldb,
                                                       float *c, int ldc, int rows, int accumulate, const float *bias,
                                                       int relu) {
  v128_t c00 = wasm_f32x4_splat(0.f), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  const float *a0 = a, *a1 = a + (rows > 1 ? rs : 0), *a2 = a + (rows > 2 ? 2 * rs : 0), *a3 = a + (rows > 3 ? 3 * rs : 0);
  for (int k = 0; k < K; k++) {
    const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
    const v128_t x0 = wasm_v128_load32_splat(a0), x1 = wasm_v128_load32_splat(a1);
    const v128_t x2 = wasm_v128_load32_splat(a2), x3 = wasm_v128_load32_splat(a3);
    c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(x0, b0));
    c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(x0, b1));
    c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(x1, b0));
    c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(x1, b1));
    c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(x2, b0));
    c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(x2, b1));
    c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(x3, b0));
    c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(x3, b1));
    a0 += ks, a1 += ks, a2 += ks, a3 += ks;
    b += ldb;
  }
  const v128_t zero = wasm_f32x4_splat(0.f);
  const v128_t bias0 = bias ? wasm_v128_load(bias) : zero, bias1 = bias ? wasm_v128_load(bias + 4) : zero;
#define STORE(r, v0, v1)                                                                              \
  if (r < rows) {                                                                                     \
    float *cr = c + r * ldc;                                                                          \
    const v128_t s0 = wasm_f32x4_add(v0, accumulate ? wasm_v128_load(cr) : bias0);                     \
    const v128_t s1 = wasm_f32x4_add(v1, accumulate ? wasm_v128_load(cr + 4) : bias1);                 \
    wasm_v128_store(cr, relu ? wasm_f32x4_max(s0, zero) : s0);                                        \
    wasm_v128_store(cr + 4, relu ? wasm_f32x4_max(s1, zero) : s1);                                    \
  }
  STORE(0, c00, c01)
  STORE(1, c10, c11)
  STORE(2, c20, c21)
  STORE(3, c30, c31)
#undef STORE
}

/* K in blocks whose rows of A and B stay in L2 while every tile of C passes over them */
static int k_block(int M, int N) {
  const int kb = (256 * 1024) / (4 * (M + N));
  return kb < 16 ? 16 : kb;
}

/* C[M,N] (+)= Aᵀ·B with A [K,M] and B [K,N] row-major: a weight gradient, xᵀ·dy, whose K (the
 * batch's positions) is long. N a multiple of 8. */
static void gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
                    int accumulate) {
  const int kb = k_block(M, N);
  for (int k0 = 0; k0 < K; k0 += kb) {
    const int kn = K - k0 < kb ? K - k0 : kb, acc = accumulate || k0 > 0;
    const float *a = A + k0 * lda, *b = B + k0 * ldb;
    for (int i = 0; i < M; i += 4)
      for (int j = 0; j < N; j += 8)
        tile(kn, a + i, 1, lda, b + j, ldb, C + i * ldc + j, ldc, M - i < 4 ? M - i : 4, acc, 0, 0);
  }
}

/* The filter gradient of a 2-D convolution (NHWC input x, dy [B,OH,OW,CO]) over the output
 * positions p0 ≤ p < p1 (p = (b·OH + oh)·OW + ow), written to dw [KH·KW·C, CO] (one part's sum):
 *   dw[(kh·KW + kw)·C + c][co] = Σ_p x[b, oh·sh + kh·dh − top, ow·sw + kw·dw − left, c] · dy[p][co]
 * It is Aᵀ·dy with A = im2col(x), built a block of positions at a time into `rows` (k_block(M, CO)
 * rows of M = KH·KW·C floats, plus 4), so that A never exists whole. CO must be a multiple of 8. */
EXPORT(conv2d_filter_grad)
void conv2d_filter_grad(const float *x, const float *dy, float *dw, float *rows, int p0, int p1, int H, int W, int C,
                        int OH, int OW, int CO, int KH, int KW, int sh, int sw, int dh, int dwd, int top, int left) {
  const int M = KH * KW * C, kb = k_block(M, CO);
  for (int q0 = p0; q0 < p1; q0 += kb) {
    const int kn = p1 - q0 < kb ? p1 - q0 : kb;
    for (int q = 0; q < kn; q++) {
      const int p = q0 + q, ow = p % OW, oh = (p / OW) % OH, b = p / (OW * OH);
      float *row = rows + q * M;
      for (int kh = 0; kh < KH; kh++) {
        const int ih = oh * sh + kh * dh - top;
        for (int kw = 0; kw < KW; kw++) {
          const int iw = ow * sw + kw * dwd - left;
          float *dst = row + (kh * KW + kw) * C;
          if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
            for (int c = 0; c < C; c++) dst[c] = 0.f;
          } else {
            const float *src = x + ((b * H + ih) * W + iw) * C;
            for (int c = 0; c < C; c++) dst[c] = src[c];
          }
        }
      }
    }
    gemm_tn(M, CO, kn, rows, M, dy + q0 * CO, CO, dw, CO, q0 > p0);
  }
  if (p1 <= p0)
    for (int i = 0; i < M * CO; i++) dw[i] = 0.f;
}

/* y[i] += x[i] for i < n */
EXPORT(add_into)
void add_into(float *y, const float *x, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(y + i), wasm_v128_load(x + i)));
  for (; i < n; i++) y[i] += x[i];
}

/* The floats conv2d_filter_grad's `rows` holds for M = KH·KW·C and CO output channels. */
EXPORT(conv2d_filter_grad_rows)
int conv2d_filter_grad_rows(int M, int CO) { return k_block(M, CO) * M + 4; }

/* dx of a max pool for samples b0 ≤ b < b1 (NHWC; dx zeroed here): each window's gradient goes to
 * the first position holding the window's maximum (row-major within the window; a later value
 * wins only when greater), as tfjs-backend-cpu and PyTorch route it; overlapping windows add up.
 * Four channels at a time: the compare and select run as vectors, the four adds as scalars. */
EXPORT(max_pool_grad)
void max_pool_grad(const float *dy, const float *x, float *dx, int b0, int b1, int H, int W, int C, int OH, int OW,
                   int fh, int fw, int sh, int sw, int top, int left) {
  const int plane = H * W * C;
  __builtin_memset(dx + b0 * plane, 0, sizeof(float) * (unsigned)((b1 - b0) * plane));
  for (int b = b0; b < b1; b++) {
    const float *xb = x + b * plane;
    float *dxb = dx + b * plane;
    for (int oh = 0; oh < OH; oh++) {
      const int h0 = oh * sh - top < 0 ? 0 : oh * sh - top;
      const int h1 = oh * sh - top + fh > H ? H : oh * sh - top + fh;
      for (int ow = 0; ow < OW; ow++) {
        const int w0 = ow * sw - left < 0 ? 0 : ow * sw - left;
        const int w1 = ow * sw - left + fw > W ? W : ow * sw - left + fw;
        if (h0 >= h1 || w0 >= w1) continue;
        const float *g = dy + ((b * OH + oh) * OW + ow) * C;
        int c = 0;
        for (; c + 4 <= C; c += 4) {
          const int first = (h0 * W + w0) * C + c;
          v128_t best = wasm_v128_load(xb + first), at = wasm_i32x4_splat(first);
          for (int i = h0; i < h1; i++)
            for (int j = w0; j < w1; j++) {
              const int p = (i * W + j) * C + c;
              const v128_t v = wasm_v128_load(xb + p), gt = wasm_f32x4_gt(v, best);
              best = wasm_v128_bitselect(v, best, gt);
              at = wasm_v128_bitselect(wasm_i32x4_splat(p), at, gt);
            }
          dxb[wasm_i32x4_extract_lane(at, 0)] += g[c];
          dxb[wasm_i32x4_extract_lane(at, 1) + 1] += g[c + 1];
          dxb[wasm_i32x4_extract_lane(at, 2) + 2] += g[c + 2];
          dxb[wasm_i32x4_extract_lane(at, 3) + 3] += g[c + 3];
        }
        for (; c < C; c++) {
          int at = (h0 * W + w0) * C + c;
          float best = xb[at];
          for (int i = h0; i < h1; i++)
            for (int j = w0; j < w1; j++) {
              const int p = (i * W + j) * C + c;
              if (xb[p] > best) best = xb[p], at = p;
            }
          dxb[at] += g[c];
        }
      }
    }
  }
}

/* out[c] = Σ_r x[r·cols + c] for columns c0 ≤ c < c1, in row order (the same sums whatever the split). */
EXPORT(sum_rows)
void sum_rows(const float *x, float *out, int rows, int cols, int c0, int c1) {
  int c = c0;
  for (; c + 16 <= c1; c += 16) {
    v128_t s0 = wasm_f32x4_splat(0.f), s1 = s0, s2 = s0, s3 = s0;
    for (int r = 0; r < rows; r++) {
      const float *p = x + r * cols + c;
      s0 = wasm_f32x4_add(s0, wasm_v128_load(p));
      s1 = wasm_f32x4_add(s1, wasm_v128_load(p + 4));
      s2 = wasm_f32x4_add(s2, wasm_v128_load(p + 8));
      s3 = wasm_f32x4_add(s3, wasm_v128_load(p + 12));
    }
    wasm_v128_store(out + c, s0);
    wasm_v128_store(out + c + 4, s1);
    wasm_v128_store(out + c + 8, s2);
    wasm_v128_store(out + c + 12, s3);
  }
  for (; c + 4 <= c1; c += 4) {
    v128_t s = wasm_f32x4_splat(0.f);
    for (int r = 0; r < rows; r++) s = wasm_f32x4_add(s, wasm_v128_load(x + r * cols + c));
    wasm_v128_store(out + c, s);
  }
  for (; c < c1; c++) {
    float s = 0.f;
    for (int r = 0; r < rows; r++) s += x[r * cols + c];
    out[c] = s;
  }
}

/* C[:, j0..j1] = A·B (+ bias per column) (then ReLU), A [M,K] and B [K,N] row-major: the forward
 * product of a layer being trained, whose B (the weights) is new every step. j1 − j0 a multiple of 8. */
EXPORT(gemm_nn)
void gemm_nn(int M, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc, const float *bias,
             int relu, int j0, int j1) {
  const int kb = k_block(M, j1 - j0);
  for (int k0 = 0; k0 < K; k0 += kb) {
    const int kn = K - k0 < kb ? K - k0 : kb, first = k0 == 0, last = k0 + kn >= K;
    for (int i = 0; i < M; i += 4)
      for (int j = j0; j < j1; j += 8)
        tile(kn, A + i * lda + k0, lda, 1, B + k0 * ldb + j, ldb, C + i * ldc + j, ldc, M - i < 4 ? M - i : 4, !first,
             first && bias ? bias + j : 0, last && relu);
  }
}

/* C[i0..i1, :] of Aᵀ·B (gemm_tn) for a split over C's rows: A [K,M], B [K,N], N a multiple of 8. */
EXPORT(gemm_tn_rows)
void gemm_tn_rows(int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc, int i0, int i1) {
  gemm_tn(i1 - i0, N, K, A + i0, lda, B, ldb, C + i0 * ldc, ldc, 0);
}

/* C[i, j] = Σ_k A[i,k]·B[j,k] for rows i0 ≤ i < i1 (A [M,K], B [N,K] row-major: dy·Wᵀ, a layer's
 * input gradient): 2 rows of A × 4 rows of B as dot products, four k at a time. */
EXPORT(gemm_nt)
void gemm_nt(int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc, int i0, int i1) {
  const int K4 = K & ~3;
  for (int i = i0; i < i1; i += 2) {
    const float *a0 = A + i * lda, *a1 = i + 1 < i1 ? a0 + lda : a0;
    for (int j = 0; j < N; j += 4) {
      const int cols = N - j < 4 ? N - j : 4;
      const float *b0 = B + j * ldb, *b1 = cols > 1 ? b0 + ldb : b0, *b2 = cols > 2 ? b0 + 2 * ldb : b0,
                  *b3 = cols > 3 ? b0 + 3 * ldb : b0;
      v128_t s00 = wasm_f32x4_splat(0.f), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00, s13 = s00;
      for (int k = 0; k < K4; k += 4) {
        const v128_t x0 = wasm_v128_load(a0 + k), x1 = wasm_v128_load(a1 + k);
        const v128_t y0 = wasm_v128_load(b0 + k), y1 = wasm_v128_load(b1 + k), y2 = wasm_v128_load(b2 + k),
                     y3 = wasm_v128_load(b3 + k);
        s00 = wasm_f32x4_add(s00, wasm_f32x4_mul(x0, y0));
        s01 = wasm_f32x4_add(s01, wasm_f32x4_mul(x0, y1));
        s02 = wasm_f32x4_add(s02, wasm_f32x4_mul(x0, y2));
        s03 = wasm_f32x4_add(s03, wasm_f32x4_mul(x0, y3));
        s10 = wasm_f32x4_add(s10, wasm_f32x4_mul(x1, y0));
        s11 = wasm_f32x4_add(s11, wasm_f32x4_mul(x1, y1));
        s12 = wasm_f32x4_add(s12, wasm_f32x4_mul(x1, y2));
        s13 = wasm_f32x4_add(s13, wasm_f32x4_mul(x1, y3));
      }
      /* the four lanes of each sum: transposes of the 4×4 blocks, then adds */
#define HSUM4(p, q, r, s, out)                                                                 \
  {                                                                                            \
    const v128_t t0 = wasm_i32x4_shuffle(p, q, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(p, q, 2, 6, 3, 7); \
    const v128_t t2 = wasm_i32x4_shuffle(r, s, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(r, s, 2, 6, 3, 7); \
    const v128_t u = wasm_f32x4_add(t0, t1), w = wasm_f32x4_add(t2, t3);                        \
    out = wasm_f32x4_add(wasm_i64x2_shuffle(u, w, 0, 2), wasm_i64x2_shuffle(u, w, 1, 3));        \
  }
      v128_t r0, r1;
      HSUM4(s00, s01, s02, s03, r0)
      HSUM4(s10, s11, s12, s13, r1)
      float *c0 = C + i * ldc + j, *c1 = c0 + ldc;
      for (int k = K4; k < K; k++) {
        const float p0 = a0[k], p1 = a1[k];
        r0 = wasm_f32x4_add(r0, wasm_f32x4_make(p0 * b0[k], p0 * b1[k], p0 * b2[k], p0 * b3[k]));
        r1 = wasm_f32x4_add(r1, wasm_f32x4_make(p1 * b0[k], p1 * b1[k], p1 * b2[k], p1 * b3[k]));
      }
      if (cols == 4) {
        wasm_v128_store(c0, r0);
        if (i + 1 < i1) wasm_v128_store(c1, r1);
      } else {
        const int two = i + 1 < i1;
        c0[0] = wasm_f32x4_extract_lane(r0, 0);
        if (two) c1[0] = wasm_f32x4_extract_lane(r1, 0);
        if (cols > 1) {
          c0[1] = wasm_f32x4_extract_lane(r0, 1);
          if (two) c1[1] = wasm_f32x4_extract_lane(r1, 1);
        }
        if (cols > 2) {
          c0[2] = wasm_f32x4_extract_lane(r0, 2);
          if (two) c1[2] = wasm_f32x4_extract_lane(r1, 2);
        }
      }
    }
  }
}
