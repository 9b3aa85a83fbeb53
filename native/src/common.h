#ifndef TDN_COMMON_H
#define TDN_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

/* Activations fused into matmul / conv epilogues; opCodes() hands their codes to JS by name. */
#define TDN_ACTIVATIONS(X) X(LINEAR) X(RELU) X(RELU6) X(PRELU) X(ELU) X(LEAKYRELU) X(SIGMOID)
#define TDN_ACT_ENUM(name) ACT_##name,
enum { TDN_ACTIVATIONS(TDN_ACT_ENUM) ACT_COUNT };

#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* 8 floats (GCC/Clang vector extension: one AVX register with -mavx2, two SSE halves without),
   at any 4-byte alignment */
typedef float tdn_v8 __attribute__((vector_size(32), aligned(4)));

/* a where on (0 or 1), else b, through their bits; tdn_keep_if: else +0. Stores of `on ? a : b` in a
 * vectorised loop may become masked stores (vmaskmovps), several times slower on AMD cores than
 * plain ones; these compile to and/or. */
static inline float tdn_select(int32_t on, float a, float b) {
  uint32_t x, y;
  memcpy(&x, &a, sizeof x);
  memcpy(&y, &b, sizeof y);
  const uint32_t m = (uint32_t)-on, r = (x & m) | (y & ~m);
  float f;
  memcpy(&f, &r, sizeof f);
  return f;
}
static inline float tdn_keep_if(float v, int32_t on) { return tdn_select(on, v, 0.f); }
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Row-major C[M,N] = alpha * op(A) op(B) + beta * C, split over the workers when large.
 * threaded = 0 runs on the calling thread only (for use inside worker tasks). */
void tdn_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc, int threaded);

/* C[M,N] = op(A) op(B) + bias (per column, or NULL), then ReLU when relu: in the AVX-512 kernel's
 * stores when it runs the product, else in a pass after it. */
void tdn_sgemm_bias_relu(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                         float *C, int ldc, int threaded, const float *bias, int relu);

/* Applies bias (per column, length nBias == N, or 1 = scalar, or 0 = none) and an activation
 * to rows [r0, r1) of C [*, N] with leading dim ldc. prelu: per column (nPrelu == N) or scalar. */
void tdn_epilogue(float *C, int ldc, int r0, int r1, int N, const float *bias, int nBias, int act,
                  float alpha, const float *prelu, int nPrelu);

/* Column sums over R rows split in tdn_sum_tasks(R) fixed chunks (each a double partial row), then
 * out[j] = scale · Σ_t part[t][j] in task order: the same sums whichever thread runs a chunk. */
int64_t tdn_sum_tasks(int64_t R);
void tdn_combine_parts(const double *part, int64_t ntasks, int64_t L, double scale, float *out);

/* The maximum of a 2×2 window (a0 a1 / a2 a3 in row order) and, in *argmax, the position of its
 * first maximum (0..3) | 0x80 when that maximum is not > 0 (a ReLU before the pool passes nothing
 * there): the byte a 2×2 max pool in training keeps for its gradient. Masks and ors, which GCC
 * vectorises in a loop over channels (not the equivalent selects). */
static inline float tdn_window_max(float a0, float a1, float a2, float a3, uint8_t *argmax) {
  const int32_t g1 = -(int32_t)(a1 > a0);
  const float m1 = a1 > a0 ? a1 : a0;
  const int32_t g2 = -(int32_t)(a2 > m1);
  const float m2 = a2 > m1 ? a2 : m1;
  const int32_t g3 = -(int32_t)(a3 > m2);
  const float m = a3 > m2 ? a3 : m2;
  const int32_t p2 = (g2 & 2) | (~g2 & g1 & 1);
  *argmax = (uint8_t)((g3 & 3) | (~g3 & p2) | (-(int32_t)(m <= 0.f) & 0x80));
  return m;
}

void tdn_set_gemm_parts(int partsPerThread);
void tdn_set_gemm_mode(int mode);
int tdn_gemm_mode(void);
void *tdn_scratch(int tid, size_t bytes); /* per-thread grow-only scratch, slot 0..63 */
/* The calling thread's own grow-only buffer `slot` (64-byte aligned; NULL when out of memory), for
 * code that does not know its worker id: 0 and 1 the transposes around op(A)·Bᵀ, 2 the AVX-512
 * sgemm's zero-padded last row panel, 3 its packed B, 4 and 5 the Winograd convolutions' transformed
 * filter and filter-gradient sums. */
#define TDN_THREAD_BUFFERS 6
float *tdn_thread_buffer(int slot, size_t floats);
void *tdn_scratch2(int tid, size_t bytes);
#endif
