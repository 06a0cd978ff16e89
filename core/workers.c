/* workers.c - the persistent thread pool behind ln_net_set_threads (see workers.h).
 *
 * Protocol: the caller publishes (fn, arg), sets `pending` to the number of workers and
 * bumps the generation counter under the lock (so a worker about to sleep cannot miss
 * it), then runs its own share. A worker waits for the generation to change (spinning
 * first, then on `wake`), runs its share and decrements `pending`; the last one signals
 * `idle`. The caller waits for `pending` to reach zero the same way, so a region has
 * fully ended before the next one is published: every worker serves every region
 * exactly once. */
#include "workers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spins before sleeping: about 10-50 microseconds, longer than the gap between two
 * regions of a training step, much shorter than anything a human notices. Every
 * YIELD_EVERY spins the thread yields, so that on a machine with more runnable
 * threads than cores a spinning thread hands its core to the one it waits for. */
#define SPIN_LIMIT 4000
#define YIELD_EVERY 256

typedef struct {
    ln_workers *pool;
    int index;
} worker_slot;

struct ln_workers {
    int count;                 /* threads in all, the caller included */
    int started;               /* workers actually started */
    pthread_t *threads;
    worker_slot *slots;
    pthread_mutex_t lock;
    pthread_cond_t wake, idle;
    atomic_uint generation;
    atomic_int pending;
    int quit;                  /* written before a generation bump, read after one */
    ln_region_fn fn;
    void *arg;
};

/* One step of a spin-wait: a pause, and now and then a yield. */
static inline void spin_once(int spins)
{
    if (spins % YIELD_EVERY == 0)
        sched_yield();
    else
        CPU_RELAX();
}

static void *worker_main(void *p)
{
    worker_slot *slot = p;
    ln_workers *w = slot->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&w->generation, memory_order_acquire)) == seen) {
            if (++spins < SPIN_LIMIT) {
                spin_once(spins);
                continue;
            }
            pthread_mutex_lock(&w->lock);
            while (atomic_load_explicit(&w->generation, memory_order_acquire) == seen)
                pthread_cond_wait(&w->wake, &w->lock);
            pthread_mutex_unlock(&w->lock);
        }
        seen = g;
        if (w->quit) return NULL;
        w->fn(w->arg, slot->index, w->count);
        if (atomic_fetch_sub_explicit(&w->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&w->lock);
            pthread_cond_signal(&w->idle);
            pthread_mutex_unlock(&w->lock);
        }
    }
}

static void publish(ln_workers *w, ln_region_fn fn, void *arg, int quit)
{
    w->fn = fn;
    w->arg = arg;
    w->quit = quit;
    atomic_store_explicit(&w->pending, w->started, memory_order_relaxed);
    pthread_mutex_lock(&w->lock);
    atomic_fetch_add_explicit(&w->generation, 1, memory_order_release);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

static void wait_idle(ln_workers *w)
{
    int spins = 0;
    while (atomic_load_explicit(&w->pending, memory_order_acquire) > 0) {
        if (++spins < SPIN_LIMIT) {
            spin_once(spins);
            continue;
        }
        pthread_mutex_lock(&w->lock);
        while (atomic_load_explicit(&w->pending, memory_order_acquire) > 0)
            pthread_cond_wait(&w->idle, &w->lock);
        pthread_mutex_unlock(&w->lock);
    }
}

void ln_workers_free(ln_workers *w)
{
    if (!w) return;
    if (w->started) {
        publish(w, NULL, NULL, 1);
        for (int i = 0; i < w->started; i++) pthread_join(w->threads[i], NULL);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->idle);
    ln_dealloc(w->threads);
    ln_dealloc(w->slots);
    ln_dealloc(w);
}

ln_status ln_workers_create(ln_workers **out, int threads, ln_error *err)
{
    *out = NULL;
    if (threads < 2 || threads > LN_MAX_THREADS)
        return ln_fail(err, LN_EINVAL, "threads must be in [2, %d] for a pool (got %d)", LN_MAX_THREADS,
                       threads);
    ln_workers *w = ln_alloc_zeroed(1, sizeof *w);
    if (!w) return ln_fail(err, LN_ENOMEM, "threads: out of memory");
    w->threads = ln_alloc_zeroed((size_t)threads, sizeof *w->threads);
    w->slots = ln_alloc_zeroed((size_t)threads, sizeof *w->slots);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->idle, NULL);
    atomic_init(&w->generation, 0);
    atomic_init(&w->pending, 0);
    w->count = threads;
    if (!w->threads || !w->slots) {
        ln_workers_free(w);
        return ln_fail(err, LN_ENOMEM, "threads: out of memory");
    }
    for (int i = 0; i < threads - 1; i++) {
        w->slots[i].pool = w;
        w->slots[i].index = i + 1;
        if (pthread_create(&w->threads[i], NULL, worker_main, &w->slots[i]) != 0) {
            ln_workers_free(w);
            return ln_fail(err, LN_ENOMEM, "threads: cannot start thread %d of %d", i + 2, threads);
        }
        w->started++;
    }
    *out = w;
    return LN_OK;
}

void ln_workers_run(ln_workers *w, ln_region_fn fn, void *arg)
{
    if (!w) {
        fn(arg, 0, 1);
        return;
    }
    publish(w, fn, arg, 0);
    fn(arg, 0, w->count);
    wait_idle(w);
}
