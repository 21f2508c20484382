// The floating-point peak of one core at the dispatch level in force, measured: a loop of independent FMAs on
// registers (peak_impl.h) timed on the calling thread. It is what the core's FMA units deliver at the clock it runs
// now (turbo, a VM's share), the ceiling a GEMM's rate is judged against (bench/gemm prints both). Glue: fmaPeak(seconds)
// -> GFLOP/s (fp32, one thread).
#include "kernels.h"
#include <time.h>

#define CW_IMPL "peak_impl.h"
#include "kernels_levels.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

// best GFLOP/s of rounds of about 20 ms each, for about `seconds` in all
double fma_peak(double seconds) {
  float (*loop)(int64_t, float) = CW_PICK(fma_loop);
  const double per_iter = 2.0 * CW_PICK(fma_width)();
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

static napi_value js_fma_peak(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double seconds = 0.3;
  if (argc >= 1 && cw_arg_double(env, argv[0], "fmaPeak", "seconds", &seconds)) return NULL;
  if (!(seconds > 0 && seconds <= 60)) {
    napi_throw_range_error(env, NULL, "fmaPeak: seconds must be in (0, 60]");
    return NULL;
  }
  return cw_make_double(env, fma_peak(seconds));
}

void cw_register_peak(napi_env env, napi_value exports) { cw_export(env, exports, "fmaPeak", js_fma_peak); }
