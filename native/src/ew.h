#ifndef TDN_EW_H
#define TDN_EW_H
#include <stdint.h>
/* The op tables: the one definition of each op's code. The addon's opCodes() hands them to
 * JS by name (src/backend/native/op-codes.ts maps tf kernels to these names), so no number
 * is ever copied by hand between the two sides. */
#define TDN_UNARY_OPS(X) X(RELU) X(RELU6) X(EXP) X(LOG) X(NEG) X(SQRT) X(RSQRT) X(SQUARE) X(ABS) X(SIGMOID) \
  X(TANH) X(STEP) X(RECIPROCAL) X(ELU) X(LEAKYRELU) X(SOFTPLUS) X(LOG1P) X(EXPM1) X(CLIP) X(SCALE_SHIFT)
#define TDN_BINARY_OPS(X) X(ADD) X(SUB) X(MUL) X(DIV) X(MAX) X(MIN) X(SQDIFF) X(POW)
#define TDN_REDUCE_OPS(X) X(SUM) X(MEAN) X(MAX) X(MIN) X(PROD)
#define TDN_U_ENUM(name) U_##name,
#define TDN_B_ENUM(name) B_##name,
#define TDN_R_ENUM(name) R_##name,
enum { TDN_UNARY_OPS(TDN_U_ENUM) U_COUNT };
enum { TDN_BINARY_OPS(TDN_B_ENUM) B_COUNT };
enum { TDN_REDUCE_OPS(TDN_R_ENUM) R_COUNT };

void tdn_unary(int op, const float *x, float *y, int64_t n, float alpha, float beta);
/* out [d0,d1,d2,d3] contiguous; a/b strides per dim (0 = broadcast). Innermost strides are 0 or 1. */
void tdn_binary(int op, const float *a, const float *b, float *o, const int64_t d[4], const int64_t as[4],
                const int64_t bs[4]);
void tdn_reduce(int op, const float *x, float *o, int64_t outer, int64_t R, int64_t inner);
void tdn_argreduce(int isMax, const float *x, int32_t *o, int64_t outer, int64_t R, int64_t inner);
void tdn_softmax(const float *x, float *y, int64_t rows, int64_t cols);
void tdn_label_ce(const float *s, const int32_t *labels, int64_t rows, int64_t cols, float smoothing, float *loss,
                  float *grad);
void tdn_soft_kl(const float *s, const float *t, int64_t rows, int64_t cols, float T, float *loss, float *grad);
void tdn_adam(const float *w, const float *g, const float *m, const float *v, float *wo, float *mo, float *vo,
              int64_t n, float beta1, float ob1, float beta2, float ob2, float neglr, float eps, float c1, float c2);
void tdn_addn(const float **xs, int k, float *o, int64_t n);
int tdn_batchnorm(const float *x, float *y, int64_t n, int64_t L, const float *mean, int64_t lm, const float *var,
                  int64_t lv, const float *scale, int64_t ls, const float *offset, int64_t lo, float eps);
void tdn_tile(const void *x, void *out, int rank, const int64_t *shape, const int64_t *reps);
/* dst[Σ iₖ·ds[k]] = src[Σ iₖ·ss[k]] for i < n, rank ≤ 8 (0 when it is not) */
int tdn_copy_strided(const float *src, float *dst, int rank, const int64_t *n, const int64_t *ss, const int64_t *ds);
int tdn_bn_train(const float *x, int64_t n, int64_t L, const float *gamma, const float *beta, float eps, float *y,
                 float *mean, float *var);
int tdn_bn_train_grad(const float *x, const float *dy, int64_t n, int64_t L, const float *mean, const float *var,
                      const float *gamma, float eps, float *dx, float *dgamma, float *dbeta);
/* Training batch norm → ReLU → 2×2 stride-2 max pool over B images of H×W (both even) pixels of L
 * channels: p (B·H/2·W/2·L) and argmax as tdn_pool2d's, mean and var as tdn_bn_train's. */
int tdn_bn_relu_pool2_train(const float *x, int64_t B, int64_t H, int64_t W, int64_t L, const float *gamma,
                            const float *beta, float eps, float *p, uint8_t *argmax, float *mean, float *var);
/* Its gradient from dp (the pooled output's) and that argmax: dx, dgamma, dbeta. */
int tdn_bn_relu_pool2_train_grad(const float *x, const float *dp, const uint8_t *argmax, int64_t B, int64_t H,
                                 int64_t W, int64_t L, const float *mean, const float *var, const float *gamma,
                                 float eps, float *dx, float *dgamma, float *dbeta);
/* Dropout's multiplier: sfc32 from state (a, b, c, d), scale where an output is >= threshold, else 0. */
void tdn_dropout_mask(float *m, int64_t n, double threshold, float scale, uint32_t a, uint32_t b, uint32_t c,
                      uint32_t d);
void tdn_relu_grad(const float *dy, const float *x, float *dz, int64_t n);
int tdn_bias_relu_grad(const float *dy, const float *y, int64_t n, int64_t L, float *dz, float *dbias);
/* One thread's part of it: rows of L channels, dz = dy where y > 0 (else 0; dz may be dy), and
 * sums[j] += Σ dz[·][j] (float over 64 rows at a time, then double), when sums is not NULL. */
void tdn_relu_mask_sum(const float *dy, const float *y, float *dz, int64_t rows, int64_t L, double *sums);
int tdn_bn_grad(const float *x, const float *dy, int64_t n, int64_t L, const float *mean, const float *var,
                const float *scale, float eps, float *dx, float *dmean, float *dvar, float *dscale, float *doffset);
#endif
