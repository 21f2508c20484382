// Shared declarations of the native layer: CPU dispatch, the thread pool, and Node-API argument helpers.
// Kernels know nothing of JavaScript; the glue functions (cw_register_*) check argument types and lengths and hold
// no math. See src/tensor/backend.ts for what each kernel computes.
#pragma once
#include <stdint.h>
#include <stddef.h>
#define NAPI_VERSION 8
#include <node_api.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CPU dispatch (cpu.c)
// Levels, from CPUID + XGETBV at load time on x86-64, lowered by CHATWRIGHT_CPU=scalar|avx2|avx512 (never raised above
// what the CPU supports). SIMD code lives in functions marked __attribute__((target("avx512f,avx512bw,avx512dq,
// avx512vl,fma"))) or target("avx2,fma,f16c"), chosen at run time by cw_cpu_level(), so the addon never executes an
// illegal instruction. On AArch64 the levels are scalar and NEON (Advanced SIMD, part of every ARMv8-A CPU), 0 and 1
// (CHATWRIGHT_CPU=scalar|neon). A level's number orders it within its architecture only.
enum { CW_SCALAR = 0, CW_AVX2 = 1, CW_AVX512 = 2, CW_NEON = 1 };
int cw_cpu_level(void);
// 1 when the bf16 mixed-precision GEMM can run: the CPU has AVX512_BF16 and the level in force is avx512.
int cw_cpu_has_bf16(void);
// Floats per vector at a level (1, 8, 16; NEON 4): the unit kernels split column ranges by.
int cw_level_width(int level);
// Sets the level used from now on, clamped to what the CPU supports; returns the level in force.
int cw_set_cpu_level(int level);
const char* cw_cpu_level_name(int level);

// ---- thread pool (pool.c)
// Persistent worker threads; size = available cores, or CHATWRIGHT_THREADS. The calling thread takes part.
// cw_parallel_for splits [0, n) into contiguous chunks of about `grain` items or more (up to 4 per thread, claimed
// dynamically) and calls fn(ctx, begin, end) on each;
// it returns when all chunks are done. Nested calls run serially on the calling thread.
typedef void (*cw_range_fn)(void* ctx, int64_t begin, int64_t end);
void cw_parallel_for(int64_t n, int64_t grain, cw_range_fn fn, void* ctx);
// The same with exactly `chunks` chunks (at most n, at most 65535), which may exceed the thread count: the threads
// claim them one at a time from a shared counter, so a thread that runs slower (a busy sibling core, a preempted
// vCPU) simply takes fewer. Chunk c is [n*c/chunks, n*(c+1)/chunks), whichever thread runs it.
void cw_parallel_for_chunks(int64_t n, int chunks, cw_range_fn fn, void* ctx);
int cw_num_threads(void);
void cw_set_num_threads(int n);

// ---- Node-API helpers (napi_util.c). Each returns 0 on success; on failure it has thrown a JS TypeError/RangeError
// naming the function and the argument, and the caller returns NULL at once.
int cw_arg_f32(napi_env env, napi_value v, const char* fn, const char* arg, float** ptr, size_t* len);
int cw_arg_f32_or_null(napi_env env, napi_value v, const char* fn, const char* arg, float** ptr, size_t* len);
int cw_arg_i32(napi_env env, napi_value v, const char* fn, const char* arg, int32_t** ptr, size_t* len);
int cw_arg_i32_or_null(napi_env env, napi_value v, const char* fn, const char* arg, int32_t** ptr, size_t* len);
int cw_arg_u8(napi_env env, napi_value v, const char* fn, const char* arg, uint8_t** ptr, size_t* len);
int cw_arg_u16(napi_env env, napi_value v, const char* fn, const char* arg, uint16_t** ptr, size_t* len);
int cw_arg_int(napi_env env, napi_value v, const char* fn, const char* arg, int64_t* out);
int cw_arg_double(napi_env env, napi_value v, const char* fn, const char* arg, double* out);
int cw_arg_bool(napi_env env, napi_value v, const char* fn, const char* arg, int* out);
// Throws RangeError "fn: arg has LEN elements, needs at least NEED" unless 0 <= need <= len (a negative need is an
// overflowed size product, refused); returns 0 when fine.
int cw_check_len(napi_env env, const char* fn, const char* arg, size_t len, int64_t need);
napi_value cw_make_double(napi_env env, double x);
// Adds a function to exports under `name`.
void cw_export(napi_env env, napi_value exports, const char* name, napi_callback cb);

// ---- test hook (addon.c): CHATWRIGHT_TEST_FAIL_ALLOC=1 makes every scratch allocation of the kernels fail, so the
// tests can see an out-of-memory condition reach JavaScript as a thrown Error instead of aborting the process.
int cw_test_fail_alloc(void);

// ---- registration: each kernel file exports its glue functions (addon.c calls all of these at load)
void cw_register_core(napi_env env, napi_value exports);    // addon.c: cpuLevel, setCpuLevel, numThreads, setNumThreads
void cw_register_gemm(napi_env env, napi_value exports);    // gemm.c: gemm
void cw_register_kernels(napi_env env, napi_value exports); // kernels*.c: every other Backend primitive
void cw_register_qgemm(napi_env env, napi_value exports);   // qgemm.c: gemmBf16, gemmQ8_0
void cw_register_peak(napi_env env, napi_value exports);    // peak.c: fmaPeak

#ifdef __cplusplus
}
#endif
