// Level-generic bodies of kernels_reduce.c; included once per SIMD level (see kernels_simd.h).

// Chunks [begin, end) of SUM_CHUNK elements: each chunk's sum (of x, or of x^2) in double, built from float vector
// sums over blocks of 256 elements, so the rounding error stays near float64's.
CW_T static void CW_FN(sum_range)(void* ctx, int64_t begin, int64_t end) {
  const reduce_ctx* c = ctx;
  for (int64_t ch = begin; ch < end; ch++) {
    const int64_t i0 = ch * SUM_CHUNK, i1 = i0 + SUM_CHUNK < c->n ? i0 + SUM_CHUNK : c->n;
    double total = 0;
    for (int64_t b = i0; b < i1; b += 256) {
      const int64_t e = b + 256 < i1 ? b + 256 : i1;
      vf acc0 = vzero(), acc1 = vzero();
      int64_t i = b;
      for (; i + 2 * VW <= e; i += 2 * VW) {
        vf x0 = vload(c->x + i), x1 = vload(c->x + i + VW);
        acc0 = c->squares ? vfma(x0, x0, acc0) : vadd(acc0, x0);
        acc1 = c->squares ? vfma(x1, x1, acc1) : vadd(acc1, x1);
      }
      for (; i < e; i += VW) {
        vf x0 = vld(c->x + i, e - i);
        acc0 = c->squares ? vfma(x0, x0, acc0) : vadd(acc0, x0);
      }
      total += (double)vhsum(vadd(acc0, acc1));
    }
    c->partial[ch] = total;
  }
}

// Column vectors [begin, end) of an (N, C) matrix: dst[c] += sum_n src[n, c], or with ids (embedding backward)
// dst[ids[n], c] += src[n, c]; rows in order, each column owned by one thread.
CW_T static void CW_FN(rows_sum_range)(void* ctx, int64_t begin, int64_t end) {
  const reduce_ctx* c = ctx;
  const int64_t C = c->C;
  for (int64_t j = begin * VW; j < end * VW && j < C; j += VW) {
    const int64_t k = C - j;
    if (c->ids) {
      for (int64_t n = 0; n < c->N; n++) {
        float* d = c->dst + (int64_t)c->ids[n] * C + j;
        vst(d, vadd(vld(d, k), vld(c->x + n * C + j, k)), k);
      }
    } else {
      vf acc = vzero();
      for (int64_t n = 0; n < c->N; n++) acc = vadd(acc, vld(c->x + n * C + j, k));
      vst(c->dst + j, vadd(vld(c->dst + j, k), acc), k);
    }
  }
}
