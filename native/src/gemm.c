#include "common.h"
#include "workers.h"
#include "sgemm512.h"
#include <cblas.h>
#include <stdlib.h>

static float act_apply(float v, int act, float alpha, float p) {
  switch (act) {
    case ACT_RELU: return v < 0.f ? 0.f : v;
    case ACT_RELU6: return v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
    case ACT_PRELU: return v < 0.f ? p * v : v;
    case ACT_ELU: return v >= 0.f ? v : expm1f(v);
    case ACT_LEAKYRELU: return v < 0.f ? alpha * v : v;
    case ACT_SIGMOID: return 1.f / (1.f + expf(-v));
    default: return v;
  }
}

void tdn_epilogue(float *C, int ldc, int r0, int r1, int N, const float *bias, int nBias, int act,
                  float alpha, const float *prelu, int nPrelu) {
  for (int r = r0; r < r1; r++) {
    float *c = C + (size_t)r * ldc;
    if (nBias == N && bias) {
      for (int j = 0; j < N; j++) c[j] += bias[j];
    } else if (nBias == 1 && bias) {
      const float b = bias[0];
      for (int j = 0; j < N; j++) c[j] += b;
    }
    switch (act) {
      case ACT_LINEAR: break;
      case ACT_RELU:
        for (int j = 0; j < N; j++) c[j] = c[j] < 0.f ? 0.f : c[j];
        break;
      case ACT_RELU6:
        for (int j = 0; j < N; j++) c[j] = c[j] < 0.f ? 0.f : (c[j] > 6.f ? 6.f : c[j]);
        break;
      case ACT_LEAKYRELU:
        for (int j = 0; j < N; j++) c[j] = c[j] < 0.f ? alpha * c[j] : c[j];
        break;
      case ACT_PRELU:
        if (nPrelu == N)
          for (int j = 0; j < N; j++) c[j] = c[j] < 0.f ? prelu[j] * c[j] : c[j];
        else
          for (int j = 0; j < N; j++) c[j] = c[j] < 0.f ? prelu[0] * c[j] : c[j];
        break;
      default:
        for (int j = 0; j < N; j++) c[j] = act_apply(c[j], act, alpha, 0.f);
    }
  }
}

typedef struct {
  int transA, transB, M, N, K;
  float alpha, beta;
  const float *A, *B;
  float *C;
  int lda, ldb, ldc;
  int splitN; /* 1: split columns, 0: split rows */
  int64_t chunk;
  const float *bias; /* per column of C, or NULL */
  int relu;
} gemm_ctx_t;

/* The addon's AVX-512 kernel where it applies (B not transposed, N wide enough to fill its 32-column
 * tiles), else OpenBLAS: single-threaded either way. bias (per column) and relu, when given, are
 * applied to the result (in the kernel's stores, else in a pass after OpenBLAS). */
static int own_kernel(int transB, int N) { return !transB && N >= 16 && tdn_sgemm512_enabled(); }
static void sgemm_one(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc, const float *bias, int relu) {
  if (own_kernel(transB, N) && tdn_sgemm512(transA, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, relu)) return;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              A, lda, B, ldb, beta, C, ldc);
  if (bias || relu) tdn_epilogue(C, ldc, 0, M, N, bias, bias ? N : 0, relu ? ACT_RELU : ACT_LINEAR, 0.f, NULL, 0);
}

static void gemm_part(void *vctx, int64_t t, int tid) {
  (void)tid;
  gemm_ctx_t *g = (gemm_ctx_t *)vctx;
  int64_t b = t * g->chunk;
  int64_t total = g->splitN ? g->N : g->M;
  int64_t e = MIN(b + g->chunk, total);
  if (b >= e) return;
  int n = (int)(e - b);
  if (g->splitN) {
    const float *Bp = g->transB ? g->B + b * g->ldb : g->B + b;
    sgemm_one(g->transA, g->transB, g->M, n, g->K, g->alpha, g->A, g->lda, Bp, g->ldb, g->beta, g->C + b, g->ldc,
              g->bias ? g->bias + b : NULL, g->relu);
  } else {
    const float *Ap = g->transA ? g->A + b : g->A + b * g->lda;
    sgemm_one(g->transA, g->transB, n, g->N, g->K, g->alpha, Ap, g->lda, g->B, g->ldb, g->beta, g->C + b * g->ldc,
              g->ldc, g->bias, g->relu);
  }
}

static int parts_per_thread = 2;
void tdn_set_gemm_parts(int n) { parts_per_thread = n < 1 ? 1 : (n > 8 ? 8 : n); }

/* 0: split over our workers (default); 1: hand big top-level products to OpenBLAS's own threads */
static int gemm_mode = 0;
void tdn_set_gemm_mode(int mode) { gemm_mode = mode ? 1 : 0; }
int tdn_gemm_mode(void) { return gemm_mode; }

#if defined(__AVX2__)
#include <immintrin.h>
/* dst[j * ldd + i] = src[i * lds + j] for an 8 × 8 block, in registers */
static inline void transpose8x8(const float *src, size_t lds, float *dst, size_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; i++) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

/* dst[c * ldd + r] = src[r * lds + c] for rows [r0, r1), in tiles that stay in L1, 8 × 8 blocks in
   registers where the CPU has AVX2 (the C transpose of an NT product took 55 % of its time scalar) */
static void transpose_rows(const float *src, int lds, int r0, int r1, int cols, float *dst, int ldd) {
  enum { TILE = 32 };
  for (int rb = r0; rb < r1; rb += TILE)
    for (int c0 = 0; c0 < cols; c0 += TILE) {
      const int re = MIN(r1, rb + TILE), c1 = MIN(cols, c0 + TILE);
      int c = c0;
#if defined(__AVX2__)
      const int re8 = rb + (re - rb) / 8 * 8;
      for (; c + 8 <= c1; c += 8) {
        int r = rb;
        for (; r < re8; r += 8) transpose8x8(src + (size_t)r * lds + c, (size_t)lds, dst + (size_t)c * ldd + r, (size_t)ldd);
        for (int cc = c; cc < c + 8; cc++)
          for (int rr = r; rr < re; rr++) dst[(size_t)cc * ldd + rr] = src[(size_t)rr * lds + cc];
      }
#endif
      for (; c < c1; c++) /* writes along dst's rows: a row stride of 4 KiB × k aliases */
        for (int r = rb; r < re; r++) dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
    }
}

typedef struct {
  const float *src;
  int lds, cols, ldd;
  float *dst;
} transpose_ctx_t;
static void transpose_part(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  const transpose_ctx_t *t = (const transpose_ctx_t *)vctx;
  transpose_rows(t->src, t->lds, (int)b, (int)e, t->cols, t->dst, t->ldd);
}
/* dst[c * ldd + r] = src[r * lds + c], over the workers when threaded */
static void transpose(const float *src, int lds, int rows, int cols, float *dst, int ldd, int threaded) {
  transpose_ctx_t t = {src, lds, cols, ldd, dst};
  if (threaded && !workers_in_task() && (size_t)rows * cols >= 65536) workers_for(transpose_part, &t, rows, 32);
  else transpose_part(&t, 0, rows, 0);
}

static __thread float *tbuf[TDN_THREAD_BUFFERS];
static __thread size_t tcap[TDN_THREAD_BUFFERS];
float *tdn_thread_buffer(int slot, size_t floats) {
  if (tcap[slot] < floats) {
    free(tbuf[slot]);
    tcap[slot] = 0;
    if (posix_memalign((void **)&tbuf[slot], 64, floats * sizeof(float)) != 0) return tbuf[slot] = NULL;
    tcap[slot] = floats;
  }
  return tbuf[slot];
}

void tdn_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc, int threaded);

/* op(A)·Bᵀ through the AVX-512 kernel, which wants B untransposed: transpose whichever costs
 * less, B itself (N·K floats; then op(A)·(Bᵀ)) or A and C (M·(K+N); then C = (B·Aᵀ)ᵀ, for A
 * untransposed, alpha 1 and beta 0). Returns 0 when it did nothing. */
static int sgemm_transposed(int transA, int M, int N, int K, float alpha, const float *A, int lda,
                            const float *B, int ldb, float beta, float *C, int ldc, int threaded) {
  if ((size_t)N * K <= (size_t)M * (K + N)) {
    float *bt = tdn_thread_buffer(0, (size_t)K * N);
    if (!bt) return 0;
    transpose(B, ldb, N, K, bt, N, threaded);
    tdn_sgemm(transA, 0, M, N, K, alpha, A, lda, bt, N, beta, C, ldc, threaded);
    return 1;
  }
  if (transA || M < 16 || alpha != 1.f || beta != 0.f) return 0;
  float *at = tdn_thread_buffer(0, (size_t)K * M), *ct = tdn_thread_buffer(1, (size_t)N * M);
  if (!at || !ct) return 0;
  transpose(A, lda, M, K, at, M, threaded);
  tdn_sgemm(0, 0, N, M, K, 1.f, B, ldb, at, M, 0.f, ct, M, threaded);
  transpose(ct, M, N, M, C, ldc, threaded);
  return 1;
}

typedef struct {
  float *C;
  int ldc, N;
  const float *bias;
  int relu;
} epi_ctx_t;
static void epi_rows(void *vctx, int64_t b, int64_t e, int tid) {
  (void)tid;
  const epi_ctx_t *p = (const epi_ctx_t *)vctx;
  tdn_epilogue(p->C, p->ldc, (int)b, (int)e, p->N, p->bias, p->bias ? p->N : 0, p->relu ? ACT_RELU : ACT_LINEAR, 0.f,
               NULL, 0);
}

static void sgemm_impl(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc, int threaded, const float *bias,
                       int relu) {
  if ((bias || relu) && (!own_kernel(transB, N) || K <= 0 || (M == 1 && !transA))) {
    /* a route the AVX-512 kernel does not finish (one row goes to sgemv): the product, then one pass */
    sgemm_impl(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, threaded, NULL, 0);
    epi_ctx_t e = {C, ldc, N, bias, relu};
    if (threaded && !workers_in_task()) workers_for(epi_rows, &e, M, 1 + 16384 / N);
    else epi_rows(&e, 0, M, 0);
    return;
  }
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int i = 0; i < M; i++) {
      float *c = C + (size_t)i * ldc;
      if (beta == 0.f) memset(c, 0, sizeof(float) * (size_t)N);
      else for (int j = 0; j < N; j++) c[j] *= beta;
    }
    return;
  }
  if (M == 1 && !transA && !bias && !relu) {
    /* one row (inference at batch 1): OpenBLAS's sgemv streams B once; its sgemm packs B first */
    if (transB) cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, 1, beta, C, 1);
    else cblas_sgemv(CblasRowMajor, CblasTrans, K, N, alpha, B, ldb, A, 1, beta, C, 1);
    return;
  }
  if (transB && N >= 16 && tdn_sgemm512_enabled() && (double)M * N * K >= 65536.0 &&
      sgemm_transposed(transA, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, threaded))
    return;
  int T = threaded && !workers_in_task() ? workers_threads() : 1;
  double work = (double)M * N * K;
  /* Very large products (e.g. 1024³): OpenBLAS's own threads share one packing of A and B and
     beat our split, which packs A once per part; below this the split's lower overhead wins. */
  if (T > 1 && work >= 262144.0 && !bias && !relu && (gemm_mode == 1 || (work >= 5e8 && !own_kernel(transB, N)))) {
    openblas_set_num_threads(T);
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
    openblas_set_num_threads(1);
    return;
  }
  if (T > 1 && work >= 262144.0) {
    gemm_ctx_t g = {transA, transB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, 0, 0, bias, relu};
    /* split the larger output dimension, in multiples of 16, so that every part is >= 16 */
    int64_t total;
    if (N >= M) { g.splitN = 1; total = N; } else { g.splitN = 0; total = M; }
    /* 2 parts per thread when they stay >= 64 wide: a late or descheduled worker then
       costs less (the caller takes the parts nobody has claimed) */
    int parts = parts_per_thread * T;
    while (parts > T && total / parts < 64) parts--;
    while (parts > 1 && total / parts < 16) parts--;
    if (parts > 1) {
      int64_t chunk = (total + parts - 1) / parts;
      chunk = (chunk + 15) & ~(int64_t)15;
      g.chunk = chunk;
      int64_t tasks = (total + chunk - 1) / chunk;
      workers_run(gemm_part, &g, tasks);
      return;
    }
  }
  sgemm_one(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, relu);
}

void tdn_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc, int threaded) {
  sgemm_impl(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, threaded, NULL, 0);
}

void tdn_sgemm_bias_relu(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                         float *C, int ldc, int threaded, const float *bias, int relu) {
  sgemm_impl(transA, transB, M, N, K, 1.f, A, lda, B, ldb, 0.f, C, ldc, threaded, bias, relu);
}


#define MAX_SLOTS 64
static void *slots[2][MAX_SLOTS];
static size_t slot_size[2][MAX_SLOTS];

static void *scratch_impl(int which, int tid, size_t bytes) {
  if (tid < 0 || tid >= MAX_SLOTS) return NULL;
  if (slot_size[which][tid] < bytes) {
    free(slots[which][tid]);
    size_t want = bytes + (bytes >> 3) + 4096;
    void *p = NULL;
    if (posix_memalign(&p, 64, want) != 0) p = NULL;
    slots[which][tid] = p;
    slot_size[which][tid] = p ? want : 0;
  }
  return slots[which][tid];
}
void *tdn_scratch(int tid, size_t bytes) { return scratch_impl(0, tid, bytes); }
void *tdn_scratch2(int tid, size_t bytes) { return scratch_impl(1, tid, bytes); }
