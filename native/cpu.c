// CPU dispatch: which SIMD level the kernels may use. On x86-64 detected once from CPUID + XGETBV (the instruction set
// must be present AND the OS must save its registers: ymm state for AVX2, opmask/zmm state for AVX-512); on AArch64
// NEON, which every ARMv8-A CPU has (Arm ARM: Advanced SIMD is mandatory in the A-profile, Linux and macOS alike).
// Lowered by CHATWRIGHT_CPU=scalar|avx2|avx512 (x86-64) or scalar|neon (AArch64), changeable at run time by
// cw_set_cpu_level (never above what the CPU supports).
// Beside the level, one extension is detected on its own: AVX512_BF16 (CPUID.(EAX=7,ECX=1):EAX bit 5; vdpbf16ps and
// the bf16 conversions), which the bf16 mixed-precision GEMM (gemm_bf16.c) needs; it is usable at the avx512 level only
// (cw_cpu_has_bf16), so CHATWRIGHT_CPU=avx2 turns it off with the rest of AVX-512.
// Reference: Intel SDM vol. 1, 14.3 "Detection of Intel AVX instructions" and 15.2 (AVX-512); vol. 2, CPUID leaf 07H.
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((uint64_t)edx << 32) | eax;
}

static int g_hw_bf16 = 0;  // AVX512_BF16, set by detect_hardware when the level is avx512

static int detect_hardware(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return CW_SCALAR;
  // F16C (half <-> float) ships with AVX2 on every x86 CPU; the SIMD levels use it for the q8_0 scales
  int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return CW_SCALAR;
  uint64_t xcr0 = xgetbv0();
  if ((xcr0 & 0x6) != 0x6) return CW_SCALAR;  // XMM and YMM state
  if (__get_cpuid_max(0, NULL) < 7) return CW_SCALAR;
  __cpuid_count(7, 0, a, b, c, d);
  int avx2 = (b >> 5) & 1;
  int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);  // F, DQ, BW, VL
  if (avx2 && fma && f16c && avx512 && (xcr0 & 0xE6) == 0xE6) {  // + opmask, ZMM_Hi256, Hi16_ZMM
    __cpuid_count(7, 0, a, b, c, d);
    if (a >= 1) {  // EAX of subleaf 0: the highest subleaf
      __cpuid_count(7, 1, a, b, c, d);
      g_hw_bf16 = (a >> 5) & 1;
    }
    return CW_AVX512;
  }
  if (avx2 && fma && f16c) return CW_AVX2;
  return CW_SCALAR;
}
#elif defined(__aarch64__)
static const int g_hw_bf16 = 0;
static int detect_hardware(void) { return CW_NEON; }
#else
static const int g_hw_bf16 = 0;
static int detect_hardware(void) { return CW_SCALAR; }
#endif

#if defined(__aarch64__)
static const char* const LEVEL_NAMES[] = {"scalar", "neon"};
#define TOP_LEVEL CW_NEON
#else
static const char* const LEVEL_NAMES[] = {"scalar", "avx2", "avx512"};
#define TOP_LEVEL CW_AVX512
#endif

static int g_hw = -1;       // what the CPU and OS support
static _Atomic int g_level = -1;  // what the kernels use now

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_once(void) {
  int hw = detect_hardware();
  int level = hw;
  const char* env = getenv("CHATWRIGHT_CPU");
  if (env && *env) {
    int want = -1;
    for (int l = 0; l <= TOP_LEVEL; l++)
      if (strcmp(env, LEVEL_NAMES[l]) == 0) want = l;
    if (want < 0)
      fprintf(stderr, "chatwright: CHATWRIGHT_CPU=%s is not one of %s; ignored\n", env,
              TOP_LEVEL == 1 ? "scalar, neon" : "scalar, avx2, avx512");
    if (want >= 0 && want < level) level = want;
  }
  g_hw = hw;
  atomic_store(&g_level, level);
}

static void init_levels(void) { pthread_once(&g_once, init_once); }

int cw_cpu_level(void) {
  int l = atomic_load_explicit(&g_level, memory_order_relaxed);
  if (l >= 0) return l;
  init_levels();
  return atomic_load(&g_level);
}

int cw_set_cpu_level(int level) {
  init_levels();
  if (level < CW_SCALAR) level = CW_SCALAR;
  if (level > g_hw) level = g_hw;
  atomic_store(&g_level, level);
  return level;
}

int cw_cpu_has_bf16(void) {
  init_levels();
  return g_hw_bf16 && cw_cpu_level() == CW_AVX512;  // (AArch64 has no level 2: never there)
}

const char* cw_cpu_level_name(int level) { return level >= 0 && level <= TOP_LEVEL ? LEVEL_NAMES[level] : "scalar"; }

int cw_level_width(int level) {
#if defined(__aarch64__)
  return level >= CW_NEON ? 4 : 1;
#else
  return level >= CW_AVX512 ? 16 : level >= CW_AVX2 ? 8 : 1;
#endif
}
