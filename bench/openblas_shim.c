// A benchmark peer, never a dependency: times cblas_sgemm of the system OpenBLAS (libopenblas.so.0, loaded with
// dlopen, so nothing links against it) and prints one line per run. Compiled and run by bench/gemm.ts when present.
// Usage: openblas_shim THREADS REPS M N K TRANSA TRANSB BETA
// Output: "core NAME" then "seconds S" per run (after one warm-up run); exit 2 when OpenBLAS is absent.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc);
enum { RowMajor = 101, NoTrans = 111, Trans = 112 };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  if (argc < 9) {
    fprintf(stderr, "usage: openblas_shim THREADS REPS M N K TRANSA TRANSB BETA\n");
    return 1;
  }
  void* h = dlopen("libopenblas.so.0", RTLD_NOW);
  if (!h) h = dlopen("libopenblas.so", RTLD_NOW);
  if (!h) {
    printf("unavailable %s\n", dlerror());
    return 2;
  }
  sgemm_fn sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
  void (*set_threads)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
  char* (*corename)(void) = (char* (*)(void))dlsym(h, "openblas_get_corename");
  if (!sgemm) {
    printf("unavailable no cblas_sgemm\n");
    return 2;
  }
  int threads = atoi(argv[1]), reps = atoi(argv[2]), M = atoi(argv[3]), N = atoi(argv[4]), K = atoi(argv[5]);
  int ta = atoi(argv[6]), tb = atoi(argv[7]);
  float beta = (float)atof(argv[8]);
  if (set_threads) set_threads(threads);
  printf("core %s\n", corename ? corename() : "unknown");
  float* A = malloc(sizeof(float) * (size_t)M * K);
  float* B = malloc(sizeof(float) * (size_t)K * N);
  float* C = calloc((size_t)M * N, sizeof(float));
  unsigned s = 1;
  for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
  for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
  for (int r = -1; r < reps; r++) {
    double t0 = now();
    sgemm(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, beta, C, N);
    double t = now() - t0;
    if (r >= 0) printf("seconds %.9f\n", t);
  }
  free(A);
  free(B);
  free(C);
  return 0;
}
