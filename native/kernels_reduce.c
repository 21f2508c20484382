// Reductions (sum, sum of squares, column sums of a matrix) and the embedding gather / scatter-add.
// Boundary: float arrays and sizes in and out; bodies in kernels_reduce_impl.h, compiled at each SIMD level.
// Determinism: sums are formed over fixed chunks and added in order, and scatter-adds split over columns, so the
// results are the same for any thread count.
#include <string.h>
#include <stdlib.h>
#include "kernels.h"

#define SUM_CHUNK 16384

typedef struct {
  const float* x;
  float* dst;
  const int32_t* ids;
  double* partial;
  int64_t n, N, C;
  int squares;
} reduce_ctx;

#define CW_IMPL "kernels_reduce_impl.h"
#include "kernels_levels.h"

static double sum_impl(const float* x, int64_t n, int squares) {
  if (n <= 0) return 0;
  const int64_t chunks = (n + SUM_CHUNK - 1) / SUM_CHUNK;
  double one, *partial = chunks == 1 ? &one : malloc(sizeof(double) * chunks);
  if (!partial) {  // no memory for the partials: one chunk at a time
    double total = 0, p;
    for (int64_t ch = 0; ch < chunks; ch++) {
      reduce_ctx c = {.x = x, .partial = &p, .n = n, .squares = squares};
      c.x = x + ch * SUM_CHUNK, c.n = n - ch * SUM_CHUNK;
      CW_PICK(sum_range)(&c, 0, 1);
      total += p;
    }
    return total;
  }
  reduce_ctx c = {.x = x, .partial = partial, .n = n, .squares = squares};
  cw_parallel_for(chunks, 1, CW_PICK(sum_range), &c);
  double total = 0;
  for (int64_t ch = 0; ch < chunks; ch++) total += partial[ch];
  if (partial != &one) free(partial);
  return total;
}

// ---- x: (n)
double array_sum(const float* x, int64_t n) { return sum_impl(x, n, 0); }
double array_sum_squares(const float* x, int64_t n) { return sum_impl(x, n, 1); }

static void column_pass(reduce_ctx* c) {
  int level = cw_cpu_level();
  int64_t vw = cw_level_width(level);
  int64_t nvec = (c->C + vw - 1) / vw;
  int64_t grain = c->N * vw >= 8192 ? 1 : 8192 / (c->N * vw);
  cw_parallel_for(nvec, grain, CW_PICK(rows_sum_range), c);
}

// ---- db: (C); dout: (N, C)
void rows_sum(float* db, const float* dout, int64_t N, int64_t C) {
  reduce_ctx c = {.x = dout, .dst = db, .N = N, .C = C};
  column_pass(&c);
}

typedef struct {
  float* out;
  const int32_t* ids;
  const float* wte;
  int64_t C;
} gather_ctx;

static void embedding_forward_range(void* ctx, int64_t begin, int64_t end) {
  const gather_ctx* g = ctx;
  for (int64_t n = begin; n < end; n++)
    memcpy(g->out + n * g->C, g->wte + (int64_t)g->ids[n] * g->C, sizeof(float) * g->C);
}

// ---- out: (N, C); ids: (N); wte: (V, C)
void embedding_forward(float* out, const int32_t* ids, const float* wte, int64_t N, int64_t C) {
  gather_ctx g = {.out = out, .ids = ids, .wte = wte, .C = C};
  cw_parallel_for(N, C >= 8192 ? 1 : 8192 / (C > 0 ? C : 1), embedding_forward_range, &g);
}

// ---- dwte: (V, C); dout: (N, C); ids: (N)
void embedding_backward(float* dwte, const float* dout, const int32_t* ids, int64_t N, int64_t C) {
  reduce_ctx c = {.x = dout, .dst = dwte, .ids = ids, .N = N, .C = C};
  column_pass(&c);
}
