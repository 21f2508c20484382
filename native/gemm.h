// Internal to the GEMM files (gemm.c, gemm_avx512.c, gemm_avx2.c): one kernel set per dispatch level.
//
// The blocked algorithm is that of GotoBLAS/BLIS (Goto & van de Geijn, "Anatomy of high-performance matrix
// multiplication", ACM TOMS 34(3), 2008; Van Zee & van de Geijn, "BLIS", ACM TOMS 41(3), 2015): op(B) is packed into
// KC x NR micro-panels, op(A) into MR x KC micro-panels (alpha folded in), and a register-tiled microkernel computes
// an MR x NR tile of C from one of each. Packed layouts: A panel element (r, p) at p*MR + r; B panel (p, c) at p*NR + c.
#pragma once
#include <stdint.h>

// An operand in row-major storage: element (i, p) of op(X) is X[i*ld + p], or X[p*ld + i] when trans.
// Low-precision weights (qgemm.c): dtype CW_DT_BF16 or CW_DT_Q8_0, x unused, raw the rows of W (N, K) with ld bytes
// from one row to the next, always trans (op(B) = W^T); only the packer of that dtype reads them.
enum { CW_DT_F32 = 0, CW_DT_BF16 = 1, CW_DT_Q8_0 = 2 };
typedef struct {
  const float* x;
  int64_t ld;
  int trans;
  int dtype;
  const void* raw;
} cw_operand;

// c (MR x NR, row stride ldc) = [c +] a-panel @ b-panel over kc steps.
typedef void (*cw_ukr_fn)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int accumulate);
// The same with B unpacked: b points at op(B) stored (K, N) itself, row stride ldb (NR columns are read per row).
typedef void (*cw_ukr_ldb_fn)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                              int accumulate);
// Packs rows [i0, i0+m) x columns [p0, p0+kc) of op(A), times alpha, into ceil(m/MR) panels (zero padded).
typedef void (*cw_pack_a_fn)(float* dst, cw_operand A, int64_t i0, int64_t m, int64_t p0, int64_t kc, float alpha, int mr);
// Packs rows [p0, p0+kc) x columns [j0, j0+n) of op(B) into ceil(n/NR) panels (zero padded).
typedef void (*cw_pack_b_fn)(float* dst, cw_operand B, int64_t p0, int64_t kc, int64_t j0, int64_t n, int nr);
// Decode-shaped products (M <= 4 rows): c[i, j] = [c[i, j] +] sum_p a[i*K + p] * op(B)[p, j] for j in [j0, j1).
// a is dense (M, K) with alpha folded in; B is streamed once.
typedef void (*cw_small_m_fn)(float* c, int64_t ldc, const float* a, cw_operand B, int64_t M, int64_t K, int64_t j0,
                              int64_t j1, int accumulate);

typedef struct {
  const char* name;
  int mr, nr;
  int64_t mc, kc, nc;  // cache blocking (upper bounds; the driver balances the blocks)
  // Micro-panel loop order inside an (A block, B block) pair: 0 = BLIS (the B micro-panel (kc x nr) stays in L1
  // while A micro-panels stream from the A block in L2); 1 = the A micro-panel (mr x kc) stays while B micro-panels
  // stream from the B block (kc x nc) in L2.
  int a_resident;
  cw_ukr_fn ukr;
  cw_pack_a_fn pack_a;
  cw_pack_b_fn pack_b;
  cw_small_m_fn small_m;
  cw_ukr_ldb_fn ukr_ldb;  // may be NULL (then B is always packed)
  // 0: panels of floats, as above. 1: panels of bf16 K pairs for vdpbf16ps (gemm_bf16.c): A panel pair q of row r at
  // 32-bit element q*MR + r, B panel pair q of column c at q*NR + c, each element (op(X)[., 2q], op(X)[., 2q+1]) in
  // its low and high half, the last pair of an odd kc padded with 0. A panel then takes MR * ceil(kc/2) 32-bit
  // elements (panel_k below), the packers round to bf16, and the driver takes neither decode-shaped path nor B in place.
  int bf16;
} cw_gemm_kernel;

// The 32-bit elements per row of a packed panel over kc steps (see cw_gemm_kernel.bf16).
static inline int64_t cw_panel_k(const cw_gemm_kernel* k, int64_t kc) { return k->bf16 ? (kc + 1) / 2 : kc; }

// C (M, N) = A (M, K) @ op(B) with B low-precision weights (see cw_operand) packed by `pack` (which dequantizes into
// the float panels the level's microkernel reads): the blocked path of gemm.c, threaded as for float32, with K blocks
// a multiple of 32 (whole q8_0 blocks). For M above the decode sizes; qgemm.c streams smaller M itself.
int cw_gemm_lowp(float* C, const float* A, cw_operand B, cw_pack_b_fn pack, int64_t M, int64_t N, int64_t K);

// C = alpha * bf16(op(A)) @ bf16(op(B)) + beta * C with float32 accumulation (see gemm_bf16.c): cw_gemm's arguments,
// on the AVX512_BF16 kernel; the caller checks cw_cpu_has_bf16() first. Returns 0, or -1 when scratch memory ran out.
int cw_gemm_bf16(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, int transA, int transB,
                 float alpha, float beta, int64_t batch, int64_t strideA, int64_t strideB, int64_t strideC);

void cw_pack_a_generic(float* dst, cw_operand A, int64_t i0, int64_t m, int64_t p0, int64_t kc, float alpha, int mr);
void cw_pack_b_generic(float* dst, cw_operand B, int64_t p0, int64_t kc, int64_t j0, int64_t n, int nr);

#if defined(__x86_64__)
extern const cw_gemm_kernel cw_gemm_kernel_avx512;
extern const cw_gemm_kernel cw_gemm_kernel_avx2;
extern const cw_gemm_kernel cw_gemm_kernel_avx512_bf16;
#elif defined(__aarch64__)
extern const cw_gemm_kernel cw_gemm_kernel_neon;
#endif
