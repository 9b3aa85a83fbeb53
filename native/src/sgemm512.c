/* An AVX-512 sgemm for products whose B operand is not transposed (NN and TN): the ones a
 * training step makes (x·W forward, xᵀ·dy for weight gradients, im2col·W in convolutions).
 *
 * Why: OpenBLAS's Haswell kernels, which the machines this project runs on are set to (older
 * OpenBLAS builds fail on newer AMD CPUs with their AVX-512 kernels), use half of the FMA width
 * of an AVX-512 core. This file is single-threaded; tdn_sgemm splits products over the workers.
 *
 * Layout: A and B are read in place, K in blocks of at most KC; B NR = 32 columns (two zmm) at a
 * time, the last ones masked. The kernel keeps an MR×32 tile of C in 24 registers over a whole
 * K block. */
#include "common.h"
#include "sgemm512.h"
#include <stdlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define T512 __attribute__((target("avx512f")))
/* Measured on the bench's shapes (2-core Zen 5): MR = 8 was 5-15 % slower at M = 128, MR = 14 spills
 * registers (0.4x); K blocks of 768 beat 512 and 1024; 384 KiB of A per row chunk stays in L2. */
#define MR 12
#define NR 32
#define KC 768
#define A_CHUNK_BYTES (384 * 1024)
#define PACK_MAX_FLOATS (2u << 20)
#define PF_ROWS 8 /* rows of B ahead for the row panels after the first */

int tdn_sgemm512_enabled_by_cpu(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}
static int enabled = -1;
int tdn_sgemm512_enabled(void) {
  if (enabled < 0) {
    const char *off = getenv("TFJS_DISTILL_NO_AVX512");
    enabled = tdn_sgemm512_enabled_by_cpu() && !(off && *off && *off != '0');
  }
  return enabled;
}
void tdn_sgemm512_set_enabled(int on) { enabled = on && tdn_sgemm512_enabled_by_cpu(); }

/* C[mr, nb] = alpha * a·b + beta * C: element (r, k) of a at a[r * rs + k * ks] (a packed panel,
 * A's own rows or A's own columns), b: kb rows of ldb (nb <= 32 used, by the masks) */
static inline __attribute__((always_inline)) T512 void kernel(int kb, const float *a, size_t rs, size_t ks,
                                                              const float *b, int ldb, const float *pf, float *c,
                                                              int ldc, int mr, __mmask16 m0, __mmask16 m1,
                                                              float alpha, float beta, const float *bias, int relu,
                                                              const int ROWS) {
  __m512 acc[MR][2];
#pragma GCC unroll 16
  for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int k = 0; k < kb; k++) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
    const __m512 b1 = _mm512_maskz_loadu_ps(m1, b + 16);
    _mm_prefetch((const char *)pf, _MM_HINT_T0);
    _mm_prefetch((const char *)(pf + 16), _MM_HINT_T0);
    b += ldb;
    pf += ldb;
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; r++) {
      const __m512 av = _mm512_set1_ps(a[r * rs]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
    a += ks;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta), zero = _mm512_setzero_ps();
  const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : zero;
  const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : zero;
#pragma GCC unroll 16
  for (int r = 0; r < ROWS; r++) {
    if (r >= mr) break;
    float *cr = c + (size_t)r * ldc;
    __m512 v0 = _mm512_mul_ps(acc[r][0], va), v1 = _mm512_mul_ps(acc[r][1], va);
    if (beta != 0.f) {
      v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), v0);
      v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), v1);
    }
    if (bias) {
      v0 = _mm512_add_ps(v0, bias0);
      v1 = _mm512_add_ps(v1, bias1);
    }
    if (relu) {
      v0 = _mm512_max_ps(v0, zero);
      v1 = _mm512_max_ps(v1, zero);
    }
    _mm512_mask_storeu_ps(cr, m0, v0);
    _mm512_mask_storeu_ps(cr + 16, m1, v1);
  }
}

#define KERNEL_ARGS                                                                                      \
  int kb, const float *a, size_t stride, const float *b, int ldb, const float *pf, float *c, int ldc, int mr, \
      __mmask16 m0, __mmask16 m1, float alpha, float beta, const float *bias, int relu
#define KERNEL_PASS b, ldb, pf, c, ldc, mr, m0, m1, alpha, beta, bias, relu
/* the short last row panel, zero-padded to MR rows in [k][MR]: only its first 4, 8 or 12 rows are
   computed (batch 64 = 5 × 12 + 4 rows: a 12-row tail would spend 11 % of the product on zeros) */
static T512 __attribute__((noinline)) void kernel_packed(KERNEL_ARGS) {
  (void)stride;
  if (mr <= 4) kernel(kb, a, 1, MR, KERNEL_PASS, 4);
  else if (mr <= 8) kernel(kb, a, 1, MR, KERNEL_PASS, 8);
  else kernel(kb, a, 1, MR, KERNEL_PASS, MR);
}
static T512 __attribute__((noinline)) void kernel_cols(KERNEL_ARGS) { kernel(kb, a, 1, stride, KERNEL_PASS, MR); }
static T512 __attribute__((noinline)) void kernel_rows(KERNEL_ARGS) { kernel(kb, a, stride, 1, KERNEL_PASS, MR); }

/* op(A)[i0 .. i0+rows, k0 .. k0+kb] (rows < MR) as one panel [k][MR], the rows past it zero */
static void pack_tail(int transA, const float *A, int lda, int i0, int rows, int k0, int kb, float *out) {
  for (int k = 0; k < kb; k++) {
    float *dst = out + (size_t)k * MR;
    for (int r = 0; r < MR; r++)
      dst[r] = r >= rows ? 0.f : transA ? A[(size_t)(k0 + k) * lda + i0 + r] : A[(size_t)(i0 + r) * lda + k0 + k];
  }
}

/* B[k0 .. k0+kb, 0 .. N] as panels of NR columns, [panel][k][NR], the columns past N zero */
static T512 void pack_b(const float *B, int ldb, int kb, int N, float *out) {
  for (int j0 = 0; j0 < N; j0 += NR) {
    const int nb = MIN(NR, N - j0);
    const __mmask16 m0 = (__mmask16)(nb >= 16 ? 0xffff : (1u << nb) - 1);
    const __mmask16 m1 = (__mmask16)(nb >= 32 ? 0xffff : nb > 16 ? (1u << (nb - 16)) - 1 : 0);
    const float *src = B + j0;
    for (int k = 0; k < kb; k++, src += ldb, out += NR) {
      _mm512_store_ps(out, _mm512_maskz_loadu_ps(m0, src));
      _mm512_store_ps(out + 16, _mm512_maskz_loadu_ps(m1, src + 16));
    }
  }
}

/* A is read in place (NN: A's rows; TN: op(A)'s columns, contiguous in i): gathering it into
 * panels measured no faster, since B's 32 columns give each element of A only two FMAs per load.
 * A short last panel is copied with zero rows, so that the kernel reads nothing past A. */
int tdn_sgemm512(int transA, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc, const float *bias, int relu) {
  const int nk = (K + KC - 1) / KC;
  const int kc = (K + nk - 1) / nk;
  const int tail = M % MR, full = M - tail;
  float *space = tail ? tdn_thread_buffer(2, (size_t)MR * kc) : NULL;
  if (tail && !space) return 0;
  /* B's panels are packed once per K block when more than one row panel reads them and its rows,
     read in place, are a multiple of 2 KiB apart: they then alias in L1 and L2 (1024³ +18 %, 2048³
     +35 %). Elsewhere packing measured no faster (ldb = 256) or 5 % slower (ldb = 1200, M = 128). */
  const size_t packFloats = (size_t)((N + NR - 1) / NR) * NR * kc;
  /* (at most 8 MiB a thread: the buffer is kept for the next product) */
  const int pack = M > MR && ldb % 512 == 0 && packFloats <= PACK_MAX_FLOATS;
  float *packed = pack ? tdn_thread_buffer(3, packFloats) : NULL;
  if (pack && !packed) return 0;
  for (int k0 = 0; k0 < K; k0 += kc) {
    const int kb = MIN(kc, K - k0);
    if (pack) pack_b(B + (size_t)k0 * ldb, ldb, kb, N, packed);
    const int ldbp = pack ? NR : ldb;
    const float be = k0 == 0 ? beta : 1.f;
    const int lastK = k0 + kb >= K, rl = lastK && relu; /* the epilogue with the last K block */
    if (tail) pack_tail(transA, A, lda, full, tail, k0, kb, space);
    /* rows in chunks whose K block of A stays in L2 while B's column panels pass over it */
    const int mc = MAX(MR, (int)(A_CHUNK_BYTES / ((size_t)kb * sizeof(float))) / MR * MR);
    for (int i0 = 0; i0 < full || (i0 == 0 && tail); i0 += mc) {
      const int i1 = MIN(full, i0 + mc), last = i1 == full;
      for (int j0 = 0; j0 < N; j0 += NR) {
        const int nb = MIN(NR, N - j0);
        const __mmask16 m0 = (__mmask16)(nb >= 16 ? 0xffff : (1u << nb) - 1);
        const __mmask16 m1 = (__mmask16)(nb >= 32 ? 0xffff : nb > 16 ? (1u << (nb - 16)) - 1 : 0);
        const float *bp = pack ? packed + (size_t)j0 * kb : B + (size_t)k0 * ldb + j0;
        const float *bj = lastK && bias ? bias + j0 : NULL;
        /* B's rows are ldb apart, which the hardware prefetchers do not follow: the first row panel
           fetches the next column panel's rows (it is then read from L2), the others PF_ROWS ahead */
        const float *ahead = bp + PF_ROWS * (size_t)ldbp;
        /* the last column panel fetches the next K block's first (else read cold, only 8 rows ahead) */
        const float *next = j0 + NR < N          ? (pack ? bp + (size_t)NR * kb : bp + NR)
                            : !pack && last && !lastK ? B + (size_t)(k0 + kb) * ldb
                                                      : ahead;
        for (int i = i0; i < i1; i += MR) {
          float *cp = C + (size_t)i * ldc + j0;
          const float *pf = i == i0 ? next : ahead;
          if (transA) kernel_cols(kb, A + (size_t)k0 * lda + i, lda, bp, ldbp, pf, cp, ldc, MR, m0, m1, alpha, be, bj, rl);
          else kernel_rows(kb, A + (size_t)i * lda + k0, lda, bp, ldbp, pf, cp, ldc, MR, m0, m1, alpha, be, bj, rl);
        }
        if (tail && last)
          kernel_packed(kb, space, 0, bp, ldbp, full == i0 ? next : ahead, C + (size_t)full * ldc + j0, ldc, tail, m0,
                        m1, alpha, be, bj, rl);
      }
    }
  }
  return 1;
}
#else
int tdn_sgemm512_enabled(void) { return 0; }
int tdn_sgemm512_enabled_by_cpu(void) { return 0; }
void tdn_sgemm512_set_enabled(int on) { (void)on; }
int tdn_sgemm512(int transA, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc, const float *bias, int relu) {
  (void)bias; (void)relu;
  (void)transA; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb; (void)beta;
  (void)C; (void)ldc;
  return 0;
}
#endif
