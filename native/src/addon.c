/* Node-API glue: every function works in place on TypedArrays allocated by JS. */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cblas.h>
#include "common.h"
#include "conv.h"
#include "ew.h"
#include "plan.h"
#include "sgemm512.h"
#include "winograd.h"
#include "workers.h"

#ifndef TDN_VERSION
#define TDN_VERSION "0.1.0"
#endif

#define MAXARGS 24

/* Node worker_threads may load the addon too: calls are serialised, since the workers and the
 * per-thread scratch buffers are process-wide. Uncontended, this costs a few ns. */
#include <pthread.h>
static pthread_mutex_t call_mu = PTHREAD_MUTEX_INITIALIZER;
#define SERIAL(stmt) do { pthread_mutex_lock(&call_mu); stmt; pthread_mutex_unlock(&call_mu); } while (0)
#define CHECK(call)                                                                  \
  do {                                                                               \
    if ((call) != napi_ok) { napi_throw_error(env, NULL, "tfjs-distill native: " #call " failed"); return NULL; } \
  } while (0)

typedef struct {
  napi_env env;
  size_t argc;
  napi_value argv[MAXARGS];
  int err;
} args_t;

static int get_args(napi_env env, napi_callback_info info, args_t *a, size_t need) {
  a->env = env;
  a->argc = MAXARGS;
  a->err = 0;
  if (napi_get_cb_info(env, info, &a->argc, a->argv, NULL, NULL) != napi_ok || a->argc < need) {
    napi_throw_type_error(env, NULL, "tfjs-distill native: wrong number of arguments");
    return 0;
  }
  return 1;
}

/* data pointer of a TypedArray (NULL for null/undefined); *len in elements */
static void *arr(args_t *a, size_t i, size_t *len) {
  napi_valuetype t;
  if (len) *len = 0;
  if (i >= a->argc) return NULL;
  if (napi_typeof(a->env, a->argv[i], &t) != napi_ok || t == napi_null || t == napi_undefined) return NULL;
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(a->env, a->argv[i], &type, &length, &data, NULL, NULL) != napi_ok) {
    a->err = 1;
    return NULL;
  }
  if (len) *len = length;
  return data;
}
static float *f32(args_t *a, size_t i, size_t *len) { return (float *)arr(a, i, len); }

static int64_t i64(args_t *a, size_t i) {
  int64_t v = 0;
  if (i < a->argc && napi_get_value_int64(a->env, a->argv[i], &v) != napi_ok) a->err = 1;
  return v;
}
static double f64(args_t *a, size_t i) {
  double v = 0;
  if (i < a->argc && napi_get_value_double(a->env, a->argv[i], &v) != napi_ok) a->err = 1;
  return v;
}
static napi_value done(args_t *a) {
  if (a->err) napi_throw_type_error(a->env, NULL, "tfjs-distill native: bad argument");
  return NULL;
}

/* ------------------------------------------------------------------ info */
static int simd_built(void) {
#if defined(__AVX2__) && defined(__FMA__)
  return 1;
#else
  return 0;
#endif
}

static napi_value set_str(napi_env env, napi_value obj, const char *k, const char *v) {
  napi_value s;
  napi_create_string_utf8(env, v ? v : "", NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, obj, k, s);
  return obj;
}
static napi_value set_num(napi_env env, napi_value obj, const char *k, double v) {
  napi_value s;
  napi_create_double(env, v, &s);
  napi_set_named_property(env, obj, k, s);
  return obj;
}

static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o;
  CHECK(napi_create_object(env, &o));
  set_str(env, o, "version", TDN_VERSION);
  set_num(env, o, "threads", workers_threads());
  set_str(env, o, "blas", "OpenBLAS");
  set_str(env, o, "blasConfig", openblas_get_config());
  set_str(env, o, "blasCore", openblas_get_corename());
  set_num(env, o, "blasThreads", openblas_get_num_threads());
  set_str(env, o, "simd", simd_built() ? "avx2+fma" : "generic");
  set_str(env, o, "gemmThreads", tdn_gemm_mode() ? "openblas" : "workers");
  set_str(env, o, "sgemm", tdn_sgemm512_enabled() ? "avx512+openblas" : "openblas");
  set_str(env, o, "conv3x3", tdn_winograd_enabled() ? "winograd" : "im2col");
  return o;
}

static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  int n = (int)i64(&a, 0);
  if (a.err) return done(&a);
  napi_value r;
  int got;
  SERIAL(got = workers_init(n));
  napi_create_int32(env, got, &r);
  return r;
}

static napi_value js_set_gemm_parts(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  SERIAL(tdn_set_gemm_parts((int)i64(&a, 0)));
  return done(&a);
}

/* setGemmMode(0 = split over the addon's workers, 1 = OpenBLAS's own threads) */
static napi_value js_set_gemm_mode(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  SERIAL(tdn_set_gemm_mode((int)i64(&a, 0)));
  return done(&a);
}

/* setWinograd(on): 3×3 stride-1 convolutions by Winograd F(4×4, 3×3) or F(2×2, 3×3) where they fit (else im2col) */
static napi_value js_set_winograd(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  int on = (int)i64(&a, 0);
  if (a.err) return done(&a);
  SERIAL(tdn_winograd_set_enabled(on));
  return done(&a);
}

/* setAvx512(on): the AVX-512 sgemm for products with B not transposed (when the CPU has it);
 * returns whether it is in use */
static napi_value js_set_avx512(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  int on = (int)i64(&a, 0);
  if (a.err) return done(&a);
  SERIAL(tdn_sgemm512_set_enabled(on));
  napi_value r;
  napi_get_boolean(env, tdn_sgemm512_enabled(), &r);
  return r;
}

static napi_value js_set_spin(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  workers_set_spin_us((int)i64(&a, 0));
  return done(&a);
}

/* ------------------------------------------------------------------ matmul */
typedef struct {
  const float *A, *B;
  float *C;
  int M, N, K, tA, tB;
  int64_t sA, sB;
  const float *bias, *prelu;
  int nBias, nPrelu, act;
  float alpha;
} mm_ctx_t;

static void mm_batch_task(void *vctx, int64_t i, int tid) {
  (void)tid;
  mm_ctx_t *c = (mm_ctx_t *)vctx;
  float *Ci = c->C + i * (int64_t)c->M * c->N;
  tdn_sgemm(c->tA, c->tB, c->M, c->N, c->K, 1.f, c->A + i * c->sA, c->tA ? c->M : c->K, c->B + i * c->sB,
            c->tB ? c->K : c->N, 0.f, Ci, c->N, 1);
  if (c->nBias || c->act) tdn_epilogue(Ci, c->N, 0, c->M, c->N, c->bias, c->nBias, c->act, c->alpha, c->prelu, c->nPrelu);
}

typedef struct { mm_ctx_t *c; float *C; } mm_epi_t;
static void mm_epi_rows(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  mm_epi_t *p = (mm_epi_t *)vctx;
  mm_ctx_t *c = p->c;
  tdn_epilogue(p->C, c->N, (int)b, (int)e, c->N, c->bias, c->nBias, c->act, c->alpha, c->prelu, c->nPrelu);
}

/* matmul(a, b, out, batch, M, N, K, transA, transB, strideA, strideB, bias?, act, alpha, prelu?) */
static napi_value js_matmul(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 11)) return NULL;
  mm_ctx_t c;
  size_t nb = 0, np = 0;
  c.A = f32(&a, 0, NULL);
  c.B = f32(&a, 1, NULL);
  c.C = f32(&a, 2, NULL);
  int64_t batch = i64(&a, 3);
  c.M = (int)i64(&a, 4); c.N = (int)i64(&a, 5); c.K = (int)i64(&a, 6);
  c.tA = (int)i64(&a, 7); c.tB = (int)i64(&a, 8);
  c.sA = i64(&a, 9); c.sB = i64(&a, 10);
  c.bias = f32(&a, 11, &nb);
  c.act = a.argc > 12 ? (int)i64(&a, 12) : 0;
  c.alpha = a.argc > 13 ? (float)f64(&a, 13) : 0.f;
  c.prelu = f32(&a, 14, &np);
  c.nBias = (int)nb;
  c.nPrelu = (int)np;
  if (a.err || !c.A || !c.B || !c.C) { a.err = 1; return done(&a); }
  pthread_mutex_lock(&call_mu);
  if (batch == 1 && (c.nBias == 0 || c.nBias == c.N) && (c.act == ACT_LINEAR || c.act == ACT_RELU)) {
    tdn_sgemm_bias_relu(c.tA, c.tB, c.M, c.N, c.K, c.A, c.tA ? c.M : c.K, c.B, c.tB ? c.K : c.N, c.C, c.N, 1,
                        c.nBias ? c.bias : NULL, c.act == ACT_RELU);
  } else if (batch == 1) {
    tdn_sgemm(c.tA, c.tB, c.M, c.N, c.K, 1.f, c.A, c.tA ? c.M : c.K, c.B, c.tB ? c.K : c.N, 0.f, c.C, c.N, 1);
    if (c.nBias || c.act) {
      mm_epi_t e = {&c, c.C};
      workers_for(mm_epi_rows, &e, c.M, 1 + 16384 / (c.N ? c.N : 1));
    }
  } else {
    double per = (double)c.M * c.N * c.K;
    if (per < 4.0e6 && batch >= workers_threads()) workers_run(mm_batch_task, &c, batch);
    else for (int64_t i = 0; i < batch; i++) mm_batch_task(&c, i, 0);
  }
  pthread_mutex_unlock(&call_mu);
  return done(&a);
}

/* blasDirect(a, b, c, M, N, K, threads, transA?, transB?): plain cblas_sgemm with OpenBLAS's
 * own threads (for benchmarks) */
static napi_value js_blas_direct(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 7)) return NULL;
  const float *A = f32(&a, 0, NULL), *B = f32(&a, 1, NULL);
  float *C = f32(&a, 2, NULL);
  int M = (int)i64(&a, 3), N = (int)i64(&a, 4), K = (int)i64(&a, 5), T = (int)i64(&a, 6);
  int tA = a.argc > 7 ? (int)i64(&a, 7) : 0, tB = a.argc > 8 ? (int)i64(&a, 8) : 0;
  if (a.err || !A || !B || !C) { a.err = 1; return done(&a); }
  pthread_mutex_lock(&call_mu);
  openblas_set_num_threads(T);
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, 1.f, A,
              tA ? M : K, B, tB ? K : N, 0.f, C, N);
  openblas_set_num_threads(1);
  pthread_mutex_unlock(&call_mu);
  return done(&a);
}

/* ------------------------------------------------------------------ element-wise */
/* unary(op, x, y, alpha, beta) */
static napi_value js_unary(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  size_t nx, ny;
  int op = (int)i64(&a, 0);
  const float *x = f32(&a, 1, &nx);
  float *y = f32(&a, 2, &ny);
  float alpha = a.argc > 3 ? (float)f64(&a, 3) : 0.f, beta = a.argc > 4 ? (float)f64(&a, 4) : 0.f;
  if (a.err || !x || !y || op < 0 || op >= U_COUNT || nx < ny) { a.err = 1; return done(&a); }
  SERIAL(tdn_unary(op, x, y, (int64_t)ny, alpha, beta));
  return done(&a);
}

/* binary(op, a, b, out, geometry): geometry = Int32Array [d0..d3, as0..as3, bs0..bs3] */
static napi_value js_binary(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 5)) return NULL;
  int op = (int)i64(&a, 0);
  const float *x = f32(&a, 1, NULL), *y = f32(&a, 2, NULL);
  float *o = f32(&a, 3, NULL);
  size_t ng = 0;
  const int32_t *geom = (const int32_t *)arr(&a, 4, &ng);
  if (a.err || !x || !y || !o || !geom || ng != 12 || op < 0 || op >= B_COUNT) { a.err = 1; return done(&a); }
  int64_t d[4], as[4], bs[4];
  for (int i = 0; i < 4; i++) { d[i] = geom[i]; as[i] = geom[4 + i]; bs[i] = geom[8 + i]; }
  SERIAL(tdn_binary(op, x, y, o, d, as, bs));
  return done(&a);
}

/* opCodes(): { unary, binary, reduce, activation, plan }, each { NAME: code } from the tables in ew.h / common.h / plan.h */
#define TDN_SET_U(name) set_num(env, t, #name, U_##name);
#define TDN_SET_B(name) set_num(env, t, #name, B_##name);
#define TDN_SET_R(name) set_num(env, t, #name, R_##name);
#define TDN_SET_ACT(name) set_num(env, t, #name, ACT_##name);
#define TDN_SET_P(name) set_num(env, t, #name, P_##name);
static napi_value js_op_codes(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o, t;
  CHECK(napi_create_object(env, &o));
  CHECK(napi_create_object(env, &t));
  TDN_UNARY_OPS(TDN_SET_U)
  napi_set_named_property(env, o, "unary", t);
  CHECK(napi_create_object(env, &t));
  TDN_BINARY_OPS(TDN_SET_B)
  napi_set_named_property(env, o, "binary", t);
  CHECK(napi_create_object(env, &t));
  TDN_REDUCE_OPS(TDN_SET_R)
  napi_set_named_property(env, o, "reduce", t);
  CHECK(napi_create_object(env, &t));
  TDN_ACTIVATIONS(TDN_SET_ACT)
  napi_set_named_property(env, o, "activation", t);
  CHECK(napi_create_object(env, &t));
  TDN_PLAN_OPS(TDN_SET_P)
  napi_set_named_property(env, o, "plan", t);
  return o;
}

/* reduce(op, x, out, outer, R, inner) */
static napi_value js_reduce(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 6)) return NULL;
  int op = (int)i64(&a, 0);
  const float *x = f32(&a, 1, NULL);
  float *o = f32(&a, 2, NULL);
  int64_t outer = i64(&a, 3), R = i64(&a, 4), inner = i64(&a, 5);
  if (a.err || !x || !o || op < 0 || op >= R_COUNT) { a.err = 1; return done(&a); }
  SERIAL(tdn_reduce(op, x, o, outer, R, inner));
  return done(&a);
}

/* argReduce(isMax, x, outInt32, outer, R, inner) */
static napi_value js_argreduce(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 6)) return NULL;
  int isMax = (int)i64(&a, 0);
  const float *x = f32(&a, 1, NULL);
  int32_t *o = (int32_t *)arr(&a, 2, NULL);
  int64_t outer = i64(&a, 3), R = i64(&a, 4), inner = i64(&a, 5);
  if (a.err || !x || !o) { a.err = 1; return done(&a); }
  SERIAL(tdn_argreduce(isMax, x, o, outer, R, inner));
  return done(&a);
}

/* softmax(x, y, rows, cols) */
static napi_value js_softmax(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  const float *x = f32(&a, 0, NULL);
  float *y = f32(&a, 1, NULL);
  int64_t rows = i64(&a, 2), cols = i64(&a, 3);
  if (a.err || !x || !y) { a.err = 1; return done(&a); }
  SERIAL(tdn_softmax(x, y, rows, cols));
  return done(&a);
}

/* softKl(s, t, rows, cols, T, loss[1], grad) */
static napi_value js_soft_kl(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 7)) return NULL;
  size_t ns = 0, nt = 0, nl = 0, ng = 0;
  const float *s = f32(&a, 0, &ns), *t = f32(&a, 1, &nt);
  int64_t rows = i64(&a, 2), cols = i64(&a, 3);
  float T = (float)f64(&a, 4);
  float *loss = f32(&a, 5, &nl), *grad = f32(&a, 6, &ng);
  if (a.err || !s || !t || !loss || !grad || rows < 1 || cols < 1 || !(T > 0.f) || nl < 1 ||
      ns != (size_t)(rows * cols) || nt != ns || ng != ns) {
    a.err = 1;
    return done(&a);
  }
  SERIAL(tdn_soft_kl(s, t, rows, cols, T, loss, grad));
  return done(&a);
}

/* labelCe(s, labels (Int32Array), rows, cols, smoothing, loss[1], grad) */
static napi_value js_label_ce(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 7)) return NULL;
  size_t ns = 0, ny = 0, nl = 0, ng = 0;
  const float *s = f32(&a, 0, &ns);
  const int32_t *labels = (const int32_t *)arr(&a, 1, &ny);
  int64_t rows = i64(&a, 2), cols = i64(&a, 3);
  float smoothing = (float)f64(&a, 4);
  float *loss = f32(&a, 5, &nl), *grad = f32(&a, 6, &ng);
  if (a.err || !s || !labels || !loss || !grad || rows < 1 || cols < 1 || !(smoothing >= 0.f) || nl < 1 ||
      ns != (size_t)(rows * cols) || ny != (size_t)rows || ng != ns) {
    a.err = 1;
    return done(&a);
  }
  SERIAL(tdn_label_ce(s, labels, rows, cols, smoothing, loss, grad));
  return done(&a);
}

/* adam(w, g, m, v, wo, mo, vo, beta1, 1-beta1, beta2, 1-beta2, -lr, eps, c1, c2) */
static napi_value js_adam(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 15)) return NULL;
  size_t n;
  const float *w = f32(&a, 0, &n), *g = f32(&a, 1, NULL), *m = f32(&a, 2, NULL), *v = f32(&a, 3, NULL);
  float *wo = f32(&a, 4, NULL), *mo = f32(&a, 5, NULL), *vo = f32(&a, 6, NULL);
  float b1 = (float)f64(&a, 7), ob1 = (float)f64(&a, 8), b2 = (float)f64(&a, 9), ob2 = (float)f64(&a, 10);
  float nlr = (float)f64(&a, 11), eps = (float)f64(&a, 12), c1 = (float)f64(&a, 13), c2 = (float)f64(&a, 14);
  if (a.err || !w || !g || !m || !v || !wo || !mo || !vo) { a.err = 1; return done(&a); }
  SERIAL(tdn_adam(w, g, m, v, wo, mo, vo, (int64_t)n, b1, ob1, b2, ob2, nlr, eps, c1, c2));
  return done(&a);
}

/* dropoutMask(m, threshold, scale, a, b, c, d): tdn_dropout_mask over all of m */
static napi_value js_dropout_mask(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 7)) return NULL;
  size_t n;
  float *m = f32(&a, 0, &n);
  const double threshold = f64(&a, 1);
  const float scale = (float)f64(&a, 2);
  const uint32_t s0 = (uint32_t)i64(&a, 3), s1 = (uint32_t)i64(&a, 4), s2 = (uint32_t)i64(&a, 5), s3 = (uint32_t)i64(&a, 6);
  if (a.err || !m) { a.err = 1; return done(&a); }
  tdn_dropout_mask(m, (int64_t)n, threshold, scale, s0, s1, s2, s3);
  return done(&a);
}

/* batchNorm(x, y, L, mean, variance, scale?, offset?, eps) -> false if the shapes are not rows of L */
static napi_value js_batchnorm(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 8)) return NULL;
  size_t n, ny, lm, lv, ls, lo;
  const float *x = f32(&a, 0, &n);
  float *y = f32(&a, 1, &ny);
  int64_t L = i64(&a, 2);
  const float *m = f32(&a, 3, &lm), *v = f32(&a, 4, &lv), *s = f32(&a, 5, &ls), *o = f32(&a, 6, &lo);
  float eps = (float)f64(&a, 7);
  if (a.err || !x || !y || !m || !v || ny != n) { a.err = 1; return done(&a); }
  int ok;
  SERIAL(ok = tdn_batchnorm(x, y, (int64_t)n, L, m, (int64_t)lm, v, (int64_t)lv, s, (int64_t)ls, o, (int64_t)lo, eps));
  napi_value r;
  napi_get_boolean(env, ok != 0, &r);
  return r;
}

/* batchNormTrain(x, L, gamma, beta, eps, y, mean, var) -> false if x is not rows of L */
static napi_value js_bn_train(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 8)) return NULL;
  size_t n, lg, lb, ny, lm, lv;
  const float *x = f32(&a, 0, &n);
  int64_t L = i64(&a, 1);
  const float *g = f32(&a, 2, &lg), *b = f32(&a, 3, &lb);
  float eps = (float)f64(&a, 4);
  float *y = f32(&a, 5, &ny), *m = f32(&a, 6, &lm), *v = f32(&a, 7, &lv);
  if (a.err || !x || !g || !b || !y || !m || !v || ny != n || (int64_t)lg != L || (int64_t)lb != L ||
      (int64_t)lm != L || (int64_t)lv != L) { a.err = 1; return done(&a); }
  int ok;
  SERIAL(ok = tdn_bn_train(x, (int64_t)n, L, g, b, eps, y, m, v));
  napi_value r;
  napi_get_boolean(env, ok != 0, &r);
  return r;
}

/* bnReluPoolTrain(x, [B, H, W, L], gamma, beta, eps, p, argmax, mean, var) -> false if H or W is odd */
static napi_value js_bn_relu_pool_train(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 9)) return NULL;
  size_t n, nd, lg, lb, np, nam, lm, lv;
  const float *x = f32(&a, 0, &n);
  const int32_t *d = (const int32_t *)arr(&a, 1, &nd);
  const float *g = f32(&a, 2, &lg), *b = f32(&a, 3, &lb);
  float eps = (float)f64(&a, 4);
  float *p = f32(&a, 5, &np), *m = f32(&a, 7, &lm), *v = f32(&a, 8, &lv);
  uint8_t *am = (uint8_t *)arr(&a, 6, &nam);
  if (a.err || !x || !d || nd != 4 || !g || !b || !p || !am || !m || !v) { a.err = 1; return done(&a); }
  const int64_t B = d[0], H = d[1], W = d[2], L = d[3];
  const size_t pooled = (size_t)(B * (H / 2) * (W / 2) * L);
  if (n != (size_t)(B * H * W * L) || np != pooled || nam != pooled || (int64_t)lg != L || (int64_t)lb != L ||
      (int64_t)lm != L || (int64_t)lv != L) { a.err = 1; return done(&a); }
  int ok;
  SERIAL(ok = tdn_bn_relu_pool2_train(x, B, H, W, L, g, b, eps, p, am, m, v));
  napi_value r;
  napi_get_boolean(env, ok != 0, &r);
  return r;
}

/* bnReluPoolTrainGrad(x, dp, argmax, [B, H, W, L], mean, var, gamma, eps, dx, dgamma, dbeta) -> bool */
static napi_value js_bn_relu_pool_train_grad(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 11)) return NULL;
  size_t n, ndp, nam, nd, lm, lv, lg, ndx, ldg, ldb;
  const float *x = f32(&a, 0, &n), *dp = f32(&a, 1, &ndp);
  const uint8_t *am = (const uint8_t *)arr(&a, 2, &nam);
  const int32_t *d = (const int32_t *)arr(&a, 3, &nd);
  const float *m = f32(&a, 4, &lm), *v = f32(&a, 5, &lv), *g = f32(&a, 6, &lg);
  float eps = (float)f64(&a, 7);
  float *dx = f32(&a, 8, &ndx), *dg = f32(&a, 9, &ldg), *db = f32(&a, 10, &ldb);
  if (a.err || !x || !dp || !am || !d || nd != 4 || !m || !v || !g || !dx || !dg || !db) { a.err = 1; return done(&a); }
  const int64_t B = d[0], H = d[1], W = d[2], L = d[3];
  const size_t pooled = (size_t)(B * (H / 2) * (W / 2) * L);
  if (n != (size_t)(B * H * W * L) || ndx != n || ndp != pooled || nam != pooled || (int64_t)lm != L ||
      (int64_t)lv != L || (int64_t)lg != L || (int64_t)ldg != L || (int64_t)ldb != L) { a.err = 1; return done(&a); }
  int ok;
  SERIAL(ok = tdn_bn_relu_pool2_train_grad(x, dp, am, B, H, W, L, m, v, g, eps, dx, dg, db));
  napi_value r;
  napi_get_boolean(env, ok != 0, &r);
  return r;
}

/* batchNormTrainGrad(x, dy, L, mean, var, gamma, eps, dx, dgamma, dbeta) -> bool */
static napi_value js_bn_train_grad(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 10)) return NULL;
  size_t n, ndy, lm, lv, lg, ndx, ldg, ldb;
  const float *x = f32(&a, 0, &n), *dy = f32(&a, 1, &ndy);
  int64_t L = i64(&a, 2);
  const float *m = f32(&a, 3, &lm), *v = f32(&a, 4, &lv), *g = f32(&a, 5, &lg);
  float eps = (float)f64(&a, 6);
  float *dx = f32(&a, 7, &ndx), *dg = f32(&a, 8, &ldg), *db = f32(&a, 9, &ldb);
  if (a.err || !x || !dy || !m || !v || !g || !dx || !dg || !db || ndy != n || ndx != n || (int64_t)lm != L ||
      (int64_t)lv != L || (int64_t)lg != L || (int64_t)ldg != L || (int64_t)ldb != L) { a.err = 1; return done(&a); }
  int ok;
  SERIAL(ok = tdn_bn_train_grad(x, dy, (int64_t)n, L, m, v, g, eps, dx, dg, db));
  napi_value r;
  napi_get_boolean(env, ok != 0, &r);
  return r;
}

/* reluGrad(dy, x, dz) */
static napi_value js_relu_grad(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  size_t n, nx, nz;
  const float *dy = f32(&a, 0, &n), *x = f32(&a, 1, &nx);
  float *dz = f32(&a, 2, &nz);
  if (a.err || !dy || !x || !dz || nx != n || nz != n) { a.err = 1; return done(&a); }
  SERIAL(tdn_relu_grad(dy, x, dz, (int64_t)n));
  return done(&a);
}

/* biasReluGrad(dy, y, L, dz, dbias) -> false if the shapes are not rows of L */
static napi_value js_bias_relu_grad(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 5)) return NULL;
  size_t n, ny, nz, nb;
  const float *dy = f32(&a, 0, &n), *y = f32(&a, 1, &ny);
  int64_t L = i64(&a, 2);
  float *dz = f32(&a, 3, &nz), *db = f32(&a, 4, &nb);
  if (a.err || !dy || !y || !dz || !db || ny != n || nz != n || (int64_t)nb != L) { a.err = 1; return done(&a); }
  int ok;
  SERIAL(ok = tdn_bias_relu_grad(dy, y, (int64_t)n, L, dz, db));
  napi_value r;
  napi_get_boolean(env, ok != 0, &r);
  return r;
}

/* batchNormGrad(x, dy, L, mean, variance, scale?, eps, dx, dmean, dvar, dscale, doffset) -> bool */
static napi_value js_bn_grad(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 12)) return NULL;
  size_t n, ndy, ndx, lm, lv, ls;
  const float *x = f32(&a, 0, &n), *dy = f32(&a, 1, &ndy);
  int64_t L = i64(&a, 2);
  const float *m = f32(&a, 3, &lm), *v = f32(&a, 4, &lv), *s = f32(&a, 5, &ls);
  float eps = (float)f64(&a, 6);
  float *dx = f32(&a, 7, &ndx), *dm = f32(&a, 8, NULL), *dv = f32(&a, 9, NULL), *ds = f32(&a, 10, NULL), *dof = f32(&a, 11, NULL);
  if (a.err || !x || !dy || !m || !v || !dx || !dm || !dv || !ds || !dof || ndy != n || ndx != n || (int64_t)lm != L ||
      (int64_t)lv != L || (s && (int64_t)ls != L)) { a.err = 1; return done(&a); }
  int ok;
  SERIAL(ok = tdn_bn_grad(x, dy, (int64_t)n, L, m, v, s, eps, dx, dm, dv, ds, dof));
  napi_value r;
  napi_get_boolean(env, ok != 0, &r);
  return r;
}

/* tile(x, out, shape Int32Array, reps Int32Array): 4-byte elements (float32 / int32) */
static napi_value js_tile(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  size_t rank, rr;
  const void *x = arr(&a, 0, NULL);
  void *o = arr(&a, 1, NULL);
  const int32_t *sh = (const int32_t *)arr(&a, 2, &rank), *rp = (const int32_t *)arr(&a, 3, &rr);
  if (a.err || !x || !o || !sh || !rp || rank != rr || rank < 1 || rank > 16) { a.err = 1; return done(&a); }
  int64_t shape[16], reps[16];
  for (size_t i = 0; i < rank; i++) { shape[i] = sh[i]; reps[i] = rp[i]; }
  SERIAL(tdn_tile(x, o, (int)rank, shape, reps));
  return done(&a);
}

/* copyStrided(src, srcOffset, dst, dstOffset, geometry Int32Array [n…, srcStrides…, dstStrides…]):
   refused (bad argument) when any index it would touch lies outside either array */
static int strided_in(int64_t off, int rank, const int64_t *n, const int64_t *st, size_t len) {
  int64_t lo = off, hi = off;
  for (int k = 0; k < rank; k++) {
    if (n[k] <= 0) return 1;
    const int64_t reach = (n[k] - 1) * st[k];
    if (reach < 0) lo += reach; else hi += reach;
  }
  return lo >= 0 && hi < (int64_t)len;
}
static napi_value js_copy_strided(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 5)) return NULL;
  size_t ns, nd, ng;
  const float *src = f32(&a, 0, &ns);
  int64_t so = i64(&a, 1);
  float *dst = f32(&a, 2, &nd);
  int64_t dof = i64(&a, 3);
  const int32_t *g = (const int32_t *)arr(&a, 4, &ng);
  if (a.err || !src || !dst || !g || ng % 3 || ng == 0 || ng > 24) { a.err = 1; return done(&a); }
  const int rank = (int)(ng / 3);
  int64_t n[8], ss[8], ds[8];
  for (int k = 0; k < rank; k++) { n[k] = g[k]; ss[k] = g[rank + k]; ds[k] = g[2 * rank + k]; }
  if (!strided_in(so, rank, n, ss, ns) || !strided_in(dof, rank, n, ds, nd)) { a.err = 1; return done(&a); }
  SERIAL(tdn_copy_strided(src + so, dst + dof, rank, n, ss, ds));
  return done(&a);
}

/* addN(out, x0, x1, ...) */
static napi_value js_addn(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  size_t n;
  float *o = f32(&a, 0, &n);
  const float *xs[MAXARGS];
  int k = 0;
  for (size_t i = 1; i < a.argc; i++) xs[k++] = f32(&a, i, NULL);
  for (int i = 0; i < k; i++) if (!xs[i]) a.err = 1;
  if (a.err || !o) { a.err = 1; return done(&a); }
  SERIAL(tdn_addn(xs, k, o, (int64_t)n));
  return done(&a);
}

/* ------------------------------------------------------------------ conv / pool2d */
static int geom(args_t *a, size_t i, conv_geom_t *g) {
  size_t len;
  int32_t *p = (int32_t *)arr(a, i, &len);
  if (!p || len < 15) { a->err = 1; return 0; }
  g->B = p[0]; g->H = p[1]; g->W = p[2]; g->C = p[3]; g->OH = p[4]; g->OW = p[5]; g->OC = p[6];
  g->FH = p[7]; g->FW = p[8]; g->SH = p[9]; g->SW = p[10]; g->DH = p[11]; g->DW = p[12]; g->PT = p[13]; g->PL = p[14];
  if (g->SH < 1 || g->SW < 1 || g->DH < 1 || g->DW < 1) { a->err = 1; return 0; }
  return 1;
}

/* conv2d(geom, x, w, out, bias?, act, alpha, prelu?) */
static napi_value js_conv2d(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  conv_geom_t g;
  size_t nb = 0, np = 0;
  if (!geom(&a, 0, &g)) return done(&a);
  const float *x = f32(&a, 1, NULL), *w = f32(&a, 2, NULL);
  float *o = f32(&a, 3, NULL);
  const float *bias = f32(&a, 4, &nb);
  int act = a.argc > 5 ? (int)i64(&a, 5) : 0;
  float alpha = a.argc > 6 ? (float)f64(&a, 6) : 0.f;
  const float *prelu = f32(&a, 7, &np);
  if (a.err || !x || !w || !o) { a.err = 1; return done(&a); }
  SERIAL(tdn_conv2d(&g, x, w, o, bias, (int)nb, act, alpha, prelu, (int)np));
  return done(&a);
}

#define GEOM3(NAME, CALL)                                                       \
  static napi_value NAME(napi_env env, napi_callback_info info) {               \
    args_t a;                                                                   \
    if (!get_args(env, info, &a, 4)) return NULL;                               \
    conv_geom_t g;                                                              \
    if (!geom(&a, 0, &g)) return done(&a);                                      \
    const float *p1 = f32(&a, 1, NULL), *p2 = f32(&a, 2, NULL);                 \
    float *p3 = f32(&a, 3, NULL);                                               \
    if (a.err || !p1 || !p2 || !p3) { a.err = 1; return done(&a); }             \
    SERIAL(CALL);                                                               \
    return done(&a);                                                            \
  }

/* conv2dBackpropInput(geom, dy, w, dx, reluY?, dbias?) -> false when out of memory; reluY: the
 * input was that ReLU output and dx passes the ReLU too; dbias (C floats): Σ of dx per channel */
static napi_value js_conv2d_bwd_input(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  conv_geom_t g;
  if (!geom(&a, 0, &g)) return done(&a);
  size_t ndy, nw, ndx, ny = 0, nb = 0;
  const float *dy = f32(&a, 1, &ndy), *w = f32(&a, 2, &nw);
  float *dx = f32(&a, 3, &ndx);
  const float *reluY = f32(&a, 4, &ny);
  float *dbias = f32(&a, 5, &nb);
  const size_t in = (size_t)g.B * g.H * g.W * g.C;
  if (a.err || !dy || !w || !dx || ndy != (size_t)g.B * g.OH * g.OW * g.OC ||
      nw != (size_t)g.FH * g.FW * g.C * g.OC || ndx != in || (reluY && ny != in) || (dbias && (!reluY || nb != (size_t)g.C))) {
    a.err = 1;
    return done(&a);
  }
  int ok;
  SERIAL(ok = tdn_conv2d_bwd_input(&g, dy, w, dx, reluY, dbias));
  napi_value r;
  napi_get_boolean(env, ok != 0, &r);
  return r;
}
GEOM3(js_conv2d_bwd_filter, tdn_conv2d_bwd_filter(&g, p1, p2, p3)) /* (geom, x, dy, dw) */
GEOM3(js_dwconv2d_bwd_input, tdn_dwconv2d_bwd_input(&g, p1, p2, p3))
GEOM3(js_dwconv2d_bwd_filter, tdn_dwconv2d_bwd_filter(&g, p1, p2, p3))
/* maxPoolGrad(geom, dy, x, dx, relu?, dbias?, argmax?) -> false when out of memory (or argmax does not
 * fit the geometry); relu: x is a ReLU's output and dx also passes that ReLU; dbias (C floats): Σ per
 * channel of the dy that passed; argmax: pool2d's, then x is not read */
static napi_value js_maxpool_grad(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  conv_geom_t g;
  if (!geom(&a, 0, &g)) return done(&a);
  size_t ndy, nx, ndx, nb = 0;
  const float *dy = f32(&a, 1, &ndy), *x = f32(&a, 2, &nx);
  float *dx = f32(&a, 3, &ndx);
  const int relu = a.argc > 4 ? (int)i64(&a, 4) : 0;
  float *dbias = f32(&a, 5, &nb);
  size_t nam = 0;
  const uint8_t *am = (const uint8_t *)arr(&a, 6, &nam);
  const size_t in = (size_t)g.B * g.H * g.W * g.C, out = (size_t)g.B * g.OH * g.OW * g.C;
  if (a.err || !dy || !x || !dx || ndy != out || nx != in || ndx != in || (dbias && nb != (size_t)g.C) ||
      (am && nam != out)) {
    a.err = 1;
    return done(&a);
  }
  int ok;
  SERIAL(ok = tdn_maxpool_grad(&g, dy, x, dx, relu, dbias, am));
  napi_value r;
  napi_get_boolean(env, ok != 0, &r);
  return r;
}

typedef struct { float *o; int N; const float *bias, *prelu; int nBias, act, nPrelu; float alpha; } epi_t;
static void epi_rows(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  epi_t *p = (epi_t *)vctx;
  tdn_epilogue(p->o, p->N, (int)b, (int)e, p->N, p->bias, p->nBias, p->act, p->alpha, p->prelu, p->nPrelu);
}

/* depthwiseConv2d(geom, x, w, out, bias?, act, alpha, prelu?) */
static napi_value js_dwconv2d(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  conv_geom_t g;
  size_t nb = 0, np = 0;
  if (!geom(&a, 0, &g)) return done(&a);
  const float *x = f32(&a, 1, NULL), *w = f32(&a, 2, NULL);
  float *o = f32(&a, 3, NULL);
  epi_t e = {o, g.OC, f32(&a, 4, &nb), NULL, 0, 0, 0, 0.f};
  e.act = a.argc > 5 ? (int)i64(&a, 5) : 0;
  e.alpha = a.argc > 6 ? (float)f64(&a, 6) : 0.f;
  e.prelu = f32(&a, 7, &np);
  e.nBias = (int)nb;
  e.nPrelu = (int)np;
  if (a.err || !x || !w || !o) { a.err = 1; return done(&a); }
  pthread_mutex_lock(&call_mu);
  tdn_dwconv2d(&g, x, w, o);
  if (e.nBias || e.act) workers_for(epi_rows, &e, (int64_t)g.B * g.OH * g.OW, 1 + 16384 / (g.OC ? g.OC : 1));
  pthread_mutex_unlock(&call_mu);
  return done(&a);
}

/* pool2d(geom, isMax, x, out, argmax?) -> true when argmax (a Uint8Array, one per output) was written */
static napi_value js_pool2d(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  conv_geom_t g;
  if (!geom(&a, 0, &g)) return done(&a);
  int isMax = (int)i64(&a, 1);
  size_t nam = 0;
  const float *x = f32(&a, 2, NULL);
  float *o = f32(&a, 3, NULL);
  uint8_t *am = (uint8_t *)arr(&a, 4, &nam);
  if (a.err || !x || !o || (am && nam != (size_t)g.B * g.OH * g.OW * g.C)) { a.err = 1; return done(&a); }
  int written;
  SERIAL(written = tdn_pool2d(&g, isMax, x, o, am));
  napi_value r;
  napi_get_boolean(env, written != 0, &r);
  return r;
}

/* avgPoolGrad(geom, dy, dx) */
static napi_value js_avgpool_grad(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  conv_geom_t g;
  if (!geom(&a, 0, &g)) return done(&a);
  const float *dy = f32(&a, 1, NULL);
  float *dx = f32(&a, 2, NULL);
  if (a.err || !dy || !dx) { a.err = 1; return done(&a); }
  SERIAL(tdn_avgpool_grad(&g, dy, dx));
  return done(&a);
}

/* ------------------------------------------------------------------ init */
static int default_threads(void) {
  const char *e = getenv("TFJS_DISTILL_THREADS");
  if (e && atoi(e) > 0) return atoi(e);
  /* CPUs this process may run on, at most 16 (beyond that sgemm splits and memory-bound
     loops gain little for the sizes a training step has) */
  int n = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (n <= 0) n = 1;
  return n > 16 ? 16 : n;
}

/* runPlan(desc Int32Array, weights Float32Array[], x, out, batch): a whole model's inference */
#define MAX_PLAN_WEIGHTS 1024
static napi_value js_run_plan(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 5)) return NULL;
  size_t words = 0, nx = 0, nout = 0;
  const int32_t *desc = (const int32_t *)arr(&a, 0, &words);
  const float *x = f32(&a, 2, &nx);
  float *out = f32(&a, 3, &nout);
  int batch = (int)i64(&a, 4);
  uint32_t nw = 0;
  if (a.err || !desc || !x || !out || batch < 1 || words % TDN_PLAN_WORDS != 0 ||
      napi_get_array_length(env, a.argv[1], &nw) != napi_ok || nw > MAX_PLAN_WEIGHTS) {
    a.err = 1;
    return done(&a);
  }
  const float *weights[MAX_PLAN_WEIGHTS];
  for (uint32_t i = 0; i < nw; i++) {
    napi_value v;
    napi_typedarray_type type;
    size_t len;
    void *data;
    if (napi_get_element(env, a.argv[1], i, &v) != napi_ok ||
        napi_get_typedarray_info(env, v, &type, &len, &data, NULL, NULL) != napi_ok || type != napi_float32_array) {
      a.err = 1;
      return done(&a);
    }
    weights[i] = (const float *)data;
  }
  int nops = (int)(words / TDN_PLAN_WORDS);
  if (nops < 1 || (size_t)desc[20] * batch != nx || (size_t)desc[(nops - 1) * TDN_PLAN_WORDS + 21] * batch != nout) {
    a.err = 1;
    return done(&a);
  }
  int bad;
  SERIAL(bad = tdn_plan_run(desc, nops, weights, (int)nw, x, out, batch));
  if (bad) {
    char msg[96];
    snprintf(msg, sizeof msg, "tfjs-distill native: inference plan op %d is invalid", bad - 1);
    napi_throw_error(env, NULL, msg);
  }
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
#if defined(__x86_64__) && defined(__AVX2__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    napi_throw_error(env, NULL, "tfjs-distill native addon was built for AVX2+FMA but this CPU lacks them; rebuild it");
    return NULL;
  }
#endif
  openblas_set_num_threads(1); /* sgemm is split over our own workers instead */
  workers_init(default_threads());
  napi_property_descriptor props[] = {
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
      FN("info", js_info),
      FN("setThreads", js_set_threads),
      FN("setSpinMicros", js_set_spin),
      FN("setGemmPartsPerThread", js_set_gemm_parts),
      FN("setGemmMode", js_set_gemm_mode),
      FN("setAvx512", js_set_avx512),
      FN("setWinograd", js_set_winograd),
      FN("matmul", js_matmul),
      FN("blasDirect", js_blas_direct),
      FN("opCodes", js_op_codes),
      FN("unary", js_unary),
      FN("binary", js_binary),
      FN("reduce", js_reduce),
      FN("argReduce", js_argreduce),
      FN("softmax", js_softmax),
      FN("softKl", js_soft_kl),
      FN("labelCe", js_label_ce),
      FN("adam", js_adam),
      FN("dropoutMask", js_dropout_mask),
      FN("addN", js_addn),
      FN("batchNorm", js_batchnorm),
      FN("tile", js_tile),
      FN("copyStrided", js_copy_strided),
      FN("batchNormGrad", js_bn_grad),
      FN("biasReluGrad", js_bias_relu_grad),
      FN("reluGrad", js_relu_grad),
      FN("batchNormTrain", js_bn_train),
      FN("batchNormTrainGrad", js_bn_train_grad),
      FN("bnReluPoolTrain", js_bn_relu_pool_train),
      FN("bnReluPoolTrainGrad", js_bn_relu_pool_train_grad),
      FN("conv2d", js_conv2d),
      FN("conv2dBackpropInput", js_conv2d_bwd_input),
      FN("conv2dBackpropFilter", js_conv2d_bwd_filter),
      FN("depthwiseConv2d", js_dwconv2d),
      FN("depthwiseBackpropInput", js_dwconv2d_bwd_input),
      FN("depthwiseBackpropFilter", js_dwconv2d_bwd_filter),
      FN("pool2d", js_pool2d),
      FN("maxPoolGrad", js_maxpool_grad),
      FN("avgPoolGrad", js_avgpool_grad),
      FN("runPlan", js_run_plan),
#undef FN
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
