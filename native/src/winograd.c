/* 3×3 stride-1 convolutions by Winograd's minimal filtering (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", CVPR 2016). F(m×m, 3×3) makes each m×m block of outputs (a "tile")
 * from an α×α block of input (α = m + 2) through α² element-wise products, done as α² products
 * [tiles × C] · [C × OC] by the sgemm:
 *   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
 * F(2×2, 3×3) multiplies 2.25× less than direct convolution, F(4×4, 3×3) 4× less (for sizes that are
 * multiples of 4) with larger transforms and a few more rounding steps. The input gradient is the same
 * convolution of dy with the filter flipped and transposed; the filter gradient uses the dual
 * F(3×3, m×m) with the same input transform:
 *   dW = Gᵀ [ Σ_tiles (Bᵀ d B) ⊙ (A e Aᵀ) ] G      (e: the tile's m×m block of dy)
 * Tiles are processed in chunks whose transformed operands stay in the L2 cache; the transforms run
 * along channels (contiguous in NHWC), 16 at a time where the CPU has AVX-512, else 8
 * (winograd-tiles.h, compiled once for each). */
#include "winograd.h"
#include "common.h"
#include "workers.h"
#include "sgemm512.h"
#include <stdlib.h>

/* the filter transforms, 8 floats at a time */
typedef tdn_v8 v8;
/* the first n (≤ 8) floats at p; a partial vector is zero-padded */
static inline v8 ldn(const float *p, int n) {
  if (n == 8) return *(const v8 *)p;
  v8 v = {0};
  memcpy(&v, p, sizeof(float) * (size_t)n);
  return v;
}
static inline void stn(float *p, v8 v, int n) {
  if (n == 8) *(v8 *)p = v;
  else memcpy(p, &v, sizeof(float) * (size_t)n);
}

#define FILTER_GROUPS 8
#define L2_TARGET (512 * 1024)
#define MR 12 /* the AVX-512 sgemm's row block: chunks are multiples of it */

static int enabled = -1;
void tdn_winograd_set_enabled(int on) { enabled = on != 0; }
int tdn_winograd_enabled(void) {
  if (enabled < 0) {
    const char *off = getenv("TFJS_DISTILL_NO_WINOGRAD");
    enabled = !(off && *off && *off != '0');
  }
  return enabled;
}

int tdn_winograd_fits(const conv_geom_t *g) {
  return tdn_winograd_enabled() && g->FH == 3 && g->FW == 3 && g->SH == 1 && g->SW == 1 && g->DH == 1 && g->DW == 1 && g->C >= 16 &&
         g->OC >= 16 && g->OH >= 2 && g->OW >= 2;
}

/* m = 4 where it makes clearly fewer products than m = 2 (output sides far from multiples of 4 waste
   part of its tiles; its transforms cost more per product) */
static int tile_size(int OH, int OW) {
  const double p2 = 16.0 * ((OH + 1) / 2) * ((OW + 1) / 2), p4 = 36.0 * ((OH + 3) / 4) * ((OW + 3) / 4);
  return p4 < 0.8 * p2 ? 4 : 2;
}

/* The tiles: TH × TW per sample, tile (ty, tx) at output (m·ty, m·tx) */
typedef struct wino_ctx {
  const conv_geom_t *g;
  int m, a; /* tile size, α = m + 2 */
  const float *x, *U, *zeros;
  float *out;
  const float *bias; /* OC floats or NULL */
  int relu;
  const float *reluY; /* input gradient through a ReLU: zero where reluY <= 0, and sums of what passes */
  double *part;       /* [tasks][OC] */
  int TH, TW, chunk;
  int64_t tiles;
  /* filter gradient */
  const float *dy;
  float *acc; /* [groups][α²][C][OC] */
  int64_t ntasks;
  int groups;
  volatile int failed; /* a task found no memory: the caller falls back to im2col */
  /* the tile transforms (pick_tile_fns) */
  void (*input_tf)(const struct wino_ctx *, int64_t, int, float *);
  void (*output_tf)(const struct wino_ctx *, int64_t, int, const float *, double *, float *, float *);
  void (*dy_tf)(const struct wino_ctx *, int64_t, int, float *);
} wino_ctx_t;

static void init_tiles(wino_ctx_t *c, const conv_geom_t *g, int m) {
  c->g = g;
  c->m = m;
  c->a = m + 2;
  c->TH = (g->OH + m - 1) / m;
  c->TW = (g->OW + m - 1) / m;
  c->tiles = (int64_t)g->B * c->TH * c->TW;
  /* tiles per chunk: its transformed input and output (α² · n · (C + OC) floats) in L2 */
  int n = L2_TARGET / (c->a * c->a * 4 * (g->C + g->OC)) / MR * MR;
  c->chunk = n < MR ? MR : (n > 480 ? 480 : n);
}

/* The 2-D transform T X Tᵀ of one block X (NI × NI vectors of type VT_) into NO × NO: the 1-D
   transform T (NI → NO vectors) down the columns, then along the rows. LOAD reads X[I_][J_]; STORE
   writes X_ as output (I_, J_). */
#define SEPARABLE(VT_, NI, NO, T, LOAD, STORE)                  \
  do {                                                          \
    VT_ s_[NO][NI], col_[NI], out_[NO];                         \
    for (int J_ = 0; J_ < NI; J_++) {                           \
      for (int I_ = 0; I_ < NI; I_++) col_[I_] = (LOAD);        \
      T(out_, col_);                                            \
      for (int I_ = 0; I_ < NO; I_++) s_[I_][J_] = out_[I_];    \
    }                                                           \
    for (int I_ = 0; I_ < NO; I_++) {                           \
      T(out_, s_[I_]);                                          \
      for (int J_ = 0; J_ < NO; J_++) {                         \
        const VT_ X_ = out_[J_];                                \
        STORE;                                                  \
      }                                                         \
    }                                                           \
  } while (0)

/* G (α × 3), on 8 filter taps: α = 4 [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1] */
static inline void g4(v8 *u, const v8 *g) {
  u[0] = g[0];
  u[1] = .5f * (g[0] + g[1] + g[2]);
  u[2] = .5f * (g[0] - g[1] + g[2]);
  u[3] = g[2];
}
/* α = 6: [¼ 0 0; -⅙ -⅙ -⅙; -⅙ ⅙ -⅙; 1/24 1/12 ⅙; 1/24 -1/12 ⅙; 0 0 1] */
static inline void g6(v8 *u, const v8 *g) {
  const v8 p = g[0] + g[2], q = g[0] * (1.f / 24) + g[2] * (1.f / 6), r = g[1] * (1.f / 12);
  u[0] = g[0] * .25f;
  u[1] = (p + g[1]) * (-1.f / 6);
  u[2] = (p - g[1]) * (-1.f / 6);
  u[3] = q + r;
  u[4] = q - r;
  u[5] = g[2];
}
/* Gᵀ (3 × α): α = 4 [1 ½ ½ 0; 0 ½ -½ 0; 0 ½ ½ 1] */
static inline void gt4(v8 *r, const v8 *d) {
  r[0] = d[0] + .5f * (d[1] + d[2]);
  r[1] = .5f * (d[1] - d[2]);
  r[2] = .5f * (d[1] + d[2]) + d[3];
}
/* α = 6: [¼ -⅙ -⅙ 1/24 1/24 0; 0 -⅙ ⅙ 1/12 -1/12 0; 0 -⅙ -⅙ ⅙ ⅙ 1] */
static inline void gt6(v8 *r, const v8 *d) {
  const v8 p = d[1] + d[2], q = d[3] + d[4];
  r[0] = .25f * d[0] - p * (1.f / 6) + q * (1.f / 24);
  r[1] = (d[2] - d[1]) * (1.f / 6) + (d[3] - d[4]) * (1.f / 12);
  r[2] = (q - p) * (1.f / 6) + d[5];
}

/* U[k][i][o] = (G g Gᵀ)[k] for each (i, o) of a filter w[3][3][I][O] (plane = I · O) */
#define FILTER_TRANSFORM(A, G)                                                                            \
  static void filter_transform_##A(const float *w, size_t plane, float *U) {                              \
    for (size_t p = 0; p < plane; p += 8) {                                                               \
      const int n = (int)MIN((size_t)8, plane - p);                                                       \
      SEPARABLE(v8, 3, A, G, ldn(w + (size_t)(I_ * 3 + J_) * plane + p, n),                               \
                stn(U + (size_t)(I_ * A + J_) * plane + p, X_, n));                                       \
    }                                                                                                     \
  }
FILTER_TRANSFORM(4, g4)
FILTER_TRANSFORM(6, g6)

/* dW[3][3][plane] = Gᵀ D G of the summed products D[α²][plane] */
#define FILTER_GRADIENT(A, GT)                                                                            \
  static void filter_gradient_##A(const float *D, size_t plane, float *dw) {                              \
    for (size_t p = 0; p < plane; p += 8) {                                                               \
      const int n = (int)MIN((size_t)8, plane - p);                                                       \
      SEPARABLE(v8, A, 3, GT, ldn(D + (size_t)(I_ * A + J_) * plane + p, n),                              \
                stn(dw + (size_t)(I_ * 3 + J_) * plane + p, X_, n));                                      \
    }                                                                                                     \
  }
FILTER_GRADIENT(4, gt4)
FILTER_GRADIENT(6, gt6)

#define VW 8
#include "winograd-tiles.h"
#undef VW
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WINO_AVX512 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif
#define VW 16
#include "winograd-tiles.h"
#undef VW
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

/* the tile transforms of α = 4 or 6 at the widest vectors this CPU runs (AVX-512 unless switched off:
   setAvx512(0), TFJS_DISTILL_NO_AVX512) */
static void pick_tile_fns(wino_ctx_t *c) {
#ifdef WINO_AVX512
  if (tdn_sgemm512_enabled()) {
    c->input_tf = c->a == 4 ? input_transform_4_16 : input_transform_6_16;
    c->output_tf = c->a == 4 ? output_transform_4_16 : output_transform_6_16;
    c->dy_tf = c->a == 4 ? dy_transform_4_16 : dy_transform_6_16;
    return;
  }
#endif
  c->input_tf = c->a == 4 ? input_transform_4_8 : input_transform_6_8;
  c->output_tf = c->a == 4 ? output_transform_4_8 : output_transform_6_8;
  c->dy_tf = c->a == 4 ? dy_transform_4_8 : dy_transform_6_8;
}


static void conv_task(void *vctx, int64_t task, int tid) {
  wino_ctx_t *c = (wino_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int a2 = c->a * c->a;
  const int64_t t0 = task * c->chunk;
  const int n = (int)MIN((int64_t)c->chunk, c->tiles - t0);
  const size_t sv = (size_t)n * g->C, sm = (size_t)n * g->OC;
  float *V = (float *)tdn_scratch(tid, sizeof(float) * (a2 * (sv + sm) + (size_t)(1 + c->m * c->m) * g->OC + 16));
  if (!V) { c->failed = 1; return; }
  float *M = V + a2 * sv, *acc = M + a2 * sm, *stage = acc + g->OC;
  c->input_tf(c, t0, n, V);
  /* tile t's α² transformed vectors are contiguous: product k reads rows a2 · C apart */
  for (int k = 0; k < a2; k++)
    tdn_sgemm(0, 0, n, g->OC, g->C, 1.f, V + (size_t)k * g->C, a2 * g->C, c->U + (size_t)k * g->C * g->OC, g->OC, 0.f,
              M + (size_t)k * g->OC, a2 * g->OC, 0);
  double *sums = c->part ? c->part + task * g->OC : NULL;
  if (sums)
    for (int ch = 0; ch < g->OC; ch++) sums[ch] = 0.0, acc[ch] = 0.f;
  c->output_tf(c, t0, n, M, sums, acc, stage);
}

/* out = conv(x, filter w [3][3][C][OC]); w_t: the filter is [3][3][OC][C] flipped in space (an input
   gradient's); on the workers; 0 when out of memory */
static int run_conv(const conv_geom_t *g, const float *x, const float *w, int w_t, float *out, const float *bias,
                    int relu, const float *reluY, float *dbias) {
  wino_ctx_t c;
  memset(&c, 0, sizeof c);
  init_tiles(&c, g, tile_size(g->OH, g->OW));
  pick_tile_fns(&c);
  c.x = x; c.out = out; c.bias = bias; c.relu = relu; c.reluY = reluY;
  const size_t plane = (size_t)g->C * g->OC;
  const int64_t tasks = (c.tiles + c.chunk - 1) / c.chunk;
  float *U = tdn_thread_buffer(4, (size_t)(c.a * c.a + (w_t ? 9 : 0)) * plane);
  float *zeros = (float *)calloc((size_t)g->C, sizeof(float));
  if (reluY && dbias) c.part = (double *)malloc(sizeof(double) * (size_t)(tasks * g->OC));
  if (!U || !zeros || (reluY && dbias && !c.part)) {
    free(zeros); free(c.part);
    return 0;
  }
  if (w_t) {
    /* the flipped filter as [3][3][C][OC] of this convolution, after the transform's planes */
    float *wt = U + (size_t)c.a * c.a * plane;
    for (int k = 0; k < 9; k++) {
      const float *src = w + (size_t)(8 - k) * plane;
      float *dst = wt + (size_t)k * plane;
      for (int o = 0; o < g->OC; o++)
        for (int i = 0; i < g->C; i++) dst[(size_t)i * g->OC + o] = src[(size_t)o * g->C + i];
    }
    w = wt;
  }
  if (c.a == 4) filter_transform_4(w, plane, U);
  else filter_transform_6(w, plane, U);
  c.U = U;
  c.zeros = zeros;
  workers_run(conv_task, &c, tasks);
  if (c.part && !c.failed) tdn_combine_parts(c.part, tasks, g->OC, 1.0, dbias);
  free(c.part);
  free(zeros);
  return !c.failed;
}

int tdn_winograd_conv2d(const conv_geom_t *g, const float *x, const float *w, float *out, const float *bias, int relu) {
  return run_conv(g, x, w, 0, out, bias, relu, NULL, NULL);
}

int tdn_winograd_bwd_input(const conv_geom_t *g, const float *dy, const float *w, float *dx, const float *reluY,
                           float *dbias) {
  /* dx = conv(dy, w flipped in space and transposed to [3][3][OC][C]), padded by 2 - pad */
  conv_geom_t t = *g;
  t.H = g->OH; t.W = g->OW; t.C = g->OC; t.OH = g->H; t.OW = g->W; t.OC = g->C;
  t.PT = 2 - g->PT; t.PL = 2 - g->PL;
  return run_conv(&t, dy, w, 1, dx, NULL, 0, reluY, dbias);
}

/* group k sums, in order, the chunks [k · ntasks / groups, (k + 1) · ntasks / groups) into its own
   buffer: the same sums whichever thread runs a group */
static void filter_group(void *vctx, int64_t k, int tid) {
  wino_ctx_t *c = (wino_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int a2 = c->a * c->a;
  const size_t plane = (size_t)g->C * g->OC;
  float *acc = c->acc + (size_t)k * a2 * plane;
  float *V = (float *)tdn_scratch(tid, sizeof(float) * a2 * (size_t)c->chunk * (g->C + g->OC));
  if (!V) { c->failed = 1; return; }
  const int64_t first = k * c->ntasks / c->groups, last = (k + 1) * c->ntasks / c->groups;
  for (int64_t task = first; task < last; task++) {
    const int64_t t0 = task * c->chunk;
    const int n = (int)MIN((int64_t)c->chunk, c->tiles - t0);
    float *E = V + (size_t)a2 * n * g->C;
    c->input_tf(c, t0, n, V);
    c->dy_tf(c, t0, n, E);
    for (int q = 0; q < a2; q++)
      tdn_sgemm(1, 0, g->C, g->OC, n, 1.f, V + (size_t)q * g->C, a2 * g->C, E + (size_t)q * g->OC, a2 * g->OC,
                task > first ? 1.f : 0.f, acc + (size_t)q * plane, g->OC, 0);
  }
}

int tdn_winograd_bwd_filter(const conv_geom_t *g, const float *x, const float *dy, float *dw) {
  wino_ctx_t c;
  memset(&c, 0, sizeof c);
  init_tiles(&c, g, tile_size(g->OH, g->OW));
  pick_tile_fns(&c);
  c.x = x; c.dy = dy;
  const int a = c.a, a2 = a * a;
  const size_t plane = (size_t)g->C * g->OC;
  c.ntasks = (c.tiles + c.chunk - 1) / c.chunk;
  /* at most 64 MiB of group sums (at least 2 groups): a fixed number for the layer, never the threads' */
  const int64_t fit = MAX(2, (int64_t)((64u << 20) / (sizeof(float) * a2 * plane)));
  c.groups = (int)MIN(MIN((int64_t)FILTER_GROUPS, fit), c.ntasks);
  float *zeros = (float *)calloc((size_t)MAX(g->C, g->OC), sizeof(float));
  c.acc = tdn_thread_buffer(5, a2 * plane * (size_t)c.groups);
  if (!zeros || !c.acc) { free(zeros); return 0; }
  c.zeros = zeros;
  workers_run(filter_group, &c, c.groups);
  if (c.failed) { free(zeros); return 0; }
  for (int k = 1; k < c.groups; k++) {
    const float *src = c.acc + (size_t)k * a2 * plane;
    for (size_t i = 0; i < a2 * plane; i++) c.acc[i] += src[i];
  }
  if (a == 4) filter_gradient_4(c.acc, plane, dw);
  else filter_gradient_6(c.acc, plane, dw);
  free(zeros);
  return 1;
}
