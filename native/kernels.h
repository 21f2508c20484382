// The kernels behind every Backend primitive except gemm (src/tensor/backend.ts says what each computes; this header
// only lists them). Boundary: plain C over float arrays and sizes. Nothing here knows JavaScript; kernels_glue.c
// checks the arguments and calls these. Each public kernel picks its SIMD level (cw_cpu_level) and splits its work
// with cw_parallel_for; the level-generic bodies live in kernels_*_impl.h (see kernels_simd.h).
// Conventions (llm.c train_gpt2.c): outputs first, then buffers saved for backward, then inputs, then sizes;
// backward kernels accumulate (+=) into gradients, except cross_entropy_backward, which overwrites.
#pragma once
#include "common.h"

// Picks the variant of a kernel for the level in force: name##_avx512, name##_avx2 or name##_scalar on x86-64,
// name##_neon or name##_scalar on AArch64 (kernels_levels.h compiles those).
#if defined(__x86_64__)
#define CW_PICK(name) \
  (cw_cpu_level() >= CW_AVX512 ? name##_avx512 : cw_cpu_level() >= CW_AVX2 ? name##_avx2 : name##_scalar)
#elif defined(__aarch64__)
#define CW_PICK(name) (cw_cpu_level() >= CW_NEON ? name##_neon : name##_scalar)
#else
#define CW_PICK(name) name##_scalar
#endif

// Software prefetch of the cache line at p into L2 (the L1 is the products' working set: prefetching rows of the next
// block into it measured ~10% slower attention than into L2 here, and into L2 no different from none). Volatile asm, not __builtin_prefetch: gcc 12 deletes
// a loop whose only statements are __builtin_prefetch calls when it cannot prove the loop finite (so every row
// prefetch of the attention kernels compiled to nothing), and volatile asm is never deleted.
static inline __attribute__((always_inline)) void cw_prefetch(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetcht1 %0" : : "m"(*(const char*)p));
#elif defined(__aarch64__)
  __asm__ volatile("prfm pldl2keep, %0" : : "Q"(*(const char*)p));
#else
  __builtin_prefetch(p, 0, 2);
#endif
}

// ---- attention (kernels_attention.c); each returns 0, or -1 when its scratch memory could not be allocated
// out: (B, Tq, nHead, hd); lse: (B, nHead, Tq) or NULL; q: (B, Tq, nHead, hd); k, v: (B, Tk, nKvHead, hd);
// lens: (B) or NULL (then every batch has Tk valid keys)
int attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int Tq, int Tk,
                      int nHead, int nKvHead, int hd, float scale, const int32_t* lens);
// dq: (B, T, nHead, hd); dk, dv: (B, T, nKvHead, hd); dout, out like dq; lse: (B, nHead, T)
int attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                       const float* q, const float* k, const float* v, int B, int T, int nHead, int nKvHead, int hd,
                       float scale);

// ---- normalisation and rotary embedding (kernels_norm.c); rows of C
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t N, int64_t C, float eps);
void residual_rmsnorm_forward(float* sum, float* out, float* rstd, const float* x, const float* y, const float* w,
                              int64_t N, int64_t C, float eps);
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      int64_t N, int64_t C);
void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int64_t N,
                       int64_t C, float eps);
void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                        const float* mean, const float* rstd, int64_t N, int64_t C);
// x, out: (B, T, nHead, hd); cos, sin: (maxT, hd/2); pos0: (B) or NULL
void rope_forward(float* out, const float* x, const float* cos, const float* sin, int B, int T, int nHead, int hd,
                  const int32_t* pos0);
void rope_backward(float* dx, const float* dout, const float* cos, const float* sin, int B, int T, int nHead, int hd,
                   const int32_t* pos0);

// ---- softmax and cross-entropy (kernels_loss.c)
void softmax_forward(float* out, const float* x, int64_t N, int64_t C);
void softmax_backward(float* dx, const float* dout, const float* out, int64_t N, int64_t C);
// losses, lse: (N); logits: (N, V); targets: (N), < 0 ignored, each < V (the glue checks)
void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V);
void cross_entropy_backward(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V);

// ---- elementwise and activations (kernels_elementwise.c); n elements, out may alias any input
enum {
  EW_ADD, EW_SUB, EW_MUL, EW_DIV, EW_MINIMUM, EW_MAXIMUM,  // out = a op b
  EW_SCALE_SHIFT, EW_CLAMP,                                 // out = a s + t; out = min(max(a, s), t)
  EW_EXP, EW_LOG, EW_SIGMOID, EW_LOG_SIGMOID, EW_GELU,      // out = f(a)
  EW_AXPY,                                                  // out += s a
  EW_WHERE,                                                 // out = c != 0 ? a : b
  EW_FILL,                                                  // out = s
  EW_SWIGLU,                                                // out = silu(a) b
};
void elementwise_forward(int op, float* out, const float* a, const float* b, const float* c, float s, float t,
                         int64_t n);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);
void gelu_backward(float* dx, const float* dout, const float* x, int64_t n);
// out: (N, C) = x (N, C) + b (C)
void bias_add(float* out, const float* x, const float* b, int64_t N, int64_t C);

// ---- reductions, embedding, optimizer (kernels_reduce.c)
double array_sum(const float* x, int64_t n);
double array_sum_squares(const float* x, int64_t n);
// db: (C) += column sums of dout (N, C)
void rows_sum(float* db, const float* dout, int64_t N, int64_t C);
// out: (N, C) = wte[ids]; ids each in [0, V) (the glue checks)
void embedding_forward(float* out, const int32_t* ids, const float* wte, int64_t N, int64_t C);
void embedding_backward(float* dwte, const float* dout, const int32_t* ids, int64_t N, int64_t C);
void adamw_update(float* p, float* m, float* v, const float* g, int64_t n, double lr, double beta1, double beta2,
                  double eps, double wd, int step);
