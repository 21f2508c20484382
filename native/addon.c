// The addon's entry point: registers the glue of every kernel file on the exports object, plus the dispatch and
// thread controls (cpuLevel, setCpuLevel, numThreads, setNumThreads, cpuLevelName), and the allocation-failure test hook.
#include "common.h"
#include <stdlib.h>

// Until native/kernels*.c defines it, the addon still builds with GEMM alone (a strong definition wins at link time).
__attribute__((weak)) void cw_register_kernels(napi_env env, napi_value exports) {
  (void)env;
  (void)exports;
}

int cw_test_fail_alloc(void) {
  static int cached = -1;  // read once; a benign race (every thread computes the same value)
  if (cached < 0) {
    const char* e = getenv("CHATWRIGHT_TEST_FAIL_ALLOC");
    cached = e && e[0] == '1';
  }
  return cached;
}

static napi_value js_cpu_level(napi_env env, napi_callback_info info) {
  (void)info;
  return cw_make_double(env, cw_cpu_level());
}

static napi_value js_set_cpu_level(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t level;
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "setCpuLevel: level must be an integer (0 scalar, 1 avx2 or neon, 2 avx512)");
    return NULL;
  }
  if (cw_arg_int(env, argv[0], "setCpuLevel", "level", &level)) return NULL;
  return cw_make_double(env, cw_set_cpu_level((int)(level > 2 ? 2 : level < 0 ? 0 : level)));
}

static napi_value js_cpu_level_name(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value s;
  napi_create_string_utf8(env, cw_cpu_level_name(cw_cpu_level()), NAPI_AUTO_LENGTH, &s);
  return s;
}

static napi_value js_num_threads(napi_env env, napi_callback_info info) {
  (void)info;
  return cw_make_double(env, cw_num_threads());
}

static napi_value js_set_num_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t n;
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "setNumThreads: n must be an integer >= 1");
    return NULL;
  }
  if (cw_arg_int(env, argv[0], "setNumThreads", "n", &n)) return NULL;
  if (n < 1) {
    napi_throw_range_error(env, NULL, "setNumThreads: n must be >= 1");
    return NULL;
  }
  cw_set_num_threads((int)(n > 256 ? 256 : n));
  return cw_make_double(env, cw_num_threads());
}

void cw_register_core(napi_env env, napi_value exports) {
  cw_export(env, exports, "cpuLevel", js_cpu_level);
  cw_export(env, exports, "setCpuLevel", js_set_cpu_level);
  cw_export(env, exports, "cpuLevelName", js_cpu_level_name);
  cw_export(env, exports, "numThreads", js_num_threads);
  cw_export(env, exports, "setNumThreads", js_set_num_threads);
}

NAPI_MODULE_INIT() {
  cw_register_core(env, exports);
  cw_register_gemm(env, exports);
  cw_register_kernels(env, exports);
  cw_register_qgemm(env, exports);
  cw_register_peak(env, exports);
  return exports;
}
