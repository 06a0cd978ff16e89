/* train.c - the training loop (mini-batch SGD-style steps over a dataset) and
 * evaluation. Everything a run needs is allocated before its first step. */
#include "lunet.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Samples of the next step that a step asks the cache for (ln_dataset_prefetch) */
#define PREFETCH_SAMPLES 4

/* ln_train_config.stop may be set from a signal handler (the Lua binding's Ctrl-C):
 * C11 allows that only for lock-free atomics (7.14.1.1), so atomic_int must be one. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic_int must be lock-free: the stop flag is set "
                                          "from signal handlers");

/* Most bytes of loss history one run may record (see ln_train). */
#define LN_HISTORY_LIMIT ((double)(1u << 30))

/* A clock's reading in seconds (0 if it cannot be read). CLOCK_MONOTONIC for the wall
 * time; CLOCK_PROCESS_CPUTIME_ID for the CPU time of the whole process (all its
 * threads), a system call (1.5 us on the development VM), so read once at each end of
 * the training, not per iteration, which with unit = "step" is every step (a batch-1
 * step of the study takes about 20 us) */
static double clock_seconds(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ln_train_config_defaults(ln_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->loss = LN_LOSS_NLL;
    cfg->optim = ln_optim_defaults(LN_OPT_SGD);
    cfg->batch = LN_DEFAULT_BATCH;
    cfg->iterations = 1;
    cfg->unit = LN_UNIT_EPOCH;
    cfg->shuffle = 1;
    cfg->seed = 1;
}

ln_status ln_train_config_check(const ln_train_config *cfg, ln_error *err)
{
    if ((int)cfg->loss < 0 || cfg->loss > LN_LOSS_MSE)
        return ln_fail(err, LN_EINVAL, "loss: unknown kind %d", (int)cfg->loss);
    if (cfg->batch < 1) return ln_fail(err, LN_EINVAL, "batch must be >= 1 (got %d)", cfg->batch);
    if (cfg->iterations < 1 || cfg->iterations > ((int64_t)1 << 40))
        return ln_fail(err, LN_EINVAL, "iterations must be >= 1 (got %lld)",
                       (long long)cfg->iterations);
    if (cfg->unit != LN_UNIT_EPOCH && cfg->unit != LN_UNIT_STEP)
        return ln_fail(err, LN_EINVAL, "unit must be epoch or step");
    return ln_optim_spec_check(&cfg->optim, err);
}

void ln_history_release(ln_history *hist)
{
    ln_dealloc(hist->loss);
    ln_dealloc(hist->step_loss);
    ln_dealloc(hist->lr);
    ln_dealloc(hist->val_iteration);
    ln_dealloc(hist->val_loss);
    ln_dealloc(hist->val_accuracy);
    memset(hist, 0, sizeof *hist);
}

/* The data must fit the net: same per-sample size in, enough classes out. */
static ln_status check_fit(ln_net *net, const ln_dataset *data, ln_loss_kind loss, ln_error *err)
{
    char want[64];
    int64_t per_sample = (int64_t)data->channels * data->height * data->width;
    ln_shape in = ln_net_input_shape(net);
    if (ln_shape_numel(in) != per_sample)
        return ln_fail(err, LN_ESHAPE, "data: samples are %dx%dx%d but the net expects %s",
                       data->channels, data->height, data->width,
                       ln_shape_format(in, want, sizeof want));
    ln_shape out = ln_net_output_shape(net);
    if (out.ndim != 1)
        return ln_fail(err, LN_ESHAPE, "net: output must be a vector of class scores (got %s)",
                       ln_shape_format(out, want, sizeof want));
    if (out.dim[0] < data->classes)
        return ln_fail(err, LN_ESHAPE, "data has %d classes but the net outputs %lld (loss %s)",
                       data->classes, (long long)out.dim[0], ln_loss_name(loss));
    if (data->count < 1) return ln_fail(err, LN_EINVAL, "data: the dataset is empty");
    return LN_OK;
}

static void shuffle(int64_t *order, int64_t n, int enabled, ln_rng *rng)
{
    for (int64_t i = 0; i < n; i++) order[i] = i;
    if (!enabled) return;
    /* Fisher-Yates from the end; n fits in 32 bits (checked by the caller). */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = ln_rng_below(rng, (uint32_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

void ln_train_state_release(ln_train_state *s)
{
    if (!s) return;
    ln_optim_release(&s->opt);
    ln_dealloc(s->order);
    memset(s, 0, sizeof *s);
}

/* Can the kept optimizer continue under the new spec? Same kind, and for SGD the same
 * state layout (a momentum buffer or none). */
static int optim_continues(const ln_optim *opt, const ln_optim_spec *spec, int64_t count)
{
    if (opt->count != count || opt->spec.kind != spec->kind) return 0;
    if (spec->kind == LN_OPT_SGD) return (opt->spec.momentum != 0.0) == (spec->momentum != 0.0);
    return 1;
}

/* Brings the state to the point where this call starts: a fresh start (new optimizer,
 * streams from the seed, counters at 0) or the kept one with the new hyperparameters. */
static ln_status state_prepare(ln_train_state *ts, const ln_train_config *cfg, int64_t params,
                               int64_t count, ln_error *err)
{
    if (!ts->active || ts->seed != cfg->seed || !optim_continues(&ts->opt, &cfg->optim, params)) {
        ln_train_state_release(ts);
        ln_status st = ln_optim_init(&ts->opt, &cfg->optim, params, err);
        if (st) return st;
        ln_rng_seed(&ts->shuffle_rng, cfg->seed, LN_STREAM_SHUFFLE);
        ln_rng_seed(&ts->dropout_rng, cfg->seed, LN_STREAM_DROPOUT);
        ts->seed = cfg->seed;
        ts->active = 1;
    }
    if (ts->count != count || !ts->order) {
        ln_dealloc(ts->order);
        ts->order = ln_alloc_zeroed((size_t)count, sizeof(int64_t));
        if (!ts->order) {
            ln_train_state_release(ts);
            return ln_fail(err, LN_ENOMEM, "train: out of memory (order of %lld samples)",
                           (long long)count);
        }
        ts->count = count;
        ts->pos = count; /* another dataset: its first epoch starts now */
    }
    /* Hyperparameters of this call apply from its first step; the state stays. */
    ts->opt.spec = cfg->optim;
    return LN_OK;
}

/* Keras' EarlyStopping / Lightning's: returns 1 when the run should stop now. */
typedef struct {
    double best;
    int64_t wait;
} stop_watch;

static int stop_check(const ln_stop_rule *rule, stop_watch *w, double value)
{
    if (value < w->best - rule->min_delta) {
        w->best = value;
        w->wait = 0;
        return 0;
    }
    w->wait++;
    return w->wait >= rule->patience;
}

static ln_status check_extras(ln_net *net, const ln_train_config *cfg, ln_error *err)
{
    ln_status st = ln_schedule_check(&cfg->schedule, err);
    if (st) return st;
    if (cfg->early.metric != LN_STOP_NONE) {
        if (cfg->early.metric != LN_STOP_LOSS && cfg->early.metric != LN_STOP_VAL_LOSS)
            return ln_fail(err, LN_EINVAL, "stop: unknown metric %d", (int)cfg->early.metric);
        if (cfg->early.patience < 0)
            return ln_fail(err, LN_EINVAL, "stop: patience must be >= 0 (got %lld)",
                           (long long)cfg->early.patience);
        if (!(cfg->early.min_delta >= 0.0) || !isfinite(cfg->early.min_delta))
            return ln_fail(err, LN_EINVAL, "stop: min_delta must be >= 0 and finite (got %g)",
                           cfg->early.min_delta);
        if (cfg->early.metric == LN_STOP_VAL_LOSS && !cfg->validate)
            return ln_fail(err, LN_EINVAL, "stop: metric val_loss needs a validation set (validate)");
    }
    if (cfg->validate) {
        ln_error inner; /* err may be NULL (ln_fail allows it) */
        st = check_fit(net, cfg->validate, cfg->loss, &inner);
        if (st) return ln_fail(err, st, "validate: %s", inner.msg);
    }
    return LN_OK;
}

/* A resume finishes the call its checkpoint was written by: same seed, optimizer kind
 * and dataset size, and iterations left to do. */
static ln_status check_resume(const ln_train_state *ts, const ln_train_config *cfg,
                              int64_t params, int64_t count, ln_error *err)
{
    if (!cfg->state || !ts->active)
        return ln_fail(err, LN_EINVAL, "resume: no checkpoint loaded");
    if (ts->seed != cfg->seed)
        return ln_fail(err, LN_EINVAL, "resume: the checkpoint was written with seed %llu, not %llu",
                       (unsigned long long)ts->seed, (unsigned long long)cfg->seed);
    if (!optim_continues(&ts->opt, &cfg->optim, params))
        return ln_fail(err, LN_EINVAL, "resume: the checkpoint holds the state of %s, not of %s",
                       ln_optim_name(ts->opt.spec.kind), ln_optim_name(cfg->optim.kind));
    if (ts->count != count)
        return ln_fail(err, LN_EINVAL,
                       "resume: the checkpoint was trained on %lld samples, this data has %lld",
                       (long long)ts->count, (long long)count);
    if (ts->call_done >= cfg->iterations)
        return ln_fail(err, LN_EINVAL,
                       "resume: the checkpoint has done %lld of the %lld iterations already",
                       (long long)ts->call_done, (long long)cfg->iterations);
    return LN_OK;
}

ln_status ln_train(ln_net *net, const ln_dataset *data, const ln_train_config *cfg,
                   ln_history *hist, ln_error *err)
{
    memset(hist, 0, sizeof *hist);
    ln_status st = ln_train_config_check(cfg, err);
    if (st) return st;
    st = check_fit(net, data, cfg->loss, err);
    if (st) return st;
    st = check_extras(net, cfg, err);
    if (st) return st;
    if (data->count > (int64_t)UINT32_MAX)
        return ln_fail(err, LN_EINVAL, "data: more than 2^32 samples");

    const int64_t count = data->count;
    ln_train_state local;
    memset(&local, 0, sizeof local);
    ln_train_state *ts = cfg->state ? cfg->state : &local;
    if (cfg->resume) {
        st = check_resume(ts, cfg, ln_net_param_count(net), count, err);
        if (st) return st;
    }
    /* A resumed call finishes the iterations its checkpoint had not done. */
    const int64_t first = cfg->resume ? ts->call_done : 0;
    const int64_t remaining = cfg->iterations - first;
    const int batch = (int)(cfg->batch < count ? cfg->batch : count);
    const int64_t steps_per_epoch = (count + batch - 1) / batch;
    size_t steps_needed = (size_t)remaining;
    if (cfg->unit == LN_UNIT_EPOCH &&
        !ln_mul_size((size_t)remaining, (size_t)steps_per_epoch, &steps_needed))
        return ln_fail(err, LN_EINVAL, "iterations: too many steps");
    if (steps_needed > ((size_t)1 << 32))
        return ln_fail(err, LN_EINVAL, "iterations: %zu steps is too many to record",
                       steps_needed);
    /* Limit: the history (two doubles per iteration, a float per step) is allocated up
     * front; an absurd request is refused here, not by the allocator or the OOM killer. */
    const double history_bytes = 16.0 * (double)remaining + 4.0 * (double)steps_needed;
    if (history_bytes > LN_HISTORY_LIMIT)
        return ln_fail(err, LN_ENOMEM,
                       "iterations: %lld iterations (%zu steps) would record %.1f GiB of losses; "
                       "the limit is %d GiB per run",
                       (long long)cfg->iterations, steps_needed, history_bytes / (1 << 30),
                       (int)(LN_HISTORY_LIMIT / (1 << 30)));
    /* A call that continues in the middle of an epoch may need one step more per
     * epoch boundary it crosses; the count of steps is bounded by iterations x steps
     * per epoch plus one epoch either way. */
    const int64_t total_steps =
        (int64_t)steps_needed + (cfg->unit == LN_UNIT_EPOCH ? steps_per_epoch : 0);
    const int classes = (int)ln_net_output_shape(net).dim[0];
    const int64_t every = cfg->validate_every > 0 ? cfg->validate_every : 1;
    const int64_t max_validations = cfg->validate ? remaining / every + 2 : 0;
    const int64_t checkpoint_every = cfg->checkpoint_every > 0 ? cfg->checkpoint_every : 1;

    st = ln_net_reserve(net, batch, err);
    if (st) return st;
    st = state_prepare(ts, cfg, ln_net_param_count(net), count, err);
    if (st) return st;
    if (!cfg->resume) {
        ts->call_done = 0;
        ts->stop_best = INFINITY;
        ts->stop_wait = 0;
    }
    hist->first_iteration = first;
    ln_optim *opt = &ts->opt;
    const double base_lr = cfg->optim.lr;

    float *dpred = ln_alloc_zeroed((size_t)batch * (size_t)classes, sizeof(float));
    int32_t *labels = ln_alloc_zeroed((size_t)batch, sizeof(int32_t));
    hist->loss = ln_alloc_zeroed((size_t)remaining, sizeof(double));
    hist->lr = ln_alloc_zeroed((size_t)remaining, sizeof(double));
    hist->step_loss = ln_alloc_zeroed((size_t)total_steps, sizeof(float));
    if (max_validations > 0) {
        hist->val_iteration = ln_alloc_zeroed((size_t)max_validations, sizeof(int64_t));
        hist->val_loss = ln_alloc_zeroed((size_t)max_validations, sizeof(double));
        hist->val_accuracy = ln_alloc_zeroed((size_t)max_validations, sizeof(double));
    }
    if (!dpred || !labels || !hist->loss || !hist->lr || !hist->step_loss ||
        (max_validations > 0 && (!hist->val_iteration || !hist->val_loss || !hist->val_accuracy))) {
        st = ln_fail(err, LN_ENOMEM, "train: out of memory (%lld steps of batch %d)",
                     (long long)total_steps, batch);
        goto done;
    }

    const double start = clock_seconds(CLOCK_MONOTONIC), cpu_start = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    stop_watch watch = {ts->stop_best, ts->stop_wait};

    double iter_sum = 0.0;
    int64_t iter_samples = 0;
    int iteration_started = 0;
    for (int64_t step = 0; step < total_steps; step++) {
        /* atomic: another thread (or a signal handler) may set it at any time */
        if (cfg->stop && atomic_load_explicit(cfg->stop, memory_order_relaxed)) {
            hist->interrupted = 1;
            break;
        }
        if (ts->pos >= count) {
            shuffle(ts->order, count, cfg->shuffle, &ts->shuffle_rng);
            ts->pos = 0;
        }
        if (cfg->schedule.kind != LN_SCHED_NONE)
            opt->spec.lr = ln_schedule_lr(&cfg->schedule, base_lr,
                                          cfg->schedule.per == LN_UNIT_STEP ? ts->steps : ts->epochs);
        if (!iteration_started) {
            hist->lr[hist->iterations] = opt->spec.lr;
            iteration_started = 1;
        }
        const int n = (int)(count - ts->pos < batch ? count - ts->pos : batch);
        /* straight into the net's input slot: no batch buffer, no second copy */
        float *x = ln_net_gather_input(net, data, ts->order + ts->pos, n, labels);
        ts->pos += n;
        /* the next step's first samples (of this epoch's order), fetched while this one
         * trains */
        ln_dataset_prefetch(data, ts->order + ts->pos, count - ts->pos < PREFETCH_SAMPLES ? count - ts->pos : PREFETCH_SAMPLES);

        const float *pred;
        double loss;
        st = ln_net_forward(net, x, n, 1, &ts->dropout_rng, &pred, err);
        if (!st) st = ln_loss(cfg->loss, pred, n, classes, labels, NULL, &loss, dpred, err);
        if (st) goto done;
        hist->step_loss[step] = (float)loss;
        hist->steps = step + 1;
        hist->samples += n;
        iter_sum += loss * n;
        iter_samples += n;

        const int diverged = !isfinite(loss);
        if (!diverged) {
            st = ln_net_backward(net, dpred, NULL, err);
            if (st) goto done;
            ln_net_optim_step(net, opt); /* ln_optim_step over the net's threads */
            ts->steps++;
        }
        if (ts->pos >= count) ts->epochs++;
        const int iteration_done =
            diverged || cfg->unit == LN_UNIT_STEP || ts->pos >= count;
        if (iteration_done) {
            /* Epoch loss: the sample-weighted mean of its steps' batch means. */
            const int64_t it = first + ++hist->iterations; /* the call's iteration number */
            const double it_loss = diverged ? loss : iter_sum / (double)iter_samples;
            hist->loss[hist->iterations - 1] = it_loss;
            iter_sum = 0.0;
            iter_samples = 0;
            iteration_started = 0;
            hist->seconds = clock_seconds(CLOCK_MONOTONIC) - start;
            if (diverged) {
                hist->diverged = 1;
                break;
            }
            int stop_now = 0;
            if (cfg->early.metric == LN_STOP_LOSS) stop_now = stop_check(&cfg->early, &watch, it_loss);
            if (cfg->validate && (it % every == 0 || it == cfg->iterations)) {
                const int64_t v = hist->validations++;
                hist->val_iteration[v] = it;
                st = ln_evaluate(net, cfg->validate, cfg->loss, batch, &hist->val_loss[v],
                                 &hist->val_accuracy[v], err);
                if (st) goto done;
                if (cfg->early.metric == LN_STOP_VAL_LOSS)
                    stop_now = stop_check(&cfg->early, &watch, hist->val_loss[v]);
            }
            if (cfg->checkpoint && (it % checkpoint_every == 0 || it == cfg->iterations || stop_now)) {
                ts->call_done = it;
                ts->stop_best = watch.best;
                ts->stop_wait = watch.wait;
                ln_error ck;
                if (ln_checkpoint_save(net, ts, cfg->checkpoint, &ck)) {
                    /* the results so far are kept; the run stops and says why */
                    snprintf(hist->checkpoint_error, sizeof hist->checkpoint_error, "%s", ck.msg);
                    hist->interrupted = it < cfg->iterations;
                    break;
                }
            }
            if (cfg->on_iteration) {
                ln_progress p = {it, cfg->iterations, hist->steps, hist->samples, it_loss,
                                 hist->seconds};
                if (cfg->on_iteration(cfg->user, &p)) {
                    hist->interrupted = it < cfg->iterations;
                    break;
                }
            }
            if (stop_now && it < cfg->iterations) {
                hist->stopped_at = it;
                break;
            }
            if (it >= cfg->iterations) break;
        }
    }
    hist->seconds = clock_seconds(CLOCK_MONOTONIC) - start;
    hist->cpu_seconds = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
    st = LN_OK;
done:
    ln_net_forget_forward(net); /* its activations hold a training batch, no caller's */
    /* The rate of the last call stays the optimizer's rate (a schedule recomputes it). */
    opt->spec.lr = base_lr;
    ln_dealloc(dpred);
    ln_dealloc(labels);
    if (ts == &local || st) ln_train_state_release(ts);
    if (st) ln_history_release(hist);
    return st;
}

ln_status ln_evaluate(ln_net *net, const ln_dataset *data, ln_loss_kind loss, int batch,
                      double *mean_loss, double *accuracy, ln_error *err)
{
    return ln_evaluate_confusion(net, data, loss, batch, mean_loss, accuracy, NULL, err);
}

ln_status ln_evaluate_confusion(ln_net *net, const ln_dataset *data, ln_loss_kind loss, int batch,
                                double *mean_loss, double *accuracy, int64_t *confusion,
                                ln_error *err)
{
    ln_status st = check_fit(net, data, loss, err);
    if (st) return st;
    if (batch < 1) return ln_fail(err, LN_EINVAL, "evaluate: batch must be >= 1 (got %d)", batch);
    if (batch > data->count) batch = (int)data->count;
    const int64_t per_sample = (int64_t)data->channels * data->height * data->width;
    const int classes = (int)ln_net_output_shape(net).dim[0];
    /* forwarded a chunk at a time (the bits of whole batches), the loss over the batch */
    const int chunk = ln_net_eval_chunk(net, batch);
    if (chunk > ln_net_reserved_batch(net)) {
        st = ln_net_reserve(net, chunk, err);
        if (st) return st;
    }
    /* a batch's outputs gathered from its chunks (none when a batch is one chunk) */
    float *outputs = NULL;
    if (chunk < batch) {
        outputs = ln_alloc(sizeof(float) * (size_t)batch * (size_t)classes);
        if (!outputs) return ln_fail(err, LN_ENOMEM, "evaluate: out of memory for %d outputs", batch);
    }
    double sum = 0.0;
    int64_t correct = 0;
    if (confusion) memset(confusion, 0, sizeof *confusion * (size_t)classes * (size_t)classes);
    for (int64_t start = 0; start < data->count; start += batch) {
        const int n = (int)(data->count - start < batch ? data->count - start : batch);
        const float *pred = NULL;
        double l;
        for (int done = 0; !st && done < n; done += chunk) {
            const int m = n - done < chunk ? n - done : chunk;
            const int64_t first = start + done;
            /* float storage is read in place; bytes are converted into the net's input slot */
            const float *x = data->images ? data->images + first * per_sample : ln_net_input(net);
            if (!data->images) ln_dataset_read(data, first, m, ln_net_input(net));
            st = ln_net_forward(net, x, m, 0, NULL, &pred, err);
            if (!st && outputs)
                memcpy(outputs + (int64_t)done * classes, pred, sizeof(float) * (size_t)m * (size_t)classes);
        }
        if (outputs) pred = outputs;
        if (!st) st = ln_loss(loss, pred, n, classes, data->labels + start, NULL, &l, NULL, err);
        if (st) break;
        sum += l * n;
        for (int i = 0; i < n; i++) {
            const float *row = pred + (int64_t)i * classes;
            int best = 0;
            for (int c = 1; c < classes; c++)
                if (row[c] > row[best]) best = c;
            const int32_t truth = data->labels[start + i];
            correct += best == truth;
            if (confusion) confusion[(int64_t)truth * classes + best]++; /* truth < classes: checked */
        }
    }
    ln_dealloc(outputs);
    ln_net_forget_forward(net); /* its activations hold a batch of data, no caller's */
    if (st) return st;
    if (mean_loss) *mean_loss = sum / (double)data->count;
    if (accuracy) *accuracy = (double)correct / (double)data->count;
    return LN_OK;
}
