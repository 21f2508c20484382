// Level-generic bodies of kernels_loss.c; included once per SIMD level (see kernels_simd.h).

CW_T CW_INLINE float CW_FN(row_max)(const float* x, int64_t C) {
  vf m0 = vset1(-INFINITY), m1 = m0;
  int64_t i = 0;
  for (; i + 2 * VW <= C; i += 2 * VW) {
    m0 = vmax(m0, vload(x + i));
    m1 = vmax(m1, vload(x + i + VW));
  }
  for (; i < C; i += VW) m0 = vmax(m0, vldf(x + i, C - i, -INFINITY));
  return vhmax(vmax(m0, m1));
}

// sum of exp(x - m) over the row; with out, also stores each exp(x - m)
CW_T CW_INLINE float CW_FN(row_sum_exp)(float* out, const float* x, float m, int64_t C) {
  const vf mv = vset1(m);
  vf s0 = vzero(), s1 = vzero();
  int64_t i = 0;
  for (; i + 2 * VW <= C; i += 2 * VW) {
    vf e0 = vexp(vsub(vload(x + i), mv)), e1 = vexp(vsub(vload(x + i + VW), mv));
    if (out) vstore(out + i, e0), vstore(out + i + VW, e1);
    s0 = vadd(s0, e0);
    s1 = vadd(s1, e1);
  }
  for (; i < C; i += VW) {
    int64_t k = C - i;
    vf e = vexp(vsub(vldf(x + i, k, -INFINITY), mv));  // exp(-inf) = 0 in the tail lanes
    if (out) vst(out + i, e, k);
    s0 = vadd(s0, e);
  }
  return vhsum(vadd(s0, s1));
}

CW_T static void CW_FN(softmax_forward_range)(void* ctx, int64_t begin, int64_t end) {
  const loss_ctx* c = ctx;
  const int64_t C = c->C;
  for (int64_t n = begin; n < end; n++) {
    const float* x = c->x + n * C;
    float* out = c->out + n * C;
    float s = CW_FN(row_sum_exp)(out, x, CW_FN(row_max)(x, C), C);
    const vf inv = vset1(1.0f / s);
    for (int64_t i = 0; i < C; i += VW) vst(out + i, vmul(vld(out + i, C - i), inv), C - i);
  }
}

// dx += y (dout - sum(dout y))
CW_T static void CW_FN(softmax_backward_range)(void* ctx, int64_t begin, int64_t end) {
  const loss_ctx* c = ctx;
  const int64_t C = c->C;
  for (int64_t n = begin; n < end; n++) {
    const float *y = c->x + n * C, *dout = c->dout + n * C;
    float* dx = c->out + n * C;
    vf acc = vzero();
    for (int64_t i = 0; i < C; i += VW) acc = vfma(vld(dout + i, C - i), vld(y + i, C - i), acc);
    const vf s = vset1(vhsum(acc));
    for (int64_t i = 0; i < C; i += VW) {
      int64_t k = C - i;
      vst(dx + i, vfma(vld(y + i, k), vsub(vld(dout + i, k), s), vld(dx + i, k)), k);
    }
  }
}

// lse = m + log(sum exp(x - m)) in ONE pass over the row: the online normaliser of Milakov & Gimelshein, "Online
// normalizer calculation for softmax" (arXiv:1805.02867, 2018), by chunks of CE_CHUNK elements: a chunk's max is
// found first (the chunk then sits in L1 for its exp pass), and when it raises the running max m the running sums are
// rescaled by exp(m_old - m_new) (a scalar expf, a few times a row). The row is streamed from memory once, with the
// exps overlapping the loads, where the two-pass form (a max pass, then an exp pass) waited on memory in the first.
#ifndef CE_CHUNK
#define CE_CHUNK 512
#endif
// Software prefetch distance, in floats (8 KiB ahead; prefetching past the end of an array is harmless: it never
// faults).
#ifndef CE_PREFETCH
#define CE_PREFETCH 2048
#endif
CW_T static void CW_FN(cross_entropy_forward_range)(void* ctx, int64_t begin, int64_t end) {
  const loss_ctx* c = ctx;
  const int64_t V = c->C;
  for (int64_t n = begin; n < end; n++) {
    const float* x = c->x + n * V;
    float m = -INFINITY;
    vf s0 = vzero(), s1 = vzero();
    for (int64_t c0 = 0; c0 < V; c0 += CE_CHUNK) {
      const int64_t len = V - c0 < CE_CHUNK ? V - c0 : CE_CHUNK;
      const float* xc = x + c0;
      const float cm = CW_FN(row_max)(xc, len);
      if (cm > m) {  // first chunk: m = -inf, the sums are 0 and exp(-inf) = 0 keeps them so
        const vf scale = vset1(expf(m - cm));
        s0 = vmul(s0, scale);
        s1 = vmul(s1, scale);
        m = cm;
      }
      const vf mv = vset1(m);
      int64_t i = 0;
      for (; i + 2 * VW <= len; i += 2 * VW) {
        if (VW >= 8) {  // the hardware prefetcher alone left the exps waiting on memory (measured: 0.66 -> 0.47 ns/elem)
          __builtin_prefetch(xc + i + CE_PREFETCH);
          if (VW == 16) __builtin_prefetch(xc + i + CE_PREFETCH + 16);
        }
        s0 = vadd(s0, vexp(vsub(vload(xc + i), mv)));
        s1 = vadd(s1, vexp(vsub(vload(xc + i + VW), mv)));
      }
      for (; i < len; i += VW) s0 = vadd(s0, vexp(vsub(vldf(xc + i, len - i, -INFINITY), mv)));
    }
    // a NaN anywhere reaches the sum through its exp (x - m), so lse is NaN, as in the two-pass form
    const float L = m + logf(vhsum(vadd(s0, s1)));
    c->lse[n] = L;
    const int32_t t = c->targets[n];
    c->losses[n] = t < 0 ? 0.0f : L - x[t];
  }
}

// dlogits = dloss (exp(x - lse) - onehot); each vector of x is read before its dlogits lands (they may alias), and
// the target's own element is fixed last from the value just written: g p_t - g
CW_T static void CW_FN(cross_entropy_backward_range)(void* ctx, int64_t begin, int64_t end) {
  const loss_ctx* c = ctx;
  const int64_t V = c->C;
  for (int64_t n = begin; n < end; n++) {
    const float* x = c->x + n * V;
    float* d = c->out + n * V;
    const int32_t t = c->targets[n];
    if (t < 0) {
      for (int64_t i = 0; i < V; i += VW) vst(d + i, vzero(), V - i);
      continue;
    }
    const float g = c->dout[n];
    const vf gv = vset1(g), L = vset1(c->lse[n]);
    for (int64_t i = 0; i < V; i += VW) {
      int64_t k = V - i;
      if (VW >= 8) __builtin_prefetch(x + i + CE_PREFETCH);  // one line per vector (AVX2: every other, harmless)
      vst(d + i, vmul(gv, vexp(vsub(vld(x + i, k), L))), k);
    }
    d[t] -= g;
  }
}
