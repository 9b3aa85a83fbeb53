/* The addon's workers, a tiny fork-join thread pool: the calling thread takes part, workers spin briefly
 * after a job (kernels come back to back from JS) and then sleep on a condition variable. */
#ifndef TDN_WORKERS_H
#define TDN_WORKERS_H
#include <stdint.h>

/* fn(ctx, task, tid): tid in [0, workers_threads()), task in [0, ntasks). */
typedef void (*workers_task_fn)(void *ctx, int64_t task, int tid);

int workers_init(int nthreads);
int workers_threads(void);
void workers_set_threads(int nthreads);
void workers_set_spin_us(int us);
/* Runs tasks [0, ntasks) on up to workers_threads() threads (dynamic scheduling). */
void workers_run(workers_task_fn fn, void *ctx, int64_t ntasks);
/* Convenience: splits [0, n) into contiguous ranges of at least `grain` items,
 * one range per task, at most `workers_threads()` tasks. */
typedef void (*workers_range_fn)(void *ctx, int64_t begin, int64_t end, int tid);
void workers_for(workers_range_fn fn, void *ctx, int64_t n, int64_t grain);
/* 1 while inside a worker task on any thread (nested calls run inline). */
int workers_in_task(void);
#endif
