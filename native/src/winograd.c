/* 3×3 stride-1 convolutions by Winograd's minimal filtering (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", CVPR 2016), F(2×2, 3×3): each 2×2 block of outputs ("tile") comes
 * from a 4×4 block of input through 16 element-wise products instead of 36, i.e. 2.25× fewer
 * multiplies, done as 16 products [tiles × C] · [C × OC] by the sgemm:
 *   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
 * The input gradient is the same convolution of dy with the filter flipped and transposed. The
 * filter gradient uses the dual F(3×3, 2×2) with the same input transform:
 *   dW = Gᵀ [ Σ_tiles (Bᵀ d B) ⊙ (A e Aᵀ) ] G      (e: the tile's 2×2 block of dy)
 * Tiles are processed in chunks whose transformed operands stay in the L2 cache; the transforms run
 * along channels (contiguous in NHWC), which the compiler vectorises. */
#include "winograd.h"
#include "common.h"
#include "ew.h"
#include "workers.h"
#include <stdlib.h>

/* 8 channels at a time (GCC/Clang vector extension: AVX with -mavx2, two SSE halves without) */
typedef float v8 __attribute__((vector_size(32), aligned(4)));
#define LD(p) (*(const v8 *)(p))
#define ST(p, v) (*(v8 *)(p) = (v))
typedef int32_t v8i __attribute__((vector_size(32)));
/* v where on > 0, else +0 */
static inline v8 keep_if_positive(v8 v, v8 on) { return (v8)((v8i)v & (on > (v8){0})); }

#define FILTER_GROUPS 8
#define L2_TARGET (512 * 1024)

static int enabled = 1;
void tdn_winograd_set_enabled(int on) { enabled = on != 0; }
int tdn_winograd_enabled(void) { return enabled; }

int tdn_winograd_fits(const conv_geom_t *g) {
  return enabled && g->FH == 3 && g->FW == 3 && g->SH == 1 && g->SW == 1 && g->DH == 1 && g->DW == 1 && g->C >= 16 &&
         g->OC >= 16 && g->OH >= 2 && g->OW >= 2;
}

/* tiles per chunk: the transformed input and output of a chunk (16 · n · (C + OC) floats) in L2 */
static int chunk_tiles(int C, int OC) {
  int n = L2_TARGET / (16 * 4 * (C + OC));
  n = n < 16 ? 16 : (n > 256 ? 256 : n);
  return n & ~7;
}

/* U[k][i][o] = (G g Gᵀ)[k] for each (i, o) of a filter w[3][3][I][O]; G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1] */
static void filter_transform(const float *w, int I, int O, float *U) {
  const size_t plane = (size_t)I * O;
  for (size_t p = 0; p < plane; p++) {
    float g[3][3], t[4][3];
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++) g[i][j] = w[(size_t)(i * 3 + j) * plane + p];
    for (int j = 0; j < 3; j++) {
      t[0][j] = g[0][j];
      t[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
      t[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
      t[3][j] = g[2][j];
    }
    for (int a = 0; a < 4; a++) {
      U[(size_t)(a * 4 + 0) * plane + p] = t[a][0];
      U[(size_t)(a * 4 + 1) * plane + p] = 0.5f * (t[a][0] + t[a][1] + t[a][2]);
      U[(size_t)(a * 4 + 2) * plane + p] = 0.5f * (t[a][0] - t[a][1] + t[a][2]);
      U[(size_t)(a * 4 + 3) * plane + p] = t[a][2];
    }
  }
}

/* floats between the 16 matrices [n][L] of a transformed chunk: n · L rounded up to an odd number of
   cache lines, so that the 16 streams a transform reads or writes do not share L1 sets (n · L · 4
   bytes is often a multiple of 4 KiB) */
static size_t kstride_of(int n, int L) {
  size_t lines = ((size_t)n * L + 15) / 16;
  return (lines | 1) * 16;
}

/* The geometry of the tiles: TH × TW tiles per sample, each at output (2ty, 2tx). */
typedef struct {
  const conv_geom_t *g;
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
  float *acc; /* [groups][16][C][OC] */
  int64_t ntasks;
  int groups;
  volatile int failed; /* a task found no memory: the caller falls back to im2col */
} wino_ctx_t;

/* V[k][t][c] = (Bᵀ d B)[k] for tiles [t0, t0 + n), d the 4×4 input block at (2ty - PT, 2tx - PL);
   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
static void input_transform(const wino_ctx_t *c, int64_t t0, int n, float *V) {
  const conv_geom_t *g = c->g;
  const int C = g->C, per = c->TH * c->TW;
  const size_t kstride = kstride_of(n, C);
  for (int t = 0; t < n; t++) {
    const int64_t tile = t0 + t;
    const int b = (int)(tile / per), r = (int)(tile % per), y0 = (r / c->TW) * 2 - g->PT, x0 = (r % c->TW) * 2 - g->PL;
    const float *p[4][4];
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) {
        const int y = y0 + i, xx = x0 + j;
        p[i][j] = y < 0 || y >= g->H || xx < 0 || xx >= g->W ? c->zeros
                                                             : c->x + (((size_t)b * g->H + y) * g->W + xx) * C;
      }
    float *v = V + (size_t)t * C;
    int ch = 0;
    for (; ch + 8 <= C; ch += 8) {
      v8 s[4][4];
      for (int j = 0; j < 4; j++) {
        const v8 d0 = LD(p[0][j] + ch), d1 = LD(p[1][j] + ch), d2 = LD(p[2][j] + ch), d3 = LD(p[3][j] + ch);
        s[0][j] = d0 - d2;
        s[1][j] = d1 + d2;
        s[2][j] = d2 - d1;
        s[3][j] = d1 - d3;
      }
      for (int i = 0; i < 4; i++) {
        ST(v + (size_t)(i * 4 + 0) * kstride + ch, s[i][0] - s[i][2]);
        ST(v + (size_t)(i * 4 + 1) * kstride + ch, s[i][1] + s[i][2]);
        ST(v + (size_t)(i * 4 + 2) * kstride + ch, s[i][2] - s[i][1]);
        ST(v + (size_t)(i * 4 + 3) * kstride + ch, s[i][1] - s[i][3]);
      }
    }
    for (; ch < C; ch++) {
      float s[4][4];
      for (int j = 0; j < 4; j++) {
        const float d0 = p[0][j][ch], d1 = p[1][j][ch], d2 = p[2][j][ch], d3 = p[3][j][ch];
        s[0][j] = d0 - d2;
        s[1][j] = d1 + d2;
        s[2][j] = d2 - d1;
        s[3][j] = d1 - d3;
      }
      for (int i = 0; i < 4; i++) {
        v[(size_t)(i * 4 + 0) * kstride + ch] = s[i][0] - s[i][2];
        v[(size_t)(i * 4 + 1) * kstride + ch] = s[i][1] + s[i][2];
        v[(size_t)(i * 4 + 2) * kstride + ch] = s[i][2] - s[i][1];
        v[(size_t)(i * 4 + 3) * kstride + ch] = s[i][1] - s[i][3];
      }
    }
  }
}

/* out 2×2 = Aᵀ M A (Aᵀ = [1 1 1 0; 0 1 -1 -1]) for tiles [t0, t0 + n), + bias, ReLU; or, for an input
   gradient through a ReLU, masked by reluY with the sums of what passes added to sums */
static void output_transform(const wino_ctx_t *c, int64_t t0, int n, const float *M, double *sums, float *acc) {
  const conv_geom_t *g = c->g;
  const int O = g->OC, per = c->TH * c->TW;
  const size_t kstride = kstride_of(n, O);
  for (int t = 0; t < n; t++) {
    const int64_t tile = t0 + t;
    const int b = (int)(tile / per), r = (int)(tile % per), y0 = (r / c->TW) * 2, x0 = (r % c->TW) * 2;
    const int ny = MIN(2, g->OH - y0), nx = MIN(2, g->OW - x0);
    /* a partial tile (odd output size) points its missing row / column at the last one, unwritten */
    float *o[2][2];
    const float *ry[2][2];
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 2; j++) {
        const size_t at = (((size_t)b * g->OH + y0 + MIN(i, ny - 1)) * g->OW + x0 + MIN(j, nx - 1)) * O;
        o[i][j] = c->out + at;
        ry[i][j] = c->reluY ? c->reluY + at : NULL;
      }
    const float *m = M + (size_t)t * O;
    int ch = 0;
    for (; ch + 8 <= O; ch += 8) {
      v8 s[2][4], y[2][2];
      for (int j = 0; j < 4; j++) {
        const v8 m0 = LD(m + (size_t)j * kstride + ch), m1 = LD(m + (size_t)(4 + j) * kstride + ch),
                 m2 = LD(m + (size_t)(8 + j) * kstride + ch), m3 = LD(m + (size_t)(12 + j) * kstride + ch);
        s[0][j] = m0 + m1 + m2;
        s[1][j] = m1 - m2 - m3;
      }
      const v8 bias = c->bias ? LD(c->bias + ch) : (v8){0};
      for (int i = 0; i < 2; i++) {
        y[i][0] = s[i][0] + s[i][1] + s[i][2] + bias;
        y[i][1] = s[i][1] - s[i][2] - s[i][3] + bias;
      }
      for (int i = 0; i < ny; i++)
        for (int j = 0; j < nx; j++) {
          v8 v = y[i][j];
          if (c->relu) v = keep_if_positive(v, v);
          if (c->reluY) {
            v = keep_if_positive(v, LD(ry[i][j] + ch));
            ST(acc + ch, LD(acc + ch) + v);
          }
          ST(o[i][j] + ch, v);
        }
    }
    for (; ch < O; ch++) {
      float s[2][4], y[2][2];
      for (int j = 0; j < 4; j++) {
        const float m0 = m[(size_t)j * kstride + ch], m1 = m[(size_t)(4 + j) * kstride + ch],
                    m2 = m[(size_t)(8 + j) * kstride + ch], m3 = m[(size_t)(12 + j) * kstride + ch];
        s[0][j] = m0 + m1 + m2;
        s[1][j] = m1 - m2 - m3;
      }
      const float bias = c->bias ? c->bias[ch] : 0.f;
      for (int i = 0; i < 2; i++) {
        y[i][0] = s[i][0] + s[i][1] + s[i][2] + bias;
        y[i][1] = s[i][1] - s[i][2] - s[i][3] + bias;
      }
      for (int i = 0; i < ny; i++)
        for (int j = 0; j < nx; j++) {
          float v = c->relu ? MAX(y[i][j], 0.f) : y[i][j];
          if (c->reluY) {
            v = tdn_keep_if(v, ry[i][j][ch] > 0.f);
            acc[ch] += v;
          }
          o[i][j][ch] = v;
        }
    }
    if (sums && ((t & 15) == 15 || t == n - 1)) {
      for (int ch = 0; ch < O; ch++) sums[ch] += acc[ch], acc[ch] = 0.f;
    }
  }
}

static void conv_task(void *vctx, int64_t task, int tid) {
  wino_ctx_t *c = (wino_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int64_t t0 = task * c->chunk;
  const int n = (int)MIN((int64_t)c->chunk, c->tiles - t0);
  const size_t sv = kstride_of(n, g->C), sm = kstride_of(n, g->OC);
  float *V = (float *)tdn_scratch(tid, sizeof(float) * (16 * (sv + sm) + g->OC));
  if (!V) { c->failed = 1; return; }
  float *M = V + 16 * sv, *acc = M + 16 * sm;
  input_transform(c, t0, n, V);
  for (int k = 0; k < 16; k++)
    tdn_sgemm(0, 0, n, g->OC, g->C, 1.f, V + k * sv, g->C, c->U + (size_t)k * g->C * g->OC, g->OC, 0.f, M + k * sm,
              g->OC, 0);
  double *sums = c->part ? c->part + task * g->OC : NULL;
  if (sums) {
    for (int ch = 0; ch < g->OC; ch++) sums[ch] = 0.0, acc[ch] = 0.f;
  }
  output_transform(c, t0, n, M, sums, acc);
}

/* out = conv(x, filter transformed into U), on the workers; 0 when out of memory */
static int run_conv(const conv_geom_t *g, const float *x, const float *U, float *out, const float *bias, int relu,
                    const float *reluY, float *dbias) {
  wino_ctx_t c;
  memset(&c, 0, sizeof c);
  c.g = g; c.x = x; c.U = U; c.out = out; c.bias = bias; c.relu = relu; c.reluY = reluY;
  c.TH = (g->OH + 1) / 2; c.TW = (g->OW + 1) / 2;
  c.tiles = (int64_t)g->B * c.TH * c.TW;
  c.chunk = chunk_tiles(g->C, g->OC);
  const int64_t tasks = (c.tiles + c.chunk - 1) / c.chunk;
  float *zeros = (float *)calloc((size_t)g->C, sizeof(float));
  if (reluY && dbias) c.part = (double *)malloc(sizeof(double) * (size_t)(tasks * g->OC));
  if (!zeros || (reluY && dbias && !c.part)) { free(zeros); free(c.part); return 0; }
  c.zeros = zeros;
  workers_run(conv_task, &c, tasks);
  if (c.part && !c.failed) tdn_combine_parts(c.part, tasks, g->OC, 1.0, dbias);
  free(c.part);
  free(zeros);
  return !c.failed;
}

int tdn_winograd_conv2d(const conv_geom_t *g, const float *x, const float *w, float *out, const float *bias, int relu) {
  float *U = (float *)malloc(sizeof(float) * 16 * (size_t)g->C * g->OC);
  if (!U) return 0;
  filter_transform(w, g->C, g->OC, U);
  const int ok = run_conv(g, x, U, out, bias, relu, NULL, NULL);
  free(U);
  return ok;
}

int tdn_winograd_bwd_input(const conv_geom_t *g, const float *dy, const float *w, float *dx, const float *reluY,
                           float *dbias) {
  const size_t plane = (size_t)g->C * g->OC;
  /* dx = conv(dy, w flipped in space and transposed to [3][3][OC][C]), padded by 2 - pad */
  float *wt = (float *)malloc(sizeof(float) * 25 * plane);
  if (!wt) return 0;
  float *U = wt + 9 * plane;
  for (int k = 0; k < 9; k++) {
    const float *src = w + (size_t)(8 - k) * plane;
    float *dst = wt + (size_t)k * plane;
    for (int i = 0; i < g->C; i++)
      for (int o = 0; o < g->OC; o++) dst[(size_t)o * g->C + i] = src[(size_t)i * g->OC + o];
  }
  filter_transform(wt, g->OC, g->C, U);
  conv_geom_t t = *g;
  t.H = g->OH; t.W = g->OW; t.C = g->OC; t.OH = g->H; t.OW = g->W; t.OC = g->C;
  t.PT = 2 - g->PT; t.PL = 2 - g->PL;
  const int ok = run_conv(&t, dy, U, dx, NULL, 0, reluY, dbias);
  free(wt);
  return ok;
}

/* E[k][t][o] = (A e Aᵀ)[k] for tiles [t0, t0 + n), e the tile's 2×2 block of dy (0 outside);
   A = [1 0; 1 1; 1 -1; 0 -1] */
static void dy_transform(const wino_ctx_t *c, int64_t t0, int n, float *E) {
  const conv_geom_t *g = c->g;
  const int O = g->OC, per = c->TH * c->TW;
  const size_t kstride = kstride_of(n, O);
  for (int t = 0; t < n; t++) {
    const int64_t tile = t0 + t;
    const int b = (int)(tile / per), r = (int)(tile % per), y0 = (r / c->TW) * 2, x0 = (r % c->TW) * 2;
    const float *p[2][2];
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 2; j++)
        p[i][j] = y0 + i >= g->OH || x0 + j >= g->OW ? c->zeros
                                                     : c->dy + (((size_t)b * g->OH + y0 + i) * g->OW + x0 + j) * O;
    float *e = E + (size_t)t * O;
    int ch = 0;
    for (; ch + 8 <= O; ch += 8) {
      const v8 e00 = LD(p[0][0] + ch), e01 = LD(p[0][1] + ch), e10 = LD(p[1][0] + ch), e11 = LD(p[1][1] + ch);
      const v8 q[4][2] = {{e00, e01}, {e00 + e10, e01 + e11}, {e00 - e10, e01 - e11}, {-e10, -e11}};
      for (int a = 0; a < 4; a++) {
        ST(e + (size_t)(a * 4 + 0) * kstride + ch, q[a][0]);
        ST(e + (size_t)(a * 4 + 1) * kstride + ch, q[a][0] + q[a][1]);
        ST(e + (size_t)(a * 4 + 2) * kstride + ch, q[a][0] - q[a][1]);
        ST(e + (size_t)(a * 4 + 3) * kstride + ch, -q[a][1]);
      }
    }
    for (; ch < O; ch++) {
      const float e00 = p[0][0][ch], e01 = p[0][1][ch], e10 = p[1][0][ch], e11 = p[1][1][ch];
      const float q[4][2] = {{e00, e01}, {e00 + e10, e01 + e11}, {e00 - e10, e01 - e11}, {-e10, -e11}};
      for (int a = 0; a < 4; a++) {
        e[(size_t)(a * 4 + 0) * kstride + ch] = q[a][0];
        e[(size_t)(a * 4 + 1) * kstride + ch] = q[a][0] + q[a][1];
        e[(size_t)(a * 4 + 2) * kstride + ch] = q[a][0] - q[a][1];
        e[(size_t)(a * 4 + 3) * kstride + ch] = -q[a][1];
      }
    }
  }
}

/* group k sums, in order, the chunks [k · ntasks / groups, (k + 1) · ntasks / groups) into its own
   buffer: the same sums whichever thread runs a group */
static void filter_group(void *vctx, int64_t k, int tid) {
  wino_ctx_t *c = (wino_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const size_t plane = (size_t)g->C * g->OC;
  float *acc = c->acc + (size_t)k * 16 * plane;
  float *V = (float *)tdn_scratch(tid, sizeof(float) * 16 * (kstride_of(c->chunk, g->C) + kstride_of(c->chunk, g->OC)));
  if (!V) { c->failed = 1; return; }
  const int64_t first = k * c->ntasks / c->groups, last = (k + 1) * c->ntasks / c->groups;
  for (int64_t task = first; task < last; task++) {
    const int64_t t0 = task * c->chunk;
    const int n = (int)MIN((int64_t)c->chunk, c->tiles - t0);
    const size_t sv = kstride_of(n, g->C), se = kstride_of(n, g->OC);
    float *E = V + 16 * sv;
    input_transform(c, t0, n, V);
    dy_transform(c, t0, n, E);
    for (int q = 0; q < 16; q++)
      tdn_sgemm(1, 0, g->C, g->OC, n, 1.f, V + q * sv, g->C, E + q * se, g->OC, task > first ? 1.f : 0.f,
                acc + (size_t)q * plane, g->OC, 0);
  }
}

int tdn_winograd_bwd_filter(const conv_geom_t *g, const float *x, const float *dy, float *dw) {
  const size_t plane = (size_t)g->C * g->OC;
  wino_ctx_t c;
  memset(&c, 0, sizeof c);
  c.g = g; c.x = x; c.dy = dy;
  c.TH = (g->OH + 1) / 2; c.TW = (g->OW + 1) / 2;
  c.tiles = (int64_t)g->B * c.TH * c.TW;
  c.chunk = chunk_tiles(g->C, g->OC);
  c.ntasks = (c.tiles + c.chunk - 1) / c.chunk;
  c.groups = (int)MIN((int64_t)FILTER_GROUPS, c.ntasks);
  float *zeros = (float *)calloc((size_t)MAX(g->C, g->OC), sizeof(float));
  c.acc = (float *)malloc(sizeof(float) * 16 * plane * (size_t)c.groups);
  if (!zeros || !c.acc) { free(zeros); free(c.acc); return 0; }
  c.zeros = zeros;
  workers_run(filter_group, &c, c.groups);
  if (c.failed) { free(zeros); free(c.acc); return 0; }
  for (int k = 1; k < c.groups; k++) {
    const float *a = c.acc + (size_t)k * 16 * plane;
    for (size_t i = 0; i < 16 * plane; i++) c.acc[i] += a[i];
  }
  /* dW = Gᵀ D G, Gᵀ = [1 ½ ½ 0; 0 ½ -½ 0; 0 ½ ½ 1] */
  const float *D = c.acc;
  for (size_t p = 0; p < plane; p++) {
    float d[4][4], r[3][4];
    for (int k = 0; k < 16; k++) d[k / 4][k % 4] = D[(size_t)k * plane + p];
    for (int j = 0; j < 4; j++) {
      r[0][j] = d[0][j] + 0.5f * (d[1][j] + d[2][j]);
      r[1][j] = 0.5f * (d[1][j] - d[2][j]);
      r[2][j] = 0.5f * (d[1][j] + d[2][j]) + d[3][j];
    }
    for (int i = 0; i < 3; i++) {
      dw[(size_t)(i * 3 + 0) * plane + p] = r[i][0] + 0.5f * (r[i][1] + r[i][2]);
      dw[(size_t)(i * 3 + 1) * plane + p] = 0.5f * (r[i][1] - r[i][2]);
      dw[(size_t)(i * 3 + 2) * plane + p] = 0.5f * (r[i][1] + r[i][2]) + r[i][3];
    }
  }
  free(zeros);
  free(c.acc);
  return 1;
}
