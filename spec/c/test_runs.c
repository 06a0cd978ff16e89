/* test_runs.c - repeat runs on the thread pool (core/runs.c): results independent of
 * the thread count, progress on the calling thread, and stopping from the progress
 * callback and from another thread (as Ctrl-C does) with finished runs kept.
 *
 * This is also the ThreadSanitizer target: tools/sanitize.sh builds it with
 * -fsanitize=thread and requires a clean run.
 *
 * Output: "ok N - desc" or "not ok N - desc: detail", then "# passed P failed F";
 * the exit status is 0 iff nothing failed.
 */
#include "../../core/lunet.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fixture.h"
#include "tap.h"

static tap T; /* this program's checks */

#define RUNS 6

static ln_net *template_net(void)
{
    ln_layer_spec layers[] = {
        ln_conv2d(1, 3, 3, 1, 0), ln_simple_layer(LN_RELU), ln_maxpool2d(2, 0),
        ln_dropout(LN_DROPOUT2D, 0.2f), ln_simple_layer(LN_FLATTEN), ln_linear(27, 4),
        ln_simple_layer(LN_LOG_SOFTMAX),
    };
    return fixture_net(layers, 7, ln_shape_make(3, (int64_t[]){1, 8, 8}), NULL);
}

static ln_dataset *dataset(int64_t n, int salt)
{
    float *x = malloc(sizeof(float) * (size_t)n * 64);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 4);
        for (int p = 0; p < 64; p++)
            x[i * 64 + p] = (p / 16 == y[i] ? 1.0f : 0.0f) + (float)((i * 13 + p * 7 + salt) % 10) * 0.03f;
    }
    ln_dataset *ds = fixture_dataset(x, y, n, 1, 8, 8);
    free(x);
    free(y);
    return ds;
}

typedef struct {
    int calls;
    int stop_after; /* set *stop once runs_done reaches this (-1: never) */
    atomic_int *stop;
} progress_state;

static int on_progress(void *user, const ln_runs_progress *p)
{
    progress_state *s = user;
    s->calls++;
    if (s->stop_after >= 0 && p->runs_done >= s->stop_after && s->stop)
        atomic_store_explicit(s->stop, 1, memory_order_relaxed);
    return 0;
}

static ln_runs_config config(const ln_net *net, const ln_dataset *data, const ln_dataset *test,
                             int threads)
{
    static const int64_t test_at[] = {2};
    ln_runs_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.template_net = net;
    cfg.data = data;
    cfg.test = test;
    ln_train_config_defaults(&cfg.train);
    cfg.train.batch = 8;
    cfg.train.iterations = 4;
    cfg.train.seed = 11;
    cfg.train.optim = ln_sgd_spec(0.05, 0.5);
    cfg.runs = RUNS;
    cfg.threads = threads;
    cfg.test_at = test_at;
    cfg.test_at_count = 1;
    return cfg;
}

static void release_all(ln_run_result *r)
{
    for (int i = 0; i < RUNS; i++) ln_run_result_release(&r[i]);
}

/* claim and on_run: which runs were claimed, handed over, and on which thread. */
typedef struct {
    pthread_t caller;
    int claimed[RUNS], handed[RUNS];
    int off_thread; /* callbacks that ran on another thread */
    int handed_done; /* handed-over runs that were done */
    const ln_run_result *ref;
    int same; /* every handed-over run equals the reference run */
} hooks_state;

static int claim_hook(void *user, int run)
{
    hooks_state *h = user;
    h->off_thread += !pthread_equal(pthread_self(), h->caller);
    h->claimed[run]++;
    return run != 1 && run != 4; /* 1 and 4: "another process has them" */
}

static int on_run_hook(void *user, int run, ln_run_result *res)
{
    hooks_state *h = user;
    h->off_thread += !pthread_equal(pthread_self(), h->caller);
    h->handed[run]++;
    h->handed_done += res->done;
    if (h->ref)
        h->same &= res->hist.iterations == 4 &&
                   memcmp(res->hist.loss, h->ref[run].hist.loss, sizeof(double) * 4) == 0;
    ln_run_result_release(res); /* as the Lua binding does */
    return 0;
}

/* Stops training from another thread, as a signal handler would: once the training
 * thread has reported its first finished iteration (so even a slow build has some). */
typedef struct {
    atomic_int *stop;
    atomic_int iterations; /* set by the training thread's callback, read here */
} stopper;

static int count_iterations(void *user, const ln_progress *p)
{
    stopper *s = user;
    atomic_store_explicit(&s->iterations, (int)p->iteration, memory_order_relaxed);
    return 0;
}

static void *stop_later(void *arg)
{
    stopper *s = arg;
    struct timespec ts = {0, 5 * 1000000L};
    while (atomic_load_explicit(&s->iterations, memory_order_relaxed) < 1) nanosleep(&ts, NULL);
    nanosleep(&ts, NULL);
    atomic_store_explicit(s->stop, 1, memory_order_relaxed);
    return NULL;
}

int main(void)
{
    ln_net *net = template_net();
    ln_dataset *data = dataset(96, 0), *test = dataset(40, 5);
    ln_error err;

    /* 1, 2 and 4 threads give bit-identical runs */
    ln_run_result ref[RUNS], got[RUNS];
    memset(ref, 0, sizeof ref);
    ln_runs_config cfg = config(net, data, test, 1);
    progress_state ps = {0, -1, NULL};
    cfg.on_progress = on_progress;
    cfg.user = &ps;
    ln_status st = ln_runs(&cfg, ref, &err);
    tap_check(&T, st == LN_OK, "runs on 1 thread: %s", st ? err.msg : "ok");
    int all_done = 1;
    for (int r = 0; r < RUNS; r++) all_done &= ref[r].done && ref[r].hist.iterations == 4;
    tap_check(&T, all_done, "every run finished its 4 iterations");
    tap_check(&T, ps.calls >= 1, "progress reported on the calling thread (%d calls)", ps.calls);
    for (int threads = 2; threads <= 4; threads += 2) {
        memset(got, 0, sizeof got);
        cfg = config(net, data, test, threads);
        st = ln_runs(&cfg, got, &err);
        int same = st == LN_OK;
        for (int r = 0; r < RUNS && same; r++) {
            same = got[r].seed == ref[r].seed && got[r].hist.steps == ref[r].hist.steps &&
                   memcmp(got[r].hist.loss, ref[r].hist.loss, sizeof(double) * 4) == 0 &&
                   memcmp(got[r].hist.step_loss, ref[r].hist.step_loss,
                          sizeof(float) * (size_t)ref[r].hist.steps) == 0 &&
                   got[r].test_accuracy == ref[r].test_accuracy &&
                   got[r].test_loss_at[0] == ref[r].test_loss_at[0];
        }
        tap_check(&T, same, "%d threads give bit-identical losses and test figures", threads);
        release_all(got);
    }

    /* every run is claimed first and handed over as it finishes, on the calling thread */
    hooks_state hs;
    memset(&hs, 0, sizeof hs);
    hs.caller = pthread_self();
    hs.ref = ref;
    hs.same = 1;
    memset(got, 0, sizeof got);
    cfg = config(net, data, test, 2);
    cfg.claim = claim_hook;
    cfg.on_run = on_run_hook;
    cfg.user = &hs;
    st = ln_runs(&cfg, got, &err);
    int each_once = 1;
    for (int r = 0; r < RUNS; r++)
        each_once &= hs.claimed[r] == 1 && hs.handed[r] == (r != 1 && r != 4) && !got[r].hist.loss;
    tap_check(&T, st == LN_OK && each_once && hs.handed_done == RUNS - 2 && hs.off_thread == 0 && hs.same,
              "each run claimed once, the %d claimed ones handed over once each, on the calling "
              "thread, equal to the runs without hooks", hs.handed_done);
    release_all(got);
    release_all(ref);

    /* a late error: the runs finished before it have all been handed over */
    memset(&hs, 0, sizeof hs);
    hs.caller = pthread_self();
    memset(got, 0, sizeof got);
    cfg = config(net, data, test, 1);
    cfg.on_run = on_run_hook;
    cfg.user = &hs;
    long before = ln_alloc_fail_after(-1);
    cfg.runs = 1;
    st = ln_runs(&cfg, got, &err);
    release_all(got);
    const long per_run = ln_alloc_fail_after(-1) - before;
    memset(&hs, 0, sizeof hs);
    hs.caller = pthread_self();
    memset(got, 0, sizeof got);
    cfg.runs = RUNS;
    ln_alloc_fail_after(3 * per_run + per_run / 2);
    st = ln_runs(&cfg, got, &err);
    ln_alloc_fail_after(-1);
    int handed = 0;
    for (int r = 0; r < RUNS; r++) handed += hs.handed[r];
    tap_check(&T, st == LN_ENOMEM && handed >= 2 && handed < RUNS && hs.handed_done == handed,
              "an allocation failure after %d runs (%ld allocations each) returns an error with "
              "every finished run handed over", handed, per_run);
    release_all(got);

    /* stop from the progress callback (the calling thread) at its first report, about
     * 0.1 s in, while runs of 20000 epochs are going on (of 2000, the two first runs
     * sometimes finished just before the report and the next two had not taken a step,
     * leaving no interrupted run to check: 1 in 8 locally once the engine got faster) */
    atomic_int stop = 0;
    memset(got, 0, sizeof got);
    cfg = config(net, data, test, 2);
    cfg.train.iterations = 20000;
    cfg.train.stop = &stop;
    progress_state stopper_ps = {0, 0, &stop};
    cfg.on_progress = on_progress;
    cfg.user = &stopper_ps;
    st = ln_runs(&cfg, got, &err);
    int done = 0, partial = 0, consistent = 1;
    for (int r = 0; r < RUNS; r++) {
        done += got[r].done;
        if (got[r].done) {
            consistent &= got[r].hist.iterations == 20000 && !got[r].hist.interrupted;
        } else if (got[r].hist.iterations > 0 || got[r].hist.steps > 0) {
            partial++;
            consistent &= got[r].hist.interrupted && got[r].hist.iterations < 20000;
        }
    }
    tap_check(&T, st == LN_OK && done < RUNS && partial >= 1 && consistent,
              "a stop request keeps finished runs whole (%d) and marks the stopped ones (%d) "
              "interrupted", done, partial);
    release_all(got);

    /* stop a single ln_train from another thread, as SIGINT does */
    stop = 0;
    ln_train_config tc;
    ln_train_config_defaults(&tc);
    tc.batch = 4;
    tc.iterations = 100000;
    tc.stop = &stop;
    ln_net *solo = NULL;
    ln_net_clone(net, &solo, &err);
    stopper s = {&stop, 0};
    tc.on_iteration = count_iterations;
    tc.user = &s;
    pthread_t id;
    pthread_create(&id, NULL, stop_later, &s);
    ln_history h;
    st = ln_train(solo, data, &tc, &h, &err);
    pthread_join(id, NULL);
    tap_check(&T, st == LN_OK && h.interrupted && h.iterations > 0 && h.iterations < 100000 &&
               h.steps >= h.iterations,
              "a stop from another thread ends ln_train at the next step (%lld iterations kept)",
              (long long)h.iterations);
    ln_history_release(&h);
    ln_net_free(solo);

    ln_dataset_free(data);
    ln_dataset_free(test);
    ln_net_free(net);
    return tap_done(&T);
}
