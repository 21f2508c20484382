// Level-generic body of kernels_optim.c; included once per SIMD level (see kernels_simd.h).

CW_T CW_INLINE void CW_FN(adamw_step)(const adamw_ctx* c, int64_t i, int64_t r) {
  const vf b1 = vset1(c->beta1), b2 = vset1(c->beta2);
  vf g = vld(c->g + i, r);
  vf m = vfma(b1, vld(c->m + i, r), vmul(vset1(c->one_b1), g));
  vf v = vfma(b2, vld(c->v + i, r), vmul(vmul(vset1(c->one_b2), g), g));
  vst(c->m + i, m, r);
  vst(c->v + i, v, r);
  vf p = vld(c->p + i, r);
  vf mhat = vmul(m, vset1(c->inv_c1)), vhat = vmul(v, vset1(c->inv_c2));
  vf upd = vfma(vset1(c->wd), p, vdiv(mhat, vadd(vsqrt(vhat), vset1(c->eps))));
  vst(c->p + i, vfnma(vset1(c->lr), upd, p), r);
}

CW_T static void CW_FN(adamw_range)(void* ctx, int64_t begin, int64_t end) {
  int64_t i = begin;
  for (; i + VW <= end; i += VW) CW_FN(adamw_step)(ctx, i, VW);
  if (i < end) CW_FN(adamw_step)(ctx, i, end - i);
}
