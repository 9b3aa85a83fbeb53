/* Included twice by winograd.c, with VW = 8 (AVX2) and VW = 16 (AVX-512, in a target("avx512f")
 * region): the tile transforms on VW channels at a time, named name_VW. */
#ifndef WINO_CAT
#define WINO_CAT_(a, b) a##_##b
#define WINO_CAT(a, b) WINO_CAT_(a, b)
#endif
#define S(name) WINO_CAT(name, VW)
typedef float S(vf) __attribute__((vector_size(VW * 4), aligned(4)));
typedef int32_t S(vi) __attribute__((vector_size(VW * 4)));
#define VT S(vf)

/* the first n (≤ VW) floats at p; a partial vector is zero-padded */
static inline VT S(ldn)(const float *p, int n) {
  if (n == VW) return *(const VT *)p;
  VT v = {0};
  memcpy(&v, p, sizeof(float) * (size_t)n);
  return v;
}
static inline void S(stn)(float *p, VT v, int n) {
  if (n == VW) *(VT *)p = v;
  else memcpy(p, &v, sizeof(float) * (size_t)n);
}
/* v where on > 0, else +0 */
static inline VT S(keep_if_positive)(VT v, VT on) { return (VT)((S(vi))v & (on > (VT){0})); }

/* ---- the 1-D transforms, on VW channels */
/* Bᵀ, α = 4: [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
static inline void S(bt4)(VT *o, const VT *d) {
  o[0] = d[0] - d[2];
  o[1] = d[1] + d[2];
  o[2] = d[2] - d[1];
  o[3] = d[1] - d[3];
}
/* Bᵀ, α = 6: [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1] */
static inline void S(bt6)(VT *o, const VT *d) {
  o[0] = 4.f * d[0] - 5.f * d[2] + d[4];
  o[1] = d[3] + d[4] - 4.f * (d[1] + d[2]);
  o[2] = d[4] - d[3] + 4.f * (d[1] - d[2]);
  o[3] = d[4] - d[2] + 2.f * (d[3] - d[1]);
  o[4] = d[4] - d[2] + 2.f * (d[1] - d[3]);
  o[5] = 4.f * d[1] - 5.f * d[3] + d[5];
}
/* Aᵀ, m = 2: [1 1 1 0; 0 1 -1 -1] */
static inline void S(at4)(VT *o, const VT *s) {
  o[0] = s[0] + s[1] + s[2];
  o[1] = s[1] - s[2] - s[3];
}
/* Aᵀ, m = 4: [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] */
static inline void S(at6)(VT *o, const VT *s) {
  const VT p = s[1] + s[2], q = s[1] - s[2], r = s[3] + s[4], t = s[3] - s[4];
  o[0] = s[0] + p + r;
  o[1] = q + 2.f * t;
  o[2] = p + 4.f * r;
  o[3] = q + 8.f * t + s[5];
}
/* A (the transpose of Aᵀ), m = 2 → α = 4 */
static inline void S(a4)(VT *o, const VT *e) {
  o[0] = e[0];
  o[1] = e[0] + e[1];
  o[2] = e[0] - e[1];
  o[3] = -e[1];
}
/* A, m = 4 → α = 6 */
static inline void S(a6)(VT *o, const VT *e) {
  const VT p = e[0] + e[2], q = e[1] + e[3], r = e[0] + 4.f * e[2], t = 2.f * e[1] + 8.f * e[3];
  o[0] = e[0];
  o[1] = p + q;
  o[2] = p - q;
  o[3] = r + t;
  o[4] = r - t;
  o[5] = e[3];
}
/* V[k][t][c] = (Bᵀ d B)[k] for tiles [t0, t0 + n), d the α×α input block at (m·ty - PT, m·tx - PL) */
#define INPUT_TRANSFORM(A, M, BT)                                                                               \
  static void S(input_transform_##A)(const wino_ctx_t *c, int64_t t0, int n, float *V) {                           \
    const conv_geom_t *g = c->g;                                                                                \
    const int C = g->C, per = c->TH * c->TW;                                                                    \
    for (int t = 0; t < n; t++) {                                                                               \
      const int64_t tile = t0 + t;                                                                              \
      const int b = (int)(tile / per), r = (int)(tile % per);                                                   \
      const int y0 = (r / c->TW) * M - g->PT, x0 = (r % c->TW) * M - g->PL;                                    \
      const float *p[A][A];                                                                                     \
      for (int i = 0; i < A; i++)                                                                               \
        for (int j = 0; j < A; j++) {                                                                           \
          const int y = y0 + i, xx = x0 + j;                                                                    \
          p[i][j] = y < 0 || y >= g->H || xx < 0 || xx >= g->W ? c->zeros                                       \
                                                               : c->x + (((size_t)b * g->H + y) * g->W + xx) * C; \
        }                                                                                                       \
      float *v = V + (size_t)t * A * A * C;                                                                     \
      for (int ch = 0; ch < C; ch += VW) {                                                                      \
        const int nc = MIN(VW, C - ch);                                                                         \
        SEPARABLE(VT, A, A, BT, S(ldn)(p[I_][J_] + ch, nc), S(stn)(v + (size_t)(I_ * A + J_) * C + ch, X_, nc)); \
      }                                                                                                         \
    }                                                                                                           \
  }
INPUT_TRANSFORM(4, 2, S(bt4))
INPUT_TRANSFORM(6, 4, S(bt6))

/* np pixels of O channels from a tile's stage to the output, + bias, ReLU; or masked by reluY (a
   ReLU's output) with what passes added to acc */
static void S(copy_out)(const wino_ctx_t *c, const float *src, float *dst, const float *ry, int np, int O, float *acc) {
  for (int px = 0; px < np; px++, src += O, dst += O, ry = ry ? ry + O : NULL)
    for (int ch = 0; ch < O; ch += VW) {
      const int nc = MIN(VW, O - ch);
      VT v = S(ldn)(src + ch, nc);
      if (c->bias) v += S(ldn)(c->bias + ch, nc);
      if (c->relu) v = S(keep_if_positive)(v, v);
      if (ry) {
        v = S(keep_if_positive)(v, S(ldn)(ry + ch, nc));
        S(stn)(acc + ch, S(ldn)(acc + ch, nc) + v, nc);
      }
      S(stn)(dst + ch, v, nc);
    }
}

/* the m×m outputs Aᵀ M A of tiles [t0, t0 + n), + bias, ReLU; or, for an input gradient through a
   ReLU, masked by reluY with the sums of what passes added to sums (in float over 16 tiles, in acc).
   A tile's outputs are made in stage [m][m][OC] (L1) and then copied out a row at a time: each row's
   pixels are contiguous, so the copies continue m sequential streams from tile to tile, where storing
   8 channels of every pixel at a time left most stores waiting for their cache lines. */
#define OUTPUT_TRANSFORM(A, M, AT)                                                                              \
  static void S(output_transform_##A)(const wino_ctx_t *c, int64_t t0, int n, const float *Mt, double *sums,     \
                                   float *acc, float *stage) {                                                  \
    const conv_geom_t *g = c->g;                                                                                \
    const int O = g->OC, per = c->TH * c->TW;                                                                   \
    for (int t = 0; t < n; t++) {                                                                               \
      const int64_t tile = t0 + t;                                                                              \
      const int b = (int)(tile / per), r = (int)(tile % per), y0 = (r / c->TW) * M, x0 = (r % c->TW) * M;       \
      const int ny = MIN(M, g->OH - y0), nx = MIN(M, g->OW - x0);                                               \
      const float *mt = Mt + (size_t)t * A * A * O;                                                                   \
      for (int ch = 0; ch < O; ch += VW) {                                                                      \
        const int nc = MIN(VW, O - ch);                                                                         \
        SEPARABLE(VT, A, M, AT, S(ldn)(mt + (size_t)(I_ * A + J_) * O + ch, nc),                                \
                  S(stn)(stage + (size_t)(I_ * M + J_) * O + ch, X_, nc));                                      \
      }                                                                                                         \
      for (int i = 0; i < ny; i++) {                                                                            \
        const size_t at = (((size_t)b * g->OH + y0 + i) * g->OW + x0) * O;                                      \
        S(copy_out)(c, stage + (size_t)i * M * O, c->out + at, c->reluY ? c->reluY + at : NULL, nx, O, acc);       \
      }                                                                                                         \
      if (sums && ((t & 15) == 15 || t == n - 1))                                                               \
        for (int ch = 0; ch < O; ch++) sums[ch] += acc[ch], acc[ch] = 0.f;                                      \
    }                                                                                                           \
  }
OUTPUT_TRANSFORM(4, 2, S(at4))
OUTPUT_TRANSFORM(6, 4, S(at6))

/* E[k][t][o] = (A e Aᵀ)[k] for tiles [t0, t0 + n), e the tile's m×m block of dy (0 outside) */
#define DY_TRANSFORM(A, M, AA)                                                                                  \
  static void S(dy_transform_##A)(const wino_ctx_t *c, int64_t t0, int n, float *E) {                            \
    const conv_geom_t *g = c->g;                                                                                \
    const int O = g->OC, per = c->TH * c->TW;                                                                   \
    for (int t = 0; t < n; t++) {                                                                               \
      const int64_t tile = t0 + t;                                                                              \
      const int b = (int)(tile / per), r = (int)(tile % per), y0 = (r / c->TW) * M, x0 = (r % c->TW) * M;       \
      const float *p[M][M];                                                                                     \
      for (int i = 0; i < M; i++)                                                                               \
        for (int j = 0; j < M; j++)                                                                             \
          p[i][j] = y0 + i >= g->OH || x0 + j >= g->OW                                                          \
                        ? c->zeros                                                                              \
                        : c->dy + (((size_t)b * g->OH + y0 + i) * g->OW + x0 + j) * O;                          \
      float *e = E + (size_t)t * A * A * O;                                                                     \
      for (int ch = 0; ch < O; ch += VW) {                                                                      \
        const int nc = MIN(VW, O - ch);                                                                         \
        SEPARABLE(VT, M, A, AA, S(ldn)(p[I_][J_] + ch, nc), S(stn)(e + (size_t)(I_ * A + J_) * O + ch, X_, nc)); \
      }                                                                                                         \
    }                                                                                                           \
  }
DY_TRANSFORM(4, 2, S(a4))
DY_TRANSFORM(6, 4, S(a6))

#undef INPUT_TRANSFORM
#undef OUTPUT_TRANSFORM
#undef DY_TRANSFORM
#undef VT
#undef S
