// Level-generic body of peak.c; included once per SIMD level (see kernels_levels.h).

// `iters` rounds of NACC independent FMAs on registers (no memory traffic): 2 * VW * NACC * iters flops. The chains
// are independent so the loop is bound by the FMA units' throughput, not their latency (NACC >= latency x units:
// 4 x 2 on current x86 cores, 4 x 4 on the widest arm64 ones). Returns a value derived from every chain so the
// compiler keeps them all.
#if CW_SIMD == 1
#define NACC 12  // AVX2: 16 ymm registers
#else
#define NACC 16
#endif
CW_T static float CW_FN(fma_loop)(int64_t iters, float seed) {
  vf acc[NACC];
  for (int i = 0; i < NACC; i++) acc[i] = vset1(seed + (float)i);
  const vf m = vset1(0.999999f), a = vset1(1e-7f);
  for (int64_t k = 0; k < iters; k++) {
#pragma GCC unroll 16
    for (int i = 0; i < NACC; i++) acc[i] = vfma(acc[i], m, a);
  }
  vf s = acc[0];
  for (int i = 1; i < NACC; i++) s = vadd(s, acc[i]);
  return vhsum(s);
}
CW_T static int CW_FN(fma_width)(void) { return VW * NACC; }
#undef NACC
