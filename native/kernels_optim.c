// AdamW with decoupled weight decay (Loshchilov & Hutter 2019, Algorithm 2; llm.c gpt2_update), in place over one
// flat parameter buffer. Boundary: float arrays in and out; body in kernels_optim_impl.h, compiled at each SIMD level.
#include <math.h>
#include "kernels.h"

typedef struct {
  float *p, *m, *v;
  const float* g;
  float lr, beta1, beta2, one_b1, one_b2, eps, wd, inv_c1, inv_c2;
} adamw_ctx;

#define CW_IMPL "kernels_optim_impl.h"
#include "kernels_levels.h"

// ---- p, m, v, g: (n); step counts from 1
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr (m / (1 - b1^step) / (sqrt(v / (1 - b2^step)) + eps) + wd p)
void adamw_update(float* p, float* m, float* v, const float* g, int64_t n, double lr, double beta1, double beta2,
                  double eps, double wd, int step) {
  // (1 - beta) and the bias corrections in double: 1 - 0.999f is off by 1e-5 relative
  adamw_ctx c = {.p = p, .m = m, .v = v, .g = g, .lr = lr, .beta1 = beta1, .beta2 = beta2, .one_b1 = 1.0 - beta1,
                 .one_b2 = 1.0 - beta2, .eps = eps, .wd = wd,
                 .inv_c1 = (float)(1.0 / (1.0 - pow(beta1, step))), .inv_c2 = (float)(1.0 / (1.0 - pow(beta2, step)))};
  cw_parallel_for(n, 8192, CW_PICK(adamw_range), &c);
}
