/* test_fast_kernels.c - the vectorised kernels (core/simd.c) against their plain
 * reference twins, for every ISA this CPU can run (portable C, AVX2, AVX-512).
 *
 *  - conv2d forward and backward (weight, bias and input gradients) on shapes with
 *    stride, padding, odd sizes, 1x1 and large kernels, batch 1, 7 and 19 (the weight
 *    gradient works on chunks of up to 8 samples);
 *  - linear forward and backward on sizes with and without vector tails, with and
 *    without bias;
 *  - max pooling 2x2 (values and argmax bit for bit, including ties and NaN) and ReLU
 *    (bit for bit, including NaN and -0);
 *  - the study's net: fast against reference kernels after a forward and backward
 *    pass; two trainings give bit-identical losses; ln_runs with 1 and 2 threads
 *    give bit-identical histories.
 * Floating-point comparisons: |fast - ref| <= 1e-5 * max(|ref|, rms(ref)) + 1e-30
 * (the reference sums in another order, some in double precision).
 *
 * Output: "ok N - desc" or "not ok N - desc: detail", then "# passed P failed F";
 * the exit status is 0 iff nothing failed.
 */
#include "../../core/simd.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ reporting */

static int n_tests, n_passed, n_failed;

static void report(int ok, const char *desc, const char *detail)
{
    n_tests++;
    if (ok) {
        n_passed++;
        printf("ok %d - %s\n", n_tests, desc);
    } else {
        n_failed++;
        printf("not ok %d - %s: %s\n", n_tests, desc, detail && *detail ? detail : "failed");
    }
}

static float *falloc(int64_t n)
{
    /* a little slack after every buffer is NOT given: overruns show under ASan */
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!p) {
        fprintf(stderr, "test_fast_kernels: out of memory\n");
        exit(2);
    }
    return p;
}

static void fill(float *v, int64_t n, ln_rng *rng)
{
    for (int64_t i = 0; i < n; i++) v[i] = 2.0f * ln_rng_uniform(rng) - 1.0f;
}

/* Compares got with want (n floats); on failure describes the worst element. */
static int close_all(const float *got, const float *want, int64_t n, char *detail, size_t size)
{
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)want[i] * want[i];
    const double rms = n > 0 ? sqrt(ss / (double)n) : 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double w = want[i], g = got[i];
        const double tol = 1e-5 * fmax(fabs(w), rms) + 1e-30;
        if (!(fabs(g - w) <= tol)) {
            snprintf(detail, size, "[%lld] got %.9g, want %.9g (tol %.3g)", (long long)i, g, w, tol);
            return 0;
        }
    }
    return 1;
}

static int same_bits(const void *a, const void *b, size_t bytes, char *detail, size_t size)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < bytes; i++)
        if (x[i] != y[i]) {
            snprintf(detail, size, "bytes differ at offset %zu", i);
            return 0;
        }
    return 1;
}

/* --------------------------------------------------------------- layers */

typedef struct {
    ln_layer l;
    float *weight, *bias, *dweight, *dbias;
} owned_layer;

static void make_layer(owned_layer *o, ln_layer_spec spec, ln_shape in, int batch, ln_rng *rng)
{
    memset(o, 0, sizeof *o);
    o->l.spec = spec;
    o->l.in = in;
    ln_error err;
    if (ln_layer_setup(&o->l, 1, &err)) {
        fprintf(stderr, "test_fast_kernels: %s\n", err.msg);
        exit(2);
    }
    if (o->l.weight_n) {
        o->weight = falloc(o->l.weight_n);
        o->dweight = falloc(o->l.weight_n);
        fill(o->weight, o->l.weight_n, rng);
        o->l.weight = o->weight;
        o->l.dweight = o->dweight;
    }
    if (o->l.bias_n) {
        o->bias = falloc(o->l.bias_n);
        o->dbias = falloc(o->l.bias_n);
        fill(o->bias, o->l.bias_n, rng);
        o->l.bias = o->bias;
        o->l.dbias = o->dbias;
    }
    if (ln_layer_argmax_per_sample(&o->l))
        o->l.argmax = calloc((size_t)(o->l.out_n * batch), sizeof(int32_t));
}

static void free_layer(owned_layer *o)
{
    free(o->weight);
    free(o->bias);
    free(o->dweight);
    free(o->dbias);
    free(o->l.argmax);
}

/* Forward and backward through one layer with reference = 0/1; outputs copied out. */
typedef struct {
    float *y, *dx, *dw, *db;
    int32_t *argmax;
} pass_out;

static void run_pass(owned_layer *o, const float *x, const float *dy, int batch, int reference,
                     int want_dx, pass_out *out)
{
    ln_layer *l = &o->l;
    int64_t wsn = ln_layer_workspace(l);
    float *ws = falloc(wsn);
    ln_ctx ctx = {batch, 1, reference, NULL, ws, NULL};
    out->y = falloc(l->out_n * batch);
    out->dx = want_dx ? falloc(l->in_n * batch) : NULL;
    ln_layer_forward(l, x, out->y, &ctx);
    if (l->dweight) memset(l->dweight, 0, sizeof(float) * (size_t)l->weight_n);
    if (l->dbias) memset(l->dbias, 0, sizeof(float) * (size_t)l->bias_n);
    if (want_dx) memset(out->dx, 0x7f, sizeof(float) * (size_t)(l->in_n * batch)); /* must be overwritten */
    ln_layer_backward(l, x, out->y, dy, out->dx, &ctx);
    out->dw = l->dweight ? falloc(l->weight_n) : NULL;
    out->db = l->dbias ? falloc(l->bias_n) : NULL;
    if (out->dw) memcpy(out->dw, l->dweight, sizeof(float) * (size_t)l->weight_n);
    if (out->db) memcpy(out->db, l->dbias, sizeof(float) * (size_t)l->bias_n);
    out->argmax = NULL;
    if (l->argmax) {
        out->argmax = malloc(sizeof(int32_t) * (size_t)(l->out_n * batch));
        memcpy(out->argmax, l->argmax, sizeof(int32_t) * (size_t)(l->out_n * batch));
    }
    free(ws);
}

static void free_pass(pass_out *p)
{
    free(p->y);
    free(p->dx);
    free(p->dw);
    free(p->db);
    free(p->argmax);
}

/* ------------------------------------------------------------- conv2d */

typedef struct {
    int c, h, w, oc, k, s, pad, bias;
} conv_case;

static const conv_case conv_cases[] = {
    {1, 28, 28, 10, 5, 1, 0, 1},  /* the study's conv1 */
    {10, 12, 12, 20, 5, 1, 0, 1}, /* the study's conv2 */
    {3, 9, 11, 4, 3, 1, 1, 1},    /* padding, odd sizes */
    {2, 10, 9, 3, 3, 2, 1, 0},    /* stride 2, padding, no bias */
    {4, 7, 7, 6, 3, 2, 0, 1},     /* stride 2 */
    {1, 5, 5, 1, 1, 1, 0, 1},     /* 1x1 */
    {3, 20, 19, 7, 4, 3, 2, 1},   /* stride 3, even kernel, padding 2 */
    {5, 6, 6, 9, 6, 1, 2, 0},     /* kernel larger than the padded input's half */
    {2, 37, 37, 3, 5, 1, 0, 1},   /* many output positions with a vector tail */
    {1, 3, 3, 2, 3, 1, 2, 1},     /* padding 2 on a tiny input */
    {2, 12, 12, 3, 9, 1, 0, 1},   /* kernel wider than 8 */
    {7, 13, 17, 13, 3, 1, 1, 1},  /* channel counts off the register tiles */
};

static void test_conv(const conv_case *cc, int batch, ln_rng *rng, const char *isa)
{
    owned_layer o;
    ln_layer_spec spec = ln_conv2d(cc->c, cc->oc, cc->k, cc->s, cc->pad);
    spec.bias = cc->bias;
    int64_t dims[3] = {cc->c, cc->h, cc->w};
    make_layer(&o, spec, ln_shape_make(3, dims), batch, rng);
    float *x = falloc(o.l.in_n * batch), *dy = falloc(o.l.out_n * batch);
    fill(x, o.l.in_n * batch, rng);
    fill(dy, o.l.out_n * batch, rng);
    pass_out fast, ref;
    run_pass(&o, x, dy, batch, 0, 1, &fast);
    run_pass(&o, x, dy, batch, 1, 1, &ref);
    char base[160], desc[220], detail[300] = "";
    snprintf(base, sizeof base, "%s conv2d %dx%dx%d -> %d k%d s%d p%d%s batch %d", isa, cc->c, cc->h,
             cc->w, cc->oc, cc->k, cc->s, cc->pad, cc->bias ? "" : " nobias", batch);
    snprintf(desc, sizeof desc, "%s: forward", base);
    report(close_all(fast.y, ref.y, o.l.out_n * batch, detail, sizeof detail), desc, detail);
    snprintf(desc, sizeof desc, "%s: weight grad", base);
    report(close_all(fast.dw, ref.dw, o.l.weight_n, detail, sizeof detail), desc, detail);
    if (cc->bias) {
        snprintf(desc, sizeof desc, "%s: bias grad", base);
        report(close_all(fast.db, ref.db, o.l.bias_n, detail, sizeof detail), desc, detail);
    }
    snprintf(desc, sizeof desc, "%s: input grad", base);
    report(close_all(fast.dx, ref.dx, o.l.in_n * batch, detail, sizeof detail), desc, detail);
    /* without dx (the first layer): the same parameter gradients, bit for bit */
    pass_out nodx;
    run_pass(&o, x, dy, batch, 0, 0, &nodx);
    snprintf(desc, sizeof desc, "%s: weight grad without dx", base);
    report(same_bits(nodx.dw, fast.dw, sizeof(float) * (size_t)o.l.weight_n, detail, sizeof detail),
           desc, detail);
    free_pass(&nodx);
    free_pass(&fast);
    free_pass(&ref);
    free(x);
    free(dy);
    free_layer(&o);
}

/* ------------------------------------------------------------- linear */

static void test_linear(int in, int out, int bias, int batch, ln_rng *rng, const char *isa)
{
    owned_layer o;
    ln_layer_spec spec = ln_linear(in, out);
    spec.bias = bias;
    int64_t d[1] = {in};
    make_layer(&o, spec, ln_shape_make(1, d), batch, rng);
    float *x = falloc((int64_t)in * batch), *dy = falloc((int64_t)out * batch);
    fill(x, (int64_t)in * batch, rng);
    fill(dy, (int64_t)out * batch, rng);
    pass_out fast, ref;
    run_pass(&o, x, dy, batch, 0, 1, &fast);
    run_pass(&o, x, dy, batch, 1, 1, &ref);
    char desc[200], detail[300] = "";
    snprintf(desc, sizeof desc, "%s linear %d -> %d%s batch %d", isa, in, out, bias ? "" : " nobias",
             batch);
    int ok = close_all(fast.y, ref.y, (int64_t)out * batch, detail, sizeof detail);
    if (ok) ok = close_all(fast.dw, ref.dw, o.l.weight_n, detail, sizeof detail);
    if (ok && bias) ok = close_all(fast.db, ref.db, out, detail, sizeof detail);
    if (ok) ok = close_all(fast.dx, ref.dx, (int64_t)in * batch, detail, sizeof detail);
    report(ok, desc, detail);
    free_pass(&fast);
    free_pass(&ref);
    free(x);
    free(dy);
    free_layer(&o);
}

/* --------------------------------------------------- maxpool and relu */

static void test_maxpool(int c, int h, int w, int batch, int specials, ln_rng *rng, const char *isa)
{
    owned_layer o;
    int64_t d[3] = {c, h, w};
    make_layer(&o, ln_maxpool2d(2, 2), ln_shape_make(3, d), batch, rng);
    const int64_t n = o.l.in_n * batch;
    float *x = falloc(n), *dy = falloc(o.l.out_n * batch);
    fill(x, n, rng);
    fill(dy, o.l.out_n * batch, rng);
    if (specials) /* ties (coarse values), NaNs and infinities */
        for (int64_t i = 0; i < n; i++) {
            x[i] = floorf(x[i] * 2.0f);
            uint32_t r = ln_rng_below(rng, 16);
            if (r == 0) x[i] = NAN;
            if (r == 1) x[i] = -INFINITY;
            if (r == 2) x[i] = -0.0f;
        }
    pass_out fast, ref;
    run_pass(&o, x, dy, batch, 0, 1, &fast);
    run_pass(&o, x, dy, batch, 1, 1, &ref);
    char desc[200], detail[300] = "";
    snprintf(desc, sizeof desc, "%s maxpool2d 2x2 on %dx%dx%d batch %d%s (bit for bit)", isa, c, h, w,
             batch, specials ? " with ties, NaN, inf" : "");
    int ok = same_bits(fast.y, ref.y, sizeof(float) * (size_t)(o.l.out_n * batch), detail, sizeof detail);
    if (ok)
        ok = same_bits(fast.argmax, ref.argmax, sizeof(int32_t) * (size_t)(o.l.out_n * batch), detail,
                       sizeof detail);
    if (ok) ok = same_bits(fast.dx, ref.dx, sizeof(float) * (size_t)n, detail, sizeof detail);
    report(ok, desc, detail);
    free_pass(&fast);
    free_pass(&ref);
    free(x);
    free(dy);
    free_layer(&o);
}

static void test_relu(int64_t per_sample, int batch, ln_rng *rng, const char *isa)
{
    owned_layer o;
    int64_t d[1] = {per_sample};
    make_layer(&o, ln_simple_layer(LN_RELU), ln_shape_make(1, d), batch, rng);
    const int64_t n = per_sample * batch;
    float *x = falloc(n), *dy = falloc(n);
    fill(x, n, rng);
    fill(dy, n, rng);
    for (int64_t i = 0; i < n; i += 5) x[i] = i % 3 ? -0.0f : NAN;
    pass_out fast, ref;
    run_pass(&o, x, dy, batch, 0, 1, &fast);
    run_pass(&o, x, dy, batch, 1, 1, &ref);
    char desc[200], detail[300] = "";
    snprintf(desc, sizeof desc, "%s relu over %lld floats (bit for bit, NaN and -0)", isa, (long long)n);
    int ok = same_bits(fast.y, ref.y, sizeof(float) * (size_t)n, detail, sizeof detail);
    if (ok) ok = same_bits(fast.dx, ref.dx, sizeof(float) * (size_t)n, detail, sizeof detail);
    report(ok, desc, detail);
    free_pass(&fast);
    free_pass(&ref);
    free(x);
    free(dy);
    free_layer(&o);
}

/* --------------------------------------------------------------- nets */

static ln_net *study_net(uint64_t seed)
{
    ln_layer_spec s[13];
    int i = 0;
    s[i++] = ln_conv2d(1, 10, 5, 1, 0);
    s[i++] = ln_maxpool2d(2, 0);
    s[i++] = ln_simple_layer(LN_RELU);
    s[i++] = ln_conv2d(10, 20, 5, 1, 0);
    s[i++] = ln_dropout(LN_DROPOUT2D, 0.5f);
    s[i++] = ln_maxpool2d(2, 0);
    s[i++] = ln_simple_layer(LN_RELU);
    s[i++] = ln_simple_layer(LN_FLATTEN);
    s[i++] = ln_linear(320, 50);
    s[i++] = ln_simple_layer(LN_RELU);
    s[i++] = ln_dropout(LN_DROPOUT, 0.5f);
    s[i++] = ln_linear(50, 10);
    s[i++] = ln_simple_layer(LN_LOG_SOFTMAX);
    ln_rng rng;
    ln_rng_seed(&rng, seed, LN_STREAM_INIT);
    ln_net *net = NULL;
    ln_error err;
    int64_t d[3] = {1, 28, 28};
    if (ln_net_create(&net, s, i, ln_shape_make(3, d), &rng, &err)) {
        fprintf(stderr, "test_fast_kernels: %s\n", err.msg);
        exit(2);
    }
    return net;
}

static ln_dataset *random_data(int n, ln_rng *rng)
{
    float *img = falloc((int64_t)n * 784);
    int32_t *lab = calloc((size_t)n, sizeof(int32_t));
    for (int64_t i = 0; i < (int64_t)n * 784; i++) img[i] = 2.0f * ln_rng_uniform(rng) - 0.5f;
    for (int i = 0; i < n; i++) lab[i] = (int32_t)ln_rng_below(rng, 10);
    ln_dataset *ds = NULL;
    ln_error err;
    if (ln_dataset_from_arrays(img, lab, n, 1, 28, 28, &ds, &err)) {
        fprintf(stderr, "test_fast_kernels: %s\n", err.msg);
        exit(2);
    }
    free(img);
    free(lab);
    return ds;
}

static void test_net_fast_vs_reference(const char *isa, ln_rng *rng)
{
    const int batch = 7;
    ln_net *a = study_net(3), *b = study_net(3);
    ln_net_use_reference_kernels(b, 1);
    float *x = falloc(784 * batch), *dout = falloc(10 * batch), *dxa = falloc(784 * batch),
          *dxb = falloc(784 * batch);
    fill(x, 784 * batch, rng);
    fill(dout, 10 * batch, rng);
    ln_rng ra, rb;
    ln_rng_seed(&ra, 5, LN_STREAM_DROPOUT);
    rb = ra;
    const float *ya, *yb;
    ln_error err;
    char desc[200], detail[300] = "";
    int ok = !ln_net_forward(a, x, batch, 1, &ra, &ya, &err) && !ln_net_forward(b, x, batch, 1, &rb, &yb, &err);
    if (ok) ok = close_all(ya, yb, 10 * batch, detail, sizeof detail);
    snprintf(desc, sizeof desc, "%s study net batch %d: forward, fast = reference kernels", isa, batch);
    report(ok, desc, detail);
    ok = !ln_net_backward(a, dout, dxa, &err) && !ln_net_backward(b, dout, dxb, &err);
    if (ok)
        ok = close_all(ln_net_grads(a), ln_net_grads(b), ln_net_param_count(a), detail, sizeof detail);
    if (ok) ok = close_all(dxa, dxb, 784 * batch, detail, sizeof detail);
    snprintf(desc, sizeof desc, "%s study net batch %d: gradients, fast = reference kernels", isa, batch);
    report(ok, desc, detail);
    free(x);
    free(dout);
    free(dxa);
    free(dxb);
    ln_net_free(a);
    ln_net_free(b);
}

static void train_losses(ln_dataset *ds, int batch, double *loss, int epochs)
{
    ln_net *net = study_net(1);
    ln_train_config cfg;
    ln_train_config_defaults(&cfg);
    cfg.optim = ln_sgd_spec(0.01, 0.5);
    cfg.batch = batch;
    cfg.iterations = epochs;
    ln_history h;
    ln_error err;
    if (ln_train(net, ds, &cfg, &h, &err)) {
        fprintf(stderr, "test_fast_kernels: %s\n", err.msg);
        exit(2);
    }
    for (int e = 0; e < epochs; e++) loss[e] = h.loss[e];
    ln_history_release(&h);
    ln_net_free(net);
}

static void test_determinism(const char *isa, ln_rng *rng)
{
    ln_dataset *ds = random_data(150, rng);
    double l1[2], l2[2];
    char desc[200], detail[300] = "";
    train_losses(ds, 16, l1, 2);
    train_losses(ds, 16, l2, 2);
    snprintf(desc, sizeof desc, "%s training twice gives bit-identical losses", isa);
    report(same_bits(l1, l2, sizeof l1, detail, sizeof detail), desc, detail);

    /* repeat runs on 1 and 2 threads */
    ln_net *tmpl = study_net(1);
    ln_run_result r1[3], r2[3];
    memset(r1, 0, sizeof r1);
    memset(r2, 0, sizeof r2);
    ln_runs_config rc;
    memset(&rc, 0, sizeof rc);
    rc.template_net = tmpl;
    rc.data = ds;
    ln_train_config_defaults(&rc.train);
    rc.train.optim = ln_sgd_spec(0.01, 0.5);
    rc.train.batch = 16;
    rc.train.iterations = 2;
    rc.runs = 3;
    ln_error err;
    rc.threads = 1;
    int ok = !ln_runs(&rc, r1, &err);
    rc.threads = 2;
    ok = ok && !ln_runs(&rc, r2, &err);
    for (int r = 0; ok && r < 3; r++) {
        ok = r1[r].hist.steps == r2[r].hist.steps &&
             same_bits(r1[r].hist.step_loss, r2[r].hist.step_loss,
                       sizeof(float) * (size_t)r1[r].hist.steps, detail, sizeof detail);
    }
    snprintf(desc, sizeof desc, "%s ln_runs: 1 and 2 threads give bit-identical step losses", isa);
    report(ok, desc, ok ? "" : (*detail ? detail : err.msg));
    for (int r = 0; r < 3; r++) {
        ln_history_release(&r1[r].hist);
        ln_history_release(&r2[r].hist);
    }
    ln_net_free(tmpl);
    ln_dataset_free(ds);
}

/* ---------------------------------------------------------------- main */

int main(void)
{
    ln_rng rng;
    ln_rng_seed(&rng, 20240601, 1);
    for (int isa = LN_ISA_GENERIC; isa <= LN_ISA_AVX512; isa++) {
        if (!ln_simd_for((ln_isa)isa)) {
            printf("# skip: this CPU cannot run %s\n", ln_isa_name((ln_isa)isa));
            continue;
        }
        if ((int)ln_simd_force(isa) != isa) {
            report(0, "ln_simd_force selects the requested ISA", ln_isa_name((ln_isa)isa));
            continue;
        }
        const char *name = ln_isa_name((ln_isa)isa);
        for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
            test_conv(&conv_cases[i], 1, &rng, name);
            test_conv(&conv_cases[i], 7, &rng, name);
            test_conv(&conv_cases[i], 19, &rng, name); /* chunks of samples and a partial one */
        }
        static const int lin[][3] = {{320, 50, 1}, {50, 10, 1}, {7, 3, 0}, {33, 17, 1}, {1, 1, 1}, {16, 64, 0}};
        for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) {
            test_linear(lin[i][0], lin[i][1], lin[i][2], 1, &rng, name);
            test_linear(lin[i][0], lin[i][1], lin[i][2], 7, &rng, name);
        }
        static const int pools[][3] = {{10, 24, 24}, {20, 8, 8}, {3, 7, 9}, {2, 5, 5}, {1, 33, 70}, {2, 2, 3}};
        for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
            test_maxpool(pools[i][0], pools[i][1], pools[i][2], 1, 0, &rng, name);
            test_maxpool(pools[i][0], pools[i][1], pools[i][2], 7, 1, &rng, name);
        }
        test_relu(1440, 7, &rng, name);
        test_relu(13, 1, &rng, name);
        test_net_fast_vs_reference(name, &rng);
        test_determinism(name, &rng);
    }
    ln_simd_force(-1);
    printf("# passed %d failed %d\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
