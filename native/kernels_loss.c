// Softmax over rows (forward, backward) and cross-entropy fused with log-softmax over the vocabulary: the forward
// keeps only each row's log-sum-exp, never the probabilities; the backward recomputes them from it and writes
// dlogits over the logits when asked to. Boundary: float arrays and sizes in and out; bodies in kernels_loss_impl.h,
// compiled at each SIMD level; rows split over threads.
#include "kernels.h"

typedef struct {
  float *out, *losses, *lse;
  const float *x, *dout;
  const int32_t* targets;
  int64_t C;
} loss_ctx;

#define CW_IMPL "kernels_loss_impl.h"
#include "kernels_levels.h"

static int64_t row_grain(int64_t C) { return C >= 4096 ? 1 : 4096 / (C > 0 ? C : 1); }

// ---- out, x: (N, C)
void softmax_forward(float* out, const float* x, int64_t N, int64_t C) {
  loss_ctx c = {.out = out, .x = x, .C = C};
  cw_parallel_for(N, row_grain(C), CW_PICK(softmax_forward_range), &c);
}

// ---- dx, dout, out: (N, C); dx += out (dout - sum(dout out))
void softmax_backward(float* dx, const float* dout, const float* out, int64_t N, int64_t C) {
  loss_ctx c = {.out = dx, .dout = dout, .x = out, .C = C};
  cw_parallel_for(N, row_grain(C), CW_PICK(softmax_backward_range), &c);
}

// ---- losses, lse: (N); logits: (N, V); targets: (N)
void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V) {
  loss_ctx c = {.losses = losses, .lse = lse, .x = logits, .targets = targets, .C = V};
  cw_parallel_for(N, row_grain(V), CW_PICK(cross_entropy_forward_range), &c);
}

// ---- dlogits, logits: (N, V) (may be the same array); dlosses, lse, targets: (N); overwrites dlogits
void cross_entropy_backward(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V) {
  loss_ctx c = {.out = dlogits, .dout = dlosses, .x = logits, .lse = (float*)lse, .targets = targets, .C = V};
  cw_parallel_for(N, row_grain(V), CW_PICK(cross_entropy_backward_range), &c);
}
