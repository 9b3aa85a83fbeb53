#ifndef TDN_PLAN_H
#define TDN_PLAN_H
#include <stdint.h>
/* A whole feed-forward model's inference as one call: a list of ops, each TDN_PLAN_WORDS int32s
 * (the layout below; src/backend/inference-plan.ts writes it), run on ping-pong buffers. */
#define TDN_PLAN_WORDS 24
/* word 0: op; words 1-15: conv_geom_t without B (H W C OH OW OC FH FW SH SW DH DW PT PL, then 0)
 * for conv / depthwise / pool; for dense, gap, scale-shift, activation and softmax word 1 is
 * the inner size (K; H*W) and word 2 the output columns (N; C). 16: weight index, 17: bias
 * index (-1: none), 18: activation, 19: its alpha (float bits), 20: elements in per example,
 * 21: elements out per example, 22: 1 for max pooling. */
#define TDN_PLAN_OPS(X) X(CONV) X(DWCONV) X(POOL) X(DENSE) X(GAP) X(SCALE_SHIFT) X(ACT) X(SOFTMAX)
#define TDN_P_ENUM(name) P_##name,
enum { TDN_PLAN_OPS(TDN_P_ENUM) P_COUNT };

/* 0 on success, else the index + 1 of the op whose description is invalid. */
int tdn_plan_run(const int32_t *desc, int nops, const float *const *weights, int nweights, const float *x,
                 float *out, int batch);
#endif
