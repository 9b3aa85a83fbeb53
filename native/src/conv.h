#ifndef TDN_CONV_H
#define TDN_CONV_H
#include <stdint.h>
/* NHWC geometry. For convs: filter [FH, FW, C, OC] (depthwise: [FH, FW, C, M], OC = C * M). */
typedef struct {
  int B, H, W, C, OH, OW, OC, FH, FW, SH, SW, DH, DW, PT, PL;
} conv_geom_t;

void tdn_conv2d(const conv_geom_t *g, const float *x, const float *w, float *out, const float *bias, int nBias,
                int act, float alpha, const float *prelu, int nPrelu);
/* reluY (or NULL): the input was a ReLU's output y and dx also passes that ReLU (0 where y = 0);
 * then dbias (C floats, or NULL) = Σ of dx per channel. 0 when out of memory. */
int tdn_conv2d_bwd_input(const conv_geom_t *g, const float *dy, const float *w, float *dx, const float *reluY,
                         float *dbias);
void tdn_conv2d_bwd_filter(const conv_geom_t *g, const float *x, const float *dy, float *dw);
void tdn_dwconv2d(const conv_geom_t *g, const float *x, const float *w, float *out);
void tdn_dwconv2d_bwd_input(const conv_geom_t *g, const float *dy, const float *w, float *dx);
void tdn_dwconv2d_bwd_filter(const conv_geom_t *g, const float *x, const float *dy, float *dw);
/* pooling: OC == C; FH/FW = window; DH/DW = dilation */
/* argmax (or NULL): for 2×2 stride-2 max pooling inside the image, each output's window position
 * of its first maximum (| 0x80 when it is not > 0), for tdn_maxpool_grad; 1 when written. */
int tdn_pool2d(const conv_geom_t *g, int isMax, const float *x, float *out, uint8_t *argmax);
/* dx of max pooling; relu: x is a ReLU's output and dx passes through that ReLU too (windows whose
 * maximum is 0 pass nothing); dbias (C floats, or NULL) = Σ of the dy that passed, per channel.
 * argmax (or NULL): tdn_pool2d's, then x is not read. 0 when out of memory or argmax does not fit. */
int tdn_maxpool_grad(const conv_geom_t *g, const float *dy, const float *x, float *dx, int relu, float *dbias,
                     const uint8_t *argmax);
void tdn_avgpool_grad(const conv_geom_t *g, const float *dy, float *dx);
#endif
