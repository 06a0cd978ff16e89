/*
 * workers.h - a persistent pool of threads for the work inside one training run
 * (internal; see ln_net_set_threads in lunet.h).
 *
 * The pool runs "regions": fn(arg, t, T) on T threads at once (the caller is thread 0)
 * and returns when every thread has finished. Nothing is shared but what fn shares,
 * so determinism is the callers' business: every kernel run through the pool splits
 * its work into pieces whose results do not depend on T (independent samples, output
 * channels, parameter ranges), never into partial sums that are added afterwards.
 *
 * Idle threads spin for a few microseconds (a training step starts the next region
 * soon) and then sleep on a condition variable, so an idle pool costs nothing.
 */
#ifndef LUNET_WORKERS_H
#define LUNET_WORKERS_H

#include "lunet.h"

typedef struct ln_workers ln_workers;
typedef void (*ln_region_fn)(void *arg, int thread, int threads);

/* A pool of `threads` threads in all (threads - 1 are started; the caller is the
 * first). threads must be in [2, 256]. */
ln_status ln_workers_create(ln_workers **out, int threads, ln_error *err);
void ln_workers_free(ln_workers *w); /* NULL is a no-op; waits for the threads to end */
/* Runs fn(arg, t, T) for t = 0 .. T-1, T = the pool's threads, and waits for all.
 * With w == NULL: fn(arg, 0, 1) on the caller. Not reentrant: fn must not call it. */
void ln_workers_run(ln_workers *w, ln_region_fn fn, void *arg);

/* Thread t's share [*begin, *end) of n items split into T contiguous ranges. */
static inline void ln_split(int64_t n, int t, int T, int64_t *begin, int64_t *end)
{
    *begin = n * t / T;
    *end = n * (t + 1) / T;
}

#endif
