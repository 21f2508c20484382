// Level-generic bodies of kernels_norm.c; included once per SIMD level (see kernels_simd.h).

// sum over a row of length C of f(x[i], y[i]) for f = x * y (y NULL: x * x)
CW_T CW_INLINE float CW_FN(row_dot)(const float* x, const float* y, int64_t C) {
  vf acc0 = vzero(), acc1 = vzero();
  int64_t i = 0;
  for (; i + 2 * VW <= C; i += 2 * VW) {
    vf a0 = vload(x + i), a1 = vload(x + i + VW);
    acc0 = vfma(a0, y ? vload(y + i) : a0, acc0);
    acc1 = vfma(a1, y ? vload(y + i + VW) : a1, acc1);
  }
  for (; i < C; i += VW) {
    vf a = vld(x + i, C - i);
    acc0 = vfma(a, y ? vld(y + i, C - i) : a, acc0);
  }
  return vhsum(vadd(acc0, acc1));
}

CW_T static void CW_FN(rmsnorm_forward_range)(void* ctx, int64_t begin, int64_t end) {
  const norm_ctx* c = ctx;
  const int64_t C = c->C;
  for (int64_t n = begin; n < end; n++) {
    const float* x = c->x + n * C;
    float* out = c->out + n * C;
    float r = 1.0f / sqrtf(CW_FN(row_dot)(x, NULL, C) / (float)C + c->eps);
    c->rstd[n] = r;
    const vf rv = vset1(r);
    for (int64_t i = 0; i < C; i += VW) {
      int64_t k = C - i;
      vst(out + i, vmul(vmul(vld(x + i, k), rv), vld(c->w + i, k)), k);
    }
  }
}

// sum = x + y and out = sum r w, rows [begin, end); sum may alias x (each element is read before it is written)
CW_T static void CW_FN(residual_rmsnorm_forward_range)(void* ctx, int64_t begin, int64_t end) {
  const norm_ctx* c = ctx;
  const int64_t C = c->C;
  for (int64_t n = begin; n < end; n++) {
    const float *x = c->x + n * C, *y = c->y + n * C;
    float *sum = c->sum + n * C, *out = c->out + n * C;
    vf acc = vzero();
    for (int64_t i = 0; i < C; i += VW) {
      int64_t k = C - i;
      const vf s = vadd(vld(x + i, k), vld(y + i, k));
      vst(sum + i, s, k);
      acc = vfma(s, s, acc);
    }
    const float r = 1.0f / sqrtf(vhsum(acc) / (float)C + c->eps);
    c->rstd[n] = r;
    const vf rv = vset1(r);
    for (int64_t i = 0; i < C; i += VW) {
      int64_t k = C - i;
      vst(out + i, vmul(vmul(vld(sum + i, k), rv), vld(c->w + i, k)), k);
    }
  }
}

// dx += r (dout w) - (r^3 mean(dout w x)) x, over blocks [begin, end) of NORM_RB rows; with c->part, the block's
// share of dw (sum over its rows of dout x r, in row order) goes to row `block` of c->part, in the same pass
CW_T static void CW_FN(rmsnorm_backward_range)(void* ctx, int64_t begin, int64_t end) {
  const norm_ctx* c = ctx;
  const int64_t C = c->C;
  for (int64_t blk = begin; blk < end; blk++) {
    float* pw = c->part ? c->part + blk * C : NULL;
    if (pw) memset(pw, 0, sizeof(float) * C);
    for (int64_t n = blk * NORM_RB; n < (blk + 1) * NORM_RB && n < c->N; n++) {
      const float *x = c->x + n * C, *dout = c->dout + n * C;
      float* dx = c->dx + n * C;
      const float r = c->rstd[n];
      vf acc = vzero();
      for (int64_t i = 0; i < C; i += VW) {
        int64_t k = C - i;
        acc = vfma(vmul(vld(dout + i, k), vld(c->w + i, k)), vld(x + i, k), acc);
      }
      const vf kv = vset1(r * r * r * vhsum(acc) / (float)C), rv = vset1(r);
      for (int64_t i = 0; i < C; i += VW) {
        int64_t k = C - i;
        const vf d = vld(dout + i, k), xv = vld(x + i, k);
        vst(dx + i, vfnma(kv, xv, vfma(rv, vmul(d, vld(c->w + i, k)), vld(dx + i, k))), k);
        if (pw) vst(pw + i, vfma(d, vmul(xv, rv), vld(pw + i, k)), k);
      }
    }
  }
}

CW_T static void CW_FN(layernorm_forward_range)(void* ctx, int64_t begin, int64_t end) {
  const norm_ctx* c = ctx;
  const int64_t C = c->C;
  for (int64_t n = begin; n < end; n++) {
    const float* x = c->x + n * C;
    float* out = c->out + n * C;
    vf acc = vzero();
    for (int64_t i = 0; i < C; i += VW) acc = vadd(acc, vld(x + i, C - i));
    const float m = vhsum(acc) / (float)C;
    const vf mv = vset1(m);
    acc = vzero();
    for (int64_t i = 0; i < C; i += VW) {
      int64_t k = C - i;
      vf d = vsub(vldf(x + i, k, m), mv);  // tail lanes filled with the mean add 0
      acc = vfma(d, d, acc);
    }
    const float r = 1.0f / sqrtf(vhsum(acc) / (float)C + c->eps);
    c->mean[n] = m;
    c->rstd[n] = r;
    const vf rv = vset1(r);
    for (int64_t i = 0; i < C; i += VW) {
      int64_t k = C - i;
      vf xh = vmul(vsub(vld(x + i, k), mv), rv);
      vst(out + i, vfma(xh, vld(c->w + i, k), vld(c->b + i, k)), k);
    }
  }
}

// dx += r (dnorm - mean(dnorm) - xhat mean(dnorm xhat)), dnorm = dout w, xhat = (x - mean) r (llm.c layernorm_backward),
// over blocks [begin, end) of NORM_RB rows; with c->part, the block's shares of dw (sum of dout xhat) and db (sum of
// dout) go to rows 2 block and 2 block + 1 of c->part, in the same pass
CW_T static void CW_FN(layernorm_backward_range)(void* ctx, int64_t begin, int64_t end) {
  const norm_ctx* c = ctx;
  const int64_t C = c->C;
  for (int64_t blk = begin; blk < end; blk++) {
    float *pw = c->part ? c->part + 2 * blk * C : NULL, *pb = pw ? pw + C : NULL;
    if (pw) memset(pw, 0, sizeof(float) * 2 * C);
    for (int64_t n = blk * NORM_RB; n < (blk + 1) * NORM_RB && n < c->N; n++) {
      const float *x = c->x + n * C, *dout = c->dout + n * C;
      float* dx = c->dx + n * C;
      const vf mv = vset1(c->mean[n]), rv = vset1(c->rstd[n]);
      vf s1 = vzero(), s2 = vzero();
      for (int64_t i = 0; i < C; i += VW) {  // the zero-filled tail lanes add 0 to both sums
        int64_t k = C - i;
        vf xh = vmul(vsub(vld(x + i, k), mv), rv);
        vf dn = vmul(vld(dout + i, k), vld(c->w + i, k));
        s1 = vadd(s1, dn);
        s2 = vfma(dn, xh, s2);
      }
      const vf m1 = vset1(vhsum(s1) / (float)C), m2 = vset1(vhsum(s2) / (float)C);
      for (int64_t i = 0; i < C; i += VW) {
        int64_t k = C - i;
        const vf d = vld(dout + i, k), xh = vmul(vsub(vld(x + i, k), mv), rv);
        vf t = vfnma(xh, m2, vsub(vmul(d, vld(c->w + i, k)), m1));
        vst(dx + i, vfma(t, rv, vld(dx + i, k)), k);
        if (pw) {
          vst(pw + i, vfma(d, xh, vld(pw + i, k)), k);
          vst(pb + i, vadd(d, vld(pb + i, k)), k);
        }
      }
    }
  }
}

// dw[j] (and db[j]) += the blocks' partial sums, in block order, for column vectors [begin, end)
CW_T static void CW_FN(norm_parts_range)(void* ctx, int64_t begin, int64_t end) {
  const norm_ctx* c = ctx;
  const int64_t C = c->C, nblk = (c->N + NORM_RB - 1) / NORM_RB, stride = c->db ? 2 * C : C;
  for (int64_t j = begin * VW; j < end * VW && j < C; j += VW) {
    const int64_t k = C - j;
    vf dw = vzero(), db = vzero();
    for (int64_t b = 0; b < nblk; b++) {
      dw = vadd(dw, vld(c->part + b * stride + j, k));
      if (c->db) db = vadd(db, vld(c->part + b * stride + C + j, k));
    }
    vst(c->dw + j, vadd(vld(c->dw + j, k), dw), k);
    if (c->db) vst(c->db + j, vadd(vld(c->db + j, k), db), k);
  }
}

// Column sums for the weight and bias gradients: vectors [begin, end) of the C columns, summed over all N rows in
// row order (no partial sums across threads, so the result does not depend on the thread count).
// dw[c] += sum_n dout[n, c] * f(n, c), f = x rstd (rmsnorm), (x - mean) rstd (layernorm); db[c] += sum_n dout[n, c]
CW_T static void CW_FN(norm_dw_range)(void* ctx, int64_t begin, int64_t end) {
  const norm_ctx* c = ctx;
  const int64_t C = c->C;
  for (int64_t j = begin * VW; j < end * VW && j < C; j += VW) {
    const int64_t k = C - j;
    vf dw = vzero(), db = vzero();
    for (int64_t n = 0; n < c->N; n++) {
      vf d = vld(c->dout + n * C + j, k);
      vf xh = c->mean ? vmul(vsub(vld(c->x + n * C + j, k), vset1(c->mean[n])), vset1(c->rstd[n]))
                      : vmul(vld(c->x + n * C + j, k), vset1(c->rstd[n]));
      dw = vfma(d, xh, dw);
      db = vadd(db, d);
    }
    vst(c->dw + j, vadd(vld(c->dw + j, k), dw), k);
    if (c->db) vst(c->db + j, vadd(vld(c->db + j, k), db), k);
  }
}

// Rotary embedding over rows (b, t) [begin, end), all heads; `sign` +1 rotates by the angle (forward, out = ...),
// -1 by its negative and accumulates (backward, dx += ...).
CW_T static void CW_FN(rope_range)(void* ctx, int64_t begin, int64_t end) {
  const rope_ctx* c = ctx;
  const int64_t half = c->hd / 2;
  for (int64_t bt = begin; bt < end; bt++) {
    const int64_t b = bt / c->T, t = bt % c->T;
    const int64_t pos = (c->pos0 ? c->pos0[b] : 0) + t;
    const float *cs = c->cos + pos * half, *sn = c->sin + pos * half;
    for (int64_t h = 0; h < c->nHead; h++) {
      const int64_t o = (bt * c->nHead + h) * c->hd;
      const float* x = c->x + o;
      float* out = c->out + o;
      for (int64_t i = 0; i < half; i += VW) {
        int64_t k = half - i;
        vf co = vld(cs + i, k), si = vld(sn + i, k);
        vf x1 = vld(x + i, k), x2 = vld(x + half + i, k);
        if (c->backward) {  // dx1 += d1 cos + d2 sin; dx2 += d2 cos - d1 sin
          vst(out + i, vfma(x2, si, vfma(x1, co, vld(out + i, k))), k);
          vst(out + half + i, vfnma(x1, si, vfma(x2, co, vld(out + half + i, k))), k);
        } else {  // out1 = x1 cos - x2 sin; out2 = x2 cos + x1 sin
          vst(out + i, vfnma(x2, si, vmul(x1, co)), k);
          vst(out + half + i, vfma(x1, si, vmul(x2, co)), k);
        }
      }
    }
  }
}
