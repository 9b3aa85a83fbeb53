#ifndef TDN_SGEMM512_H
#define TDN_SGEMM512_H
/* Single-threaded row-major C[M,N] = alpha * op(A)·B + beta * C with AVX-512 (B not transposed),
 * then + bias (per column; NULL: none) and ReLU (relu != 0). Returns 0 when it did nothing (no
 * AVX-512 in this build, or no memory for its packing). */
int tdn_sgemm512(int transA, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc, const float *bias, int relu);
/* The CPU runs AVX-512F and TFJS_DISTILL_NO_AVX512 is not set (or tdn_sgemm512_set_enabled said so). */
int tdn_sgemm512_enabled(void);
int tdn_sgemm512_enabled_by_cpu(void);
void tdn_sgemm512_set_enabled(int on);
#endif
