#include "plan.h"
#include "common.h"
#include "conv.h"
#include "ew.h"
#include <stdlib.h>

static float *buffers[2];
static size_t buffer_size[2];

static float *buffer(int i, size_t n) {
  if (buffer_size[i] < n) {
    free(buffers[i]);
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(float)) != 0) p = NULL;
    buffers[i] = (float *)p;
    buffer_size[i] = p ? n : 0;
  }
  return buffers[i];
}

static void geom_of(const int32_t *d, int batch, conv_geom_t *g) {
  g->B = batch; g->H = d[1]; g->W = d[2]; g->C = d[3]; g->OH = d[4]; g->OW = d[5]; g->OC = d[6];
  g->FH = d[7]; g->FW = d[8]; g->SH = d[9]; g->SW = d[10]; g->DH = d[11]; g->DW = d[12]; g->PT = d[13]; g->PL = d[14];
}

static int valid(const int32_t *d, int nweights, size_t prevOut) {
  const int op = d[0], w = d[16], b = d[17];
  if (op < 0 || op >= P_COUNT || d[20] <= 0 || d[21] <= 0 || (size_t)d[20] != prevOut) return 0;
  if (w >= nweights || b >= nweights || d[18] < 0 || d[18] >= ACT_COUNT) return 0;
  if ((op == P_CONV || op == P_DWCONV || op == P_DENSE || op == P_SCALE_SHIFT) && w < 0) return 0;
  if (op == P_CONV || op == P_DWCONV || op == P_POOL)
    return d[9] >= 1 && d[10] >= 1 && d[11] >= 1 && d[12] >= 1 && d[1] * d[2] * d[3] == d[20] &&
           d[4] * d[5] * d[6] == d[21];
  return d[1] >= 0 && d[2] > 0;
}

int tdn_plan_run(const int32_t *desc, int nops, const float *const *weights, int nweights, const float *x,
                 float *out, int batch) {
  size_t most = 0, prevOut = nops > 0 ? (size_t)desc[20] : 0;
  for (int i = 0; i < nops; i++) {
    const int32_t *d = desc + (size_t)i * TDN_PLAN_WORDS;
    if (!valid(d, nweights, prevOut)) return i + 1;
    prevOut = (size_t)d[21];
    if (prevOut > most) most = prevOut;
  }
  const float *cur = x;
  for (int i = 0; i < nops; i++) {
    const int32_t *d = desc + (size_t)i * TDN_PLAN_WORDS;
    const int lastAxis = d[0] <= P_POOL ? d[6] : d[2];
    const int64_t outElems = d[21], rows = (int64_t)batch * outElems / lastAxis;
    float *dst = i == nops - 1 ? out : buffer(i & 1, (size_t)batch * most);
    if (!dst) return i + 1;
    const float *w = d[16] >= 0 ? weights[d[16]] : NULL, *bias = d[17] >= 0 ? weights[d[17]] : NULL;
    const int act = d[18];
    float alpha;
    memcpy(&alpha, &d[19], sizeof alpha);
    int cols = 0; /* columns of the epilogue (bias + activation) still to apply, 0: none */
    conv_geom_t g;
    switch (d[0]) {
      case P_CONV:
        geom_of(d, batch, &g);
        tdn_conv2d(&g, cur, w, dst, bias, bias ? g.OC : 0, act, alpha, NULL, 0);
        break;
      case P_DWCONV:
        geom_of(d, batch, &g);
        tdn_dwconv2d(&g, cur, w, dst);
        cols = g.OC;
        break;
      case P_POOL:
        geom_of(d, batch, &g);
        tdn_pool2d(&g, d[22], cur, dst, NULL);
        break;
      case P_DENSE:
        tdn_sgemm(0, 0, batch, d[2], d[1], 1.f, cur, d[1], w, d[2], 0.f, dst, d[2], 1);
        cols = d[2];
        break;
      case P_GAP:
        tdn_reduce(R_MEAN, cur, dst, batch, d[1], d[2]);
        break;
      case P_SCALE_SHIFT: {
        const int64_t n = (int64_t)batch * outElems, C = d[2];
        for (int64_t j = 0; j < n; j++) dst[j] = cur[j] * w[j % C] + (bias ? bias[j % C] : 0.f);
        bias = NULL;
        cols = C;
        break;
      }
      case P_ACT:
        memcpy(dst, cur, sizeof(float) * (size_t)batch * outElems);
        cols = d[2];
        break;
      case P_SOFTMAX:
        tdn_softmax(cur, dst, rows, d[2]);
        break;
    }
    if (cols && (bias || act)) tdn_epilogue(dst, cols, 0, (int)rows, cols, bias, bias ? cols : 0, act, alpha, NULL, 0);
    cur = dst;
  }
  return 0;
}
