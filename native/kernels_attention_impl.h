// Level-generic bodies of kernels_attention.c; included once per SIMD level (see kernels_simd.h).

// ---- the tile product: C (M, N) = or += A (M, K) B (K, N), where A[r][k] = A[r rsa + k csa] (so A may be read
// transposed), B and C are row-major with row strides ldb, ldc; M is a multiple of CW_MR, N of VW.
// Register blocking as in a GEMM micro-kernel (Goto & van de Geijn 2008): a CW_MR x (nv VW) block of C stays in
// registers while k runs; each step loads nv vectors of B and broadcasts CW_MR scalars of A.
CW_T CW_INLINE void CW_FN(att_tile)(const int nv, float* C, int64_t ldc, const float* A, int64_t rsa, int64_t csa,
                                    const float* B, int64_t ldb, int64_t K, int acc) {
  vf c[CW_MR][CW_NV];
  for (int r = 0; r < CW_MR; r++)
    for (int v = 0; v < nv; v++) c[r][v] = acc ? vload(C + r * ldc + v * VW) : vzero();
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

CW_T static void CW_FN(att_gemm)(float* C, int64_t ldc, const float* A, int64_t rsa, int64_t csa, const float* B,
                                 int64_t ldb, int64_t M, int64_t N, int64_t K, int acc) {
  for (int64_t i = 0; i < M; i += CW_MR) {
    for (int64_t j = 0; j < N; j += CW_NV * VW) {
      float* Ct = C + i * ldc + j;
      const float *At = A + i * rsa, *Bt = B + j;
      const int64_t nv = (N - j) / VW;
      if (nv >= CW_NV) CW_FN(att_tile)(CW_NV, Ct, ldc, At, rsa, csa, Bt, ldb, K, acc);
#if CW_NV == 4
      else if (nv == 3) CW_FN(att_tile)(3, Ct, ldc, At, rsa, csa, Bt, ldb, K, acc);
      else if (nv == 2) CW_FN(att_tile)(2, Ct, ldc, At, rsa, csa, Bt, ldb, K, acc);
#endif
      else CW_FN(att_tile)(1, Ct, ldc, At, rsa, csa, Bt, ldb, K, acc);
    }
  }
}

// Packs keys [0, nk) of kv head g of batch b, zero-padded to nkp keys: kt (hd, ldk) = K^T and/or kp (nkp, hdp) = K
// with rows padded to hdp. The transposed copy lets the score tile vectorise over keys.
static void CW_FN(att_pack)(float* kt, float* kp, const float* k, int64_t b, int64_t g, int64_t nk, int64_t nkp,
                            const att_ctx* c) {
  const int64_t hd = c->hd, hdp = c->hdp, ldk = c->ldk;
  for (int64_t j = 0; j < nkp; j++) {
    const float* src = k + ((b * c->Tk + j) * c->nKvHead + g) * hd;
    if (kt) {
      if (j < nk)
        for (int64_t d = 0; d < hd; d++) kt[d * ldk + j] = src[d];
      else
        for (int64_t d = 0; d < hd; d++) kt[d * ldk + j] = 0;
    }
    if (kp) {
      if (j < nk) memcpy(kp + j * hdp, src, sizeof(float) * hd);
      else memset(kp + j * hdp, 0, sizeof(float) * hd);
      memset(kp + j * hdp + hd, 0, sizeof(float) * (hdp - hd));
    }
  }
}

// Copies rows [i0, i0 + qn) of head h of x (B, Tq, nHead, hd) times `mul` into dst (Mq, hdp), zero padding.
static void CW_FN(att_load_rows)(float* dst, const float* x, float mul, int64_t b, int64_t h, int64_t i0, int64_t qn,
                                 int64_t Mq, const att_ctx* c) {
  const int64_t hd = c->hd, hdp = c->hdp;
  memset(dst, 0, sizeof(float) * Mq * hdp);
  for (int64_t r = 0; r < qn; r++) {
    const float* src = x + ((b * c->Tq + i0 + r) * c->nHead + h) * hd;
    for (int64_t d = 0; d < hd; d++) dst[r * hdp + d] = src[d] * mul;
  }
}

// ---- forward: tasks (b, h, query block) [begin, end). FlashAttention-2 (Dao 2023, Algorithm 1) on a CPU: per block
// of ATT_BK keys, S = (scale Q) K^T (a Bq x BK tile), running max m and sum l per row, O = O e^(m_old - m_new) + P V.
CW_T static void CW_FN(attention_forward_range)(void* ctx, int64_t begin, int64_t end) {
  att_ctx* c = ctx;
  const int64_t hd = c->hd, hdp = c->hdp, ldk = c->ldk, Tk = c->Tk, Tq = c->Tq;
  const int64_t group = c->nHead / c->nKvHead;
  float* buf = att_alloc(hd * ldk + ldk * hdp + 2 * ATT_BQ * hdp + ATT_BQ * ATT_BK + 2 * ATT_BQ);
  if (!buf) {
    c->failed = 1;
    return;
  }
  float *Kt = buf, *Vp = Kt + hd * ldk, *Qs = Vp + ldk * hdp, *O = Qs + ATT_BQ * hdp, *S = O + ATT_BQ * hdp;
  float *mrow = S + ATT_BQ * ATT_BK, *lrow = mrow + ATT_BQ;
  int64_t packed = -1;  // b * nKvHead + g of the keys and values in Kt, Vp
  for (int64_t task = begin; task < end; task++) {
    const int64_t qb = task % c->nqb, h = task / c->nqb % c->nHead, b = task / c->nqb / c->nHead, g = h / group;
    const int64_t len = c->lens ? c->lens[b] : Tk;
    const int64_t nk = len < Tk ? (len > 0 ? len : 0) : Tk;  // keys any query of this batch may see
    if (b * c->nKvHead + g != packed) {
      const int64_t nkp = (nk + ATT_BK - 1) / ATT_BK * ATT_BK;
      CW_FN(att_pack)(Kt, NULL, c->k, b, g, nk, nkp, c);
      CW_FN(att_pack)(NULL, Vp, c->v, b, g, nk, nkp, c);
      packed = b * c->nKvHead + g;
    }
    const int64_t i0 = qb * ATT_BQ, qn = Tq - i0 < ATT_BQ ? Tq - i0 : ATT_BQ, Mq = (qn + CW_MR - 1) / CW_MR * CW_MR;
    const int64_t pos0 = len - Tq + i0;  // absolute position of the block's first query
    CW_FN(att_load_rows)(Qs, c->q, c->scale, b, h, i0, qn, Mq, c);
    memset(O, 0, sizeof(float) * Mq * hdp);
    for (int64_t r = 0; r < ATT_BQ; r++) mrow[r] = -INFINITY, lrow[r] = 0;
    const int64_t maxlast = pos0 + qn - 1 < nk - 1 ? pos0 + qn - 1 : nk - 1;
    for (int64_t j0 = 0; j0 <= maxlast; j0 += ATT_BK) {
      const int64_t jn = maxlast + 1 - j0 < ATT_BK ? maxlast + 1 - j0 : ATT_BK, jnp = (jn + 15) / 16 * 16;
      CW_FN(att_gemm)(S, ATT_BK, Qs, hdp, 1, Kt + j0, ldk, Mq, jnp, hd, 0);  // (Mq, jnp)
      for (int64_t r = 0; r < qn; r++) {
        float* s = S + r * ATT_BK;
        int64_t lim = pos0 + r - j0 + 1;  // keys of this block that query r sees
        if (lim < 0) lim = 0;
        for (int64_t j = lim; j < jnp; j++) s[j] = -INFINITY;
        vf mx = vset1(-INFINITY);
        for (int64_t j = 0; j < jnp; j += VW) mx = vmax(mx, vload(s + j));
        const float mold = mrow[r], mnew = vhmax(mx) > mold ? vhmax(mx) : mold;
        if (mnew == -INFINITY) {  // nothing visible yet: P = 0
          for (int64_t j = 0; j < jnp; j++) s[j] = 0;
          continue;
        }
        const vf mv = vset1(mnew);
        vf sum = vzero();
        for (int64_t j = 0; j < jnp; j += VW) {
          vf e = vexp(vsub(vload(s + j), mv));
          vstore(s + j, e);
          sum = vadd(sum, e);
        }
        const float alpha = expf(mold - mnew);  // 0 when mold = -inf
        lrow[r] = lrow[r] * alpha + vhsum(sum);
        mrow[r] = mnew;
        if (alpha != 1.0f) {
          const vf av = vset1(alpha);
          for (int64_t d = 0; d < hdp; d += VW) vstore(O + r * hdp + d, vmul(vload(O + r * hdp + d), av));
        }
      }
      CW_FN(att_gemm)(O, hdp, S, ATT_BK, 1, Vp + j0 * hdp, hdp, Mq, hdp, jn, 1);  // O += P V: (Mq, hdp)
    }
    for (int64_t r = 0; r < qn; r++) {
      const float l = lrow[r], inv = l > 0 ? 1.0f / l : 0.0f;
      float* dst = c->out + ((b * Tq + i0 + r) * c->nHead + h) * hd;
      for (int64_t d = 0; d < hd; d++) dst[d] = O[r * hdp + d] * inv;
      if (c->lse) c->lse[(b * c->nHead + h) * Tq + i0 + r] = l > 0 ? mrow[r] + logf(l) : -INFINITY;
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
        memset(dQ, 0, sizeof(float) * Mq * hdp);
        for (int64_t r = 0; r < qn; r++) {
          const int64_t row = (b * T + i0 + r) * c->nHead + h;
          const float *o = c->o + row * hd, *dd = c->dout + row * hd;
          float s = 0;
          for (int64_t d = 0; d < hd; d++) s += dd[d] * o[d];
          D[r] = s;
          L[r] = c->lse_in[(b * c->nHead + h) * T + i0 + r];
        }
        const int64_t maxlast = i0 + qn - 1;
        for (int64_t j0 = 0; j0 <= maxlast; j0 += ATT_BK) {
          const int64_t jn = maxlast + 1 - j0 < ATT_BK ? maxlast + 1 - j0 : ATT_BK, jnp = (jn + 15) / 16 * 16;
          CW_FN(att_gemm)(P, ATT_BK, Qs, hdp, 1, Kt + j0, ldk, Mq, jnp, hd, 0);   // S: (Mq, jnp)
          CW_FN(att_gemm)(dS, ATT_BK, dO, hdp, 1, Vt + j0, ldk, Mq, jnp, hd, 0);  // dP: (Mq, jnp)
          for (int64_t r = 0; r < Mq; r++) {
            float *p = P + r * ATT_BK, *ds = dS + r * ATT_BK;
            if (r >= qn) {
              memset(p, 0, sizeof(float) * jnp);
              memset(ds, 0, sizeof(float) * jnp);
              continue;
            }
            const vf lv = vset1(L[r]), dv = vset1(D[r]);
            for (int64_t j = 0; j < jnp; j += VW) {
              vf e = vexp(vsub(vload(p + j), lv));
              vstore(p + j, e);
              vstore(ds + j, vmul(e, vsub(vload(ds + j), dv)));
            }
            int64_t lim = i0 + r - j0 + 1;  // keys of this block that query r sees
            if (lim < 0) lim = 0;
            for (int64_t j = lim; j < jnp; j++) p[j] = 0, ds[j] = 0;
          }
          CW_FN(att_gemm)(dVl + j0 * hdp, hdp, P, 1, ATT_BK, dO, hdp, jnp, hdp, qn, 1);   // dV += P^T dO
          CW_FN(att_gemm)(dQ, hdp, dS, ATT_BK, 1, Kp + j0 * hdp, hdp, Mq, hdp, jn, 1);   // dQ += dS K
          CW_FN(att_gemm)(dKl + j0 * hdp, hdp, dS, 1, ATT_BK, Qs, hdp, jnp, hdp, qn, 1);  // dK += dS^T (scale Q)
        }
        for (int64_t r = 0; r < qn; r++) {
          float* dst = c->dq + ((b * T + i0 + r) * c->nHead + h) * hd;
          for (int64_t d = 0; d < hd; d++) dst[d] += c->scale * dQ[r * hdp + d];
        }
      }
    }
    for (int64_t j = 0; j < T; j++) {
      const int64_t o = ((b * T + j) * c->nKvHead + g) * hd;
      for (int64_t d = 0; d < hd; d++) c->dk[o + d] += dKl[j * hdp + d], c->dv[o + d] += dVl[j * hdp + d];
    }
  }
  free(buf);
}
