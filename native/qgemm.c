// Products with low-precision weights, for inference: C (M, N) = A (M, K) @ W^T, W (N, K) stored in bf16 or in q8_0
// (src/tensor/quant.ts defines both formats; src/tensor/backend.ts gemmBf16 / gemmQ8_0 say what is computed).
//
// Decoding one token reads every weight once, so its speed is the weights' bytes over the memory bandwidth: 2 bytes
// a weight in bf16, 34/32 in q8_0, against 4 in float32. The activations stay float32 and each weight is dequantized
// exactly in registers (weight-only quantization), so the result is the float32 product with the rounded weights.
// Paths: M <= QGEMV_MAX_M (decode, small batches) streams W once with the rows of A in L1 (qgemm_impl.h, one body
// per SIMD level), split over threads by columns; larger M (prefill) runs the blocked float32 GEMM of gemm.c with a
// packer that dequantizes W into its panels, so prefill runs at the float32 microkernel's rate.
// Boundary: plain C over arrays and sizes, plus the Node-API glue at the end (length checks, no math).
#include "kernels.h"
#include "gemm.h"
#include <stdio.h>
#include <string.h>

#define CW_IMPL "qgemm_impl.h"
#include "kernels_levels.h"

// Rows of A up to which the weights are streamed directly (each group of 4 rows dequantizes them again, from L1);
// above it the blocked path packs them once per K block.
#define QGEMV_MAX_M 8
#define QGEMV_COLS 16          // columns per unit of work handed to the threads
#define QSERIAL_FLOPS (3.0e6)  // below this one thread (a dispatch costs a few microseconds)

typedef struct {
  float* C;
  const float* A;
  const void* W;
  int dtype;
  int64_t M, N, K;
} qgemv_ctx;

static void qgemv_range(void* vctx, int64_t b, int64_t e) {
  const qgemv_ctx* x = vctx;
  int64_t j0 = b * QGEMV_COLS, j1 = e * QGEMV_COLS < x->N ? e * QGEMV_COLS : x->N;
  if (x->dtype == CW_DT_Q8_0) CW_PICK(q8_gemv)(x->C, x->N, x->A, x->W, x->M, x->K, j0, j1);
  else CW_PICK(bf16_gemv)(x->C, x->N, x->A, x->W, x->M, x->K, j0, j1);
}

// C (M, N) = A (M, K) @ W^T; W (N, K) in dtype (CW_DT_BF16: N*K uint16; CW_DT_Q8_0: N rows of K/32 34-byte blocks,
// K a multiple of 32). C is overwritten. Returns 0, or -1 when scratch memory could not be had.
int cw_gemm_w(float* C, const float* A, const void* W, int dtype, int64_t M, int64_t N, int64_t K) {
  if (M == 0 || N == 0) return 0;
  if (K == 0) {
    memset(C, 0, sizeof(float) * (size_t)(M * N));
    return 0;
  }
  if (M <= QGEMV_MAX_M) {
    qgemv_ctx x = {C, A, W, dtype, M, N, K};
    int64_t units = (N + QGEMV_COLS - 1) / QGEMV_COLS;
    if (2.0 * M * N * K < QSERIAL_FLOPS || cw_num_threads() <= 1) qgemv_range(&x, 0, units);
    else cw_parallel_for(units, 1, qgemv_range, &x);
    return 0;
  }
  cw_operand B = {NULL, dtype == CW_DT_Q8_0 ? K / 32 * 34 : K * 2, 1, dtype, W};
  return cw_gemm_lowp(C, A, B, CW_PICK(pack_lowp), M, N, K);
}

// ---- Node-API glue: gemmBf16(C, A, W, M, N, K), gemmQ8_0(C, A, W, M, N, K)

static napi_value glue(napi_env env, napi_callback_info info, int dtype) {
  const char* fn = dtype == CW_DT_Q8_0 ? "gemmQ8_0" : "gemmBf16";
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char msg[200];
  if (argc < 6) {
    snprintf(msg, sizeof msg, "%s: expected (C, A, W, M, N, K), got %zu arguments", fn, argc);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  float *C, *A;
  void* W;
  size_t lc, la, lw;
  int64_t M, N, K;
  if (cw_arg_f32(env, argv[0], fn, "C", &C, &lc) || cw_arg_f32(env, argv[1], fn, "A", &A, &la) ||
      (dtype == CW_DT_Q8_0 ? cw_arg_u8(env, argv[2], fn, "W", (uint8_t**)&W, &lw)
                           : cw_arg_u16(env, argv[2], fn, "W", (uint16_t**)&W, &lw)) ||
      cw_arg_int(env, argv[3], fn, "M", &M) || cw_arg_int(env, argv[4], fn, "N", &N) ||
      cw_arg_int(env, argv[5], fn, "K", &K))
    return NULL;
  const int64_t lim = INT64_C(1) << 40;
  if (M < 0 || N < 0 || K < 0 || M > lim || N > lim || K > lim || (M && K > lim / M) || (N && K > lim / N) ||
      (M && N > lim / M)) {
    snprintf(msg, sizeof msg, "%s: M, N and K must be >= 0 and their products at most 2^40", fn);
    napi_throw_range_error(env, NULL, msg);
    return NULL;
  }
  if (dtype == CW_DT_Q8_0 && K % 32 != 0) {
    snprintf(msg, sizeof msg, "%s: K must be a multiple of 32 (q8_0 blocks hold 32 weights), got %lld", fn,
             (long long)K);
    napi_throw_range_error(env, NULL, msg);
    return NULL;
  }
  int64_t wlen = dtype == CW_DT_Q8_0 ? N * (K / 32) * 34 : N * K;
  if (cw_check_len(env, fn, "C", lc, M * N) || cw_check_len(env, fn, "A", la, M * K) ||
      cw_check_len(env, fn, "W", lw, wlen))
    return NULL;
  if (cw_gemm_w(C, A, W, dtype, M, N, K) != 0) {
    snprintf(msg, sizeof msg, "%s: out of memory for its packing buffers; HINT: close other programs, or use a smaller batch", fn);
    napi_throw_error(env, "ERR_CW_OUT_OF_MEMORY", msg);
  }
  return NULL;
}

static napi_value js_gemm_bf16(napi_env env, napi_callback_info info) { return glue(env, info, CW_DT_BF16); }
static napi_value js_gemm_q8_0(napi_env env, napi_callback_info info) { return glue(env, info, CW_DT_Q8_0); }

void cw_register_qgemm(napi_env env, napi_value exports) {
  cw_export(env, exports, "gemmBf16", js_gemm_bf16);
  cw_export(env, exports, "gemmQ8_0", js_gemm_q8_0);
}
