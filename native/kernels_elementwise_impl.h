// Level-generic bodies of kernels_elementwise.c; included once per SIMD level (see kernels_simd.h).
// Each body handles [begin, end) of its ctx; the tail uses partial vectors through the same inline step.

// The forward ops. `op` is a constant wherever this is inlined, so the switch folds away.
CW_T CW_INLINE vf CW_FN(ew_apply)(const int op, vf a, vf b, vf c, vf s, vf t, vf o) {
  switch (op) {
    case EW_ADD: return vadd(a, b);
    case EW_SUB: return vsub(a, b);
    case EW_MUL: return vmul(a, b);
    case EW_DIV: return vdiv(a, b);
    case EW_MINIMUM: return vmin(a, b);
    case EW_MAXIMUM: return vmax(a, b);
    case EW_SCALE_SHIFT: return vfma(a, s, t);
    // max(lo, a), then min(hi, .): the x86 order returns a NaN `a` unchanged, like the JS backend's comparisons
    case EW_CLAMP: return vmin(t, vmax(s, a));
    case EW_EXP: return vexp(a);
    case EW_LOG: return vlog(a);
    case EW_SIGMOID: return vsigmoid(a);
    case EW_LOG_SIGMOID: return vlog_sigmoid(a);
    case EW_GELU: {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
      vf inner = vmul(vset1(0.7978845608028654f), vfma(vmul(vset1(0.044715f), vmul(a, a)), a, a));
      return vmul(vmul(vset1(0.5f), a), vadd(vset1(1.0f), vtanh(inner)));
    }
    case EW_AXPY: return vfma(s, a, o);
    case EW_WHERE: return vsel_nz(c, a, b);
    case EW_FILL: return s;
    case EW_SWIGLU: return vmul(vmul(a, vsigmoid(a)), b);
  }
  return s;
}

CW_T CW_INLINE void CW_FN(ew_step)(const int op, const ew_ctx* x, int64_t i, int64_t r, vf s, vf t) {
  const int useA = op != EW_FILL, useB = op <= EW_MAXIMUM || op == EW_WHERE || op == EW_SWIGLU;
  vf a = useA ? vld(x->a + i, r) : s;
  vf b = useB ? vld(x->b + i, r) : s;
  vf c = op == EW_WHERE ? vld(x->c + i, r) : s;
  vf o = op == EW_AXPY ? vld(x->out + i, r) : s;
  vst(x->out + i, CW_FN(ew_apply)(op, a, b, c, s, t, o), r);
}

CW_T CW_INLINE void CW_FN(ew_run)(const int op, const ew_ctx* x, int64_t begin, int64_t end) {
  const vf s = vset1(x->s), t = vset1(x->t);
  int64_t i = begin;
  for (; i + VW <= end; i += VW) CW_FN(ew_step)(op, x, i, VW, s, t);
  if (i < end) CW_FN(ew_step)(op, x, i, end - i, s, t);
}

// One copy of the loop per op, each with its op inlined.
CW_T static void CW_FN(ew_range)(void* ctx, int64_t begin, int64_t end) {
  const ew_ctx* x = ctx;
  switch (x->op) {
#define CW_CASE(OP) case OP: CW_FN(ew_run)(OP, x, begin, end); break;
    CW_CASE(EW_ADD) CW_CASE(EW_SUB) CW_CASE(EW_MUL) CW_CASE(EW_DIV) CW_CASE(EW_MINIMUM) CW_CASE(EW_MAXIMUM)
    CW_CASE(EW_SCALE_SHIFT) CW_CASE(EW_CLAMP) CW_CASE(EW_EXP) CW_CASE(EW_LOG) CW_CASE(EW_SIGMOID)
    CW_CASE(EW_LOG_SIGMOID) CW_CASE(EW_GELU) CW_CASE(EW_AXPY) CW_CASE(EW_WHERE) CW_CASE(EW_FILL) CW_CASE(EW_SWIGLU)
#undef CW_CASE
  }
}

// dgate += dout up s (1 + g (1 - s)), dup += dout g s, s = sigmoid(g)
CW_T CW_INLINE void CW_FN(swiglu_backward_step)(const ew_ctx* x, int64_t i, int64_t r) {
  const vf one = vset1(1.0f);
  vf g = vld(x->a + i, r), u = vld(x->b + i, r), d = vld(x->c + i, r);
  vf s = vsigmoid(g);
  vf dsilu = vmul(s, vfma(g, vsub(one, s), one));
  vst(x->out + i, vfma(vmul(d, u), dsilu, vld(x->out + i, r)), r);
  vst(x->out2 + i, vfma(d, vmul(g, s), vld(x->out2 + i, r)), r);
}
CW_T static void CW_FN(swiglu_backward_range)(void* ctx, int64_t begin, int64_t end) {
  int64_t i = begin;
  for (; i + VW <= end; i += VW) CW_FN(swiglu_backward_step)(ctx, i, VW);
  if (i < end) CW_FN(swiglu_backward_step)(ctx, i, end - i);
}

// dx += dout (0.5 (1 + th) + 0.5 x (1 - th^2) sqrt(2/pi) (1 + 3 0.044715 x^2)), th = tanh(sqrt(2/pi)(x + 0.044715 x^3))
// (llm.c gelu_backward, with sech^2 = 1 - tanh^2)
CW_T CW_INLINE void CW_FN(gelu_backward_step)(const ew_ctx* x, int64_t i, int64_t r) {
  const vf one = vset1(1.0f), half = vset1(0.5f), k = vset1(0.7978845608028654f);
  vf a = vld(x->a + i, r), d = vld(x->c + i, r);
  vf a2 = vmul(a, a);
  vf th = vtanh(vmul(k, vfma(vmul(vset1(0.044715f), a2), a, a)));
  vf sech2 = vfnma(th, th, one);
  vf local = vfma(vmul(vmul(half, a), sech2), vmul(k, vfma(vset1(3.0f * 0.044715f), a2, one)), vmul(half, vadd(one, th)));
  vst(x->out + i, vfma(local, d, vld(x->out + i, r)), r);
}
CW_T static void CW_FN(gelu_backward_range)(void* ctx, int64_t begin, int64_t end) {
  int64_t i = begin;
  for (; i + VW <= end; i += VW) CW_FN(gelu_backward_step)(ctx, i, VW);
  if (i < end) CW_FN(gelu_backward_step)(ctx, i, end - i);
}

// rows [begin, end) of out (N, C) = x + b
CW_T static void CW_FN(bias_add_range)(void* ctx, int64_t begin, int64_t end) {
  const ew_ctx* x = ctx;
  const int64_t C = x->C;
  for (int64_t n = begin; n < end; n++) {
    float* o = x->out + n * C;
    const float* a = x->a + n * C;
    int64_t i = 0;
    for (; i + VW <= C; i += VW) vstore(o + i, vadd(vload(a + i), vload(x->b + i)));
    if (i < C) vst(o + i, vadd(vld(a + i, C - i), vld(x->b + i, C - i)), C - i);
  }
}
