// Elementwise ops and activations: add ... fill, exp/log/sigmoid/logSigmoid, clamp, where, swiglu and gelu forward
// and backward, bias add. Boundary: float arrays and sizes in, float arrays out (kernels.h lists the signatures; the
// bodies are in kernels_elementwise_impl.h, compiled at each SIMD level). Every op may write over an input: each
// vector is loaded before the result lands in its place. Work splits over threads in contiguous ranges.
#include "kernels.h"
#include <string.h>

typedef struct {
  int op;
  float* out;
  float* out2;
  const float *a, *b, *c;
  float s, t;
  int64_t C;
} ew_ctx;

#define CW_IMPL "kernels_elementwise_impl.h"
#include "kernels_levels.h"

// Elements per chunk below which splitting over threads costs more than it saves (memory-bound ops).
#define EW_GRAIN 16384

// fill: memset for 0.0f, else `rep stosd` with the value's bits. Both take the fast-string path (ERMS/FSRM), whose
// full-line writes skip the read-for-ownership a vector store loop pays (Intel 64 and IA-32 Architectures
// Optimization Reference Manual, "Enhanced REP MOVSB and STOSB operation"): TypedArray.fill's speed, which the
// vector loop missed by ~20% on 50 MB. A memory-bound store gains little from a second thread, so ranges split only
// past FILL_GRAIN elements (4 MiB each).
#define FILL_GRAIN (1 << 20)
static void fill_range(void* ctx, int64_t begin, int64_t end) {
  const ew_ctx* x = ctx;
  float* p = x->out + begin;
  size_t count = (size_t)(end - begin);
  uint32_t bits;
  memcpy(&bits, &x->s, sizeof bits);
  if (bits == 0) {
    memset(p, 0, count * sizeof(float));
    return;
  }
#if defined(__x86_64__)
  __asm__ volatile("rep stosl" : "+D"(p), "+c"(count) : "a"(bits) : "memory");
#else
  for (size_t i = 0; i < count; i++) p[i] = x->s;
#endif
}

// ---- out (n) = op(a, b, c, s, t); see the EW_* list in kernels.h for which arguments each op reads
void elementwise_forward(int op, float* out, const float* a, const float* b, const float* c, float s, float t,
                         int64_t n) {
  ew_ctx x = {.op = op, .out = out, .a = a, .b = b, .c = c, .s = s, .t = t};
  if (op == EW_FILL) {
    cw_parallel_for(n, FILL_GRAIN, fill_range, &x);
    return;
  }
  // transcendental ops cost ~10x more per element than a load: split smaller ranges
  int64_t grain = (op >= EW_EXP && op <= EW_GELU) || op == EW_SWIGLU ? EW_GRAIN / 8 : EW_GRAIN;
  cw_parallel_for(n, grain, CW_PICK(ew_range), &x);
}

// ---- dgate, dup, dout, gate, up: (n)
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  ew_ctx x = {.out = dgate, .out2 = dup, .a = gate, .b = up, .c = dout};
  cw_parallel_for(n, EW_GRAIN / 8, CW_PICK(swiglu_backward_range), &x);
}

// ---- dx, dout, x: (n)
void gelu_backward(float* dx, const float* dout, const float* x, int64_t n) {
  ew_ctx c = {.out = dx, .a = x, .c = dout};
  cw_parallel_for(n, EW_GRAIN / 8, CW_PICK(gelu_backward_range), &c);
}

// ---- out, x: (N, C); b: (C)
void bias_add(float* out, const float* x, const float* b, int64_t N, int64_t C) {
  ew_ctx c = {.out = out, .a = x, .b = b, .C = C};
  cw_parallel_for(N, C > 0 ? (EW_GRAIN + C - 1) / C : N, CW_PICK(bias_add_range), &c);
}
