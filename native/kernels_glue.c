// Node-API glue for every Backend primitive except gemm (src/tensor/backend.ts): one JS function per method, with the
// method's exact name and argument order. Each reads its arguments, checks every array's length against the sizes
// (and the indices that would otherwise read out of bounds: targets, ids, rotary positions), then calls the kernel.
// Boundary: no math here; the kernels (kernels.h) know nothing of JavaScript. Calls are synchronous.
#include <stdio.h>
#include "kernels.h"

#define CW_MAX_SIZE (INT64_C(1) << 46)

// The arguments of one call. After the first error a JS exception is pending, every later read is a no-op and
// `err` is set; the glue checks `err` once before calling the kernel.
typedef struct {
  napi_env env;
  const char* fn;
  napi_value argv[16];
  int err;
} cw_args;

static int args_read(cw_args* a, napi_env env, napi_callback_info info, const char* fn, size_t need,
                     const char* usage) {
  size_t argc = 16;
  a->env = env, a->fn = fn, a->err = 0;
  napi_get_cb_info(env, info, &argc, a->argv, NULL, NULL);
  if (argc < need) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: expected %zu arguments %s, got %zu", fn, need, usage, argc);
    napi_throw_type_error(env, NULL, msg);
    a->err = 1;
  }
  return a->err;
}

static void args_fail(cw_args* a, const char* msg) {
  if (a->err) return;
  char full[320];
  snprintf(full, sizeof full, "%s: %s", a->fn, msg);
  napi_throw_range_error(a->env, NULL, full);
  a->err = 1;
}

// a size: an integer in [0, 2^46]
static int64_t arg_size(cw_args* a, int i, const char* name) {
  int64_t v = 0;
  if (a->err) return 0;
  if (cw_arg_int(a->env, a->argv[i], a->fn, name, &v)) return a->err = 1, 0;
  if (v < 0 || v > CW_MAX_SIZE) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be in 0..2^46 (got %lld)", name, (long long)v);
    args_fail(a, msg);
  }
  return v;
}

// a dimension handed to a kernel as an int
static int arg_dim(cw_args* a, int i, const char* name) {
  int64_t v = arg_size(a, i, name);
  if (v > INT32_MAX) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be at most %d (got %lld)", name, INT32_MAX, (long long)v);
    args_fail(a, msg);
  }
  return (int)v;
}

static double arg_num(cw_args* a, int i, const char* name) {
  double v = 0;
  if (!a->err && cw_arg_double(a->env, a->argv[i], a->fn, name, &v)) a->err = 1;
  return v;
}

// products of sizes, saturating (a saturated need fails the length check)
static int64_t mul2(int64_t x, int64_t y) { return y != 0 && x > INT64_MAX / y ? INT64_MAX : x * y; }
static int64_t mul3(int64_t x, int64_t y, int64_t z) { return mul2(mul2(x, y), z); }
static int64_t mul4(int64_t w, int64_t x, int64_t y, int64_t z) { return mul2(mul3(w, x, y), z); }

static int arg_is_null(cw_args* a, int i) {
  napi_valuetype t;
  return napi_typeof(a->env, a->argv[i], &t) == napi_ok && (t == napi_null || t == napi_undefined);
}

// a Float32Array with at least `need` elements (or null when nullable); *len gets its length
static float* arg_f32_len(cw_args* a, int i, const char* name, int64_t need, int nullable, size_t* len) {
  float* p = NULL;
  size_t n = 0;
  if (a->err || (nullable && arg_is_null(a, i))) return NULL;
  if (cw_arg_f32(a->env, a->argv[i], a->fn, name, &p, &n) || cw_check_len(a->env, a->fn, name, n, need))
    return a->err = 1, NULL;
  if (len) *len = n;
  return p;
}
static float* arg_f32(cw_args* a, int i, const char* name, int64_t need) {
  return arg_f32_len(a, i, name, need, 0, NULL);
}
static float* arg_f32_or_null(cw_args* a, int i, const char* name, int64_t need) {
  return arg_f32_len(a, i, name, need, 1, NULL);
}
static int32_t* arg_i32(cw_args* a, int i, const char* name, int64_t need, int nullable) {
  int32_t* p = NULL;
  size_t n = 0;
  if (a->err || (nullable && arg_is_null(a, i))) return NULL;
  if (cw_arg_i32(a->env, a->argv[i], a->fn, name, &p, &n) || cw_check_len(a->env, a->fn, name, n, need))
    return a->err = 1, NULL;
  return p;
}

// every ids[i] (i < n) in [lo, hi): the kernels index with them
static void check_indices(cw_args* a, const char* what, const int32_t* ids, int64_t n, int64_t lo, int64_t hi) {
  if (a->err) return;
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] < lo || ids[i] >= hi) {
      char msg[200];
      if (lo == INT32_MIN)  // targets: negative means ignored
        snprintf(msg, sizeof msg, "%s %d at position %lld is outside the vocabulary of %lld", what, ids[i],
                 (long long)i, (long long)hi);
      else
        snprintf(msg, sizeof msg, "%s %d at position %lld is outside %lld..%lld", what, ids[i], (long long)i,
                 (long long)lo, (long long)hi - 1);
      args_fail(a, msg);
      return;
    }
  }
}

static void check_no_memory(cw_args* a, int rc) {
  if (rc != 0) args_fail(a, "out of memory for the kernel's scratch buffers; HINT: use a smaller batch or sequence");
}

// ---- attention

static napi_value js_attention_forward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "attentionForward", 13,
                "(out, lse, q, k, v, B, Tq, Tk, nHead, nKvHead, headDim, scale, lens)"))
    return NULL;
  int B = arg_dim(&a, 5, "B"), Tq = arg_dim(&a, 6, "Tq"), Tk = arg_dim(&a, 7, "Tk"), nHead = arg_dim(&a, 8, "nHead");
  int nKv = arg_dim(&a, 9, "nKvHead"), hd = arg_dim(&a, 10, "headDim");
  double scale = arg_num(&a, 11, "scale");
  if (!a.err && (nKv < 1 || nHead % nKv != 0)) args_fail(&a, "nHead must be a multiple of nKvHead (>= 1)");
  float* out = arg_f32(&a, 0, "out", mul4(B, Tq, nHead, hd));
  float* lse = arg_f32_or_null(&a, 1, "lse", mul3(B, nHead, Tq));
  float* q = arg_f32(&a, 2, "q", mul4(B, Tq, nHead, hd));
  float* k = arg_f32(&a, 3, "k", mul4(B, Tk, nKv, hd));
  float* v = arg_f32(&a, 4, "v", mul4(B, Tk, nKv, hd));
  int32_t* lens = arg_i32(&a, 12, "lens", B, 1);
  if (a.err) return NULL;
  if (B && Tq && nHead && hd) check_no_memory(&a, attention_forward(out, lse, q, k, v, B, Tq, Tk, nHead, nKv, hd,
                                                                     (float)scale, lens));
  return NULL;
}

static napi_value js_attention_backward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "attentionBackward", 15,
                "(dq, dk, dv, dout, out, lse, q, k, v, B, T, nHead, nKvHead, headDim, scale)"))
    return NULL;
  int B = arg_dim(&a, 9, "B"), T = arg_dim(&a, 10, "T"), nHead = arg_dim(&a, 11, "nHead");
  int nKv = arg_dim(&a, 12, "nKvHead"), hd = arg_dim(&a, 13, "headDim");
  double scale = arg_num(&a, 14, "scale");
  if (!a.err && (nKv < 1 || nHead % nKv != 0)) args_fail(&a, "nHead must be a multiple of nKvHead (>= 1)");
  int64_t nq = mul4(B, T, nHead, hd), nkv = mul4(B, T, nKv, hd);
  float *dq = arg_f32(&a, 0, "dq", nq), *dk = arg_f32(&a, 1, "dk", nkv), *dv = arg_f32(&a, 2, "dv", nkv);
  float *dout = arg_f32(&a, 3, "dout", nq), *out = arg_f32(&a, 4, "out", nq);
  float* lse = arg_f32(&a, 5, "lse", mul3(B, nHead, T));
  float *q = arg_f32(&a, 6, "q", nq), *k = arg_f32(&a, 7, "k", nkv), *v = arg_f32(&a, 8, "v", nkv);
  if (a.err) return NULL;
  if (B && T && nHead && hd)
    check_no_memory(&a, attention_backward(dq, dk, dv, dout, out, lse, q, k, v, B, T, nHead, nKv, hd, (float)scale));
  return NULL;
}

// ---- normalisation, rotary embedding

static napi_value js_rmsnorm_forward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "rmsnormForward", 7, "(out, rstd, x, w, N, C, eps)")) return NULL;
  int64_t N = arg_size(&a, 4, "N"), C = arg_size(&a, 5, "C");
  double eps = arg_num(&a, 6, "eps");
  float *out = arg_f32(&a, 0, "out", mul2(N, C)), *rstd = arg_f32(&a, 1, "rstd", N);
  float *x = arg_f32(&a, 2, "x", mul2(N, C)), *w = arg_f32(&a, 3, "w", C);
  if (a.err) return NULL;
  rmsnorm_forward(out, rstd, x, w, N, C, (float)eps);
  return NULL;
}

static napi_value js_rmsnorm_backward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "rmsnormBackward", 8, "(dx, dw, dout, x, w, rstd, N, C)")) return NULL;
  int64_t N = arg_size(&a, 6, "N"), C = arg_size(&a, 7, "C");
  float *dx = arg_f32(&a, 0, "dx", mul2(N, C)), *dw = arg_f32(&a, 1, "dw", C);
  float *dout = arg_f32(&a, 2, "dout", mul2(N, C)), *x = arg_f32(&a, 3, "x", mul2(N, C));
  float *w = arg_f32(&a, 4, "w", C), *rstd = arg_f32(&a, 5, "rstd", N);
  if (a.err) return NULL;
  rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
  return NULL;
}

static napi_value js_residual_rmsnorm_forward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "residualRmsnormForward", 9, "(sum, out, rstd, x, y, w, N, C, eps)")) return NULL;
  int64_t N = arg_size(&a, 6, "N"), C = arg_size(&a, 7, "C");
  double eps = arg_num(&a, 8, "eps");
  float *sum = arg_f32(&a, 0, "sum", mul2(N, C)), *out = arg_f32(&a, 1, "out", mul2(N, C)), *rstd = arg_f32(&a, 2, "rstd", N);
  float *x = arg_f32(&a, 3, "x", mul2(N, C)), *y = arg_f32(&a, 4, "y", mul2(N, C)), *w = arg_f32(&a, 5, "w", C);
  if (a.err) return NULL;
  residual_rmsnorm_forward(sum, out, rstd, x, y, w, N, C, (float)eps);
  return NULL;
}

static napi_value js_layernorm_forward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "layernormForward", 9, "(out, mean, rstd, x, w, b, N, C, eps)")) return NULL;
  int64_t N = arg_size(&a, 6, "N"), C = arg_size(&a, 7, "C");
  double eps = arg_num(&a, 8, "eps");
  float *out = arg_f32(&a, 0, "out", mul2(N, C)), *mean = arg_f32(&a, 1, "mean", N);
  float *rstd = arg_f32(&a, 2, "rstd", N), *x = arg_f32(&a, 3, "x", mul2(N, C));
  float *w = arg_f32(&a, 4, "w", C), *b = arg_f32(&a, 5, "b", C);
  if (a.err) return NULL;
  layernorm_forward(out, mean, rstd, x, w, b, N, C, (float)eps);
  return NULL;
}

static napi_value js_layernorm_backward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "layernormBackward", 10, "(dx, dw, db, dout, x, w, mean, rstd, N, C)")) return NULL;
  int64_t N = arg_size(&a, 8, "N"), C = arg_size(&a, 9, "C");
  float *dx = arg_f32(&a, 0, "dx", mul2(N, C)), *dw = arg_f32(&a, 1, "dw", C), *db = arg_f32(&a, 2, "db", C);
  float *dout = arg_f32(&a, 3, "dout", mul2(N, C)), *x = arg_f32(&a, 4, "x", mul2(N, C));
  float *w = arg_f32(&a, 5, "w", C), *mean = arg_f32(&a, 6, "mean", N), *rstd = arg_f32(&a, 7, "rstd", N);
  if (a.err) return NULL;
  layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, C);
  return NULL;
}

// ropeForward(out, x, cos, sin, B, T, nHead, headDim, pos0) and ropeBackward(dx, dout, ...): same checks
static napi_value rope_glue(napi_env env, napi_callback_info info, const char* fn, int backward) {
  cw_args a;
  if (args_read(&a, env, info, fn, 9, backward ? "(dx, dout, cos, sin, B, T, nHead, headDim, pos0)"
                                               : "(out, x, cos, sin, B, T, nHead, headDim, pos0)"))
    return NULL;
  int B = arg_dim(&a, 4, "B"), T = arg_dim(&a, 5, "T"), nHead = arg_dim(&a, 6, "nHead"), hd = arg_dim(&a, 7, "headDim");
  if (!a.err && hd % 2 != 0) args_fail(&a, "headDim must be even (rotary pairs i and i + headDim/2)");
  int64_t n = mul4(B, T, nHead, hd);
  float* out = arg_f32(&a, 0, backward ? "dx" : "out", n);
  float* x = arg_f32(&a, 1, backward ? "dout" : "x", n);
  size_t lc = 0, ls = 0;
  float* cos = arg_f32_len(&a, 2, "cos", 0, 0, &lc);
  float* sin = arg_f32_len(&a, 3, "sin", 0, 0, &ls);
  int32_t* pos0 = arg_i32(&a, 8, "pos0", B, 1);
  if (a.err) return NULL;
  if (n == 0) return NULL;
  const int64_t maxT = (int64_t)(lc < ls ? lc : ls) / (hd / 2);  // positions the tables cover
  for (int b = 0; b < B && !a.err; b++) {
    int64_t p0 = pos0 ? pos0[b] : 0;
    if (p0 < 0 || p0 + T > maxT) {
      char msg[200];
      snprintf(msg, sizeof msg, "positions %lld..%lld of batch %d are outside the rotary tables (%lld positions); "
               "HINT: build cos/sin for a longer maxT", (long long)p0, (long long)(p0 + T - 1), b, (long long)maxT);
      args_fail(&a, msg);
    }
  }
  if (a.err) return NULL;
  (backward ? rope_backward : rope_forward)(out, x, cos, sin, B, T, nHead, hd, pos0);
  return NULL;
}
static napi_value js_rope_forward(napi_env env, napi_callback_info info) {
  return rope_glue(env, info, "ropeForward", 0);
}
static napi_value js_rope_backward(napi_env env, napi_callback_info info) {
  return rope_glue(env, info, "ropeBackward", 1);
}

// ---- activations

static napi_value js_swiglu_forward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "swigluForward", 4, "(out, gate, up, n)")) return NULL;
  int64_t n = arg_size(&a, 3, "n");
  float *out = arg_f32(&a, 0, "out", n), *gate = arg_f32(&a, 1, "gate", n), *up = arg_f32(&a, 2, "up", n);
  if (a.err) return NULL;
  elementwise_forward(EW_SWIGLU, out, gate, up, NULL, 0, 0, n);
  return NULL;
}

static napi_value js_swiglu_backward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "swigluBackward", 6, "(dgate, dup, dout, gate, up, n)")) return NULL;
  int64_t n = arg_size(&a, 5, "n");
  float *dgate = arg_f32(&a, 0, "dgate", n), *dup = arg_f32(&a, 1, "dup", n), *dout = arg_f32(&a, 2, "dout", n);
  float *gate = arg_f32(&a, 3, "gate", n), *up = arg_f32(&a, 4, "up", n);
  if (a.err) return NULL;
  swiglu_backward(dgate, dup, dout, gate, up, n);
  return NULL;
}

static napi_value js_gelu_forward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "geluForward", 3, "(out, x, n)")) return NULL;
  int64_t n = arg_size(&a, 2, "n");
  float *out = arg_f32(&a, 0, "out", n), *x = arg_f32(&a, 1, "x", n);
  if (a.err) return NULL;
  elementwise_forward(EW_GELU, out, x, NULL, NULL, 0, 0, n);
  return NULL;
}

static napi_value js_gelu_backward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "geluBackward", 4, "(dx, dout, x, n)")) return NULL;
  int64_t n = arg_size(&a, 3, "n");
  float *dx = arg_f32(&a, 0, "dx", n), *dout = arg_f32(&a, 1, "dout", n), *x = arg_f32(&a, 2, "x", n);
  if (a.err) return NULL;
  gelu_backward(dx, dout, x, n);
  return NULL;
}

// ---- softmax, cross-entropy

static napi_value js_softmax_forward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "softmaxForward", 4, "(out, x, N, C)")) return NULL;
  int64_t N = arg_size(&a, 2, "N"), C = arg_size(&a, 3, "C");
  float *out = arg_f32(&a, 0, "out", mul2(N, C)), *x = arg_f32(&a, 1, "x", mul2(N, C));
  if (a.err) return NULL;
  softmax_forward(out, x, N, C);
  return NULL;
}

static napi_value js_softmax_backward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "softmaxBackward", 5, "(dx, dout, out, N, C)")) return NULL;
  int64_t N = arg_size(&a, 3, "N"), C = arg_size(&a, 4, "C");
  float *dx = arg_f32(&a, 0, "dx", mul2(N, C)), *dout = arg_f32(&a, 1, "dout", mul2(N, C));
  float* out = arg_f32(&a, 2, "out", mul2(N, C));
  if (a.err) return NULL;
  softmax_backward(dx, dout, out, N, C);
  return NULL;
}

static napi_value js_cross_entropy_forward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "crossEntropyForward", 6, "(losses, lse, logits, targets, N, V)")) return NULL;
  int64_t N = arg_size(&a, 4, "N"), V = arg_size(&a, 5, "V");
  float *losses = arg_f32(&a, 0, "losses", N), *lse = arg_f32(&a, 1, "lse", N);
  float* logits = arg_f32(&a, 2, "logits", mul2(N, V));
  int32_t* targets = arg_i32(&a, 3, "targets", N, 0);
  check_indices(&a, "target", targets, N, INT32_MIN, V);
  if (a.err) return NULL;
  if (V == 0 && N > 0) return args_fail(&a, "V must be >= 1"), NULL;
  cross_entropy_forward(losses, lse, logits, targets, N, V);
  return NULL;
}

static napi_value js_cross_entropy_backward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "crossEntropyBackward", 7, "(dlogits, dlosses, logits, lse, targets, N, V)"))
    return NULL;
  int64_t N = arg_size(&a, 5, "N"), V = arg_size(&a, 6, "V");
  float *dlogits = arg_f32(&a, 0, "dlogits", mul2(N, V)), *dlosses = arg_f32(&a, 1, "dlosses", N);
  float *logits = arg_f32(&a, 2, "logits", mul2(N, V)), *lse = arg_f32(&a, 3, "lse", N);
  int32_t* targets = arg_i32(&a, 4, "targets", N, 0);
  check_indices(&a, "target", targets, N, INT32_MIN, V);
  if (a.err) return NULL;
  cross_entropy_backward(dlogits, dlosses, logits, lse, targets, N, V);
  return NULL;
}

// ---- embedding, optimizer, bias and reductions

static napi_value js_embedding_forward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "embeddingForward", 5, "(out, ids, wte, N, C)")) return NULL;
  int64_t N = arg_size(&a, 3, "N"), C = arg_size(&a, 4, "C");
  size_t lw = 0;
  float* out = arg_f32(&a, 0, "out", mul2(N, C));
  int32_t* ids = arg_i32(&a, 1, "ids", N, 0);
  float* wte = arg_f32_len(&a, 2, "wte", 0, 0, &lw);
  if (!a.err && C > 0) check_indices(&a, "id", ids, N, 0, (int64_t)lw / C);
  if (a.err) return NULL;
  embedding_forward(out, ids, wte, N, C);
  return NULL;
}

static napi_value js_embedding_backward(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "embeddingBackward", 5, "(dwte, dout, ids, N, C)")) return NULL;
  int64_t N = arg_size(&a, 3, "N"), C = arg_size(&a, 4, "C");
  size_t lw = 0;
  float* dwte = arg_f32_len(&a, 0, "dwte", 0, 0, &lw);
  float* dout = arg_f32(&a, 1, "dout", mul2(N, C));
  int32_t* ids = arg_i32(&a, 2, "ids", N, 0);
  if (!a.err && C > 0) check_indices(&a, "id", ids, N, 0, (int64_t)lw / C);
  if (a.err) return NULL;
  embedding_backward(dwte, dout, ids, N, C);
  return NULL;
}

static napi_value js_adamw(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "adamw", 11, "(p, g, m, v, n, lr, beta1, beta2, eps, wd, step)")) return NULL;
  int64_t n = arg_size(&a, 4, "n");
  double lr = arg_num(&a, 5, "lr"), b1 = arg_num(&a, 6, "beta1"), b2 = arg_num(&a, 7, "beta2");
  double eps = arg_num(&a, 8, "eps"), wd = arg_num(&a, 9, "wd");
  int step = arg_dim(&a, 10, "step");
  if (!a.err && step < 1) args_fail(&a, "step counts from 1");
  float *p = arg_f32(&a, 0, "p", n), *g = arg_f32(&a, 1, "g", n), *m = arg_f32(&a, 2, "m", n);
  float* v = arg_f32(&a, 3, "v", n);
  if (a.err) return NULL;
  adamw_update(p, m, v, g, n, lr, b1, b2, eps, wd, step);
  return NULL;
}

static napi_value js_add_bias(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "addBias", 5, "(out, x, b, N, C)")) return NULL;
  int64_t N = arg_size(&a, 3, "N"), C = arg_size(&a, 4, "C");
  float *out = arg_f32(&a, 0, "out", mul2(N, C)), *x = arg_f32(&a, 1, "x", mul2(N, C)), *b = arg_f32(&a, 2, "b", C);
  if (a.err) return NULL;
  bias_add(out, x, b, N, C);
  return NULL;
}

static napi_value js_sum_rows(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "sumRows", 4, "(db, dout, N, C)")) return NULL;
  int64_t N = arg_size(&a, 2, "N"), C = arg_size(&a, 3, "C");
  float *db = arg_f32(&a, 0, "db", C), *dout = arg_f32(&a, 1, "dout", mul2(N, C));
  if (a.err) return NULL;
  rows_sum(db, dout, N, C);
  return NULL;
}

static napi_value sum_glue(napi_env env, napi_callback_info info, const char* fn, int squares) {
  cw_args a;
  if (args_read(&a, env, info, fn, 2, "(x, n)")) return NULL;
  int64_t n = arg_size(&a, 1, "n");
  float* x = arg_f32(&a, 0, "x", n);
  if (a.err) return NULL;
  return cw_make_double(env, squares ? array_sum_squares(x, n) : array_sum(x, n));
}
static napi_value js_sum(napi_env env, napi_callback_info info) { return sum_glue(env, info, "sum", 0); }
static napi_value js_sum_squares(napi_env env, napi_callback_info info) {
  return sum_glue(env, info, "sumSquares", 1);
}

// ---- elementwise: (out, a, b, n), (out, a, n), scaleShift(out, a, s, t, n), clamp(out, a, lo, hi, n),
// axpy(y, alpha, x, n), where(out, cond, a, b, n), fill(out, value, n)

static napi_value binary_glue(napi_env env, napi_callback_info info, const char* fn, int op) {
  cw_args a;
  if (args_read(&a, env, info, fn, 4, "(out, a, b, n)")) return NULL;
  int64_t n = arg_size(&a, 3, "n");
  float *out = arg_f32(&a, 0, "out", n), *x = arg_f32(&a, 1, "a", n), *y = arg_f32(&a, 2, "b", n);
  if (a.err) return NULL;
  elementwise_forward(op, out, x, y, NULL, 0, 0, n);
  return NULL;
}

static napi_value unary_glue(napi_env env, napi_callback_info info, const char* fn, int op) {
  cw_args a;
  if (args_read(&a, env, info, fn, 3, "(out, a, n)")) return NULL;
  int64_t n = arg_size(&a, 2, "n");
  float *out = arg_f32(&a, 0, "out", n), *x = arg_f32(&a, 1, "a", n);
  if (a.err) return NULL;
  elementwise_forward(op, out, x, NULL, NULL, 0, 0, n);
  return NULL;
}

// scaleShift(out, a, s, t, n) and clamp(out, a, lo, hi, n)
static napi_value two_scalar_glue(napi_env env, napi_callback_info info, const char* fn, int op) {
  cw_args a;
  if (args_read(&a, env, info, fn, 5, op == EW_CLAMP ? "(out, a, lo, hi, n)" : "(out, a, s, t, n)")) return NULL;
  int64_t n = arg_size(&a, 4, "n");
  double s = arg_num(&a, 2, op == EW_CLAMP ? "lo" : "s"), t = arg_num(&a, 3, op == EW_CLAMP ? "hi" : "t");
  float *out = arg_f32(&a, 0, "out", n), *x = arg_f32(&a, 1, "a", n);
  if (a.err) return NULL;
  elementwise_forward(op, out, x, NULL, NULL, (float)s, (float)t, n);
  return NULL;
}

static napi_value js_axpy(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "axpy", 4, "(y, alpha, x, n)")) return NULL;
  int64_t n = arg_size(&a, 3, "n");
  double alpha = arg_num(&a, 1, "alpha");
  float *y = arg_f32(&a, 0, "y", n), *x = arg_f32(&a, 2, "x", n);
  if (a.err) return NULL;
  elementwise_forward(EW_AXPY, y, x, NULL, NULL, (float)alpha, 0, n);
  return NULL;
}

static napi_value js_where(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "where", 5, "(out, cond, a, b, n)")) return NULL;
  int64_t n = arg_size(&a, 4, "n");
  float *out = arg_f32(&a, 0, "out", n), *cond = arg_f32(&a, 1, "cond", n);
  float *x = arg_f32(&a, 2, "a", n), *y = arg_f32(&a, 3, "b", n);
  if (a.err) return NULL;
  elementwise_forward(EW_WHERE, out, x, y, cond, 0, 0, n);
  return NULL;
}

static napi_value js_fill(napi_env env, napi_callback_info info) {
  cw_args a;
  if (args_read(&a, env, info, "fill", 3, "(out, value, n)")) return NULL;
  int64_t n = arg_size(&a, 2, "n");
  double value = arg_num(&a, 1, "value");
  float* out = arg_f32(&a, 0, "out", n);
  if (a.err) return NULL;
  elementwise_forward(EW_FILL, out, NULL, NULL, NULL, (float)value, 0, n);
  return NULL;
}

#define CW_OP_GLUE(js, kind, name, op) \
  static napi_value js(napi_env env, napi_callback_info info) { return kind(env, info, name, op); }
CW_OP_GLUE(js_add, binary_glue, "add", EW_ADD)
CW_OP_GLUE(js_sub, binary_glue, "sub", EW_SUB)
CW_OP_GLUE(js_mul, binary_glue, "mul", EW_MUL)
CW_OP_GLUE(js_div, binary_glue, "div", EW_DIV)
CW_OP_GLUE(js_minimum, binary_glue, "minimum", EW_MINIMUM)
CW_OP_GLUE(js_maximum, binary_glue, "maximum", EW_MAXIMUM)
CW_OP_GLUE(js_exp, unary_glue, "exp", EW_EXP)
CW_OP_GLUE(js_log, unary_glue, "log", EW_LOG)
CW_OP_GLUE(js_sigmoid, unary_glue, "sigmoid", EW_SIGMOID)
CW_OP_GLUE(js_log_sigmoid, unary_glue, "logSigmoid", EW_LOG_SIGMOID)
CW_OP_GLUE(js_scale_shift, two_scalar_glue, "scaleShift", EW_SCALE_SHIFT)
CW_OP_GLUE(js_clamp, two_scalar_glue, "clamp", EW_CLAMP)

void cw_register_kernels(napi_env env, napi_value exports) {
  static const struct { const char* name; napi_callback cb; } table[] = {
      {"attentionForward", js_attention_forward}, {"attentionBackward", js_attention_backward},
      {"rmsnormForward", js_rmsnorm_forward}, {"rmsnormBackward", js_rmsnorm_backward},
      {"residualRmsnormForward", js_residual_rmsnorm_forward},
      {"layernormForward", js_layernorm_forward}, {"layernormBackward", js_layernorm_backward},
      {"ropeForward", js_rope_forward}, {"ropeBackward", js_rope_backward},
      {"swigluForward", js_swiglu_forward}, {"swigluBackward", js_swiglu_backward},
      {"geluForward", js_gelu_forward}, {"geluBackward", js_gelu_backward},
      {"softmaxForward", js_softmax_forward}, {"softmaxBackward", js_softmax_backward},
      {"crossEntropyForward", js_cross_entropy_forward}, {"crossEntropyBackward", js_cross_entropy_backward},
      {"embeddingForward", js_embedding_forward}, {"embeddingBackward", js_embedding_backward},
      {"adamw", js_adamw}, {"addBias", js_add_bias}, {"sumRows", js_sum_rows},
      {"sum", js_sum}, {"sumSquares", js_sum_squares},
      {"add", js_add}, {"sub", js_sub}, {"mul", js_mul}, {"div", js_div},
      {"minimum", js_minimum}, {"maximum", js_maximum}, {"scaleShift", js_scale_shift}, {"axpy", js_axpy},
      {"exp", js_exp}, {"log", js_log}, {"sigmoid", js_sigmoid}, {"logSigmoid", js_log_sigmoid},
      {"clamp", js_clamp}, {"where", js_where}, {"fill", js_fill},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) cw_export(env, exports, table[i].name, table[i].cb);
}
