/* test_alloc_failure.c - every engine operation survives allocation failure.
 *
 * The engine allocates only through ln_alloc, which has a test hook:
 * ln_alloc_fail_after(k) lets k more allocations succeed and fails all later ones.
 * For each operation below, k runs 0, 1, 2, ... until the operation succeeds; every
 * failing attempt must return LN_ENOMEM with a message (and leave its inputs usable),
 * and nothing may crash or leak: run this under valgrind (tools/valgrind.sh) or in the
 * SANITIZE=1 build (LeakSanitizer checks at exit). The size limits are checked too:
 * absurd requests fail at once with LN_ENOMEM naming the limit.
 *
 * Output: "ok N - desc" or "not ok N - desc: detail", then "# passed P failed F";
 * the exit status is 0 iff nothing failed.
 */
#include "../../core/lunet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "fixture.h"
#include "tap.h"

static tap T; /* this program's checks */

static char dir[64];

/* ------------------------------------------------------------ fixtures */

static ln_layer_spec layers[16];
static int layer_count;
static ln_shape input;

/* Every layer kind once: conv, pools, batchnorm 2d/1d, dropouts, activations. */
static void make_specs(void)
{
    int n = 0;
    layers[n++] = ln_conv2d(1, 4, 3, 1, 1);         /* 4x8x8 */
    layers[n++] = ln_batchnorm(LN_BATCHNORM2D, 4);
    layers[n++] = ln_simple_layer(LN_RELU);
    layers[n++] = ln_maxpool2d(2, 0);                /* 4x4x4 */
    layers[n++] = ln_dropout(LN_DROPOUT2D, 0.25f);
    layers[n++] = ln_avgpool2d(2, 1);                /* 4x3x3 */
    layers[n++] = ln_simple_layer(LN_TANH);
    layers[n++] = ln_simple_layer(LN_FLATTEN);       /* 36 */
    layers[n++] = ln_linear(36, 8);
    layers[n++] = ln_batchnorm(LN_BATCHNORM1D, 8);
    layers[n++] = ln_simple_layer(LN_SIGMOID);
    layers[n++] = ln_dropout(LN_DROPOUT, 0.5f);
    layers[n++] = ln_linear(8, 3);
    layers[n++] = ln_simple_layer(LN_LOG_SOFTMAX);
    layer_count = n;
    input = ln_shape_make(3, (int64_t[]){1, 8, 8});
}

static ln_net *new_net(void)
{
    ln_rng rng;
    ln_rng_seed(&rng, 1, LN_STREAM_INIT);
    return fixture_net(layers, layer_count, input, &rng);
}

static ln_dataset *new_data(int64_t count)
{
    float *images = malloc(sizeof(float) * (size_t)count * 64);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)count);
    for (int64_t i = 0; i < count; i++) {
        labels[i] = (int32_t)(i % 3);
        for (int p = 0; p < 64; p++) images[i * 64 + p] = (float)((i * 7 + p * 3) % 11) / 11.0f - 0.5f;
    }
    ln_dataset *ds = fixture_dataset(images, labels, count, 1, 8, 8);
    free(images);
    free(labels);
    return ds;
}

/* ------------------------------------------------------------ the sweep */

typedef struct {
    ln_net *net;
    ln_dataset *data, *test;
    int threads;
    char path[128], gz[128], labels[128], csv[128], cifar[128], ckpt[128];
    unsigned char *bytes;
    size_t size;
} ctx;

typedef struct {
    const char *name;
    void (*setup)(ctx *c);                  /* with the hook off */
    ln_status (*run)(ctx *c, ln_error *err); /* with the hook on; frees what it made */
    void (*cleanup)(ctx *c);                /* with the hook off */
} op;

static void sweep(const op *o, ctx *c)
{
    char detail[600] = "";
    long failed_attempts = 0;
    int ok = 0;
    for (long k = 0; k < 100000; k++) {
        if (o->setup) o->setup(c);
        ln_error err;
        memset(&err, 0, sizeof err);
        ln_alloc_fail_after(k);
        ln_status st = o->run(c, &err);
        ln_alloc_fail_after(-1);
        if (o->cleanup) o->cleanup(c);
        if (st == LN_OK) {
            ok = failed_attempts > 0;
            if (!ok) snprintf(detail, sizeof detail, "succeeded without allocating");
            break;
        }
        failed_attempts++;
        if (st != LN_ENOMEM || err.code != LN_ENOMEM || err.msg[0] == '\0') {
            snprintf(detail, sizeof detail, "allocation %ld failed: %s (code %s): '%s'", k,
                     ln_status_name(st), ln_status_name(err.code), err.msg);
            break;
        }
    }
    if (ok)
        tap_check(&T, 1, "%s: %ld allocation failures, each LN_ENOMEM with a message, then success", o->name,
                  failed_attempts);
    else
        tap_check(&T, 0, "%s: %s", o->name, detail[0] ? detail : "never succeeded");
}

/* ------------------------------------------------------------ operations */

static void setup_net(ctx *c) { c->net = new_net(); }
static void cleanup_net(ctx *c)
{
    ln_net_free(c->net);
    c->net = NULL;
}

static ln_status run_create(ctx *c, ln_error *err)
{
    (void)c;
    ln_net *net = (ln_net *)1;
    ln_rng rng;
    ln_rng_seed(&rng, 3, LN_STREAM_INIT);
    ln_status st = ln_net_create(&net, layers, layer_count, input, &rng, err);
    if (st && net != NULL) return LN_EINVAL; /* must not hand out anything on failure */
    ln_net_free(net);
    return st;
}

static ln_status run_clone(ctx *c, ln_error *err)
{
    ln_net *copy = NULL;
    ln_status st = ln_net_clone(c->net, &copy, err);
    ln_net_free(copy);
    return st;
}

static ln_status run_reserve(ctx *c, ln_error *err) { return ln_net_reserve(c->net, 5, err); }

static ln_status run_forward_backward(ctx *c, ln_error *err)
{
    float x[3 * 64], dout[3 * 3], dx[3 * 64];
    for (int i = 0; i < 3 * 64; i++) x[i] = (float)(i % 9) * 0.1f;
    for (int i = 0; i < 9; i++) dout[i] = 0.25f;
    ln_rng rng;
    ln_rng_seed(&rng, 1, LN_STREAM_DROPOUT);
    const float *y;
    ln_status st = ln_net_forward(c->net, x, 3, 1, &rng, &y, err);
    if (st) return st;
    return ln_net_backward(c->net, dout, dx, err);
}

static void setup_train(ctx *c)
{
    c->net = new_net();
    c->data = new_data(23);
    c->test = new_data(7);
}
static void cleanup_train(ctx *c)
{
    cleanup_net(c);
    ln_dataset_free(c->data);
    ln_dataset_free(c->test);
    c->data = c->test = NULL;
}

static ln_train_config train_config(void)
{
    ln_train_config cfg;
    ln_train_config_defaults(&cfg);
    cfg.batch = 5;
    cfg.iterations = 2;
    cfg.optim = ln_adam_spec(LN_OPT_ADAM, 1e-3);
    return cfg;
}

static ln_status run_train(ctx *c, ln_error *err)
{
    ln_train_config cfg = train_config();
    ln_history h;
    ln_status st = ln_train(c->net, c->data, &cfg, &h, err);
    if (!st && (h.iterations != 2 || h.steps != 10)) st = LN_EINVAL;
    ln_history_release(&h);
    return st;
}

/* threads inside the run: the pool and every thread's scratch (reserved first, so
 * that ln_net_set_threads has to grow the scratch) */
static ln_status run_train_threads(ctx *c, ln_error *err)
{
    ln_status st = ln_net_reserve(c->net, 5, err);
    if (!st) st = ln_net_set_threads(c->net, 3, err);
    if (!st && ln_net_threads(c->net) != 3) st = LN_EINVAL;
    return st ? st : run_train(c, err);
}

static ln_status run_evaluate(ctx *c, ln_error *err)
{
    double loss, acc;
    return ln_evaluate(c->net, c->data, LN_LOSS_NLL, 4, &loss, &acc, err);
}

static ln_status run_runs(ctx *c, ln_error *err)
{
    ln_runs_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.template_net = c->net;
    cfg.data = c->data;
    cfg.test = c->test;
    cfg.train = train_config();
    cfg.runs = 3;
    cfg.threads = c->threads;
    int64_t test_at[] = {1};
    cfg.test_at = test_at;
    cfg.test_at_count = 1;
    ln_run_result results[3];
    memset(results, 0, sizeof results);
    ln_status st = ln_runs(&cfg, results, err);
    for (int r = 0; r < 3; r++) {
        if (!st && (!results[r].done || results[r].hist.iterations != 2)) st = LN_EINVAL;
        ln_run_result_release(&results[r]);
    }
    return st;
}

static void setup_runs1(ctx *c)
{
    setup_train(c);
    c->threads = 1;
}
static void setup_runs2(ctx *c)
{
    setup_train(c);
    c->threads = 2;
}

static ln_status run_save_load(ctx *c, ln_error *err)
{
    ln_status st = ln_net_save(c->net, c->path, err);
    if (st) return st;
    ln_net *back = NULL;
    st = ln_net_load(c->path, &back, err);
    if (!st && ln_net_param_count(back) != ln_net_param_count(c->net)) st = LN_EINVAL;
    ln_net_free(back);
    return st;
}

static void setup_bytes(ctx *c)
{
    setup_net(c);
    ln_error err;
    if (ln_net_save(c->net, c->path, &err)) {
        fprintf(stderr, "fixture save: %s\n", err.msg);
        exit(2);
    }
    FILE *f = fopen(c->path, "rb");
    c->bytes = malloc(1 << 20);
    c->size = fread(c->bytes, 1, 1 << 20, f);
    fclose(f);
}
static void cleanup_bytes(ctx *c)
{
    cleanup_net(c);
    free(c->bytes);
    c->bytes = NULL;
}

static ln_status run_load_bytes(ctx *c, ln_error *err)
{
    ln_net *back = NULL;
    ln_status st = ln_net_load_bytes(c->bytes, c->size, "bytes", &back, err);
    ln_net_free(back);
    return st;
}

/* What a dataset step returned: its status, or a failure when the dataset it made
 * does not hold `want` samples; the dataset is freed either way. */
static ln_status made_dataset(ln_status st, ln_dataset *ds, int64_t want, const char *what, ln_error *err)
{
    if (!st && ds->count != want)
        st = ln_fail(err, LN_EINVAL, "%s: %lld samples, want %lld", what, (long long)ds->count, (long long)want);
    ln_dataset_free(ds);
    return st;
}

static ln_status run_dataset_from(ctx *c, ln_error *err)
{
    (void)c;
    float images[2 * 4] = {0};
    int32_t labels[2] = {0, 1};
    ln_dataset *ds = NULL;
    ln_status st = ln_dataset_from_arrays(images, labels, 2, 1, 2, 2, &ds, err);
    return made_dataset(st, ds, 2, "from arrays", err);
}

static void setup_data(ctx *c) { c->data = new_data(30); }
static void cleanup_data(ctx *c)
{
    ln_dataset_free(c->data);
    c->data = NULL;
}

static ln_status run_subset(ctx *c, ln_error *err)
{
    ln_rng rng;
    ln_rng_seed(&rng, 5, LN_STREAM_SUBSET);
    ln_dataset *sub = NULL;
    ln_status st = ln_dataset_subset(c->data, 10, 1, 1, &rng, &sub, err);
    return made_dataset(st, sub, 10, "subset", err);
}

static ln_status run_idx_gz(ctx *c, ln_error *err)
{
    ln_idx idx;
    ln_status st = ln_idx_read(c->gz, &idx, err);
    ln_idx_release(&idx);
    return st;
}

static ln_status run_dataset_load(ctx *c, ln_error *err)
{
    ln_dataset *ds = NULL;
    ln_status st = ln_dataset_load_idx(c->gz, c->labels, 0, 0.1f, 0.3f, &ds, err);
    return made_dataset(st, ds, 3, "idx", err);
}

static ln_status run_dataset_csv(ctx *c, ln_error *err)
{
    ln_dataset *ds = NULL;
    ln_norm norm = {.mode = LN_NORM_AUTO};
    ln_status st = ln_dataset_load_csv(c->csv, 1, 1, 2, 2, 1, 0, &norm, &ds, err);
    return made_dataset(st, ds, 3, "csv", err);
}

static ln_status run_dataset_cifar(ctx *c, ln_error *err)
{
    ln_dataset *ds = NULL;
    ln_norm norm = {.mode = LN_NORM_GIVEN, .count = 3, .mean = {0.5, 0.5, 0.5}, .std = {0.25, 0.25, 0.25}};
    const char *paths[2] = {c->cifar, c->cifar};
    ln_status st = ln_dataset_load_cifar(paths, 2, 0, &norm, &ds, err);
    return made_dataset(st, ds, 4, "cifar", err);
}

/* ln_train continuing with a kept state, validating, stopping early, on a schedule and
 * writing checkpoints; then the checkpoint read back. */
static ln_status run_train_checkpoint(ctx *c, ln_error *err)
{
    ln_train_config cfg = train_config();
    ln_train_state ts;
    memset(&ts, 0, sizeof ts);
    cfg.state = &ts;
    cfg.validate = c->test;
    cfg.early.metric = LN_STOP_VAL_LOSS;
    cfg.early.patience = 5;
    cfg.schedule.kind = LN_SCHED_COSINE;
    cfg.schedule.t_max = 4;
    cfg.checkpoint = c->ckpt;
    ln_history h;
    ln_status st = ln_train(c->net, c->data, &cfg, &h, err);
    /* a checkpoint that could not be written stops the run and says why */
    if (!st && h.checkpoint_error[0])
        st = ln_fail(err, strstr(h.checkpoint_error, "out of memory") ? LN_ENOMEM : LN_EIO, "%s",
                     h.checkpoint_error);
    if (!st && (h.iterations != 2 || h.validations != 2)) st = ln_fail(err, LN_EINVAL, "train: wrong counts");
    ln_history_release(&h);
    if (!st) st = ln_train(c->net, c->data, &cfg, &h, err); /* continues */
    if (!st) ln_history_release(&h);
    ln_train_state back;
    memset(&back, 0, sizeof back);
    if (!st) st = ln_checkpoint_load(c->ckpt, c->net, &back, err);
    if (!st && back.call_done != 2) st = ln_fail(err, LN_EINVAL, "checkpoint: call_done %lld", (long long)back.call_done);
    ln_train_state_release(&back);
    ln_train_state_release(&ts);
    return st;
}

static ln_status run_optim(ctx *c, ln_error *err)
{
    (void)c;
    ln_optim opt;
    ln_optim_spec spec = ln_adam_spec(LN_OPT_ADAMW, 1e-3);
    ln_status st = ln_optim_init(&opt, &spec, 1000, err);
    if (!st) ln_optim_release(&opt);
    return st;
}

static ln_status run_tensor(ctx *c, ln_error *err)
{
    (void)c;
    ln_tensor t;
    ln_status st = ln_tensor_alloc(&t, ln_shape_make(2, (int64_t[]){3, 4}), err);
    ln_tensor_release(&t);
    return st;
}

/* ------------------------------------------------------------ files */

static void write_idx_files(ctx *c)
{
    /* 3 images of 4x4 (gzipped) and 3 labels (raw) */
    unsigned char img[16 + 48], lab[8 + 3];
    memcpy(img, "\0\0\x08\x03\0\0\0\x03\0\0\0\x04\0\0\0\x04", 16);
    for (int i = 0; i < 48; i++) img[16 + i] = (unsigned char)(i * 5);
    memcpy(lab, "\0\0\x08\x01\0\0\0\x03\0\x01\x02", 11);
    gzFile g = gzopen(c->gz, "wb");
    gzwrite(g, img, sizeof img);
    gzclose(g);
    FILE *f = fopen(c->labels, "wb");
    fwrite(lab, 1, sizeof lab, f);
    fclose(f);
    f = fopen(c->csv, "wb");
    fputs("label,a,b,c,d\n1,0,255,3,4\n0,5,6,7,8\n2,9,10,11,12\n", f);
    fclose(f);
    /* two CIFAR-10 records: a label byte and 3072 pixel bytes each */
    f = fopen(c->cifar, "wb");
    for (int r = 0; r < 2; r++) {
        fputc(r + 3, f);
        for (int i = 0; i < 3072; i++) fputc((i * 7 + r) & 255, f);
    }
    fclose(f);
}

/* ------------------------------------------------------------ limits */

static void check_limits(void)
{
    ln_error err;
    ln_net *net = new_net();
    memset(&err, 0, sizeof err);
    ln_status st = ln_net_reserve(net, 1 << 30, &err);
    tap_check(&T, st == LN_ENOMEM && strstr(err.msg, "activation memory") != NULL,
              "reserve of a batch of 2^30 is refused up front: %s", err.msg);
    st = ln_net_reserve(net, 4, &err);
    tap_check(&T, st == LN_OK, "and the net reserves a normal batch afterwards");

    ln_layer_spec big[2] = {ln_conv2d(1, 1 << 16, 1, 1, 0), ln_conv2d(1 << 16, 1 << 16, 1, 1, 0)};
    ln_net *huge = NULL;
    st = ln_net_create(&huge, big, 2, ln_shape_make(3, (int64_t[]){1, 1, 1}), NULL, &err);
    tap_check(&T, st == LN_ENOMEM && huge == NULL && strstr(err.msg, "too large"),
              "a layer with 2^32 weights is refused: %s", err.msg);
    ln_layer_spec wide[1] = {ln_conv2d(1 << 24, 1 << 24, 1 << 12, 1, 1 << 11)};
    st = ln_net_create(&huge, wide, 1,
                       ln_shape_make(3, (int64_t[]){1 << 24, 1, 1}), NULL, &err);
    tap_check(&T, st != LN_OK && huge == NULL && err.msg[0], "sizes that overflow int64 are refused: %s",
              err.msg);

    ln_dataset *data = new_data(8);
    ln_train_config cfg;
    ln_train_config_defaults(&cfg);
    cfg.iterations = (int64_t)1 << 32;
    cfg.unit = LN_UNIT_STEP;
    ln_history h;
    st = ln_train(net, data, &cfg, &h, &err);
    tap_check(&T, st == LN_ENOMEM && strstr(err.msg, "limit"), "2^32 recorded steps are refused: %s",
              err.msg);
    ln_runs_config rc;
    memset(&rc, 0, sizeof rc);
    rc.template_net = net;
    rc.data = data;
    ln_train_config_defaults(&rc.train);
    rc.train.iterations = 1000000000;
    rc.runs = 1000000;
    st = ln_runs(&rc, NULL, &err); /* refused before results[] is touched */
    tap_check(&T, st == LN_ENOMEM && strstr(err.msg, "limit"), "10^6 runs of 10^9 epochs are refused: %s",
              err.msg);
    ln_dataset_free(data);
    ln_net_free(net);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/lunet-alloc-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    make_specs();
    ctx c;
    memset(&c, 0, sizeof c);
    snprintf(c.path, sizeof c.path, "%s/net.lunet", dir);
    snprintf(c.gz, sizeof c.gz, "%s/images.idx.gz", dir);
    snprintf(c.labels, sizeof c.labels, "%s/labels.idx", dir);
    snprintf(c.csv, sizeof c.csv, "%s/data.csv", dir);
    snprintf(c.cifar, sizeof c.cifar, "%s/batch.bin", dir);
    snprintf(c.ckpt, sizeof c.ckpt, "%s/run.ckpt", dir);
    write_idx_files(&c);

    const op ops[] = {
        {"ln_net_create (every layer kind)", NULL, run_create, NULL},
        {"ln_net_clone", setup_net, run_clone, cleanup_net},
        {"ln_net_reserve", setup_net, run_reserve, cleanup_net},
        {"ln_net_forward + ln_net_backward", setup_net, run_forward_backward, cleanup_net},
        {"ln_train", setup_train, run_train, cleanup_train},
        {"ln_net_set_threads (3) + ln_train", setup_train, run_train_threads, cleanup_train},
        {"ln_evaluate", setup_train, run_evaluate, cleanup_train},
        {"ln_runs, 1 thread, with a test set", setup_runs1, run_runs, cleanup_train},
        {"ln_runs, 2 threads, with a test set", setup_runs2, run_runs, cleanup_train},
        {"ln_net_save + ln_net_load", setup_net, run_save_load, cleanup_net},
        {"ln_net_load_bytes", setup_bytes, run_load_bytes, cleanup_bytes},
        {"ln_dataset_from_arrays", NULL, run_dataset_from, NULL},
        {"ln_dataset_subset (stratified)", setup_data, run_subset, cleanup_data},
        {"ln_idx_read (gzip)", NULL, run_idx_gz, NULL},
        {"ln_dataset_load_idx", NULL, run_dataset_load, NULL},
        {"ln_dataset_load_csv", NULL, run_dataset_csv, NULL},
        {"ln_dataset_load_cifar", NULL, run_dataset_cifar, NULL},
        {"ln_train with a state, validation, early stopping, a schedule and checkpoints",
         setup_train, run_train_checkpoint, cleanup_train},
        {"ln_optim_init", NULL, run_optim, NULL},
        {"ln_tensor_alloc", NULL, run_tensor, NULL},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) sweep(&ops[i], &c);
    check_limits();

    unlink(c.path);
    unlink(c.gz);
    unlink(c.labels);
    unlink(c.csv);
    unlink(c.cifar);
    unlink(c.ckpt);
    rmdir(dir);
    return tap_done(&T);
}
