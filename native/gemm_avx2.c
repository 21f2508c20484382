// AVX2 + FMA GEMM kernels: the 6 x 16 microkernel (12 ymm accumulators, A broadcast, two B vectors per k step; the
// classic Haswell shape, as in BLIS haswell sgemm 6x16), the generic packers, and a vectorised decode-shaped path.
// Compiled for baseline x86-64; every function carries its own target attribute (native/cpu.c picks the level).
#include "gemm.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define T256 __attribute__((target("avx2,fma")))
#define MR 6
#define NR 16

T256 static void ukr_6x16(int64_t kc, const float* restrict a, const float* restrict b, float* restrict c, int64_t ldc,
                          int accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; p++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 a0 = _mm256_broadcast_ss(a + 0), a1 = _mm256_broadcast_ss(a + 1);
    c00 = _mm256_fmadd_ps(a0, b0, c00); c01 = _mm256_fmadd_ps(a0, b1, c01);
    c10 = _mm256_fmadd_ps(a1, b0, c10); c11 = _mm256_fmadd_ps(a1, b1, c11);
    a0 = _mm256_broadcast_ss(a + 2); a1 = _mm256_broadcast_ss(a + 3);
    c20 = _mm256_fmadd_ps(a0, b0, c20); c21 = _mm256_fmadd_ps(a0, b1, c21);
    c30 = _mm256_fmadd_ps(a1, b0, c30); c31 = _mm256_fmadd_ps(a1, b1, c31);
    a0 = _mm256_broadcast_ss(a + 4); a1 = _mm256_broadcast_ss(a + 5);
    c40 = _mm256_fmadd_ps(a0, b0, c40); c41 = _mm256_fmadd_ps(a0, b1, c41);
    c50 = _mm256_fmadd_ps(a1, b0, c50); c51 = _mm256_fmadd_ps(a1, b1, c51);
    a += MR;
    b += NR;
  }
#define STORE(r)                                                            \
  {                                                                         \
    float* cr = c + (r) * ldc;                                              \
    if (accumulate) {                                                       \
      c##r##0 = _mm256_add_ps(c##r##0, _mm256_loadu_ps(cr));                \
      c##r##1 = _mm256_add_ps(c##r##1, _mm256_loadu_ps(cr + 8));            \
    }                                                                       \
    _mm256_storeu_ps(cr, c##r##0);                                          \
    _mm256_storeu_ps(cr + 8, c##r##1);                                      \
  }
  STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
#undef STORE
}

// Decode-shaped (M <= 4): plain loops that the compiler vectorises for AVX2 under this target.
T256 static void small_m_avx2(float* c, int64_t ldc, const float* a, cw_operand B, int64_t M, int64_t K, int64_t j0,
                              int64_t j1, int accumulate) {
  for (int64_t i = 0; i < M; i++) {
    float* restrict ci = c + i * ldc;
    const float* ai = a + i * K;
    if (B.trans) {
      for (int64_t j = j0; j < j1; j++) {
        const float* bj = B.x + j * B.ld;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        int64_t p = 0;
        for (; p + 16 <= K; p += 16) {
          s0 = _mm256_fmadd_ps(_mm256_loadu_ps(ai + p), _mm256_loadu_ps(bj + p), s0);
          s1 = _mm256_fmadd_ps(_mm256_loadu_ps(ai + p + 8), _mm256_loadu_ps(bj + p + 8), s1);
        }
        s0 = _mm256_add_ps(s0, s1);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        float s = _mm_cvtss_f32(h);
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

const cw_gemm_kernel cw_gemm_kernel_avx2 = {
    "avx2", MR, NR, 6 * 32, 256, 4096, 0, ukr_6x16, cw_pack_a_generic, cw_pack_b_generic, small_m_avx2, NULL,
};
#endif
