/* runs.c - R independent training runs on a pool of threads.
 *
 * Run r depends only on (template layers, data, config, ln_seed_derive(seed, r)): its
 * parameters are initialised from that seed's INIT stream and ln_train draws shuffling
 * and dropout from the same seed's other streams. Which thread takes a run, and in
 * which order runs finish, therefore cannot change any result.
 *
 * The calling thread runs the pool: a worker that wants work asks it for a run, and it
 * claims the run first (cfg->claim, e.g. a claim file, so that processes sharing a run
 * store do not compute a run twice); a worker that finished a run queues it, and the
 * calling thread hands it over at once (cfg->on_run, e.g. to write it to disk) and
 * reports progress about ten times a second. So every callback (which may call into
 * Lua) runs on the caller's thread, and a run is handed over the moment it ends, also
 * when another run fails later. Workers otherwise touch only their own run's memory
 * and a few atomic counters.
 */
#include "lunet.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Most bytes of loss history all the runs of one ln_runs call may keep: 4 GiB. */
#define LN_RUNS_HISTORY_LIMIT ((double)(1ull << 32))

/* Most threads (and so most runs in flight) of one ln_runs call. */
#define LN_RUNS_MAX_THREADS LN_MAX_THREADS

typedef struct {
    int waiting; /* set by the worker, cleared by the caller once `run` is set */
    int run;     /* the assigned run, or -1: no more work */
} work_slot;

typedef struct {
    const ln_runs_config *cfg;
    ln_run_result *results;
    atomic_int runs_done;
    atomic_llong iterations_done;
    atomic_llong samples;
    atomic_ullong last_loss_bits; /* a double's bits: atomics on doubles are not portable */
    atomic_int failed;          /* first failing run + 1, 0 if none */
    ln_error first_error;
    pthread_mutex_t lock;       /* guards everything below, first_error and the slots */
    pthread_cond_t wake;        /* the caller waits on it: a request, a finished run, an exit */
    pthread_cond_t work;        /* the workers wait on it for their run */
    int workers_left;
    int requests;               /* workers waiting for a run */
    int next_candidate;         /* the next run to consider (caller only) */
    int finished[LN_RUNS_MAX_THREADS]; /* ring of finished runs not handed over yet: */
    int finished_head, finished_count; /* a worker queues at most one before asking again */
    work_slot slots[LN_RUNS_MAX_THREADS];
} pool;

typedef struct {
    pool *p;
    ln_net *net;
    ln_run_result *res;
    int64_t samples_counted; /* of this run, already added to the pool's total */
    ln_status eval_status;
    ln_error eval_error;
} run_watch;

/* Test-set evaluation in eval mode; batches of the training batch size so the net's
 * activation memory is not resized in the middle of training. */
static ln_status evaluate_test(const ln_runs_config *cfg, ln_net *net, double *loss, double *acc,
                               ln_error *err)
{
    int batch = cfg->train.batch < 256 ? 256 : cfg->train.batch;
    if (batch > ln_net_reserved_batch(net)) batch = ln_net_reserved_batch(net);
    return ln_evaluate(net, cfg->test, cfg->train.loss, batch, loss, acc, err);
}

static int count_iteration(void *user, const ln_progress *pr)
{
    run_watch *w = user;
    const ln_runs_config *cfg = w->p->cfg;
    atomic_fetch_add(&w->p->iterations_done, 1);
    uint64_t bits;
    memcpy(&bits, &pr->loss, sizeof bits);
    atomic_store(&w->p->last_loss_bits, bits);
    atomic_fetch_add(&w->p->samples, pr->samples - w->samples_counted);
    w->samples_counted = pr->samples;
    if (cfg->test && w->res->test_loss_at)
        for (int i = 0; i < cfg->test_at_count; i++)
            if (cfg->test_at[i] == pr->iteration) {
                w->eval_status = evaluate_test(cfg, w->net, &w->res->test_loss_at[i],
                                               &w->res->test_accuracy_at[i], &w->eval_error);
                if (w->eval_status) return 1; /* stop: the error is reported below */
            }
    return 0;
}

void ln_run_result_release(ln_run_result *r)
{
    ln_history_release(&r->hist);
    ln_dealloc(r->test_loss_at);
    ln_dealloc(r->test_accuracy_at);
    r->test_loss_at = r->test_accuracy_at = NULL;
}

static ln_status one_run(pool *p, int r, ln_error *err)
{
    const ln_runs_config *cfg = p->cfg;
    ln_run_result *res = &p->results[r];
    res->seed = ln_seed_derive(cfg->train.seed, (uint64_t)r);
    res->test_loss = res->test_accuracy = NAN;

    ln_net *net = NULL;
    ln_status st = ln_net_clone(cfg->template_net, &net, err);
    if (!st && cfg->threads_per_run > 1) st = ln_net_set_threads(net, cfg->threads_per_run, err);
    if (st) {
        ln_net_free(net);
        return st;
    }
    ln_rng init;
    ln_rng_seed(&init, res->seed, LN_STREAM_INIT);
    ln_net_init_params(net, &init);

    if (cfg->test && cfg->test_at_count > 0) {
        res->test_loss_at = ln_alloc_zeroed((size_t)cfg->test_at_count, sizeof(double));
        res->test_accuracy_at = ln_alloc_zeroed((size_t)cfg->test_at_count, sizeof(double));
        if (!res->test_loss_at || !res->test_accuracy_at) {
            ln_net_free(net);
            return ln_fail(err, LN_ENOMEM, "runs: out of memory");
        }
        for (int i = 0; i < cfg->test_at_count; i++)
            res->test_loss_at[i] = res->test_accuracy_at[i] = NAN;
    }
    run_watch watch;
    memset(&watch, 0, sizeof watch);
    watch.p = p;
    watch.net = net;
    watch.res = res;
    ln_train_config tc = cfg->train;
    tc.seed = res->seed;
    tc.on_iteration = count_iteration;
    tc.user = &watch;
    tc.state = NULL; /* every run starts over, and writes no checkpoint */
    tc.checkpoint = NULL;
    tc.resume = 0;
    st = ln_train(net, cfg->data, &tc, &res->hist, err);
    if (!st && watch.eval_status) {
        st = watch.eval_status;
        if (err) *err = watch.eval_error;
    }
    if (!st) {
        atomic_fetch_add(&p->samples, res->hist.samples - watch.samples_counted);
        if (cfg->test && !res->hist.diverged && !res->hist.interrupted)
            st = evaluate_test(cfg, net, &res->test_loss, &res->test_accuracy, err);
        res->done = !st && !res->hist.interrupted;
    }
    ln_net_free(net);
    ln_release_free_memory();
    return st;
}

typedef struct {
    pool *p;
    int id;
} worker_arg;

static void record_failure(pool *p, int r, ln_status st, const ln_error *err)
{
    /* with p->lock held */
    if (!atomic_load(&p->failed)) {
        p->first_error = *err;
        p->first_error.code = st;
        atomic_store(&p->failed, r + 1);
    }
}

static void *worker(void *arg)
{
    pool *p = ((worker_arg *)arg)->p;
    work_slot *slot = &p->slots[((worker_arg *)arg)->id];
    for (;;) {
        pthread_mutex_lock(&p->lock);
        slot->waiting = 1;
        slot->run = -1;
        p->requests++;
        pthread_cond_signal(&p->wake);
        while (slot->waiting) pthread_cond_wait(&p->work, &p->lock);
        const int r = slot->run;
        pthread_mutex_unlock(&p->lock);
        if (r < 0) break;
        ln_error err;
        memset(&err, 0, sizeof err);
        ln_status st = one_run(p, r, &err);
        pthread_mutex_lock(&p->lock);
        if (st) {
            record_failure(p, r, st, &err);
        } else {
            atomic_fetch_add(&p->runs_done, 1);
            if (p->results[r].done) {
                p->finished[(p->finished_head + p->finished_count) % LN_RUNS_MAX_THREADS] = r;
                p->finished_count++;
            }
        }
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
        if (st) break;
    }
    pthread_mutex_lock(&p->lock);
    p->workers_left--;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* The next run for a worker, or -1 when there is none (all considered, a failure, a
 * stop). Called by the caller with p->lock held; the claim callback runs unlocked. */
static int next_assignment(pool *p)
{
    const ln_runs_config *cfg = p->cfg;
    for (;;) {
        if (atomic_load(&p->failed)) return -1;
        if (cfg->train.stop && atomic_load_explicit(cfg->train.stop, memory_order_relaxed)) return -1;
        const int r = p->next_candidate;
        if (r >= cfg->runs) return -1;
        p->next_candidate++;
        if (cfg->only && !cfg->only[r]) continue;
        if (!cfg->claim) return r;
        pthread_mutex_unlock(&p->lock);
        const int c = cfg->claim(cfg->user, r);
        pthread_mutex_lock(&p->lock);
        if (c > 0) return r;
        if (c < 0) {
            ln_error err;
            ln_fail(&err, LN_EINVAL, "runs: stopped by the claim of run %d", r + 1);
            record_failure(p, r, LN_EINVAL, &err);
            return -1;
        }
    }
}

int ln_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > LN_MAX_THREADS ? LN_MAX_THREADS : (int)n);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ln_runs_progress snapshot(pool *p, int wanted, int64_t per_run, double start)
{
    ln_runs_progress pr;
    pr.runs_done = atomic_load(&p->runs_done);
    pr.runs_total = wanted;
    pr.iterations_done = atomic_load(&p->iterations_done);
    pr.iterations_total = per_run * wanted;
    pr.samples = atomic_load(&p->samples);
    pr.seconds = now_seconds() - start;
    uint64_t bits = atomic_load(&p->last_loss_bits);
    memcpy(&pr.last_loss, &bits, sizeof bits);
    return pr;
}

ln_status ln_runs(const ln_runs_config *cfg, ln_run_result *results, ln_error *err)
{
    if (!cfg->template_net || !cfg->data)
        return ln_fail(err, LN_EINVAL, "runs: a model and data are required");
    if (cfg->runs < 1 || cfg->runs > LN_MAX_RUNS)
        return ln_fail(err, LN_EINVAL, "runs must be in [1, %d] (got %d)", LN_MAX_RUNS, cfg->runs);
    ln_status st = ln_train_config_check(&cfg->train, err);
    if (st) return st;

    int wanted = 0;
    for (int r = 0; r < cfg->runs; r++) wanted += !cfg->only || cfg->only[r];

    int threads = cfg->threads > 0 ? cfg->threads : ln_cpu_count();
    if (threads > wanted) threads = wanted > 0 ? wanted : 1;
    if (threads > LN_RUNS_MAX_THREADS) threads = LN_RUNS_MAX_THREADS;

    /* Limit: every run keeps its loss history (two doubles per iteration, the loss and
     * the rate, and a float per step, as ln_train counts it) until all are done, here
     * or in the caller that on_run hands it to (the Lua side keeps every run's losses
     * for the result). Refuse up front what could never be held, instead of failing
     * in the middle (or in the OOM killer) after hours of training. */
    if (cfg->data->count > 0 && cfg->train.batch > 0) {
        const double count = (double)cfg->data->count;
        const double batch = cfg->train.batch < cfg->data->count ? cfg->train.batch : count;
        const double steps = cfg->train.unit == LN_UNIT_STEP
                                 ? (double)cfg->train.iterations
                                 : (double)cfg->train.iterations * ceil(count / batch);
        const double bytes = (double)wanted * (16.0 * (double)cfg->train.iterations + 4.0 * steps);
        if (bytes > LN_RUNS_HISTORY_LIMIT)
            return ln_fail(err, LN_ENOMEM,
                           "%d runs of %lld iterations (%.0f steps each) would keep %.1f GiB "
                           "of loss history; the limit is %d GiB (use fewer runs or iterations)",
                           wanted, (long long)cfg->train.iterations, steps, bytes / (1 << 30),
                           (int)(LN_RUNS_HISTORY_LIMIT / (1 << 30)));
    }

    pool *p = ln_alloc_zeroed(1, sizeof *p);
    if (!p) return ln_fail(err, LN_ENOMEM, "runs: out of memory");
    p->cfg = cfg;
    p->results = results;
    atomic_init(&p->runs_done, 0);
    atomic_init(&p->iterations_done, 0);
    atomic_init(&p->samples, 0);
    atomic_init(&p->failed, 0);
    double nan = NAN;
    uint64_t nan_bits;
    memcpy(&nan_bits, &nan, sizeof nan_bits);
    atomic_init(&p->last_loss_bits, nan_bits);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->work, NULL);

    pthread_t ids[LN_RUNS_MAX_THREADS];
    worker_arg args[LN_RUNS_MAX_THREADS];
    int started = 0;
    p->workers_left = threads;
    for (; started < threads; started++) {
        args[started].p = p;
        args[started].id = started;
        if (pthread_create(&ids[started], NULL, worker, &args[started])) break;
    }
    pthread_mutex_lock(&p->lock);
    p->workers_left -= threads - started; /* threads that never started */
    pthread_mutex_unlock(&p->lock);
    st = LN_OK;
    if (started == 0) {
        st = ln_fail(err, LN_ENOMEM, "runs: cannot start a thread");
        goto out;
    }

    const double start = now_seconds();
    double last_report = start;
    const int64_t per_run = cfg->train.iterations;
    int handing_over = 1; /* until on_run asks to stop */
    pthread_mutex_lock(&p->lock);
    while (p->workers_left > 0 || p->finished_count > 0) {
        if (p->finished_count > 0) { /* first: a finished run goes to disk at once */
            const int r = p->finished[p->finished_head];
            p->finished_head = (p->finished_head + 1) % LN_RUNS_MAX_THREADS;
            p->finished_count--;
            if (cfg->on_run && handing_over) {
                pthread_mutex_unlock(&p->lock);
                const int stop = cfg->on_run(cfg->user, r, &results[r]);
                pthread_mutex_lock(&p->lock);
                if (stop) {
                    ln_error e;
                    ln_fail(&e, LN_EINVAL, "runs: stopped after run %d was handed over", r + 1);
                    record_failure(p, r, LN_EINVAL, &e);
                    handing_over = 0;
                }
            }
            /* a finished run shows at once, not at the next tick: short runs would
             * otherwise finish unseen between two ticks */
            if (cfg->on_progress && p->workers_left > 0) {
                pthread_mutex_unlock(&p->lock);
                ln_runs_progress pr = snapshot(p, wanted, per_run, start);
                cfg->on_progress(cfg->user, &pr);
                last_report = now_seconds();
                pthread_mutex_lock(&p->lock);
            }
            continue;
        }
        if (p->requests > 0) {
            for (int i = 0; i < started; i++) {
                if (!p->slots[i].waiting || p->slots[i].run >= 0) continue;
                const int r = next_assignment(p); /* may unlock to claim */
                p->slots[i].run = r;
                p->slots[i].waiting = 0;
                p->requests--;
            }
            pthread_cond_broadcast(&p->work);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec += 1;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->wake, &p->lock, &until);
        if (cfg->on_progress && p->workers_left > 0 && now_seconds() - last_report >= 0.1) {
            pthread_mutex_unlock(&p->lock);
            ln_runs_progress pr = snapshot(p, wanted, per_run, start);
            cfg->on_progress(cfg->user, &pr);
            last_report = now_seconds();
            pthread_mutex_lock(&p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < started; i++) pthread_join(ids[i], NULL);
    if (cfg->on_progress) {
        ln_runs_progress pr = snapshot(p, wanted, per_run, start);
        cfg->on_progress(cfg->user, &pr);
    }
    if (atomic_load(&p->failed)) {
        if (err) *err = p->first_error;
        st = p->first_error.code;
    }
out:
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->work);
    ln_dealloc(p);
    return st;
}
