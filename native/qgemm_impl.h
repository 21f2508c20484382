// Level-generic bodies of qgemm.c; included once per SIMD level (see kernels_simd.h). The weights are dequantized
// exactly (a q8_0 weight d q has at most 8 + 11 significant bits; a bf16 weight is a float32 with a shorter
// mantissa) and multiplied in float32, so every level computes x @ dequant(W)^T up to float32 summation order.

// VW weights of q8_0 block `blk` (34 bytes: fp16 d, then 32 int8) from element v, as floats
CW_T CW_INLINE vf CW_FN(q8_vec)(const uint8_t* blk, vf d, int v) {
  return vmul(vld_i8((const int8_t*)(blk + 2) + v), d);
}

// ---- decode-shaped products: c[i, j] for i < m (<= 4) and nc columns from j (ncols of them real, the others
// repeat column j and are not stored). The m rows of a and the nc rows of W stay in L1 while K is walked once.

CW_T CW_INLINE void CW_FN(q8_tile)(float* c, int64_t ldc, const float* a, int64_t lda, const uint8_t* w, int64_t ldw,
                                   const int m, const int nc, int64_t K, int ncols) {
  vf acc[4][4];
  const uint8_t* row[4];
  for (int q = 0; q < nc; q++) row[q] = w + (q < ncols ? q : 0) * ldw;
  for (int i = 0; i < 4; i++)  // all of them, so the compiler sees every one read below set (the unused fold away)
    for (int q = 0; q < 4; q++) acc[i][q] = vzero();
  for (int64_t b = 0; b < K / 32; b++) {
    vf d[4];
    for (int q = 0; q < nc; q++) d[q] = vhalf(row[q] + b * 34);
    for (int v = 0; v < 32; v += VW) {
      vf x[4];
      for (int i = 0; i < m; i++) x[i] = vload(a + i * lda + b * 32 + v);
      for (int q = 0; q < nc; q++) {
        vf wv = CW_FN(q8_vec)(row[q] + b * 34, d[q], v);
        for (int i = 0; i < m; i++) acc[i][q] = vfma(x[i], wv, acc[i][q]);
      }
    }
  }
  for (int i = 0; i < m; i++)
    for (int q = 0; q < ncols; q++) c[i * ldc + q] = vhsum(acc[i][q]);
}

CW_T CW_INLINE void CW_FN(bf16_tile)(float* c, int64_t ldc, const float* a, int64_t lda, const uint16_t* w,
                                     int64_t ldw, const int m, const int nc, int64_t K, int ncols) {
  vf acc[4][4];
  const uint16_t* row[4];
  for (int q = 0; q < nc; q++) row[q] = w + (q < ncols ? q : 0) * ldw;
  for (int i = 0; i < 4; i++)  // all of them, so the compiler sees every one read below set (the unused fold away)
    for (int q = 0; q < 4; q++) acc[i][q] = vzero();
  int64_t p = 0;
  for (; p + VW <= K; p += VW) {
    vf x[4];
    for (int i = 0; i < m; i++) x[i] = vload(a + i * lda + p);
    for (int q = 0; q < nc; q++) {
      vf wv = vld_bf16(row[q] + p);
      for (int i = 0; i < m; i++) acc[i][q] = vfma(x[i], wv, acc[i][q]);
    }
  }
  for (int i = 0; i < m; i++)
    for (int q = 0; q < ncols; q++) {
      float s = vhsum(acc[i][q]);
      for (int64_t t = p; t < K; t++) {
        union { uint32_t u; float f; } wt = {(uint32_t)row[q][t] << 16};
        s += a[i * lda + t] * wt.f;
      }
      c[i * ldc + q] = s;
    }
}

// Columns [j0, j1) of C (M, N) = A (M, K) @ W^T for M <= QGEMV_MAX_M: rows in groups of up to 4 under each group of
// columns, so a group's weights are read from memory once and from L1 for the next rows. Column groups: 4 wide (16
// accumulators) where the registers allow (AVX-512: 32; AVX2 with m <= 2), else 2 (AVX2, 16 registers).
#define QTILE(fn, m, nc) fn(c + i0 * ldc + j, ldc, a + i0 * K, K, w + j * ldw, ldw, m, nc, K, n)
#define QTILES(fn)                                                         \
  for (int64_t j = j0; j < j1; j += NC) {                                  \
    int n = j1 - j < NC ? (int)(j1 - j) : NC;                              \
    for (int64_t i0 = 0; i0 < M; i0 += 4) {                                \
      switch (M - i0 < 4 ? M - i0 : 4) {                                   \
        case 1: QTILE(fn, 1, NC); break;                                   \
        case 2: QTILE(fn, 2, NC); break;                                   \
        case 3: QTILE(fn, 3, NC); break;                                   \
        default: QTILE(fn, 4, NC); break;                                  \
      }                                                                    \
    }                                                                      \
  }
#if CW_SIMD == 1
#define NC3 2
#else
#define NC3 4
#endif

CW_T static void CW_FN(q8_gemv)(float* c, int64_t ldc, const float* a, const uint8_t* w, int64_t M, int64_t K,
                                int64_t j0, int64_t j1) {
  const int64_t ldw = K / 32 * 34;
  // with 3 or 4 rows AVX2 runs 2 columns at a time: the column loop steps by NC3 there
  if (M > 2 && NC3 < 4) {
    const int NC = NC3;
    QTILES(CW_FN(q8_tile))
  } else {
    const int NC = 4;
    QTILES(CW_FN(q8_tile))
  }
}

CW_T static void CW_FN(bf16_gemv)(float* c, int64_t ldc, const float* a, const uint16_t* w, int64_t M, int64_t K,
                                  int64_t j0, int64_t j1) {
  const int64_t ldw = K;
  if (M > 2 && NC3 < 4) {
    const int NC = NC3;
    QTILES(CW_FN(bf16_tile))
  } else {
    const int NC = 4;
    QTILES(CW_FN(bf16_tile))
  }
}
#undef QTILE
#undef QTILES
#undef NC3

// ---- the packer of the blocked path: rows [j0, j0+n) x columns [p0, p0+kc) of W, dequantized and transposed into
// ceil(n/nr) float panels (panel element (p, c) at p*nr + c; columns past n are 0), as gemm.h's pack_b. VW rows of
// VW weights are dequantized into registers and transposed there. p0 is a multiple of 32 (cw_gemm_lowp's K blocks),
// so a vector never straddles two q8_0 blocks.
CW_T static void CW_FN(pack_lowp)(float* dst, cw_operand B, int64_t p0, int64_t kc, int64_t j0, int64_t n, int nr) {
  for (int64_t jb = 0; jb < n; jb += nr, dst += kc * nr) {
    for (int g = 0; g < nr; g += VW) {
      const int64_t r0 = jb + g;  // first W row of this group, relative to j0
      for (int64_t p = 0; p < kc; p += VW) {
        const int64_t kk = kc - p < VW ? kc - p : VW;
        vf r[VW];
        for (int i = 0; i < VW; i++) {
          if (r0 + i >= n) {
            r[i] = vzero();
            continue;
          }
          const uint8_t* row = (const uint8_t*)B.raw + (j0 + r0 + i) * B.ld;
          const int64_t k = p0 + p;
          if (B.dtype == CW_DT_Q8_0) {
            // kc is a multiple of 32 here (K is), so kk == VW
            const uint8_t* blk = row + k / 32 * 34;
            r[i] = CW_FN(q8_vec)(blk, vhalf(blk), (int)(k % 32));
          } else if (kk == VW) {
            r[i] = vld_bf16((const uint16_t*)row + k);
          } else {
            float t[VW];
            for (int e = 0; e < VW; e++) {
              union { uint32_t u; float f; } wt = {e < kk ? (uint32_t)((const uint16_t*)row)[k + e] << 16 : 0};
              t[e] = wt.f;
            }
            r[i] = vload(t);
          }
        }
        vtranspose(r);
        for (int q = 0; q < kk; q++) vstore(dst + (p + q) * nr + g, r[q]);
      }
    }
  }
}
