// The floating-point peak of one core at the dispatch level in force, measured: a loop of independent FMAs on
// registers (peak_impl.h) timed on the calling thread. It is what the core's FMA units deliver at the clock it runs
// now (turbo, a VM's share), the ceiling a GEMM's rate is judged against (bench/gemm prints both). Glue: fmaPeak(seconds)
// -> GFLOP/s (fp32, one thread); bf16Peak(seconds) -> the same for vdpbf16ps (0 where cw_cpu_has_bf16() is not).
#include "kernels.h"
#include <stdio.h>
#include <time.h>

#define CW_IMPL "peak_impl.h"
#include "kernels_levels.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

#if defined(__x86_64__)
#include <immintrin.h>
// The bf16 peak (AVX512_BF16, the ceiling of gemm_bf16.c): NACC independent vdpbf16ps chains on registers, each
// instruction 16 lanes x 2 products, multiply and add: 64 flops. The operands are small bf16 values that keep the sums
// finite; the value returned is derived from every chain so the compiler keeps them all.
#define BF16_NACC 16
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static float dpbf16_loop(int64_t iters, float seed) {
  __m512 acc[BF16_NACC];
  for (int i = 0; i < BF16_NACC; i++) acc[i] = _mm512_set1_ps(seed + (float)i);
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-7f), _mm512_set1_ps(1e-7f)), y = x;
  for (int64_t k = 0; k < iters; k++) {
#pragma GCC unroll 16
    for (int i = 0; i < BF16_NACC; i++) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
  }
  __m512 s = acc[0];
  for (int i = 1; i < BF16_NACC; i++) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}
#endif

// best GFLOP/s of rounds of about 20 ms each of `loop` (per_iter flops an iteration), for about `seconds` in all
static double loop_peak(float (*loop)(int64_t, float), double per_iter, double seconds) {
  int64_t iters = 1 << 16;
  volatile float sink = 0;
  double best = 0, t_end = now() + seconds;
  for (;;) {
    double t0 = now();
    sink += loop(iters, (float)iters);
    double dt = now() - t0;
    if (dt < 0.02) {  // too short to time well: more iterations
      iters *= 2;
      continue;
    }
    double g = per_iter * iters / dt / 1e9;
    if (g > best) best = g;
    if (now() > t_end) break;
  }
  (void)sink;
  return best;
}

double fma_peak(double seconds) { return loop_peak(CW_PICK(fma_loop), 2.0 * CW_PICK(fma_width)(), seconds); }

// 0 where the bf16 GEMM cannot run (cw_cpu_has_bf16)
double bf16_peak(double seconds) {
#if defined(__x86_64__)
  if (cw_cpu_has_bf16()) return loop_peak(dpbf16_loop, 64.0 * BF16_NACC, seconds);
#endif
  (void)seconds;
  return 0;
}

static napi_value peak_glue(napi_env env, napi_callback_info info, const char* fn, double (*peak)(double)) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double seconds = 0.3;
  if (argc >= 1 && cw_arg_double(env, argv[0], fn, "seconds", &seconds)) return NULL;
  if (!(seconds > 0 && seconds <= 60)) {
    char msg[80];
    snprintf(msg, sizeof msg, "%s: seconds must be in (0, 60]", fn);
    napi_throw_range_error(env, NULL, msg);
    return NULL;
  }
  return cw_make_double(env, peak(seconds));
}

static napi_value js_fma_peak(napi_env env, napi_callback_info info) { return peak_glue(env, info, "fmaPeak", fma_peak); }
static napi_value js_bf16_peak(napi_env env, napi_callback_info info) {
  return peak_glue(env, info, "bf16Peak", bf16_peak);
}

void cw_register_peak(napi_env env, napi_value exports) {
  cw_export(env, exports, "fmaPeak", js_fma_peak);
  cw_export(env, exports, "bf16Peak", js_bf16_peak);
}
