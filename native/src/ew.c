/* Element-wise kernels, reductions, softmax and the fused Adam update.
 * Plain loops written so that GCC vectorises them; big ones are split over the workers. */
#include "ew.h"
#include "common.h"
#include "workers.h"
#include <stdlib.h>

#define EW_GRAIN 32768

/* ---------------------------------------------------------------- unary */
typedef struct {
  int op;
  const float *x;
  float *y;
  float alpha, beta;
} un_ctx_t;

static void unary_range(int op, const float *restrict x, float *restrict y, int64_t n, float alpha, float beta) {
  int64_t i;
  switch (op) {
    case U_RELU: for (i = 0; i < n; i++) y[i] = x[i] < 0.f ? 0.f : x[i]; break;
    case U_RELU6: for (i = 0; i < n; i++) { float v = x[i] < 0.f ? 0.f : x[i]; y[i] = v > 6.f ? 6.f : v; } break;
    case U_EXP: for (i = 0; i < n; i++) y[i] = expf(x[i]); break;
    case U_LOG: for (i = 0; i < n; i++) y[i] = logf(x[i]); break;
    case U_NEG: for (i = 0; i < n; i++) y[i] = -x[i]; break;
    case U_SQRT: for (i = 0; i < n; i++) y[i] = sqrtf(x[i]); break;
    case U_RSQRT: for (i = 0; i < n; i++) y[i] = 1.f / sqrtf(x[i]); break;
    case U_SQUARE: for (i = 0; i < n; i++) y[i] = x[i] * x[i]; break;
    case U_ABS: for (i = 0; i < n; i++) y[i] = fabsf(x[i]); break;
    case U_SIGMOID: for (i = 0; i < n; i++) y[i] = 1.f / (1.f + expf(-x[i])); break;
    case U_TANH: for (i = 0; i < n; i++) y[i] = tanhf(x[i]); break;
    case U_STEP: for (i = 0; i < n; i++) { float v = x[i]; y[i] = v != v ? v : (v > 0.f ? 1.f : alpha); } break;
    case U_RECIPROCAL: for (i = 0; i < n; i++) y[i] = 1.f / x[i]; break;
    case U_ELU: for (i = 0; i < n; i++) y[i] = x[i] >= 0.f ? x[i] : expm1f(x[i]); break;
    case U_LEAKYRELU: for (i = 0; i < n; i++) y[i] = x[i] < 0.f ? alpha * x[i] : x[i]; break;
    case U_SOFTPLUS: {
      /* same thresholds as tfjs-backend-cpu */
      const float thr = logf(1.1920928955078125e-7f) + 2.f;
      for (i = 0; i < n; i++) {
        float v = x[i];
        float e = expf(v);
        y[i] = v < thr ? e : (v > -thr ? v : log1pf(e));
      }
      break;
    }
    case U_LOG1P: for (i = 0; i < n; i++) y[i] = log1pf(x[i]); break;
    case U_EXPM1: for (i = 0; i < n; i++) y[i] = expm1f(x[i]); break;
    case U_CLIP: for (i = 0; i < n; i++) { float v = x[i]; y[i] = v > beta ? beta : (v < alpha ? alpha : v); } break;
    case U_SCALE_SHIFT: for (i = 0; i < n; i++) y[i] = x[i] * alpha + beta; break;
    default: break;
  }
}

static void unary_task(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  un_ctx_t *c = (un_ctx_t *)vctx;
  unary_range(c->op, c->x + b, c->y + b, e - b, c->alpha, c->beta);
}

void tdn_unary(int op, const float *x, float *y, int64_t n, float alpha, float beta) {
  un_ctx_t c = {op, x, y, alpha, beta};
  int64_t grain = (op == U_EXP || op == U_LOG || op == U_SIGMOID || op == U_TANH || op == U_ELU ||
                   op == U_SOFTPLUS || op == U_LOG1P || op == U_EXPM1)
                      ? 4096
                      : EW_GRAIN;
  workers_for(unary_task, &c, n, grain);
}

/* ---------------------------------------------------------------- binary */
static inline float fmax_js(float a, float b) {
  float r = a > b ? a : b;
  r = a != a ? a : r;
  return b != b ? b : r;
}
/* Math.pow semantics where they differ from C's powf: pow(±1, ±Inf) and pow(1, NaN) are NaN */
static inline float pow_js(float a, float b) {
  if (b == 2.f) return a * a;
  if (b != b) return b;
  if (fabsf(a) == 1.f && isinf(b)) return NAN;
  return powf(a, b);
}
static inline float fmin_js(float a, float b) {
  float r = a < b ? a : b;
  r = a != a ? a : r;
  return b != b ? b : r;
}

#define BIN_LOOPS(EXPR)                                                              \
  if (sa && sb) { for (int64_t i = 0; i < n; i++) { float x = a[i], y = b[i]; o[i] = (EXPR); } } \
  else if (sa) { const float y = b[0]; for (int64_t i = 0; i < n; i++) { float x = a[i]; o[i] = (EXPR); } } \
  else if (sb) { const float x = a[0]; for (int64_t i = 0; i < n; i++) { float y = b[i]; o[i] = (EXPR); } } \
  else { float x = a[0], y = b[0]; float r = (EXPR); for (int64_t i = 0; i < n; i++) o[i] = r; }

static void binary_row(int op, const float *restrict a, int sa, const float *restrict b, int sb, float *restrict o,
                       int64_t n) {
  switch (op) {
    case B_ADD: BIN_LOOPS(x + y); break;
    case B_SUB: BIN_LOOPS(x - y); break;
    case B_MUL: BIN_LOOPS(x * y); break;
    case B_DIV: BIN_LOOPS(x / y); break;
    case B_MAX: BIN_LOOPS(fmax_js(x, y)); break;
    case B_MIN: BIN_LOOPS(fmin_js(x, y)); break;
    case B_SQDIFF: BIN_LOOPS((x - y) * (x - y)); break;
    case B_POW: BIN_LOOPS(pow_js(x, y)); break;
    default: break;
  }
}

typedef struct {
  int op;
  const float *a, *b;
  float *o;
  int64_t d[4], as[4], bs[4];
} bin_ctx_t;

/* rows of the [d0*d1*d2, d3] view */
static void binary_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  bin_ctx_t *c = (bin_ctx_t *)vctx;
  const int64_t d1 = c->d[1], d2 = c->d[2], n = c->d[3];
  const int sa = c->as[3] != 0, sb = c->bs[3] != 0;
  for (int64_t r = r0; r < r1; r++) {
    int64_t i2 = r % d2, t = r / d2;
    int64_t i1 = t % d1, i0 = t / d1;
    const float *a = c->a + i0 * c->as[0] + i1 * c->as[1] + i2 * c->as[2];
    const float *b = c->b + i0 * c->bs[0] + i1 * c->bs[1] + i2 * c->bs[2];
    binary_row(c->op, a, sa, b, sb, c->o + r * n, n);
  }
}

static void binary_flat(void *vctx, int64_t b0, int64_t b1, int tid) {
  (void)tid;
  bin_ctx_t *c = (bin_ctx_t *)vctx;
  const int sa = c->as[3] != 0, sb = c->bs[3] != 0;
  binary_row(c->op, c->a + (sa ? b0 : 0), sa, c->b + (sb ? b0 : 0), sb, c->o + b0, b1 - b0);
}

void tdn_binary(int op, const float *a, const float *b, float *o, const int64_t d[4], const int64_t as[4],
                const int64_t bs[4]) {
  bin_ctx_t c;
  c.op = op; c.a = a; c.b = b; c.o = o;
  for (int i = 0; i < 4; i++) { c.d[i] = d[i]; c.as[i] = as[i]; c.bs[i] = bs[i]; }
  int64_t rows = d[0] * d[1] * d[2], n = d[3];
  if (rows == 1) {
    workers_for(binary_flat, &c, n, EW_GRAIN);
  } else {
    int64_t grain = EW_GRAIN / (n > 0 ? n : 1);
    workers_for(binary_rows, &c, rows, grain < 1 ? 1 : grain);
  }
}

/* ---------------------------------------------------------------- reductions */
typedef struct {
  int op;
  const float *x;
  float *o;
  int64_t outer, R, inner;
  double partial[64];
  int nparts;
} red_ctx_t;

static double reduce_contig(int op, const float *restrict x, int64_t R) {
  if (op == R_SUM || op == R_MEAN) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= R; i += 8)
      for (int k = 0; k < 8; k++) acc[k] += (double)x[i + k];
    double s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < R; i++) s += (double)x[i];
    return s;
  } else if (op == R_MAX) {
    float m = x[0];
    for (int64_t i = 1; i < R; i++) { float v = x[i]; m = (v > m || v != v) ? v : m; }
    return m;
  } else if (op == R_MIN) {
    float m = x[0];
    for (int64_t i = 1; i < R; i++) { float v = x[i]; m = (v < m || v != v) ? v : m; }
    return m;
  } else {
    double p = 1.0;
    for (int64_t i = 0; i < R; i++) p *= (double)x[i];
    return p;
  }
}

/* out[o, j] over rows r of x[o, r, j] for j in [j0, j1) */
static void reduce_strided(int op, const float *restrict x, float *restrict out, int64_t R, int64_t inner, int64_t j0,
                           int64_t j1) {
  int64_t w = j1 - j0;
  if (op == R_SUM || op == R_MEAN) {
    double acc[256];
    for (int64_t jb = j0; jb < j1; jb += 256) {
      int64_t je = MIN(jb + 256, j1), m = je - jb;
      for (int64_t j = 0; j < m; j++) acc[j] = 0.0;
      for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * inner + jb;
        for (int64_t j = 0; j < m; j++) acc[j] += (double)xr[j];
      }
      double scale = op == R_MEAN ? 1.0 / (double)R : 1.0;
      for (int64_t j = 0; j < m; j++) out[jb + j] = (float)(acc[j] * scale);
    }
  } else if (op == R_MAX || op == R_MIN) {
    float *o = out + j0;
    memcpy(o, x + j0, sizeof(float) * (size_t)w);
    for (int64_t r = 1; r < R; r++) {
      const float *xr = x + r * inner + j0;
      if (op == R_MAX)
        for (int64_t j = 0; j < w; j++) { float v = xr[j], m = o[j]; o[j] = (v > m || v != v) ? v : m; }
      else
        for (int64_t j = 0; j < w; j++) { float v = xr[j], m = o[j]; o[j] = (v < m || v != v) ? v : m; }
    }
  } else {
    for (int64_t j = j0; j < j1; j++) {
      double p = 1.0;
      for (int64_t r = 0; r < R; r++) p *= (double)x[r * inner + j];
      out[j] = (float)p;
    }
  }
}

static void red_outer(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  red_ctx_t *c = (red_ctx_t *)vctx;
  for (int64_t o = b; o < e; o++) {
    const float *x = c->x + o * c->R * c->inner;
    if (c->inner == 1) {
      double v = reduce_contig(c->op, x, c->R);
      c->o[o] = (float)(c->op == R_MEAN ? v / (double)c->R : v);
    } else {
      reduce_strided(c->op, x, c->o + o * c->inner, c->R, c->inner, 0, c->inner);
    }
  }
}

static void red_inner(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  red_ctx_t *c = (red_ctx_t *)vctx;
  for (int64_t o = 0; o < c->outer; o++)
    reduce_strided(c->op, c->x + o * c->R * c->inner, c->o + o * c->inner, c->R, c->inner, b, e);
}

static void red_split(void *vctx, int64_t t, int tid) {
  (void)tid;
  red_ctx_t *c = (red_ctx_t *)vctx;
  int64_t chunk = (c->R + c->nparts - 1) / c->nparts;
  int64_t b = t * chunk, e = MIN(b + chunk, c->R);
  c->partial[t] = b < e ? reduce_contig(c->op, c->x + b, e - b) : (c->op == R_PROD ? 1.0 : 0.0);
  if (b >= e && (c->op == R_MAX || c->op == R_MIN)) c->partial[t] = c->x[0];
}

/* outer == 1, few columns, many rows (bias and batch-norm gradients: sum over N·H·W per
 * channel): each task reduces a block of rows into its own partial row, then they combine */
typedef struct { int op; const float *x; int64_t R, inner, chunk; double *part; } rsplit_ctx_t;

static void rows_split_task(void *vctx, int64_t t, int tid) {
  (void)tid;
  rsplit_ctx_t *c = (rsplit_ctx_t *)vctx;
  const int64_t inner = c->inner, b = t * c->chunk, e = MIN(b + c->chunk, c->R);
  double *p = c->part + t * inner;
  if (b >= e) { for (int64_t j = 0; j < inner; j++) p[j] = c->op == R_MAX ? -INFINITY : (c->op == R_MIN ? INFINITY : 0.0); return; }
  if (c->op == R_SUM || c->op == R_MEAN) {
    for (int64_t j = 0; j < inner; j++) p[j] = 0.0;
    for (int64_t r = b; r < e; r++) {
      const float *xr = c->x + r * inner;
      for (int64_t j = 0; j < inner; j++) p[j] += (double)xr[j];
    }
  } else {
    const float *x0 = c->x + b * inner;
    for (int64_t j = 0; j < inner; j++) p[j] = x0[j];
    for (int64_t r = b + 1; r < e; r++) {
      const float *xr = c->x + r * inner;
      if (c->op == R_MAX)
        for (int64_t j = 0; j < inner; j++) { double v = xr[j], m = p[j]; p[j] = (v > m || v != v) ? v : m; }
      else
        for (int64_t j = 0; j < inner; j++) { double v = xr[j], m = p[j]; p[j] = (v < m || v != v) ? v : m; }
    }
  }
}

void tdn_reduce(int op, const float *x, float *o, int64_t outer, int64_t R, int64_t inner) {
  red_ctx_t c;
  c.op = op; c.x = x; c.o = o; c.outer = outer; c.R = R; c.inner = inner; c.nparts = 1;
  if (R == 0) {
    for (int64_t i = 0; i < outer * inner; i++) o[i] = (op == R_PROD) ? 1.f : (op == R_MAX ? -INFINITY : (op == R_MIN ? INFINITY : (op == R_MEAN ? NAN : 0.f)));
    return;
  }
  int T = workers_threads();
  int64_t total = outer * R * inner;
  if (T > 1 && total >= 2 * EW_GRAIN) {
    if (outer >= T) {
      int64_t grain = EW_GRAIN / (R * inner) + 1;
      workers_for(red_outer, &c, outer, grain);
      return;
    }
    if (inner >= 64 * T) {
      workers_for(red_inner, &c, inner, 64);
      return;
    }
    if (outer == 1 && inner > 1 && inner <= 4096 && op != R_PROD && R >= 4 * T) {
      int64_t nparts = MIN(4 * (int64_t)T, 64);
      double *part = (double *)malloc(sizeof(double) * (size_t)(nparts * inner));
      if (part) {
        rsplit_ctx_t rc = {op, x, R, inner, (R + nparts - 1) / nparts, part};
        workers_run(rows_split_task, &rc, nparts);
        for (int64_t j = 0; j < inner; j++) {
          double acc = part[j];
          for (int64_t t = 1; t < nparts; t++) {
            double v = part[t * inner + j];
            if (op == R_SUM || op == R_MEAN) acc += v;
            else if (op == R_MAX) acc = (v > acc || v != v) ? v : acc;
            else acc = (v < acc || v != v) ? v : acc;
          }
          o[j] = (float)(op == R_MEAN ? acc / (double)R : acc);
        }
        free(part);
        return;
      }
    }
    if (outer == 1 && inner == 1) {
      c.nparts = T > 64 ? 64 : T;
      workers_run(red_split, &c, c.nparts);
      double acc = c.partial[0];
      for (int t = 1; t < c.nparts; t++) {
        double v = c.partial[t];
        if (op == R_SUM || op == R_MEAN) acc += v;
        else if (op == R_PROD) acc *= v;
        else if (op == R_MAX) acc = (v > acc || v != v) ? v : acc;
        else acc = (v < acc || v != v) ? v : acc;
      }
      o[0] = (float)(op == R_MEAN ? acc / (double)R : acc);
      return;
    }
  }
  red_outer(&c, 0, outer, 0);
}

void tdn_argreduce(int isMax, const float *x, int32_t *o, int64_t outer, int64_t R, int64_t inner) {
  for (int64_t ou = 0; ou < outer; ou++) {
    const float *xb = x + ou * R * inner;
    for (int64_t j = 0; j < inner; j++) {
      float m = xb[j];
      int32_t mi = 0;
      for (int64_t r = 1; r < R; r++) {
        float v = xb[r * inner + j];
        if (isMax ? v > m : v < m) { m = v; mi = (int32_t)r; }
      }
      o[ou * inner + j] = mi;
    }
  }
}

/* ---------------------------------------------------------------- softmax */
typedef struct { const float *x; float *y; int64_t cols; } sm_ctx_t;

static void softmax_rows(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  sm_ctx_t *c = (sm_ctx_t *)vctx;
  const int64_t n = c->cols;
  for (int64_t r = b; r < e; r++) {
    const float *x = c->x + r * n;
    float *y = c->y + r * n;
    float m = x[0];
    for (int64_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) { float v = expf(x[i] - m); y[i] = v; s += v; }
    const float inv = (float)s;
    for (int64_t i = 0; i < n; i++) y[i] = y[i] / inv;
  }
}

void tdn_softmax(const float *x, float *y, int64_t rows, int64_t cols) {
  sm_ctx_t c = {x, y, cols};
  int64_t grain = 8192 / (cols > 0 ? cols : 1);
  workers_for(softmax_rows, &c, rows, grain < 1 ? 1 : grain);
}

/* ---------------------------------------------------------------- soft KL */
/* KL(softmax(t/T) ‖ softmax(s/T)) averaged over the rows, and its gradient with respect to s,
   (softmax(s/T) − softmax(t/T)) / (T · rows), in one pass (the kd loss: logits are rows of a
   few classes, so this is a handful of small loops in place of ~35 tfjs kernels). Single-threaded:
   the sum over rows is in row order. */
void tdn_soft_kl(const float *s, const float *t, int64_t rows, int64_t cols, float T, float *loss, float *grad) {
  const float inv = 1.f / T, scale = 1.f / (T * (float)rows);
  double total = 0.0;
  for (int64_t r = 0; r < rows; r++) {
    const float *sr = s + r * cols, *tr = t + r * cols;
    float *gr = grad + r * cols;
    float ms = -INFINITY, mt = -INFINITY;
    for (int64_t k = 0; k < cols; k++) {
      ms = sr[k] * inv > ms ? sr[k] * inv : ms;
      mt = tr[k] * inv > mt ? tr[k] * inv : mt;
    }
    float zs = 0.f, zt = 0.f;
    for (int64_t k = 0; k < cols; k++) {
      zs += expf(sr[k] * inv - ms);
      zt += expf(tr[k] * inv - mt);
    }
    const float ls = ms + logf(zs), lt = mt + logf(zt);
    float kl = 0.f;
    for (int64_t k = 0; k < cols; k++) {
      const float logPs = sr[k] * inv - ls, logPt = tr[k] * inv - lt, pt = expf(logPt);
      kl += pt * (logPt - logPs);
      gr[k] = (expf(logPs) - pt) * scale;
    }
    total += kl;
  }
  *loss = (float)(total / (double)rows);
}

/* ---------------------------------------------------------------- label cross-entropy */
/* Cross-entropy of logits with int32 labels, targets (1 − ε)·onehot + ε/K, averaged over the labeled
   rows (label ≥ 0; a row labeled −1 adds nothing; none labeled gives 0), and its gradient
   (softmax(s) · Σ target − target) / labeled. A label ≥ K has an all-zero one-hot, as tf.oneHot
   gives it (its targets then sum to ε, not 1).
   Single-threaded: the sum over rows is in row order. */
void tdn_label_ce(const float *s, const int32_t *labels, int64_t rows, int64_t cols, float smoothing, float *loss,
                  float *grad) {
  int64_t labeled = 0;
  for (int64_t r = 0; r < rows; r++) labeled += labels[r] >= 0;
  const float scale = 1.f / (float)(labeled > 0 ? labeled : 1), uniform = smoothing / (float)cols;
  double total = 0.0;
  for (int64_t r = 0; r < rows; r++) {
    const float *sr = s + r * cols;
    float *gr = grad + r * cols;
    const int32_t y = labels[r];
    if (y < 0) {
      for (int64_t k = 0; k < cols; k++) gr[k] = 0.f;
      continue;
    }
    float m = -INFINITY;
    for (int64_t k = 0; k < cols; k++) m = sr[k] > m ? sr[k] : m;
    float z = 0.f;
    for (int64_t k = 0; k < cols; k++) z += expf(sr[k] - m);
    const float lse = m + logf(z);
    /* the targets' sum: 1, or ε when the label is past the classes */
    const float mass = (y < cols ? 1.f - smoothing : 0.f) + smoothing;
    float ce = 0.f;
    for (int64_t k = 0; k < cols; k++) {
      const float logP = sr[k] - lse, target = (k == y ? 1.f - smoothing : 0.f) + uniform;
      ce -= target * logP;
      gr[k] = (expf(logP) * mass - target) * scale;
    }
    total += ce;
  }
  *loss = (float)(total * (double)scale);
}

/* ---------------------------------------------------------------- adam */
typedef struct {
  const float *w, *g, *m, *v;
  float *wo, *mo, *vo;
  float b1, ob1, b2, ob2, nlr, eps, c1, c2;
} adam_ctx_t;

/* The outputs may alias their inputs (in-place update): every iteration reads and writes
 * only index i, so ivdep is correct and keeps the loop vectorised without alias checks. */
static void adam_range(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  adam_ctx_t *c = (adam_ctx_t *)vctx;
  const float b1 = c->b1, b2 = c->b2, ob1 = c->ob1, ob2 = c->ob2, nlr = c->nlr, eps = c->eps;
  const float r1 = 1.f / c->c1, r2 = 1.f / c->c2;
  const float *w = c->w, *g = c->g, *m = c->m, *v = c->v;
  float *wo = c->wo, *mo = c->mo, *vo = c->vo;
#pragma GCC ivdep
  for (int64_t i = b; i < e; i++) {
    float gi = g[i];
    float m1 = m[i] * b1 + gi * ob1;
    float v1 = v[i] * b2 + (gi * gi) * ob2;
    float mh = m1 * r1, vh = v1 * r2;
    float w1 = (mh / (sqrtf(vh) + eps)) * nlr + w[i];
    mo[i] = m1;
    vo[i] = v1;
    wo[i] = w1;
  }
}

void tdn_adam(const float *w, const float *g, const float *m, const float *v, float *wo, float *mo, float *vo,
              int64_t n, float beta1, float ob1, float beta2, float ob2, float neglr, float eps, float c1, float c2) {
  adam_ctx_t c = {w, g, m, v, wo, mo, vo, beta1, ob1, beta2, ob2, neglr, eps, c1, c2};
  workers_for(adam_range, &c, n, 16384);
}

/* ---------------------------------------------------------------- addN */
typedef struct { const float **xs; int k; float *o; } addn_ctx_t;

static void addn_range(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  addn_ctx_t *c = (addn_ctx_t *)vctx;
  float *restrict o = c->o;
  const float *restrict x0 = c->xs[0];
  for (int64_t i = b; i < e; i++) o[i] = x0[i];
  for (int j = 1; j < c->k; j++) {
    const float *restrict x = c->xs[j];
    for (int64_t i = b; i < e; i++) o[i] += x[i];
  }
}

void tdn_addn(const float **xs, int k, float *o, int64_t n) {
  addn_ctx_t c = {xs, k, o};
  workers_for(addn_range, &c, n, EW_GRAIN);
}

/* ---------------------------------------------------------------- batch norm */
typedef struct { const float *x; float *y; const float *m, *a, *o; int64_t L; } bn_ctx_t;

static void bn_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  bn_ctx_t *c = (bn_ctx_t *)vctx;
  const int64_t L = c->L;
  const float *restrict m = c->m, *restrict a = c->a, *restrict o = c->o;
  for (int64_t r = r0; r < r1; r++) {
    const float *restrict x = c->x + r * L;
    float *restrict y = c->y + r * L;
    for (int64_t j = 0; j < L; j++) y[j] = (x[j] - m[j]) * a[j] + o[j];
  }
}

/* y = offset + (x - mean) * scale / sqrt(variance + eps) over rows of L; each parameter has
 * length L or 1 (scale/offset may be NULL: 1 and 0). */
int tdn_batchnorm(const float *x, float *y, int64_t n, int64_t L, const float *mean, int64_t lm, const float *var,
                  int64_t lv, const float *scale, int64_t ls, const float *offset, int64_t lo, float eps) {
  if (L <= 0 || n % L) return 0;
  /* few channels (a narrow layer): rows of k·L values with the parameters repeated k times,
     so that the inner loop is long enough to vectorize well */
  int64_t k = 1;
  while (k * L < 64 && n % (2 * k * L) == 0) k *= 2;
  const int64_t B = k * L;
  float *buf = (float *)malloc(sizeof(float) * 3 * (size_t)B);
  if (!buf) return 0;
  float *m = buf, *a = buf + B, *o = buf + 2 * B;
  for (int64_t j = 0; j < L; j++) {
    float s = scale ? scale[ls == 1 ? 0 : j] : 1.f;
    m[j] = mean[lm == 1 ? 0 : j];
    a[j] = s / sqrtf(var[lv == 1 ? 0 : j] + eps);
    o[j] = offset ? offset[lo == 1 ? 0 : j] : 0.f;
  }
  for (int64_t j = L; j < B; j++) { m[j] = m[j % L]; a[j] = a[j % L]; o[j] = o[j % L]; }
  L = B;
  bn_ctx_t c = {x, y, m, a, o, L};
  int64_t rows = n / L, grain = 32768 / L;
  workers_for(bn_rows, &c, rows, grain < 1 ? 1 : grain);
  free(buf);
  return 1;
}

/* ---------------------------------------------------------------- tile (any 4-byte type) */
static void tile_rec(int d, int rank, const int64_t *shape, const int64_t *reps, const int64_t *inBlock,
                     const int64_t *outBlock, const uint32_t *src, uint32_t *dst) {
  const int64_t n = shape[d];
  if (d == rank - 1) {
    for (int64_t r = 0; r < reps[d]; r++) memcpy(dst + r * n, src, sizeof(uint32_t) * (size_t)n);
    return;
  }
  for (int64_t i = 0; i < n; i++) tile_rec(d + 1, rank, shape, reps, inBlock, outBlock, src + i * inBlock[d], dst + i * outBlock[d]);
  const int64_t chunk = n * outBlock[d];
  for (int64_t r = 1; r < reps[d]; r++) memcpy(dst + r * chunk, dst, sizeof(uint32_t) * (size_t)chunk);
}

/* out[..] = x[.. mod shape]; inBlock/outBlock: elements below each dim */
void tdn_tile(const void *x, void *out, int rank, const int64_t *shape, const int64_t *reps) {
  int64_t inBlock[16], outBlock[16];
  int64_t ib = 1, ob = 1;
  for (int d = rank - 1; d >= 0; d--) {
    inBlock[d] = ib;
    outBlock[d] = ob;
    ib *= shape[d];
    ob *= shape[d] * reps[d];
  }
  if (ib == 0 || ob == 0) return;
  tile_rec(0, rank, shape, reps, inBlock, outBlock, (const uint32_t *)x, (uint32_t *)out);
}

/* ---------------------------------------------------------------- strided block copy */
/* dst[Σ iₖ·ds[k]] = src[Σ iₖ·ss[k]] for i < n (dims already merged by the caller, the last the
   innermost). When the innermost dim is strided in src and an outer dim p is contiguous there
   (a transpose), the (p, last) plane is copied in COPY_TILE² tiles so that the source lines a tile
   reads stay in cache; otherwise each innermost run is one memcpy or one strided loop. Work items
   (runs, or tile rows of runs) are split over the workers. */
#define COPY_TILE 32
typedef struct {
  const float *src;
  float *dst;
  int rank, p;
  int64_t n[8], ss[8], ds[8];
} copy_ctx_t;

/* the source and destination offsets of outer item `item` (every dim but the last; p, when >= 0,
   counted in tiles of COPY_TILE), and the first row of p's tile */
static void copy_item_offsets(const copy_ctx_t *c, int64_t item, int64_t *so, int64_t *dof, int64_t *row) {
  int64_t s = 0, d = 0;
  *row = 0;
  for (int k = c->rank - 2; k >= 0; k--) {
    const int64_t len = k == c->p ? (c->n[k] + COPY_TILE - 1) / COPY_TILE : c->n[k];
    const int64_t at = k == c->p ? (item % len) * COPY_TILE : item % len;
    item /= len;
    if (k == c->p) *row = at;
    s += at * c->ss[k];
    d += at * c->ds[k];
  }
  *so = s;
  *dof = d;
}

static void copy_part(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  const copy_ctx_t *c = (const copy_ctx_t *)vctx;
  const int last = c->rank - 1;
  const int64_t len = c->n[last], si = c->ss[last], di = c->ds[last];
  for (int64_t item = b; item < e; item++) {
    int64_t so, dof, row;
    copy_item_offsets(c, item, &so, &dof, &row);
    const float *src = c->src + so;
    float *dst = c->dst + dof;
    if (c->p >= 0) {
      const int64_t rows = MIN((int64_t)COPY_TILE, c->n[c->p] - row), sp = c->ss[c->p], dp = c->ds[c->p];
      for (int64_t j0 = 0; j0 < len; j0 += COPY_TILE) {
        const int64_t w = MIN((int64_t)COPY_TILE, len - j0);
        for (int64_t i = 0; i < rows; i++) {
          const float *a = src + i * sp + j0 * si;
          float *o = dst + i * dp + j0 * di;
          for (int64_t j = 0; j < w; j++) o[j * di] = a[j * si];
        }
      }
    } else if (si == 1 && di == 1) {
      memcpy(dst, src, sizeof(float) * (size_t)len);
    } else {
      for (int64_t j = 0; j < len; j++) dst[j * di] = src[j * si];
    }
  }
}

int tdn_copy_strided(const float *src, float *dst, int rank, const int64_t *n, const int64_t *ss, const int64_t *ds) {
  if (rank < 1 || rank > 8) return 0;
  copy_ctx_t c = {src, dst, rank, -1, {0}, {0}, {0}};
  int64_t items = 1, total = 1;
  for (int k = 0; k < rank; k++) {
    c.n[k] = n[k];
    c.ss[k] = ss[k];
    c.ds[k] = ds[k];
    total *= n[k];
  }
  if (total == 0) return 1;
  if (ss[rank - 1] != 1)
    for (int k = 0; k < rank - 1; k++)
      if (ss[k] == 1) c.p = k;
  for (int k = 0; k < rank - 1; k++) items *= k == c.p ? (n[k] + COPY_TILE - 1) / COPY_TILE : n[k];
  const int64_t perItem = total / items;
  const int64_t grain = perItem >= 65536 ? 1 : 65536 / perItem;
  workers_for(copy_part, &c, items, grain);
  return 1;
}

/* Tasks for per-channel sums over R rows: a fixed partition (results depend on the thread count
 * only), one task when the rows are few. */
int64_t tdn_sum_tasks(int64_t R) {
  const int T = workers_threads();
  return R >= 64 * T ? MIN(4 * (int64_t)T, 64) : 1;
}

/* out[j] = scale * (sum over the tasks' partial rows part[t][j]), in task order */
void tdn_combine_parts(const double *part, int64_t ntasks, int64_t L, double scale, float *out) {
  for (int64_t j = 0; j < L; j++) {
    double sum = 0.0;
    for (int64_t t = 0; t < ntasks; t++) sum += part[t * L + j];
    out[j] = (float)(sum * scale);
  }
}

/* ---------------------------------------------------------------- batch-norm gradient */
/* tfjs's FusedBatchNorm gradient (per-channel parameters, channels last) in two passes:
 * per-channel sums of dy and dy·(x - mean), then dx = dy · scale · rsqrt(var + eps). */
typedef struct {
  const float *x, *dy, *mean;
  const float *k;  /* per channel: scale * rsqrt(var + eps) */
  float *dx;
  int64_t R, L, chunk;
  double *part;    /* [ntasks][2][L] */
} bng_ctx_t;

static void bng_sums(void *vctx, int64_t t, int tid) {
  (void)tid;
  bng_ctx_t *c = (bng_ctx_t *)vctx;
  const int64_t L = c->L, b = t * c->chunk, e = MIN(b + c->chunk, c->R);
  double *s1 = c->part + t * 2 * L, *s2 = s1 + L;
  float a1[512], a2[512];
  for (int64_t j0 = 0; j0 < L; j0 += 512) {
    const int64_t n = MIN(512, L - j0);
    const float *restrict m = c->mean + j0;
    for (int64_t j = 0; j < n; j++) s1[j0 + j] = 0.0, s2[j0 + j] = 0.0;
    /* float sums over 64 rows at a time, added up in double (as bns_task): 8 lanes a vector, no
       conversions in the inner loop (per element in double it ran at a third of memory speed) */
    for (int64_t r0 = b; r0 < e; r0 += 64) {
      for (int64_t j = 0; j < n; j++) a1[j] = 0.f, a2[j] = 0.f;
      for (int64_t r = r0; r < MIN(r0 + 64, e); r++) {
        const float *restrict x = c->x + r * L + j0, *restrict dy = c->dy + r * L + j0;
        for (int64_t j = 0; j < n; j++) {
          a1[j] += dy[j];
          a2[j] += dy[j] * (x[j] - m[j]);
        }
      }
      for (int64_t j = 0; j < n; j++) s1[j0 + j] += a1[j], s2[j0 + j] += a2[j];
    }
  }
}

static void bng_dx(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  bng_ctx_t *c = (bng_ctx_t *)vctx;
  const int64_t L = c->L;
  const float *restrict k = c->k;
  for (int64_t r = r0; r < r1; r++) {
    const float *restrict dy = c->dy + r * L;
    float *restrict dx = c->dx + r * L;
    for (int64_t j = 0; j < L; j++) dx[j] = dy[j] * k[j];
  }
}

int tdn_bn_grad(const float *x, const float *dy, int64_t n, int64_t L, const float *mean, const float *var,
                const float *scale, float eps, float *dx, float *dmean, float *dvar, float *dscale, float *doffset) {
  if (L <= 0 || n % L) return 0;
  const int64_t R = n / L, ntasks = tdn_sum_tasks(R);
  double *part = (double *)malloc(sizeof(double) * (size_t)(ntasks * 2 * L));
  float *k = (float *)malloc(sizeof(float) * (size_t)L);
  if (!part || !k) { free(part); free(k); return 0; }
  for (int64_t j = 0; j < L; j++) k[j] = (scale ? scale[j] : 1.f) / sqrtf(var[j] + eps);
  bng_ctx_t c = {x, dy, mean, k, dx, R, L, (R + ntasks - 1) / ntasks, part};
  workers_run(bng_sums, &c, ntasks);
  for (int64_t j = 0; j < L; j++) {
    double s1 = 0.0, s2 = 0.0;
    for (int64_t t = 0; t < ntasks; t++) { s1 += part[t * 2 * L + j]; s2 += part[t * 2 * L + L + j]; }
    const double rs = 1.0 / sqrt((double)var[j] + (double)eps), sc = scale ? (double)scale[j] : 1.0;
    dmean[j] = (float)(-rs * sc * s1);
    dvar[j] = (float)(-0.5 * rs * rs * rs * sc * s2);
    dscale[j] = (float)(rs * s2);
    doffset[j] = (float)s1;
  }
  int64_t grain = 32768 / L;
  workers_for(bng_dx, &c, R, grain < 1 ? 1 : grain);
  free(part);
  free(k);
  return 1;
}

/* ---------------------------------------------------------------- relu + bias gradient */
/* The backward of y = relu(z + bias) (a fused conv or matmul, channels last) in one pass over dy:
 * dz = dy where y > 0 (else 0), dbias = column sums of dz. Replaces Step, Mul and Sum kernels. */
typedef struct {
  const float *dy, *y;
  float *dz;
  int64_t R, L, chunk;
  double *part;  /* [ntasks][L] */
} brg_ctx_t;

void tdn_relu_mask_sum(const float *dy, const float *y, float *dz, int64_t rows, int64_t L, double *sums) {
  float acc[512];
  for (int64_t j0 = 0; j0 < L; j0 += 512) {
    const int64_t n = MIN(512, L - j0);
    /* float sums over 64 rows at a time, added up in double */
    for (int64_t r0 = 0; r0 < rows; r0 += 64) {
      for (int64_t j = 0; j < n; j++) acc[j] = 0.f;
      for (int64_t r = r0; r < MIN(r0 + 64, rows); r++) {
        const float *d = dy + r * L + j0, *yr = y + r * L + j0;
        float *z = dz + r * L + j0;
        for (int64_t j = 0; j < n; j++) {
          const float g = tdn_keep_if(d[j], yr[j] > 0.f);
          z[j] = g;
          acc[j] += g;
        }
      }
      if (sums)
        for (int64_t j = 0; j < n; j++) sums[j0 + j] += acc[j];
    }
  }
}

static void brg_task(void *vctx, int64_t t, int tid) {
  (void)tid;
  brg_ctx_t *c = (brg_ctx_t *)vctx;
  const int64_t L = c->L, b = t * c->chunk, e = MIN(b + c->chunk, c->R);
  double *s = c->part + t * L;
  for (int64_t j = 0; j < L; j++) s[j] = 0.0;
  tdn_relu_mask_sum(c->dy + b * L, c->y + b * L, c->dz + b * L, e - b, L, s);
}

int tdn_bias_relu_grad(const float *dy, const float *y, int64_t n, int64_t L, float *dz, float *dbias) {
  if (L <= 0 || n % L) return 0;
  const int64_t R = n / L, ntasks = tdn_sum_tasks(R);
  double *part = (double *)malloc(sizeof(double) * (size_t)(ntasks * L));
  if (!part) return 0;
  brg_ctx_t c = {dy, y, dz, R, L, (R + ntasks - 1) / ntasks, part};
  workers_run(brg_task, &c, ntasks);
  tdn_combine_parts(part, ntasks, L, 1.0, dbias);
  free(part);
  return 1;
}

/* ---------------------------------------------------------------- relu gradient */
/* dz = dy where x > 0, else 0 (tfjs: Step, then Mul: two passes and a full-size mask). */
typedef struct { const float *dy, *x; float *dz; } rg_ctx_t;

static void rg_task(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  rg_ctx_t *c = (rg_ctx_t *)vctx;
  const float *restrict dy = c->dy, *restrict x = c->x;
  float *restrict dz = c->dz;
  for (int64_t i = b; i < e; i++) dz[i] = tdn_keep_if(dy[i], x[i] > 0.f);
}

void tdn_relu_grad(const float *dy, const float *x, float *dz, int64_t n) {
  rg_ctx_t c = {dy, x, dz};
  workers_for(rg_task, &c, n, EW_GRAIN);
}

/* ---------------------------------------------------------------- batch norm in training */
/* Training-mode batch norm over rows of L channels, as tfjs-layers computes it (tf.moments, then
 * batchNormalization), in two passes over memory: each task takes a block of rows small enough to
 * stay in L2, its mean and then its sum of squared deviations from that mean (the second read
 * hits the cache); the blocks combine exactly (Chan et al.) into the batch mean and (population)
 * variance; then y = (x - mean) * gamma / sqrt(var + eps) + beta. */
#define BN_BLOCK_BYTES (256 * 1024)

typedef struct {
  const float *x;
  int64_t R, L, chunk;
  double *part; /* [ntasks][2L]: the block's mean, then its sum of squared deviations */
} bns_ctx_t;

static void bns_task(void *vctx, int64_t t, int tid) {
  (void)tid;
  bns_ctx_t *c = (bns_ctx_t *)vctx;
  const int64_t L = c->L, b = t * c->chunk, e = MIN(b + c->chunk, c->R);
  double *restrict mean = c->part + t * 2 * L, *restrict m2 = mean + L;
  float acc[512], mf[512];
  for (int64_t j0 = 0; j0 < L; j0 += 512) {
    const int64_t n = MIN(512, L - j0);
    for (int64_t j = 0; j < n; j++) mean[j0 + j] = 0.0, m2[j0 + j] = 0.0;
    /* float sums over 64 rows at a time, added up in double */
    for (int64_t r0 = b; r0 < e; r0 += 64) {
      for (int64_t j = 0; j < n; j++) acc[j] = 0.f;
      for (int64_t r = r0; r < MIN(r0 + 64, e); r++) {
        const float *restrict x = c->x + r * L + j0;
        for (int64_t j = 0; j < n; j++) acc[j] += x[j];
      }
      for (int64_t j = 0; j < n; j++) mean[j0 + j] += acc[j];
    }
    for (int64_t j = 0; j < n; j++) mean[j0 + j] /= (double)(e - b), mf[j] = (float)mean[j0 + j];
    for (int64_t r0 = b; r0 < e; r0 += 64) {
      for (int64_t j = 0; j < n; j++) acc[j] = 0.f;
      for (int64_t r = r0; r < MIN(r0 + 64, e); r++) {
        const float *restrict x = c->x + r * L + j0;
        for (int64_t j = 0; j < n; j++) {
          const float d = x[j] - mf[j];
          acc[j] += d * d;
        }
      }
      for (int64_t j = 0; j < n; j++) m2[j0 + j] += acc[j];
    }
    /* the deviations were taken from the float-rounded mean: correct to the exact block mean */
    for (int64_t j = 0; j < n; j++) {
      const double off = mean[j0 + j] - (double)mf[j];
      m2[j0 + j] -= (double)(e - b) * off * off;
    }
  }
}

typedef struct {
  const float *x;
  float *y;
  const float *mean, *k, *beta; /* k = gamma * rsqrt(var + eps) */
  int64_t L;
} bnn_ctx_t;

static void bnn_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  bnn_ctx_t *c = (bnn_ctx_t *)vctx;
  const int64_t L = c->L;
  const float *restrict m = c->mean, *restrict k = c->k, *restrict bt = c->beta;
  for (int64_t r = r0; r < r1; r++) {
    const float *restrict x = c->x + r * L;
    float *restrict y = c->y + r * L;
    for (int64_t j = 0; j < L; j++) y[j] = (x[j] - m[j]) * k[j] + bt[j];
  }
}

/* The batch's mean and population variance per channel (as tf.moments) over R rows of L, and
   k = gamma·rsqrt(var + eps). 0 when out of memory. */
static int bn_batch_stats(const float *x, int64_t R, int64_t L, const float *gamma, float eps, float *mean,
                          float *var, float *k) {
  /* blocks of at most BN_BLOCK_BYTES (at least the usual per-thread split): the partition depends
     on the shape and thread count only, so results do not depend on scheduling */
  int64_t ntasks = MAX(tdn_sum_tasks(R), (int64_t)((size_t)(R * L) * sizeof(float) / BN_BLOCK_BYTES));
  ntasks = MIN(ntasks, R);
  const int64_t chunk = (R + ntasks - 1) / ntasks;
  ntasks = (R + chunk - 1) / chunk;
  double *part = (double *)malloc(sizeof(double) * (size_t)(ntasks * 2 * L));
  if (!part) return 0;
  bns_ctx_t c = {x, R, L, chunk, part};
  workers_run(bns_task, &c, ntasks);
  for (int64_t j = 0; j < L; j++) {
    double mu = 0.0, m2 = 0.0;
    for (int64_t t = 0; t < ntasks; t++) mu += part[t * 2 * L + j] * (double)(MIN((t + 1) * chunk, R) - t * chunk);
    mu /= (double)R;
    for (int64_t t = 0; t < ntasks; t++) {
      const double d = part[t * 2 * L + j] - mu;
      m2 += part[t * 2 * L + L + j] + (double)(MIN((t + 1) * chunk, R) - t * chunk) * d * d;
    }
    mean[j] = (float)mu;
    var[j] = (float)(m2 / (double)R);
    k[j] = gamma[j] / sqrtf(var[j] + eps);
  }
  free(part);
  return 1;
}

int tdn_bn_train(const float *x, int64_t n, int64_t L, const float *gamma, const float *beta, float eps, float *y,
                 float *mean, float *var) {
  if (L <= 0 || n % L || n == 0) return 0;
  const int64_t R = n / L;
  float *k = (float *)malloc(sizeof(float) * (size_t)L);
  if (!k || !bn_batch_stats(x, R, L, gamma, eps, mean, var, k)) { free(k); return 0; }
  bnn_ctx_t nc = {x, y, mean, k, beta, L};
  int64_t grain = 32768 / L;
  workers_for(bnn_rows, &nc, R, grain < 1 ? 1 : grain);
  free(k);
  return 1;
}

/* Its gradient, mean and variance depending on x: with s1 = sum dy and s2 = sum dy (x - mean),
 * rstd = rsqrt(var + eps): dx = gamma rstd (dy - s1/N - (x - mean) rstd^2 s2/N),
 * dgamma = rstd s2, dbeta = s1 (sums over the N rows). */
typedef struct {
  const float *x, *dy, *mean;
  const float *a, *b, *c0; /* per channel: dx = a*dy + b*(x - mean) + c0 */
  float *dx;
  int64_t L;
} bntg_ctx_t;

static void bntg_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  bntg_ctx_t *c = (bntg_ctx_t *)vctx;
  const int64_t L = c->L;
  const float *restrict m = c->mean, *restrict a = c->a, *restrict b = c->b, *restrict c0 = c->c0;
  for (int64_t r = r0; r < r1; r++) {
    const float *restrict x = c->x + r * L, *restrict dy = c->dy + r * L;
    float *restrict dx = c->dx + r * L;
    for (int64_t j = 0; j < L; j++) dx[j] = a[j] * dy[j] + b[j] * (x[j] - m[j]) + c0[j];
  }
}

/* From the sums s1 = Σdy and s2 = Σdy·(x − mean) over N rows (the tasks' double partials): the
   per-channel coefficients of dx = a·dy + b·(x − mean) + c0, and dgamma, dbeta. */
static void bn_grad_coefs(const double *part, int64_t ntasks, int64_t L, int64_t N, const float *var,
                          const float *gamma, float eps, float *a, float *b, float *c0, float *dgamma, float *dbeta) {
  for (int64_t j = 0; j < L; j++) {
    double s1 = 0.0, s2 = 0.0;
    for (int64_t t = 0; t < ntasks; t++) { s1 += part[t * 2 * L + j]; s2 += part[t * 2 * L + L + j]; }
    const double rstd = 1.0 / sqrt((double)var[j] + (double)eps), g = (double)gamma[j], n = (double)N;
    a[j] = (float)(g * rstd);
    b[j] = (float)(-g * rstd * rstd * rstd * s2 / n);
    c0[j] = (float)(-g * rstd * s1 / n);
    dgamma[j] = (float)(rstd * s2);
    dbeta[j] = (float)s1;
  }
}

int tdn_bn_train_grad(const float *x, const float *dy, int64_t n, int64_t L, const float *mean, const float *var,
                      const float *gamma, float eps, float *dx, float *dgamma, float *dbeta) {
  if (L <= 0 || n % L || n == 0) return 0;
  const int64_t R = n / L, ntasks = tdn_sum_tasks(R);
  double *part = (double *)malloc(sizeof(double) * (size_t)(ntasks * 2 * L));
  float *coef = (float *)malloc(sizeof(float) * (size_t)(3 * L));
  if (!part || !coef) { free(part); free(coef); return 0; }
  bng_ctx_t c = {x, dy, mean, NULL, NULL, R, L, (R + ntasks - 1) / ntasks, part};
  workers_run(bng_sums, &c, ntasks);
  float *a = coef, *b = coef + L, *c0 = coef + 2 * L;
  bn_grad_coefs(part, ntasks, L, R, var, gamma, eps, a, b, c0, dgamma, dbeta);
  bntg_ctx_t gc = {x, dy, mean, a, b, c0, dx, L};
  int64_t grain = 32768 / L;
  workers_for(bntg_rows, &gc, R, grain < 1 ? 1 : grain);
  free(part);
  free(coef);
  return 1;
}

/* ---------------------------------------------------------------- batch norm → ReLU → 2×2 max pool, training */
/* x: B images of H×W pixels of L channels (H = 2·OH, W = 2·OW). p = maxpool2(relu(bn(x))) with the
 * batch's statistics, in two passes over x instead of batch norm's two, the ReLU's and the pool's
 * four; nothing full-size is written. argmax as tdn_pool2d's: each output's window position of the
 * first maximum of bn(x) (0..3 in row order), | 0x80 when that maximum is not > 0 (the ReLU passes
 * nothing there). bn(x) is computed as tdn_bn_train computes it. */
typedef struct {
  const float *x, *dp;
  float *p, *dx;
  uint8_t *am;
  const uint8_t *amIn;
  const float *mean, *k, *beta; /* forward: k = gamma·rsqrt(var + eps) */
  const float *a, *b, *c0;      /* backward: dx = a·dz + b·(x − mean) + c0 */
  int64_t Rp, OW, L, chunk;     /* Rp = B·OH pooled rows */
  double *part;
} bnp_ctx_t;

static void bnp_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  bnp_ctx_t *c = (bnp_ctx_t *)vctx;
  const int64_t L = c->L, OW = c->OW, rowIn = 2 * OW * L;
  const float *restrict m = c->mean, *restrict k = c->k, *restrict bt = c->beta;
  for (int64_t r = r0; r < r1; r++) {
    const float *restrict x0 = c->x + 2 * r * rowIn, *restrict x1 = x0 + rowIn;
    float *restrict o = c->p + r * OW * L;
    uint8_t *restrict am = c->am + r * OW * L;
    for (int64_t ow = 0; ow < OW; ow++, o += L, am += L, x0 += 2 * L, x1 += 2 * L)
#pragma GCC ivdep /* too many pointers for GCC's run-time alias checks */
      for (int64_t j = 0; j < L; j++) {
        const float a0 = (x0[j] - m[j]) * k[j] + bt[j], a1 = (x0[L + j] - m[j]) * k[j] + bt[j];
        const float a2 = (x1[j] - m[j]) * k[j] + bt[j], a3 = (x1[L + j] - m[j]) * k[j] + bt[j];
        const float mx = tdn_window_max(a0, a1, a2, a3, am + j);
        o[j] = mx > 0.f ? mx : 0.f;
      }
  }
}

int tdn_bn_relu_pool2_train(const float *x, int64_t B, int64_t H, int64_t W, int64_t L, const float *gamma,
                            const float *beta, float eps, float *p, uint8_t *argmax, float *mean, float *var) {
  if (L <= 0 || B <= 0 || H <= 0 || W <= 0 || H % 2 || W % 2) return 0;
  float *k = (float *)malloc(sizeof(float) * (size_t)L);
  if (!k || !bn_batch_stats(x, B * H * W, L, gamma, eps, mean, var, k)) { free(k); return 0; }
  bnp_ctx_t c = {x, NULL, p, NULL, argmax, NULL, mean, k, beta, NULL, NULL, NULL, B * H / 2, W / 2, L, 0, NULL};
  workers_for(bnp_rows, &c, c.Rp, 16384 / (W * L) + 1);
  free(k);
  return 1;
}

/* 8 channels at a time with GCC's vector types (its vectoriser left these loops scalar) */
typedef tdn_v8 bnp_v8;
typedef int32_t bnp_i8 __attribute__((vector_size(32), aligned(4)));
typedef uint8_t bnp_b8 __attribute__((vector_size(8), aligned(1)));
#define BNP_LOAD(p) (*(const bnp_v8 *)(p))
#define BNP_STORE(p, v) (*(bnp_v8 *)(p) = (v))

/* 8 argmax bytes as 0/1 weights: the window's column and row of the maximum, and whether it passed */
static inline void bnp_weights(const uint8_t *am, bnp_v8 *col, bnp_v8 *row, bnp_v8 *keep) {
  const bnp_i8 s = __builtin_convertvector(*(const bnp_b8 *)am, bnp_i8);
  *col = __builtin_convertvector(s & 1, bnp_v8);
  *row = __builtin_convertvector((s >> 1) & 1, bnp_v8);
  *keep = __builtin_convertvector(1 - (s >> 7), bnp_v8);
}

/* The gradient's sums over the pooled outputs only (elsewhere dz = 0): dz = dp where the ReLU passed,
   at its window's argmax; s1 += dz, s2 += dz·(x there − mean). Float over 64 pooled pixels, then double. */
static void bnp_sums(void *vctx, int64_t t, int tid) {
  (void)tid;
  bnp_ctx_t *c = (bnp_ctx_t *)vctx;
  const int64_t L = c->L, OW = c->OW, rowIn = 2 * OW * L, L8 = L & ~(int64_t)7;
  const int64_t q0 = t * c->chunk * OW, q1 = MIN((t + 1) * c->chunk, c->Rp) * OW;
  double *restrict s1 = c->part + t * 2 * L, *restrict s2 = s1 + L;
  bnp_v8 acc1[64], acc2[64];
  for (int64_t j = 0; j < L; j++) s1[j] = 0.0, s2[j] = 0.0;
  for (int64_t j0 = 0; j0 < L8; j0 += 512) {
    const int64_t nv = MIN(512, L8 - j0) / 8;
    for (int64_t qb = q0; qb < q1; qb += 64) {
      for (int64_t v = 0; v < nv; v++) acc1[v] = (bnp_v8){0}, acc2[v] = (bnp_v8){0};
      for (int64_t q = qb; q < MIN(qb + 64, q1); q++) {
        const float *x0 = c->x + 2 * (q / OW) * rowIn + 2 * (q % OW) * L + j0, *x1 = x0 + rowIn;
        const float *dp = c->dp + q * L + j0, *m = c->mean + j0;
        const uint8_t *am = c->amIn + q * L + j0;
        for (int64_t v = 0; v < nv; v++) {
          bnp_v8 col, row, keep;
          bnp_weights(am + 8 * v, &col, &row, &keep);
          const bnp_v8 top = BNP_LOAD(x0 + 8 * v) + col * (BNP_LOAD(x0 + L + 8 * v) - BNP_LOAD(x0 + 8 * v));
          const bnp_v8 bottom = BNP_LOAD(x1 + 8 * v) + col * (BNP_LOAD(x1 + L + 8 * v) - BNP_LOAD(x1 + 8 * v));
          const bnp_v8 d = BNP_LOAD(dp + 8 * v) * keep;
          acc1[v] += d;
          acc2[v] += d * (top + row * (bottom - top) - BNP_LOAD(m + 8 * v));
        }
      }
      for (int64_t v = 0; v < nv; v++)
        for (int k = 0; k < 8; k++) s1[j0 + 8 * v + k] += acc1[v][k], s2[j0 + 8 * v + k] += acc2[v][k];
    }
  }
  for (int64_t q = q0; q < q1; q++) /* the last L % 8 channels */
    for (int64_t j = L8; j < L; j++) {
      const float *x0 = c->x + 2 * (q / OW) * rowIn + 2 * (q % OW) * L + j, *x1 = x0 + rowIn;
      const int s = c->amIn[q * L + j];
      const float d = s & 0x80 ? 0.f : c->dp[q * L + j];
      const float xv = (s & 2) ? ((s & 1) ? x1[L] : x1[0]) : ((s & 1) ? x0[L] : x0[0]);
      s1[j] += d;
      s2[j] += d * (xv - c->mean[j]);
    }
}

static void bnp_dx_rows(void *vctx, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  bnp_ctx_t *c = (bnp_ctx_t *)vctx;
  const int64_t L = c->L, OW = c->OW, rowIn = 2 * OW * L, L8 = L & ~(int64_t)7;
  const float *m = c->mean, *a = c->a, *b = c->b, *c0 = c->c0;
  for (int64_t r = r0; r < r1; r++) {
    const float *x0 = c->x + 2 * r * rowIn, *x1 = x0 + rowIn;
    float *d0 = c->dx + 2 * r * rowIn, *d1 = d0 + rowIn;
    const float *dp = c->dp + r * OW * L;
    const uint8_t *am = c->amIn + r * OW * L;
    for (int64_t ow = 0; ow < OW; ow++, dp += L, am += L, x0 += 2 * L, x1 += 2 * L, d0 += 2 * L, d1 += 2 * L) {
      for (int64_t j = 0; j < L8; j += 8) {
        bnp_v8 col, row, keep;
        bnp_weights(am + j, &col, &row, &keep);
        const bnp_v8 mj = BNP_LOAD(m + j), bj = BNP_LOAD(b + j), cj = BNP_LOAD(c0 + j);
        const bnp_v8 ad = BNP_LOAD(a + j) * BNP_LOAD(dp + j) * keep, ad1 = row * ad, ad0 = ad - ad1;
        BNP_STORE(d0 + j, bj * (BNP_LOAD(x0 + j) - mj) + cj + (ad0 - col * ad0));
        BNP_STORE(d0 + L + j, bj * (BNP_LOAD(x0 + L + j) - mj) + cj + col * ad0);
        BNP_STORE(d1 + j, bj * (BNP_LOAD(x1 + j) - mj) + cj + (ad1 - col * ad1));
        BNP_STORE(d1 + L + j, bj * (BNP_LOAD(x1 + L + j) - mj) + cj + col * ad1);
      }
      for (int64_t j = L8; j < L; j++) {
        const int s = am[j];
        const float ad = s & 0x80 ? 0.f : a[j] * dp[j];
        d0[j] = b[j] * (x0[j] - m[j]) + c0[j] + ((s & 3) == 0 ? ad : 0.f);
        d0[L + j] = b[j] * (x0[L + j] - m[j]) + c0[j] + ((s & 3) == 1 ? ad : 0.f);
        d1[j] = b[j] * (x1[j] - m[j]) + c0[j] + ((s & 3) == 2 ? ad : 0.f);
        d1[L + j] = b[j] * (x1[L + j] - m[j]) + c0[j] + ((s & 3) == 3 ? ad : 0.f);
      }
    }
  }
}

int tdn_bn_relu_pool2_train_grad(const float *x, const float *dp, const uint8_t *argmax, int64_t B, int64_t H,
                                 int64_t W, int64_t L, const float *mean, const float *var, const float *gamma,
                                 float eps, float *dx, float *dgamma, float *dbeta) {
  if (L <= 0 || B <= 0 || H <= 0 || W <= 0 || H % 2 || W % 2) return 0;
  const int64_t Rp = B * H / 2, ntasks = tdn_sum_tasks(Rp);
  double *part = (double *)malloc(sizeof(double) * (size_t)(ntasks * 2 * L));
  float *coef = (float *)malloc(sizeof(float) * (size_t)(3 * L));
  if (!part || !coef) { free(part); free(coef); return 0; }
  float *a = coef, *b = coef + L, *c0 = coef + 2 * L;
  bnp_ctx_t c = {x, dp, NULL, dx, NULL, argmax, mean, NULL, NULL, a, b, c0, Rp, W / 2, L, (Rp + ntasks - 1) / ntasks,
                 part};
  workers_run(bnp_sums, &c, ntasks);
  bn_grad_coefs(part, ntasks, L, B * H * W, var, gamma, eps, a, b, c0, dgamma, dbeta);
  workers_for(bnp_dx_rows, &c, Rp, 16384 / (W * L) + 1);
  free(part);
  free(coef);
  return 1;
}

/* ---------------------------------------------------------------- dropout mask */
/* m[i] = scale where the i-th output of sfc32 (state a, b, c, d: src/data/rng.ts's generator) is
 * >= threshold, else 0: the stream and the comparison (as doubles) of src/backend/dropout.ts, so
 * that every backend draws the same mask. */
void tdn_dropout_mask(float *m, int64_t n, double threshold, float scale, uint32_t a, uint32_t b, uint32_t c,
                      uint32_t d) {
  for (int64_t i = 0; i < n; i++) {
    const uint32_t t = a + b + d;
    d += 1;
    a = b ^ (b >> 9);
    b = c + (c << 3);
    c = (c << 21) | (c >> 11);
    c += t;
    m[i] = (double)t >= threshold ? scale : 0.f;
  }
}
