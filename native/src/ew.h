#ifndef TDN_EW_H
#define TDN_EW_H
#include <stdint.h>
enum { U_RELU, U_RELU6, U_EXP, U_LOG, U_NEG, U_SQRT, U_RSQRT, U_SQUARE, U_ABS, U_SIGMOID, U_TANH, U_STEP,
       U_RECIPROCAL, U_ELU, U_LEAKYRELU, U_SOFTPLUS, U_LOG1P, U_EXPM1, U_CLIP, U_SCALE_SHIFT, U_COUNT };
enum { B_ADD, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN, B_SQDIFF, B_POW, B_COUNT };
enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_COUNT };

void tdn_unary(int op, const float *x, float *y, int64_t n, float alpha, float beta);
/* out [d0,d1,d2,d3] contiguous; a/b strides per dim (0 = broadcast). Innermost strides are 0 or 1. */
void tdn_binary(int op, const float *a, const float *b, float *o, const int64_t d[4], const int64_t as[4],
                const int64_t bs[4]);
void tdn_reduce(int op, const float *x, float *o, int64_t outer, int64_t R, int64_t inner);
void tdn_argreduce(int isMax, const float *x, int32_t *o, int64_t outer, int64_t R, int64_t inner);
void tdn_softmax(const float *x, float *y, int64_t rows, int64_t cols);
void tdn_adam(const float *w, const float *g, const float *m, const float *v, float *wo, float *mo, float *vo,
              int64_t n, float beta1, float ob1, float beta2, float ob2, float neglr, float eps, float c1, float c2);
void tdn_addn(const float **xs, int k, float *o, int64_t n);
int tdn_batchnorm(const float *x, float *y, int64_t n, int64_t L, const float *mean, int64_t lm, const float *var,
                  int64_t lv, const float *scale, int64_t ls, const float *offset, int64_t lo, float eps);
void tdn_tile(const void *x, void *out, int rank, const int64_t *shape, const int64_t *reps);
int tdn_bn_grad(const float *x, const float *dy, int64_t n, int64_t L, const float *mean, const float *var,
                const float *scale, float eps, float *dx, float *dmean, float *dvar, float *dscale, float *doffset);
#endif
