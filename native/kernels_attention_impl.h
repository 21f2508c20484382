// Level-generic bodies of kernels_attention.c; included once per SIMD level (see kernels_simd.h).

// ---- the tile product: C (M, N) = A (M, K) B (K, N) (acc 0), C += A B (acc 1) or C = diag(cs) C + A B (acc 2,
// the online softmax's rescaling of the output rows, done where the rows are loaded anyway), where
// A[r][k] = A[r rsa + k csa] (so A may be read transposed), B and C are row-major with row strides ldb, ldc; M is a
// multiple of CW_MR, N of VW.
// Register blocking as in a GEMM micro-kernel (Goto & van de Geijn 2008): a CW_MR x (nv VW) block of C stays in
// registers while k runs; each step loads nv vectors of B and broadcasts CW_MR scalars of A.
CW_T CW_INLINE void CW_FN(att_tile)(const int nv, float* C, int64_t ldc, const float* A, int64_t rsa, int64_t csa,
                                    const float* B, int64_t ldb, int64_t K, int acc, const float* cs) {
  vf c[CW_MR][CW_NV];
  for (int r = 0; r < CW_MR; r++)
    for (int v = 0; v < nv; v++)
      c[r][v] = acc == 0 ? vzero() : acc == 1 ? vload(C + r * ldc + v * VW) : vmul(vload(C + r * ldc + v * VW), vset1(cs[r]));
  for (int64_t k = 0; k < K; k++) {
    const float* b = B + k * ldb;
    vf bv[CW_NV];
    for (int v = 0; v < nv; v++) bv[v] = vload(b + v * VW);
    for (int r = 0; r < CW_MR; r++) {
      const vf a = vset1(A[r * rsa + k * csa]);
      for (int v = 0; v < nv; v++) c[r][v] = vfma(a, bv[v], c[r][v]);
    }
  }
  for (int r = 0; r < CW_MR; r++)
    for (int v = 0; v < nv; v++) vstore(C + r * ldc + v * VW, c[r][v]);
}

CW_T static void CW_FN(att_gemm_s)(float* C, int64_t ldc, const float* A, int64_t rsa, int64_t csa, const float* B,
                                   int64_t ldb, int64_t M, int64_t N, int64_t K, int acc, const float* cs) {
  for (int64_t i = 0; i < M; i += CW_MR) {
    for (int64_t j = 0; j < N; j += CW_NV * VW) {
      float* Ct = C + i * ldc + j;
      const float *At = A + i * rsa, *Bt = B + j, *ci = cs ? cs + i : NULL;
      const int64_t nv = (N - j) / VW;
      if (nv >= CW_NV) CW_FN(att_tile)(CW_NV, Ct, ldc, At, rsa, csa, Bt, ldb, K, acc, ci);
#if CW_NV == 4
      else if (nv == 3) CW_FN(att_tile)(3, Ct, ldc, At, rsa, csa, Bt, ldb, K, acc, ci);
      else if (nv == 2) CW_FN(att_tile)(2, Ct, ldc, At, rsa, csa, Bt, ldb, K, acc, ci);
#endif
      else CW_FN(att_tile)(1, Ct, ldc, At, rsa, csa, Bt, ldb, K, acc, ci);
    }
  }
}

CW_T static void CW_FN(att_gemm)(float* C, int64_t ldc, const float* A, int64_t rsa, int64_t csa, const float* B,
                                 int64_t ldb, int64_t M, int64_t N, int64_t K, int acc) {
  CW_FN(att_gemm_s)(C, ldc, A, rsa, csa, B, ldb, M, N, K, acc, NULL);
}

// Transposes a (rows, cols) block with row stride lds into dst (cols, rpad) with row stride ldd, times mul:
// dst[c ldd + r] = src[r lds + c] mul for r < rows, 0 for r in [rows, rpad). In 16 x 16 (AVX-512) or 8 x 8 (AVX2)
// register blocks: unpack, shuffle, then 128-bit lane shuffles (the usual in-register transpose).
CW_T static void CW_FN(att_transpose)(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows,
                                      int64_t rpad, int64_t cols, float mul) {
#if CW_SIMD == 2
  const __m512 m = _mm512_set1_ps(mul);
  for (int64_t r0 = 0; r0 < rpad; r0 += 16) {
    const int64_t nr = rows - r0 < 0 ? 0 : rows - r0 < 16 ? rows - r0 : 16;
    const int64_t nw = rpad - r0 < 16 ? rpad - r0 : 16;
    const __mmask16 wmask = (__mmask16)((1u << nw) - 1);
    for (int64_t i = r0 + 16; i < r0 + 32 && i < rows; i++)  // the next rows: strided, so not prefetched by hardware
      for (int64_t o = 0; o < cols; o += 16) cw_prefetch(src + i * lds + o);
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      const int64_t nc = cols - c0 < 16 ? cols - c0 : 16;
      const __mmask16 cmask = (__mmask16)((1u << nc) - 1);
      __m512 r[16], t[16];
      for (int i = 0; i < 16; i++)
        r[i] = i < nr ? _mm512_mul_ps(_mm512_maskz_loadu_ps(cmask, src + (r0 + i) * lds + c0), m) : _mm512_setzero_ps();
      for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
      }
      for (int i = 0; i < 16; i += 8)
        for (int k = 0; k < 4; k++) {
          t[i + k] = _mm512_shuffle_f32x4(r[i + k], r[i + k + 4], 0x88);
          t[i + k + 4] = _mm512_shuffle_f32x4(r[i + k], r[i + k + 4], 0xdd);
        }
      for (int k = 0; k < 8; k++) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
        r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xdd);
      }
      for (int j = 0; j < nc; j++) _mm512_mask_storeu_ps(dst + (c0 + j) * ldd + r0, wmask, r[j]);
    }
  }
#elif CW_SIMD == 1
  const __m256 m = _mm256_set1_ps(mul);
  for (int64_t r0 = 0; r0 < rpad; r0 += 8) {
    const int64_t nr = rows - r0 < 0 ? 0 : rows - r0 < 8 ? rows - r0 : 8;
    const int64_t nw = rpad - r0 < 8 ? rpad - r0 : 8;
    for (int64_t i = r0 + 8; i < r0 + 16 && i < rows; i++)
      for (int64_t o = 0; o < cols; o += 16) cw_prefetch(src + i * lds + o);
    for (int64_t c0 = 0; c0 < cols; c0 += 8) {
      const int64_t nc = cols - c0 < 8 ? cols - c0 : 8;
      __m256 r[8], t[8];
      for (int i = 0; i < 8; i++) r[i] = i < nr ? _mm256_mul_ps(vld_avx2(src + (r0 + i) * lds + c0, nc), m) : _mm256_setzero_ps();
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
      }
      for (int k = 0; k < 4; k++) {
        t[k] = _mm256_permute2f128_ps(r[k], r[k + 4], 0x20);
        t[k + 4] = _mm256_permute2f128_ps(r[k], r[k + 4], 0x31);
      }
      for (int j = 0; j < nc; j++) vst_avx2(dst + (c0 + j) * ldd + r0, t[j], nw);
    }
  }
#else
  for (int64_t c = 0; c < cols; c++) {
    for (int64_t r = 0; r < rows; r++) dst[c * ldd + r] = src[r * lds + c] * mul;
    for (int64_t r = rows; r < rpad; r++) dst[c * ldd + r] = 0;
  }
#endif
}

// Packs keys [0, nk) of kv head g of batch b, zero-padded to nkp keys: kt (hd, ldk) = K^T and/or kp (nkp, hdp) = K
// with rows padded to hdp. The transposed copy lets the score tile vectorise over keys.
CW_T static void CW_FN(att_pack)(float* kt, float* kp, const float* k, int64_t b, int64_t g, int64_t nk, int64_t nkp,
                            const att_ctx* c) {
  const int64_t hd = c->hd, hdp = c->hdp, ldk = c->ldk;
  const int64_t rs = c->nKvHead * hd;  // between consecutive keys
  // rows are strided, which the hardware prefetchers follow poorly: fetch ATT_PF keys ahead
  const char* base = (const char*)(k + (b * c->Tk * c->nKvHead + g) * hd);
  for (int64_t j = 0; j < ATT_PF && j < nk; j++)
    for (int64_t o = 0; o < hd * (int64_t)sizeof(float); o += 64) cw_prefetch(base + j * rs * 4 + o);
  if (kt) CW_FN(att_transpose)(kt, ldk, (const float*)base, rs, nk, nkp, hd, 1.0f);
  for (int64_t j = 0; kp && j < nkp; j++) {
    const float* src = k + ((b * c->Tk + j) * c->nKvHead + g) * hd;
    if (!kt && j + ATT_PF < nk)
      for (int64_t o = 0; o < hd * (int64_t)sizeof(float); o += 64)
        cw_prefetch(base + (j + ATT_PF) * rs * 4 + o);
    if (j < nk) memcpy(kp + j * hdp, src, sizeof(float) * hd);
    else memset(kp + j * hdp, 0, sizeof(float) * hd);
    memset(kp + j * hdp + hd, 0, sizeof(float) * (hdp - hd));
  }
}

// Copies rows [i0, i0 + qn) of head h of x (B, Tq, nHead, hd) times `mul` into dst (Mq, hdp), zero padding.
CW_T static void CW_FN(att_load_rows)(float* dst, const float* x, float mul, int64_t b, int64_t h, int64_t i0,
                                      int64_t qn, int64_t Mq, const att_ctx* c) {
  const int64_t hd = c->hd, hdp = c->hdp;
  const vf m = vset1(mul);
  for (int64_t r = 0; r < qn; r++) {
    const float* src = x + ((b * c->Tq + i0 + r) * c->nHead + h) * hd;
    for (int64_t d = 0; d < hdp; d += VW) vstore(dst + r * hdp + d, vmul(vld(src + d, hd - d), m));
  }
  memset(dst + qn * hdp, 0, sizeof(float) * (Mq - qn) * hdp);
}

// ---- forward: tasks (b, h, query block) [begin, end). FlashAttention-2 (Dao 2023, Algorithm 1) on a CPU: per block
// of ATT_BK keys, the scores are formed transposed, S^T = K (scale Q)^T (keys x queries), so that the online softmax
// statistics of each query (running max m, sum l) are plain vector ops down the rows, with no horizontal reduction
// per row; then O = O e^(m_old - m_new) + P V, reading P^T through the tile's strided A.
CW_T static void CW_FN(attention_forward_range)(void* ctx, int64_t begin, int64_t end) {
  att_ctx* c = ctx;
  const int64_t hd = c->hd, hdp = c->hdp, ldk = c->ldk, Tk = c->Tk, Tq = c->Tq;
  const int64_t group = c->nHead / c->nKvHead;
  // With whole-vector rows (hd a multiple of 16) the products read K and V where they lie, the rows of the next key
  // block prefetched while the current one computes (att_pf); otherwise from copies packed per (batch, kv head),
  // rows padded to hdp. Packing the whole-vector case too measured 8-11% slower at T = 256..512 (B = 8, 6 heads x 64).
  const int inPlace = hd == hdp;
  const int64_t npack = inPlace ? 0 : ldk * hdp;
  float* buf = att_alloc(2 * npack + ATT_BK * hdp + ATT_BQ * hdp + hd * ATT_BQ + ATT_BK * ATT_BQ + 3 * ATT_BQ);
  if (!buf) {
    c->failed = 1;
    return;
  }
  float *Kp = buf, *Vp = Kp + npack, *Kblk = Vp + npack, *O = Kblk + ATT_BK * hdp, *QT = O + ATT_BQ * hdp;
  float *ST = QT + hd * ATT_BQ, *mrow = ST + ATT_BK * ATT_BQ, *lrow = mrow + ATT_BQ, *arow = lrow + ATT_BQ;
  const int64_t rs = c->nKvHead * hd;  // between consecutive keys in k, v
  int64_t packed = -1;  // b * nKvHead + g of the keys and values in Kp, Vp
  att_pf pf;
  for (int64_t task = begin; task < end; task++) {
    const int64_t qb = task % c->nqb, h = task / c->nqb % c->nHead, b = task / c->nqb / c->nHead, g = h / group;
    const int64_t len = c->lens ? c->lens[b] : Tk;
    const int64_t nk = len < Tk ? (len > 0 ? len : 0) : Tk;  // keys any query of this batch may see
    if (!inPlace && b * c->nKvHead + g != packed) {
      const int64_t nkp = (nk + ATT_BK - 1) / ATT_BK * ATT_BK;
      CW_FN(att_pack)(NULL, Kp, c->k, b, g, nk, nkp, c);
      CW_FN(att_pack)(NULL, Vp, c->v, b, g, nk, nkp, c);
      packed = b * c->nKvHead + g;
    }
    const int64_t i0 = qb * ATT_BQ, qn = Tq - i0 < ATT_BQ ? Tq - i0 : ATT_BQ;
    const int64_t Mq = (qn + CW_MR - 1) / CW_MR * CW_MR, Nq = (qn + 15) / 16 * 16;
    const int64_t pos0 = len - Tq + i0;  // absolute position of the block's first query
    // QT (hd, ATT_BQ) = (scale q)^T, zero in columns [qn, Nq)
    const float* qrow = c->q + ((b * Tq + i0) * c->nHead + h) * hd;
    const int64_t qrs = c->nHead * hd;  // between consecutive queries
    CW_FN(att_transpose)(QT, ATT_BQ, qrow, qrs, qn, Nq, hd, c->scale);
    for (int64_t r = 0; r < ATT_BQ; r++) mrow[r] = -INFINITY, lrow[r] = 0;
    const int64_t maxlast = pos0 + qn - 1 < nk - 1 ? pos0 + qn - 1 : nk - 1;
    // prefetched during this block: what the next task reads first (its queries, and the keys and values it sees
    // that this block did not). Not the rows of out this block writes: prefetching them too measured 7% slower at
    // T = 256 (the miss queues are the limit here; a store's own fetch waits less than a prefetch that delays reads).
    att_pf_reset(&pf, hd * (int64_t)sizeof(float));
    if (task + 1 < end) {
      const int64_t qb2 = (task + 1) % c->nqb, h2 = (task + 1) / c->nqb % c->nHead, b2 = (task + 1) / c->nqb / c->nHead;
      const int64_t len2 = c->lens ? c->lens[b2] : Tk, nk2 = len2 < Tk ? (len2 > 0 ? len2 : 0) : Tk;
      const int64_t i2 = qb2 * ATT_BQ, qn2 = Tq - i2 < ATT_BQ ? Tq - i2 : ATT_BQ;
      const int64_t last2 = len2 - Tq + i2 + qn2 - 1 < nk2 - 1 ? len2 - Tq + i2 + qn2 - 1 : nk2 - 1;
      int64_t from = b2 == b && h2 / group == g ? maxlast + 1 : 0;
      if (!inPlace && b2 * c->nKvHead + h2 / group == packed) from = last2 + 1;  // already in Kp, Vp
      int64_t to = last2 + 1 < from + 2 * ATT_BK ? last2 + 1 : from + 2 * ATT_BK;  // the first key blocks at most
      att_pf_add(&pf, c->q + ((b2 * Tq + i2) * c->nHead + h2) * hd, qrs, qn2);
      att_pf_add(&pf, c->k + ((b2 * Tk + from) * c->nKvHead + h2 / group) * hd, rs, to - from);
      att_pf_add(&pf, c->v + ((b2 * Tk + from) * c->nKvHead + h2 / group) * hd, rs, to - from);
    }
    att_pf_plan(&pf, maxlast < 0 ? 0 : (maxlast / ATT_BK + 1) * (ATT_BK + ATT_BQ) / CW_MR);
    if (maxlast < 0) memset(O, 0, sizeof(float) * Mq * hdp);  // else the first key block sets O
    for (int64_t j0 = 0; j0 <= maxlast; j0 += ATT_BK) {
      // Causal trimming: key j0 + j is visible to query r of the block iff j0 + j <= pos0 + r, so the first
      // j0 + j - pos0 queries of key row j are hidden. Whole vectors (S^T) and whole rows (P V) that only hidden
      // pairs would fill are not computed; the rest of the diagonal is masked lane by lane.
      const int64_t jn = maxlast + 1 - j0 < ATT_BK ? maxlast + 1 - j0 : ATT_BK, Mk = (jn + CW_MR - 1) / CW_MR * CW_MR;
      const float* kb = inPlace ? c->k + ((b * Tk + j0) * c->nKvHead + g) * hd : Kp + j0 * hdp;
      int64_t krs = inPlace ? rs : hdp;
      if (inPlace && j0 + Mk > Tk) {  // the block's padded rows would run past the slots: copy what exists
        for (int64_t j = 0; j < Mk; j++) {
          if (j0 + j < nk) memcpy(Kblk + j * hdp, kb + j * rs, sizeof(float) * hd);
          else memset(Kblk + j * hdp, 0, sizeof(float) * hd);
        }
        kb = Kblk, krs = hdp;
      }
      for (int64_t j = 0; j < Mk; j += CW_MR) {  // S^T rows [j, j + CW_MR): (CW_MR, Nq), from the first vector any sees
        const int64_t first = j0 + j - pos0 > 0 ? (j0 + j - pos0) / VW * VW : 0;
        CW_FN(att_gemm)(ST + j * ATT_BQ + first, ATT_BQ, kb + j * krs, krs, 1, QT + first, ATT_BQ, CW_MR, Nq - first,
                        hd, 0);
        att_pf_step(&pf);
      }
      // the hidden lanes of the one vector of row j that is both computed and partly visible: -inf
      const vf ninf = vset1(-INFINITY);
      for (int64_t j = pos0 - j0 + 1 > 0 ? pos0 - j0 + 1 : 0; j < jn; j++) {
        const int64_t hide = j0 + j - pos0, first = hide / VW * VW;  // queries [0, hide) do not see key j0 + j
        if (first < Nq && hide > first) vst(ST + j * ATT_BQ + first, ninf, hide - first);
      }
      for (int64_t r = 0; r < Nq; r += VW) {
        // rows [0, rows) hold a key some query of this vector sees; rows [rows, zrows) are read by the P V row tiles
        // that overlap this vector (only where CW_MR does not divide VW) and must be 0
        int64_t rows = pos0 + r + VW - j0, zrows = pos0 + (r + VW + CW_MR - 1) / CW_MR * CW_MR - j0;
        rows = rows < 0 ? 0 : rows > jn ? jn : rows;
        zrows = zrows < rows ? rows : zrows > jn ? jn : zrows;
        for (int64_t j = rows; j < zrows; j++) vstore(ST + j * ATT_BQ + r, vzero());
        if (rows == 0) {
          vstore(arow + r, vset1(1.0f));
          continue;
        }
        vf mx = vset1(-INFINITY);
        for (int64_t j = 0; j < rows; j++) mx = vmax(mx, vload(ST + j * ATT_BQ + r));
        const vf mold = vload(mrow + r), mnew = vmax(mold, mx);
        // a query that sees no key yet keeps m = -inf; subtracting -FLT_MAX instead gives e^-inf = 0, not NaN
        const vf base = vmax(mnew, vset1(-3.4028235e38f));
        vf sum = vzero();
        for (int64_t j = 0; j < rows; j++) {
          vf e = vexp(vsub(vload(ST + j * ATT_BQ + r), base));
          vstore(ST + j * ATT_BQ + r, e);
          sum = vadd(sum, e);
        }
        const vf alpha = vexp(vsub(mold, base));  // 0 while m was -inf
        vstore(lrow + r, vfma(vload(lrow + r), alpha, sum));
        vstore(mrow + r, mnew);
        vstore(arow + r, alpha);
      }
      // O rows [r, r + CW_MR) = O e^(m_old - m_new) + P V over the keys they see (set by the first key block). Rows
      // that see no key of this block keep their m, so their alpha is 1 (or O is 0) and they are left alone.
      const float* vb = inPlace ? c->v + ((b * Tk + j0) * c->nKvHead + g) * hd : Vp + j0 * hdp;
      for (int64_t r = 0; r < Mq; r += CW_MR) {
        att_pf_step(&pf);
        int64_t keys = pos0 + r + CW_MR - j0;
        keys = keys > jn ? jn : keys;
        if (keys > 0) {
          CW_FN(att_gemm_s)(O + r * hdp, hdp, ST + r, 1, ATT_BQ, vb, inPlace ? rs : hdp, CW_MR, hdp, keys, j0 ? 2 : 0,
                            arow + r);
        } else if (j0 == 0) {
          memset(O + r * hdp, 0, sizeof(float) * CW_MR * hdp);
        }
      }
    }
    for (int64_t r = 0; r < qn; r++) {
      const vf inv = vset1(lrow[r] > 0 ? 1.0f / lrow[r] : 0.0f);  // no key seen: out = 0
      float* dst = c->out + ((b * Tq + i0 + r) * c->nHead + h) * hd;
      for (int64_t d = 0; d < hd; d += VW) vst(dst + d, vmul(vload(O + r * hdp + d), inv), hd - d);
    }
    if (c->lse) {  // lse = m + log l, -inf where l = 0; the block's rows are contiguous in (B, nHead, Tq)
      float* dst = c->lse + (b * c->nHead + h) * Tq + i0;
      for (int64_t r = 0; r < qn; r += VW) {
        vf l = vload(lrow + r);
        vst(dst + r, vsel_nz(l, vadd(vload(mrow + r), vlog(l)), vset1(-INFINITY)), qn - r);
      }
    }
  }
  free(buf);
}

// ---- backward: tasks (b, kv head g) [begin, end); all query heads of the group run in the task, so the key and value
// gradients of the group accumulate in one local buffer without races. FlashAttention-2 Algorithm 2 with the loops
// swapped (query blocks outside): per block, S = (scale Q) K^T, P = exp(S - lse), dV += P^T dO, dP = dO V^T,
// dS = P (dP - D), D = rowsum(dO O), dQ += dS K (times scale), dK += dS^T (scale Q).
CW_T static void CW_FN(attention_backward_range)(void* ctx, int64_t begin, int64_t end) {
  att_ctx* c = ctx;
  const int64_t hd = c->hd, hdp = c->hdp, ldk = c->ldk, T = c->Tq;
  const int64_t group = c->nHead / c->nKvHead;
  float* buf = att_alloc(2 * hd * ldk + 3 * ldk * hdp + 3 * ATT_BQ * hdp + 2 * ATT_BQ * ATT_BK + 2 * ATT_BQ);
  if (!buf) {
    c->failed = 1;
    return;
  }
  float *Kt = buf, *Vt = Kt + hd * ldk, *Kp = Vt + hd * ldk, *dKl = Kp + ldk * hdp, *dVl = dKl + ldk * hdp;
  float *Qs = dVl + ldk * hdp, *dO = Qs + ATT_BQ * hdp, *dQ = dO + ATT_BQ * hdp, *P = dQ + ATT_BQ * hdp;
  float *dS = P + ATT_BQ * ATT_BK, *L = dS + ATT_BQ * ATT_BK, *D = L + ATT_BQ;
  const int64_t qrs = c->nHead * hd, krs = c->nKvHead * hd;  // between consecutive rows of q (dout, o, dq); k (v, dk, dv)
  att_pf pf;
  for (int64_t task = begin; task < end; task++) {
    const int64_t b = task / c->nKvHead, g = task % c->nKvHead;
    CW_FN(att_pack)(Kt, Kp, c->k, b, g, T, ldk, c);
    CW_FN(att_pack)(Vt, NULL, c->v, b, g, T, ldk, c);
    memset(dKl, 0, sizeof(float) * 2 * ldk * hdp);  // dKl and dVl
    for (int64_t h = g * group; h < (g + 1) * group; h++) {
      for (int64_t qb = 0; qb < c->nqb; qb++) {
        const int64_t i0 = qb * ATT_BQ, qn = T - i0 < ATT_BQ ? T - i0 : ATT_BQ, Mq = (qn + CW_MR - 1) / CW_MR * CW_MR;
        CW_FN(att_load_rows)(Qs, c->q, c->scale, b, h, i0, qn, Mq, c);
        CW_FN(att_load_rows)(dO, c->dout, 1.0f, b, h, i0, qn, Mq, c);
        // prefetched during this block: the rows of dq it adds into at its end, then the next block's inputs, and at
        // the task's last block the rows of dk, dv it adds into and the next task's first inputs
        att_pf_reset(&pf, hd * (int64_t)sizeof(float));
        att_pf_add(&pf, c->dq + ((b * T + i0) * c->nHead + h) * hd, qrs, qn);
        int64_t b2 = b, g2 = g, h2 = h, i2 = i0 + ATT_BQ;
        if (qb + 1 == c->nqb) {
          i2 = 0, h2 = h + 1;
          if (h2 == (g + 1) * group) {
            att_pf_add(&pf, c->dk + (b * T * c->nKvHead + g) * hd, krs, T < 4 * ATT_BK ? T : 4 * ATT_BK);
            att_pf_add(&pf, c->dv + (b * T * c->nKvHead + g) * hd, krs, T < 4 * ATT_BK ? T : 4 * ATT_BK);
            // (the next task's keys and values are not: att_pack prefetches ahead as it copies, and adding them here
            // measured 4% slower at T = 256, the miss queues already full)
            b2 = task + 1 < end ? (task + 1) / c->nKvHead : -1, g2 = (task + 1) % c->nKvHead, h2 = g2 * group;
          }
        }
        if (b2 >= 0) {
          const int64_t qn2 = T - i2 < ATT_BQ ? T - i2 : ATT_BQ, o2 = ((b2 * T + i2) * c->nHead + h2) * hd;
          att_pf_add(&pf, c->q + o2, qrs, qn2);
          att_pf_add(&pf, c->dout + o2, qrs, qn2);
          att_pf_add(&pf, c->o + o2, qrs, qn2);
        }
        att_pf_plan(&pf, ((i0 + qn - 1) / ATT_BK + 1) * (ATT_BK + ATT_BQ) / CW_MR);
        memset(dQ, 0, sizeof(float) * Mq * hdp);
        for (int64_t r = 0; r < qn; r++) {
          const int64_t row = (b * T + i0 + r) * c->nHead + h;
          const float *o = c->o + row * hd, *dd = c->dout + row * hd;
          vf s = vzero();  // vector partial sums: a plain loop would be an in-order chain of scalar adds
          for (int64_t d = 0; d < hd; d += VW) s = vfma(vld(dd + d, hd - d), vld(o + d, hd - d), s);
          D[r] = vhsum(s);
          L[r] = c->lse_in[(b * c->nHead + h) * T + i0 + r];
        }
        const int64_t maxlast = i0 + qn - 1;
        for (int64_t j0 = 0; j0 <= maxlast; j0 += ATT_BK) {
          // Causal trimming as in the forward: query i0 + r sees keys j0 + j <= i0 + r. S and dP are formed per row
          // tile up to the last key the tile sees (whole vectors); P and dS are 0 past each row's last key, up to
          // column jw, which covers what the three products below read; each product runs per row tile over the
          // keys (dQ) or queries (dV, dK) that tile sees.
          const int64_t jn = maxlast + 1 - j0 < ATT_BK ? maxlast + 1 - j0 : ATT_BK;
          const int64_t Mk = (jn + CW_MR - 1) / CW_MR * CW_MR, jw = (Mk + VW - 1) / VW * VW;
          for (int64_t r = 0; r < Mq; r += CW_MR) {  // S, dP rows [r, r + CW_MR): (CW_MR, keys rounded to VW)
            att_pf_step(&pf);
            int64_t keys = i0 + r + CW_MR - j0;
            keys = keys > jn ? jn : keys;
            if (keys <= 0) continue;
            keys = (keys + VW - 1) / VW * VW;
            CW_FN(att_gemm)(P + r * ATT_BK, ATT_BK, Qs + r * hdp, hdp, 1, Kt + j0, ldk, CW_MR, keys, hd, 0);
            CW_FN(att_gemm)(dS + r * ATT_BK, ATT_BK, dO + r * hdp, hdp, 1, Vt + j0, ldk, CW_MR, keys, hd, 0);
              }
          for (int64_t r = 0; r < Mq; r++) {
            float *p = P + r * ATT_BK, *ds = dS + r * ATT_BK;
            int64_t lim = r < qn ? i0 + r - j0 + 1 : 0;  // keys of this block that query r sees
            lim = lim < 0 ? 0 : lim > jn ? jn : lim;
            const vf lv = vset1(L[r]), dv = vset1(D[r]);
            int64_t j = 0;
            for (; j < lim; j += VW) {  // the last vector partly: its lanes past lim stay 0
              const vf e = vexp(vsub(vload(p + j), lv)), d = vmul(e, vsub(vload(ds + j), dv));
              if (lim - j < VW) vstore(p + j, vzero()), vstore(ds + j, vzero());
              vst(p + j, e, lim - j);
              vst(ds + j, d, lim - j);
            }
            for (; j < jw; j += VW) vstore(p + j, vzero()), vstore(ds + j, vzero());
          }
          for (int64_t j = 0; j < Mk; j += CW_MR) {  // dV, dK rows [j, j + CW_MR) over the queries that see them
            att_pf_step(&pf);
            const int64_t first = j0 + j - i0 > 0 ? j0 + j - i0 : 0;
            if (first >= qn) break;
            CW_FN(att_gemm)(dVl + (j0 + j) * hdp, hdp, P + first * ATT_BK + j, 1, ATT_BK, dO + first * hdp, hdp, CW_MR,
                            hdp, qn - first, 1);  // dV += P^T dO
            CW_FN(att_gemm)(dKl + (j0 + j) * hdp, hdp, dS + first * ATT_BK + j, 1, ATT_BK, Qs + first * hdp, hdp,
                            CW_MR, hdp, qn - first, 1);  // dK += dS^T (scale Q)
              }
          for (int64_t r = 0; r < Mq; r += CW_MR) {  // dQ rows [r, r + CW_MR) += dS K over the keys they see
            int64_t keys = i0 + r + CW_MR - j0;
            keys = keys > jn ? jn : keys;
            if (keys > 0) CW_FN(att_gemm)(dQ + r * hdp, hdp, dS + r * ATT_BK, ATT_BK, 1, Kp + j0 * hdp, hdp, CW_MR, hdp, keys, 1);
              }
        }
            const vf sv = vset1(c->scale);
        for (int64_t r = 0; r < qn; r++) {
          float* dst = c->dq + ((b * T + i0 + r) * c->nHead + h) * hd;
          for (int64_t d = 0; d < hd; d += VW) vst(dst + d, vfma(sv, vload(dQ + r * hdp + d), vld(dst + d, hd - d)), hd - d);
        }
      }
    }
    for (int64_t j = 0; j < T; j++) {
      const int64_t o = ((b * T + j) * c->nKvHead + g) * hd;
      if (j + 8 < T)  // the gradients of 8 keys ahead
        for (int64_t e = 0; e < hd; e += 16) {
          cw_prefetch(c->dk + o + 8 * c->nKvHead * hd + e);
          cw_prefetch(c->dv + o + 8 * c->nKvHead * hd + e);
        }
      for (int64_t d = 0; d < hd; d += VW) {
        vst(c->dk + o + d, vadd(vld(c->dk + o + d, hd - d), vload(dKl + j * hdp + d)), hd - d);
        vst(c->dv + o + d, vadd(vld(c->dv + o + d, hd - d), vload(dVl + j * hdp + d)), hd - d);
      }
    }
  }
  free(buf);
}
