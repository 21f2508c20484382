// Fused causal self-attention, forward and backward, flash-style: the (T, T) score matrix is never stored; the
// forward keeps only out and the log-sum-exp of each query's scores, the backward recomputes the scores block by
// block from them (FlashAttention-2, Dao 2023, arXiv:2307.08691, Algorithms 1 and 2; llm.c's attention_forward is
// the unfused version of the same math). Grouped-query heads: query head h reads kv head h / (nHead / nKvHead).
// KV-cache form (forward only): Tk >= Tq key slots, lens[b] of them valid, query i of batch b at position
// lens[b] - Tq + i.
// Boundary: float arrays and sizes in and out; bodies in kernels_attention_impl.h, compiled at each SIMD level.
// Blocking: ATT_BQ queries x ATT_BK keys per step; every product inside is the register-blocked micro-kernel att_tile.
// The forward forms the scores transposed (keys x queries) so the softmax statistics are vertical vector ops; the
// backward forms them queries x keys against K^T and V^T. Both read K and V from copies packed per (batch, kv head)
// (the forward of a few queries reads them in place). Near the diagonal each product runs per row tile over only the
// keys (or queries) that tile sees, so the causal half of the diagonal blocks is skipped, not computed and masked.
// Parallel: forward over (batch, head, query block); backward over (batch, kv head), each task owning the key and
// value gradients of its group, so no two threads add into the same element (results independent of thread count).
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

#define ATT_BQ 64  // queries per block (a multiple of every level's CW_MR); 32 measured 1-5% slower in the backward
#define ATT_BK 64  // keys per block (a multiple of 16, the widest vector)
#define ATT_PF 16  // software prefetch distance, in rows of q, k, v

typedef struct {
  float *out, *lse, *dq, *dk, *dv;
  const float *q, *k, *v, *dout, *o, *lse_in;
  const int32_t* lens;
  int64_t B, Tq, Tk, nHead, nKvHead, hd;
  int64_t hdp;  // hd rounded up to 16: rows of the packed buffers
  int64_t ldk;  // row stride of the transposed keys: Tk rounded up to ATT_BK, plus 16 so that rows do not fall into
                // the same few L1 sets (a stride of 2^k bytes makes the transpose and the score tile thrash)
  int64_t nqb;  // query blocks
  float scale;
  volatile int failed;  // a worker could not get its scratch memory
} att_ctx;

// Rows to prefetch a few cache lines at a time from inside the products. Rows of one head are strided (nHead hd
// floats apart), which the hardware prefetchers follow poorly, so the rows the next block (or the next task) reads
// first, and the rows this block writes at its end, are fetched while the current block computes. Spread: a burst of
// hundreds of prefetches at a block's start fills the miss queues and stalls the core (measured no better than none);
// a few per row tile of the products overlap with the arithmetic.
#define ATT_PF_MAX 8
typedef struct {
  const char* base[ATT_PF_MAX];
  int64_t stride[ATT_PF_MAX], rows[ATT_PF_MAX], lines[ATT_PF_MAX];  // bytes between rows; rows; cache lines a row
  int n, cur;
  int64_t row, line;  // the cursor: row and line of range cur
  int64_t rowbytes, left, per;
} att_pf;

static void att_pf_reset(att_pf* p, int64_t rowbytes) {
  p->n = p->cur = 0, p->row = p->line = p->left = p->per = 0;
  p->rowbytes = rowbytes;
}

// rows [0, rows) of x, `stride` floats apart
static void att_pf_add(att_pf* p, const float* x, int64_t stride, int64_t rows) {
  if (rows <= 0 || p->n == ATT_PF_MAX) return;
  const int64_t sb = stride * (int64_t)sizeof(float);
  // rows that do not all start a cache line may end in one more
  const int64_t lines = (p->rowbytes + 63) / 64 + ((uintptr_t)x % 64 || sb % 64 ? 1 : 0);
  p->base[p->n] = (const char*)x, p->stride[p->n] = sb, p->rows[p->n] = rows, p->lines[p->n] = lines;
  p->n++, p->left += rows * lines;
}

// spread what is queued over `steps` calls of att_pf_step
static void att_pf_plan(att_pf* p, int64_t steps) { p->per = steps > 0 ? (p->left + steps - 1) / steps : p->left; }

static inline void att_pf_step(att_pf* p) {
  for (int64_t i = 0; i < p->per && p->left > 0; i++, p->left--) {
    const char* row = p->base[p->cur] + p->row * p->stride[p->cur];
    const int64_t lines = p->lines[p->cur];
    cw_prefetch(row + (p->line < lines - 1 ? p->line * 64 : p->rowbytes - 1));
    if (++p->line == lines) {
      p->line = 0;
      if (++p->row == p->rows[p->cur]) p->row = 0, p->cur++;
    }
  }
}

static float* att_alloc(int64_t nfloats) {
  if (cw_test_fail_alloc()) return NULL;
  size_t bytes = ((size_t)nfloats * sizeof(float) + 63) / 64 * 64;
  return aligned_alloc(64, bytes);
}

#define CW_IMPL "kernels_attention_impl.h"
#include "kernels_levels.h"

// ---- out: (B, Tq, nHead, hd); lse: (B, nHead, Tq) or NULL; q: (B, Tq, nHead, hd); k, v: (B, Tk, nKvHead, hd);
// lens: (B) or NULL. Returns 0, or -1 when scratch memory ran out.
int attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int Tq, int Tk,
                      int nHead, int nKvHead, int hd, float scale, const int32_t* lens) {
  att_ctx c = {.out = out, .lse = lse, .q = q, .k = k, .v = v, .lens = lens, .B = B, .Tq = Tq, .Tk = Tk,
               .nHead = nHead, .nKvHead = nKvHead, .hd = hd, .hdp = (hd + 15) / 16 * 16,
               .ldk = ((int64_t)Tk + ATT_BK - 1) / ATT_BK * ATT_BK + 16, .nqb = ((int64_t)Tq + ATT_BQ - 1) / ATT_BQ,
               .scale = scale};
  cw_parallel_for((int64_t)B * nHead * c.nqb, 1, CW_PICK(attention_forward_range), &c);
  return c.failed ? -1 : 0;
}

// ---- dq, dout, out, q: (B, T, nHead, hd); dk, dv, k, v: (B, T, nKvHead, hd); lse: (B, nHead, T). Accumulates.
int attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                       const float* q, const float* k, const float* v, int B, int T, int nHead, int nKvHead, int hd,
                       float scale) {
  att_ctx c = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .o = out, .lse_in = lse, .q = q, .k = k, .v = v, .B = B,
               .Tq = T, .Tk = T, .nHead = nHead, .nKvHead = nKvHead, .hd = hd, .hdp = (hd + 15) / 16 * 16,
               .ldk = ((int64_t)T + ATT_BK - 1) / ATT_BK * ATT_BK + 16, .nqb = ((int64_t)T + ATT_BQ - 1) / ATT_BQ,
               .scale = scale};
  cw_parallel_for((int64_t)B * nKvHead, 1, CW_PICK(attention_backward_range), &c);
  return c.failed ? -1 : 0;
}
