#define _GNU_SOURCE
#include "workers.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_THREADS 64

typedef struct {
  workers_task_fn fn;
  void *ctx;
  int64_t ntasks;
} job_t;

/* `claim` packs (generation << 32 | next task). A task is claimed with a CAS that also checks
 * the generation, so a worker that wakes late can never run a task of a finished job; the
 * caller waits only for tasks that were claimed, never for a worker to wake up (it runs
 * the remaining tasks itself), which keeps latency low when the machine is oversubscribed. */
static struct {
  int nthreads;          /* threads taking part, incl. the caller */
  int started;           /* workers started */
  pthread_t tids[MAX_THREADS];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  _Atomic uint64_t claim;
  _Atomic int64_t done;
  _Atomic int sleepers;
  job_t jobs[2];
  int spin_us;
} P = {.nthreads = 1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .spin_us = 60};

static __thread int tls_in_task = 0;

int workers_in_task(void) { return tls_in_task; }
int workers_threads(void) { return P.nthreads; }
void workers_set_spin_us(int us) { P.spin_us = us < 0 ? 0 : us; }

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void run_claims(uint32_t gen, const job_t *job, int tid) {
  tls_in_task = 1;
  for (;;) {
    uint64_t v = atomic_load_explicit(&P.claim, memory_order_acquire);
    if ((uint32_t)(v >> 32) != gen) break;
    uint32_t k = (uint32_t)v;
    if ((int64_t)k >= job->ntasks) break;
    if (!atomic_compare_exchange_weak_explicit(&P.claim, &v, v + 1, memory_order_acq_rel, memory_order_relaxed)) continue;
    job->fn(job->ctx, (int64_t)k, tid);
    atomic_fetch_add_explicit(&P.done, 1, memory_order_release);
  }
  tls_in_task = 0;
}

static inline uint32_t cur_gen(void) {
  return (uint32_t)(atomic_load_explicit(&P.claim, memory_order_acquire) >> 32);
}

static void *worker_main(void *arg) {
  int tid = (int)(intptr_t)arg;
  uint32_t my_gen = cur_gen();
  for (;;) {
    uint32_t g = cur_gen();
    if (g == my_gen) {
      uint64_t deadline = now_ns() + (uint64_t)P.spin_us * 1000ull;
      int i = 0;
      while ((g = cur_gen()) == my_gen) {
        CPU_RELAX();
        if ((++i & 63) == 0 && now_ns() > deadline) break;
      }
      if (g == my_gen) {
        pthread_mutex_lock(&P.mu);
        atomic_fetch_add(&P.sleepers, 1);
        while ((g = (uint32_t)(atomic_load(&P.claim) >> 32)) == my_gen) pthread_cond_wait(&P.cv, &P.mu);
        atomic_fetch_sub(&P.sleepers, 1);
        pthread_mutex_unlock(&P.mu);
      }
    }
    my_gen = g;
    if (tid >= P.nthreads) continue;
    job_t job = P.jobs[g & 1];
    run_claims(g, &job, tid);
  }
  return NULL;
}

int workers_init(int nthreads) {
  if (nthreads < 1) nthreads = 1;
  if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
  while (P.started < nthreads - 1) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    int rc = pthread_create(&P.tids[P.started], &attr, worker_main, (void *)(intptr_t)(P.started + 1));
    pthread_attr_destroy(&attr);
    if (rc != 0) break;
    pthread_detach(P.tids[P.started]);
    P.started++;
  }
  P.nthreads = P.started + 1 < nthreads ? P.started + 1 : nthreads;
  return P.nthreads;
}

void workers_set_threads(int nthreads) { workers_init(nthreads); }

void workers_run(workers_task_fn fn, void *ctx, int64_t ntasks) {
  if (ntasks <= 0) return;
  if (ntasks == 1 || P.nthreads <= 1 || tls_in_task) {
    for (int64_t t = 0; t < ntasks; t++) fn(ctx, t, 0);
    return;
  }
  uint32_t gen = cur_gen() + 1;
  job_t *job = &P.jobs[gen & 1];
  job->fn = fn;
  job->ctx = ctx;
  job->ntasks = ntasks;
  atomic_store_explicit(&P.done, 0, memory_order_relaxed);
  atomic_store_explicit(&P.claim, (uint64_t)gen << 32, memory_order_seq_cst);
  if (atomic_load_explicit(&P.sleepers, memory_order_seq_cst) > 0) {
    pthread_mutex_lock(&P.mu);
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
  }
  job_t local = *job;
  run_claims(gen, &local, 0);
  /* Wait for tasks other threads claimed. Spin first; if it takes long (a worker was
     descheduled on a busy machine), yield so that it can run. */
  int spins = 0;
  while (atomic_load_explicit(&P.done, memory_order_acquire) < ntasks) {
    if (++spins < 4096) CPU_RELAX();
    else sched_yield();
  }
}

typedef struct {
  workers_range_fn fn;
  void *ctx;
  int64_t n, chunk;
} range_ctx_t;

static void range_task(void *vctx, int64_t t, int tid) {
  range_ctx_t *c = (range_ctx_t *)vctx;
  int64_t b = t * c->chunk, e = b + c->chunk;
  if (e > c->n) e = c->n;
  if (b < e) c->fn(c->ctx, b, e, tid);
}

void workers_for(workers_range_fn fn, void *ctx, int64_t n, int64_t grain) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  /* up to 8 ranges per thread: with dynamic claiming, a worker that is descheduled on a
     busy machine then holds back only a small part of the work */
  int64_t tasks = n / grain;
  if (tasks > 8 * (int64_t)P.nthreads) tasks = 8 * (int64_t)P.nthreads;
  if (tasks <= 1 || tls_in_task) {
    fn(ctx, 0, n, 0);
    return;
  }
  range_ctx_t rc = {fn, ctx, n, (n + tasks - 1) / tasks};
  workers_run(range_task, &rc, tasks);
}
