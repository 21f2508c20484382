// A benchmark peer, never a dependency: times cblas_sgemm of the system OpenBLAS (libopenblas.so.0, loaded with
// dlopen, so nothing links against it). Compiled and driven by bench/gemm.ts when OpenBLAS is installed.
// Protocol, one command per line on stdin, one answer per line on stdout:
//   shape M N K TRANSA TRANSB BETA  -> "ok" (allocates and fills A, B, C)
//   run THREADS [REPEAT]            -> "seconds S cpu C": mean wall-clock and process CPU time of REPEAT (default 1)
//                                      cblas_sgemm calls on the current shape, sent once OpenBLAS's threads are idle
// OpenBLAS's worker threads keep spinning (sched_yield) for about 2^28 cycles (~0.1 s) after each call, which on a
// 2-core machine takes half of a core from whatever runs next (measured: our 2-thread 1024^3 product, run right after
// it, at 0.53x of its 2-thread speed alone). So the answer to "run" waits until the process uses no more CPU time.
// At start it prints "core NAME" (openblas_get_corename), or "unavailable REASON" and exits 2.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc);
enum { RowMajor = 101, NoTrans = 111, Trans = 112 };

static double now(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
  void* h = dlopen("libopenblas.so.0", RTLD_NOW);
  if (!h) h = dlopen("libopenblas.so", RTLD_NOW);
  sgemm_fn sgemm = h ? (sgemm_fn)dlsym(h, "cblas_sgemm") : NULL;
  if (!sgemm) {
    printf("unavailable %s\n", h ? "no cblas_sgemm in libopenblas" : "libopenblas.so.0 is not installed");
    return 2;
  }
  void (*set_threads)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
  char* (*corename)(void) = (char* (*)(void))dlsym(h, "openblas_get_corename");
  printf("core %s\n", corename ? corename() : "unknown");
  fflush(stdout);
  float *A = NULL, *B = NULL, *C = NULL;
  int M = 0, N = 0, K = 0, ta = 0, tb = 0;
  float beta = 0;
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    int threads, repeat = 1;
    if (sscanf(line, "shape %d %d %d %d %d %f", &M, &N, &K, &ta, &tb, &beta) == 6) {
      free(A);
      free(B);
      free(C);
      A = malloc(sizeof(float) * (size_t)M * K);
      B = malloc(sizeof(float) * (size_t)K * N);
      C = calloc((size_t)M * N, sizeof(float));
      unsigned s = 1;
      for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
      for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
      printf("ok\n");
    } else if (sscanf(line, "run %d %d", &threads, &repeat) >= 1 && A) {
      if (set_threads) set_threads(threads);
      if (repeat < 1) repeat = 1;
      double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
      for (int r = 0; r < repeat; r++)
        sgemm(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, beta, C, N);
      double t = now(CLOCK_MONOTONIC) - t0, c = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
      // idle: under 1 ms of CPU time in 20 ms of wall-clock time (at most 2 s)
      for (int w = 0; w < 100; w++) {
        double c1 = now(CLOCK_PROCESS_CPUTIME_ID);
        nanosleep(&(struct timespec){0, 20000000}, NULL);
        if (now(CLOCK_PROCESS_CPUTIME_ID) - c1 < 1e-3) break;
      }
      printf("seconds %.9f cpu %.9f\n", t / repeat, c / repeat);
    } else {
      printf("error bad command: %s", line);
    }
    fflush(stdout);
  }
  return 0;
}
