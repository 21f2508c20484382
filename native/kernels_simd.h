// A small vector abstraction so each kernel body is written once and compiled at every level of its architecture.
//
// Boundary: vector arithmetic only; no kernel lives here. A kernel file defines CW_SIMD (0 scalar; on x86-64 1 AVX2 +
// FMA + F16C and 2 AVX-512; on AArch64 3 NEON) and includes this header, then its kernels_*_impl.h body, once per
// level (kernels_levels.h says which levels this build has); the body writes `vf` for the vector type, VW for its
// width, vload/vfma/vexp/... for the operations, CW_T before every function (the target attribute, so the compiler
// may use the level's instructions there and nowhere else; NEON is AArch64's baseline and needs none) and CW_FN(name)
// for the function name (name_scalar, name_avx2, name_avx512, name_neon). CW_PICK in kernels.h chooses at run time.
// Low-precision weights: vld_i8 / vld_bf16 widen VW int8 / bf16 values to floats, vhalf broadcasts an IEEE half,
// vtranspose transposes VW vectors in registers (the dequantizing packer of qgemm_impl.h).
//
// Partial vectors: vld(p, r) / vst(p, x, r) touch only the first r lanes (r <= VW; r == VW is a plain load/store
// and folds away when r is a constant), so bodies handle the tail of a row with the same code as the rest.
//
// vexp: Cephes expf range reduction (exp(x) = 2^n exp(r), |r| <= ln2/2, n = round(x / ln2), ln2 split in two), then
// a degree-5 near-minimax polynomial (CW_EXP_C*: 5 FMAs; max relative error 1.6e-7, where Cephes's 1 + r + r^2 P5(r)
// is ~1 ulp), n by the 1.5 2^23 shifter: 12 instructions a vector at AVX-512 where the Cephes form took 16. 2^n is
// applied by vscalefps (AVX-512) or in two halves (AVX2), so that results up to overflow are right. Results below
// 1.7e-38 (x < -87) are flushed to 0: subnormal results cost a microcode assist each, and nothing here needs them.
// vlog: Cephes logf (mantissa in [sqrt(1/2), sqrt(2)), degree-8 polynomial). Source: Stephen L. Moshier, Cephes Math
// Library, expf.c and logf.c (netlib.org/cephes). The scalar level uses libm's expf/logf. NEON computes as AVX2 does.
// min/max are `a < b ? a : b` / `a > b ? a : b` at every level (the x86 instructions; NEON's vminq would return NaN
// where the others return b), so a NaN behaves the same whatever the CPU.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef CW_SIMD
#error "define CW_SIMD (0, 1, 2 or 3) before including kernels_simd.h"
#endif

// Every level's helpers share these names; each name maps to the current level's function.
#undef CW_FN
#undef CW_T
#undef VW
#undef vf
#undef CW_MR
#undef CW_NV
#define vld CW_FN(vld)
#define vldf CW_FN(vldf)
#define vst CW_FN(vst)
#define vload CW_FN(vload)
#define vstore CW_FN(vstore)
#define vset1 CW_FN(vset1)
#define vzero CW_FN(vzero)
#define vadd CW_FN(vadd)
#define vsub CW_FN(vsub)
#define vmul CW_FN(vmul)
#define vdiv CW_FN(vdiv)
#define vfma CW_FN(vfma)
#define vfnma CW_FN(vfnma)
#define vmin CW_FN(vmin)
#define vmax CW_FN(vmax)
#define vsqrt CW_FN(vsqrt)
#define vabs CW_FN(vabs)
#define vhsum CW_FN(vhsum)
#define vhmax CW_FN(vhmax)
#define vsel_nz CW_FN(vsel_nz)
#define vexp CW_FN(vexp)
#define vlog CW_FN(vlog)
#define vsigmoid CW_FN(vsigmoid)
#define vtanh CW_FN(vtanh)
#define vlog_sigmoid CW_FN(vlog_sigmoid)
#define vld_i8 CW_FN(vld_i8)
#define vld_bf16 CW_FN(vld_bf16)
#define vtranspose CW_FN(vtranspose)
#define vhalf CW_FN(vhalf)

#define CW_INLINE static inline __attribute__((always_inline))

#ifndef CW_SIMD_HALF
#define CW_SIMD_HALF
// IEEE half -> float, exact and branch-free for every input (normals, subnormals, inf, NaN): Marat Dukhan's FP16
// library, fp16_ieee_to_fp32_value (github.com/Maratyszcza/FP16, include/fp16/fp16.h), as ggml uses it.
static inline float cw_f16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } w, norm, denorm, out;
  w.u = (uint32_t)h << 16;
  const uint32_t sign = w.u & 0x80000000u, two_w = w.u + w.u;
  norm.u = (two_w >> 4) + (0xE0u << 23);
  norm.f *= 0x1.0p-112f;
  denorm.u = (two_w >> 17) | (126u << 23);
  denorm.f -= 0.5f;
  out.u = sign | (two_w < (1u << 27) ? denorm.u : norm.u);
  return out.f;
}
#endif

// vexp's polynomial: exp(r) ~ 1 + r (C1 + r (C2 + r (C3 + r (C4 + r C5)))) on |r| <= ln2/2, fitted for least maximum
// relative error (Lawson-reweighted least squares, i.e. near-minimax; float32 coefficients). Whole vexp, float32 with
// FMA, measured against float64 exp over 4e6 points of [-87, 88.7]: max relative error 1.62e-7 (under 3 ulp; libm
// expf: 6e-8).
#ifndef CW_EXP_C1
#define CW_EXP_C1 9.9999970198e-01f
#define CW_EXP_C2 4.9999150634e-01f
#define CW_EXP_C3 1.6667635739e-01f
#define CW_EXP_C4 4.1897911578e-02f
#define CW_EXP_C5 8.2902973518e-03f
#endif

#if CW_SIMD == 2
// ---------------------------------------------------------------------------------------------------------- AVX-512
#define CW_FN(name) name##_avx512
#define CW_T __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define VW 16
#define vf __m512
#define CW_MR 4  // attention micro-tile: 4 rows x 4 vectors = 16 of the 32 zmm registers accumulate
#define CW_NV 4
#ifndef CW_SIMD_DONE_2
#define CW_SIMD_DONE_2
CW_T CW_INLINE __m512 vload_avx512(const float* p) { return _mm512_loadu_ps(p); }
CW_T CW_INLINE void vstore_avx512(float* p, __m512 x) { _mm512_storeu_ps(p, x); }
CW_T CW_INLINE __m512 vldf_avx512(const float* p, int64_t r, float fill) {
  if (r >= 16) return _mm512_loadu_ps(p);
  return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << r) - 1), p);
}
CW_T CW_INLINE __m512 vld_avx512(const float* p, int64_t r) { return vldf_avx512(p, r, 0.0f); }
CW_T CW_INLINE void vst_avx512(float* p, __m512 x, int64_t r) {
  if (r >= 16) _mm512_storeu_ps(p, x);
  else _mm512_mask_storeu_ps(p, (__mmask16)((1u << r) - 1), x);
}
CW_T CW_INLINE __m512 vset1_avx512(float x) { return _mm512_set1_ps(x); }
CW_T CW_INLINE __m512 vzero_avx512(void) { return _mm512_setzero_ps(); }
CW_T CW_INLINE __m512 vadd_avx512(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
CW_T CW_INLINE __m512 vsub_avx512(__m512 a, __m512 b) { return _mm512_sub_ps(a, b); }
CW_T CW_INLINE __m512 vmul_avx512(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
CW_T CW_INLINE __m512 vdiv_avx512(__m512 a, __m512 b) { return _mm512_div_ps(a, b); }
CW_T CW_INLINE __m512 vfma_avx512(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }    // a b + c
CW_T CW_INLINE __m512 vfnma_avx512(__m512 a, __m512 b, __m512 c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a b
// min/max as the x86 instructions: a < b ? a : b, so a NaN in either gives b (the JS backend's a <= b ? a : b too)
CW_T CW_INLINE __m512 vmin_avx512(__m512 a, __m512 b) { return _mm512_min_ps(a, b); }
CW_T CW_INLINE __m512 vmax_avx512(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
CW_T CW_INLINE __m512 vsqrt_avx512(__m512 a) { return _mm512_sqrt_ps(a); }
CW_T CW_INLINE __m512 vabs_avx512(__m512 a) { return _mm512_abs_ps(a); }
CW_T CW_INLINE float vhsum_avx512(__m512 a) { return _mm512_reduce_add_ps(a); }
CW_T CW_INLINE float vhmax_avx512(__m512 a) { return _mm512_reduce_max_ps(a); }
// c != 0 ? a : b (NaN counts as nonzero)
CW_T CW_INLINE __m512 vsel_nz_avx512(__m512 c, __m512 a, __m512 b) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(c, _mm512_setzero_ps(), _CMP_NEQ_UQ), b, a);
}
// VW int8 -> float; VW bf16 (the high halves of float32s) -> float
// the IEEE half at p (any alignment), broadcast
CW_T CW_INLINE __m512 vhalf_avx512(const void* p) {
  short h;
  memcpy(&h, p, 2);
  return _mm512_cvtph_ps(_mm256_set1_epi16(h));
}
CW_T CW_INLINE __m512 vld_i8_avx512(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p)));
}
CW_T CW_INLINE __m512 vld_bf16_avx512(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}
// In-register transpose of a VW x VW block: r[i] holds row i on entry, column i on return.
CW_T CW_INLINE void vtranspose_avx512(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xDD);
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xDD);
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD);
  }
}
CW_T CW_INLINE __m512 vexp_avx512(__m512 x) {
  // below -87 the result is under 1.7e-38: it is flushed to 0, because producing a subnormal costs a microcode
  // assist of ~100 cycles per vector (the masked -inf scores of attention would hit it all the time); the mask also
  // hides whatever the steps below make of x < -87 (-inf included: r is NaN there)
  const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_set1_ps(88.7228394f), x);  // returns x when x is NaN, so NaN propagates
  // n = round(x / ln2) by the 1.5 2^23 shifter (one FMA and one subtraction instead of a multiply and a round)
  const __m512 shifter = _mm512_set1_ps(12582912.0f);
  __m512 fn = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shifter), shifter);
  __m512 r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(CW_EXP_C5);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(CW_EXP_C4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(CW_EXP_C3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(CW_EXP_C2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(CW_EXP_C1));
  __m512 y = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(~tiny, y, fn);  // y 2^n in one instruction, overflow to inf included
}
CW_T CW_INLINE __m512 vlog_avx512(__m512 x) {
  __m512i xi = _mm512_castps_si512(x);
  __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(xi, 23), _mm512_set1_epi32(127));
  __m512 m = _mm512_castsi512_ps(
      _mm512_or_si512(_mm512_and_si512(xi, _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x3f800000)));
  __mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
  m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
  e = _mm512_mask_add_epi32(e, big, e, _mm512_set1_epi32(1));
  __m512 f = _mm512_sub_ps(m, _mm512_set1_ps(1.0f));
  __m512 ef = _mm512_cvtepi32_ps(e);
  __m512 z = _mm512_mul_ps(f, f);
  __m512 y = _mm512_set1_ps(7.0376836292e-2f);
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(-1.1514610310e-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(1.1676998740e-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(-1.2420140846e-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(1.4249322787e-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(-1.6668057665e-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(2.0000714765e-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(-2.4999993993e-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(3.3333331174e-1f));
  y = _mm512_mul_ps(_mm512_mul_ps(y, f), z);
  y = _mm512_fmadd_ps(ef, _mm512_set1_ps(-2.12194440e-4f), y);
  y = _mm512_fnmadd_ps(_mm512_set1_ps(0.5f), z, y);
  __m512 res = _mm512_fmadd_ps(ef, _mm512_set1_ps(0.693359375f), _mm512_add_ps(f, y));
  const __m512 zero = _mm512_setzero_ps();
  res = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, zero, _CMP_EQ_OQ), res, _mm512_set1_ps(-INFINITY));
  res = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ), res, x);
  res = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, zero, _CMP_NGE_UQ), res, _mm512_set1_ps(NAN));  // x < 0, NaN
  return res;
}
#endif

#elif CW_SIMD == 1
// ------------------------------------------------------------------------------------------------------ AVX2 + FMA
#define CW_FN(name) name##_avx2
#define CW_T __attribute__((target("avx2,fma,f16c")))
#define VW 8
#define vf __m256
#define CW_MR 4  // 4 rows x 2 vectors: 8 of the 16 ymm registers accumulate
#define CW_NV 2
#ifndef CW_SIMD_DONE_1
#define CW_SIMD_DONE_1
CW_T CW_INLINE __m256i cw_lanes_below_avx2(int64_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
CW_T CW_INLINE __m256 vload_avx2(const float* p) { return _mm256_loadu_ps(p); }
CW_T CW_INLINE void vstore_avx2(float* p, __m256 x) { _mm256_storeu_ps(p, x); }
CW_T CW_INLINE __m256 vldf_avx2(const float* p, int64_t r, float fill) {
  if (r >= 8) return _mm256_loadu_ps(p);
  __m256i m = cw_lanes_below_avx2(r);
  return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
CW_T CW_INLINE __m256 vld_avx2(const float* p, int64_t r) {
  if (r >= 8) return _mm256_loadu_ps(p);
  return _mm256_maskload_ps(p, cw_lanes_below_avx2(r));
}
CW_T CW_INLINE void vst_avx2(float* p, __m256 x, int64_t r) {
  if (r >= 8) _mm256_storeu_ps(p, x);
  else _mm256_maskstore_ps(p, cw_lanes_below_avx2(r), x);
}
CW_T CW_INLINE __m256 vset1_avx2(float x) { return _mm256_set1_ps(x); }
CW_T CW_INLINE __m256 vzero_avx2(void) { return _mm256_setzero_ps(); }
CW_T CW_INLINE __m256 vadd_avx2(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
CW_T CW_INLINE __m256 vsub_avx2(__m256 a, __m256 b) { return _mm256_sub_ps(a, b); }
CW_T CW_INLINE __m256 vmul_avx2(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
CW_T CW_INLINE __m256 vdiv_avx2(__m256 a, __m256 b) { return _mm256_div_ps(a, b); }
CW_T CW_INLINE __m256 vfma_avx2(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
CW_T CW_INLINE __m256 vfnma_avx2(__m256 a, __m256 b, __m256 c) { return _mm256_fnmadd_ps(a, b, c); }
CW_T CW_INLINE __m256 vmin_avx2(__m256 a, __m256 b) { return _mm256_min_ps(a, b); }
CW_T CW_INLINE __m256 vmax_avx2(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
CW_T CW_INLINE __m256 vsqrt_avx2(__m256 a) { return _mm256_sqrt_ps(a); }
CW_T CW_INLINE __m256 vabs_avx2(__m256 a) {
  return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}
CW_T CW_INLINE float vhsum_avx2(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
CW_T CW_INLINE float vhmax_avx2(__m256 a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
CW_T CW_INLINE __m256 vsel_nz_avx2(__m256 c, __m256 a, __m256 b) {
  return _mm256_blendv_ps(b, a, _mm256_cmp_ps(c, _mm256_setzero_ps(), _CMP_NEQ_UQ));
}
CW_T CW_INLINE __m256 vhalf_avx2(const void* p) {
  short h;
  memcpy(&h, p, 2);
  return _mm256_cvtph_ps(_mm_set1_epi16(h));
}
CW_T CW_INLINE __m256 vld_i8_avx2(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p)));
}
CW_T CW_INLINE __m256 vld_bf16_avx2(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
}
CW_T CW_INLINE void vtranspose_avx2(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) {
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x20);
    r[4 + i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x31);
  }
}
CW_T CW_INLINE __m256 vexp_avx2(__m256 x) {
  const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);  // flushed to 0, as for AVX-512
  x = _mm256_min_ps(_mm256_set1_ps(88.7228394f), _mm256_max_ps(_mm256_set1_ps(-87.0f), x));
  // n = round(x / ln2) by the 1.5 2^23 shifter: t's low mantissa bits hold n + 0x400000
  const __m256 shifter = _mm256_set1_ps(12582912.0f);
  __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), shifter);
  __m256 fn = _mm256_sub_ps(t, shifter);
  __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(CW_EXP_C5);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CW_EXP_C4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CW_EXP_C3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CW_EXP_C2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CW_EXP_C1));
  __m256 y = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  __m256i n = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(shifter));
  // n in [-126, 128]: split so that 2^128 (inf as a float) is never formed
  __m256i n1 = _mm256_srai_epi32(n, 1);
  __m256i n2 = _mm256_sub_epi32(n, n1);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  return _mm256_andnot_ps(tiny, _mm256_mul_ps(_mm256_mul_ps(y, s1), s2));
}
CW_T CW_INLINE __m256 vlog_avx2(__m256 x) {
  __m256i xi = _mm256_castps_si256(x);
  __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(xi, 23), _mm256_set1_epi32(127));
  __m256 m = _mm256_castsi256_ps(
      _mm256_or_si256(_mm256_and_si256(xi, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f800000)));
  __m256 big = _mm256_cmp_ps(m, _mm256_set1_ps(1.41421356f), _CMP_GT_OQ);
  m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
  e = _mm256_sub_epi32(e, _mm256_castps_si256(big));  // the mask is -1 where big
  __m256 f = _mm256_sub_ps(m, _mm256_set1_ps(1.0f));
  __m256 ef = _mm256_cvtepi32_ps(e);
  __m256 z = _mm256_mul_ps(f, f);
  __m256 y = _mm256_set1_ps(7.0376836292e-2f);
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(-1.1514610310e-1f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(1.1676998740e-1f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(-1.2420140846e-1f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(1.4249322787e-1f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(-1.6668057665e-1f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(2.0000714765e-1f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(-2.4999993993e-1f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(3.3333331174e-1f));
  y = _mm256_mul_ps(_mm256_mul_ps(y, f), z);
  y = _mm256_fmadd_ps(ef, _mm256_set1_ps(-2.12194440e-4f), y);
  y = _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), z, y);
  __m256 res = _mm256_fmadd_ps(ef, _mm256_set1_ps(0.693359375f), _mm256_add_ps(f, y));
  const __m256 zero = _mm256_setzero_ps();
  res = _mm256_blendv_ps(res, _mm256_set1_ps(-INFINITY), _mm256_cmp_ps(x, zero, _CMP_EQ_OQ));
  res = _mm256_blendv_ps(res, x, _mm256_cmp_ps(x, _mm256_set1_ps(INFINITY), _CMP_EQ_OQ));
  res = _mm256_blendv_ps(res, _mm256_set1_ps(NAN), _mm256_cmp_ps(x, zero, _CMP_NGE_UQ));
  return res;
}
#endif

#elif CW_SIMD == 3
// ------------------------------------------------------------------------------------------------------------- NEON
#define CW_FN(name) name##_neon
#define CW_T
#define VW 4
#define vf float32x4_t
#define CW_MR 4  // attention micro-tile: 4 rows x 4 vectors = 16 of the 32 q registers accumulate
#define CW_NV 4
#ifndef CW_SIMD_DONE_3
#define CW_SIMD_DONE_3
CW_INLINE float32x4_t vload_neon(const float* p) { return vld1q_f32(p); }
CW_INLINE void vstore_neon(float* p, float32x4_t x) { vst1q_f32(p, x); }
// NEON has no masked loads: a partial vector goes through a small buffer (tails only)
CW_INLINE float32x4_t vldf_neon(const float* p, int64_t r, float fill) {
  if (r >= 4) return vld1q_f32(p);
  float t[4] = {fill, fill, fill, fill};
  for (int64_t i = 0; i < r; i++) t[i] = p[i];
  return vld1q_f32(t);
}
CW_INLINE float32x4_t vld_neon(const float* p, int64_t r) { return vldf_neon(p, r, 0.0f); }
CW_INLINE void vst_neon(float* p, float32x4_t x, int64_t r) {
  if (r >= 4) {
    vst1q_f32(p, x);
    return;
  }
  float t[4];
  vst1q_f32(t, x);
  for (int64_t i = 0; i < r; i++) p[i] = t[i];
}
CW_INLINE float32x4_t vset1_neon(float x) { return vdupq_n_f32(x); }
CW_INLINE float32x4_t vzero_neon(void) { return vdupq_n_f32(0.0f); }
CW_INLINE float32x4_t vadd_neon(float32x4_t a, float32x4_t b) { return vaddq_f32(a, b); }
CW_INLINE float32x4_t vsub_neon(float32x4_t a, float32x4_t b) { return vsubq_f32(a, b); }
CW_INLINE float32x4_t vmul_neon(float32x4_t a, float32x4_t b) { return vmulq_f32(a, b); }
CW_INLINE float32x4_t vdiv_neon(float32x4_t a, float32x4_t b) { return vdivq_f32(a, b); }
CW_INLINE float32x4_t vfma_neon(float32x4_t a, float32x4_t b, float32x4_t c) { return vfmaq_f32(c, a, b); }   // a b + c
CW_INLINE float32x4_t vfnma_neon(float32x4_t a, float32x4_t b, float32x4_t c) { return vfmsq_f32(c, a, b); }  // c - a b
CW_INLINE float32x4_t vmin_neon(float32x4_t a, float32x4_t b) { return vbslq_f32(vcltq_f32(a, b), a, b); }
CW_INLINE float32x4_t vmax_neon(float32x4_t a, float32x4_t b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
CW_INLINE float32x4_t vsqrt_neon(float32x4_t a) { return vsqrtq_f32(a); }
CW_INLINE float32x4_t vabs_neon(float32x4_t a) { return vabsq_f32(a); }
CW_INLINE float vhsum_neon(float32x4_t a) { return vaddvq_f32(a); }
CW_INLINE float vhmax_neon(float32x4_t a) { return vmaxvq_f32(a); }
// c != 0 ? a : b (NaN counts as nonzero)
CW_INLINE float32x4_t vsel_nz_neon(float32x4_t c, float32x4_t a, float32x4_t b) {
  return vbslq_f32(vceqq_f32(c, vdupq_n_f32(0.0f)), b, a);
}
CW_INLINE float32x4_t vhalf_neon(const void* p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h)));  // four copies of h, converted
}
CW_INLINE float32x4_t vld_i8_neon(const int8_t* p) {
  int32_t w;
  memcpy(&w, p, 4);
  int16x8_t s = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(w)));
  return vcvtq_f32_s32(vmovl_s16(vget_low_s16(s)));
}
CW_INLINE float32x4_t vld_bf16_neon(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
CW_INLINE void vtranspose_neon(float32x4_t r[4]) {
  float32x4x2_t t01 = vtrnq_f32(r[0], r[1]), t23 = vtrnq_f32(r[2], r[3]);  // (a0 b0 a2 b2), (a1 b1 a3 b3), ...
  r[0] = vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0]));
  r[1] = vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1]));
  r[2] = vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0]));
  r[3] = vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1]));
}
CW_INLINE float32x4_t vexp_neon(float32x4_t x) {
  const uint32x4_t tiny = vcltq_f32(x, vdupq_n_f32(-87.0f));  // flushed to 0, as for AVX-512
  x = vmin_neon(vdupq_n_f32(88.7228394f), vmax_neon(vdupq_n_f32(-87.0f), x));
  const float32x4_t shifter = vdupq_n_f32(12582912.0f);
  float32x4_t t = vfmaq_f32(shifter, x, vdupq_n_f32(1.44269504088896341f));
  float32x4_t fn = vsubq_f32(t, shifter);
  float32x4_t r = vfmsq_f32(x, fn, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, fn, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(CW_EXP_C5);
  p = vfmaq_f32(vdupq_n_f32(CW_EXP_C4), p, r);
  p = vfmaq_f32(vdupq_n_f32(CW_EXP_C3), p, r);
  p = vfmaq_f32(vdupq_n_f32(CW_EXP_C2), p, r);
  p = vfmaq_f32(vdupq_n_f32(CW_EXP_C1), p, r);
  float32x4_t y = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  int32x4_t n = vsubq_s32(vreinterpretq_s32_f32(t), vreinterpretq_s32_f32(shifter));
  int32x4_t n1 = vshrq_n_s32(n, 1), n2 = vsubq_s32(n, n1);
  float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, vdupq_n_s32(127)), 23));
  float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, vdupq_n_s32(127)), 23));
  return vbslq_f32(tiny, vdupq_n_f32(0.0f), vmulq_f32(vmulq_f32(y, s1), s2));
}
CW_INLINE float32x4_t vlog_neon(float32x4_t x) {
  uint32x4_t xi = vreinterpretq_u32_f32(x);
  int32x4_t e = vsubq_s32(vreinterpretq_s32_u32(vshrq_n_u32(xi, 23)), vdupq_n_s32(127));
  float32x4_t m = vreinterpretq_f32_u32(vorrq_u32(vandq_u32(xi, vdupq_n_u32(0x007fffff)), vdupq_n_u32(0x3f800000)));
  uint32x4_t big = vcgtq_f32(m, vdupq_n_f32(1.41421356f));
  m = vbslq_f32(big, vmulq_f32(m, vdupq_n_f32(0.5f)), m);
  e = vsubq_s32(e, vreinterpretq_s32_u32(big));  // the mask is -1 where big
  float32x4_t f = vsubq_f32(m, vdupq_n_f32(1.0f));
  float32x4_t ef = vcvtq_f32_s32(e);
  float32x4_t z = vmulq_f32(f, f);
  float32x4_t y = vdupq_n_f32(7.0376836292e-2f);
  y = vfmaq_f32(vdupq_n_f32(-1.1514610310e-1f), y, f);
  y = vfmaq_f32(vdupq_n_f32(1.1676998740e-1f), y, f);
  y = vfmaq_f32(vdupq_n_f32(-1.2420140846e-1f), y, f);
  y = vfmaq_f32(vdupq_n_f32(1.4249322787e-1f), y, f);
  y = vfmaq_f32(vdupq_n_f32(-1.6668057665e-1f), y, f);
  y = vfmaq_f32(vdupq_n_f32(2.0000714765e-1f), y, f);
  y = vfmaq_f32(vdupq_n_f32(-2.4999993993e-1f), y, f);
  y = vfmaq_f32(vdupq_n_f32(3.3333331174e-1f), y, f);
  y = vmulq_f32(vmulq_f32(y, f), z);
  y = vfmaq_f32(y, ef, vdupq_n_f32(-2.12194440e-4f));
  y = vfmsq_f32(y, vdupq_n_f32(0.5f), z);
  float32x4_t res = vfmaq_f32(vaddq_f32(f, y), ef, vdupq_n_f32(0.693359375f));
  const float32x4_t zero = vdupq_n_f32(0.0f);
  res = vbslq_f32(vceqq_f32(x, zero), vdupq_n_f32(-INFINITY), res);
  res = vbslq_f32(vceqq_f32(x, vdupq_n_f32(INFINITY)), x, res);
  res = vbslq_f32(vmvnq_u32(vcgeq_f32(x, zero)), vdupq_n_f32(NAN), res);  // x < 0, NaN
  return res;
}
#endif

#else
// ----------------------------------------------------------------------------------------------------------- scalar
#define CW_FN(name) name##_scalar
#define CW_T
#define VW 1
#define vf float
#define CW_MR 4
#define CW_NV 4
#ifndef CW_SIMD_DONE_0
#define CW_SIMD_DONE_0
CW_INLINE float vload_scalar(const float* p) { return *p; }
CW_INLINE void vstore_scalar(float* p, float x) { *p = x; }
CW_INLINE float vldf_scalar(const float* p, int64_t r, float fill) { return r >= 1 ? *p : fill; }
CW_INLINE float vld_scalar(const float* p, int64_t r) { return r >= 1 ? *p : 0.0f; }
CW_INLINE void vst_scalar(float* p, float x, int64_t r) {
  if (r >= 1) *p = x;
}
CW_INLINE float vset1_scalar(float x) { return x; }
CW_INLINE float vzero_scalar(void) { return 0.0f; }
CW_INLINE float vadd_scalar(float a, float b) { return a + b; }
CW_INLINE float vsub_scalar(float a, float b) { return a - b; }
CW_INLINE float vmul_scalar(float a, float b) { return a * b; }
CW_INLINE float vdiv_scalar(float a, float b) { return a / b; }
CW_INLINE float vfma_scalar(float a, float b, float c) { return a * b + c; }
CW_INLINE float vfnma_scalar(float a, float b, float c) { return c - a * b; }
CW_INLINE float vmin_scalar(float a, float b) { return a < b ? a : b; }
CW_INLINE float vmax_scalar(float a, float b) { return a > b ? a : b; }
CW_INLINE float vsqrt_scalar(float a) { return sqrtf(a); }
CW_INLINE float vabs_scalar(float a) { return fabsf(a); }
CW_INLINE float vhsum_scalar(float a) { return a; }
CW_INLINE float vhmax_scalar(float a) { return a; }
CW_INLINE float vsel_nz_scalar(float c, float a, float b) { return c != 0.0f ? a : b; }
CW_INLINE float vhalf_scalar(const void* p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return cw_f16_to_f32(h);
}
CW_INLINE float vld_i8_scalar(const int8_t* p) { return (float)*p; }
CW_INLINE float vld_bf16_scalar(const uint16_t* p) {
  union { uint32_t u; float f; } w = {(uint32_t)*p << 16};
  return w.f;
}
CW_INLINE void vtranspose_scalar(float r[1]) { (void)r; }
CW_INLINE float vexp_scalar(float x) { return expf(x); }
CW_INLINE float vlog_scalar(float x) { return logf(x); }
#endif
#endif

// ---- built from the above, the same at every level
#if CW_SIMD == 2 && !defined(CW_SIMD_DERIVED_2) || CW_SIMD == 1 && !defined(CW_SIMD_DERIVED_1) || \
    CW_SIMD == 3 && !defined(CW_SIMD_DERIVED_3) || CW_SIMD == 0 && !defined(CW_SIMD_DERIVED_0)
#if CW_SIMD == 2
#define CW_SIMD_DERIVED_2
#elif CW_SIMD == 1
#define CW_SIMD_DERIVED_1
#elif CW_SIMD == 3
#define CW_SIMD_DERIVED_3
#else
#define CW_SIMD_DERIVED_0
#endif
// 1 / (1 + e^-x): e^-x overflows to inf for x < -88 and the result is then 0, as it should be
CW_T CW_INLINE vf vsigmoid(vf x) {
  const vf one = vset1(1.0f);
  return vdiv(one, vadd(one, vexp(vsub(vzero(), x))));
}
// tanh x = 1 - 2 / (e^2x + 1): exact limits +-1; absolute error a few 1e-8 near 0, where only absolute error matters
// to gelu (its tanh is added to 1)
CW_T CW_INLINE vf vtanh(vf x) {
  const vf one = vset1(1.0f);
  return vsub(one, vdiv(vset1(2.0f), vadd(vexp(vadd(x, x)), one)));
}
// log sigmoid(a) = min(a, 0) - log1p(e^-|a|); log1p(y) = log(u) y / (u - 1), u = 1 + y (Goldberg 1991, "What every
// computer scientist should know about floating-point arithmetic", Theorem 4), and y itself when u rounds to 1
CW_T CW_INLINE vf vlog_sigmoid(vf a) {
  const vf one = vset1(1.0f);
  vf y = vexp(vsub(vzero(), vabs(a)));
  vf u = vadd(one, y);
  vf d = vsub(u, one);
  vf l1p = vsel_nz(d, vmul(vlog(u), vdiv(y, d)), y);
  return vsub(vmin(a, vzero()), l1p);
}
#endif
