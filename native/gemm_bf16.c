// bf16 mixed-precision GEMM kernels (AVX512_BF16): C = alpha * bf16(op(A)) @ bf16(op(B)) + beta * C, accumulated in
// float32. The inputs stay float32 in memory; the packers round them to bf16 (round to nearest even, as vcvtne2ps2bf16
// does: float32 denormals become signed zeros, NaN stays NaN) into panels of K pairs (gemm.h, cw_gemm_kernel.bf16),
// and the 14 x 32 microkernel runs vdpbf16ps, which multiplies two bf16 pairs and adds both products to a float32
// lane: 32 multiply-adds per instruction where vfmadd231ps does 16, so twice the float32 peak on the same FMA pipes.
// Everything else (blocking, threading, split-K, batches, beta) is the float32 driver's (gemm.c).
// Mixed precision as in Micikevicius et al., "Mixed precision training" (ICLR 2018) and Kalamkar et al., "A study of
// BFLOAT16 for deep learning training" (2019): float32 master weights, bf16 products, float32 sums.
// Instructions: Intel SDM vol. 2, VDPBF16PS and VCVTNE2PS2BF16 (their pseudocode defines the rounding used here).
// Compiled for baseline x86-64; every function carries its own target attribute, and gemm.c runs these only when
// cw_cpu_has_bf16() (native/cpu.c).
#include "gemm.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define TBF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,fma")))
#define MR 14
#define NR 32

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)

// c (14 x 32) = [c +] a-panel @ b-panel over kc steps, ceil(kc/2) pairs: per pair two B vectors (16 columns x 2 k
// each) and, per row, the row's pair broadcast to all lanes (the m32bcst operand of vdpbf16ps).
TBF16 static void ukr_bf16_14x32(int64_t kc, const float* restrict a_, const float* restrict b_, float* restrict c,
                                 int64_t ldc, int accumulate) {
  const int32_t* a = (const int32_t*)a_;
  const int32_t* b = (const int32_t*)b_;
#define DECL(r) __m512 c##r##_0 = _mm512_setzero_ps(), c##r##_1 = _mm512_setzero_ps();
  ROWS(DECL)
#define PREFETCH_C(r) _mm_prefetch((const char*)(c + (r) * ldc), _MM_HINT_T0), \
                      _mm_prefetch((const char*)(c + (r) * ldc + 31), _MM_HINT_T0);
  ROWS(PREFETCH_C)
#define STEP(r)                                                       \
  {                                                                   \
    __m512bh ar = (__m512bh)_mm512_set1_epi32(a[r]);                  \
    c##r##_0 = _mm512_dpbf16_ps(c##r##_0, b0, ar);                    \
    c##r##_1 = _mm512_dpbf16_ps(c##r##_1, b1, ar);                    \
  }
  const int64_t kp = (kc + 1) / 2;
#pragma GCC unroll 2
  for (int64_t q = 0; q < kp; q++) {
    __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16);
    ROWS(STEP)
    a += MR;
    b += NR;
  }
#define STORE(r)                                                    \
  {                                                                 \
    float* cr = c + (r) * ldc;                                      \
    if (accumulate) {                                               \
      c##r##_0 = _mm512_add_ps(c##r##_0, _mm512_loadu_ps(cr));      \
      c##r##_1 = _mm512_add_ps(c##r##_1, _mm512_loadu_ps(cr + 16)); \
    }                                                               \
    _mm512_storeu_ps(cr, c##r##_0);                                 \
    _mm512_storeu_ps(cr + 16, c##r##_1);                            \
  }
  ROWS(STORE)
#undef DECL
#undef PREFETCH_C
#undef STEP
#undef STORE
}

// 32 floats (two vectors) -> 32 bf16 in one vector, lo's in the low half.
TBF16 static inline __m512i round2(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

// In-register transpose of a 16 x 16 block of 32-bit elements: r[i] holds row i on entry, column i on return.
TBF16 static inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    r[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_i32x4(r[i], r[4 + i], 0xDD);
    t[8 + i] = _mm512_shuffle_i32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_i32x4(r[8 + i], r[12 + i], 0xDD);
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0xDD);
  }
}

static inline __mmask16 mask16(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

// Rows src[0..rows) (row stride ld, each contiguous along k) -> dst[q*width + r] for the ceil(kc/2) pairs q: a row's
// pair is two adjacent floats, one 32-bit element once rounded, so 32 k of 16 rows are rounded and transposed as a
// 16 x 16 block of pairs. rows <= 16; width is MR or NR; rows past `rows` are stored as 0. (A stored (M, K); B stored
// (N, K), i.e. the weights of y = x W^T.)
TBF16 static void pack_pairs_rows(int32_t* dst, int width, const float* src, int64_t ld, int rows, int64_t kc,
                                  float alpha) {
  __mmask16 store = mask16(width);
  __m512 va = _mm512_set1_ps(alpha);
  for (int64_t p = 0; p < kc; p += 32) {
    int64_t n = kc - p < 32 ? kc - p : 32;
    __mmask16 mlo = mask16(n), mhi = mask16(n - 16 > 0 ? n - 16 : 0);
    __m512i r[16];
    for (int i = 0; i < 16; i++) {
      if (i >= rows) {
        r[i] = _mm512_setzero_si512();
        continue;
      }
      __m512 lo = _mm512_maskz_loadu_ps(mlo, src + i * ld + p), hi = _mm512_maskz_loadu_ps(mhi, src + i * ld + p + 16);
      if (alpha != 1.0f) lo = _mm512_mul_ps(lo, va), hi = _mm512_mul_ps(hi, va);
      r[i] = round2(lo, hi);
    }
    transpose16(r);
    for (int q = 0; q < (n + 1) / 2; q++) _mm512_mask_storeu_epi32(dst + (p / 2 + q) * width, store, r[q]);
  }
}

// Word order that interleaves two rounded rows x, y (x in words 0..15, y in 16..31) into pairs (x[j], y[j]).
static const uint16_t INTERLEAVE[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                        8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

// Consecutive k rows src and src + ld (n <= 16 contiguous elements each; the second absent when odd) -> n pairs.
TBF16 static inline __m512i pair_rows(const float* src, int64_t ld, int second, __mmask16 m, __m512 va, int scale) {
  __m512 x = _mm512_maskz_loadu_ps(m, src);
  __m512 y = second ? _mm512_maskz_loadu_ps(m, src + ld) : _mm512_setzero_ps();
  if (scale) x = _mm512_mul_ps(x, va), y = _mm512_mul_ps(y, va);
  return _mm512_permutexvar_epi16(_mm512_loadu_si512(INTERLEAVE), round2(x, y));
}

TBF16 static void pack_a_bf16(float* dst_, cw_operand A, int64_t i0, int64_t m, int64_t p0, int64_t kc, float alpha,
                              int mr) {
  (void)mr;
  int32_t* dst = (int32_t*)dst_;
  const int64_t kp = (kc + 1) / 2;
  if (A.trans) {
    // A stored (K, M): rows p and p+1 of A hold the pairs of MR consecutive panel rows side by side
    __m512 va = _mm512_set1_ps(alpha);
    int64_t panels = (m + MR - 1) / MR;
    for (int64_t q = 0; q < kp; q++) {
      const float* src = A.x + (p0 + 2 * q) * A.ld + i0;
      int second = 2 * q + 1 < kc;
      for (int64_t ib = 0; ib < panels; ib++) {
        __m512i v = pair_rows(src + ib * MR, A.ld, second, mask16(m - ib * MR < MR ? m - ib * MR : MR), va, alpha != 1.0f);
        _mm512_mask_storeu_epi32(dst + ib * kp * MR + q * MR, (__mmask16)0x3FFF, v);
      }
    }
    return;
  }
  for (int64_t ib = 0; ib < m; ib += MR, dst += kp * MR) {
    int rows = (int)(m - ib < MR ? m - ib : MR);
    pack_pairs_rows(dst, MR, A.x + (i0 + ib) * A.ld + p0, A.ld, rows, kc, alpha);
  }
}

TBF16 static void pack_b_bf16(float* dst_, cw_operand B, int64_t p0, int64_t kc, int64_t j0, int64_t n, int nr) {
  (void)nr;
  int32_t* dst = (int32_t*)dst_;
  const int64_t kp = (kc + 1) / 2;
  if (!B.trans) {
    // B stored (K, N): rows p and p+1 of B hold the pairs of NR consecutive panel columns side by side
    __m512 va = _mm512_setzero_ps();
    int64_t panels = (n + NR - 1) / NR;
    for (int64_t q = 0; q < kp; q++) {
      const float* src = B.x + (p0 + 2 * q) * B.ld + j0;
      int second = 2 * q + 1 < kc;
      for (int64_t jb = 0; jb < panels; jb++) {
        int64_t cols = n - jb * NR < NR ? n - jb * NR : NR;
        int32_t* d = dst + jb * kp * NR + q * NR;
        _mm512_storeu_si512(d, pair_rows(src + jb * NR, B.ld, second, mask16(cols), va, 0));
        _mm512_storeu_si512(d + 16, pair_rows(src + jb * NR + 16, B.ld, second, mask16(cols > 16 ? cols - 16 : 0), va, 0));
      }
    }
    return;
  }
  // B stored (N, K): 16 rows of B at a time into each half of a panel
  for (int64_t jb = 0; jb < n; jb += NR, dst += kp * NR) {
    int cols = (int)(n - jb < NR ? n - jb : NR);
    int lo = cols < 16 ? cols : 16, hi = cols - lo;
    pack_pairs_rows(dst, NR, B.x + (j0 + jb) * B.ld + p0, B.ld, lo, kc, 1.0f);
    if (hi > 0) pack_pairs_rows(dst + 16, NR, B.x + (j0 + jb + 16) * B.ld + p0, B.ld, hi, kc, 1.0f);
    else
      for (int64_t q = 0; q < kp; q++) _mm512_storeu_si512(dst + q * NR + 16, _mm512_setzero_si512());
  }
}

// The float32 kernel's blocking (gemm_avx512.c) with KC doubled: a bf16 A micro-panel of 14 x 768 takes the bytes a
// float32 one of 14 x 384 does.
const cw_gemm_kernel cw_gemm_kernel_avx512_bf16 = {
    "avx512_bf16", MR, NR, 14 * 24, 768, 768, 1, ukr_bf16_14x32, pack_a_bf16, pack_b_bf16, NULL, NULL, 1,
};
#endif
