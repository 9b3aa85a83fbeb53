/* A tiny fork-join thread pool: the calling thread takes part, workers spin briefly
 * after a job (kernels come back to back from JS) and then sleep on a condition variable. */
#ifndef TDN_POOL_H
#define TDN_POOL_H
#include <stdint.h>

/* fn(ctx, task, tid): tid in [0, pool_threads()), task in [0, ntasks). */
typedef void (*pool_task_fn)(void *ctx, int64_t task, int tid);

int pool_init(int nthreads);
int pool_threads(void);
void pool_set_threads(int nthreads);
void pool_set_spin_us(int us);
/* Runs tasks [0, ntasks) on up to pool_threads() threads (dynamic scheduling). */
void pool_run(pool_task_fn fn, void *ctx, int64_t ntasks);
/* Convenience: splits [0, n) into contiguous ranges of at least `grain` items,
 * one range per task, at most `pool_threads()` tasks. */
typedef void (*pool_range_fn)(void *ctx, int64_t begin, int64_t end, int tid);
void pool_for(pool_range_fn fn, void *ctx, int64_t n, int64_t grain);
/* 1 while inside a pool task on any thread (nested calls run inline). */
int pool_in_task(void);
#endif
