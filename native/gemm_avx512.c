// AVX-512 GEMM kernels: the 14 x 32 microkernel (28 zmm accumulators, A broadcast, two B vectors per k step),
// packers that transpose 16 x 16 blocks in registers, and the decode-shaped (M <= 4) streaming kernels.
// Compiled for baseline x86-64; every function carries its own target attribute (native/cpu.c picks the level).
// The tile follows the BLIS skx sgemm choice (32 x 12 column-major, i.e. 12 x 32 row-major: flame/blis
// kernels/skx/3/bli_sgemm_skx_asm_32x12_l2.c) widened to 14 rows, the most that fit 32 zmm registers.
#include "gemm.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define MR 14
#define NR 32
// Rows ahead that the non-transposing packers (op(A) stored (K, M), op(B) stored (K, N)) fetch. Their rows are short runs
// (an MC- or NC-wide slice) a page or more apart, which the hardware prefetchers do not follow across pages, so a
// cold operand costs a memory latency per row: the weight-gradient products dW = dY^T X, whose operands come from
// earlier in the step. Measured in small-preset training steps (two builds alternating step by step in one process,
// 30 steps each): the weight-gradient products 0.84-1.0x the time in two runs and the step 0.96x; in two later runs
// the step 1.00x and 1.02x. An A/A run of one build against itself spreads 0.95-1.00x, so the gain is at most a few
// percent. 16 rows ahead measured no better than 8. Rows under 1 KiB apart (the tiny model's 128-wide operands)
// stream well without it; there the prefetches would only add instructions.
#ifndef PACK_PF
#define PACK_PF 8
#endif
#define PACK_PF_MIN_LD 256

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)

// ldb: the row stride of the B micro-panel (NR when packed; the row stride of B itself when B is read in place).
T512 static inline __attribute__((always_inline)) void ukr_14x32_body(int64_t kc, const float* restrict a,
                                                                     const float* restrict b, const int64_t ldb,
                                                                     float* restrict c, int64_t ldc, int accumulate) {
#define DECL(r) __m512 c##r##_0 = _mm512_setzero_ps(), c##r##_1 = _mm512_setzero_ps();
  ROWS(DECL)
  // C is touched once per K block and usually lives in L3: start fetching the tile while the k loop runs.
#define PREFETCH_C(r) _mm_prefetch((const char*)(c + (r) * ldc), _MM_HINT_T0), \
                      _mm_prefetch((const char*)(c + (r) * ldc + 31), _MM_HINT_T0);
  ROWS(PREFETCH_C)
#define STEP(r)                                        \
  {                                                    \
    __m512 ar = _mm512_set1_ps(a[r]);                  \
    c##r##_0 = _mm512_fmadd_ps(ar, b0, c##r##_0);      \
    c##r##_1 = _mm512_fmadd_ps(ar, b1, c##r##_1);      \
  }
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; p++) {
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
    ROWS(STEP)
    a += MR;
    b += ldb;
  }
#define STORE(r)                                                                    \
  {                                                                                 \
    float* cr = c + (r) * ldc;                                                      \
    if (accumulate) {                                                               \
      c##r##_0 = _mm512_add_ps(c##r##_0, _mm512_loadu_ps(cr));                      \
      c##r##_1 = _mm512_add_ps(c##r##_1, _mm512_loadu_ps(cr + 16));                 \
    }                                                                               \
    _mm512_storeu_ps(cr, c##r##_0);                                                 \
    _mm512_storeu_ps(cr + 16, c##r##_1);                                            \
  }
  ROWS(STORE)
#undef DECL
#undef PREFETCH_C
#undef STEP
#undef STORE
}

T512 static void ukr_14x32(int64_t kc, const float* restrict a, const float* restrict b, float* restrict c, int64_t ldc,
                           int accumulate) {
  ukr_14x32_body(kc, a, b, NR, c, ldc, accumulate);
}

// B read in place (stored (K, N), row stride ldb): no packing for the narrow-N weight-gradient products.
T512 static void ukr_14x32_ldb(int64_t kc, const float* restrict a, const float* restrict b, int64_t ldb,
                               float* restrict c, int64_t ldc, int accumulate) {
  ukr_14x32_body(kc, a, b, ldb, c, ldc, accumulate);
}

// In-register transpose of a 16 x 16 block: r[i] holds row i on entry, column i on return.
T512 static inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xDD);
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xDD);
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD);
  }
}

// Rows src[0..rows) (row stride ld, each contiguous along p) -> dst[p*width + r] for p in [0, kc): the transposing
// copy both packers need (A stored (M, K); B stored (N, K)). rows <= 16; width is MR or NR (dst row = width floats).
T512 static void pack_transpose_rows(float* dst, int width, const float* src, int64_t ld, int rows, int64_t kc,
                                     float alpha) {
  __mmask16 store = (__mmask16)(width >= 16 ? 0xFFFF : (1u << width) - 1);  // rows past `rows` are stored as 0
  __m512 va = _mm512_set1_ps(alpha);
  for (int64_t p = 0; p < kc; p += 16) {
    int n = kc - p < 16 ? (int)(kc - p) : 16;
    __mmask16 m = (__mmask16)((1u << n) - 1);
    __m512 r[16];
    for (int i = 0; i < 16; i++)
      r[i] = i < rows ? _mm512_maskz_loadu_ps(m, src + i * ld + p) : _mm512_setzero_ps();
    transpose16(r);
    for (int q = 0; q < n; q++) {
      __m512 v = alpha == 1.0f ? r[q] : _mm512_mul_ps(r[q], va);
      _mm512_mask_storeu_ps(dst + (p + q) * width, store, v);
    }
  }
}

T512 static void pack_a_avx512(float* dst, cw_operand A, int64_t i0, int64_t m, int64_t p0, int64_t kc, float alpha,
                               int mr) {
  (void)mr;
  __m512 va = _mm512_set1_ps(alpha);
  if (A.trans) {
    // A stored (K, M): walk each row of A once (contiguous, prefetch-friendly) and deal MR-wide pieces to the panels.
    int64_t panels = (m + MR - 1) / MR;
    __mmask16 last = (__mmask16)((1u << (m - (panels - 1) * MR)) - 1);
    for (int64_t p = 0; p < kc; p++) {
      const float* src = A.x + (p0 + p) * A.ld + i0;
      float* d = dst + p * MR;
      // each row of the block is a short run, 1 KiB or more from the next (see PACK_PF)
      if (A.ld >= PACK_PF_MIN_LD)
        for (int64_t o = 0; o < m; o += 16) _mm_prefetch((const char*)(src + PACK_PF * A.ld + o), _MM_HINT_T0);
      for (int64_t ib = 0; ib < panels; ib++, src += MR, d += kc * MR) {
        __m512 v = _mm512_maskz_loadu_ps(ib == panels - 1 ? last : (__mmask16)0x3FFF, src);
        if (alpha != 1.0f) v = _mm512_mul_ps(v, va);
        _mm512_mask_storeu_ps(d, 0x3FFF, v);
      }
    }
    return;
  }
  for (int64_t ib = 0; ib < m; ib += MR, dst += kc * MR) {
    int rows = (int)(m - ib < MR ? m - ib : MR);
    pack_transpose_rows(dst, MR, A.x + (i0 + ib) * A.ld + p0, A.ld, rows, kc, alpha);
  }
}

T512 static void pack_b_avx512(float* dst, cw_operand B, int64_t p0, int64_t kc, int64_t j0, int64_t n, int nr) {
  (void)nr;
  if (!B.trans) {
    // B stored (K, N): walk each row of B once and deal NR-wide pieces to the panels (the last one masked).
    int64_t panels = (n + NR - 1) / NR;
    int tail = (int)(n - (panels - 1) * NR), lo = tail < 16 ? tail : 16, hi = tail - lo;
    __mmask16 mlo = (__mmask16)((1u << lo) - 1), mhi = (__mmask16)((1u << hi) - 1);
    for (int64_t p = 0; p < kc; p++) {
      const float* src = B.x + (p0 + p) * B.ld + j0;
      float* d = dst + p * NR;
      if (B.ld >= PACK_PF_MIN_LD)
        for (int64_t o = 0; o < n; o += 16) _mm_prefetch((const char*)(src + PACK_PF * B.ld + o), _MM_HINT_T0);
      for (int64_t jb = 0; jb < panels - 1; jb++, src += NR, d += kc * NR) {
        _mm512_store_ps(d, _mm512_loadu_ps(src));
        _mm512_store_ps(d + 16, _mm512_loadu_ps(src + 16));
      }
      _mm512_store_ps(d, _mm512_maskz_loadu_ps(mlo, src));
      _mm512_store_ps(d + 16, _mm512_maskz_loadu_ps(mhi, src + 16));
    }
    return;
  }
  // B stored (N, K): transpose 16 rows of B at a time into each half of a panel.
  for (int64_t jb = 0; jb < n; jb += NR, dst += kc * NR) {
    int cols = (int)(n - jb < NR ? n - jb : NR);
    int lo = cols < 16 ? cols : 16, hi = cols - lo;
    pack_transpose_rows(dst, NR, B.x + (j0 + jb) * B.ld + p0, B.ld, lo, kc, 1.0f);
    if (hi > 0) pack_transpose_rows(dst + 16, NR, B.x + (j0 + jb + 16) * B.ld + p0, B.ld, hi, kc, 1.0f);
    else
      for (int64_t p = 0; p < kc; p++) _mm512_store_ps(dst + p * NR + 16, _mm512_setzero_ps());
  }
}

// ---- decode-shaped products (M <= 4): B is streamed once, the M rows of a stay in L1

// B stored (K, N): register tile of M rows x 64 columns, k loop over the rows of B.
T512 static inline __attribute__((always_inline)) void small_m_nt_tile(float* c, int64_t ldc, const float* a,
                                                                    const float* b, int64_t ldb, const int M,
                                                                    int64_t K, int64_t j, int accumulate) {
  __m512 acc[4][4];
  for (int i = 0; i < M; i++)
    for (int v = 0; v < 4; v++) acc[i][v] = _mm512_setzero_ps();
  const float* bp = b + j;
  for (int64_t p = 0; p < K; p++, bp += ldb) {
    __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16), b2 = _mm512_loadu_ps(bp + 32),
           b3 = _mm512_loadu_ps(bp + 48);
    for (int i = 0; i < M; i++) {
      __m512 ai = _mm512_set1_ps(a[i * K + p]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
      acc[i][3] = _mm512_fmadd_ps(ai, b3, acc[i][3]);
    }
  }
  for (int i = 0; i < M; i++)
    for (int v = 0; v < 4; v++) {
      float* cp = c + i * ldc + j + 16 * v;
      _mm512_storeu_ps(cp, accumulate ? _mm512_add_ps(acc[i][v], _mm512_loadu_ps(cp)) : acc[i][v]);
    }
}

// Fewer than 64 columns left: 16 at a time, masked.
T512 static void small_m_nt_tail(float* c, int64_t ldc, const float* a, const float* b, int64_t ldb, int64_t M,
                                 int64_t K, int64_t j0, int64_t j1, int accumulate) {
  for (int64_t j = j0; j < j1; j += 16) {
    int n = j1 - j < 16 ? (int)(j1 - j) : 16;
    __mmask16 m = (__mmask16)((1u << n) - 1);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const float* bp = b + j;
    for (int64_t p = 0; p < K; p++, bp += ldb) {
      __m512 bv = _mm512_maskz_loadu_ps(m, bp);
      for (int i = 0; i < M; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i * K + p]), bv, acc[i]);
    }
    for (int i = 0; i < M; i++) {
      float* cp = c + i * ldc + j;
      __m512 v = accumulate ? _mm512_add_ps(acc[i], _mm512_maskz_loadu_ps(m, cp)) : acc[i];
      _mm512_mask_storeu_ps(cp, m, v);
    }
  }
}

// Horizontal sums of four vectors: lane i of the result is the sum of a[i] (transposing adds, not four reductions).
T512 static inline __m512 sum4_lanes(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  __m512 x01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  __m512 x23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  // per 128-bit lane L: (sum of a0, a1, a2, a3 over lane L)
  return _mm512_add_ps(_mm512_shuffle_ps(x01, x23, 0x44), _mm512_shuffle_ps(x01, x23, 0xEE));
}
T512 static inline __m128 sum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  __m512 y = sum4_lanes(a0, a1, a2, a3);
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(y), _mm512_extractf32x8_ps(y, 1));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
T512 static inline __m256 sum8(const __m512 a[8]) {
  __m512 y0 = sum4_lanes(a[0], a[1], a[2], a[3]), y1 = sum4_lanes(a[4], a[5], a[6], a[7]);
  __m512 s = _mm512_add_ps(_mm512_shuffle_f32x4(y0, y1, 0x88), _mm512_shuffle_f32x4(y0, y1, 0xDD));
  // s lanes: (y0 l0+l1, y0 l2+l3, y1 l0+l1, y1 l2+l3)
  __m512 t = _mm512_add_ps(s, _mm512_shuffle_f32x4(s, s, 0xB1));
  return _mm512_castps512_ps256(_mm512_shuffle_f32x4(t, t, 0x08));
}

// B stored (N, K): NC rows of B at a time (8 for M <= 2, else 4: 8 to 16 independent accumulators), dot products
// with the M rows of a along K, summed across lanes at the end.
T512 static inline __attribute__((always_inline)) void small_m_t_cols(float* c, int64_t ldc, const float* a,
                                                                   const float* b, int64_t ldb, const int M,
                                                                   const int NC, int64_t K, int64_t j, int ncols,
                                                                   int accumulate) {
  __m512 acc[4][8];
  for (int i = 0; i < M; i++)
    for (int q = 0; q < NC; q++) acc[i][q] = _mm512_setzero_ps();
  const float* b0 = b + j * ldb;
  for (int64_t p = 0; p < K; p += 16) {
    __mmask16 m = K - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - p)) - 1);
    __m512 bv[8];
    for (int q = 0; q < NC; q++) bv[q] = q < ncols ? _mm512_maskz_loadu_ps(m, b0 + q * ldb + p) : _mm512_setzero_ps();
    for (int i = 0; i < M; i++) {
      __m512 av = _mm512_maskz_loadu_ps(m, a + i * K + p);
      for (int q = 0; q < NC; q++) acc[i][q] = _mm512_fmadd_ps(av, bv[q], acc[i][q]);
    }
  }
  __mmask8 out = (__mmask8)((1u << ncols) - 1);
  for (int i = 0; i < M; i++) {
    float* cp = c + i * ldc + j;
    if (NC == 8) {
      __m256 s = sum8(acc[i]);
      if (accumulate) s = _mm256_add_ps(s, _mm256_maskz_loadu_ps(out, cp));
      _mm256_mask_storeu_ps(cp, out, s);
    } else {
      __m128 s = sum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
      if (accumulate) s = _mm_add_ps(s, _mm_maskz_loadu_ps(out, cp));
      _mm_mask_storeu_ps(cp, out, s);
    }
  }
}

T512 static void small_m_avx512(float* c, int64_t ldc, const float* a, cw_operand B, int64_t M, int64_t K, int64_t j0,
                                int64_t j1, int accumulate) {
  if (B.trans) {
    const int NC = M <= 2 ? 8 : 4;
    for (int64_t j = j0; j < j1; j += NC) {
      int n = j1 - j < NC ? (int)(j1 - j) : NC;
      switch (M) {
        case 1: small_m_t_cols(c, ldc, a, B.x, B.ld, 1, 8, K, j, n, accumulate); break;
        case 2: small_m_t_cols(c, ldc, a, B.x, B.ld, 2, 8, K, j, n, accumulate); break;
        case 3: small_m_t_cols(c, ldc, a, B.x, B.ld, 3, 4, K, j, n, accumulate); break;
        default: small_m_t_cols(c, ldc, a, B.x, B.ld, 4, 4, K, j, n, accumulate); break;
      }
    }
    return;
  }
  int64_t j = j0;
  for (; j + 64 <= j1; j += 64) {
    switch (M) {
      case 1: small_m_nt_tile(c, ldc, a, B.x, B.ld, 1, K, j, accumulate); break;
      case 2: small_m_nt_tile(c, ldc, a, B.x, B.ld, 2, K, j, accumulate); break;
      case 3: small_m_nt_tile(c, ldc, a, B.x, B.ld, 3, K, j, accumulate); break;
      default: small_m_nt_tile(c, ldc, a, B.x, B.ld, 4, K, j, accumulate); break;
    }
  }
  if (j < j1) small_m_nt_tail(c, ldc, a, B.x, B.ld, M, K, j, j1, accumulate);
}

// Blocking, tuned on a 2-core Emerald Rapids (L1d 48 KiB, L2 2 MiB per core) against OpenBLAS: KC 384 (one K block
// for the 384-wide layers); the A micro-panel (14 x 384, 21 KiB) is kept while B micro-panels stream from a
// 384 x 768 B block (1.2 MiB) in L2 next to a 336 x 384 A block (0.5 MiB). KC 192..448, NC 512..1152, the BLIS
// micro-panel order, and packing A once for up to 4032 rows all measured within noise of this choice, or below it.
const cw_gemm_kernel cw_gemm_kernel_avx512 = {
    "avx512", MR, NR, 14 * 24, 384, 768, 1, ukr_14x32, pack_a_avx512, pack_b_avx512, small_m_avx512, ukr_14x32_ldb,
};
#endif
