// RMSNorm and LayerNorm over rows of C (forward and backward), and the rotary embedding (Hugging Face Llama
// "rotate_half" convention). Boundary: float arrays and sizes in and out; bodies in kernels_norm_impl.h, compiled at
// each SIMD level. Rows split over threads; the weight/bias gradients are column sums computed in a second pass split
// over columns, so no two threads add into the same element and results do not depend on the thread count.
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

typedef struct {
  float *out, *mean, *rstd, *dx, *dw, *db;
  float* part;  // backward: per block of NORM_RB rows, its partial sums of dw (and db); NULL: a column pass instead
  float* sum;   // residual_rmsnorm_forward: x + y
  const float *x, *w, *b, *dout, *y;
  int64_t N, C;
  float eps;
} norm_ctx;

typedef struct {
  float* out;
  const float *x, *cos, *sin;
  const int32_t* pos0;
  int64_t T, nHead, hd;
  int backward;
} rope_ctx;

// The backward sums the weight (and bias) gradients over fixed blocks of rows in the same pass as dx, then adds the
// blocks' sums in block order: one pass over dout and x instead of two, and still independent of the thread count.
#define NORM_RB 32

#define CW_IMPL "kernels_norm_impl.h"
#include "kernels_levels.h"

// rows per chunk: enough that a chunk is worth a thread (~8K elements)
static int64_t row_grain(int64_t C) { return C >= 8192 ? 1 : 8192 / (C > 0 ? C : 1); }

// column-sum pass over (N, C): split by 16-column vectors (16 is the widest VW)
static void norm_dw(norm_ctx* c) {
  int level = cw_cpu_level();
  int64_t vw = cw_level_width(level);
  int64_t nvec = (c->C + vw - 1) / vw;
  int64_t grain = c->N * vw >= 8192 ? 1 : 8192 / (c->N * vw);
  cw_parallel_for(nvec, grain, CW_PICK(norm_dw_range), c);
}

// The backward of either norm: dx over blocks of rows with the blocks' partial weight-gradient sums, then those
// summed per column; without memory for the partial sums, dx alone and then the column pass over dout and x.
static void norm_backward(norm_ctx* c, cw_range_fn rows) {
  const int64_t nblk = (c->N + NORM_RB - 1) / NORM_RB, grain = (row_grain(c->C) + NORM_RB - 1) / NORM_RB;
  c->part = malloc(sizeof(float) * (size_t)(nblk * c->C * (c->db ? 2 : 1)));
  cw_parallel_for(nblk, grain, rows, c);
  if (!c->part) {
    norm_dw(c);
    return;
  }
  const int64_t vw = cw_level_width(cw_cpu_level()), nvec = (c->C + vw - 1) / vw;
  cw_parallel_for(nvec, nblk * vw >= 8192 ? 1 : 8192 / (nblk * vw), CW_PICK(norm_parts_range), c);
  free(c->part);
}

// ---- out, x: (N, C); rstd: (N); w: (C)
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t N, int64_t C, float eps) {
  norm_ctx c = {.out = out, .rstd = rstd, .x = x, .w = w, .N = N, .C = C, .eps = eps};
  cw_parallel_for(N, row_grain(C), CW_PICK(rmsnorm_forward_range), &c);
}

// ---- sum, out, x, y: (N, C); rstd: (N); w: (C). sum may alias x.
void residual_rmsnorm_forward(float* sum, float* out, float* rstd, const float* x, const float* y, const float* w,
                              int64_t N, int64_t C, float eps) {
  norm_ctx c = {.sum = sum, .out = out, .rstd = rstd, .x = x, .y = y, .w = w, .N = N, .C = C, .eps = eps};
  cw_parallel_for(N, row_grain(C), CW_PICK(residual_rmsnorm_forward_range), &c);
}

// ---- dx, dout, x: (N, C); dw, w: (C); rstd: (N)
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      int64_t N, int64_t C) {
  norm_ctx c = {.dx = dx, .dw = dw, .dout = dout, .x = x, .w = w, .rstd = (float*)rstd, .N = N, .C = C};
  norm_backward(&c, CW_PICK(rmsnorm_backward_range));
}

// ---- out, x: (N, C); mean, rstd: (N); w, b: (C)
void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int64_t N,
                       int64_t C, float eps) {
  norm_ctx c = {.out = out, .mean = mean, .rstd = rstd, .x = x, .w = w, .b = b, .N = N, .C = C, .eps = eps};
  cw_parallel_for(N, row_grain(C), CW_PICK(layernorm_forward_range), &c);
}

// ---- dx, dout, x: (N, C); dw, db, w: (C); mean, rstd: (N)
void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                        const float* mean, const float* rstd, int64_t N, int64_t C) {
  norm_ctx c = {.dx = dx, .dw = dw, .db = db, .dout = dout, .x = x, .w = w, .mean = (float*)mean,
                .rstd = (float*)rstd, .N = N, .C = C};
  norm_backward(&c, CW_PICK(layernorm_backward_range));
}

// ---- out, x: (B, T, nHead, hd); cos, sin: (maxT, hd/2); pos0: (B) or NULL. out may alias x.
void rope_forward(float* out, const float* x, const float* cos, const float* sin, int B, int T, int nHead, int hd,
                  const int32_t* pos0) {
  rope_ctx c = {.out = out, .x = x, .cos = cos, .sin = sin, .pos0 = pos0, .T = T, .nHead = nHead, .hd = hd};
  cw_parallel_for((int64_t)B * T, row_grain((int64_t)nHead * hd), CW_PICK(rope_range), &c);
}

// ---- dx, dout: (B, T, nHead, hd); dx += dout rotated by the negative angle
void rope_backward(float* dx, const float* dout, const float* cos, const float* sin, int B, int T, int nHead, int hd,
                   const int32_t* pos0) {
  rope_ctx c = {.out = dx, .x = dout, .cos = cos, .sin = sin, .pos0 = pos0, .T = T, .nHead = nHead, .hd = hd,
                .backward = 1};
  cw_parallel_for((int64_t)B * T, row_grain((int64_t)nHead * hd), CW_PICK(rope_range), &c);
}
