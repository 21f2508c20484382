// NEON (AArch64) GEMM kernels: the 8 x 12 microkernel (24 q-register accumulators; A as two vectors whose lanes
// multiply B by fmla-by-element, three B vectors per k step), the generic packers, and the decode-shaped path.
// The tile is BLIS's ARMv8-A single-precision one (flame/blis kernels/armv8a/3: bli_sgemm_armv8a_asm_8x12), which
// leaves 8 of the 32 vector registers for A and B. NEON is AArch64's baseline: no target
// attributes; native/cpu.c still lets CHATWRIGHT_CPU=scalar choose the scalar kernels.
#include "gemm.h"
#include <stddef.h>

#if defined(__aarch64__)
#include <arm_neon.h>

#define MR 8
#define NR 12

static void ukr_8x12(int64_t kc, const float* restrict a, const float* restrict b, float* restrict c, int64_t ldc,
                     int accumulate) {
#define ZERO3(r) float32x4_t c##r##0 = vdupq_n_f32(0), c##r##1 = vdupq_n_f32(0), c##r##2 = vdupq_n_f32(0);
  ZERO3(0) ZERO3(1) ZERO3(2) ZERO3(3) ZERO3(4) ZERO3(5) ZERO3(6) ZERO3(7)
#define FMA3(r, av, lane)                             \
  c##r##0 = vfmaq_laneq_f32(c##r##0, b0, av, lane);   \
  c##r##1 = vfmaq_laneq_f32(c##r##1, b1, av, lane);   \
  c##r##2 = vfmaq_laneq_f32(c##r##2, b2, av, lane);
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; p++) {
    float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
    float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
    FMA3(0, a0, 0) FMA3(1, a0, 1) FMA3(2, a0, 2) FMA3(3, a0, 3)
    FMA3(4, a1, 0) FMA3(5, a1, 1) FMA3(6, a1, 2) FMA3(7, a1, 3)
    a += MR;
    b += NR;
  }
#define STORE3(r)                                                   \
  {                                                                 \
    float* cr = c + (r) * ldc;                                      \
    if (accumulate) {                                               \
      c##r##0 = vaddq_f32(c##r##0, vld1q_f32(cr));                  \
      c##r##1 = vaddq_f32(c##r##1, vld1q_f32(cr + 4));              \
      c##r##2 = vaddq_f32(c##r##2, vld1q_f32(cr + 8));              \
    }                                                               \
    vst1q_f32(cr, c##r##0);                                         \
    vst1q_f32(cr + 4, c##r##1);                                     \
    vst1q_f32(cr + 8, c##r##2);                                     \
  }
  STORE3(0) STORE3(1) STORE3(2) STORE3(3) STORE3(4) STORE3(5) STORE3(6) STORE3(7)
#undef ZERO3
#undef FMA3
#undef STORE3
}

// Decode-shaped (M <= 4): B stored (N, K) by dot products over K (four accumulators against the FMA latency);
// B stored (K, N) by rows of B scaled into the rows of C, which the compiler vectorises.
static void small_m_neon(float* c, int64_t ldc, const float* a, cw_operand B, int64_t M, int64_t K, int64_t j0,
                         int64_t j1, int accumulate) {
  for (int64_t i = 0; i < M; i++) {
    float* restrict ci = c + i * ldc;
    const float* ai = a + i * K;
    if (B.trans) {
      for (int64_t j = j0; j < j1; j++) {
        const float* bj = B.x + j * B.ld;
        float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0), s2 = vdupq_n_f32(0), s3 = vdupq_n_f32(0);
        int64_t p = 0;
        for (; p + 16 <= K; p += 16) {
          s0 = vfmaq_f32(s0, vld1q_f32(ai + p), vld1q_f32(bj + p));
          s1 = vfmaq_f32(s1, vld1q_f32(ai + p + 4), vld1q_f32(bj + p + 4));
          s2 = vfmaq_f32(s2, vld1q_f32(ai + p + 8), vld1q_f32(bj + p + 8));
          s3 = vfmaq_f32(s3, vld1q_f32(ai + p + 12), vld1q_f32(bj + p + 12));
        }
        float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
        for (; p < K; p++) s += ai[p] * bj[p];
        ci[j] = accumulate ? ci[j] + s : s;
      }
    } else {
      if (!accumulate)
        for (int64_t j = j0; j < j1; j++) ci[j] = 0;
      for (int64_t p = 0; p < K; p++) {
        const float* restrict bp = B.x + p * B.ld;
        float ap = ai[p];
        for (int64_t j = j0; j < j1; j++) ci[j] += ap * bp[j];
      }
    }
  }
}

// Blocking for cores with 64-128 KiB of L1d and 1 MiB or more of L2 (Neoverse N1/V1, Apple M1): an A micro-panel
// (8 x 256, 8 KiB) and a B micro-panel (256 x 12, 12 KiB) in L1, a 128 x 256 A block (128 KiB) in L2. Not tuned on
// hardware yet (this project's arm64 check runs under emulation, where speed means nothing).
const cw_gemm_kernel cw_gemm_kernel_neon = {
    "neon", MR, NR, 128, 256, 3072, 0, ukr_8x12, cw_pack_a_generic, cw_pack_b_generic, small_m_neon, NULL,
};
#endif
