// GEMM: C = alpha * op(A) @ op(B) + beta * C, batched with element strides (see src/tensor/backend.ts).
//
// Boundary: this file holds the driver (blocking loops, threading, the decode-shaped paths, batching), the scalar
// reference kernels, and the Node-API glue `gemm` and `gemmMixedBf16`. The SIMD microkernels and packers are in
// gemm_avx512.c, gemm_avx2.c and gemm_neon.c (chosen at run time by cw_cpu_level()); gemm.h describes the packed
// layouts. The bf16 mixed-precision product (cw_gemm_bf16: inputs rounded to bf16 while packed, float32 sums) runs
// this same driver with the kernel set of gemm_bf16.c, on the blocked path for every shape (its packers do the rounding).
//
// Paths: M <= 4 (decode) streams op(B) once with the few rows of op(A) in L1, no packing; N <= 4 (a scalar head)
// does the same on the transposed product; small outputs over a long K (M N <= 32768, K >= 1024: weight gradients)
// split K in two halves (gemm_ksplit); everything else runs the blocked GotoBLAS/BLIS algorithm, reading a narrow
// B in place instead of packing it for parts up to 128 x 128 (B_IN_PLACE).
// Threading: large products with M >= N >= 256 (the training GEMMs of the small and medium models) share one packed
// B block between the threads and hand out MC-row blocks of A dynamically (gemm_shared), so a thread slowed by the
// rest of a shared machine takes fewer blocks. Other products are split into parts (one to four per thread, claimed
// dynamically), along M (in whole MR panels) when M >= N, else along N (in whole NR panels); each part runs the serial
// blocked algorithm with its own packed buffers (B or A is packed once per part, a few percent of the flops for our
// shapes, in exchange for no barrier). Products under SERIAL_FLOPS run on the calling thread; batches of small
// products are split over the batch instead.
// beta: 0 overwrites (the first K block stores instead of adding, so NaN in C is never read), 1 accumulates, any
// other value scales C first. alpha 0 reads neither A nor B (BLAS semantics).
// Tuning builds (-DCW_GEMM_TUNE) read CW_GEMM_TUNE=mc,kc,nc,aResident to override the blocking at run time.
#include "common.h"
#include "gemm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERIAL_FLOPS (3.0e6)   // below this a product runs on one thread (dispatch costs a few microseconds)
#define SMALL_M 4              // M <= SMALL_M: decode-shaped, B is streamed once (N <= SMALL_M: the same, transposed)

// ---- scalar reference kernels (4 x 8 tile)

static void ukr_scalar(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int accumulate) {
  float acc[4][8] = {{0}};
  for (int64_t p = 0; p < kc; p++, a += 4, b += 8)
    for (int r = 0; r < 4; r++)
      for (int j = 0; j < 8; j++) acc[r][j] += a[r] * b[j];
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < 8; j++) c[r * ldc + j] = accumulate ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

void cw_pack_a_generic(float* dst, cw_operand A, int64_t i0, int64_t m, int64_t p0, int64_t kc, float alpha, int mr) {
  for (int64_t ib = 0; ib < m; ib += mr, dst += kc * mr) {
    int rows = (int)(m - ib < mr ? m - ib : mr);
    if (rows < mr) memset(dst, 0, sizeof(float) * kc * mr);
    if (A.trans) {  // A stored (K, M): a row of A holds MR consecutive panel entries
      for (int64_t p = 0; p < kc; p++) {
        const float* src = A.x + (p0 + p) * A.ld + i0 + ib;
        for (int r = 0; r < rows; r++) dst[p * mr + r] = alpha * src[r];
      }
    } else {
      for (int r = 0; r < rows; r++) {
        const float* src = A.x + (i0 + ib + r) * A.ld + p0;
        for (int64_t p = 0; p < kc; p++) dst[p * mr + r] = alpha * src[p];
      }
    }
  }
}

void cw_pack_b_generic(float* dst, cw_operand B, int64_t p0, int64_t kc, int64_t j0, int64_t n, int nr) {
  for (int64_t jb = 0; jb < n; jb += nr, dst += kc * nr) {
    int cols = (int)(n - jb < nr ? n - jb : nr);
    if (cols < nr) memset(dst, 0, sizeof(float) * kc * nr);
    if (B.trans) {  // B stored (N, K)
      for (int c = 0; c < cols; c++) {
        const float* src = B.x + (j0 + jb + c) * B.ld + p0;
        for (int64_t p = 0; p < kc; p++) dst[p * nr + c] = src[p];
      }
    } else {
      for (int64_t p = 0; p < kc; p++) memcpy(dst + p * nr, B.x + (p0 + p) * B.ld + j0 + jb, sizeof(float) * cols);
    }
  }
}

static void small_m_scalar(float* c, int64_t ldc, const float* a, cw_operand B, int64_t M, int64_t K, int64_t j0,
                           int64_t j1, int accumulate) {
  for (int64_t i = 0; i < M; i++) {
    float* ci = c + i * ldc;
    const float* ai = a + i * K;
    if (B.trans) {
      for (int64_t j = j0; j < j1; j++) {
        const float* bj = B.x + j * B.ld;
        float s = 0;
        for (int64_t p = 0; p < K; p++) s += ai[p] * bj[p];
        ci[j] = accumulate ? ci[j] + s : s;
      }
    } else {
      if (!accumulate)
        for (int64_t j = j0; j < j1; j++) ci[j] = 0;
      for (int64_t p = 0; p < K; p++) {
        const float* bp = B.x + p * B.ld;
        float ap = ai[p];
        for (int64_t j = j0; j < j1; j++) ci[j] += ap * bp[j];
      }
    }
  }
}

static const cw_gemm_kernel kernel_scalar = {
    "scalar", 4, 8, 128, 256, 2048, 0, ukr_scalar, cw_pack_a_generic, cw_pack_b_generic, small_m_scalar, NULL,
};

#ifdef CW_GEMM_TUNE  // tuning builds only: CW_GEMM_TUNE=mc,kc,nc overrides the blocking of the chosen kernel
#include <stdio.h>
static const cw_gemm_kernel* tune(const cw_gemm_kernel* k) {
  static cw_gemm_kernel t;
  const char* e = getenv("CW_GEMM_TUNE");
  t = *k;
  if (e) sscanf(e, "%ld,%ld,%ld,%d", &t.mc, &t.kc, &t.nc, &t.a_resident);
  return &t;
}
#define pick_kernel() tune(pick_kernel_())
static const cw_gemm_kernel* pick_kernel_(void) {
#else
static const cw_gemm_kernel* pick_kernel(void) {
#endif
#if defined(__x86_64__)
  int level = cw_cpu_level();
  if (level >= CW_AVX512) return &cw_gemm_kernel_avx512;
  if (level >= CW_AVX2) return &cw_gemm_kernel_avx2;
#elif defined(__aarch64__)
  if (cw_cpu_level() >= CW_NEON) return &cw_gemm_kernel_neon;
#endif
  return &kernel_scalar;
}

// ---- per-thread packing buffers (grown on demand, kept for the life of the thread)

static __thread float* t_buf;
static __thread size_t t_buf_len;

static float* thread_buffer(size_t floats) {
  if (cw_test_fail_alloc()) return NULL;
  if (floats > t_buf_len) {
    free(t_buf);
    size_t bytes = (floats * sizeof(float) + 4095) & ~(size_t)4095;
    void* p = NULL;
    if (posix_memalign(&p, 4096, bytes + 256) != 0) p = NULL;  // + slack: vector packers may store a little past
    t_buf = p;
    t_buf_len = p ? floats : 0;
  }
  return t_buf;
}

// ---- the blocked algorithm on one part of C

typedef struct {
  const cw_gemm_kernel* k;
  float* C;
  int64_t ldc;
  cw_operand A, B;
  int64_t M, N, K;
  float alpha, beta;
  cw_pack_b_fn pack_b;  // k->pack_b, or a dequantizing packer for low-precision B (cw_gemm_lowp)
  int64_t kalign;       // K blocks are a multiple of this (32 for low-precision B: whole q8_0 blocks)
  int* failed;  // set (by any thread) when scratch memory could not be had; the glue then throws
} gemm_problem;

// Out of memory for a packing buffer: note it and leave this part undone (C is then unspecified; the caller throws).
static void gemm_fail(const gemm_problem* g) { __atomic_store_n(g->failed, 1, __ATOMIC_RELAXED); }

static int64_t balanced_block(int64_t total, int64_t maxBlock, int64_t multiple) {
  int64_t blocks = (total + maxBlock - 1) / maxBlock;
  int64_t b = (total + blocks - 1) / blocks;
  return (b + multiple - 1) / multiple * multiple;
}

// One packed A block (mc x kc) times one packed B block (kc x nc) into C at (ic, jc): the micro-panel loops.
// bdirect non-NULL: B is read in place instead (bdirect = op(B) at (pc, jc), row stride ldb; nc a multiple of NR).
static void macro_kernel(const gemm_problem* g, const float* bufA, const float* bufB, const float* bdirect,
                         int64_t ldb, float* tile, int64_t ic, int64_t mc, int64_t jc, int64_t nc, int64_t kc,
                         int accumulate) {
  const cw_gemm_kernel* k = g->k;
  const int MR = k->mr, NR = k->nr, a_res = k->a_resident;
  const int64_t kp = cw_panel_k(k, kc);
  for (int64_t o = 0; o < (a_res ? mc : nc); o += (a_res ? MR : NR)) {
    for (int64_t q = 0; q < (a_res ? nc : mc); q += (a_res ? NR : MR)) {
      int64_t ir = a_res ? o : q, jr = a_res ? q : o;
      const float* ap = bufA + ir * kp;
      const float* bp = bufB + jr * kp;
      int rows = (int)(mc - ir < MR ? mc - ir : MR);
      int cols = (int)(nc - jr < NR ? nc - jr : NR);
      float* c = g->C + (ic + ir) * g->ldc + jc + jr;
      if (bdirect) {
        if (rows == MR) {
          k->ukr_ldb(kc, ap, bdirect + jr, ldb, c, g->ldc, accumulate);
        } else {
          k->ukr_ldb(kc, ap, bdirect + jr, ldb, tile, NR, 0);
          for (int r = 0; r < rows; r++)
            for (int j = 0; j < NR; j++)
              c[r * g->ldc + j] = accumulate ? c[r * g->ldc + j] + tile[r * NR + j] : tile[r * NR + j];
        }
      } else if (rows == MR && cols == NR) {
        k->ukr(kc, ap, bp, c, g->ldc, accumulate);
      } else {
        k->ukr(kc, ap, bp, tile, NR, 0);
        for (int r = 0; r < rows; r++)
          for (int j = 0; j < cols; j++)
            c[r * g->ldc + j] = accumulate ? c[r * g->ldc + j] + tile[r * NR + j] : tile[r * NR + j];
      }
    }
  }
}

// Reading B in place skips packing it: worth it when each packed B element would serve few A micro-panels (small M),
// where packing B is a visible share of the work (the weight gradients: M x N = 64..384 x 128 over K = 2048 tokens).
// Measured (CPU time, paired runs, 1 thread): +1..5% at 64 x 128 and 128 x 128 (K = 2048; small, but of the same
// sign in three runs), and 5..12% slower for parts of 196 x 128, 128 x 192 and up, where the packed, contiguous
// B panels stream better: hence the bound on the part.
#define B_IN_PLACE_MAX_MN (128 * 128)
#define B_IN_PLACE(k, g, M, N) \
  ((k)->ukr_ldb && !(g)->B.trans && (g)->N % (k)->nr == 0 && (N) % (k)->nr == 0 && (M) * (N) <= B_IN_PLACE_MAX_MN)

static void gemm_part(const gemm_problem* g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const cw_gemm_kernel* k = g->k;
  const int MR = k->mr, NR = k->nr;
  int64_t M = m1 - m0, N = n1 - n0;
  if (M <= 0 || N <= 0) return;
  int64_t KC = balanced_block(g->K, k->kc, g->kalign);
  int64_t MC = balanced_block(M, k->mc, MR);
  int64_t NC = balanced_block(N, k->nc, NR);
  float* bufB = thread_buffer((size_t)KC * NC + (size_t)KC * MC + (size_t)MR * NR + 64);
  if (!bufB) {
    gemm_fail(g);
    return;
  }
  float* bufA = bufB + (((size_t)KC * NC + 15) & ~(size_t)15);
  float* tile = bufA + (((size_t)KC * MC + 15) & ~(size_t)15);
  // B stored (K, N) with whole NR panels is read in place when the kernel can (B_IN_PLACE says when it pays).
  int direct = B_IN_PLACE(k, g, M, N);
  // GotoBLAS/BLIS order: the B block is packed once per (N block, K block), A blocks (mc x kc, in L2) inside it.
  for (int64_t jc = n0; jc < n1; jc += NC) {
    int64_t nc = n1 - jc < NC ? n1 - jc : NC;
    for (int64_t pc = 0; pc < g->K; pc += KC) {
      int64_t kc = g->K - pc < KC ? g->K - pc : KC;
      int accumulate = pc > 0 || g->beta != 0.0f;
      const float* bdirect = direct ? g->B.x + pc * g->B.ld + jc : NULL;
      if (!direct) g->pack_b(bufB, g->B, pc, kc, jc, nc, NR);
      for (int64_t ic = m0; ic < m1; ic += MC) {
        int64_t mc = m1 - ic < MC ? m1 - ic : MC;
        k->pack_a(bufA, g->A, ic, mc, pc, kc, g->alpha, MR);
        macro_kernel(g, bufA, bufB, bdirect, g->B.ld, tile, ic, mc, jc, nc, kc, accumulate);
      }
    }
  }
}

// Decode-shaped: pack the few rows of op(A) densely (alpha folded in), then stream B.
static void small_m_part(const gemm_problem* g, int64_t j0, int64_t j1) {
  float* a = thread_buffer((size_t)g->M * g->K + 16);
  if (!a) {
    gemm_fail(g);
    return;
  }
  for (int64_t i = 0; i < g->M; i++)
    for (int64_t p = 0; p < g->K; p++)
      a[i * g->K + p] = g->alpha * (g->A.trans ? g->A.x[p * g->A.ld + i] : g->A.x[i * g->A.ld + p]);
  g->k->small_m(g->C, g->ldc, a, g->B, g->M, g->K, j0, j1, g->beta != 0.0f);
}

// Few columns (N <= SMALL_M, e.g. a scalar head): C^T = op(B)^T op(A)^T is decode-shaped, so run the small-M
// kernel on the transposed problem for rows [j0, j1) of C into tmp (N, M), then add its transpose into C.
static void small_n_part(const gemm_problem* g, float* tmp, int64_t j0, int64_t j1) {
  float* a = thread_buffer((size_t)g->N * g->K + 16);  // op(B)^T, dense (N, K), alpha folded in
  if (!a) {
    gemm_fail(g);
    return;
  }
  for (int64_t i = 0; i < g->N; i++)
    for (int64_t p = 0; p < g->K; p++)
      a[i * g->K + p] = g->alpha * (g->B.trans ? g->B.x[i * g->B.ld + p] : g->B.x[p * g->B.ld + i]);
  cw_operand At = {g->A.x, g->A.ld, !g->A.trans};  // op(A)^T as the streamed operand
  g->k->small_m(tmp, g->M, a, At, g->N, g->K, j0, j1, 0);
  for (int64_t j = j0; j < j1; j++)
    for (int64_t i = 0; i < g->N; i++) {
      float* c = g->C + j * g->ldc + i;
      *c = g->beta != 0.0f ? *c + tmp[i * g->M + j] : tmp[i * g->M + j];
    }
}

// ---- shared packed B, M blocks claimed dynamically (the threaded path for large products split along M)
// The static split (part_range, below) gives each thread one fixed part; on a shared machine (two vCPUs whose physical cores are
// also busy with other work) one thread regularly runs 20-40% slower, and the other then idles at the end of every
// product (measured: 1.6-1.8 cores busy of 2 during a GEMM loop, with no steal time reported). Here, as in BLIS's
// multithreaded ic loop (Smith et al., IPDPS 2014, Section IV), the threads pack each B block (kc x nc) together into
// one shared buffer, then claim MC-row blocks of A one at a time, so the faster thread takes more of them; B is
// packed once instead of once per thread. Two pool dispatches (barriers) per B block. Each element of C sees the same
// K blocking as on one thread, so the results do not depend on the thread count or on which thread ran what.
typedef struct {
  const gemm_problem* g;
  float* bufB;           // the shared packed B block
  int64_t jc, nc, pc, kc, MC;
  int accumulate;
} shared_ctx;

static void shared_pack_range(void* vctx, int64_t b, int64_t e) {
  const shared_ctx* s = vctx;
  const int NR = s->g->k->nr;
  int64_t j0 = b * NR, j1 = e * NR < s->nc ? e * NR : s->nc;
  s->g->pack_b(s->bufB + j0 * cw_panel_k(s->g->k, s->kc), s->g->B, s->pc, s->kc, s->jc + j0, j1 - j0, NR);
}

static void shared_compute_range(void* vctx, int64_t b, int64_t e) {
  const shared_ctx* s = vctx;
  const gemm_problem* g = s->g;
  const cw_gemm_kernel* k = g->k;
  float* bufA = thread_buffer((size_t)s->kc * s->MC + (size_t)k->mr * k->nr + 64);
  if (!bufA) {
    gemm_fail(g);
    return;
  }
  float* tile = bufA + (((size_t)s->kc * s->MC + 15) & ~(size_t)15);
  for (int64_t ib = b; ib < e; ib++) {
    int64_t ic = ib * s->MC, mc = g->M - ic < s->MC ? g->M - ic : s->MC;
    k->pack_a(bufA, g->A, ic, mc, s->pc, s->kc, g->alpha, k->mr);
    macro_kernel(g, bufA, s->bufB, NULL, 0, tile, ic, mc, s->jc, s->nc, s->kc, s->accumulate);
  }
}

static __thread float* t_shared;
static __thread size_t t_shared_len;

static void gemm_shared(const gemm_problem* g, int threads) {
  const cw_gemm_kernel* k = g->k;
  const int MR = k->mr, NR = k->nr;
  int64_t KC = balanced_block(g->K, k->kc, g->kalign);
  int64_t NC = balanced_block(g->N, k->nc, NR);
  // about 8 blocks per thread (the caller, done with its blocks, then waits at most one block, an eighth of a share,
  // for a slower vCPU), at most the kernel's mc
  int64_t MC = (g->M / (8 * threads) + MR - 1) / MR * MR;
  if (MC > k->mc) MC = k->mc;
  if (MC < MR) MC = MR;
  size_t need = (size_t)KC * NC;
  if (need > t_shared_len || cw_test_fail_alloc()) {
    free(t_shared);
    void* p = NULL;
    if (cw_test_fail_alloc() || posix_memalign(&p, 4096, ((need * sizeof(float) + 4095) & ~(size_t)4095) + 256) != 0)
      p = NULL;
    t_shared = p;
    t_shared_len = p ? need : 0;
  }
  if (!t_shared) {
    gemm_fail(g);
    return;
  }
  shared_ctx s = {g, t_shared, 0, 0, 0, 0, MC, 0};
  int64_t mblocks = (g->M + MC - 1) / MC;
  for (s.jc = 0; s.jc < g->N; s.jc += NC) {
    s.nc = g->N - s.jc < NC ? g->N - s.jc : NC;
    for (s.pc = 0; s.pc < g->K; s.pc += KC) {
      s.kc = g->K - s.pc < KC ? g->K - s.pc : KC;
      s.accumulate = s.pc > 0 || g->beta != 0.0f;
      cw_parallel_for((s.nc + NR - 1) / NR, 1, shared_pack_range, &s);
      cw_parallel_for_chunks(mblocks, (int)mblocks, shared_compute_range, &s);
    }
  }
}

// Where the shared path applies: a product split along M on several threads whose parts would pack B (not read it
// in place), large enough that two barriers per B block are noise (each dispatch costs a few microseconds).
// Measured (whole training steps, old and new path alternating in one process, median of per-round ratios, 2 threads
// on the 2-vCPU machine): small preset 1.14x, 1.12x, 1.11x (three runs), medium 1.05x; isolated products (M, N, K) =
// (2048, 384, 1024) 1.25x, (8192, 384, 2048 tA) 1.05x, (2048, 2304, 768 tB) 0.95..1.0x. The tiny model's products
// with N = 128 (its lm-head dx and dW) ran 1.2x faster in isolation but not in its step (0.93..1.0x, within the
// noise of this machine), where each thread's half of C no longer stays in its own L2 across the K blocks: hence
// SHARED_MIN_N, which leaves the tiny model on the static split.
#define SHARED_MIN_FLOPS (5.0e8)
#define SHARED_MIN_N 256
static int use_shared(const gemm_problem* g, int threads) {
  if (threads <= 1 || g->M < g->N || g->N < SHARED_MIN_N || 2.0 * g->M * g->N * g->K < SHARED_MIN_FLOPS) return 0;
  const cw_gemm_kernel* k = g->k;
  const int64_t M = g->M / threads, N = g->N;  // (the macro reads (g)->N: the names must be M and N)
  return !B_IN_PLACE(k, g, M, N);
}

typedef struct {
  const gemm_problem* g;
  int splitM;       // split along M (else N)
  int64_t units;    // MR or NR panels (small-M path: 64-column groups; small-N path: 64-row groups)
  int64_t unit;
  int small;        // 1: decode-shaped (M <= SMALL_M), 2: few columns (N <= SMALL_M)
  float* tmp;       // small-N path: (N, M)
} part_ctx;

static void part_range(void* vctx, int64_t b, int64_t e) {
  const part_ctx* p = vctx;
  const gemm_problem* g = p->g;
  int64_t lo = b * p->unit, hi = e * p->unit;
  if (p->small == 1) {
    small_m_part(g, lo, hi < g->N ? hi : g->N);
  } else if (p->small == 2) {
    small_n_part(g, p->tmp, lo, hi < g->M ? hi : g->M);
  } else if (p->splitM) {
    gemm_part(g, lo, hi < g->M ? hi : g->M, 0, g->N);
  } else {
    gemm_part(g, 0, g->M, lo, hi < g->N ? hi : g->N);
  }
}

// Small outputs with a long K (the weight gradients dW += dY^T X: M x N = 64..384 x 128 over K = 2048 tokens): an
// M or N split would leave each thread a few panels (uneven in MR = 14 rows) and pack the whole of the other operand
// twice. Instead K is cut in two halves, always (whatever the thread count, so results do not depend on it): half 0
// runs into C with the caller's beta, half 1 into a scratch (M, N) buffer (beta 0), then C += scratch.
// Each half packs only its own slices of A and B. (Split-K, as in CUTLASS's "split-K" / BLIS's 4th-loop
// parallelism over k with a reduction: Smith et al., "Anatomy of high-performance many-threaded matrix
// multiplication", IPDPS 2014, Section IV.)
// Measured (CPU time, old and new addon alternating in one process, median of 9..41 pairs, 2 threads): +9..26% at
// 64 x 128 and +1..9% at 128 x 128 over K = 2048; neutral at 384 x 128 and 128 x 384; -8..10% at 2048 x 128
// (K = 8192) and 1152 x 384 (K = 4096), where the M split is already even: hence the bound on M N. With 1 thread
// the split is within the noise (+-5%).
#define KSPLIT_MIN_K 1024
#define KSPLIT_MAX_MN (128 * 256)
static int use_ksplit(const gemm_problem* g) {
  return g->B.dtype == CW_DT_F32 && g->K >= KSPLIT_MIN_K && g->M * g->N <= KSPLIT_MAX_MN;
}

typedef struct {
  const gemm_problem* g;
  int64_t kh;  // half 0 is K range [0, kh), half 1 [kh, K)
  float* tmp;  // (M, N) result of half 1
} ksplit_ctx;

static void ksplit_range(void* vctx, int64_t b, int64_t e) {
  const ksplit_ctx* x = vctx;
  for (int64_t t = b; t < e; t++) {
    gemm_problem h = *x->g;
    int64_t p0 = t ? x->kh : 0, p1 = t ? h.K : x->kh;
    h.K = p1 - p0;
    h.A.x += h.A.trans ? p0 * h.A.ld : p0;
    h.B.x += h.B.trans ? p0 : p0 * h.B.ld;
    if (t) {
      h.C = x->tmp;
      h.ldc = h.N;
      h.beta = 0.0f;
    }
    gemm_part(&h, 0, h.M, 0, h.N);
  }
}

static void gemm_ksplit(const gemm_problem* h, int threads) {
  ksplit_ctx x = {h, (h->K / 2 + 15) & ~(int64_t)15,
                  cw_test_fail_alloc() ? NULL : malloc(sizeof(float) * (size_t)h->M * h->N)};
  if (!x.tmp) {
    gemm_fail(h);
    return;
  }
  if (threads <= 1) ksplit_range(&x, 0, 2);
  else cw_parallel_for(2, 1, ksplit_range, &x);
  for (int64_t i = 0; i < h->M; i++) {
    float* c = h->C + i * h->ldc;
    const float* s = x.tmp + i * h->N;
    for (int64_t j = 0; j < h->N; j++) c[j] += s[j];
  }
  free(x.tmp);
}

static void gemm_one(const gemm_problem* g, int allowThreads) {
  if (g->M == 0 || g->N == 0) return;
  if (g->K == 0 || g->alpha == 0.0f) {  // BLAS: alpha 0 reads neither A nor B
    for (int64_t i = 0; i < g->M; i++)
      for (int64_t j = 0; j < g->N; j++) {
        float* c = g->C + i * g->ldc + j;
        *c = g->beta == 0.0f ? 0.0f : g->beta * *c;
      }
    return;
  }
  gemm_problem h = *g;
  if (g->beta != 0.0f && g->beta != 1.0f) {
    for (int64_t i = 0; i < g->M; i++)
      for (int64_t j = 0; j < g->N; j++) g->C[i * g->ldc + j] *= g->beta;
    h.beta = 1.0f;
  }
  double flops = 2.0 * g->M * g->N * g->K;
  int threads = allowThreads && flops >= SERIAL_FLOPS ? cw_num_threads() : 1;
  part_ctx ctx = {&h, 0, 0, 0, 0, NULL};
  if (g->M > SMALL_M && g->N > SMALL_M && use_ksplit(g)) {
    gemm_ksplit(&h, threads);
    return;
  }
  if (g->M > SMALL_M && g->N > SMALL_M && use_shared(&h, threads)) {
    gemm_shared(&h, threads);
    return;
  }
  // low-precision B is only readable by its packer, and bf16 products round in the packers: the blocked path alone
  const int lowp = g->B.dtype != CW_DT_F32 || g->k->bf16;
  if (g->M <= SMALL_M && !lowp) {
    ctx.small = 1;
    ctx.unit = 64;
    ctx.units = (g->N + 63) / 64;
  } else if (g->N <= SMALL_M && !lowp) {
    ctx.small = 2;
    ctx.unit = 64;
    ctx.units = (g->M + 63) / 64;
    ctx.tmp = cw_test_fail_alloc() ? NULL : malloc(sizeof(float) * (size_t)g->N * g->M);
    if (!ctx.tmp) {
    gemm_fail(g);
    return;
  }
  } else if (g->M >= g->N) {
    ctx.splitM = 1;
    ctx.unit = h.k->mr;
    ctx.units = (g->M + ctx.unit - 1) / ctx.unit;
  } else {
    ctx.unit = h.k->nr;
    ctx.units = (g->N + ctx.unit - 1) / ctx.unit;
  }
  if (threads <= 1) part_range(&ctx, 0, ctx.units);
  // Parts are claimed dynamically, so the faster thread takes more: up to 4 per thread while each keeps at least 512
  // rows (or columns) of C, since each part packs its own copy of the other operand; never fewer than the threads.
  else {
    int64_t extent = ctx.units * ctx.unit, parts = extent / 512;
    if (parts > 4 * threads) parts = 4 * threads;
    if (parts < threads) parts = threads;
    if (parts > ctx.units) parts = ctx.units;
    cw_parallel_for_chunks(ctx.units, (int)parts, part_range, &ctx);
  }
  free(ctx.tmp);
}

typedef struct {
  gemm_problem g;
  int64_t strideA, strideB, strideC;
} batch_ctx;

static void batch_range(void* vctx, int64_t b, int64_t e) {
  const batch_ctx* bc = vctx;
  for (int64_t i = b; i < e; i++) {
    gemm_problem g = bc->g;
    g.A.x += i * bc->strideA;
    g.B.x += i * bc->strideB;
    g.C += i * bc->strideC;
    gemm_one(&g, 0);
  }
}

// Returns 0, or -1 when scratch memory ran out (C is then unspecified).
static int gemm_batched(const cw_gemm_kernel* k, float* C, const float* A, const float* B, int64_t M, int64_t N,
                        int64_t K, int transA, int transB, float alpha, float beta, int64_t batch, int64_t strideA,
                        int64_t strideB, int64_t strideC) {
  int failed = 0;
  batch_ctx bc;
  bc.g.k = k;
  bc.g.C = C;
  bc.g.ldc = N;
  bc.g.A = (cw_operand){A, transA ? M : K, transA};
  bc.g.B = (cw_operand){B, transB ? K : N, transB};
  bc.g.M = M;
  bc.g.N = N;
  bc.g.K = K;
  bc.g.alpha = alpha;
  bc.g.beta = beta;
  bc.g.pack_b = bc.g.k->pack_b;
  bc.g.kalign = 4;
  bc.g.failed = &failed;
  bc.strideA = strideA;
  bc.strideB = strideB;
  bc.strideC = strideC;
  double flops = 2.0 * M * N * K;
  if (batch > 1 && strideC >= M * N && flops < 4 * SERIAL_FLOPS && cw_num_threads() > 1 && flops * batch >= SERIAL_FLOPS) {
    cw_parallel_for(batch, 1, batch_range, &bc);
  } else {
    for (int64_t i = 0; i < batch && !failed; i++) {
      gemm_problem g = bc.g;
      g.A.x += i * strideA;
      g.B.x += i * strideB;
      g.C += i * strideC;
      gemm_one(&g, 1);
    }
  }
  return __atomic_load_n(&failed, __ATOMIC_RELAXED) ? -1 : 0;
}

int cw_gemm(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, int transA, int transB,
            float alpha, float beta, int64_t batch, int64_t strideA, int64_t strideB, int64_t strideC) {
  return gemm_batched(pick_kernel(), C, A, B, M, N, K, transA, transB, alpha, beta, batch, strideA, strideB, strideC);
}

#if defined(__x86_64__)
int cw_gemm_bf16(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, int transA, int transB,
                 float alpha, float beta, int64_t batch, int64_t strideA, int64_t strideB, int64_t strideC) {
  return gemm_batched(&cw_gemm_kernel_avx512_bf16, C, A, B, M, N, K, transA, transB, alpha, beta, batch, strideA,
                      strideB, strideC);
}
#endif

// Returns 0, or -1 when scratch memory could not be had (C is then unspecified; the glue throws).
int cw_gemm_lowp(float* C, const float* A, cw_operand B, cw_pack_b_fn pack, int64_t M, int64_t N, int64_t K) {
  int failed = 0;
  gemm_problem g = {pick_kernel(), C, N, {A, K, 0, CW_DT_F32, NULL}, B, M, N, K, 1.0f, 0.0f, pack, 32, &failed};
  gemm_one(&g, 1);
  return __atomic_load_n(&failed, __ATOMIC_RELAXED) ? -1 : 0;
}

// ---- Node-API glue: gemm(C, A, B, M, N, K, transA, transB, alpha, beta, batch?, strideA?, strideB?, strideC?), and
// gemmMixedBf16 with the same arguments
// The same style as every other entry point (kernels_glue.c): sizes are integers in 0..2^46, the lengths each array
// needs are products that saturate (a saturated need fails the length check), and running out of scratch memory
// throws an Error with a hint instead of aborting the process.

#define GEMM_MAX_SIZE (INT64_C(1) << 46)

static int64_t sat_mul(int64_t x, int64_t y) { return y != 0 && x > INT64_MAX / y ? INT64_MAX : x * y; }
static int64_t sat_add(int64_t x, int64_t y) { return x > INT64_MAX - y ? INT64_MAX : x + y; }

// an optional size argument (absent or undefined: keep *out)
static int gemm_opt_size(napi_env env, size_t argc, napi_value* argv, size_t i, const char* name, int64_t* out,
                         const char* fn) {
  napi_valuetype t;
  if (argc <= i || (napi_typeof(env, argv[i], &t), t == napi_undefined)) return 0;
  return cw_arg_int(env, argv[i], fn, name, out);
}

// fn: "gemm" (float32) or "gemmMixedBf16" (bf16 inputs, float32 sums: cw_gemm_bf16, where the CPU has AVX512_BF16)
static napi_value gemm_glue(napi_env env, napi_callback_info info, const char* fn) {
  const int bf16 = strcmp(fn, "gemm") != 0;
  size_t argc = 14;
  napi_value argv[14];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char msg[220];
  if (argc < 10) {
    snprintf(msg, sizeof msg, "%s: expected (C, A, B, M, N, K, transA, transB, alpha, beta, batch?, strideA?, "
             "strideB?, strideC?)", fn);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  float *C, *A, *B;
  size_t lc, la, lb;
  int64_t M, N, K, batch = 1, sA = INT64_MIN, sB = INT64_MIN, sC = INT64_MIN;  // INT64_MIN: left out
  int tA, tB;
  double alpha, beta;
  if (cw_arg_f32(env, argv[0], fn, "C", &C, &lc) || cw_arg_f32(env, argv[1], fn, "A", &A, &la) ||
      cw_arg_f32(env, argv[2], fn, "B", &B, &lb) || cw_arg_int(env, argv[3], fn, "M", &M) ||
      cw_arg_int(env, argv[4], fn, "N", &N) || cw_arg_int(env, argv[5], fn, "K", &K) ||
      cw_arg_bool(env, argv[6], fn, "transA", &tA) || cw_arg_bool(env, argv[7], fn, "transB", &tB) ||
      cw_arg_double(env, argv[8], fn, "alpha", &alpha) || cw_arg_double(env, argv[9], fn, "beta", &beta) ||
      gemm_opt_size(env, argc, argv, 10, "batch", &batch, fn) || gemm_opt_size(env, argc, argv, 11, "strideA", &sA, fn) ||
      gemm_opt_size(env, argc, argv, 12, "strideB", &sB, fn) || gemm_opt_size(env, argc, argv, 13, "strideC", &sC, fn))
    return NULL;
  const int64_t sizes[7] = {M, N, K, batch, sA, sB, sC};
  static const char* names[7] = {"M", "N", "K", "batch", "strideA", "strideB", "strideC"};
  for (int i = 0; i < 7; i++) {
    if (sizes[i] == INT64_MIN) continue;  // a stride left out
    if (sizes[i] < 0 || sizes[i] > GEMM_MAX_SIZE) {
      snprintf(msg, sizeof msg, "%s: %s must be in 0..2^46 (got %lld)", fn, names[i], (long long)sizes[i]);
      napi_throw_range_error(env, NULL, msg);
      return NULL;
    }
  }
  // default strides: the matrices packed one after another
  if (sA == INT64_MIN) sA = sat_mul(M, K);
  if (sB == INT64_MIN) sB = sat_mul(K, N);
  if (sC == INT64_MIN) sC = sat_mul(M, N);
  if (batch == 0 || M == 0 || N == 0) return NULL;
  // each operand's last matrix must end inside its array; from here on every product fits in int64
  if (cw_check_len(env, fn, "C", lc, sat_add(sat_mul(batch - 1, sC), sat_mul(M, N))) ||
      cw_check_len(env, fn, "A", la, K ? sat_add(sat_mul(batch - 1, sA), sat_mul(M, K)) : 0) ||
      cw_check_len(env, fn, "B", lb, K ? sat_add(sat_mul(batch - 1, sB), sat_mul(K, N)) : 0))
    return NULL;
  if (bf16 && !cw_cpu_has_bf16()) {  // after the argument checks, so a bad call is refused alike everywhere
    snprintf(msg, sizeof msg, "%s: this CPU lacks AVX512_BF16 at the dispatch level in force (%s); HINT: use float32 "
             "(gemm) here", fn, cw_cpu_level_name(cw_cpu_level()));
    napi_throw_error(env, "ERR_CW_NO_BF16", msg);
    return NULL;
  }
  int rc;
#if defined(__x86_64__)
  if (bf16) rc = cw_gemm_bf16(C, A, B, M, N, K, tA, tB, (float)alpha, (float)beta, batch, sA, sB, sC);
  else
#endif
    rc = cw_gemm(C, A, B, M, N, K, tA, tB, (float)alpha, (float)beta, batch, sA, sB, sC);
  if (rc != 0) {
    snprintf(msg, sizeof msg, "%s: out of memory for its packing buffers; HINT: close other programs, or use a "
             "smaller batch or sequence", fn);
    napi_throw_error(env, "ERR_CW_OUT_OF_MEMORY", msg);
  }
  return NULL;
}

static napi_value js_gemm(napi_env env, napi_callback_info info) { return gemm_glue(env, info, "gemm"); }
static napi_value js_gemm_mixed_bf16(napi_env env, napi_callback_info info) {
  return gemm_glue(env, info, "gemmMixedBf16");
}
// hasBf16Gemm() -> whether gemmMixedBf16 runs here (AVX512_BF16 at the avx512 level)
static napi_value js_has_bf16_gemm(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value b;
  napi_get_boolean(env, cw_cpu_has_bf16(), &b);
  return b;
}

void cw_register_gemm(napi_env env, napi_value exports) {
  cw_export(env, exports, "gemm", js_gemm);
  cw_export(env, exports, "gemmMixedBf16", js_gemm_mixed_bf16);
  cw_export(env, exports, "hasBf16Gemm", js_has_bf16_gemm);
}
