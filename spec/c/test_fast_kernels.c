/* test_fast_kernels.c - the vectorised kernels (core/simd.c) against their plain
 * reference twins, for every ISA this CPU can run (portable C, AVX2, AVX-512).
 *
 *  - conv2d forward and backward (weight, bias and input gradients) on shapes with
 *    stride, padding, odd sizes, 1x1 and large kernels, batch 1, 2, 7, 19 and 150 (the
 *    weight gradient works on chunks of up to 8 samples, in groups of at least 16
 *    samples, at most 8 groups: 19 is two groups, the second partial, and 150 seven;
 *    batches of 1 and 2 take the transposed kernel more often);
 *  - linear forward and backward on sizes with and without vector tails, with and
 *    without bias (its gradients start as garbage: both kernels must write them);
 *  - max pooling 2x2 (values and argmax bit for bit, including ties and NaN) and ReLU
 *    (bit for bit, including NaN and -0); activations fused into the layer before them
 *    (batchnorm, max pooling, conv2d) and poolings fused into conv2d (with the ReLUs
 *    around them) against the separate layers, bit for bit;
 *  - tanh and sigmoid (forward within 4 ulp of the C library, backward bit for bit);
 *  - the SGD-momentum and Adam/AdamW steps against the scalar loops, bit for bit;
 *  - the study's net: fast against reference kernels after a forward and backward
 *    pass; two trainings give bit-identical losses; ln_runs with 1 and 2 threads
 *    give bit-identical histories;
 *  - threads inside one run (ln_net_set_threads): four nets that use every way of
 *    splitting the work train to the same bits on 1, 2 and 3 threads.
 * Floating-point comparisons: |fast - ref| <= 1e-5 * max(|ref|, rms(ref)) + 1e-30
 * (the reference sums in another order, some in double precision).
 *
 * Output: "ok N - desc" or "not ok N - desc: detail", then "# passed P failed F";
 * the exit status is 0 iff nothing failed.
 */
#include "../../core/layer.h"
#include "../../core/simd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fixture.h"
#include "tap.h"

/* ------------------------------------------------------------ reporting */

static tap T; /* this program's checks */

static void fill(float *v, int64_t n, ln_rng *rng)
{
    for (int64_t i = 0; i < n; i++) v[i] = 2.0f * ln_rng_uniform(rng) - 1.0f;
}

/* Compares got with want (n floats) within 1e-5 of the larger of |want|, the rms of
 * want and `floor`; on failure describes the first element out of it. */
static int close_all_floor(const float *got, const float *want, int64_t n, double floor, char *detail,
                           size_t size)
{
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)want[i] * want[i];
    const double rms = n > 0 ? sqrt(ss / (double)n) : 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double w = want[i], g = got[i];
        const double tol = 1e-5 * fmax(fmax(fabs(w), rms), floor) + 1e-30;
        if (!(fabs(g - w) <= tol)) {
            snprintf(detail, size, "[%lld] got %.9g, want %.9g (tol %.3g)", (long long)i, g, w, tol);
            return 0;
        }
    }
    return 1;
}

static int close_all(const float *got, const float *want, int64_t n, char *detail, size_t size)
{
    return close_all_floor(got, want, n, 0.0, detail, size);
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

/* A layer with random parameters, and a random input x and output gradient dy for
 * one batch (drawn in that order). */
typedef struct {
    ln_layer l;
    float *weight, *bias, *dweight, *dbias;
    float *x, *dy;
} owned_layer;

/* n random values and n zeroed gradients; none (NULL) when n is 0. */
static void make_param(int64_t n, float **value, float **grad, ln_rng *rng)
{
    if (!n) return;
    *value = falloc(n);
    *grad = falloc(n);
    fill(*value, n, rng);
}

static void make_layer(owned_layer *o, ln_layer_spec spec, ln_shape in, int batch, ln_rng *rng)
{
    memset(o, 0, sizeof *o);
    o->l.spec = spec;
    o->l.in = in;
    ln_error err;
    if (ln_layer_setup(&o->l, 1, &err)) fixture_fail("layer", err.msg);
    make_param(o->l.weight_n, &o->weight, &o->dweight, rng);
    make_param(o->l.bias_n, &o->bias, &o->dbias, rng);
    o->l.weight = o->weight;
    o->l.dweight = o->dweight;
    o->l.bias = o->bias;
    o->l.dbias = o->dbias;
    if (ln_layer_argmax_per_sample(&o->l))
        o->l.argmax = calloc((size_t)(o->l.out_n * batch), sizeof(int32_t));
    o->x = falloc(o->l.in_n * batch);
    o->dy = falloc(o->l.out_n * batch);
    fill(o->x, o->l.in_n * batch, rng);
    fill(o->dy, o->l.out_n * batch, rng);
}

static void free_layer(owned_layer *o)
{
    free(o->weight);
    free(o->bias);
    free(o->dweight);
    free(o->dbias);
    free(o->l.argmax);
    free(o->x);
    free(o->dy);
}

/* Forward and backward through one layer with reference = 0/1; outputs copied out. */
typedef struct {
    float *y, *dx, *dw, *db;
    int32_t *argmax;
} pass_out;

static void run_pass(owned_layer *o, int batch, int reference, int want_dx, pass_out *out)
{
    ln_layer *l = &o->l;
    int64_t wsn = ln_layer_workspace(l);
    float *ws = falloc(wsn);
    ln_ctx ctx = {batch, 1, reference, NULL, ws, NULL};
    out->y = falloc(l->out_n * batch);
    out->dx = want_dx ? falloc(l->in_n * batch) : NULL;
    ln_layer_forward(l, o->x, out->y, &ctx);
    /* gradients that the kind's kernels write (linear) must be overwritten; the others
     * are added to zeros, as the net leaves them */
    const int fill = ln_layer_ops_of(l->spec.kind)->writes_grads ? 0x7f : 0;
    if (l->dweight) memset(l->dweight, fill, sizeof(float) * (size_t)l->weight_n);
    if (l->dbias) memset(l->dbias, fill, sizeof(float) * (size_t)l->bias_n);
    if (want_dx) memset(out->dx, 0x7f, sizeof(float) * (size_t)(l->in_n * batch)); /* must be overwritten */
    ln_layer_backward(l, o->x, out->y, o->dy, out->dx, &ctx);
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

/* Forward and backward through the layer with the fast and the reference kernels;
 * reports whether the outputs, the argmax (layers that keep one) and the input
 * gradients are the same bits. */
static void report_same_bits(owned_layer *o, int batch, const char *desc)
{
    pass_out fast, ref;
    run_pass(o, batch, 0, 1, &fast);
    run_pass(o, batch, 1, 1, &ref);
    const size_t in = (size_t)(o->l.in_n * batch), out = (size_t)(o->l.out_n * batch);
    char detail[300] = "";
    int ok = same_bits(fast.y, ref.y, sizeof(float) * out, detail, sizeof detail);
    if (ok && ref.argmax) ok = same_bits(fast.argmax, ref.argmax, sizeof(int32_t) * out, detail, sizeof detail);
    if (ok) ok = same_bits(fast.dx, ref.dx, sizeof(float) * in, detail, sizeof detail);
    tap_result(&T, ok, desc, detail);
    free_pass(&fast);
    free_pass(&ref);
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
    /* channel counts that fill the vectors and 32 or more unfolded rows: the transposed
     * weight gradient (simd.h, conv2d.c) */
    {4, 10, 10, 16, 3, 1, 1, 1},  /* the custom net's shape, smaller */
    {16, 7, 7, 32, 3, 1, 1, 0},   /* no bias */
    {5, 9, 8, 15, 5, 1, 2, 1},    /* one padding lane */
    {4, 12, 11, 24, 3, 2, 1, 1},  /* stride 2 (im2col), 3 vectors of 8 */
    {8, 6, 6, 64, 3, 1, 1, 1},    /* many channel tiles */
};

static void test_conv(const conv_case *cc, int batch, ln_rng *rng, const char *isa)
{
    owned_layer o;
    ln_layer_spec spec = ln_conv2d(cc->c, cc->oc, cc->k, cc->s, cc->pad);
    spec.bias = cc->bias;
    int64_t dims[3] = {cc->c, cc->h, cc->w};
    make_layer(&o, spec, ln_shape_make(3, dims), batch, rng);
    pass_out fast, ref;
    run_pass(&o, batch, 0, 1, &fast);
    run_pass(&o, batch, 1, 1, &ref);
    char base[160], desc[220], detail[300] = "";
    snprintf(base, sizeof base, "%s conv2d %dx%dx%d -> %d k%d s%d p%d%s batch %d", isa, cc->c, cc->h,
             cc->w, cc->oc, cc->k, cc->s, cc->pad, cc->bias ? "" : " nobias", batch);
    snprintf(desc, sizeof desc, "%s: forward", base);
    tap_result(&T, close_all(fast.y, ref.y, o.l.out_n * batch, detail, sizeof detail), desc, detail);
    /* A parameter's gradient is a sum over the batch and the positions whose terms can
     * cancel (a 1x1 kernel's bias: 0.054 from 175 terms of about 0.5), so its rounding is
     * measured against the sum's expected size, the root of the sum of its terms' squares
     * (dy in [-1, 1], x too), not against its value. */
    double dy_ss = 0.0;
    for (int64_t i = 0; i < o.l.out_n * batch; i++) dy_ss += (double)o.dy[i] * o.dy[i];
    const double grad_size = sqrt(dy_ss / cc->oc);
    snprintf(desc, sizeof desc, "%s: weight grad", base);
    tap_result(&T, close_all_floor(fast.dw, ref.dw, o.l.weight_n, grad_size, detail, sizeof detail), desc, detail);
    if (cc->bias) {
        snprintf(desc, sizeof desc, "%s: bias grad", base);
        tap_result(&T, close_all_floor(fast.db, ref.db, o.l.bias_n, grad_size, detail, sizeof detail), desc, detail);
    }
    snprintf(desc, sizeof desc, "%s: input grad", base);
    tap_result(&T, close_all(fast.dx, ref.dx, o.l.in_n * batch, detail, sizeof detail), desc, detail);
    /* without dx (the first layer): the same parameter gradients, bit for bit */
    pass_out nodx;
    run_pass(&o, batch, 0, 0, &nodx);
    snprintf(desc, sizeof desc, "%s: weight grad without dx", base);
    tap_result(&T, same_bits(nodx.dw, fast.dw, sizeof(float) * (size_t)o.l.weight_n, detail, sizeof detail),
               desc, detail);
    free_pass(&nodx);
    free_pass(&fast);
    free_pass(&ref);
    free_layer(&o);
}

/* The strided convolutions' unfolding and folding (im2col rows: unfold_im2col and
 * fold_im2col in simd_impl.h) against ln_conv_unfold_c and ln_conv_fold_c, bit for bit:
 * x and the rows' gradient with -0, infinities and NaN among their values; the fold
 * into a buffer of NaNs, so that every place of dx must be written. */
static void test_im2col(int c, int h, int w, int k, int s, int pad, ln_rng *rng, const char *isa)
{
    ln_layer_spec spec = ln_conv2d(c, 3, k, s, pad);
    int64_t d[3] = {c, h, w};
    ln_layer l;
    memset(&l, 0, sizeof l);
    l.spec = spec;
    l.in = ln_shape_make(3, d);
    ln_error err;
    if (ln_layer_setup(&l, 1, &err)) fixture_fail("im2col layer", err.msg);
    ln_conv_geom g;
    ln_conv_geom_of(&l.spec, &l.in, &l.out, &g);
    const ln_simd_kernels *K = ln_simd();
    const int64_t n = (int64_t)c * h * w, u = g.unf_n + LN_SIMD_SLACK;
    float *x = falloc(n), *rows = falloc(u), *ref = falloc(u), *dx = falloc(n), *dref = falloc(n);
    fill(x, n, rng);
    for (int64_t i = 0; i < n; i += 5) x[i] = i % 3 == 0 ? -0.0f : i % 3 == 1 ? INFINITY : NAN;
    K->conv_unfold(&g, x, rows);
    ln_conv_unfold_c(&g, x, ref);
    char desc[200], detail[300] = "";
    int ok = same_bits(rows, ref, sizeof(float) * (size_t)g.unf_n, detail, sizeof detail);
    /* the rows' gradient: random, with specials; fold_c's terms are the reference's */
    fill(rows, g.unf_n, rng);
    for (int64_t i = 0; i < g.unf_n; i += 7) rows[i] = i % 4 == 0 ? -0.0f : i % 4 == 1 ? -INFINITY : i % 4 == 2 ? NAN : 0.0f;
    for (int64_t i = 0; i < n; i++) dx[i] = NAN;
    K->conv_fold(&g, rows, dx);
    ln_conv_fold_c(&g, rows, dref);
    if (ok) ok = same_bits(dx, dref, sizeof(float) * (size_t)n, detail, sizeof detail);
    snprintf(desc, sizeof desc, "%s conv2d im2col %dx%dx%d k%d s%d p%d (output %dx%d): unfold and fold bit for bit", isa,
             c, h, w, k, s, pad, g.oh, g.ow);
    tap_result(&T, ok, desc, detail);
    free(x);
    free(rows);
    free(ref);
    free(dx);
    free(dref);
}

/* ------------------------------------------------------------- linear */

static void test_linear(int in, int out, int bias, int batch, ln_rng *rng, const char *isa)
{
    owned_layer o;
    ln_layer_spec spec = ln_linear(in, out);
    spec.bias = bias;
    int64_t d[1] = {in};
    make_layer(&o, spec, ln_shape_make(1, d), batch, rng);
    pass_out fast, ref;
    run_pass(&o, batch, 0, 1, &fast);
    run_pass(&o, batch, 1, 1, &ref);
    char desc[200], detail[300] = "";
    snprintf(desc, sizeof desc, "%s linear %d -> %d%s batch %d", isa, in, out, bias ? "" : " nobias",
             batch);
    int ok = close_all(fast.y, ref.y, (int64_t)out * batch, detail, sizeof detail);
    if (ok) ok = close_all(fast.dw, ref.dw, o.l.weight_n, detail, sizeof detail);
    if (ok && bias) ok = close_all(fast.db, ref.db, out, detail, sizeof detail);
    if (ok) ok = close_all(fast.dx, ref.dx, (int64_t)in * batch, detail, sizeof detail);
    tap_result(&T, ok, desc, detail);
    free_pass(&fast);
    free_pass(&ref);
    free_layer(&o);
}

/* --------------------------------------------------- maxpool and relu */

static void test_maxpool(int c, int h, int w, int k, int s, int batch, int specials, ln_rng *rng, const char *isa)
{
    owned_layer o;
    int64_t d[3] = {c, h, w};
    make_layer(&o, ln_maxpool2d(k, s), ln_shape_make(3, d), batch, rng);
    const int64_t n = o.l.in_n * batch;
    float *x = o.x;
    if (specials) /* ties (coarse values), NaNs and infinities */
        for (int64_t i = 0; i < n; i++) {
            x[i] = floorf(x[i] * 2.0f);
            uint32_t r = ln_rng_below(rng, 16);
            if (r == 0) x[i] = NAN;
            if (r == 1) x[i] = -INFINITY;
            if (r == 2) x[i] = -0.0f;
        }
    if (specials) /* gradients that 0 + g and g + g' keep apart */
        for (int64_t i = 0; i < o.l.out_n * batch; i += 3) o.dy[i] = i % 2 ? -0.0f : (i % 7 ? -INFINITY : NAN);
    char desc[200];
    snprintf(desc, sizeof desc, "%s maxpool2d %dx%d stride %d on %dx%dx%d batch %d%s (bit for bit)", isa, k, k, s, c,
             h, w, batch, specials ? " with ties, NaN, inf" : "");
    report_same_bits(&o, batch, desc);
    free_layer(&o);
}

/* A ReLU, tanh or sigmoid with the 2x2 max pooling after it fused into it
 * (ln_layer.pool_y): the pooled output, offsets and input gradient bit for bit the two
 * fast layers', with ties (coarse and saturated values), infinities and -0 (not NaN:
 * the two layers then also give NaN gradients at the inputs the maximum passed over).
 * A ReLU pools first (max then ReLU): the offsets of windows without a positive value
 * are not compared (their gradients are, all 0). */
static void test_act_maxpool(ln_layer_kind act, int c, int h, int w, int batch, ln_rng *rng, const char *isa)
{
    owned_layer a, p;
    int64_t d[3] = {c, h, w};
    make_layer(&a, ln_simple_layer(act), ln_shape_make(3, d), batch, rng);
    make_layer(&p, ln_maxpool2d(2, 2), ln_shape_make(3, d), batch, rng);
    const int64_t n = a.l.in_n * batch, m = p.l.out_n * batch;
    float *x = a.x, *dy = p.dy;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t r = ln_rng_below(rng, 16);
        if (r < 4) x[i] = floorf(x[i] * 2.0f);       /* ties */
        if (r == 4) x[i] = 20.0f + (float)(i % 3);    /* saturated: tanh ties at 1 */
        if (r == 5) x[i] = -INFINITY;
        if (r == 6) x[i] = -0.0f;
    }
    for (int64_t i = 0; i < m; i += 5) dy[i] = -0.0f;
    ln_ctx ctx = {batch, 1, 0, NULL, NULL, NULL};
    float *y = falloc(n), *g = falloc(n), *py[2], *dx[2];
    int32_t *am[2];
    for (int r = 0; r < 2; r++) {
        py[r] = falloc(m);
        dx[r] = falloc(n);
    }
    am[0] = p.l.argmax; /* freed with the layer */
    am[1] = calloc((size_t)m, sizeof(int32_t));
    /* the two layers */
    ln_layer_forward(&a.l, x, y, &ctx);
    ln_layer_forward(&p.l, y, py[0], &ctx);
    ln_layer_backward(&p.l, y, py[0], dy, g, &ctx);
    ln_layer_backward(&a.l, x, y, g, dx[0], &ctx);
    /* fused */
    a.l.pool_y = py[1];
    a.l.pool_argmax = am[1];
    ln_layer_forward(&a.l, x, NULL, &ctx);
    ln_layer_backward(&a.l, x, NULL, dy, dx[1], &ctx);
    a.l.pool_y = NULL;
    a.l.pool_argmax = NULL;
    char desc[200], detail[300] = "";
    snprintf(desc, sizeof desc, "%s %s + maxpool2d 2x2 fused on %dx%dx%d batch %d (bit for bit the two layers)",
             isa, ln_layer_kind_name(act), c, h, w, batch);
    int ok = same_bits(py[0], py[1], sizeof(float) * (size_t)m, detail, sizeof detail) &&
             (act == LN_RELU || same_bits(am[0], am[1], sizeof(int32_t) * (size_t)m, detail, sizeof detail)) &&
             same_bits(dx[0], dx[1], sizeof(float) * (size_t)n, detail, sizeof detail);
    tap_result(&T, ok, desc, detail);
    for (int r = 0; r < 2; r++) {
        free(py[r]);
        free(dx[r]);
    }
    free(am[1]);
    free(y);
    free(g);
    free_layer(&a);
    free_layer(&p);
}

/* conv2d with the 2x2 max pooling after it fused into it (ln_layer.pool_y; `relu`: 0
 * none, 1 a ReLU between them (ln_layer.act_y), 2 a ReLU after the pooling
 * (ln_layer.pool_relu); `drop`: a dropout2d(0.4) between them, ln_layer.pool_drop, in
 * training, without relu 1): the pooled output, offsets, every gradient, the dropout's
 * mask and the random stream after it bit for bit the separate fast layers', on one
 * thread and split over 3 (forward and backward parts), with ties around 0 (zero
 * inputs) and -0. */
static void test_conv_maxpool(ln_layer_spec spec, int c, int h, int w, int batch, int relu, int drop, int special,
                              ln_rng *rng, const char *isa)
{
    owned_layer o, p, d;
    int64_t dims[3] = {c, h, w};
    make_layer(&o, spec, ln_shape_make(3, dims), batch, rng);
    make_layer(&p, ln_maxpool2d(2, 2), o.l.out, batch, rng);
    make_layer(&d, ln_dropout(LN_DROPOUT2D, special == 4 ? 0.95f : 0.4f), o.l.out, batch, rng);
    const int64_t n = o.l.in_n * batch, m = o.l.out_n * batch, pm = p.l.out_n * batch;
    const int64_t wn = o.l.weight_n + o.l.bias_n, masks = (int64_t)batch * o.l.out.dim[0];
    for (int64_t i = 0; i < n; i += 3) o.x[i] = i % 2 ? 0.0f : -0.0f;
    for (int64_t i = 0; i < pm; i += 5) p.dy[i] = -0.0f;
    /* special 1: an infinite output gradient in the even channels' planes (a dropped
     * one's gradient is then NaN, not 0: the input gradient may skip only the others);
     * 2: an infinite weight (no plane may be skipped) */
    const int64_t pplane = p.l.out_n / p.l.out.dim[0];
    if (special == 1)
        for (int s = 0; s < batch; s++)
            for (int64_t ch = 0; ch < p.l.out.dim[0]; ch += 2) p.dy[s * p.l.out_n + ch * pplane] = INFINITY;
    if (special == 2) o.l.weight[0] = INFINITY;
    /* 4: a dropout2d of 0.95, which drops every channel of some samples; 5: an infinite
     * input in sample 1 (the listed weight gradient then takes every place of it) */
    if (special == 5) o.x[o.l.in_n + 7] = INFINITY;
    if (special == 3) /* finite inputs whose sums overflow: none may be left out */
        for (int64_t i = 0; i < n; i++) o.x[i] = o.x[i] * 1e37f + 3e37f;
    const int64_t wsn = ln_layer_workspace(&o.l);
    float *ws = falloc(3 * wsn), *py[3], *dx[3], *dw[3], *mask[3];
    int32_t *am[3];
    ln_rng stream[3];
    for (int r = 0; r < 3; r++) {
        py[r] = falloc(pm);
        dx[r] = falloc(n);
        dw[r] = falloc(wn);
        mask[r] = falloc(masks);
        am[r] = calloc((size_t)pm, sizeof(int32_t));
        ln_rng_seed(&stream[r], 77, 5);
    }
    free(p.l.argmax); /* am[r] instead */
    /* r = 0: the separate layers */
    {
        ln_ctx ctx = {batch, 1, 0, &stream[0], ws, NULL};
        float *y = falloc(m), *a = falloc(m), *g = falloc(m), *ga = falloc(m);
        memset(o.dweight, 0, sizeof(float) * (size_t)o.l.weight_n);
        memset(o.dbias, 0, sizeof(float) * (size_t)o.l.bias_n);
        d.l.mask = mask[0];
        ln_layer_forward(&o.l, o.x, y, &ctx);
        if (relu == 1) ln_simd()->relu_fwd(m, y, a);
        if (drop) ln_layer_forward(&d.l, y, a, &ctx);
        p.l.argmax = am[0];
        p.l.act_y = relu == 2 ? py[0] : NULL; /* the pooling's own fused ReLU */
        const float *pin = relu == 1 || drop ? a : y;
        ln_layer_forward(&p.l, pin, py[0], &ctx);
        ln_layer_backward(&p.l, pin, py[0], p.dy, g, &ctx);
        if (relu == 1) ln_simd()->relu_bwd(m, a, g, ga);
        if (drop) ln_layer_backward(&d.l, y, a, g, ga, &ctx);
        ln_layer_backward(&o.l, o.x, y, relu == 1 || drop ? ga : g, dx[0], &ctx);
        p.l.act_y = NULL;
        memcpy(dw[0], o.dweight, sizeof(float) * (size_t)o.l.weight_n);
        memcpy(dw[0] + o.l.weight_n, o.dbias, sizeof(float) * (size_t)o.l.bias_n);
        free(y);
        free(a);
        free(g);
        free(ga);
    }
    /* r = 1: fused, one thread; r = 2: fused, split over 3 threads */
    for (int r = 1; r < 3; r++) {
        ln_ctx ctx = {batch, 1, 0, &stream[r], ws, NULL};
        float *act = falloc(m); /* a fused ReLU's output: never written with a pooling */
        memset(o.dweight, 0, sizeof(float) * (size_t)o.l.weight_n);
        memset(o.dbias, 0, sizeof(float) * (size_t)o.l.bias_n);
        d.l.mask = mask[r];
        o.l.act_y = relu == 1 ? act : NULL;
        o.l.act_kind = LN_RELU;
        o.l.pool_y = py[r];
        o.l.pool_argmax = am[r];
        o.l.pool_relu = relu == 2;
        o.l.pool_drop = drop ? &d.l : NULL;
        if (r == 1) {
            ln_layer_forward(&o.l, o.x, NULL, &ctx);
            ln_layer_backward(&o.l, o.x, NULL, p.dy, dx[r], &ctx);
        } else {
            for (int t = 0; t < 3; t++) {
                ln_ctx tc = ctx;
                tc.workspace = ws + t * wsn;
                tc.shared = ws;
                ln_layer_forward_part(&o.l, o.x, NULL, &tc, t, 3);
            }
            ln_layer_forward_finish(&o.l, &ctx);
            for (int t = 0; t < 3; t++) {
                ln_ctx tc = ctx;
                tc.workspace = ws + t * wsn;
                tc.shared = ws;
                ln_layer_backward_part(&o.l, o.x, NULL, p.dy, dx[r], &tc, t, 3);
            }
            ln_layer_backward_finish(&o.l, &ctx);
        }
        o.l.act_y = NULL;
        o.l.pool_y = NULL;
        o.l.pool_argmax = NULL;
        o.l.pool_relu = 0;
        o.l.pool_drop = NULL;
        memcpy(dw[r], o.dweight, sizeof(float) * (size_t)o.l.weight_n);
        memcpy(dw[r] + o.l.weight_n, o.dbias, sizeof(float) * (size_t)o.l.bias_n);
        free(act);
    }
    p.l.argmax = NULL;
    d.l.mask = NULL;
    int ok = 1;
    char desc[200], detail[300] = "";
    for (int r = 1; ok && r < 3; r++) {
        ok = same_bits(py[0], py[r], sizeof(float) * (size_t)pm, detail, sizeof detail) &&
             same_bits(am[0], am[r], sizeof(int32_t) * (size_t)pm, detail, sizeof detail) &&
             same_bits(dx[0], dx[r], sizeof(float) * (size_t)n, detail, sizeof detail) &&
             same_bits(dw[0], dw[r], sizeof(float) * (size_t)wn, detail, sizeof detail) &&
             (!drop || same_bits(mask[0], mask[r], sizeof(float) * (size_t)masks, detail, sizeof detail));
        ln_rng a = stream[0], b = stream[r]; /* their next draws, the streams untouched */
        if (ok && ln_rng_u32(&a) != ln_rng_u32(&b)) {
            ok = 0;
            snprintf(detail, sizeof detail, "the random stream is not where the separate layers leave it");
        }
    }
    snprintf(desc, sizeof desc, "%s conv2d %d->%d k%d p%d%s%s + maxpool2d 2x2%s fused on %dx%dx%d batch %d%s, 1 and "
             "3 threads (bit for bit the separate layers)", isa, c, spec.out_channels, spec.kernel, spec.padding,
             relu == 1 ? " + relu" : "", drop ? " + dropout2d" : "", relu == 2 ? " + relu" : "", c, h, w, batch,
             special == 1 ? ", inf in dy" : special == 2 ? ", an infinite weight" : special == 3 ? ", huge inputs"
             : special == 4 ? ", dropout 0.95 (samples with every channel dropped)"
             : special == 5 ? ", an infinite input" : "");
    tap_result(&T, ok, desc, detail);
    for (int r = 0; r < 3; r++) {
        free(py[r]);
        free(dx[r]);
        free(dw[r]);
        free(mask[r]);
        free(am[r]);
    }
    free(ws);
    free_layer(&o);
    free_layer(&p);
    free_layer(&d);
}

/* max_abs: the largest magnitude (a negative value's, in the vector part or the tail),
 * or infinity when an inf or a NaN is anywhere */
static void test_max_abs(const char *isa)
{
    float v[150]; /* past 4 x 16 lanes: every one of the running maxima */
    int ok = 1;
    char detail[200] = "";
    for (int n = 0; n <= 150 && ok; n++)
        for (int at = 0; at < n && ok; at++) {
            for (int i = 0; i < 150; i++) v[i] = (float)((i * 7) % 11) - 5.0f; /* |v| <= 5 */
            v[at] = -1e30f;
            float got = ln_simd()->max_abs(n, v);
            if (got != 1e30f) {
                ok = 0;
                snprintf(detail, sizeof detail, "n %d, -1e30 at %d: %g", n, at, (double)got);
            }
            for (int q = 0; q < 3 && ok; q++) {
                v[at] = q == 0 ? INFINITY : q == 1 ? -INFINITY : NAN;
                got = ln_simd()->max_abs(n, v);
                if (!isinf(got)) {
                    ok = 0;
                    snprintf(detail, sizeof detail, "n %d, a non-finite value at %d: %g", n, at, (double)got);
                }
            }
        }
    if (ok && ln_simd()->max_abs(0, v) != 0.0f) {
        ok = 0;
        snprintf(detail, sizeof detail, "no values: not 0");
    }
    char desc[120];
    snprintf(desc, sizeof desc, "%s max_abs: the largest magnitude, infinity for an inf or NaN anywhere", isa);
    tap_result(&T, ok, desc, detail);
}

/* prefetch_write is a hint: over a whole buffer, its last byte, nothing and a range
 * that is not line-aligned, it changes no byte */
static void test_prefetch_write(const char *isa)
{
    enum { N = 1000 };
    unsigned char *b = malloc(N);
    for (int i = 0; i < N; i++) b[i] = (unsigned char)(i * 31 + 7);
    const ln_simd_kernels *K = ln_simd();
    K->prefetch_write(b, N);
    K->prefetch_write(b + N - 1, 1);
    K->prefetch_write(b + N, 0);
    K->prefetch_write(b + 3, N - 3);
    int ok = 1;
    char detail[120] = "";
    for (int i = 0; i < N && ok; i++)
        if (b[i] != (unsigned char)(i * 31 + 7)) {
            ok = 0;
            snprintf(detail, sizeof detail, "byte %d changed", i);
        }
    free(b);
    char desc[120];
    snprintf(desc, sizeof desc, "%s prefetch_write leaves the buffer as it was", isa);
    tap_result(&T, ok, desc, detail);
}

/* A convolution whose output gradient comes from a max pooling it does not take in
 * (ln_layer.dy_sparse, set by net.c: a window other than 2x2): its weight and input
 * gradients from the places of dy that are not +-0 (nonzero_places), against the same
 * layer told nothing (the dense kernels), on one thread and split over 3, bit for bit.
 * dy is the pooling's input gradient (3x3 windows, stride 2; -0 among the maxima's
 * gradients), through a fused ReLU when relu; special 1: an infinite input in sample 1
 * (that sample's weight gradient takes every place, its input gradient dy itself);
 * 2: an infinite weight (no input gradient may take the lists); 3: a dense dy (every
 * place, more than the lists have room for: dy itself). */
static void test_conv_sparse_dy(ln_layer_spec spec, int c, int h, int w, int batch, int relu, int special,
                                ln_rng *rng, const char *isa)
{
    owned_layer o, p;
    int64_t dims[3] = {c, h, w};
    make_layer(&o, spec, ln_shape_make(3, dims), batch, rng);
    make_layer(&p, ln_maxpool2d(3, 2), o.l.out, batch, rng);
    const int64_t n = o.l.in_n * batch, m = o.l.out_n * batch, pm = p.l.out_n * batch;
    const int64_t wn = o.l.weight_n + o.l.bias_n;
    for (int64_t i = 0; i < pm; i += 5) p.dy[i] = -0.0f;
    if (special == 1) o.x[o.l.in_n + 7] = INFINITY;
    if (special == 2) o.l.weight[0] = INFINITY;
    ln_ctx ctx = {batch, 1, 0, NULL, NULL, NULL};
    const int64_t wsn = ln_layer_workspace(&o.l);
    float *ws = falloc(3 * wsn), *y = falloc(m), *a = falloc(m), *py = falloc(pm), *g = falloc(m), *dx[3], *dw[3];
    ctx.workspace = ws;
    o.l.act_y = relu ? a : NULL;
    o.l.act_kind = LN_RELU;
    ln_layer_forward(&o.l, o.x, y, &ctx);
    const float *pin = relu ? a : y;
    ln_layer_forward(&p.l, pin, py, &ctx);
    if (special == 3)
        memcpy(g, o.dy, sizeof(float) * (size_t)m); /* random: no zeros */
    else
        ln_layer_backward(&p.l, pin, py, p.dy, g, &ctx);
    for (int r = 0; r < 3; r++) {
        dx[r] = falloc(n);
        dw[r] = falloc(wn);
        memset(o.dweight, 0, sizeof(float) * (size_t)o.l.weight_n);
        memset(o.dbias, 0, sizeof(float) * (size_t)o.l.bias_n);
        o.l.dy_sparse = r > 0;
        if (r < 2) {
            ln_layer_backward(&o.l, o.x, y, g, dx[r], &ctx);
        } else {
            for (int t = 0; t < 3; t++) {
                ln_ctx tc = ctx;
                tc.workspace = ws + t * wsn;
                tc.shared = ws;
                ln_layer_backward_part(&o.l, o.x, y, g, dx[r], &tc, t, 3);
            }
            ln_layer_backward_finish(&o.l, &ctx);
        }
        memcpy(dw[r], o.dweight, sizeof(float) * (size_t)o.l.weight_n);
        memcpy(dw[r] + o.l.weight_n, o.dbias, sizeof(float) * (size_t)o.l.bias_n);
    }
    o.l.dy_sparse = 0;
    o.l.act_y = NULL;
    int ok = 1;
    char desc[240], detail[300] = "";
    for (int r = 1; ok && r < 3; r++)
        ok = same_bits(dx[0], dx[r], sizeof(float) * (size_t)n, detail, sizeof detail) &&
             same_bits(dw[0], dw[r], sizeof(float) * (size_t)wn, detail, sizeof detail);
    snprintf(desc, sizeof desc, "%s conv2d %d->%d k%d p%d%s before a maxpool2d 3x3 stride 2 on %dx%dx%d batch %d%s: "
             "gradients from dy's nonzero places, 1 and 3 threads (bit for bit the dense kernels)", isa, c,
             spec.out_channels, spec.kernel, spec.padding, relu ? " + relu" : "", c, h, w, batch,
             special == 1 ? ", an infinite input" : special == 2 ? ", an infinite weight"
             : special == 3 ? ", a dense dy" : "");
    tap_result(&T, ok, desc, detail);
    for (int r = 0; r < 3; r++) {
        free(dx[r]);
        free(dw[r]);
    }
    free(ws);
    free(y);
    free(a);
    free(py);
    free(g);
    free_layer(&o);
    free_layer(&p);
}

/* Average pooling against the reference, bit for bit (-0, NaN and inf too, in x and dy). */
static void test_avgpool(int c, int h, int w, int k, int s, int batch, ln_rng *rng, const char *isa)
{
    owned_layer o;
    int64_t d[3] = {c, h, w};
    make_layer(&o, ln_avgpool2d(k, s), ln_shape_make(3, d), batch, rng);
    const int64_t n = o.l.in_n * batch, m = o.l.out_n * batch;
    float *x = o.x, *dy = o.dy;
    for (int64_t i = 0; i < n; i += 7) x[i] = i % 3 == 0 ? -0.0f : i % 3 == 1 ? NAN : INFINITY;
    for (int64_t i = 0; i < m; i += 5) dy[i] = -0.0f;
    for (int64_t i = 2; i < m; i += 11) dy[i] = (i / 11) % 2 ? NAN : -INFINITY; /* beside lanes without them */
    char desc[200];
    snprintf(desc, sizeof desc, "%s avgpool2d %dx%d stride %d on %dx%dx%d batch %d (bit for bit)", isa, k, k, s, c, h,
             w, batch);
    report_same_bits(&o, batch, desc);
    free_layer(&o);
}

/* Batchnorm (the fast path sums each sample's run in vector lanes) against the
 * reference twin, in training and in eval mode: outputs, running statistics and all
 * gradients within the tolerance. */
static void test_batchnorm(int c, int h, int w, int batch, int training, ln_rng *rng, const char *isa)
{
    owned_layer o;
    int64_t d[3] = {c, h, w};
    const ln_layer_kind kind = h ? LN_BATCHNORM2D : LN_BATCHNORM1D;
    make_layer(&o, ln_batchnorm(kind, c), ln_shape_make(h ? 3 : 1, d), batch, rng);
    const int64_t n = o.l.in_n * batch;
    float *x = o.x, *buf[2], *saved[2];
    for (int64_t i = 0; i < n; i++) x[i] = 3.0f + 2.0f * x[i]; /* a mean well away from 0 */
    float *out[2][5];
    for (int r = 0; r < 2; r++) {
        buf[r] = falloc(2 * c);
        saved[r] = falloc(ln_layer_saved_count(&o.l));
        for (int i = 0; i < c; i++) {
            buf[r][i] = 0.1f * (float)i;
            buf[r][c + i] = 1.0f + 0.2f * (float)i;
        }
        o.l.running_mean = buf[r];
        o.l.running_var = buf[r] + c;
        o.l.saved = saved[r];
        ln_ctx ctx = {batch, training, r, NULL, NULL, NULL};
        out[r][0] = falloc(n);
        out[r][1] = falloc(n);
        memset(o.dweight, 0, sizeof(float) * (size_t)c);
        memset(o.dbias, 0, sizeof(float) * (size_t)c);
        ln_layer_forward(&o.l, x, out[r][0], &ctx);
        ln_layer_backward(&o.l, x, out[r][0], o.dy, out[r][1], &ctx);
        out[r][2] = falloc(c);
        out[r][3] = falloc(c);
        memcpy(out[r][2], o.dweight, sizeof(float) * (size_t)c);
        memcpy(out[r][3], o.dbias, sizeof(float) * (size_t)c);
        out[r][4] = buf[r];
    }
    char desc[200], detail[300] = "";
    snprintf(desc, sizeof desc, "%s %s on %dx%dx%d batch %d, %s: fast = reference", isa,
             ln_layer_kind_name(kind), c, h, w, batch, training ? "training" : "eval");
    int ok = close_all(out[0][0], out[1][0], n, detail, sizeof detail) &&
             close_all(out[0][1], out[1][1], n, detail, sizeof detail) &&
             close_all(out[0][2], out[1][2], c, detail, sizeof detail) &&
             close_all(out[0][3], out[1][3], c, detail, sizeof detail) &&
             close_all(out[0][4], out[1][4], 2 * c, detail, sizeof detail);
    tap_result(&T, ok, desc, detail);
    for (int r = 0; r < 2; r++) {
        for (int j = 0; j < 4; j++) free(out[r][j]);
        free(buf[r]);
        free(saved[r]);
    }
    free_layer(&o);
}

/* Whether n floats are the same bits, but that a NaN may be any NaN: which of two NaN
 * operands an operation returns is the compiler's choice of operand order (a
 * sanitizer build's scalar reference took the other NaN's sign than the vectors). */
static int same_floats_any_nan(const float *a, const float *b, int64_t n, char *detail, size_t size)
{
    for (int64_t i = 0; i < n; i++)
        if (!(isnan(a[i]) && isnan(b[i])) && memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            snprintf(detail, size, "floats differ at %lld: %a, %a", (long long)i, (double)a[i], (double)b[i]);
            return 0;
        }
    return 1;
}

/* Batchnorm1d on batch x f (one value per feature: the bn_feat kernels) against the
 * reference, bit for bit (any NaN for a NaN): the output, the saved and running statistics, the input and
 * parameter gradients, on one thread and split over 3 (features [0, f) in 3 parts). With
 * specials, -0, an infinity and a NaN in x and in dy, in features of their own. */
static void test_batchnorm_features(int f, int batch, int training, int specials, ln_rng *rng, const char *isa)
{
    owned_layer o;
    int64_t d[1] = {f};
    make_layer(&o, ln_batchnorm(LN_BATCHNORM1D, f), ln_shape_make(1, d), batch, rng);
    const int64_t n = o.l.in_n * batch, saved_n = ln_layer_saved_count(&o.l);
    float *x = o.x, *dy = o.dy;
    for (int64_t i = 0; i < n; i++) x[i] = 3.0f + 2.0f * x[i]; /* a mean well away from 0 */
    if (specials && f >= 4)
        for (int a = 0; a < batch; a++) {
            x[(int64_t)a * f + 1] = a % 2 ? -0.0f : 0.5f;
            x[(int64_t)a * f + f - 2] = a == batch / 2 ? INFINITY : 1.0f;
            x[(int64_t)a * f + f / 2] = a == 0 ? NAN : 2.0f;
            dy[(int64_t)a * f + 2] = a % 3 ? -0.0f : -INFINITY;
            dy[(int64_t)a * f + f - 1] = a == batch - 1 ? NAN : dy[(int64_t)a * f + f - 1];
        }
    float *out[3][6];
    for (int r = 0; r < 3; r++) { /* the reference, the fast path on one thread, on 3 */
        out[r][0] = falloc(n);
        out[r][1] = falloc(n);
        out[r][2] = falloc(f);
        out[r][3] = falloc(f);
        out[r][4] = falloc(2 * f);
        out[r][5] = falloc(saved_n);
        for (int i = 0; i < f; i++) {
            out[r][4][i] = 0.1f * (float)i;
            out[r][4][f + i] = 1.0f + 0.2f * (float)i;
        }
        memset(out[r][5], 0, sizeof(float) * (size_t)saved_n);
        o.l.running_mean = out[r][4];
        o.l.running_var = out[r][4] + f;
        o.l.saved = out[r][5];
        o.l.dweight = out[r][2];
        o.l.dbias = out[r][3];
        memset(out[r][2], 0, sizeof(float) * (size_t)f);
        memset(out[r][3], 0, sizeof(float) * (size_t)f);
        ln_ctx ctx = {batch, training, r == 0, NULL, NULL, NULL};
        const int T = r == 2 ? 3 : 1;
        for (int t = 0; t < T; t++) batchnorm_forward_part(&o.l, x, out[r][0], &ctx, t, T);
        for (int t = 0; t < T; t++) batchnorm_backward_part(&o.l, x, dy, out[r][1], &ctx, t, T);
    }
    o.l.dweight = o.dweight;
    o.l.dbias = o.dbias;
    char desc[200], detail[300] = "";
    snprintf(desc, sizeof desc, "%s batchnorm1d on %d features, batch %d, %s%s: fast = reference bit for bit, "
             "on 1 and 3 threads", isa, f, batch, training ? "training" : "eval",
             specials ? ", with -0, inf and NaN" : "");
    static const char *what[6] = {"output", "input gradient", "weight gradient", "bias gradient",
                                  "running statistics", "saved statistics"};
    int ok = 1;
    for (int r = 1; ok && r < 3; r++)
        for (int j = 0; ok && j < 6; j++) {
            const int64_t len = j < 2 ? n : j < 4 ? f : j == 4 ? 2 * f : saved_n;
            const int64_t cmp = j == 5 ? (training ? 2 * f : 0) : len; /* the saved mean and invstd */
            if (!same_floats_any_nan(out[r][j], out[0][j], cmp, detail, sizeof detail)) {
                ok = 0;
                snprintf(detail + strlen(detail), sizeof detail - strlen(detail), " (%s, %s)", what[j],
                         r == 1 ? "1 thread" : "3 threads");
            }
        }
    tap_result(&T, ok, desc, detail);
    for (int r = 0; r < 3; r++)
        for (int j = 0; j < 6; j++) free(out[r][j]);
    free_layer(&o);
}

/* A convolution and the batchnorm after it (its fused activation `act`, 0 for none, and
 * `pool`, a 2x2 average pooling after that): the batchnorm's backward deferring its
 * input gradient to the convolution's (ln_layer.defer_dx, grad_bn; net.c) against the
 * two backward passes one after the other, bit for bit: the convolution's input and
 * parameter gradients and the batchnorm's parameter gradients, on one thread and split
 * over 3 (both layers' backward parts), in training or eval; values around 0, a NaN. The
 * deferred input gradient's buffer is filled with NaN first and must stay so. */
static void test_conv_bn_deferred(ln_layer_spec cspec, int c, int h, int w, int batch, ln_layer_kind act,
                                  int pool, int training, ln_rng *rng, const char *isa)
{
    owned_layer o, b;
    int64_t dims[3] = {c, h, w};
    make_layer(&o, cspec, ln_shape_make(3, dims), batch, rng);
    make_layer(&b, ln_batchnorm(LN_BATCHNORM2D, (int)o.l.out.dim[0]), o.l.out, batch, rng);
    const int oc = (int)o.l.out.dim[0];
    const int64_t n = o.l.in_n * batch, m = o.l.out_n * batch, m2 = pool ? ln_pooled_n(&b.l) * batch : m;
    const int64_t wn = o.l.weight_n + o.l.bias_n;
    for (int64_t i = 0; i < n; i += 13) o.x[i] = i % 2 ? 0.0f : -0.0f;
    float *dy = falloc(m2);
    fill(dy, m2, rng);
    for (int64_t i = 0; i < m2; i += 9) dy[i] = -0.0f;
    dy[m2 / 3] = NAN;
    const int64_t wsn = ln_layer_workspace(&o.l) > ln_layer_workspace(&b.l) ? ln_layer_workspace(&o.l)
                                                                            : ln_layer_workspace(&b.l);
    float *ws = falloc(3 * wsn), *bufs = falloc(2 * oc), *saved = falloc(ln_layer_saved_count(&b.l));
    for (int i = 0; i < oc; i++) bufs[i] = 0.1f * (float)i, bufs[oc + i] = 1.0f + 0.1f * (float)i;
    b.l.running_mean = bufs;
    b.l.running_var = bufs + oc;
    b.l.saved = saved;
    /* the forward pass, once: the convolution's output, the batchnorm's (fused) outputs */
    float *y = falloc(m), *ay = falloc(m), *py = falloc(m2), *by = falloc(m);
    ln_ctx fctx = {batch, training, 0, NULL, ws, NULL};
    ln_layer_forward(&o.l, o.x, y, &fctx);
    b.l.act_y = act ? ay : NULL;
    b.l.act_kind = act ? act : LN_RELU;
    b.l.pool_y = pool ? py : NULL;
    ln_layer_forward(&b.l, y, by, &fctx);
    float *dx[3], *dw[3], *bw[3];
    int untouched = 1;
    for (int r = 0; r < 3; r++) {
        ln_ctx ctx = {batch, training, 0, NULL, ws, NULL};
        dx[r] = falloc(n);
        dw[r] = falloc(wn);
        bw[r] = falloc(2 * oc);
        float *g = falloc(m);
        memset(o.dweight, 0, sizeof(float) * (size_t)o.l.weight_n);
        if (o.dbias) memset(o.dbias, 0, sizeof(float) * (size_t)o.l.bias_n);
        memset(b.dweight, 0, sizeof(float) * (size_t)oc);
        memset(b.dbias, 0, sizeof(float) * (size_t)oc);
        if (r == 0) { /* the two passes */
            ln_layer_backward(&b.l, y, by, dy, g, &ctx);
            ln_layer_backward(&o.l, o.x, y, g, dx[0], &ctx);
        } else {
            for (int64_t i = 0; i < m; i++) g[i] = NAN;
            b.l.defer_dx = 1;
            b.l.defer_x = y;
            b.l.defer_dy = dy;
            o.l.grad_bn = &b.l;
            if (r == 1) {
                ln_layer_backward(&b.l, y, by, dy, g, &ctx);
                ln_layer_backward(&o.l, o.x, y, g, dx[1], &ctx);
            } else {
                for (int t = 0; t < 3; t++) {
                    ln_ctx tc = ctx;
                    tc.workspace = ws + t * wsn;
                    tc.shared = ws;
                    ln_layer_backward_part(&b.l, y, by, dy, g, &tc, t, 3);
                }
                ln_layer_backward_finish(&b.l, &ctx);
                for (int t = 0; t < 3; t++) {
                    ln_ctx tc = ctx;
                    tc.workspace = ws + t * wsn;
                    tc.shared = ws;
                    ln_layer_backward_part(&o.l, o.x, y, g, dx[2], &tc, t, 3);
                }
                ln_layer_backward_finish(&o.l, &ctx);
            }
            b.l.defer_dx = 0;
            o.l.grad_bn = NULL;
            for (int64_t i = 0; i < m; i++) untouched &= g[i] != g[i];
        }
        memcpy(dw[r], o.dweight, sizeof(float) * (size_t)o.l.weight_n);
        if (o.dbias) memcpy(dw[r] + o.l.weight_n, o.dbias, sizeof(float) * (size_t)o.l.bias_n);
        memcpy(bw[r], b.dweight, sizeof(float) * (size_t)oc);
        memcpy(bw[r] + oc, b.dbias, sizeof(float) * (size_t)oc);
        free(g);
    }
    char desc[240], detail[300] = "";
    int ok = untouched;
    if (!ok) snprintf(detail, sizeof detail, "the deferred input gradient's buffer was written");
    for (int r = 1; ok && r < 3; r++)
        ok = same_bits(dx[0], dx[r], sizeof(float) * (size_t)n, detail, sizeof detail) &&
             same_bits(dw[0], dw[r], sizeof(float) * (size_t)wn, detail, sizeof detail) &&
             same_bits(bw[0], bw[r], sizeof(float) * 2 * (size_t)oc, detail, sizeof detail);
    snprintf(desc, sizeof desc, "%s conv2d %d->%d k%d s%d p%d + batchnorm2d%s%s%s on %dx%dx%d batch %d, %s: its input "
             "gradient made by the convolution's backward, 1 and 3 threads (bit for bit the two passes)", isa, c,
             oc, cspec.kernel, cspec.stride, cspec.padding, act ? " + " : "", act ? ln_layer_kind_name(act) : "",
             pool ? " + avgpool2d 2x2" : "", c, h, w, batch, training ? "training" : "eval");
    tap_result(&T, ok, desc, detail);
    for (int r = 0; r < 3; r++) {
        free(dx[r]);
        free(dw[r]);
        free(bw[r]);
    }
    free(dy);
    free(ws);
    free(bufs);
    free(saved);
    free(y);
    free(ay);
    free(py);
    free(by);
    free_layer(&o);
    free_layer(&b);
}

/* An activation (ReLU; tanh and sigmoid after batchnorm) fused into the layer before it
 * (ln_layer.act_y, net.c) against the two layers one after the other, bit for bit:
 * output, input gradient and (batchnorm, conv2d) parameter gradients and (batchnorm)
 * statistics, in training and eval; values around 0, NaN. */
/* Whether a batchnorm reads a fused 2x2 average pooling's gradient on h x w planes
 * through its unpool map (batchnorm.c): even sides and, with an ISA's window of pooled
 * values (ln_simd_kernels.unpool_window; 0: any), a pooled plane of a window or more
 * and the pooled values each vector of places reads (lanes places in a row, flat) fewer
 * than a window apart; it spreads the gradient otherwise. */
static int unpool_fits(int h, int w, int lanes, int window)
{
    if (h % 2 || w % 2 || (h / 2) * (w / 2) < window) return 0;
    for (int f0 = 0; window && f0 < h * w; f0 += lanes) {
        int lo = h * w, hi = 0;
        for (int f = f0; f < f0 + lanes && f < h * w; f++) {
            const int at = (f / w / 2) * (w / 2) + (f % w) / 2;
            lo = at < lo ? at : lo;
            hi = at > hi ? at : hi;
        }
        if (hi - lo >= window) return 0;
    }
    return 1;
}

static void test_fused_act(ln_layer_spec spec, ln_layer_kind act, int c, int h, int w, int batch, int training,
                           int pool, ln_rng *rng, const char *isa)
{
    owned_layer o;
    int64_t d[3] = {c, h, w};
    const int is_bn = spec.kind == LN_BATCHNORM2D || spec.kind == LN_BATCHNORM1D;
    /* batchnorm1d: c features (h and w 1) */
    make_layer(&o, spec, spec.kind == LN_BATCHNORM1D ? ln_shape_make(1, d) : ln_shape_make(3, d), batch, rng);
    /* pool: a 2x2 average pooling follows the activation (ln_layer.pool_y), dy is its
     * output's gradient; m2 floats of it */
    const int64_t n = o.l.in_n * batch, m = o.l.out_n * batch, m2 = pool ? ln_pooled_n(&o.l) * batch : m;
    float *x = falloc(n), *dy = falloc(m2), *bufs = falloc(4 * c);
    fill(x, n, rng);
    fill(dy, m2, rng);
    x[n / 2] = NAN;
    for (int64_t i = 0; i < n; i += 11) x[i] = i % 2 ? 0.0f : -0.0f;
    float *y[2], *py[2], *dx[2], *dw[2], *stats[2];
    int unpooled = 0; /* the batchnorm read the pooled gradient through its unpool map */
    const int64_t wn = o.l.weight_n, bn = o.l.bias_n, wsn = ln_layer_workspace(&o.l);
    float *ws = wsn > 0 ? falloc(wsn) : NULL;
    for (int fused = 0; fused < 2; fused++) {
        /* (2c floats compared below, whatever the kind) */
        float *saved = falloc(ln_layer_saved_count(&o.l) > 2 * c ? ln_layer_saved_count(&o.l) : 2 * c);
        if (is_bn) {
            for (int i = 0; i < c; i++) bufs[i] = 0.1f * (float)i, bufs[c + i] = 1.0f + 0.1f * (float)i;
            o.l.running_mean = bufs;
            o.l.running_var = bufs + c;
            o.l.saved = saved;
        }
        ln_ctx ctx = {batch, training, 0, NULL, ws, NULL};
        y[fused] = falloc(m);
        py[fused] = falloc(m2);
        dx[fused] = falloc(n);
        float *pre = falloc(m), *g = falloc(m), *gp = falloc(m);
        if (o.dweight) memset(o.dweight, 0, sizeof(float) * (size_t)o.l.weight_n);
        if (o.dbias) memset(o.dbias, 0, sizeof(float) * (size_t)o.l.bias_n);
        if (fused) {
            o.l.act_y = y[1];
            o.l.act_kind = act;
            o.l.pool_y = pool ? py[1] : NULL;
            ln_layer_forward(&o.l, x, y[1], &ctx);
            unpooled = pool && o.l.spec.kind == LN_BATCHNORM2D && batchnorm_unpools(&o.l);
            ln_layer_backward(&o.l, x, y[1], dy, dx[1], &ctx);
            o.l.act_y = NULL;
            o.l.pool_y = NULL;
        } else {
            ln_layer_forward(&o.l, x, pre, &ctx);
            const float *gy = dy; /* the activation's output gradient */
            if (pool) {
                ln_simd()->avgpool2_bwd((int64_t)batch * c, h, w, dy, gp);
                gy = gp;
            }
            if (act == LN_RELU) {
                ln_simd()->relu_fwd(m, pre, y[0]);
                ln_simd()->relu_bwd(m, y[0], gy, g);
            } else {
                ln_simd()->squash_fwd((int)act, m, pre, y[0]);
                ln_simd()->squash_bwd((int)act, m, y[0], gy, g);
            }
            if (pool) ln_simd()->avgpool2_fwd((int64_t)batch * c, h, w, y[0], py[0]);
            ln_layer_backward(&o.l, x, pre, g, dx[0], &ctx);
        }
        dw[fused] = falloc(wn + bn);
        if (o.dweight) memcpy(dw[fused], o.dweight, sizeof(float) * (size_t)wn);
        if (o.dbias) memcpy(dw[fused] + wn, o.dbias, sizeof(float) * (size_t)bn);
        stats[fused] = falloc(4 * c);
        memcpy(stats[fused], bufs, sizeof(float) * 2 * (size_t)c);
        memcpy(stats[fused] + 2 * c, saved, sizeof(float) * 2 * (size_t)c);
        free(pre);
        free(g);
        free(gp);
        free(saved);
    }
    char desc[200], detail[300] = "";
    const int want_map = pool && o.l.spec.kind == LN_BATCHNORM2D && unpool_fits(h, w, ln_simd()->lanes, ln_simd()->unpool_window);
    snprintf(desc, sizeof desc, "%s %s + %s%s fused on %dx%dx%d batch %d, %s (bit for bit the %s layers)%s", isa,
             ln_layer_kind_name(o.l.spec.kind), ln_layer_kind_name(act), pool ? " + avgpool2d 2x2" : "", c, h,
             w, batch, training ? "training" : "eval", pool ? "three" : "two",
             !want_map ? "" : unpooled ? ", through the unpool map" : ", NOT through the unpool map");
    /* a ReLU with a pooling after it: the full output is not written (backward
     * recomputes the ReLU's mask from x), the pooled one is compared */
    int ok = unpooled == want_map && ((pool && act == LN_RELU) || same_bits(y[0], y[1], sizeof(float) * (size_t)m, detail, sizeof detail)) &&
             (!pool || same_bits(py[0], py[1], sizeof(float) * (size_t)m2, detail, sizeof detail)) &&
             same_bits(dx[0], dx[1], sizeof(float) * (size_t)n, detail, sizeof detail) &&
             same_bits(dw[0], dw[1], sizeof(float) * (size_t)(wn + bn), detail, sizeof detail) &&
             same_bits(stats[0], stats[1], sizeof(float) * 4 * (size_t)c, detail, sizeof detail);
    tap_result(&T, ok, desc, detail);
    for (int r = 0; r < 2; r++) {
        free(y[r]);
        free(py[r]);
        free(dx[r]);
        free(dw[r]);
        free(stats[r]);
    }
    free(x);
    free(dy);
    free(bufs);
    free(ws);
    free_layer(&o);
}

/* ReLU and LeakyReLU (positive, zero and negative slopes: PyTorch takes any), fast
 * against the scalar twin. */
static void test_rectifier(ln_layer_spec spec, int64_t per_sample, int batch, ln_rng *rng,
                           const char *isa)
{
    owned_layer o;
    int64_t d[1] = {per_sample};
    make_layer(&o, spec, ln_shape_make(1, d), batch, rng);
    const int64_t n = per_sample * batch;
    float *x = o.x;
    for (int64_t i = 0; i < n; i += 5) x[i] = i % 3 ? -0.0f : NAN;
    char name[64], desc[200];
    if (spec.kind == LN_LEAKY_RELU)
        snprintf(name, sizeof name, "leaky_relu(%g)", (double)spec.negative_slope);
    else
        snprintf(name, sizeof name, "%s", ln_layer_kind_name(spec.kind));
    snprintf(desc, sizeof desc, "%s %s over %lld floats (bit for bit, NaN and -0)", isa, name,
             (long long)n);
    report_same_bits(&o, batch, desc);
    free_layer(&o);
}

/* ------------------------------------------------------ tanh, sigmoid */

static int64_t ulp_distance(float a, float b)
{
    int32_t x, y;
    memcpy(&x, &a, sizeof x);
    memcpy(&y, &b, sizeof y);
    if (x < 0) x = INT32_MIN - x;
    if (y < 0) y = INT32_MIN - y;
    return llabs((int64_t)x - (int64_t)y);
}

/* Forward within 4 ulp of the C library (tanhf, 1/(1+expf(-x))), the same NaN, signs
 * and limits; backward (from the saved output) bit for bit. */
static void test_squash(ln_layer_kind kind, int64_t per_sample, int batch, ln_rng *rng,
                        const char *isa)
{
    owned_layer o;
    int64_t d[1] = {per_sample};
    make_layer(&o, ln_simple_layer(kind), ln_shape_make(1, d), batch, rng);
    const int64_t n = per_sample * batch;
    float *x = o.x; /* drawn again below, with special values first */
    static const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-30f, -1e-30f,
                                     0.625f, -0.625f, 0.6249999f, 9.0f, -9.0f, 87.5f, -87.5f, -100.0f};
    const int64_t ns = (int64_t)(sizeof specials / sizeof specials[0]);
    for (int64_t i = 0; i < n; i++)
        x[i] = i < ns ? specials[i] : (2.0f * ln_rng_uniform(rng) - 1.0f) * (i % 3 ? 4.0f : 20.0f);
    pass_out fast, ref;
    run_pass(&o, batch, 0, 1, &fast);
    run_pass(&o, batch, 1, 1, &ref);
    char desc[200], detail[300] = "";
    snprintf(desc, sizeof desc, "%s %s over %lld floats: forward within 4 ulp, backward bit for bit",
             isa, ln_layer_kind_name(kind), (long long)n);
    int ok = 1;
    for (int64_t i = 0; ok && i < n; i++) {
        const float g = fast.y[i], w = ref.y[i];
        const int same_nan = (g != g) == (w != w);
        /* below 1e-37 the kernel may flush to 0 where the library returns a denormal */
        const int tiny = fabsf(w) < 1e-37f && fabsf(g) < 1e-37f;
        if (!same_nan || (w == w && !tiny && (ulp_distance(g, w) > 4 || signbit(g) != signbit(w)))) {
            snprintf(detail, sizeof detail, "x = %.9g: got %.9g, want %.9g", x[i], g, w);
            ok = 0;
        }
    }
    /* the same saved output for both, so backward can be compared bit for bit */
    pass_out fb;
    memcpy(fast.y, ref.y, sizeof(float) * (size_t)n);
    ln_ctx ctx = {batch, 1, 0, NULL, NULL, NULL};
    fb.dx = falloc(n);
    ln_layer_backward(&o.l, x, ref.y, o.dy, fb.dx, &ctx);
    if (ok) ok = same_bits(fb.dx, ref.dx, sizeof(float) * (size_t)n, detail, sizeof detail);
    tap_result(&T, ok, desc, detail);
    free(fb.dx);
    free_pass(&fast);
    free_pass(&ref);
    free_layer(&o);
}

/* ---------------------------------------------------------- optimizers */

/* The vectorised SGD-momentum and Adam steps against the scalar loops, bit for bit
 * (the same operations in the same order: no FMA, IEEE sqrt and division). */
/* Dropout's products (masks of elements, span 1, or of channels) against the plain
 * loops, bit for bit, out of place and in place. */
static void test_scale_runs(const ln_simd_kernels *K, ln_rng *rng, const char *isa)
{
    static const int64_t spans[] = {1, 3, 8, 13, 64, 196};
    for (size_t c = 0; c < sizeof spans / sizeof spans[0]; c++) {
        const int64_t span = spans[c], entries = span == 1 ? 37 : 9, n = entries * span;
        float *in = falloc(n), *mask = falloc(entries), *out = falloc(n), *want = falloc(n);
        fill(in, n, rng);
        for (int64_t e = 0; e < entries; e++) mask[e] = e % 3 == 0 ? 0.0f : 2.0f;
        in[0] = NAN;
        in[n - 1] = INFINITY;
        for (int64_t i = 0; i < n; i++) want[i] = in[i] * mask[i / span];
        K->scale_runs(entries, span, in, mask, out);
        char desc[160], detail[300] = "";
        snprintf(desc, sizeof desc, "%s dropout products, span %lld (bit for bit)", isa, (long long)span);
        int ok = same_bits(out, want, sizeof(float) * (size_t)n, detail, sizeof detail);
        K->scale_runs(entries, span, in, mask, in); /* in place */
        if (ok) ok = same_bits(in, want, sizeof(float) * (size_t)n, detail, sizeof detail);
        tap_result(&T, ok, desc, detail);
        free(in);
        free(mask);
        free(out);
        free(want);
    }
}

/* dropout_mask (8 interleaved PCG32 lanes) against the scalar draws, bit for bit, and
 * the stream left where the scalar loop leaves it: lengths around the 8-lane steps, p
 * from tiny to nearly 1, and p equal to one of the draws (u == p is kept, not dropped). */
static void test_dropout_mask(const ln_simd_kernels *K, ln_rng *rng, const char *isa)
{
    static const int64_t lengths[] = {0, 1, 7, 8, 9, 15, 16, 17, 63, 70, 1280};
    const float scale = 2.0f;
    for (size_t c = 0; c < sizeof lengths / sizeof lengths[0]; c++) {
        const int64_t n = lengths[c];
        ln_rng start;
        ln_rng_seed(&start, ln_rng_u32(rng), ln_rng_u32(rng) % 5);
        ln_rng peek = start;
        for (int k = 0; k < 5; k++) ln_rng_uniform(&peek);
        const float ps[] = {0.5f, 0.1f, 0.9f, 0x1p-24f, 0.99999994f, ln_rng_uniform(&peek)};
        for (size_t q = 0; q < sizeof ps / sizeof ps[0]; q++) {
            const float p = ps[q];
            float *got = falloc(n + 1), *want = falloc(n + 1);
            ln_rng a = start, b = start;
            for (int64_t i = 0; i < n; i++) want[i] = ln_rng_uniform(&a) < p ? 0.0f : scale;
            K->dropout_mask(&b, n, p, scale, got);
            char desc[160], detail[300] = "";
            snprintf(desc, sizeof desc, "%s dropout draws, %lld entries, p %.9g (bit for bit, stream after)", isa,
                     (long long)n, (double)p);
            int ok = same_bits(got, want, sizeof(float) * (size_t)n, detail, sizeof detail);
            if (ok && (a.state != b.state || a.inc != b.inc)) {
                ok = 0;
                snprintf(detail, sizeof detail, "stream state %016llx, want %016llx", (unsigned long long)b.state,
                         (unsigned long long)a.state);
            }
            tap_result(&T, ok, desc, detail);
            free(got);
            free(want);
        }
    }
}

/* reduce_lanes (the lane partials' sums, 16 at a time where the ISA has a batched
 * reduction) bit for bit the same as one partial at a time (V_HSUM's association), on
 * values whose sums depend on the association: magnitudes from 1e-8 to 1e8, -0, inf. */
static void test_reduce_lanes(const ln_simd_kernels *K, ln_rng *rng, const char *isa)
{
    const int64_t n = 53; /* three batches of 16 and a tail */
    const int lanes = K->lanes;
    float *part = falloc(n * lanes), *out[2];
    for (int64_t i = 0; i < n * lanes; i++) {
        const float e = powf(10.0f, (float)ln_rng_below(rng, 17) - 8.0f);
        part[i] = (2.0f * ln_rng_uniform(rng) - 1.0f) * e;
    }
    part[5] = -0.0f;
    part[3 * lanes + 1] = INFINITY;
    for (int r = 0; r < 2; r++) {
        out[r] = falloc(n);
        for (int64_t i = 0; i < n; i++) out[r][i] = i % 4 ? 0.25f * (float)i : -0.0f;
    }
    K->reduce_lanes(n, part, out[0]);
    for (int64_t i = 0; i < n; i++) K->reduce_lanes(1, part + i * lanes, out[1] + i);
    char desc[200], detail[300] = "";
    snprintf(desc, sizeof desc, "%s reduce_lanes of %lld partials: batched = one at a time (bit for bit)", isa,
             (long long)n);
    tap_result(&T, same_bits(out[0], out[1], sizeof(float) * (size_t)n, detail, sizeof detail), desc, detail);
    free(part);
    free(out[0]);
    free(out[1]);
}

/* transpose_add (conv2d's transposed weight-gradient sums into the layer's gradient, in
 * blocks of 8 x 8 where the ISA has them) bit for bit the element-by-element sum, on
 * shapes with and without whole blocks (the study's conv2: 250 x 20 from ocp 32), with
 * strides wider than the block and -0 in both operands. */
static void test_transpose_add(const ln_simd_kernels *K, ln_rng *rng, const char *isa)
{
    static const int shapes[][3] = {{250, 20, 32}, {25, 10, 16}, {8, 8, 8}, {7, 3, 8}, {144, 32, 32}, {17, 9, 24}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        const int64_t rows = shapes[c][0], sstride = shapes[c][2];
        const int cols = shapes[c][1];
        const int64_t dstride = rows + 3; /* wider than a row: the gaps must stay as they are */
        float *src = falloc(rows * sstride), *got = falloc(cols * dstride), *want = falloc(cols * dstride);
        for (int64_t i = 0; i < rows * sstride; i++) src[i] = 2.0f * ln_rng_uniform(rng) - 1.0f;
        for (int64_t i = 0; i < cols * dstride; i++) got[i] = want[i] = i % 5 ? ln_rng_uniform(rng) : -0.0f;
        src[1] = -0.0f;
        K->transpose_add(rows, cols, src, sstride, got, dstride);
        for (int o = 0; o < cols; o++)
            for (int64_t k = 0; k < rows; k++) want[o * dstride + k] += src[k * sstride + o];
        char desc[200], detail[300] = "";
        snprintf(desc, sizeof desc, "%s transpose_add %lld x %d (source stride %lld) = element by element (bit for bit)",
                 isa, (long long)rows, cols, (long long)sstride);
        tap_result(&T, same_bits(got, want, sizeof(float) * (size_t)(cols * dstride), detail, sizeof detail), desc,
                   detail);
        free(src);
        free(got);
        free(want);
    }
}

/* A conv2d layer for one sample of c x hw x hw from cs = {c, hw, out channels, kernel,
 * stride, padding}, and its geometry */
static void square_conv(const int cs[6], owned_layer *o, ln_conv_geom *g, ln_rng *rng)
{
    int64_t d[3] = {cs[0], cs[1], cs[1]};
    make_layer(o, ln_conv2d(cs[0], cs[2], cs[3], cs[4], cs[5]), ln_shape_make(3, d), 1, rng);
    ln_conv_geom_of(&o->l.spec, &o->l.in, &o->l.out, g);
}

/* conv_rows_transpose (a small batch's unfolded rows, position-major, for the weight
 * gradient along the rows) bit for bit the element-by-element copy from each row's
 * place: row (c, ki, kj) at (c*k + kj)*rs1 + ki*rs2 in both layouts (conv_geom.h). The
 * study's conv2 (shifted layout, 250 rows), a padded layer (9 rows, fewer than a block),
 * a strided one (im2col, 27 rows, 3 over the blocks of 8). */
static void test_rows_transpose(const ln_simd_kernels *K, ln_rng *rng, const char *isa)
{
    static const int cases[][6] = {{10, 12, 20, 5, 1, 0}, {1, 28, 16, 3, 1, 1}, {3, 32, 12, 3, 2, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        owned_layer o;
        ln_conv_geom g;
        square_conv(cases[i], &o, &g, rng);
        float *rows = falloc(g.unf_n + 64), *got = falloc(g.p * g.ck), *want = falloc(g.p * g.ck);
        for (int64_t j = 0; j < g.unf_n + 64; j++) rows[j] = 2.0f * ln_rng_uniform(rng) - 1.0f;
        K->conv_rows_transpose(&g, rows, got);
        const int k = g.k;
        for (int ci = 0; ci < g.c; ci++)
            for (int ki = 0; ki < k; ki++)
                for (int kj = 0; kj < k; kj++) {
                    const int64_t row = ((int64_t)ci * k + ki) * k + kj;
                    const int64_t off = ((int64_t)ci * k + kj) * g.rs1 + ki * g.rs2;
                    for (int64_t p = 0; p < g.p; p++) want[p * g.ck + row] = rows[off + p];
                }
        char desc[200], detail[300] = "";
        snprintf(desc, sizeof desc, "%s conv_rows_transpose of %lld rows x %lld positions (%s layout) = element by element",
                 isa, (long long)g.ck, (long long)g.p, g.shifted ? "shifted" : "im2col");
        tap_result(&T, same_bits(got, want, sizeof(float) * (size_t)(g.p * g.ck), detail, sizeof detail), desc, detail);
        free(rows);
        free(got);
        free(want);
        free_layer(&o);
    }
}

/* conv_dx over a list of channels bit for bit conv_dx over all of them when the others'
 * dy planes are all +-0 (simd.h; conv2d.c leaves such planes out): the study's conv2,
 * a 3x3 padded layer with a vector tail (its 4 + 1 tile), Fashion's 5x5 padded one, an
 * im2col one; every other channel zeroed, -0 and +0 mixed, and -0 in the kept planes. */
static void test_dx_channels(const ln_simd_kernels *K, ln_rng *rng, const char *isa)
{
    static const int cases[][6] = {{10, 12, 20, 5, 1, 0}, {16, 14, 32, 3, 1, 1}, {8, 14, 12, 5, 1, 2}, {3, 11, 6, 3, 2, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int hw = cases[i][1];
        owned_layer o;
        ln_conv_geom g;
        square_conv(cases[i], &o, &g, rng);
        const int64_t pp = (g.p + K->lanes - 1) / K->lanes * K->lanes;
        float *dy = falloc(g.oc * pp), *all = falloc(g.unf_n + 64), *some = falloc(g.unf_n + 64);
        int *chans = calloc((size_t)g.oc, sizeof(int)), *every = calloc((size_t)g.oc, sizeof(int));
        int nch = 0;
        for (int oc = 0; oc < g.oc; oc++) {
            every[oc] = oc;
            const int zero = oc % 2 == 1 || oc == 2;
            if (!zero) chans[nch++] = oc;
            for (int64_t p = 0; p < pp; p++)
                dy[oc * pp + p] = p >= g.p ? 0.0f : zero ? (p % 3 ? 0.0f : -0.0f) : p % 7 == 0 ? -0.0f
                                                                                      : 2.0f * ln_rng_uniform(rng) - 1.0f;
        }
        memset(all, 0, sizeof(float) * (size_t)(g.unf_n + 64));
        memset(some, 0, sizeof(float) * (size_t)(g.unf_n + 64));
        K->conv_dx(&g, o.l.weight, dy, pp, every, g.oc, all);
        K->conv_dx(&g, o.l.weight, dy, pp, chans, nch, some);
        char desc[200], detail[300] = "";
        snprintf(desc, sizeof desc, "%s conv_dx over %d of %d channels (%dx%d, k%d stride %d pad %d) = over all, the others' dy +-0",
                 isa, nch, g.oc, hw, hw, g.k, g.stride, g.pad);
        tap_result(&T, same_bits(all, some, sizeof(float) * (size_t)g.unf_n, detail, sizeof detail), desc, detail);
        free(dy);
        free(all);
        free(some);
        free(chans);
        free(every);
        free_layer(&o);
    }
}

/* A fused 2x2 max pooling's gradient for one sample (oc rows `stride` floats apart):
 * +0 and -0 everywhere, then in each window one random place gets +0, -0 or a value in
 * [-1, 1) (a ReLU's mask, or a gradient) */
static void pooled_gradient(const ln_conv_geom *g, ln_rng *rng, int64_t stride, float *dy)
{
    for (int64_t j = 0; j < g->oc * stride; j++) dy[j] = ln_rng_u32(rng) % 2 ? -0.0f : 0.0f;
    for (int oc = 0; oc < g->oc; oc++)
        for (int qy = 0; qy < g->oh / 2; qy++)
            for (int qx = 0; qx < g->ow / 2; qx++) {
                const int64_t p =
                    (int64_t)(2 * qy + (int)(ln_rng_u32(rng) % 2)) * g->ow + 2 * qx + (int)(ln_rng_u32(rng) % 2);
                const uint32_t kind = ln_rng_u32(rng) % 4;
                dy[oc * stride + p] = kind == 0 ? 0.0f : kind == 1 ? -0.0f : 2.0f * ln_rng_uniform(rng) - 1.0f;
            }
}

/* conv_dx_listed bit for bit conv_dx over every channel when dy is +-0 but at the
 * listed places (simd.h; conv2d.c lists a fused 2x2 max pooling's maxima): each
 * channel's 2x2 windows send a value to one random place, some of them +-0 (a ReLU's
 * mask: not listed), and the rest of dy is +0 and -0 mixed. The shapes: the CIFAR net's
 * conv2 shrunk (shifted layout, a vector tail on AVX-512), Fashion's 5x5 padded one with
 * 200 rows (a second block of rows, itself with a tail), an im2col one, the study's conv2
 * and an odd output (7x7: the last row and column in no window). */
static void test_dx_listed(const ln_simd_kernels *K, ln_rng *rng, const char *isa)
{
    static const int cases[][6] = {
        {16, 16, 48, 3, 1, 1}, {8, 14, 40, 5, 1, 2}, {3, 11, 36, 3, 2, 1}, {10, 12, 20, 5, 1, 0}, {4, 11, 33, 5, 1, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int hw = cases[i][1];
        owned_layer o;
        ln_conv_geom g;
        square_conv(cases[i], &o, &g, rng);
        const int64_t P = g.p, pp = (P + K->lanes - 1) / K->lanes * K->lanes;
        float *dy = falloc(g.oc * pp), *all = falloc(g.unf_n + 64), *listed = falloc(g.unf_n + 64);
        float *scratch = falloc(ln_conv_dx_listed_scratch(&g)), *val = falloc(g.oc * P);
        int *start = calloc((size_t)P + 1, sizeof(int)), *chan = calloc((size_t)(g.oc * P), sizeof(int));
        pooled_gradient(&g, rng, pp, dy);
        int n = 0; /* the lists: position by position, channels in order */
        for (int64_t p = 0; p < P; p++) {
            start[p] = n;
            for (int oc = 0; oc < g.oc; oc++)
                if (dy[oc * pp + p] != 0.0f) {
                    chan[n] = oc;
                    val[n++] = dy[oc * pp + p];
                }
        }
        start[P] = n;
        memset(all, 0, sizeof(float) * (size_t)(g.unf_n + 64));
        memset(listed, 0, sizeof(float) * (size_t)(g.unf_n + 64));
        K->conv_dx(&g, o.l.weight, dy, pp, NULL, g.oc, all);
        K->conv_dx_listed(&g, o.l.weight, start, chan, val, scratch, listed);
        char desc[200], detail[300] = "";
        snprintf(desc, sizeof desc,
                 "%s conv_dx_listed, %d terms (%dx%d, %d to %d channels, k%d stride %d pad %d) = conv_dx over every channel",
                 isa, n, hw, hw, g.c, g.oc, g.k, g.stride, g.pad);
        tap_result(&T, same_bits(all, listed, sizeof(float) * (size_t)g.unf_n, detail, sizeof detail), desc, detail);
        free(dy);
        free(all);
        free(listed);
        free(scratch);
        free(val);
        free(start);
        free(chan);
        free_layer(&o);
    }
}

/* conv_dw_listed, sample after sample, bit for bit conv_dw (the transposed kernel) over
 * a chunk of 3 samples when dy is +-0 but at the listed places: dy as in
 * test_dx_listed (pooled_gradient); the second sample lists every place, the +-0 ones too (conv2d.c does
 * that for a sample whose input is not finite); lists channel by channel, positions in
 * order; biases included. */
static void test_dw_listed(const ln_simd_kernels *K, ln_rng *rng, const char *isa)
{
    static const int cases[][6] = {{16, 16, 48, 3, 1, 1}, {8, 14, 40, 5, 1, 2}, {3, 11, 36, 3, 2, 1}, {4, 11, 33, 5, 1, 0}};
    enum { NS = 3 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int hw = cases[i][1];
        owned_layer o;
        ln_conv_geom g;
        square_conv(cases[i], &o, &g, rng);
        const int64_t P = g.p, ck = g.ck, unf = ln_whole_lines(g.unf_n + LN_SIMD_SLACK);
        float *x = falloc(o.l.in_n), *rows = falloc(NS * unf), *dy = falloc(NS * g.oc * P);
        float *dyt = falloc(NS * P * g.ocp), *dense = falloc(ck * g.ocp), *bdense = falloc(g.ocp);
        float *listed = falloc(g.oc * ck + g.oc), *rowst = falloc(P * ck), *val = falloc(g.oc * P);
        int *start = calloc((size_t)g.oc + 1, sizeof(int)), *pos = calloc((size_t)(g.oc * P), sizeof(int));
        for (int s = 0; s < NS; s++) {
            for (int64_t j = 0; j < o.l.in_n; j++) x[j] = 2.0f * ln_rng_uniform(rng) - 1.0f;
            K->conv_unfold(&g, x, rows + s * unf);
            float *d = dy + s * g.oc * P;
            pooled_gradient(&g, rng, P, d);
            K->conv_dy_transpose(&g, d, dyt + s * P * g.ocp);
        }
        K->conv_dw(&g, 0, g.oc, 0, ck, NS, dyt, rows, unf, dense, bdense, 1);
        memset(listed, 0, sizeof(float) * (size_t)(g.oc * ck + g.oc));
        for (int s = 0; s < NS; s++) {
            const float *d = dy + s * g.oc * P;
            int n = 0; /* channel by channel, positions in order */
            for (int oc = 0; oc < g.oc; oc++) {
                start[oc] = n;
                for (int64_t p = 0; p < P; p++)
                    if (s == 1 || d[oc * P + p] != 0.0f) {
                        pos[n] = (int)p;
                        val[n++] = d[oc * P + p];
                    }
            }
            start[g.oc] = n;
            K->conv_rows_transpose(&g, rows + s * unf, rowst);
            K->conv_dw_listed(&g, rowst, start, pos, val, listed, listed + g.oc * ck);
        }
        int same = 1;
        char desc[200], detail[300] = "";
        for (int oc = 0; oc < g.oc && same; oc++) {
            for (int64_t k = 0; k < ck && same; k++)
                if (memcmp(&listed[oc * ck + k], &dense[k * g.ocp + oc], sizeof(float))) {
                    same = 0;
                    snprintf(detail, sizeof detail, "weight (%d, %lld): %a against %a", oc, (long long)k,
                             (double)listed[oc * ck + k], (double)dense[k * g.ocp + oc]);
                }
            if (same && memcmp(&listed[g.oc * ck + oc], &bdense[oc], sizeof(float))) {
                same = 0;
                snprintf(detail, sizeof detail, "bias %d: %a against %a", oc, (double)listed[g.oc * ck + oc],
                         (double)bdense[oc]);
            }
        }
        snprintf(desc, sizeof desc,
                 "%s conv_dw_listed over 3 samples (%dx%d, %d to %d channels, k%d stride %d pad %d) = conv_dw",
                 isa, hw, hw, g.c, g.oc, g.k, g.stride, g.pad);
        tap_result(&T, same, desc, detail);
        free(x);
        free(rows);
        free(dy);
        free(dyt);
        free(dense);
        free(bdense);
        free(listed);
        free(rowst);
        free(val);
        free(start);
        free(pos);
        free_layer(&o);
    }
}

/* pool_places' lists bit for bit those read off the plane that maxpool2_bwd and then
 * scale_runs spread the pooling's gradient into: every place whose value is not +-0 (NaN
 * included), channel by channel, in increasing position. Gradients +-0, NaN, infinite
 * or ordinary; ReLU outputs +-0, NaN or ordinary; a dropped channel (scale 0). Shapes:
 * the CIFAR and Fashion nets' conv2 outputs, an odd one (the last row and column in no
 * window), a pooled row of 20 windows (two vectors on AVX-512) and the smallest. */
static void test_pool_places(const ln_simd_kernels *K, ln_rng *rng, const char *isa)
{
    static const int cases[][3] = {{64, 16, 16}, {64, 14, 14}, {5, 7, 7}, {3, 4, 40}, {2, 2, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int variant = 0; variant < 4; variant++) { /* bit 0: a fused ReLU; bit 1: dropout2d */
            const int oc = cases[i][0], oh = cases[i][1], ow = cases[i][2], ph = oh / 2, pw = ow / 2;
            const int64_t P = (int64_t)oh * ow, pn = (int64_t)oc * ph * pw;
            float *g = falloc(pn), *ry = falloc(pn), *scale = falloc(oc), *plane = falloc(oc * P);
            float *val = falloc(oc * P + 16), *want_val = falloc(oc * P);
            int32_t *am = calloc((size_t)pn, sizeof(int32_t));
            int *start = calloc((size_t)oc + 1, sizeof(int)), *want_start = calloc((size_t)oc + 1, sizeof(int));
            int *pos = calloc((size_t)(oc * P + 16), sizeof(int)), *want_pos = calloc((size_t)(oc * P), sizeof(int));
            for (int o = 0; o < oc; o++) {
                scale[o] = ln_rng_u32(rng) % 4 ? 1.25f : 0.0f;
                for (int qy = 0; qy < ph; qy++)
                    for (int qx = 0; qx < pw; qx++) {
                        const int64_t q = ((int64_t)o * ph + qy) * pw + qx;
                        am[q] = (2 * qy + (int)(ln_rng_u32(rng) % 2)) * ow + 2 * qx + (int)(ln_rng_u32(rng) % 2);
                        const uint32_t kind = ln_rng_u32(rng) % 16;
                        g[q] = kind == 0 ? 0.0f : kind == 1 ? -0.0f : kind == 2 ? NAN : kind == 3 ? -INFINITY
                                                                                 : 2.0f * ln_rng_uniform(rng) - 1.0f;
                        const uint32_t rk = ln_rng_u32(rng) % 8;
                        ry[q] = rk == 0 ? 0.0f : rk == 1 ? -0.0f : rk == 2 ? NAN : 2.0f * ln_rng_uniform(rng) - 1.0f;
                    }
            }
            const float *relu_y = variant & 1 ? ry : NULL, *sc = variant & 2 ? scale : NULL;
            K->maxpool2_bwd(oc, oh, ow, g, am, relu_y, 0, NULL, plane);
            if (sc) K->scale_runs(oc, P, plane, sc, plane);
            int n = 0;
            for (int o = 0; o < oc; o++) {
                want_start[o] = n;
                for (int64_t p = 0; p < P; p++)
                    if (plane[o * P + p] != 0.0f) {
                        want_pos[n] = (int)p;
                        want_val[n++] = plane[o * P + p];
                    }
            }
            want_start[oc] = n;
            const int got = K->pool_places(oc, oh, ow, am, g, relu_y, sc, start, pos, val);
            int same = got == n && !memcmp(start, want_start, sizeof(int) * (size_t)(oc + 1)) &&
                       !memcmp(pos, want_pos, sizeof(int) * (size_t)n) && !memcmp(val, want_val, sizeof(float) * (size_t)n);
            char desc[200], detail[200] = "";
            if (!same) snprintf(detail, sizeof detail, "%d places listed, %d on the spread plane", got, n);
            snprintf(desc, sizeof desc, "%s pool_places (%d planes of %dx%d%s%s) = the places of maxpool2_bwd's plane", isa,
                     oc, oh, ow, relu_y ? ", ReLU" : "", sc ? ", dropout2d" : "");
            tap_result(&T, same, desc, detail);
            free(g);
            free(ry);
            free(scale);
            free(plane);
            free(val);
            free(want_val);
            free(am);
            free(start);
            free(want_start);
            free(pos);
            free(want_pos);
        }
}

/* conv_dw_lanes_some (positions filling 4 vectors) bit for bit conv_dw_lanes when each
 * sample's left-out channels have all +-0 dy planes: the study's conv2 shape (8x8
 * outputs on AVX-512), a chunk of 3 samples with different channel lists (one with every
 * channel, one with none), over two chunks (the second adding to the first's partials),
 * biases included; 8x8 outputs on AVX-512, 4x8 on AVX2, 4x4 on the generic ISA. */
static void test_dw_some(const ln_simd_kernels *K, ln_rng *rng, const char *isa)
{
    const int oh = K->lanes == 4 ? 4 : K->lanes / 2, ow = 4 * K->lanes / oh; /* 4 vectors of outputs */
    owned_layer o;
    int64_t d[3] = {10, oh + 4, ow + 4};
    make_layer(&o, ln_conv2d(10, 20, 5, 1, 0), ln_shape_make(3, d), 1, rng);
    ln_conv_geom g;
    ln_conv_geom_of(&o.l.spec, &o.l.in, &o.l.out, &g);
    const int ns = 3;
    const int64_t unf = g.unf_n + 64, pn = (int64_t)g.oc * g.p;
    float *rows = falloc(ns * unf), *dy = falloc(ns * pn);
    const int64_t parts = (g.oc * g.ck + g.oc) * K->lanes;
    float *want = falloc(parts), *got = falloc(parts);
    int *chans = calloc((size_t)(ns * g.oc), sizeof(int)), nch[3] = {0, 0, 0};
    int ok = 1;
    char detail[300] = "";
    for (int chunk = 0; chunk < 2 && ok; chunk++) {
        for (int64_t j = 0; j < ns * unf; j++) rows[j] = 2.0f * ln_rng_uniform(rng) - 1.0f;
        for (int s = 0; s < ns; s++) {
            nch[s] = 0;
            for (int oc = 0; oc < g.oc; oc++) {
                const int keep = s == 0 || (s == 1 && (oc * 7 + chunk) % 3 == 0);
                if (keep) chans[s * g.oc + nch[s]++] = oc;
                for (int64_t p = 0; p < g.p; p++)
                    dy[s * pn + oc * g.p + p] = keep ? 2.0f * ln_rng_uniform(rng) - 1.0f : (p % 2 ? 0.0f : -0.0f);
            }
        }
        K->conv_dw_lanes(&g, 0, g.oc, 0, g.ck, ns, dy, pn, rows, unf, want, want + g.oc * g.ck * K->lanes, chunk == 0);
        K->conv_dw_lanes_some(&g, ns, dy, pn, rows, unf, got, got + g.oc * g.ck * K->lanes, chunk == 0, chans, nch);
        ok = same_bits(want, got, sizeof(float) * (size_t)parts, detail, sizeof detail);
    }
    char desc[200];
    snprintf(desc, sizeof desc, "%s conv_dw_lanes_some over each sample's channels = conv_dw_lanes, the others' dy +-0 "
             "(%dx%d outputs, 2 chunks of 3 samples)", isa, g.oh, g.ow);
    tap_result(&T, ok, desc, detail);
    free(rows);
    free(dy);
    free(want);
    free(got);
    free(chans);
    free_layer(&o);
}

/* A convolution whose weight gradient may leave out all-zero dy planes (8x8 outputs:
 * conv_dw_lanes_some on AVX-512) with an infinite input pixel: 0 * inf is NaN, so the
 * zero planes' channels must get NaN where the reference puts it. */
static void test_dw_inf_input(ln_rng *rng, const char *isa)
{
    owned_layer o;
    int64_t d[3] = {10, 12, 12};
    const int batch = 3;
    make_layer(&o, ln_conv2d(10, 20, 5, 1, 0), ln_shape_make(3, d), batch, rng);
    o.x[1 * o.l.in_n + 3 * 144 + 40] = INFINITY; /* sample 1, channel 3 */
    for (int s = 0; s < batch; s++)
        for (int oc = 1; oc < 20; oc += 2)
            for (int p = 0; p < 64; p++) o.dy[s * o.l.out_n + oc * 64 + p] = 0.0f;
    pass_out fast, ref;
    run_pass(&o, batch, 0, 1, &fast);
    run_pass(&o, batch, 1, 1, &ref);
    int ok = 1, nans = 0;
    char detail[200] = "";
    for (int64_t i = 0; i < o.l.weight_n && ok; i++) {
        nans += isnan(ref.dw[i]) != 0;
        if ((isnan(fast.dw[i]) != 0) != (isnan(ref.dw[i]) != 0)) {
            ok = 0;
            snprintf(detail, sizeof detail, "weight gradient %lld: %g, the reference %g", (long long)i,
                     (double)fast.dw[i], (double)ref.dw[i]);
        }
    }
    if (ok && nans == 0) {
        ok = 0;
        snprintf(detail, sizeof detail, "no NaN in the reference's weight gradient: the case tests nothing");
    }
    char desc[200];
    snprintf(desc, sizeof desc, "%s conv2d weight gradient with an infinite input and zero dy planes: NaN where the "
             "reference has it (%d)", isa, nans);
    tap_result(&T, ok, desc, detail);
    free_pass(&fast);
    free_pass(&ref);
    free_layer(&o);
}

/* Every part of a conv2d layer's workspace starts on a cache line when the workspace
 * does (a second thread's unfolded rows 16 bytes off split every vector access over two
 * lines: its share of the study's conv2 backward took 15% longer), and the unfolded
 * samples of a chunk are whole lines apart. */
static void test_workspace_lines(void)
{
    const size_t cases = sizeof conv_cases / sizeof conv_cases[0];
    int ok = 1;
    char detail[300] = "";
    for (size_t i = 0; i < cases && ok; i++) {
        const conv_case *cc = &conv_cases[i];
        ln_layer_spec spec = ln_conv2d(cc->c, cc->oc, cc->k, cc->s, cc->pad);
        int64_t dims[3] = {cc->c, cc->h, cc->w};
        ln_layer l;
        memset(&l, 0, sizeof l);
        l.spec = spec;
        l.in = ln_shape_make(3, dims);
        ln_error err;
        if (ln_layer_setup(&l, 1, &err) != LN_OK) {
            ok = 0;
            snprintf(detail, sizeof detail, "case %zu: %.200s", i, err.msg);
            break;
        }
        ln_conv_geom g;
        ln_conv_geom_of(&l.spec, &l.in, &l.out, &g);
        const ln_conv_ws ws = ln_conv_ws_of(&g, (float *)(uintptr_t)4096);
        const float *parts[] = {ws.rows,    ws.drows,
                                ws.dypad,   ws.dyt,
                                ws.dym,     ws.sums,
                                ws.rowst ? ws.rowst : ws.rows,
                                ws.dxl,     (const float *)(const void *)ws.dxl_start,
                                (const float *)(const void *)ws.dxl_chan, ws.dxl_val,
                                (const float *)(const void *)ws.dwl_start, (const float *)(const void *)ws.dwl_pos,
                                ws.dwl_val};
        const char *names[] = {"rows", "drows", "dypad", "dyt", "dym", "sums", "rowst",
                               "dxl", "dxl_start", "dxl_chan", "dxl_val", "dwl_start", "dwl_pos", "dwl_val"};
        for (int q = 0; q < (int)(sizeof parts / sizeof parts[0]) && ok; q++)
            if ((uintptr_t)parts[q] % 64) {
                ok = 0;
                snprintf(detail, sizeof detail, "conv case %zu: %s at byte %lu of the workspace", i, names[q],
                         (unsigned long)((uintptr_t)parts[q] - 4096));
            }
        if (ok && ws.unf % 16) {
            ok = 0;
            snprintf(detail, sizeof detail, "conv case %zu: unfolded samples %lld floats apart", i, (long long)ws.unf);
        }
    }
    tap_result(&T, ok, "conv2d workspace parts start on cache lines", detail);
}

static void test_optim_kernels(const ln_simd_kernels *K, ln_rng *rng, const char *isa)
{
    const int64_t n = 1003; /* a vector tail on every ISA */
    float *p = falloc(n), *g = falloc(n), *m = falloc(n), *v = falloc(n);
    float *p2 = falloc(n), *m2 = falloc(n), *v2 = falloc(n);
    char desc[200], detail[300] = "";
    fill(p, n, rng);
    fill(g, n, rng);
    fill(m, n, rng);
    memcpy(p2, p, sizeof(float) * (size_t)n);
    memcpy(m2, m, sizeof(float) * (size_t)n);
    K->sgd_momentum(n, p, g, m, 0.9f, 0.75f, -0.01f);
    for (int64_t i = 0; i < n; i++) {
        const float decayed = m2[i] * 0.9f;
        m2[i] = decayed + 0.75f * g[i];
        p2[i] = p2[i] + -0.01f * m2[i];
    }
    int ok = same_bits(p, p2, sizeof(float) * (size_t)n, detail, sizeof detail) &&
             same_bits(m, m2, sizeof(float) * (size_t)n, detail, sizeof detail);
    snprintf(desc, sizeof desc, "%s sgd momentum step = scalar loop, bit for bit", isa);
    tap_result(&T, ok, desc, detail);
    static const char *const decay_names[] = {"adam", "adam with weight decay", "adamw"};
    for (int decay = LN_DECAY_NONE; decay <= LN_DECAY_DECOUPLED; decay++) {
        ln_adam_consts k = {0.9f, 0.1f, 0.999f, 0.001f, 1e-8f, 0.01f, 0.99999f, -0.0013f, 0.0447f, decay};
        fill(p, n, rng);
        fill(m, n, rng);
        for (int64_t i = 0; i < n; i++) v[i] = ln_rng_uniform(rng) * 0.01f;
        memcpy(p2, p, sizeof(float) * (size_t)n);
        memcpy(m2, m, sizeof(float) * (size_t)n);
        memcpy(v2, v, sizeof(float) * (size_t)n);
        K->adam(n, p, g, m, v, &k);
        ln_adam_reference(n, p2, g, m2, v2, &k);
        ok = same_bits(p, p2, sizeof(float) * (size_t)n, detail, sizeof detail) &&
             same_bits(m, m2, sizeof(float) * (size_t)n, detail, sizeof detail) &&
             same_bits(v, v2, sizeof(float) * (size_t)n, detail, sizeof detail);
        snprintf(desc, sizeof desc, "%s %s step = reference, bit for bit", isa, decay_names[decay]);
        tap_result(&T, ok, desc, detail);
    }
    free(p);
    free(g);
    free(m);
    free(v);
    free(p2);
    free(m2);
    free(v2);
}

/* --------------------------------------------------------------- nets */

/* The study's net (input 1x28x28): writes its 13 layers to s, returns the count. */
static int study_layers(ln_layer_spec *s)
{
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
    return i;
}

static ln_net *make_net(const ln_layer_spec *s, int count, int c, int h, int w, uint64_t seed)
{
    ln_rng rng;
    ln_rng_seed(&rng, seed, LN_STREAM_INIT);
    int64_t d[3] = {c, h, w};
    return fixture_net(s, count, ln_shape_make(3, d), &rng);
}

static ln_net *study_net(uint64_t seed)
{
    ln_layer_spec s[13];
    return make_net(s, study_layers(s), 1, 28, 28, seed);
}

/* n images of c x h x w values in [-0.5, 1.5) with labels 0..9, drawn in that order. */
static ln_dataset *random_data(int n, int c, int h, int w, ln_rng *rng)
{
    const int64_t count = (int64_t)n * c * h * w;
    float *img = falloc(count);
    int32_t *lab = calloc((size_t)n, sizeof(int32_t));
    for (int64_t i = 0; i < count; i++) img[i] = 2.0f * ln_rng_uniform(rng) - 0.5f;
    for (int i = 0; i < n; i++) lab[i] = (int32_t)ln_rng_below(rng, 10);
    ln_dataset *ds = fixture_dataset(img, lab, n, c, h, w);
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
    tap_result(&T, ok, desc, detail);
    ok = !ln_net_backward(a, dout, dxa, &err) && !ln_net_backward(b, dout, dxb, &err);
    if (ok)
        ok = close_all(ln_net_grads(a), ln_net_grads(b), ln_net_param_count(a), detail, sizeof detail);
    if (ok) ok = close_all(dxa, dxb, 784 * batch, detail, sizeof detail);
    snprintf(desc, sizeof desc, "%s study net batch %d: gradients, fast = reference kernels", isa, batch);
    tap_result(&T, ok, desc, detail);
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
    if (ln_train(net, ds, &cfg, &h, &err)) fixture_fail("training", err.msg);
    for (int e = 0; e < epochs; e++) loss[e] = h.loss[e];
    ln_history_release(&h);
    ln_net_free(net);
}

static void test_determinism(const char *isa, ln_rng *rng)
{
    ln_dataset *ds = random_data(150, 1, 28, 28, rng);
    double l1[2], l2[2];
    char desc[200], detail[300] = "";
    train_losses(ds, 16, l1, 2);
    train_losses(ds, 16, l2, 2);
    snprintf(desc, sizeof desc, "%s training twice gives bit-identical losses", isa);
    tap_result(&T, same_bits(l1, l2, sizeof l1, detail, sizeof detail), desc, detail);

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
    tap_result(&T, ok, desc, ok ? "" : (*detail ? detail : err.msg));
    /* one run at a time with 3 threads inside it (what lunet.experiment does when it
     * has fewer runs than threads) */
    ln_run_result r3[3];
    memset(r3, 0, sizeof r3);
    rc.threads = 1;
    rc.threads_per_run = 3;
    ok = !ln_runs(&rc, r3, &err);
    for (int r = 0; ok && r < 3; r++)
        ok = r1[r].hist.steps == r3[r].hist.steps &&
             same_bits(r1[r].hist.step_loss, r3[r].hist.step_loss,
                       sizeof(float) * (size_t)r1[r].hist.steps, detail, sizeof detail);
    snprintf(desc, sizeof desc, "%s ln_runs: 3 threads inside each run give bit-identical step losses", isa);
    tap_result(&T, ok, desc, ok ? "" : (*detail ? detail : err.msg));
    for (int r = 0; r < 3; r++) {
        ln_history_release(&r1[r].hist);
        ln_history_release(&r2[r].hist);
        ln_history_release(&r3[r].hist);
    }
    ln_net_free(tmpl);
    ln_dataset_free(ds);
}

/* ------------------------------------------------- threads inside a run */

typedef struct {
    const char *name;
    const ln_layer_spec *specs;
    int count, c, h, w;
    ln_optim_spec optim;
} thread_case;

/* Training on 1, 2 and 3 threads: the same step losses, parameters and evaluation,
 * bit for bit, on nets that use every kind of split (samples, output channels, rows
 * of the unfolded input, batchnorm channels, parameter ranges of the optimizer). */
static void test_threads(const thread_case *tc, ln_rng *rng, const char *isa)
{
    const int n = 45, batch = 16; /* a partial last batch */
    ln_dataset *ds = random_data(n, tc->c, tc->h, tc->w, rng);
    ln_error err;
    ln_train_config cfg;
    ln_train_config_defaults(&cfg);
    cfg.optim = tc->optim;
    cfg.batch = batch;
    cfg.iterations = 2;
    ln_history h[3];
    memset(h, 0, sizeof h);
    float *params[3];
    double eval_loss[3], eval_acc[3];
    int64_t count = 0;
    int ok = 1;
    char desc[200], detail[300] = "";
    for (int t = 0; t < 3; t++) {
        ln_net *net = make_net(tc->specs, tc->count, tc->c, tc->h, tc->w, 7);
        ok = ok && !ln_net_set_threads(net, t + 1, &err) && ln_net_threads(net) == t + 1 &&
             !ln_train(net, ds, &cfg, &h[t], &err) &&
             !ln_evaluate(net, ds, LN_LOSS_NLL, 20, &eval_loss[t], &eval_acc[t], &err);
        count = ln_net_param_count(net);
        params[t] = falloc(count);
        memcpy(params[t], ln_net_params(net), sizeof(float) * (size_t)count);
        ln_net_free(net);
    }
    if (!ok) snprintf(detail, sizeof detail, "%.250s", err.msg);
    for (int t = 1; ok && t < 3; t++) {
        ok = h[t].steps == h[0].steps && h[0].steps == 6 &&
             same_bits(h[t].step_loss, h[0].step_loss, sizeof(float) * (size_t)h[0].steps, detail,
                       sizeof detail) &&
             same_bits(params[t], params[0], sizeof(float) * (size_t)count, detail, sizeof detail) &&
             eval_loss[t] == eval_loss[0] && eval_acc[t] == eval_acc[0];
        if (!ok && !*detail) snprintf(detail, sizeof detail, "%d threads differ", t + 1);
    }
    snprintf(desc, sizeof desc, "%s %s: 1, 2 and 3 threads give bit-identical losses, parameters "
             "and evaluation", isa, tc->name);
    tap_result(&T, ok, desc, detail);
    for (int t = 0; t < 3; t++) {
        ln_history_release(&h[t]);
        free(params[t]);
    }
    ln_dataset_free(ds);
}

/* Evaluation forwards a batch a chunk at a time (train.c's EVAL_CHUNK): that keeps the
 * results only because a sample's output in eval mode does not depend on the samples
 * forwarded beside it. Checked here on every layer kind: the outputs of 200 samples
 * forwarded at once and in chunks of 1, 7 and 64 (on 1 and 2 threads), bit for bit; then
 * ln_evaluate in batches of 150 against the loss and accuracy of whole-batch forwards, and
 * the net's reserved batch after it (a chunk, not the batch). */
static void test_eval_chunks(const thread_case *tc, ln_rng *rng, const char *isa)
{
    const int n = 200, batch = 150, classes = 10;
    ln_dataset *ds = random_data(n, tc->c, tc->h, tc->w, rng);
    ln_error err;
    ln_train_config cfg;
    ln_train_config_defaults(&cfg);
    cfg.optim = tc->optim;
    cfg.batch = 16;
    cfg.iterations = 1;
    ln_history h;
    memset(&h, 0, sizeof h);
    ln_net *net = make_net(tc->specs, tc->count, tc->c, tc->h, tc->w, 11);
    char desc[240], detail[300] = "";
    /* trained a little, so that batchnorm's running statistics are not the initial ones */
    int ok = !ln_train(net, ds, &cfg, &h, &err);
    double loss = 0.0, acc = 0.0;
    ok = ok && !ln_evaluate(net, ds, LN_LOSS_NLL, batch, &loss, &acc, &err);
    int reserved = ln_net_reserved_batch(net);
    if (ok && reserved > 64) {
        ok = 0;
        snprintf(detail, sizeof detail, "the net holds a batch of %d after evaluating in batches of %d", reserved, batch);
    }
    const int64_t per = (int64_t)tc->c * tc->h * tc->w;
    float *x = falloc(n * per);
    ln_dataset_read(ds, 0, n, x);
    /* ln_net_predict of all 200, compared below with a forward of all 200 */
    float *predicted = falloc((int64_t)n * classes);
    const int predict_ok = !ln_net_predict(net, x, n, predicted, &err);
    reserved = ln_net_reserved_batch(net);
    if (ok && (!predict_ok || reserved > 64)) {
        ok = 0;
        snprintf(detail, sizeof detail, "ln_net_predict of %d samples: %.200s; the net holds a batch of %d", n,
                 predict_ok ? "ok" : err.msg, reserved);
    }
    /* the loss and accuracy of whole-batch forwards (ln_evaluate's formula) */
    const int32_t *labels = ds->labels;
    double sum = 0.0, l = 0.0;
    int64_t correct = 0;
    const float *out = NULL;
    for (int start = 0; ok && start < n; start += batch) {
        const int m = n - start < batch ? n - start : batch;
        ok = !ln_net_forward(net, x + start * per, m, 0, NULL, &out, &err) &&
             !ln_loss(LN_LOSS_NLL, out, m, classes, labels + start, NULL, &l, NULL, &err);
        sum += l * m;
        for (int i = 0; ok && i < m; i++) {
            int best = 0;
            for (int c = 1; c < classes; c++)
                if (out[i * classes + c] > out[i * classes + best]) best = c;
            correct += best == labels[start + i];
        }
    }
    if (ok && (sum / n != loss || (double)correct / n != acc)) {
        ok = 0;
        snprintf(detail, sizeof detail, "ln_evaluate %a %a, whole batches %a %a", loss, acc, sum / n,
                 (double)correct / n);
    }
    if (!ok && !*detail) snprintf(detail, sizeof detail, "%.250s", err.msg);
    snprintf(desc, sizeof desc, "%s %s: ln_evaluate in batches of 150 forwards chunks and gives "
             "whole-batch forwards' loss and accuracy", isa, tc->name);
    tap_result(&T, ok, desc, detail);

    /* the premise, layer by layer: outputs of chunks against the whole */
    float *whole = falloc((int64_t)n * classes);
    for (int threads = 1; threads <= 2; threads++) {
        const int chunks[] = {1, 7, 64};
        ok = !ln_net_set_threads(net, threads, &err) && !ln_net_forward(net, x, n, 0, NULL, &out, &err);
        if (ok) memcpy(whole, out, sizeof(float) * (size_t)n * classes);
        *detail = 0;
        if (ok && threads == 1 && predict_ok) {
            ok = same_bits(predicted, whole, sizeof(float) * (size_t)n * classes, detail, sizeof detail);
            if (!ok) snprintf(detail + strlen(detail), sizeof detail - strlen(detail), " (ln_net_predict)");
        }
        for (int k = 0; ok && k < 3; k++)
            for (int start = 0; ok && start < n; start += chunks[k]) {
                const int m = n - start < chunks[k] ? n - start : chunks[k];
                ok = !ln_net_forward(net, x + start * per, m, 0, NULL, &out, &err) &&
                     same_bits(out, whole + start * classes, sizeof(float) * (size_t)m * classes, detail,
                               sizeof detail);
                if (!ok && !*detail) snprintf(detail, sizeof detail, "%.250s", err.msg);
                else if (!ok) snprintf(detail + strlen(detail), sizeof detail - strlen(detail),
                                       " (chunks of %d, from sample %d)", chunks[k], start);
            }
        snprintf(desc, sizeof desc, "%s %s, %d thread%s: eval outputs of 200 samples at once and in "
                 "chunks of 1, 7 and 64%s are the same bits", isa, tc->name, threads, threads > 1 ? "s" : "",
                 threads == 1 ? " (and ln_net_predict's)" : "");
        tap_result(&T, ok, desc, detail);
    }
    free(whole);
    free(predicted);
    free(x);
    ln_history_release(&h);
    ln_net_free(net);
    ln_dataset_free(ds);
}

static void thread_cases(ln_rng *rng, const char *isa)
{
    ln_layer_spec study[13];
    const int study_count = study_layers(study);
    /* padding, batchnorm 2d and 1d, avgpool, tanh, sigmoid; Adam over > 65536
     * parameters (the optimizer step is split too) */
    const ln_layer_spec custom[] = {
        ln_conv2d(1, 16, 3, 1, 1),  ln_batchnorm(LN_BATCHNORM2D, 16), ln_simple_layer(LN_RELU),
        ln_avgpool2d(2, 0),         ln_conv2d(16, 32, 3, 1, 1),       ln_batchnorm(LN_BATCHNORM2D, 32),
        ln_simple_layer(LN_TANH),   ln_avgpool2d(2, 0),               ln_simple_layer(LN_FLATTEN),
        ln_linear(1568, 48),        ln_batchnorm(LN_BATCHNORM1D, 48), ln_simple_layer(LN_SIGMOID),
        ln_linear(48, 10),          ln_simple_layer(LN_LOG_SOFTMAX),
    };
    /* strided and padded convolution (im2col), maxpool 3x3 stride 2, AdamW */
    const ln_layer_spec strided[] = {
        ln_conv2d(3, 12, 3, 2, 1),  ln_simple_layer(LN_RELU),  ln_maxpool2d(3, 2),
        ln_conv2d(12, 24, 3, 1, 1), ln_simple_layer(LN_TANH),  ln_simple_layer(LN_FLATTEN),
        ln_linear(24 * 7 * 7, 10),  ln_simple_layer(LN_LOG_SOFTMAX),
    };
    /* momentum SGD over > 65536 parameters: the study's optimizer split over parameter
     * ranges (the first step's buffer copy, then the vectorised update), which the
     * study net (21840 parameters) keeps on one thread */
    const ln_layer_spec wide[] = {
        ln_simple_layer(LN_FLATTEN), ln_linear(256, 300), ln_simple_layer(LN_RELU),
        ln_linear(300, 10),          ln_simple_layer(LN_LOG_SOFTMAX),
    };
    /* activations that take in the 2x2 max pooling after them (split by samples, the
     * pooling's offsets with them): tanh after a convolution, a ReLU after dropout2d (a
     * ReLU right after a convolution goes into the convolution) */
    const ln_layer_spec act_pool[] = {
        ln_conv2d(3, 16, 3, 1, 1),  ln_simple_layer(LN_TANH), ln_maxpool2d(2, 0),
        ln_conv2d(16, 16, 3, 1, 1), ln_dropout(LN_DROPOUT2D, 0.25f), ln_simple_layer(LN_RELU), ln_maxpool2d(2, 0),
        ln_simple_layer(LN_FLATTEN), ln_linear(16 * 8 * 8, 10), ln_simple_layer(LN_LOG_SOFTMAX),
    };
    /* convolutions that take in the 2x2 max pooling after them: a ReLU before it, a
     * dropout2d before it and a ReLU after it, none (split by samples forward, by chunks
     * backward; input gradients; the dropout's draws split too) */
    const ln_layer_spec conv_pool[] = {
        ln_conv2d(3, 8, 3, 1, 1),         ln_simple_layer(LN_RELU), ln_maxpool2d(2, 0),
        ln_conv2d(8, 16, 3, 1, 1),        ln_dropout(LN_DROPOUT2D, 0.25f),
        ln_maxpool2d(2, 0),               ln_simple_layer(LN_RELU), ln_conv2d(16, 8, 3, 1, 1),
        ln_maxpool2d(2, 0),               ln_simple_layer(LN_FLATTEN),
        ln_linear(8 * 4 * 4, 10),         ln_simple_layer(LN_LOG_SOFTMAX),
    };
    /* a convolution of 48 channels before a 3x3 stride-2 max pooling it does not take in:
     * its gradients from dy's nonzero places (ln_layer.dy_sparse) */
    const ln_layer_spec sparse_dy[] = {
        ln_conv2d(3, 8, 3, 1, 1),    ln_simple_layer(LN_RELU),    ln_conv2d(8, 48, 3, 1, 1),
        ln_simple_layer(LN_RELU),    ln_maxpool2d(3, 2),          ln_simple_layer(LN_FLATTEN),
        ln_linear(48 * 7 * 7, 10),   ln_simple_layer(LN_LOG_SOFTMAX),
    };
    /* the kind no other case has: leaky ReLU (with dropout between linear layers) */
    const ln_layer_spec leaky[] = {
        ln_simple_layer(LN_FLATTEN), ln_linear(3 * 8 * 8, 40), ln_leaky_relu(0.1f),
        ln_dropout(LN_DROPOUT, 0.3f), ln_linear(40, 10),        ln_simple_layer(LN_LOG_SOFTMAX),
    };
#define COUNT(a) (int)(sizeof(a) / sizeof(a)[0])
    const thread_case cases[] = {
        {"conv + maxpool net (the convolutions take in the pooling, its ReLUs, a dropout2d)", conv_pool, COUNT(conv_pool), 3,
         32, 32, ln_sgd_spec(0.01, 0.5)},
        {"tanh/relu + maxpool net (the activations take in the pooling)", act_pool, COUNT(act_pool), 3, 32, 32,
         ln_sgd_spec(0.01, 0.5)},
        {"study net", study, study_count, 1, 28, 28, ln_sgd_spec(0.01, 0.5)},
        {"conv 48 + maxpool 3x3 stride 2 net (the convolution's gradients from dy's nonzero places)", sparse_dy,
         COUNT(sparse_dy), 3, 15, 15, ln_sgd_spec(0.01, 0.5)},
        {"custom net (batchnorm, avgpool, tanh, sigmoid, adam)", custom, COUNT(custom), 1, 28, 28,
         ln_adam_spec(LN_OPT_ADAM, 1e-3)},
        {"strided net (conv stride 2, maxpool 3x3, adamw)", strided, COUNT(strided), 3, 32, 32,
         ln_adam_spec(LN_OPT_ADAMW, 1e-3)},
        {"wide mlp (momentum sgd over 80110 parameters)", wide, COUNT(wide), 1, 16, 16,
         ln_sgd_spec(0.01, 0.9)},
        {"leaky relu mlp (dropout)", leaky, COUNT(leaky), 3, 8, 8, ln_sgd_spec(0.01, 0.5)},
    };
    for (int k = 0; k < COUNT(cases); k++) {
        test_threads(&cases[k], rng, isa);
        test_eval_chunks(&cases[k], rng, isa);
    }
#undef COUNT
}

/* ---------------------------------------------------------------- main */

int main(void)
{
    ln_rng rng;
    ln_rng_seed(&rng, 20240601, 1);
    for (int isa = LN_ISA_GENERIC; isa <= LN_ISA_AVX512; isa++) {
        if (!ln_simd_for((ln_isa)isa)) {
            tap_skip("this CPU cannot run %s", ln_isa_name((ln_isa)isa));
            continue;
        }
        if ((int)ln_simd_force(isa) != isa) {
            tap_result(&T, 0, "ln_simd_force selects the requested ISA", ln_isa_name((ln_isa)isa));
            continue;
        }
        const char *name = ln_isa_name((ln_isa)isa);
        for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
            test_conv(&conv_cases[i], 1, &rng, name);
            test_conv(&conv_cases[i], 2, &rng, name);
            test_conv(&conv_cases[i], 7, &rng, name);
            test_conv(&conv_cases[i], 19, &rng, name); /* chunks of samples and a partial one */
            test_conv(&conv_cases[i], 150, &rng, name); /* seven groups of samples */
        }
        static const int lin[][3] = {{320, 50, 1}, {50, 10, 1}, {7, 3, 0}, {33, 17, 1}, {1, 1, 1}, {16, 64, 0}};
        for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) {
            test_linear(lin[i][0], lin[i][1], lin[i][2], 1, &rng, name);
            test_linear(lin[i][0], lin[i][1], lin[i][2], 7, &rng, name);
        }
        /* the kernels' cache blocks: samples of the forward and columns of the weight
         * gradient (long rows), columns of w for dx (many outputs), a batch too large for
         * the weight gradient's gathered dy */
        test_linear(5000, 9, 1, 23, &rng, name);
        test_linear(40, 3000, 0, 5, &rng, name);
        test_linear(33, 17, 1, 1100, &rng, name);
        /* output widths 12 (8 + 4 windows), 4, 4 (odd width), 2, 35, 1, 14 (8 + 4 + 2), 9 (8 + 1, odd),
         * 4 again on 8-wide planes of 7 and 4 row pairs plus an odd row (AVX-512 takes 8-wide
         * planes 4 row pairs at a time) */
        static const int pools[][3] = {{10, 24, 24}, {20, 8, 8}, {3, 7, 9}, {2, 5, 5}, {1, 33, 70},
                                       {2, 2, 3},   {2, 6, 28}, {1, 4, 19}, {3, 14, 8}, {2, 9, 8}};
        for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
            test_maxpool(pools[i][0], pools[i][1], pools[i][2], 2, 2, 1, 0, &rng, name);
            test_maxpool(pools[i][0], pools[i][1], pools[i][2], 2, 2, 7, 1, &rng, name);
        }
        /* other windows (c, h, w, k, s): 3x3 stride 2 with output rows of 15 (fewer than
         * AVX-512's lanes), 7, 34 (two vectors and 2), 64; stride 1 (k 3 and 2), 3 (a lane at
         * a time), 4 (k = s), 3 with k 2 (gaps); k 1; one window; the last rows' loads
         * near the end of x; stride 2 with two output rows to a vector (rows of at most
         * half the lanes: 7 and 5 on AVX-512, 4 on AVX2; odd row counts end on a single
         * row), k 2 and 4 */
        static const int windows[][5] = {
            {3, 32, 32, 3, 2}, {4, 15, 15, 3, 2}, {2, 33, 70, 3, 2}, {1, 6, 131, 3, 2}, {2, 40, 40, 3, 1},
            {1, 35, 35, 2, 1}, {2, 33, 33, 5, 3}, {2, 11, 37, 4, 4},  {2, 20, 20, 2, 3}, {3, 9, 9, 1, 1},
            {1, 5, 5, 5, 1},   {1, 3, 18, 3, 2},  {3, 9, 11, 3, 2},   {2, 11, 9, 3, 2},  {3, 7, 6, 2, 2},
            {2, 12, 12, 4, 2}};
        for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
            const int *p = windows[i];
            test_maxpool(p[0], p[1], p[2], p[3], p[4], 1, 0, &rng, name);
            test_maxpool(p[0], p[1], p[2], p[3], p[4], 5, 1, &rng, name);
            test_avgpool(p[0], p[1], p[2], p[3], p[4], 1, &rng, name);
            test_avgpool(p[0], p[1], p[2], p[3], p[4], 4, &rng, name);
        }
        test_max_abs(name);
        test_prefetch_write(name);
        for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++)
            test_avgpool(pools[i][0], pools[i][1], pools[i][2], 2, 2, 3, &rng, name);
        /* AVX-512's even rows up to 32 (one load a row pair, the last load ending at dy's
         * end): the custom net's 28 and 14 wide planes, 32, 30, 2 and 16, one plane alone */
        static const int even_pools[][4] = {{16, 28, 28, 2}, {32, 14, 14, 1}, {1, 14, 14, 1}, {2, 6, 32, 1},
                                            {3, 5, 30, 2},   {9, 4, 2, 1},    {1, 2, 16, 1}};
        for (size_t i = 0; i < sizeof even_pools / sizeof even_pools[0]; i++)
            test_avgpool(even_pools[i][0], even_pools[i][1], even_pools[i][2], 2, 2, even_pools[i][3], &rng, name);
        static const ln_layer_kind pre_acts[] = {LN_RELU, LN_TANH, LN_SIGMOID};
        for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++)
            test_act_maxpool(pre_acts[i % 3], pools[i][0], pools[i][1], pools[i][2], 3, &rng, name);
        for (int k = 0; k < 3; k++) test_act_maxpool(pre_acts[k], 10, 24, 24, 2, &rng, name);
        static const ln_layer_kind acts[] = {LN_RELU, LN_TANH, LN_SIGMOID};
        for (int training = 0; training < 2; training++)
            for (int a = 0; a < 3; a++) {
                test_fused_act(ln_batchnorm(LN_BATCHNORM2D, 4), acts[a], 4, 6, 7, 3, training, 0, &rng, name);
                test_fused_act(ln_batchnorm(LN_BATCHNORM2D, 3), acts[a], 3, 4, 4, 5, training, 0, &rng, name);
                /* with a 2x2 average pooling after the activation: odd and even sides,
                 * rows of 8 + 4 + scalar windows, more samples than the gradient's runs */
                test_fused_act(ln_batchnorm(LN_BATCHNORM2D, 4), acts[a], 4, 6, 7, 3, training, 1, &rng, name);
                test_fused_act(ln_batchnorm(LN_BATCHNORM2D, 3), acts[a], 3, 9, 28, 11, training, 1, &rng, name);
                test_fused_act(ln_batchnorm(LN_BATCHNORM2D, 2), acts[a], 2, 14, 14, 2, training, 1, &rng, name);
                /* even sides read through the unpool map where it can serve them
                 * (unpool_fits), rows of 4 to 32 */
                test_fused_act(ln_batchnorm(LN_BATCHNORM2D, 5), acts[a], 5, 28, 28, 3, training, 1, &rng, name);
                test_fused_act(ln_batchnorm(LN_BATCHNORM2D, 3), acts[a], 3, 8, 4, 4, training, 1, &rng, name);
                test_fused_act(ln_batchnorm(LN_BATCHNORM2D, 2), acts[a], 2, 6, 32, 3, training, 1, &rng, name);
                test_fused_act(ln_batchnorm(LN_BATCHNORM2D, 3), acts[a], 3, 10, 10, 9, training, 1, &rng, name);
                test_fused_act(ln_batchnorm(LN_BATCHNORM2D, 2), acts[a], 2, 2, 16, 5, training, 1, &rng, name);
            }
        /* a ReLU fused into batchnorm1d (the bn_feat kernels): vector tails, more features
         * than one pass holds */
        for (int training = 0; training < 2; training++) {
            test_fused_act(ln_batchnorm(LN_BATCHNORM1D, 37), LN_RELU, 37, 1, 1, 9, training, 0, &rng, name);
            test_fused_act(ln_batchnorm(LN_BATCHNORM1D, 300), LN_RELU, 300, 1, 1, 5, training, 0, &rng, name);
            test_fused_act(ln_batchnorm(LN_BATCHNORM1D, 3), LN_RELU, 3, 1, 1, 4, training, 0, &rng, name);
        }
        for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++)
            test_fused_act(ln_maxpool2d(2, 2), LN_RELU, pools[i][0], pools[i][1], pools[i][2], 3, 1, 0, &rng, name);
        /* im2col: stride 2 with output rows of 1 to 3 vectors and a part, padding 0 to
         * 2, kernels 1 to 5, an input narrower than the kernel; strides 3 and 4; output
         * rows of half a vector (two a vector: 8 wide on AVX-512, 4 on AVX2), in an odd
         * count. Not on the generic ISA, whose kernels are the C twins themselves; the
         * strides 3 and 4 check that only stride 2 takes the vector code */
        static const int im2col[][6] = {{3, 32, 32, 3, 2, 1}, {32, 16, 16, 3, 2, 1}, {8, 8, 8, 3, 2, 1},
                                        {2, 57, 55, 3, 2, 1}, {3, 20, 19, 4, 2, 2}, {4, 9, 9, 1, 2, 0},
                                        {2, 70, 66, 5, 2, 2}, {1, 3, 3, 3, 2, 1}, {2, 4, 2, 5, 2, 2},
                                        {3, 20, 19, 4, 3, 2}, {8, 15, 15, 5, 3, 2}, {2, 17, 23, 3, 4, 1},
                                        {2, 13, 16, 3, 2, 1}, {3, 5, 8, 3, 2, 1}};
        for (size_t i = 0; isa != LN_ISA_GENERIC && i < sizeof im2col / sizeof im2col[0]; i++)
            test_im2col(im2col[i][0], im2col[i][1], im2col[i][2], im2col[i][3], im2col[i][4], im2col[i][5], &rng,
                        name);
        /* a ReLU fused into conv2d: the lane-partial weight gradient with a vector tail
         * (zero-padded dy for dx) and chunks of samples, the transposed one, im2col */
        test_fused_act(ln_conv2d(3, 5, 3, 1, 1), LN_RELU, 3, 9, 11, 19, 1, 0, &rng, name);
        test_fused_act(ln_conv2d(4, 16, 3, 1, 1), LN_RELU, 4, 10, 10, 7, 1, 0, &rng, name);
        test_fused_act(ln_conv2d(2, 6, 3, 2, 1), LN_RELU, 2, 10, 9, 5, 1, 0, &rng, name);
        /* a 2x2 max pooling (and the ReLUs before and after it) fused into conv2d: the
         * study's first layer, odd output sides, chunks of samples with the transposed
         * weight gradient, a vector tail */
        for (int relu = 0; relu < 3; relu++)
            for (int drop = 0; drop < 2; drop++) {
                if (drop && relu == 1) continue; /* not fused (conv2d_absorbs_pool_drop) */
                test_conv_maxpool(ln_conv2d(1, 10, 5, 1, 0), 1, 28, 28, 3, relu, drop, 0, &rng, name);
                test_conv_maxpool(ln_conv2d(3, 5, 3, 1, 1), 3, 9, 11, 19, relu, drop, 0, &rng, name);
                test_conv_maxpool(ln_conv2d(4, 16, 3, 1, 1), 4, 10, 10, 11, relu, drop, 0, &rng, name);
                test_conv_maxpool(ln_conv2d(10, 20, 5, 1, 0), 10, 12, 12, 9, relu, drop, 0, &rng, name);
                /* 48 channels: the listed gradients (conv_dw_listed, conv_dx_listed) */
                test_conv_maxpool(ln_conv2d(6, 48, 3, 1, 1), 6, 10, 10, 11, relu, drop, 0, &rng, name);
            }
        /* after a max pooling the convolution does not take in: 48 and 64 channels (the
         * listed gradients), 16 (dense: too few channels); batches of 1 and 2 (the
         * weight gradient along the rows: dense), 9 and 40 (groups) */
        for (int relu = 0; relu < 2; relu++)
            for (int special = 0; special <= 3; special++) {
                test_conv_sparse_dy(ln_conv2d(6, 48, 3, 1, 1), 6, 15, 15, 9, relu, special, &rng, name);
                if (special) continue;
                test_conv_sparse_dy(ln_conv2d(4, 64, 3, 1, 1), 4, 11, 13, 40, relu, 0, &rng, name);
                test_conv_sparse_dy(ln_conv2d(4, 64, 3, 1, 1), 4, 11, 13, 1, relu, 0, &rng, name);
                test_conv_sparse_dy(ln_conv2d(4, 64, 3, 1, 1), 4, 11, 13, 2, relu, 0, &rng, name);
                test_conv_sparse_dy(ln_conv2d(3, 16, 3, 1, 1), 3, 9, 9, 5, relu, 0, &rng, name);
            }
        /* a fused dropout2d: the input gradient skips the dropped planes, but not one that
         * holds a NaN (inf times 0), nor any when a weight is not finite; the output skips
         * the dropped channels, but not those whose sums may overflow (huge inputs) */
        for (int special = 1; special <= 5; special++)
            for (int relu = 0; relu <= 2; relu += 2) {
                if (special <= 4) {
                    test_conv_maxpool(ln_conv2d(10, 20, 5, 1, 0), 10, 12, 12, 9, relu, 1, special, &rng, name);
                    test_conv_maxpool(ln_conv2d(3, 5, 3, 1, 1), 3, 9, 11, 19, relu, 1, special, &rng, name);
                }
                test_conv_maxpool(ln_conv2d(6, 48, 3, 1, 1), 6, 10, 10, 11, relu, 1, special, &rng, name);
            }
        /* a batchnorm's input gradient made by the convolution before it: the custom
         * net's shapes (smaller batches), odd sides, no bias, stride 2 (im2col), the
         * transposed weight gradient, with and without a fused activation and pooling */
        for (int training = 0; training < 2; training++)
            for (int a = 0; a < 4; a++) {
                const ln_layer_kind act = a == 0 ? (ln_layer_kind)0 : acts[a - 1];
                ln_layer_spec nobias = ln_conv2d(3, 5, 3, 1, 1);
                nobias.bias = 0;
                test_conv_bn_deferred(ln_conv2d(1, 16, 3, 1, 1), 1, 28, 28, 5, act, 1, training, &rng, name);
                test_conv_bn_deferred(ln_conv2d(16, 32, 3, 1, 1), 16, 14, 14, 7, act, 1, training, &rng, name);
                test_conv_bn_deferred(nobias, 3, 9, 11, 19, act, a % 2, training, &rng, name);
                test_conv_bn_deferred(ln_conv2d(2, 6, 3, 2, 1), 2, 10, 9, 5, act, 0, training, &rng, name);
                test_conv_bn_deferred(ln_conv2d(4, 16, 3, 1, 1), 4, 10, 10, 11, act, 1, training, &rng, name);
            }
        /* batchnorm1d's runs of one: tails of every ISA's vectors, more features than
         * one pass of the kernels holds (FEAT_BLOCK), a batch of one */
        static const int feats[][2] = {{1, 9}, {5, 4}, {16, 64}, {37, 9}, {64, 50}, {300, 3}, {517, 9}, {48, 1}};
        for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++)
            for (int training = 0; training < 2; training++)
                for (int specials = 0; specials < 2; specials++)
                    test_batchnorm_features(feats[i][0], feats[i][1], training, specials, &rng, name);
        static const int bns[][3] = {{16, 28, 28}, {3, 5, 7}, {2, 3, 3}, {48, 0, 0}};
        for (size_t i = 0; i < sizeof bns / sizeof bns[0]; i++) {
            test_batchnorm(bns[i][0], bns[i][1], bns[i][2], 9, 1, &rng, name);
            test_batchnorm(bns[i][0], bns[i][1], bns[i][2], 4, 0, &rng, name);
        }
        test_rectifier(ln_simple_layer(LN_RELU), 1440, 7, &rng, name);
        test_rectifier(ln_simple_layer(LN_RELU), 13, 1, &rng, name);
        test_rectifier(ln_leaky_relu(0.01f), 1440, 7, &rng, name);
        test_rectifier(ln_leaky_relu(0.0f), 13, 1, &rng, name);
        test_rectifier(ln_leaky_relu(-0.5f), 37, 3, &rng, name);
        test_squash(LN_TANH, 1440, 7, &rng, name);
        test_squash(LN_TANH, 13, 2, &rng, name);
        test_squash(LN_SIGMOID, 1440, 7, &rng, name);
        test_squash(LN_SIGMOID, 13, 2, &rng, name);
        test_scale_runs(ln_simd_for((ln_isa)isa), &rng, name);
        test_dropout_mask(ln_simd_for((ln_isa)isa), &rng, name);
        test_optim_kernels(ln_simd_for((ln_isa)isa), &rng, name);
        test_reduce_lanes(ln_simd_for((ln_isa)isa), &rng, name);
        test_transpose_add(ln_simd_for((ln_isa)isa), &rng, name);
        test_rows_transpose(ln_simd_for((ln_isa)isa), &rng, name);
        test_dx_channels(ln_simd_for((ln_isa)isa), &rng, name);
        test_dx_listed(ln_simd_for((ln_isa)isa), &rng, name);
        test_dw_listed(ln_simd_for((ln_isa)isa), &rng, name);
        test_pool_places(ln_simd_for((ln_isa)isa), &rng, name);
        test_dw_some(ln_simd_for((ln_isa)isa), &rng, name);
        test_dw_inf_input(&rng, name);
        test_net_fast_vs_reference(name, &rng);
        test_determinism(name, &rng);
        thread_cases(&rng, name);
    }
    test_workspace_lines();
    ln_simd_force(-1);
    return tap_done(&T);
}
