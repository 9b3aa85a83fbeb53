#ifndef TDN_WINOGRAD_H
#define TDN_WINOGRAD_H
#include "conv.h"
/* 3×3 stride-1 undilated convolutions with C ≥ 16 and OC ≥ 16 input / output channels, while enabled
 * (winograd.c: F(4×4, 3×3) or F(2×2, 3×3), whichever makes fewer products for the output size) */
int tdn_winograd_fits(const conv_geom_t *g);
void tdn_winograd_set_enabled(int on);
int tdn_winograd_enabled(void);
/* The same contracts as tdn_conv2d (bias: OC floats or NULL; relu), tdn_conv2d_bwd_input and
 * tdn_conv2d_bwd_filter; each returns 0 when out of memory, having written nothing useful. */
int tdn_winograd_conv2d(const conv_geom_t *g, const float *x, const float *w, float *out, const float *bias, int relu);
int tdn_winograd_bwd_input(const conv_geom_t *g, const float *dy, const float *w, float *dx, const float *reluY,
                           float *dbias);
int tdn_winograd_bwd_filter(const conv_geom_t *g, const float *x, const float *dy, float *dw);
#endif
