#ifndef TDN_COMMON_H
#define TDN_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

/* Activations fused into matmul / conv epilogues (order matches the JS side). */
enum { ACT_LINEAR = 0, ACT_RELU = 1, ACT_RELU6 = 2, ACT_PRELU = 3, ACT_ELU = 4, ACT_LEAKYRELU = 5, ACT_SIGMOID = 6 };

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Row-major C[M,N] = alpha * op(A) op(B) + beta * C, split over the pool when large.
 * threaded = 0 runs on the calling thread only (for use inside pool tasks). */
void tdn_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc, int threaded);

/* Applies bias (per column, length nBias == N, or 1 = scalar, or 0 = none) and an activation
 * to rows [r0, r1) of C [*, N] with leading dim ldc. prelu: per column (nPrelu == N) or scalar. */
void tdn_epilogue(float *C, int ldc, int r0, int r1, int N, const float *bias, int nBias, int act,
                  float alpha, const float *prelu, int nPrelu);

void tdn_set_gemm_parts(int partsPerThread);
void tdn_set_gemm_mode(int mode);
int tdn_gemm_mode(void);
void *tdn_scratch(int tid, size_t bytes); /* per-thread grow-only scratch, slot 0..63 */
void *tdn_scratch2(int tid, size_t bytes);
#endif
