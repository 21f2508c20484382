// The thread pool: persistent workers that split a range [0, n) with the calling thread.
//
// Boundary: knows nothing of kernels; it runs fn(ctx, begin, end) on deterministic chunks. Chunk c of C chunks is
// [n*c/C, n*(c+1)/C) with C = min(4 * threads, n / grain) (at least 1; 1 on one thread), so the same n, grain and
// thread count give the same split. Threads claim chunks from a shared counter (the caller first), so the faster
// thread takes more, and when a worker is slow to wake the caller runs its chunks instead of waiting; fn sees only the
// range, never which thread runs it. Kernels give the same floating-point result whatever the split (each output is
// computed inside one chunk, or from fixed partial sums), which the tests check bitwise between 1 and 2 threads.
// cw_parallel_for_chunks takes an exact chunk count instead.
// Dispatch is low-latency because the small model calls it thousands of times per step: workers spin briefly on a
// generation counter (1 ms), then sleep on a futex (Linux; elsewhere they yield). Nested calls, and calls while another
// thread is dispatching, run the same chunks serially on the calling thread.
// Thread count: CHATWRIGHT_THREADS, else the cores this process may run on (sched_getaffinity), else sysconf.
#define _GNU_SOURCE
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#define CW_MAX_THREADS 256  // also bounds the chunk count, which the claim word holds in 16 bits
// A waiting thread spins this long before it sleeps. Waking a sleeping vCPU costs 40-80 us here (KVM: the host must run
// it again), and a small-model training step has gaps of 0.1-1 ms between dispatches (the JS side, serial kernels):
// with 100 us, one step of the small preset slept and woke ~190 workers and ~160 callers; with 1 ms, ~20 and ~1.
#define SPIN_NS 1000000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

static void wait_while_equal(_Atomic uint32_t* word, uint32_t value) {
#if defined(__linux__)
  syscall(SYS_futex, (uint32_t*)word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
#else
  if (atomic_load(word) == value) sched_yield();
#endif
}

static void wake_all(_Atomic uint32_t* word) {
#if defined(__linux__)
  syscall(SYS_futex, (uint32_t*)word, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
#else
  (void)word;
#endif
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

// Spin-then-sleep bookkeeping: call spin_more() in a wait loop; it returns 0 once SPIN_NS have passed (checking the
// clock every 64 calls, since `pause` lasts from a few to ~140 cycles depending on the CPU).
typedef struct { int n; int64_t until; } spinner;
static inline int spin_more(spinner* s) {
  if ((++s->n & 63) == 0) {
    int64_t t = now_ns();
    if (s->until == 0) s->until = t + SPIN_NS;
    else if (t > s->until) return 0;
  }
  cpu_relax();
  return 1;
}

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;  // held while dispatching or resizing
static int g_threads = 0;        // wanted thread count including the caller; 0 = not yet read from the environment
static int g_started = 0;        // workers running (g_threads - 1 once started)
static pthread_t g_workers[CW_MAX_THREADS];

static _Atomic uint32_t g_gen;       // bumped once per dispatch; workers wait on it
static _Atomic int g_sleepers;       // workers inside wait_while_equal(&g_gen)
// The claim word: generation (high 32 bits), chunk count (16 bits), next unclaimed chunk (low 16 bits). A thread
// claims chunk `next` of generation g by compare-and-swap, so a worker that wakes late can never claim a chunk of a
// newer dispatch with the job of an older one.
static _Atomic uint64_t g_claim;
static _Atomic int g_chunks_done;
static _Atomic uint32_t g_done;      // bumped when the last chunk finishes; the caller waits on it
static _Atomic int g_caller_sleeping;
static _Atomic int g_quit;
static struct { cw_range_fn fn; void* ctx; int64_t n; int chunks; } g_job;
static __thread int t_in_pool;       // set on workers, and on the caller during a dispatch

static int default_threads(void) {
  const char* env = getenv("CHATWRIGHT_THREADS");
  if (env && *env) {
    char* end;
    long v = strtol(env, &end, 10);
    if (v >= 1 && *end == '\0') return v > CW_MAX_THREADS ? CW_MAX_THREADS : (int)v;
    fprintf(stderr, "chatwright: CHATWRIGHT_THREADS=%s is not a positive integer; ignored\n", env);
  }
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int c = CPU_COUNT(&set);
    if (c >= 1) return c > CW_MAX_THREADS ? CW_MAX_THREADS : c;
  }
#endif
  long c = sysconf(_SC_NPROCESSORS_ONLN);
  return c < 1 ? 1 : c > CW_MAX_THREADS ? CW_MAX_THREADS : (int)c;
}

static inline void chunk_range(int64_t n, int chunks, int c, int64_t* b, int64_t* e) {
  *b = (int64_t)((__int128)n * c / chunks);
  *e = (int64_t)((__int128)n * (c + 1) / chunks);
}

// Claims and runs chunks of dispatch `gen` until none is left.
static void run_chunks(uint32_t gen) {
  for (;;) {
    uint64_t c = atomic_load_explicit(&g_claim, memory_order_acquire);
    int next = (int)(c & 0xFFFF), chunks = (int)((c >> 16) & 0xFFFF);
    if ((uint32_t)(c >> 32) != gen || next >= chunks) return;
    if (!atomic_compare_exchange_weak(&g_claim, &c, c + 1)) continue;
    // Chunk `next` is ours and unfinished, so the caller is still inside dispatch `gen` and g_job is its job.
    int64_t b, e;
    chunk_range(g_job.n, chunks, next, &b, &e);
    g_job.fn(g_job.ctx, b, e);
    if (atomic_fetch_add_explicit(&g_chunks_done, 1, memory_order_acq_rel) + 1 == chunks) {
      atomic_fetch_add(&g_done, 1);
      if (atomic_load(&g_caller_sleeping)) wake_all(&g_done);
    }
  }
}

static void* worker_main(void* arg) {
  (void)arg;
  t_in_pool = 1;
  uint32_t seen = 0;
  for (;;) {
    uint32_t g;
    spinner sp = {0, 0};
    while ((g = atomic_load_explicit(&g_gen, memory_order_acquire)) == seen) {
      if (!spin_more(&sp)) {
        atomic_fetch_add(&g_sleepers, 1);
        wait_while_equal(&g_gen, seen);
        atomic_fetch_sub(&g_sleepers, 1);
        sp = (spinner){0, 0};
      }
    }
    seen = g;
    if (atomic_load(&g_quit)) break;
    run_chunks(g);
  }
  return NULL;
}

static void stop_workers(void) {  // with g_lock held
  if (g_started == 0) return;
  atomic_store(&g_quit, 1);
  atomic_fetch_add(&g_gen, 1);
  wake_all(&g_gen);
  for (int i = 0; i < g_started; i++) pthread_join(g_workers[i], NULL);
  g_started = 0;
  atomic_store(&g_quit, 0);
  atomic_store(&g_gen, 0);
}

static void start_workers(void) {  // with g_lock held
  if (g_threads == 0) g_threads = default_threads();
  while (g_started < g_threads - 1) {
    // A worker starts from generation 0, so the pool must be idle here (it is: g_lock is held).
    if (pthread_create(&g_workers[g_started], NULL, worker_main, (void*)(intptr_t)(g_started + 1)) != 0) {
      g_threads = g_started + 1;  // could not create more: run with what we have
      break;
    }
    g_started++;
  }
}

static void run_serial(int64_t n, int chunks, cw_range_fn fn, void* ctx) {
  for (int c = 0; c < chunks; c++) {
    int64_t b, e;
    chunk_range(n, chunks, c, &b, &e);
    fn(ctx, b, e);
  }
}

// Runs `chunks` chunks of [0, n) on the pool.
static void dispatch(int64_t n, int chunks, cw_range_fn fn, void* ctx) {
  if (chunks == 1) {
    fn(ctx, 0, n);
    return;
  }
  if (t_in_pool || pthread_mutex_trylock(&g_lock) != 0) {
    run_serial(n, chunks, fn, ctx);
    return;
  }
  start_workers();
  if (g_started == 0) {  // no worker could start: the chunks in order
    pthread_mutex_unlock(&g_lock);
    run_serial(n, chunks, fn, ctx);
    return;
  }
  g_job.fn = fn;
  g_job.ctx = ctx;
  g_job.n = n;
  g_job.chunks = chunks;
  atomic_store(&g_chunks_done, 0);
  uint32_t gen = atomic_load(&g_gen) + 1;
  atomic_store(&g_claim, ((uint64_t)gen << 32) | ((uint64_t)chunks << 16));
  atomic_store(&g_gen, gen);  // seq_cst: pairs with the sleepers count (no lost wake-up)
  if (atomic_load(&g_sleepers) > 0) wake_all(&g_gen);

  t_in_pool = 1;
  run_chunks(gen);
  t_in_pool = 0;

  spinner sp = {0, 0};
  while (atomic_load_explicit(&g_chunks_done, memory_order_acquire) != chunks) {
    if (spin_more(&sp)) continue;
    uint32_t d = atomic_load(&g_done);
    atomic_store(&g_caller_sleeping, 1);
    if (atomic_load(&g_chunks_done) != chunks) wait_while_equal(&g_done, d);
    atomic_store(&g_caller_sleeping, 0);
    sp = (spinner){0, 0};
  }
  pthread_mutex_unlock(&g_lock);
}

// Up to CHUNKS_PER_THREAD chunks per thread, claimed dynamically. One chunk per thread (a static split) made every
// kernel wait for the slower vCPU: in a training step of the small preset the calling thread spent ~14% of the step
// waiting for the worker to finish its half.
#define CHUNKS_PER_THREAD 4
void cw_parallel_for(int64_t n, int64_t grain, cw_range_fn fn, void* ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int threads = cw_num_threads();
  int64_t maxChunks = n / grain, want = threads > 1 ? (int64_t)threads * CHUNKS_PER_THREAD : 1;
  dispatch(n, (int)(maxChunks < want ? (maxChunks < 1 ? 1 : maxChunks) : want), fn, ctx);
}

void cw_parallel_for_chunks(int64_t n, int chunks, cw_range_fn fn, void* ctx) {
  if (n <= 0) return;
  if (chunks > n) chunks = (int)n;
  if (chunks > 0xFFFF) chunks = 0xFFFF;
  if (chunks < 1) chunks = 1;
  dispatch(n, chunks, fn, ctx);
}

int cw_num_threads(void) {
  int t = __atomic_load_n(&g_threads, __ATOMIC_RELAXED);
  if (t > 0) return t;
  pthread_mutex_lock(&g_lock);
  if (g_threads == 0) g_threads = default_threads();
  t = g_threads;
  pthread_mutex_unlock(&g_lock);
  return t;
}

void cw_set_num_threads(int n) {
  if (n < 1) n = 1;
  if (n > CW_MAX_THREADS) n = CW_MAX_THREADS;
  pthread_mutex_lock(&g_lock);
  if (n != g_threads) {
    stop_workers();
    __atomic_store_n(&g_threads, n, __ATOMIC_RELAXED);
  }
  pthread_mutex_unlock(&g_lock);
}
