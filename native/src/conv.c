/* Convolutions (im2col + sgemm), depthwise convolutions and pooling, NHWC. */
#include "conv.h"
#include "common.h"
#include "workers.h"
#include "ew.h"
#include "winograd.h"
#include <stdlib.h>

/* filter gradients are summed in this many fixed groups (see add_groups) */
#define FILTER_GROUPS 8
#define COL_BYTES_TARGET (256 * 1024u)

static int is_pointwise(const conv_geom_t *g) {
  return g->FH == 1 && g->FW == 1 && g->SH == 1 && g->SW == 1 && g->PT == 0 && g->PL == 0 && g->OH == g->H &&
         g->OW == g->W;
}

/* col rows for output rows [oh0, oh1) of one sample; row layout (kh, kw, c). The copies are
   short (FW·C floats): plain loops, kept from being turned into memcpy calls, are 2× faster. */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void im2col(const conv_geom_t *g, const float *xb, float *col, int oh0, int oh1) {
  const int C = g->C, FW = g->FW, KK = g->FH * g->FW * C;
  const size_t rowC = (size_t)FW * C;
  float *dst = col;
  for (int oh = oh0; oh < oh1; oh++) {
    for (int ow = 0; ow < g->OW; ow++, dst += KK) {
      const int iw0 = ow * g->SW - g->PL;
      const int contiguous = g->DW == 1 && iw0 >= 0 && iw0 + FW <= g->W;
      for (int kh = 0; kh < g->FH; kh++) {
        float *d = dst + (size_t)kh * rowC;
        const int ih = oh * g->SH - g->PT + kh * g->DH;
        if (ih < 0 || ih >= g->H) { for (size_t i = 0; i < rowC; i++) d[i] = 0.f; continue; }
        const float *xr = xb + (size_t)ih * g->W * C;
        if (contiguous) {
          const float *src = xr + (size_t)iw0 * C;
          for (size_t i = 0; i < rowC; i++) d[i] = src[i];
          continue;
        }
        for (int kw = 0; kw < FW; kw++) {
          const int iw = iw0 + kw * g->DW;
          float *dk = d + (size_t)kw * C;
          if (iw < 0 || iw >= g->W) for (int k = 0; k < C; k++) dk[k] = 0.f;
          else for (int k = 0; k < C; k++) dk[k] = xr[(size_t)iw * C + k];
        }
      }
    }
  }
}

/* scatter-add col rows (whole sample) into dxb (zeroed by the caller) */
static void col2im(const conv_geom_t *g, const float *col, float *dxb) {
  const int C = g->C, FW = g->FW, KK = g->FH * g->FW * C;
  const float *src = col;
  for (int oh = 0; oh < g->OH; oh++) {
    for (int ow = 0; ow < g->OW; ow++, src += KK) {
      const int iw0 = ow * g->SW - g->PL;
      for (int kh = 0; kh < g->FH; kh++) {
        const int ih = oh * g->SH - g->PT + kh * g->DH;
        if (ih < 0 || ih >= g->H) continue;
        float *xr = dxb + (size_t)ih * g->W * C;
        const float *s = src + (size_t)kh * FW * C;
        for (int kw = 0; kw < FW; kw++) {
          const int iw = iw0 + kw * g->DW;
          if (iw < 0 || iw >= g->W) continue;
          float *d = xr + (size_t)iw * C;
          const float *sk = s + (size_t)kw * C;
          for (int c = 0; c < C; c++) d[c] += sk[c];
        }
      }
    }
  }
}

typedef struct {
  const conv_geom_t *g;
  const float *x, *w, *dy;
  float *out;
  const float *bias, *prelu;
  int nBias, act, nPrelu;
  float alpha;
  int rowsPerTask;      /* global output rows per task (see plan_rows) */
  int samplesPerTask;   /* input gradient: whole samples per task */
  int64_t ntasks;       /* filter gradient: row blocks, and the groups they are summed in */
  int groups;
  float *acc[FILTER_GROUPS];
  const float *reluY;   /* input gradient through a ReLU: its output (see tdn_conv2d_bwd_input) */
  double *part;         /* and the bias sums per task [tasks][C] */
} conv_ctx_t;

/* Output rows are numbered across the batch (row r = sample r / OH, row r % OH): in NHWC the
   rows of consecutive samples are contiguous, so one task can span samples. Small convs (e.g. a
   first layer on 1-channel images, a narrow student) then make a few large sgemm calls instead of
   one tiny call per sample, where the call overhead outweighed the work. */
static void plan_rows(const conv_geom_t *g, int *rowsPerTask, int *ntasks) {
  const int64_t total = (int64_t)g->B * g->OH;
  size_t rowBytes = (size_t)g->OW * g->FH * g->FW * g->C * sizeof(float);
  int64_t r = (int64_t)(COL_BYTES_TARGET / (rowBytes ? rowBytes : 1));
  if (r < 1) r = 1;
  /* at least 4 tasks per thread when there is enough work: claimed dynamically, so a thread
     that is descheduled on a busy machine holds back only a small part */
  int T = workers_threads();
  if (T > 1) {
    int64_t maxr = (total + 4 * T - 1) / (4 * T);
    if (maxr < r) r = maxr < 1 ? 1 : maxr;
  }
  if (r > total) r = total;
  *rowsPerTask = (int)r;
  *ntasks = (int)((total + r - 1) / r);
}

/* col rows for global output rows [r0, r1) */
static void im2col_rows(const conv_geom_t *g, const float *x, float *col, int64_t r0, int64_t r1) {
  const size_t sample = (size_t)g->H * g->W * g->C, rowCol = (size_t)g->OW * g->FH * g->FW * g->C;
  while (r0 < r1) {
    int b = (int)(r0 / g->OH), oh0 = (int)(r0 % g->OH);
    int oh1 = (int)MIN((int64_t)g->OH, oh0 + (r1 - r0));
    im2col(g, x + (size_t)b * sample, col, oh0, oh1);
    col += (size_t)(oh1 - oh0) * rowCol;
    r0 += oh1 - oh0;
  }
}

/* Few input channels (a first layer on gray or RGB images): K-major columns colT[k][p], k =
   (kh, kw, c), p = output pixel of global rows [r0, r1). Each (tap, output row) is one strided
   run instead of a short copy per pixel and tap; 2-4× faster for C = 1. */
#define KMAJOR_MAX_C 4
static void im2col_kmajor(const conv_geom_t *g, const float *x, float *colT, int64_t r0, int64_t r1) {
  const int C = g->C, OW = g->OW;
  const size_t P = (size_t)(r1 - r0) * OW;
  for (int kh = 0; kh < g->FH; kh++)
    for (int kw = 0; kw < g->FW; kw++) {
      /* output columns whose input column is inside the image: [lo, hi) */
      const int off = kw * g->DW - g->PL;
      int lo = off >= 0 ? 0 : (-off + g->SW - 1) / g->SW;
      int hi = g->W - 1 - off < 0 ? 0 : (g->W - 1 - off) / g->SW + 1;
      if (hi > OW) hi = OW;
      if (lo > hi) lo = hi;
      for (int c = 0; c < C; c++) {
        float *dst = colT + ((size_t)(kh * g->FW + kw) * C + c) * P;
        for (int64_t r = r0; r < r1; r++, dst += OW) {
          const int b = (int)(r / g->OH), ih = (int)(r % g->OH) * g->SH - g->PT + kh * g->DH;
          if (ih < 0 || ih >= g->H) { memset(dst, 0, sizeof(float) * OW); continue; }
          const float *xr = x + (((size_t)b * g->H + ih) * g->W + off) * C + c;
          for (int ow = 0; ow < lo; ow++) dst[ow] = 0.f;
          if (g->SW * C == 1) memcpy(dst + lo, xr + lo, sizeof(float) * (hi - lo));
          else for (int ow = lo; ow < hi; ow++) dst[ow] = xr[(size_t)ow * g->SW * C];
          for (int ow = hi; ow < OW; ow++) dst[ow] = 0.f;
        }
      }
    }
}

/* Narrow layers (OC = 8, 16 or 32 output channels, e.g. a small student's convs) skip im2col:
   out[p][0:OC] = Σ_k x[p * sp + koff[k]] · w[k][0:OC] reads a zero-padded copy of the sample
   directly (koff[k]: offset of tap k = (kh, kw, c)), PB pixels of a row share each row of w and
   keep their PB × OC sums in 8 AVX registers; bias and ReLU are applied on the way out. For OC
   this small, OpenBLAS spends more on packing its operands than on the product. */
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define NARROW_ROW(OC, PB)                                                                                    \
  static void narrow_row_##OC(int P, int K, const float *restrict x, int sp, const int *restrict koff,       \
                              const float *restrict w, float *restrict out, const float *bias, int relu) {   \
    enum { V = OC / 8 };                                                                                     \
    __m256 b0[V];                                                                                            \
    for (int j = 0; j < V; j++) b0[j] = bias ? _mm256_loadu_ps(bias + 8 * j) : _mm256_setzero_ps();         \
    const __m256 lo = relu ? _mm256_setzero_ps() : _mm256_set1_ps(-INFINITY);                               \
    int p = 0;                                                                                               \
    for (; p + PB <= P; p += PB) {                                                                           \
      __m256 acc[PB][V];                                                                                     \
      for (int i = 0; i < PB; i++)                                                                           \
        for (int j = 0; j < V; j++) acc[i][j] = b0[j];                                                       \
      const float *xp = x + (size_t)p * sp;                                                                  \
      for (int k = 0; k < K; k++) {                                                                          \
        const float *xk = xp + koff[k];                                                                      \
        __m256 wr[V];                                                                                        \
        for (int j = 0; j < V; j++) wr[j] = _mm256_loadu_ps(w + (size_t)k * OC + 8 * j);                     \
        for (int i = 0; i < PB; i++) {                                                                       \
          const __m256 v = _mm256_broadcast_ss(xk + i * sp);                                                 \
          for (int j = 0; j < V; j++) acc[i][j] = _mm256_fmadd_ps(v, wr[j], acc[i][j]);                      \
        }                                                                                                    \
      }                                                                                                      \
      for (int i = 0; i < PB; i++)                                                                           \
        for (int j = 0; j < V; j++)                                                                          \
          _mm256_storeu_ps(out + (size_t)(p + i) * OC + 8 * j, _mm256_max_ps(acc[i][j], lo));               \
    }                                                                                                        \
    for (; p < P; p++) {                                                                                     \
      __m256 acc[V];                                                                                         \
      for (int j = 0; j < V; j++) acc[j] = b0[j];                                                            \
      for (int k = 0; k < K; k++) {                                                                          \
        const __m256 v = _mm256_broadcast_ss(x + (size_t)p * sp + koff[k]);                                  \
        for (int j = 0; j < V; j++)                                                                          \
          acc[j] = _mm256_fmadd_ps(v, _mm256_loadu_ps(w + (size_t)k * OC + 8 * j), acc[j]);                  \
      }                                                                                                      \
      for (int j = 0; j < V; j++) _mm256_storeu_ps(out + (size_t)p * OC + 8 * j, _mm256_max_ps(acc[j], lo)); \
    }                                                                                                        \
  }
NARROW_ROW(8, 8)
NARROW_ROW(16, 4)
NARROW_ROW(32, 2)
typedef void (*narrow_row_fn)(int, int, const float *, int, const int *, const float *, float *, const float *, int);
#define NARROW_MAX_K 512 /* K × OC ≤ 4096 and OC ≥ 8 */

/* only while the filter (K × OC floats) stays in L1 beside the sample: it is re-read for every
   block of pixels (measured: 1.3-1.4× faster than im2col + sgemm up to 9 KB, slower from 36 KB) */
static narrow_row_fn narrow_kernel(const conv_geom_t *g) {
  if (g->FH * g->FW * g->C * g->OC > 4096) return NULL;
  switch (g->OC) {
    case 8: return narrow_row_8;
    case 16: return narrow_row_16;
    case 32: return narrow_row_32;
    default: return NULL;
  }
}

/* the padded sample's size: every tap of every output pixel inside it */
static void padded_dims(const conv_geom_t *g, int *Hp, int *Wp) {
  *Hp = MAX(g->H + g->PT, (g->OH - 1) * g->SH + (g->FH - 1) * g->DH + 1);
  *Wp = MAX(g->W + g->PL, (g->OW - 1) * g->SW + (g->FW - 1) * g->DW + 1);
}

static void conv_narrow_task(void *vctx, int64_t t, int tid) {
  conv_ctx_t *c = (conv_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int C = g->C, OC = g->OC, K = g->FH * g->FW * C;
  const int64_t r0 = t * c->rowsPerTask, r1 = MIN(r0 + c->rowsPerTask, (int64_t)g->B * g->OH);
  int Hp, Wp;
  padded_dims(g, &Hp, &Wp);
  const size_t sample = (size_t)Hp * Wp * C;
  float *xp = (float *)tdn_scratch(tid, sample * sizeof(float) + NARROW_MAX_K * sizeof(int));
  int *koff = (int *)(xp + sample);
  for (int kh = 0, k = 0; kh < g->FH; kh++)
    for (int kw = 0; kw < g->FW; kw++)
      for (int ci = 0; ci < C; ci++) koff[k++] = ((kh * g->DH) * Wp + kw * g->DW) * C + ci;
  const int fused = (c->nBias == 0 || c->nBias == OC) && (c->act == ACT_LINEAR || c->act == ACT_RELU);
  const narrow_row_fn row = narrow_kernel(g);
  int padded = -1;
  for (int64_t r = r0; r < r1; r++) {
    const int b = (int)(r / g->OH), oh = (int)(r % g->OH);
    if (b != padded) {
      memset(xp, 0, sample * sizeof(float));
      const float *xb = c->x + (size_t)b * g->H * g->W * C;
      for (int h = 0; h < g->H; h++)
        memcpy(xp + ((size_t)(h + g->PT) * Wp + g->PL) * C, xb + (size_t)h * g->W * C, sizeof(float) * g->W * C);
      padded = b;
    }
    float *o = c->out + (size_t)r * g->OW * OC;
    row(g->OW, K, xp + (size_t)oh * g->SH * Wp * C, g->SW * C, koff, c->w, o, fused && c->nBias ? c->bias : NULL,
        fused && c->act == ACT_RELU);
    if (!fused) tdn_epilogue(o, OC, 0, g->OW, OC, c->bias, c->nBias, c->act, c->alpha, c->prelu, c->nPrelu);
  }
}
#else
static void *narrow_kernel(const conv_geom_t *g) { (void)g; return NULL; }
static void conv_narrow_task(void *vctx, int64_t t, int tid) { (void)vctx; (void)t; (void)tid; }
#endif

static void conv_fwd_task(void *vctx, int64_t t, int tid) {
  conv_ctx_t *c = (conv_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int64_t r0 = t * c->rowsPerTask, r1 = MIN(r0 + c->rowsPerTask, (int64_t)g->B * g->OH);
  const int KK = g->FH * g->FW * g->C, rows = (int)(r1 - r0) * g->OW;
  float *col = (float *)tdn_scratch(tid, (size_t)rows * KK * sizeof(float));
  float *o = c->out + (size_t)r0 * g->OW * g->OC;
  const int kmajor = g->C <= KMAJOR_MAX_C;
  if (kmajor) im2col_kmajor(g, c->x, col, r0, r1);
  else im2col_rows(g, c->x, col, r0, r1);
  const int ldcol = kmajor ? rows : KK;
  if ((c->nBias == 0 || c->nBias == g->OC) && (c->act == ACT_LINEAR || c->act == ACT_RELU)) {
    tdn_sgemm_bias_relu(kmajor, 0, rows, g->OC, KK, col, ldcol, c->w, g->OC, o, g->OC, 1, c->nBias ? c->bias : NULL,
                        c->act == ACT_RELU);
    return;
  }
  tdn_sgemm(kmajor, 0, rows, g->OC, KK, 1.f, col, ldcol, c->w, g->OC, 0.f, o, g->OC, 1);
  if (c->nBias || c->act) tdn_epilogue(o, g->OC, 0, rows, g->OC, c->bias, c->nBias, c->act, c->alpha, c->prelu, c->nPrelu);
}

typedef struct { float *o; int ldc, N; const conv_ctx_t *c; } epi_ctx_t;
static void epi_rows(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  epi_ctx_t *p = (epi_ctx_t *)vctx;
  const conv_ctx_t *c = p->c;
  tdn_epilogue(p->o, p->ldc, (int)b, (int)e, p->N, c->bias, c->nBias, c->act, c->alpha, c->prelu, c->nPrelu);
}

void tdn_conv2d(const conv_geom_t *g, const float *x, const float *w, float *out, const float *bias, int nBias,
                int act, float alpha, const float *prelu, int nPrelu) {
  conv_ctx_t c;
  memset(&c, 0, sizeof c);
  c.g = g; c.x = x; c.w = w; c.out = out; c.bias = bias; c.nBias = nBias; c.act = act; c.alpha = alpha;
  c.prelu = prelu; c.nPrelu = nPrelu;
  if (is_pointwise(g)) {
    int rows = g->B * g->H * g->W;
    tdn_sgemm(0, 0, rows, g->OC, g->C, 1.f, x, g->C, w, g->OC, 0.f, out, g->OC, 1);
    if (nBias || act) {
      epi_ctx_t e = {out, g->OC, g->OC, &c};
      workers_for(epi_rows, &e, rows, 64);
    }
    return;
  }
  const int simple = (nBias == 0 || nBias == g->OC) && (act == ACT_LINEAR || act == ACT_RELU);
  if (simple && tdn_winograd_fits(g) && tdn_winograd_conv2d(g, x, w, out, nBias ? bias : NULL, act == ACT_RELU)) return;
  int ntasks;
  plan_rows(g, &c.rowsPerTask, &ntasks);
  workers_run(narrow_kernel(g) ? conv_narrow_task : conv_fwd_task, &c, ntasks);
}

/* Filter gradients add up many partial products. To give the same sums whichever thread runs
   what, the work is cut into a fixed number of contiguous groups, each summed in order into its
   own buffer (the first into dw), and the buffers are added in group order. */

static void add_groups(float *dw, float *const *acc, int groups, size_t wsize) {
  for (int k = 1; k < groups; k++) {
    const float *a = acc[k];
    for (size_t i = 0; i < wsize; i++) dw[i] += a[i];
  }
}

/* dW (+)= columns of row block t ᵀ × dy of those rows */
static void conv_bwd_filter_block(const conv_ctx_t *c, int64_t t, int tid, float *acc, int accumulate) {
  const conv_geom_t *g = c->g;
  const int64_t r0 = t * c->rowsPerTask, r1 = MIN(r0 + c->rowsPerTask, (int64_t)g->B * g->OH);
  const int KK = g->FH * g->FW * g->C, rows = (int)(r1 - r0) * g->OW;
  float *col = (float *)tdn_scratch(tid, (size_t)rows * KK * sizeof(float));
  const float *dyb = c->dy + (size_t)r0 * g->OW * g->OC;
  const float beta = accumulate ? 1.f : 0.f;
  if (g->C <= KMAJOR_MAX_C) {
    im2col_kmajor(g, c->x, col, r0, r1);
    tdn_sgemm(0, 0, KK, g->OC, rows, 1.f, col, rows, dyb, g->OC, beta, acc, g->OC, 1);
  } else {
    im2col_rows(g, c->x, col, r0, r1);
    tdn_sgemm(1, 0, KK, g->OC, rows, 1.f, col, KK, dyb, g->OC, beta, acc, g->OC, 1);
  }
}

static void conv_bwd_filter_group(void *vctx, int64_t k, int tid) {
  conv_ctx_t *c = (conv_ctx_t *)vctx;
  const int64_t t0 = k * c->ntasks / c->groups, t1 = (k + 1) * c->ntasks / c->groups;
  for (int64_t t = t0; t < t1; t++) conv_bwd_filter_block(c, t, tid, c->acc[k], t > t0);
}

void tdn_conv2d_bwd_filter(const conv_geom_t *g, const float *x, const float *dy, float *dw) {
  const int KK = g->FH * g->FW * g->C;
  const size_t wsize = (size_t)KK * g->OC;
  if (is_pointwise(g)) {
    int rows = g->B * g->H * g->W;
    tdn_sgemm(1, 0, g->C, g->OC, rows, 1.f, x, g->C, dy, g->OC, 0.f, dw, g->OC, 1);
    return;
  }
  if ((int64_t)g->B * g->OH * g->OW == 0) { memset(dw, 0, wsize * sizeof(float)); return; }
  if (tdn_winograd_fits(g) && tdn_winograd_bwd_filter(g, x, dy, dw)) return;
  conv_ctx_t c;
  memset(&c, 0, sizeof c);
  c.g = g; c.x = x; c.dy = dy;
  int ntasks;
  plan_rows(g, &c.rowsPerTask, &ntasks);
  c.ntasks = ntasks;
  c.groups = MIN(ntasks, FILTER_GROUPS);
  c.acc[0] = dw;
  for (int k = 1; k < c.groups; k++) c.acc[k] = (float *)tdn_scratch2(k, wsize * sizeof(float));
  workers_run(conv_bwd_filter_group, &c, c.groups);
  add_groups(dw, c.acc, c.groups, wsize);
}

/* tasks of whole samples (col2im scatters across rows); several samples per task when small */
static void conv_bwd_input_task(void *vctx, int64_t t, int tid) {
  conv_ctx_t *c = (conv_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int b0 = (int)t * c->samplesPerTask, b1 = MIN(b0 + c->samplesPerTask, g->B);
  const int KK = g->FH * g->FW * g->C, rows = g->OH * g->OW;
  const size_t sample = (size_t)g->H * g->W * g->C;
  float *dcol = (float *)tdn_scratch(tid, (size_t)(b1 - b0) * rows * KK * sizeof(float));
  const float *dyb = c->dy + (size_t)b0 * rows * g->OC;
  tdn_sgemm(0, 1, (b1 - b0) * rows, KK, g->OC, 1.f, dyb, g->OC, c->w, g->OC, 0.f, dcol, KK, 1);
  float *dxb = c->out + (size_t)b0 * sample;
  memset(dxb, 0, sizeof(float) * (b1 - b0) * sample);
  for (int b = b0; b < b1; b++) col2im(g, dcol + (size_t)(b - b0) * rows * KK, dxb + (size_t)(b - b0) * sample);
  if (c->reluY) {
    double *sums = c->part ? c->part + t * g->C : NULL;
    if (sums) for (int k = 0; k < g->C; k++) sums[k] = 0.0;
    /* on hot data, right after col2im */
    tdn_relu_mask_sum(dxb, c->reluY + (size_t)b0 * sample, dxb, (int64_t)(b1 - b0) * g->H * g->W, g->C, sums);
  }
}

int tdn_conv2d_bwd_input(const conv_geom_t *g, const float *dy, const float *w, float *dx, const float *reluY,
                         float *dbias) {
  if (is_pointwise(g)) {
    int rows = g->B * g->H * g->W;
    tdn_sgemm(0, 1, rows, g->C, g->OC, 1.f, dy, g->OC, w, g->OC, 0.f, dx, g->C, 1);
    if (!reluY) return 1;
    float *sums = dbias ? dbias : (float *)malloc(sizeof(float) * (size_t)g->C);
    const int ok = sums && tdn_bias_relu_grad(dx, reluY, (int64_t)rows * g->C, g->C, dx, sums);
    if (sums != dbias) free(sums);
    return ok;
  }
  if (tdn_winograd_fits(g) && tdn_winograd_bwd_input(g, dy, w, dx, reluY, dbias)) return 1;
  conv_ctx_t c;
  memset(&c, 0, sizeof c);
  c.g = g; c.dy = dy; c.w = w; c.out = dx; c.reluY = reluY;
  int rowsPerTask, ntasks;
  plan_rows(g, &rowsPerTask, &ntasks);
  c.samplesPerTask = MAX(1, rowsPerTask / g->OH);
  const int64_t tasks = (g->B + c.samplesPerTask - 1) / c.samplesPerTask;
  if (reluY && dbias) {
    c.part = (double *)malloc(sizeof(double) * (size_t)(tasks * g->C));
    if (!c.part) return 0;
  }
  workers_run(conv_bwd_input_task, &c, tasks);
  if (c.part) tdn_combine_parts(c.part, tasks, g->C, 1.0, dbias);
  free(c.part);
  return 1;
}

/* ---------------------------------------------------------------- depthwise */
typedef struct {
  const conv_geom_t *g;
  const float *x, *w, *dy;
  float *out;
  int M;
  int groups;
  float *acc[FILTER_GROUPS];
} dw_ctx_t;

static void dw_fwd_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  dw_ctx_t *c = (dw_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int C = g->C, M = c->M, OC = g->OC;
  for (int64_t r = r0; r < r1; r++) {
    int b = (int)(r / g->OH), oh = (int)(r % g->OH);
    const float *xb = c->x + (size_t)b * g->H * g->W * C;
    float *orow = c->out + (size_t)r * g->OW * OC;
    for (int ow = 0; ow < g->OW; ow++) {
      float *o = orow + (size_t)ow * OC;
      for (int k = 0; k < OC; k++) o[k] = 0.f;
      for (int kh = 0; kh < g->FH; kh++) {
        int ih = oh * g->SH - g->PT + kh * g->DH;
        if (ih < 0 || ih >= g->H) continue;
        for (int kw = 0; kw < g->FW; kw++) {
          int iw = ow * g->SW - g->PL + kw * g->DW;
          if (iw < 0 || iw >= g->W) continue;
          const float *xp = xb + ((size_t)ih * g->W + iw) * C;
          const float *wp = c->w + ((size_t)kh * g->FW + kw) * OC;
          if (M == 1) for (int k = 0; k < C; k++) o[k] += xp[k] * wp[k];
          else for (int ch = 0; ch < C; ch++) for (int m = 0; m < M; m++) o[ch * M + m] += xp[ch] * wp[ch * M + m];
        }
      }
    }
  }
}

void tdn_dwconv2d(const conv_geom_t *g, const float *x, const float *w, float *out) {
  dw_ctx_t c;
  memset(&c, 0, sizeof c);
  c.g = g; c.x = x; c.w = w; c.out = out; c.M = g->OC / g->C;
  int64_t work = (int64_t)g->OW * g->OC * g->FH * g->FW;
  workers_for(dw_fwd_rows, &c, (int64_t)g->B * g->OH, 16384 / (work ? work : 1) + 1);
}

/* gather form: rows = (b, ih) of dx */
static void dw_bwd_input_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  dw_ctx_t *c = (dw_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int C = g->C, M = c->M, OC = g->OC;
  for (int64_t r = r0; r < r1; r++) {
    int b = (int)(r / g->H), ih = (int)(r % g->H);
    const float *dyb = c->dy + (size_t)b * g->OH * g->OW * OC;
    float *dxrow = c->out + (size_t)r * g->W * C;
    for (int iw = 0; iw < g->W; iw++) {
      float *d = dxrow + (size_t)iw * C;
      for (int k = 0; k < C; k++) d[k] = 0.f;
      for (int kh = 0; kh < g->FH; kh++) {
        int num = ih + g->PT - kh * g->DH;
        if (num < 0 || num % g->SH) continue;
        int oh = num / g->SH;
        if (oh >= g->OH) continue;
        for (int kw = 0; kw < g->FW; kw++) {
          int numw = iw + g->PL - kw * g->DW;
          if (numw < 0 || numw % g->SW) continue;
          int ow = numw / g->SW;
          if (ow >= g->OW) continue;
          const float *dp = dyb + ((size_t)oh * g->OW + ow) * OC;
          const float *wp = c->w + ((size_t)kh * g->FW + kw) * OC;
          if (M == 1) for (int k = 0; k < C; k++) d[k] += dp[k] * wp[k];
          else for (int ch = 0; ch < C; ch++) { float s = 0.f; for (int m = 0; m < M; m++) s += dp[ch * M + m] * wp[ch * M + m]; d[ch] += s; }
        }
      }
    }
  }
}

void tdn_dwconv2d_bwd_input(const conv_geom_t *g, const float *dy, const float *w, float *dx) {
  dw_ctx_t c;
  memset(&c, 0, sizeof c);
  c.g = g; c.dy = dy; c.w = w; c.out = dx; c.M = g->OC / g->C;
  int64_t work = (int64_t)g->W * g->OC * g->FH * g->FW;
  workers_for(dw_bwd_input_rows, &c, (int64_t)g->B * g->H, 16384 / (work ? work : 1) + 1);
}

/* rows of group k (see FILTER_GROUPS) into the group's own buffer */
static void dw_bwd_filter_group(void *vctx, int64_t k, int tid) {
  (void)tid;
  dw_ctx_t *c = (dw_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int C = g->C, M = c->M, OC = g->OC;
  float *acc = c->acc[k];
  const size_t wsize = (size_t)g->FH * g->FW * OC;
  const int64_t rows = (int64_t)g->B * g->OH, r0 = k * rows / c->groups, r1 = (k + 1) * rows / c->groups;
  memset(acc, 0, wsize * sizeof(float));
  for (int64_t r = r0; r < r1; r++) {
    int b = (int)(r / g->OH), oh = (int)(r % g->OH);
    const float *xb = c->x + (size_t)b * g->H * g->W * C;
    const float *dyrow = c->dy + (size_t)r * g->OW * OC;
    for (int kh = 0; kh < g->FH; kh++) {
      int ih = oh * g->SH - g->PT + kh * g->DH;
      if (ih < 0 || ih >= g->H) continue;
      for (int kw = 0; kw < g->FW; kw++) {
        float *a = acc + ((size_t)kh * g->FW + kw) * OC;
        for (int ow = 0; ow < g->OW; ow++) {
          int iw = ow * g->SW - g->PL + kw * g->DW;
          if (iw < 0 || iw >= g->W) continue;
          const float *xp = xb + ((size_t)ih * g->W + iw) * C;
          const float *dp = dyrow + (size_t)ow * OC;
          if (M == 1) for (int k = 0; k < C; k++) a[k] += xp[k] * dp[k];
          else for (int ch = 0; ch < C; ch++) for (int m = 0; m < M; m++) a[ch * M + m] += xp[ch] * dp[ch * M + m];
        }
      }
    }
  }
}

void tdn_dwconv2d_bwd_filter(const conv_geom_t *g, const float *x, const float *dy, float *dw) {
  dw_ctx_t c;
  memset(&c, 0, sizeof c);
  c.g = g; c.x = x; c.dy = dy; c.M = g->OC / g->C;
  const size_t wsize = (size_t)g->FH * g->FW * g->OC;
  const int64_t rows = (int64_t)g->B * g->OH;
  c.groups = (int)MIN(rows, FILTER_GROUPS);
  if (c.groups == 0) { memset(dw, 0, wsize * sizeof(float)); return; }
  c.acc[0] = dw;
  for (int k = 1; k < c.groups; k++) c.acc[k] = (float *)tdn_scratch2(k, wsize * sizeof(float));
  workers_run(dw_bwd_filter_group, &c, c.groups);
  add_groups(dw, c.acc, c.groups, wsize);
}

/* ---------------------------------------------------------------- pooling */
typedef struct {
  const conv_geom_t *g;
  const float *x, *dy;
  float *out;
  int isMax;
  uint8_t *argmax; /* 2×2 max pooling in training: see maxpool2_rows */
} pool2d_ctx_t;

static void pool2d_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  pool2d_ctx_t *c = (pool2d_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int C = g->C;
  for (int64_t r = r0; r < r1; r++) {
    int b = (int)(r / g->OH), oh = (int)(r % g->OH);
    const float *xb = c->x + (size_t)b * g->H * g->W * C;
    float *orow = c->out + (size_t)r * g->OW * C;
    for (int ow = 0; ow < g->OW; ow++) {
      float *o = orow + (size_t)ow * C;
      int count = 0;
      for (int k = 0; k < C; k++) o[k] = c->isMax ? -INFINITY : 0.f;
      for (int kh = 0; kh < g->FH; kh++) {
        int ih = oh * g->SH - g->PT + kh * g->DH;
        if (ih < 0 || ih >= g->H) continue;
        for (int kw = 0; kw < g->FW; kw++) {
          int iw = ow * g->SW - g->PL + kw * g->DW;
          if (iw < 0 || iw >= g->W) continue;
          const float *xp = xb + ((size_t)ih * g->W + iw) * C;
          if (c->isMax) for (int k = 0; k < C; k++) o[k] = xp[k] > o[k] ? xp[k] : o[k];
          else for (int k = 0; k < C; k++) o[k] += xp[k];
          count++;
        }
      }
      if (!c->isMax) for (int k = 0; k < C; k++) o[k] = o[k] / (float)count;
    }
  }
}

/* 2×2 max pooling, stride 2, window inside the image (the usual CNN downsampling): no bounds
   checks, one pass over channels per window element. With argmax (training): each output's window
   position of the first maximum (0..3 in row order), | 0x80 when that maximum is not > 0, so that
   the backward need not read x again. */
static int maxpool2_fits(const conv_geom_t *g) {
  return g->FH == 2 && g->FW == 2 && g->SH == 2 && g->SW == 2 && g->DH == 1 && g->DW == 1 && g->PT == 0 &&
         g->PL == 0 && 2 * g->OH <= g->H && 2 * g->OW <= g->W;
}

static void maxpool2_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  pool2d_ctx_t *c = (pool2d_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int C = g->C;
  const size_t rowIn = (size_t)g->W * C;
  for (int64_t r = r0; r < r1; r++) {
    int b = (int)(r / g->OH), oh = (int)(r % g->OH);
    const float *restrict x0 = c->x + ((size_t)b * g->H + 2 * oh) * rowIn, *restrict x1 = x0 + rowIn;
    float *restrict o = c->out + (size_t)r * g->OW * C;
    if (c->argmax) {
      uint8_t *restrict am = c->argmax + (size_t)r * g->OW * C;
      for (int ow = 0; ow < g->OW; ow++, o += C, am += C, x0 += 2 * C, x1 += 2 * C)
        for (int k = 0; k < C; k++) o[k] = tdn_window_max(x0[k], x0[C + k], x1[k], x1[C + k], am + k);
      continue;
    }
    for (int ow = 0; ow < g->OW; ow++, o += C, x0 += 2 * C, x1 += 2 * C)
      for (int k = 0; k < C; k++) {
        float a = x0[k] > x0[C + k] ? x0[k] : x0[C + k], b2 = x1[k] > x1[C + k] ? x1[k] : x1[C + k];
        o[k] = a > b2 ? a : b2;
      }
  }
}

int tdn_pool2d(const conv_geom_t *g, int isMax, const float *x, float *out, uint8_t *argmax) {
  pool2d_ctx_t c = {g, x, NULL, out, isMax, NULL};
  if (isMax && maxpool2_fits(g)) {
    c.argmax = argmax;
    workers_for(maxpool2_rows, &c, (int64_t)g->B * g->OH, 16384 / ((int64_t)g->OW * g->C * 4) + 1);
    return argmax != NULL;
  }
  int64_t work = (int64_t)g->OW * g->C * g->FH * g->FW;
  workers_for(pool2d_rows, &c, (int64_t)g->B * g->OH, 16384 / (work ? work : 1) + 1);
  return 0;
}

/* Max-pool gradients: each window's dy goes to its first maximum (strict >). With relu (x is a
 * ReLU's output, ≥ 0): a window whose maximum is 0 passes nothing. The chosen position holds the
 * maximum, so that is the ReLU's own mask there, and dx is already the gradient below the ReLU;
 * part (if not NULL) gets per task and channel Σ of what passed (a bias's gradient). */
typedef struct {
  const conv_geom_t *g;
  const float *x, *dy;
  float *dx;
  int relu;
  int64_t chunk; /* samples (scatter) or window rows (tiles) per task */
  double *part;  /* [ntasks][C] or NULL */
  const uint8_t *argmax; /* from the 2×2 forward, or NULL */
} mpg_ctx_t;

/* one window row of channels: v to the position in am (none when am has a `skip` bit), 0 elsewhere;
 * rowSum += what was placed. Not inlined: inside the caller GCC does not vectorise it. */
__attribute__((noinline)) static void scatter2x2(const uint8_t *restrict am, const float *restrict dy, float *restrict e0, float *restrict e1,
                       float *restrict rowSum, int n, int C, int32_t skip) {
  for (int k = 0; k < n; k++) {
    const int32_t a = am[k];
    const int32_t p = (a & skip) ? 4 : (a & 3);
    const float v = dy[k];
    e0[k] = tdn_keep_if(v, p == 0);
    e0[C + k] = tdn_keep_if(v, p == 1);
    e1[k] = tdn_keep_if(v, p == 2);
    e1[C + k] = tdn_keep_if(v, p == 3);
    rowSum[k] += tdn_keep_if(v, p < 4);
  }
}

/* 2×2 windows from the forward's argmax: dx written once per element, x not read */
static void maxpool2_grad_argmax(void *vctx, int64_t t, int tid) {
  (void)tid;
  mpg_ctx_t *c = (mpg_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int C = g->C, W = g->W;
  const int32_t skip = c->relu ? 0x80 : 0;
  float rowSum[512];
  double *sums = c->part ? c->part + t * C : NULL;
  if (sums) for (int k = 0; k < C; k++) sums[k] = 0.0;
  for (int64_t r = t * c->chunk; r < MIN((t + 1) * c->chunk, (int64_t)g->B * g->OH); r++) {
    const int b = (int)(r / g->OH), oh = (int)(r % g->OH);
    float *dxb = c->dx + (size_t)b * g->H * W * C;
    float *restrict d0 = dxb + (size_t)2 * oh * W * C, *restrict d1 = d0 + (size_t)W * C;
    const float *restrict dyr = c->dy + (size_t)r * g->OW * C;
    const uint8_t *restrict amr = c->argmax + (size_t)r * g->OW * C;
    for (int c0 = 0; c0 < C; c0 += 512) {
      const int cn = MIN(512, C - c0);
      for (int k = 0; k < cn; k++) rowSum[k] = 0.f;
      for (int ow = 0; ow < g->OW; ow++) {
        const float *restrict dyp = dyr + (size_t)ow * C + c0;
        const uint8_t *restrict am = amr + (size_t)ow * C + c0;
        float *restrict e0 = d0 + (size_t)2 * ow * C + c0, *restrict e1 = d1 + (size_t)2 * ow * C + c0;
        scatter2x2(am, dyp, e0, e1, rowSum, cn, C, skip);
      }
      if (sums)
        for (int k = 0; k < cn; k++) sums[c0 + k] += rowSum[k];
    }
    if (2 * g->OW < W) {
      memset(d0 + (size_t)2 * g->OW * C, 0, sizeof(float) * (size_t)(W - 2 * g->OW) * C);
      memset(d1 + (size_t)2 * g->OW * C, 0, sizeof(float) * (size_t)(W - 2 * g->OW) * C);
    }
    if (oh == g->OH - 1 && 2 * g->OH < g->H)
      memset(dxb + (size_t)2 * g->OH * W * C, 0, sizeof(float) * (size_t)(g->H - 2 * g->OH) * W * C);
  }
}

/* scatter per sample, any geometry: dx zeroed, then each window's dy added at its maximum */
static void maxpool_grad_samples(void *vctx, int64_t t, int tid) {
  (void)tid;
  mpg_ctx_t *c = (mpg_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int C = g->C;
  int32_t posbuf[512];
  float maxbuf[512];
  double *sums = c->part ? c->part + t * C : NULL;
  if (sums) for (int k = 0; k < C; k++) sums[k] = 0.0;
  for (int64_t b = t * c->chunk; b < MIN((t + 1) * c->chunk, g->B); b++) {
    const float *xb = c->x + (size_t)b * g->H * g->W * C;
    float *dxb = c->dx + (size_t)b * g->H * g->W * C;
    memset(dxb, 0, sizeof(float) * (size_t)g->H * g->W * C);
    for (int oh = 0; oh < g->OH; oh++) {
      for (int ow = 0; ow < g->OW; ow++) {
        const float *dyp = c->dy + (((size_t)b * g->OH + oh) * g->OW + ow) * C;
        for (int c0 = 0; c0 < C; c0 += 512) {
          int cn = MIN(512, C - c0);
          for (int k = 0; k < cn; k++) { maxbuf[k] = -INFINITY; posbuf[k] = -1; }
          for (int kh = 0; kh < g->FH; kh++) {
            int ih = oh * g->SH - g->PT + kh * g->DH;
            if (ih < 0 || ih >= g->H) continue;
            for (int kw = 0; kw < g->FW; kw++) {
              int iw = ow * g->SW - g->PL + kw * g->DW;
              if (iw < 0 || iw >= g->W) continue;
              const int pos = ih * g->W + iw;
              const float *xp = xb + (size_t)pos * C + c0;
              for (int k = 0; k < cn; k++) {
                const int32_t gt = xp[k] > maxbuf[k];
                maxbuf[k] = tdn_select(gt, xp[k], maxbuf[k]);
                posbuf[k] = (pos & -gt) | (posbuf[k] & ~-gt);
              }
            }
          }
          for (int k = 0; k < cn; k++) {
            if (posbuf[k] < 0 || (c->relu && !(maxbuf[k] > 0.f))) continue;
            dxb[(size_t)posbuf[k] * C + c0 + k] += dyp[c0 + k];
            if (sums) sums[c0 + k] += dyp[c0 + k];
          }
        }
      }
    }
  }
}

/* Non-overlapping windows (stride == window, no padding, no dilation; the common 2x2/2 case):
 * every dx element belongs to at most one window, so rows of windows are independent and each
 * dx element is written exactly once (no memset, no scattered adds). */
static void maxpool_grad_tiles(void *vctx, int64_t t, int tid) {
  (void)tid;
  mpg_ctx_t *c = (mpg_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int C = g->C, FH = g->FH, FW = g->FW, W = g->W, relu = c->relu;
  int32_t pos[512];
  float best[512], rowSum[512];
  double *sums = c->part ? c->part + t * C : NULL;
  if (sums) for (int k = 0; k < C; k++) sums[k] = 0.0;
  for (int64_t r = t * c->chunk; r < MIN((t + 1) * c->chunk, (int64_t)g->B * g->OH); r++) {
    const int b = (int)(r / g->OH), oh = (int)(r % g->OH);
    const float *xb = c->x + (size_t)b * g->H * W * C;
    float *dxb = c->dx + (size_t)b * g->H * W * C;
    const int ih0 = oh * FH;
    for (int c0 = 0; c0 < C; c0 += 512) {
      const int cn = MIN(512, C - c0);
      for (int k = 0; k < cn; k++) rowSum[k] = 0.f;
      for (int ow = 0; ow < g->OW; ow++) {
        const float *dyp = c->dy + (((size_t)b * g->OH + oh) * g->OW + ow) * C + c0;
        const int iw0 = ow * FW;
        for (int k = 0; k < cn; k++) { best[k] = -INFINITY; pos[k] = -1; }
        for (int kh = 0; kh < FH; kh++)
          for (int kw = 0; kw < FW; kw++) {
            const int p = kh * FW + kw;
            const float *xp = xb + ((size_t)(ih0 + kh) * W + iw0 + kw) * C + c0;
            for (int k = 0; k < cn; k++) {
              const int32_t gt = xp[k] > best[k];
              best[k] = tdn_select(gt, xp[k], best[k]);
              pos[k] = (p & -gt) | (pos[k] & ~-gt);
            }
          }
        if (relu)
          for (int k = 0; k < cn; k++) pos[k] = best[k] > 0.f ? pos[k] : -1;
        if (sums)
          for (int k = 0; k < cn; k++) rowSum[k] += tdn_keep_if(dyp[k], pos[k] >= 0);
        for (int kh = 0; kh < FH; kh++)
          for (int kw = 0; kw < FW; kw++) {
            const int p = kh * FW + kw;
            float *d = dxb + ((size_t)(ih0 + kh) * W + iw0 + kw) * C + c0;
            for (int k = 0; k < cn; k++) d[k] = tdn_keep_if(dyp[k], pos[k] == p);
          }
      }
      if (sums)
        for (int k = 0; k < cn; k++) sums[c0 + k] += rowSum[k];
    }
    /* columns right of the last window */
    if (g->OW * FW < W)
      for (int kh = 0; kh < FH; kh++)
        memset(dxb + ((size_t)(ih0 + kh) * W + g->OW * FW) * C, 0, sizeof(float) * (size_t)(W - g->OW * FW) * C);
    /* rows below the last window row */
    if (oh == g->OH - 1 && g->OH * FH < g->H)
      memset(dxb + (size_t)g->OH * FH * W * C, 0, sizeof(float) * (size_t)(g->H - g->OH * FH) * W * C);
  }
}

int tdn_maxpool_grad(const conv_geom_t *g, const float *dy, const float *x, float *dx, int relu, float *dbias,
                     const uint8_t *argmax) {
  if (argmax && !maxpool2_fits(g)) return 0;
  const int tiles = g->SH == g->FH && g->SW == g->FW && g->PT == 0 && g->PL == 0 && g->DH == 1 && g->DW == 1 &&
                    g->OH > 0 && g->OH * g->FH <= g->H && g->OW * g->FW <= g->W;
  const int64_t units = tiles ? (int64_t)g->B * g->OH : g->B;
  const int64_t free_tasks = MIN(units, 4 * (int64_t)workers_threads());
  const int64_t ntasks = dbias ? tdn_sum_tasks(units) : (free_tasks > 0 ? free_tasks : 1);
  double *part = dbias ? (double *)malloc(sizeof(double) * (size_t)(ntasks * g->C)) : NULL;
  if (dbias && !part) return 0;
  mpg_ctx_t c = {g, x, dy, dx, relu, (units + ntasks - 1) / ntasks, part, argmax};
  workers_run(argmax ? maxpool2_grad_argmax : tiles ? maxpool_grad_tiles : maxpool_grad_samples, &c, ntasks);
  if (dbias) tdn_combine_parts(part, ntasks, g->C, 1.0, dbias);
  free(part);
  return 1;
}

/* gather form, uniform multiplier 1 / (FH * FW) as tfjs-backend-cpu */
static void avgpool_grad_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  pool2d_ctx_t *c = (pool2d_ctx_t *)vctx;
  const conv_geom_t *g = c->g;
  const int C = g->C;
  const float mult = 1.f / (float)(g->FH * g->FW);
  for (int64_t r = r0; r < r1; r++) {
    int b = (int)(r / g->H), ih = (int)(r % g->H);
    const float *dyb = c->dy + (size_t)b * g->OH * g->OW * C;
    float *dxrow = c->out + (size_t)r * g->W * C;
    for (int iw = 0; iw < g->W; iw++) {
      float *d = dxrow + (size_t)iw * C;
      for (int k = 0; k < C; k++) d[k] = 0.f;
      for (int kh = 0; kh < g->FH; kh++) {
        int num = ih + g->PT - kh * g->DH;
        if (num < 0 || num % g->SH) continue;
        int oh = num / g->SH;
        if (oh >= g->OH) continue;
        for (int kw = 0; kw < g->FW; kw++) {
          int numw = iw + g->PL - kw * g->DW;
          if (numw < 0 || numw % g->SW) continue;
          int ow = numw / g->SW;
          if (ow >= g->OW) continue;
          const float *dp = dyb + ((size_t)oh * g->OW + ow) * C;
          for (int k = 0; k < C; k++) d[k] += dp[k];
        }
      }
      for (int k = 0; k < C; k++) d[k] *= mult;
    }
  }
}

void tdn_avgpool_grad(const conv_geom_t *g, const float *dy, float *dx) {
  pool2d_ctx_t c = {g, NULL, dy, dx, 0, NULL};
  int64_t work = (int64_t)g->W * g->C * g->FH * g->FW;
  workers_for(avgpool_grad_rows, &c, (int64_t)g->B * g->H, 16384 / (work ? work : 1) + 1);
}
