// Compiles the level-generic body named by CW_IMPL once per SIMD level this build has: scalar everywhere, AVX2 and
// AVX-512 on x86-64, NEON on AArch64 (see kernels_simd.h). A kernel file writes
//   #define CW_IMPL "kernels_norm_impl.h"
//   #include "kernels_levels.h"
// and CW_PICK (kernels.h) calls the variant of the level in force.
#ifndef CW_IMPL
#error "define CW_IMPL (the body to compile at each level) before including kernels_levels.h"
#endif
#define CW_SIMD 0
#include "kernels_simd.h"
#include CW_IMPL
#undef CW_SIMD
#if defined(__x86_64__)
#define CW_SIMD 1
#include "kernels_simd.h"
#include CW_IMPL
#undef CW_SIMD
#define CW_SIMD 2
#include "kernels_simd.h"
#include CW_IMPL
#undef CW_SIMD
#elif defined(__aarch64__)
#define CW_SIMD 3
#include "kernels_simd.h"
#include CW_IMPL
#undef CW_SIMD
#endif
#undef CW_IMPL
