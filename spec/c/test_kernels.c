/* test_kernels.c - direct tests of the dropout, log_softmax, batchnorm, loss and
 * optimizer code, on ln_layer structs built by hand (no net involved), and the pinned
 * kind tags of model files (append-only: a reordered enum must not change them).
 *
 * Gradients are checked against double-sided finite differences of a random
 * projection L = sum(y * r); hand-worked numbers pin the running statistics and the
 * optimizer formulas (PyTorch 1.13's). A self-check feeds the gradient checker wrong
 * gradients and requires it to notice, so a passing run means something.
 *
 * Output: "ok N - desc" or "not ok N - desc: detail" per check, then
 * "# passed P failed F"; the exit status is 0 iff nothing failed.
 *
 * Build: `make` (linked against the core library, build/<variant>/spec/test_kernels).
 */
#include "../../core/layer.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fixture.h"
#include "tap.h"

/* ------------------------------------------------------------ comparing values */

static int close_to(double got, double want, double rel, double abs_tol)
{
    if (isnan(want)) return isnan(got);
    return fabs(got - want) <= abs_tol + rel * fabs(want);
}

/* Compares got[i] with want[i]; on the first mismatch describes it in detail. */
static int all_close(const float *got, const double *want, int n, double rel, double abs_tol,
                     char *detail, size_t size)
{
    for (int i = 0; i < n; i++)
        if (!close_to(got[i], want[i], rel, abs_tol)) {
            snprintf(detail, size, "[%d] got %.9g, want %.9g", i, (double)got[i], want[i]);
            return 0;
        }
    return 1;
}

static void fill_uniform(float *v, int64_t n, ln_rng *rng, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * ln_rng_uniform(rng);
}

/* ---------------------------------------------------------- grad checker */

typedef double (*objective_fn)(void *self);

typedef struct {
    int mismatches;
    int64_t worst;           /* index of the largest excess over the tolerance */
    double analytic, numeric;
} gc_result;

/* Double-sided differences of f with respect to each var[i], compared with
 * analytic[i] within 1e-2 relative + 1e-3 absolute. The step is divided by the
 * perturbation actually applied (x +- eps rounded to float), not by 2*eps. */
static gc_result gradcheck(objective_fn f, void *self, float *var, const float *analytic,
                           int64_t n)
{
    const float eps = 1e-3f;
    gc_result r = {0, -1, 0.0, 0.0};
    double worst_excess = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        const float orig = var[i];
        var[i] = orig + eps;
        const double xp = var[i];
        const double lp = f(self);
        var[i] = orig - eps;
        const double xm = var[i];
        const double lm = f(self);
        var[i] = orig;
        const double num = (lp - lm) / (xp - xm);
        const double a = analytic[i];
        const double tol = 1e-2 * fmax(fabs(a), fabs(num)) + 1e-3;
        const double excess = fabs(a - num) - tol;
        if (!(excess <= 0.0)) r.mismatches++;
        if (excess > worst_excess || r.worst < 0) {
            worst_excess = excess;
            r.worst = i;
            r.analytic = a;
            r.numeric = num;
        }
    }
    f(self); /* leave the layer's saved state as for the unperturbed input */
    return r;
}

static void report_gradcheck(tap *t, const char *desc, gc_result g, int64_t n)
{
    tap_checkd(t, g.mismatches == 0, desc,
               "%d of %lld mismatch; worst at [%lld]: analytic %.6g, numeric %.6g", g.mismatches,
               (long long)n, (long long)g.worst, g.analytic, g.numeric);
}

/* ------------------------------------------------------- layer fixture */

typedef struct {
    ln_layer l;
    ln_ctx ctx;
    ln_rng rng;
    float *x, *y, *r, *dx;  /* input, output, projection (= dy), input gradient */
    float *weight, *bias, *dweight, *dbias, *rmean, *rvar, *saved, *mask;
    int64_t in_total, out_total;
} fixture;

/* A layer of `kind` on per-sample input `shape`, batch `batch`, with its parameters,
 * buffers and saved state in the fixture's own arrays. */
static void fixture_make(fixture *fx, ln_layer_kind kind, int ndim, const int64_t *dims,
                         int batch, int training, uint64_t seed)
{
    memset(fx, 0, sizeof *fx);
    ln_rng_seed(&fx->rng, seed, LN_STREAM_DROPOUT);
    ln_layer *l = &fx->l;
    l->spec.kind = kind;
    l->spec.eps = 1e-5f;
    l->spec.momentum = 0.1f;
    l->in = ln_shape_make(ndim, dims);
    l->out = l->in;
    l->in_n = l->out_n = ln_shape_numel(l->in);
    const int64_t c = dims[0];
    if (kind == LN_BATCHNORM1D || kind == LN_BATCHNORM2D) {
        l->spec.in_channels = (int)c;
        l->weight_n = l->bias_n = c;
        l->weight = fx->weight = falloc(c);
        l->bias = fx->bias = falloc(c);
        l->dweight = fx->dweight = falloc(c);
        l->dbias = fx->dbias = falloc(c);
        l->running_mean = fx->rmean = falloc(c);
        l->running_var = fx->rvar = falloc(c);
        l->saved = fx->saved = falloc(2 * c);
        for (int64_t i = 0; i < c; i++) fx->weight[i] = fx->rvar[i] = 1.0f;
    }
    if (kind == LN_DROPOUT || kind == LN_DROPOUT2D)
        l->mask = fx->mask = falloc((int64_t)batch * (kind == LN_DROPOUT2D ? c : l->in_n));
    fx->ctx.batch = batch;
    fx->ctx.training = training;
    fx->ctx.rng = &fx->rng;
    fx->in_total = (int64_t)batch * l->in_n;
    fx->out_total = (int64_t)batch * l->out_n;
    fx->x = falloc(fx->in_total);
    fx->y = falloc(fx->out_total);
    fx->r = falloc(fx->out_total);
    fx->dx = falloc(fx->in_total);
}

static void fixture_free(fixture *fx)
{
    float *all[] = {fx->x, fx->y, fx->r, fx->dx, fx->weight, fx->bias, fx->dweight,
                    fx->dbias, fx->rmean, fx->rvar, fx->saved, fx->mask};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    memset(fx, 0, sizeof *fx);
}

static void forward(fixture *fx)
{
    ln_layer *l = &fx->l;
    switch (l->spec.kind) {
    case LN_LOG_SOFTMAX: log_softmax_forward(l, fx->x, fx->y, &fx->ctx); break;
    case LN_BATCHNORM1D:
    case LN_BATCHNORM2D: batchnorm_forward(l, fx->x, fx->y, &fx->ctx); break;
    case LN_DROPOUT:
    case LN_DROPOUT2D: dropout_forward(l, fx->x, fx->y, &fx->ctx); break;
    default: break;
    }
}

/* Zeroes the parameter gradients (as the net does) and backpropagates dy = r. */
static void backward(fixture *fx, float *dx)
{
    ln_layer *l = &fx->l;
    if (fx->dweight) memset(fx->dweight, 0, sizeof(float) * (size_t)l->weight_n);
    if (fx->dbias) memset(fx->dbias, 0, sizeof(float) * (size_t)l->bias_n);
    switch (l->spec.kind) {
    case LN_LOG_SOFTMAX: log_softmax_backward(l, fx->y, fx->r, dx, &fx->ctx); break;
    case LN_BATCHNORM1D:
    case LN_BATCHNORM2D: batchnorm_backward(l, fx->x, fx->r, dx, &fx->ctx); break;
    case LN_DROPOUT:
    case LN_DROPOUT2D: dropout_backward(l, fx->r, dx, &fx->ctx); break;
    default: break;
    }
}

/* L = sum(y * r) after a fresh forward pass. */
static double projection_loss(void *self)
{
    fixture *fx = self;
    forward(fx);
    double s = 0.0;
    for (int64_t i = 0; i < fx->out_total; i++) s += (double)fx->y[i] * (double)fx->r[i];
    return s;
}

/* Gradient checks of a layer with respect to its input and, if any, gamma and beta.
 * Expects x, r and parameters filled in. */
static void check_layer_grads(tap *t, fixture *fx, const char *what)
{
    char desc[200];
    forward(fx);
    backward(fx, fx->dx);
    float *dw = NULL, *db = NULL;
    const int64_t c = fx->l.weight_n;
    if (fx->dweight) {
        dw = falloc(c);
        db = falloc(c);
        memcpy(dw, fx->dweight, sizeof(float) * (size_t)c);
        memcpy(db, fx->dbias, sizeof(float) * (size_t)c);
    }
    snprintf(desc, sizeof desc, "%s: d/dx matches finite differences", what);
    report_gradcheck(t, desc, gradcheck(projection_loss, fx, fx->x, fx->dx, fx->in_total),
                     fx->in_total);
    if (dw) {
        snprintf(desc, sizeof desc, "%s: d/dgamma matches finite differences", what);
        report_gradcheck(t, desc, gradcheck(projection_loss, fx, fx->weight, dw, c), c);
        snprintf(desc, sizeof desc, "%s: d/dbeta matches finite differences", what);
        report_gradcheck(t, desc, gradcheck(projection_loss, fx, fx->bias, db, c), c);
    }
    free(dw);
    free(db);
}

/* --------------------------------------------------------- self-check */

static void test_selfcheck(tap *t)
{
    ln_rng rng;
    ln_rng_seed(&rng, 11, 0);
    fixture fx;
    const int64_t dims[1] = {5};
    fixture_make(&fx, LN_LOG_SOFTMAX, 1, dims, 3, 1, 1);
    fill_uniform(fx.x, fx.in_total, &rng, -3.0f, 3.0f);
    fill_uniform(fx.r, fx.out_total, &rng, -1.0f, 1.0f);
    forward(&fx);
    backward(&fx, fx.dx);
    /* A gradient off by 0.05 in one place must be caught. */
    fx.dx[7] += 0.05f;
    gc_result g = gradcheck(projection_loss, &fx, fx.x, fx.dx, fx.in_total);
    tap_checkd(t, g.mismatches == 1 && g.worst == 7,
               "self-check: gradcheck flags a log_softmax gradient perturbed at one element",
               "mismatches %d, worst [%lld]", g.mismatches, (long long)g.worst);
    fixture_free(&fx);

    /* A classic batchnorm bug: backpropagating as if mean and variance were constants
     * (dx = dy * gamma * invstd) in training mode. */
    const int64_t bdims[1] = {3};
    fixture_make(&fx, LN_BATCHNORM1D, 1, bdims, 4, 1, 1);
    fill_uniform(fx.x, fx.in_total, &rng, -2.0f, 2.0f);
    fill_uniform(fx.r, fx.out_total, &rng, -1.0f, 1.0f);
    fill_uniform(fx.weight, 3, &rng, 0.5f, 1.5f);
    forward(&fx);
    for (int n = 0; n < 4; n++)
        for (int c = 0; c < 3; c++)
            fx.dx[n * 3 + c] = fx.r[n * 3 + c] * fx.weight[c] * fx.saved[3 + c];
    g = gradcheck(projection_loss, &fx, fx.x, fx.dx, fx.in_total);
    tap_checkd(t, g.mismatches > 0,
               "self-check: gradcheck flags a batchnorm backward that ignores the batch statistics",
               "no mismatch reported");
    fixture_free(&fx);
}

/* ---------------------------------------------------------- log_softmax */

static void test_log_softmax(tap *t)
{
    ln_rng rng;
    ln_rng_seed(&rng, 21, 0);
    fixture fx;
    const int64_t dims[1] = {5};
    for (int training = 1; training >= 0; training--) {
        fixture_make(&fx, LN_LOG_SOFTMAX, 1, dims, 3, training, 1);
        fill_uniform(fx.x, fx.in_total, &rng, -3.0f, 3.0f);
        fill_uniform(fx.r, fx.out_total, &rng, -1.0f, 1.0f);
        check_layer_grads(t, &fx, training ? "log_softmax (training)" : "log_softmax (eval)");
        fixture_free(&fx);
    }

    fixture_make(&fx, LN_LOG_SOFTMAX, 1, dims, 3, 1, 1);
    fill_uniform(fx.x, fx.in_total, &rng, -3.0f, 3.0f);
    forward(&fx);
    double worst = 0.0;
    for (int n = 0; n < 3; n++) {
        double s = 0.0;
        for (int i = 0; i < 5; i++) s += exp((double)fx.y[n * 5 + i]);
        worst = fmax(worst, fabs(s - 1.0));
    }
    tap_checkd(t, worst < 1e-6, "log_softmax: exp(y) sums to 1 per sample", "off by %g", worst);
    fixture_free(&fx);

    /* Scores far beyond exp's float range: y = x - 1002 - log(e^-2 + e^-1 + 1). */
    const int64_t d3[1] = {3};
    fixture_make(&fx, LN_LOG_SOFTMAX, 1, d3, 1, 1, 1);
    fx.x[0] = 1000.0f;
    fx.x[1] = 1001.0f;
    fx.x[2] = 1002.0f;
    forward(&fx);
    const double lse = log(exp(-2.0) + exp(-1.0) + 1.0);
    const double want[3] = {-2.0 - lse, -1.0 - lse, -lse};
    char detail[200] = "";
    tap_checkd(t, all_close(fx.y, want, 3, 1e-6, 1e-6, detail, sizeof detail),
               "log_softmax: stable for scores around 1000", "%s", detail);
    fx.x[1] = NAN;
    forward(&fx);
    tap_checkd(t, isnan(fx.y[0]) && isnan(fx.y[1]) && isnan(fx.y[2]),
               "log_softmax: a NaN score makes the sample NaN", "y = %g %g %g", (double)fx.y[0],
               (double)fx.y[1], (double)fx.y[2]);
    fixture_free(&fx);
}

/* ----------------------------------------------------------- batchnorm */

static void test_batchnorm_grads(tap *t)
{
    ln_rng rng;
    ln_rng_seed(&rng, 31, 0);
    fixture fx;
    const int64_t d2[3] = {2, 3, 2};
    const int64_t d1[1] = {4};
    for (int kind1d = 0; kind1d <= 1; kind1d++)
        for (int training = 1; training >= 0; training--) {
            if (kind1d)
                fixture_make(&fx, LN_BATCHNORM1D, 1, d1, 5, training, 1);
            else
                fixture_make(&fx, LN_BATCHNORM2D, 3, d2, 3, training, 1);
            fill_uniform(fx.x, fx.in_total, &rng, -2.0f, 2.0f);
            /* Channel offsets, so the mean actually matters. */
            const int64_t c = fx.l.in.dim[0], s = fx.l.in_n / c;
            for (int64_t i = 0; i < fx.in_total; i++) fx.x[i] += 0.5f * (float)((i / s) % c);
            fill_uniform(fx.r, fx.out_total, &rng, -1.0f, 1.0f);
            fill_uniform(fx.weight, c, &rng, 0.5f, 1.5f);
            fill_uniform(fx.bias, c, &rng, -0.5f, 0.5f);
            fill_uniform(fx.rmean, c, &rng, -0.5f, 0.5f);
            fill_uniform(fx.rvar, c, &rng, 0.5f, 2.0f);
            char what[80];
            snprintf(what, sizeof what, "%s (%s)", kind1d ? "batchnorm1d" : "batchnorm2d",
                     training ? "training" : "eval");
            check_layer_grads(t, &fx, what);
            fixture_free(&fx);
        }

    /* dgamma/dbeta accumulate; dx == NULL still yields them. */
    fixture_make(&fx, LN_BATCHNORM2D, 3, d2, 3, 1, 1);
    fill_uniform(fx.x, fx.in_total, &rng, -2.0f, 2.0f);
    fill_uniform(fx.r, fx.out_total, &rng, -1.0f, 1.0f);
    forward(&fx);
    backward(&fx, NULL);
    const double once_w[2] = {fx.dweight[0], fx.dweight[1]};
    const double once_b[2] = {fx.dbias[0], fx.dbias[1]};
    batchnorm_backward(&fx.l, fx.x, fx.r, NULL, &fx.ctx);
    const double twice_w[2] = {2 * once_w[0], 2 * once_w[1]};
    const double twice_b[2] = {2 * once_b[0], 2 * once_b[1]};
    char detail[200] = "";
    tap_checkd(t,
               (once_w[0] != 0.0 || once_w[1] != 0.0) &&
               all_close(fx.dweight, twice_w, 2, 1e-6, 1e-7, detail, sizeof detail) &&
               all_close(fx.dbias, twice_b, 2, 1e-6, 1e-7, detail, sizeof detail),
               "batchnorm: dgamma/dbeta accumulate and are computed when dx is NULL", "%s", detail);
    fixture_free(&fx);
}

static void test_batchnorm_values(tap *t)
{
    char detail[200] = "";
    fixture fx;

    /* BatchNorm1d, F = 2, batch 3, momentum 0.1:
     *   feature 0: 1, 2, 6 -> mean 3, biased var 14/3, unbiased 7
     *     running_mean = 0.9*0 + 0.1*3 = 0.3, running_var = 0.9*1 + 0.1*7 = 1.6
     *   feature 1: 0, 0, 3 -> mean 1, biased var 2, unbiased 3
     *     running_mean = 0.1, running_var = 0.9 + 0.3 = 1.2 */
    const int64_t d1[1] = {2};
    fixture_make(&fx, LN_BATCHNORM1D, 1, d1, 3, 1, 1);
    const float x1[6] = {1, 0, 2, 0, 6, 3};
    memcpy(fx.x, x1, sizeof x1);
    forward(&fx);
    const double rm1[2] = {0.3, 0.1}, rv1[2] = {1.6, 1.2};
    tap_checkd(t,
               all_close(fx.rmean, rm1, 2, 1e-6, 1e-7, detail, sizeof detail) &&
               all_close(fx.rvar, rv1, 2, 1e-6, 1e-7, detail, sizeof detail),
               "batchnorm1d: running mean/var after one step (unbiased var, momentum 0.1)", "%s",
               detail);
    const double inv0 = 1.0 / sqrt(14.0 / 3.0 + 1e-5), inv1 = 1.0 / sqrt(2.0 + 1e-5);
    const double saved1[4] = {3.0, 1.0, inv0, inv1};
    tap_checkd(t, all_close(fx.saved, saved1, 4, 1e-6, 1e-7, detail, sizeof detail),
               "batchnorm1d: saved mean and invstd (biased var + eps)", "%s", detail);
    /* gamma 1, beta 0: y = (x - mean) * invstd. */
    const double y1[6] = {-2 * inv0, -1 * inv1, -1 * inv0, -1 * inv1, 3 * inv0, 2 * inv1};
    tap_checkd(t, all_close(fx.y, y1, 6, 1e-6, 1e-6, detail, sizeof detail),
               "batchnorm1d: training output normalised with the batch statistics", "%s", detail);

    /* Eval with running_mean 0.5, running_var 4, gamma 2, beta 1:
     * y = (x - 0.5) / sqrt(4 + 1e-5) * 2 + 1. */
    fx.ctx.training = 0;
    fx.rmean[0] = fx.rmean[1] = 0.5f;
    fx.rvar[0] = fx.rvar[1] = 4.0f;
    fx.weight[0] = fx.weight[1] = 2.0f;
    fx.bias[0] = fx.bias[1] = 1.0f;
    forward(&fx);
    double ye[6];
    for (int i = 0; i < 6; i++) ye[i] = (x1[i] - 0.5) / sqrt(4.0 + 1e-5) * 2.0 + 1.0;
    tap_checkd(t,
               all_close(fx.y, ye, 6, 1e-6, 1e-6, detail, sizeof detail) && fx.rmean[0] == 0.5f &&
               fx.rvar[0] == 4.0f,
               "batchnorm1d: eval uses the running stats and leaves them alone", "%s", detail);
    fixture_free(&fx);

    /* BatchNorm2d, C = 2, 2x2 planes, batch 2:
     *   channel 0: 1..8 -> mean 4.5, sum of squared deviations 42, unbiased var 6
     *     running_mean 0.45, running_var 0.9 + 0.6 = 1.5
     *   channel 1: 0,0,0,0 and 2,2,2,2 -> mean 1, squared deviations 8, unbiased 8/7
     *     running_mean 0.1, running_var 0.9 + 0.8/7 */
    const int64_t d2[3] = {2, 2, 2};
    fixture_make(&fx, LN_BATCHNORM2D, 3, d2, 2, 1, 1);
    const float x2[16] = {1, 2, 3, 4, 0, 0, 0, 0, 5, 6, 7, 8, 2, 2, 2, 2};
    memcpy(fx.x, x2, sizeof x2);
    forward(&fx);
    const double rm2[2] = {0.45, 0.1}, rv2[2] = {1.5, 0.9 + 0.8 / 7.0};
    tap_checkd(t,
               all_close(fx.rmean, rm2, 2, 1e-6, 1e-7, detail, sizeof detail) &&
               all_close(fx.rvar, rv2, 2, 1e-6, 1e-7, detail, sizeof detail),
               "batchnorm2d: running mean/var after one step (per channel over N,H,W)", "%s",
               detail);
    const double saved2[4] = {4.5, 1.0, 1.0 / sqrt(42.0 / 8.0 + 1e-5), 1.0 / sqrt(1.0 + 1e-5)};
    tap_checkd(t, all_close(fx.saved, saved2, 4, 1e-6, 1e-7, detail, sizeof detail),
               "batchnorm2d: saved mean and invstd", "%s", detail);
    /* A second step compounds: running_mean = 0.9*0.45 + 0.1*4.5 = 0.855. */
    forward(&fx);
    tap_checkd(t, close_to(fx.rmean[0], 0.855, 1e-6, 1e-7), "batchnorm2d: running mean compounds",
               "got %.9g", (double)fx.rmean[0]);
    fixture_free(&fx);
}

/* ------------------------------------------------------------- dropout */

static void test_dropout(tap *t)
{
    fixture fx;
    ln_rng data;
    ln_rng_seed(&data, 41, 0);

    /* Elementwise, p = 0.3, 4 x 5000 elements. */
    const float p = 0.3f;
    const float scale = (float)(1.0 / (1.0 - 0.3f));
    const int64_t d1[1] = {5000};
    fixture_make(&fx, LN_DROPOUT, 1, d1, 4, 1, 7);
    fx.l.spec.p = p;
    fill_uniform(fx.x, fx.in_total, &data, -1.0f, 1.0f);
    fill_uniform(fx.r, fx.out_total, &data, -1.0f, 1.0f);
    forward(&fx);
    int64_t dropped = 0, bad = -1;
    for (int64_t i = 0; i < fx.in_total; i++) {
        if (fx.mask[i] == 0.0f) dropped++;
        else if (fx.mask[i] != scale && bad < 0) bad = i;
        if (fx.y[i] != fx.x[i] * fx.mask[i] && bad < 0) bad = i;
    }
    const double frac = (double)dropped / (double)fx.in_total;
    tap_checkd(t, fabs(frac - 0.3) < 0.02, "dropout: fraction dropped is about p (0.3)",
               "dropped %.4f", frac);
    tap_checkd(t, bad < 0, "dropout: kept values are scaled by 1/(1-p), dropped are 0",
               "element %lld: x %g mask %g y %g", (long long)bad,
               bad >= 0 ? (double)fx.x[bad] : 0.0, bad >= 0 ? (double)fx.mask[bad] : 0.0,
               bad >= 0 ? (double)fx.y[bad] : 0.0);

    /* Draw order: one uniform per element, sample-major, drop when < p. */
    ln_rng replay;
    ln_rng_seed(&replay, 7, LN_STREAM_DROPOUT);
    bad = -1;
    for (int64_t i = 0; i < fx.in_total && bad < 0; i++) {
        const float want = ln_rng_uniform(&replay) < p ? 0.0f : scale;
        if (fx.mask[i] != want) bad = i;
    }
    tap_checkd(t, bad < 0, "dropout: mask follows the rng draws in sample-major order",
               "first difference at %lld", (long long)bad);

    backward(&fx, fx.dx);
    bad = -1;
    for (int64_t i = 0; i < fx.in_total && bad < 0; i++)
        if (fx.dx[i] != fx.r[i] * fx.mask[i]) bad = i;
    tap_checkd(t, bad < 0, "dropout: backward multiplies dy by the mask", "element %lld",
               (long long)bad);

    /* The same seed gives the same mask, another seed another one. */
    float *first = falloc(fx.in_total);
    memcpy(first, fx.mask, sizeof(float) * (size_t)fx.in_total);
    ln_rng_seed(&fx.rng, 7, LN_STREAM_DROPOUT);
    forward(&fx);
    tap_checkd(t, memcmp(first, fx.mask, sizeof(float) * (size_t)fx.in_total) == 0,
               "dropout: same seed gives the same mask", NULL);
    ln_rng_seed(&fx.rng, 8, LN_STREAM_DROPOUT);
    forward(&fx);
    tap_checkd(t, memcmp(first, fx.mask, sizeof(float) * (size_t)fx.in_total) != 0,
               "dropout: another seed gives another mask", NULL);
    free(first);

    /* Eval: identity both ways, and the rng is not touched. */
    fx.ctx.training = 0;
    const ln_rng before = fx.rng;
    forward(&fx);
    backward(&fx, fx.dx);
    tap_checkd(t,
               memcmp(fx.x, fx.y, sizeof(float) * (size_t)fx.in_total) == 0 &&
               memcmp(fx.r, fx.dx, sizeof(float) * (size_t)fx.in_total) == 0 &&
               before.state == fx.rng.state,
               "dropout: eval is the identity forward and backward and draws nothing", NULL);

    /* p = 0: identity in training too. */
    fx.ctx.training = 1;
    fx.l.spec.p = 0.0f;
    forward(&fx);
    tap_checkd(t, memcmp(fx.x, fx.y, sizeof(float) * (size_t)fx.in_total) == 0,
               "dropout: p = 0 is the identity", NULL);
    /* p = 1: everything zero, no 1/0 anywhere. */
    fx.l.spec.p = 1.0f;
    forward(&fx);
    backward(&fx, fx.dx);
    bad = -1;
    for (int64_t i = 0; i < fx.in_total && bad < 0; i++)
        if (fx.y[i] != 0.0f || fx.dx[i] != 0.0f || fx.mask[i] != 0.0f) bad = i;
    tap_checkd(t, bad < 0, "dropout: p = 1 zeroes output and gradient", "element %lld",
               (long long)bad);
    fixture_free(&fx);

    /* Dropout2d, p = 0.5, 50 samples x 8 channels of 5x5. */
    const int64_t d2[3] = {8, 5, 5};
    fixture_make(&fx, LN_DROPOUT2D, 3, d2, 50, 1, 9);
    fx.l.spec.p = 0.5f;
    fill_uniform(fx.x, fx.in_total, &data, 0.5f, 1.5f); /* never 0, so a 0 means dropped */
    fill_uniform(fx.r, fx.out_total, &data, -1.0f, 1.0f);
    forward(&fx);
    int64_t whole = 0, partial = -1, chan_dropped = 0;
    for (int64_t e = 0; e < 50 * 8; e++) {
        int zeros = 0;
        for (int i = 0; i < 25; i++) zeros += fx.y[e * 25 + i] == 0.0f;
        if (zeros == 25) whole++;
        if (zeros != 0 && zeros != 25 && partial < 0) partial = e;
        if (fx.mask[e] == 0.0f) chan_dropped++;
        for (int i = 0; i < 25; i++)
            if (fx.y[e * 25 + i] != fx.x[e * 25 + i] * fx.mask[e] && partial < 0) partial = e;
    }
    tap_checkd(t, partial < 0 && whole == chan_dropped,
               "dropout2d: whole channels are zeroed or scaled together",
               "channel %lld mixed; %lld zero channels vs %lld dropped", (long long)partial,
               (long long)whole, (long long)chan_dropped);
    tap_checkd(t, fabs((double)chan_dropped / 400.0 - 0.5) < 0.1,
               "dropout2d: fraction of channels dropped is about p (0.5)", "%lld of 400",
               (long long)chan_dropped);
    bad = -1;
    for (int64_t e = 0; e < 400 && bad < 0; e++)
        if (fx.mask[e] != 0.0f && fx.mask[e] != 2.0f) bad = e;
    tap_checkd(t, bad < 0, "dropout2d: keep-scale is 1/(1-p) = 2", "entry %lld is %g", (long long)bad,
               bad >= 0 ? (double)fx.mask[bad] : 0.0);
    backward(&fx, fx.dx);
    bad = -1;
    for (int64_t i = 0; i < fx.in_total && bad < 0; i++)
        if (fx.dx[i] != fx.r[i] * fx.mask[i / 25]) bad = i;
    tap_checkd(t, bad < 0, "dropout2d: backward multiplies dy by the channel's mask",
               "element %lld", (long long)bad);
    fx.ctx.training = 0;
    forward(&fx);
    tap_checkd(t, memcmp(fx.x, fx.y, sizeof(float) * (size_t)fx.in_total) == 0,
               "dropout2d: eval is the identity", NULL);
    fixture_free(&fx);
}

/* ln_rng_advance jumps as far as that many draws; dropout split over threads (each part
 * from a jumped copy of the stream, then the finish) draws what one thread draws. */
static void test_dropout_parts(tap *t)
{
    int same = 1;
    const uint64_t steps[] = {0, 1, 2, 3, 7, 64, 1000, 4097};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        ln_rng a, b;
        ln_rng_seed(&a, 99 + i, 3);
        b = a;
        for (uint64_t n = 0; n < steps[i]; n++) ln_rng_u32(&a);
        ln_rng_advance(&b, steps[i]);
        same &= a.state == b.state && a.inc == b.inc && ln_rng_u32(&a) == ln_rng_u32(&b);
    }
    tap_checkd(t, same, "ln_rng_advance(n) leaves the state n draws leave (n = 0 to 4097)", NULL);
    ln_rng a, b;
    ln_rng_seed(&a, 5, 1);
    b = a;
    const uint64_t seeded = a.state;
    ln_rng_advance(&a, (uint64_t)1 << 40);
    const uint64_t far = a.state;
    ln_rng_advance(&a, 12345);
    ln_rng_advance(&b, ((uint64_t)1 << 40) + 12345);
    tap_checkd(t, a.state == b.state && far != seeded && a.state != far,
               "ln_rng_advance by 2^40 then by 12345 equals by 2^40 + 12345 (and each moves the state)", NULL);

    const int64_t d1[1] = {37}, d2[3] = {6, 3, 3};
    const ln_layer_kind kinds[] = {LN_DROPOUT, LN_DROPOUT2D};
    for (int k = 0; k < 2; k++) {
        for (int threads = 2; threads <= 5; threads += 3) {
            fixture one, split;
            fixture_make(&one, kinds[k], k ? 3 : 1, k ? d2 : d1, 11, 1, 17);
            fixture_make(&split, kinds[k], k ? 3 : 1, k ? d2 : d1, 11, 1, 17);
            one.l.spec.p = split.l.spec.p = 0.4f;
            ln_rng fill;
            ln_rng_seed(&fill, 3, 0);
            fill_uniform(one.x, one.in_total, &fill, -1.0f, 1.0f);
            memcpy(split.x, one.x, sizeof(float) * (size_t)one.in_total);
            forward(&one);
            /* the parts in reverse order: none may depend on another having run */
            for (int part = threads - 1; part >= 0; part--)
                dropout_forward_part(&split.l, split.x, split.y, &split.ctx, part, threads);
            dropout_forward_finish(&split.l, &split.ctx);
            const int64_t entries = one.in_total / (k ? 9 : 1);
            tap_check(t,
                      memcmp(one.mask, split.mask, sizeof(float) * (size_t)entries) == 0 &&
                          memcmp(one.y, split.y, sizeof(float) * (size_t)one.in_total) == 0 &&
                          one.rng.state == split.rng.state,
                      "%s split over %d threads draws the masks, outputs and stream of one thread",
                      k ? "dropout2d" : "dropout", threads);
            fixture_free(&one);
            fixture_free(&split);
        }
    }
}

/* --------------------------------------------------------------- losses */

typedef struct {
    ln_loss_kind kind;
    float *pred;
    int batch, classes;
    const int32_t *labels;
    const float *targets;
} loss_case;

static double loss_objective(void *self)
{
    loss_case *c = self;
    double v = NAN;
    ln_loss(c->kind, c->pred, c->batch, c->classes, c->labels, c->targets, &v, NULL, NULL);
    return v;
}

static void test_loss_grads(tap *t)
{
    ln_rng rng;
    ln_rng_seed(&rng, 51, 0);
    enum { B = 3, C = 4 };
    const int32_t labels[B] = {2, 0, 3};
    float pred[B * C], targets[B * C], grad[B * C];
    fill_uniform(targets, B * C, &rng, -1.0f, 1.0f);
    const struct {
        ln_loss_kind kind;
        const float *targets;
        const char *desc;
    } cases[] = {
        {LN_LOSS_NLL, NULL, "nll loss: gradient matches finite differences"},
        {LN_LOSS_CROSS_ENTROPY, NULL, "cross-entropy loss: gradient matches finite differences"},
        {LN_LOSS_MSE, targets, "mse loss (targets): gradient matches finite differences"},
        {LN_LOSS_MSE, NULL, "mse loss (one-hot labels): gradient matches finite differences"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        fill_uniform(pred, B * C, &rng, -3.0f, 0.5f);
        loss_case lc = {cases[k].kind, pred, B, C, labels, cases[k].targets};
        double v = 0.0;
        ln_error err = {LN_OK, ""};
        ln_status st = ln_loss(lc.kind, pred, B, C, labels, lc.targets, &v, grad, &err);
        if (st != LN_OK) {
            tap_checkd(t, 0, cases[k].desc, "ln_loss failed: %s", err.msg);
            continue;
        }
        report_gradcheck(t, cases[k].desc, gradcheck(loss_objective, &lc, pred, grad, B * C),
                         B * C);
    }
}

static void test_loss_values(tap *t)
{
    char detail[200] = "";
    double v = 0.0;
    ln_error err = {LN_OK, ""};

    /* NLL: -(-0.5 + -0.1) / 2 = 0.3; gradient -1/2 at the labels. */
    const float logp[6] = {-0.5f, -1.0f, -2.0f, -3.0f, -0.1f, -4.0f};
    const int32_t lab2[2] = {0, 1};
    float g[6];
    ln_status st = ln_loss(LN_LOSS_NLL, logp, 2, 3, lab2, NULL, &v, g, &err);
    const double gn[6] = {-0.5, 0, 0, 0, -0.5, 0};
    tap_checkd(t, st == LN_OK && close_to(v, 0.3, 1e-6, 1e-7) && all_close(g, gn, 6, 0, 0, detail, sizeof detail),
               "nll loss: value and gradient on hand numbers", "status %d loss %.9g %s", (int)st, v,
               detail);

    /* Cross-entropy on equal scores: log 2 per sample; gradient (0.5 - onehot) / 2. */
    const float eq[4] = {0, 0, 1, 1};
    st = ln_loss(LN_LOSS_CROSS_ENTROPY, eq, 2, 2, lab2, NULL, &v, g, &err);
    const double gc[4] = {-0.25, 0.25, 0.25, -0.25};
    tap_checkd(t, st == LN_OK && close_to(v, log(2.0), 1e-9, 0) && all_close(g, gc, 4, 1e-7, 0, detail, sizeof detail),
               "cross-entropy loss: value and gradient on hand numbers", "loss %.9g %s", v, detail);
    const float big[2] = {1000.0f, 0.0f};
    st = ln_loss(LN_LOSS_CROSS_ENTROPY, big, 1, 2, lab2, NULL, &v, g, &err);
    tap_checkd(t, st == LN_OK && isfinite(v) && v >= 0.0 && v < 1e-300 && g[0] == 0.0f && g[1] == 0.0f,
               "cross-entropy loss: stable on a score of 1000", "loss %g grad %g %g", v, (double)g[0],
               (double)g[1]);

    /* MSE with targets: diffs 1, 0, -2, 0 -> 5/4; gradient 2*diff/4. */
    const float pm[4] = {1, 2, 3, 4}, tm[4] = {0, 2, 5, 4};
    st = ln_loss(LN_LOSS_MSE, pm, 2, 2, NULL, tm, &v, g, &err);
    const double gm[4] = {0.5, 0, -1, 0};
    tap_checkd(t, st == LN_OK && close_to(v, 1.25, 1e-12, 0) && all_close(g, gm, 4, 0, 0, detail, sizeof detail),
               "mse loss (targets): value and gradient on hand numbers, labels unused", "loss %.9g %s",
               v, detail);
    /* MSE vs one-hot: diffs -0.5,0,0 and 0,-1,1 -> 2.25/6 = 0.375. */
    const float po[6] = {0.5f, 0, 0, 0, 0, 1};
    st = ln_loss(LN_LOSS_MSE, po, 2, 3, lab2, NULL, &v, g, &err);
    const double go[6] = {-1.0 / 6, 0, 0, 0, -2.0 / 6, 2.0 / 6};
    tap_checkd(t, st == LN_OK && close_to(v, 0.375, 1e-12, 0) && all_close(g, go, 6, 1e-7, 0, detail, sizeof detail),
               "mse loss (one-hot labels): value and gradient on hand numbers", "loss %.9g %s", v,
               detail);

    /* NaN in pred: a NaN loss, not an error. */
    const float pn[2] = {NAN, 0.0f};
    int nan_ok = 1;
    for (int k = 0; k < 3; k++) {
        st = ln_loss((ln_loss_kind)k, pn, 1, 2, lab2, NULL, &v, g, &err);
        if (st != LN_OK || !isnan(v)) nan_ok = 0;
    }
    tap_checkd(t, nan_ok, "losses: NaN in pred gives a NaN loss and LN_OK", NULL);

    tap_checkd(t,
               strcmp(ln_loss_name(LN_LOSS_NLL), "nll") == 0 &&
               strcmp(ln_loss_name(LN_LOSS_CROSS_ENTROPY), "cross_entropy") == 0 &&
               strcmp(ln_loss_name(LN_LOSS_MSE), "mse") == 0,
               "ln_loss_name: nll, cross_entropy, mse", NULL);
}

static void test_loss_errors(tap *t)
{
    const float pred[6] = {0};
    float g[6];
    for (int i = 0; i < 6; i++) g[i] = 42.0f;
    double v = 123.0;
    ln_error err = {LN_OK, ""};

    const int32_t bad[2] = {1, 7};
    ln_status st = ln_loss(LN_LOSS_NLL, pred, 2, 3, bad, NULL, &v, g, &err);
    tap_checkd(t,
               st == LN_EINVAL && strstr(err.msg, "sample 1") && strstr(err.msg, "7") &&
               strstr(err.msg, "[0, 3)") && v == 123.0 && g[0] == 42.0f,
           "ln_loss: label out of range names sample, label and range, writes nothing",
           "status %d, msg '%s'", (int)st, err.msg);
    /* each rejected with LN_EINVAL and a message that names what is wrong ("": any) */
    const int32_t neg[1] = {-1}, ok[2] = {0, 1};
    const struct {
        const char *desc;
        ln_loss_kind kind;
        const float *pred;
        int batch, classes;
        const int32_t *labels;
        const char *names;
    } rejected[] = {
        {"ln_loss: negative label rejected", LN_LOSS_CROSS_ENTROPY, pred, 1, 3, neg, "-1"},
        {"ln_loss: mse without targets checks the labels", LN_LOSS_MSE, pred, 1, 3, neg, ""},
        {"ln_loss: batch 0 rejected", LN_LOSS_NLL, pred, 0, 3, ok, "batch"},
        {"ln_loss: classes 0 rejected", LN_LOSS_NLL, pred, 2, 0, ok, "classes"},
        {"ln_loss: NULL pred rejected", LN_LOSS_NLL, NULL, 2, 3, ok, "pred"},
        {"ln_loss: NULL labels rejected for nll", LN_LOSS_NLL, pred, 2, 3, NULL, "labels"},
        {"ln_loss: unknown kind rejected", (ln_loss_kind)9, pred, 2, 3, ok, ""},
    };
    for (size_t k = 0; k < sizeof rejected / sizeof rejected[0]; k++) {
        st = ln_loss(rejected[k].kind, rejected[k].pred, rejected[k].batch, rejected[k].classes,
                     rejected[k].labels, NULL, &v, g, &err);
        tap_checkd(t, st == LN_EINVAL && strstr(err.msg, rejected[k].names), rejected[k].desc,
                   "status %d, msg '%s'", (int)st, err.msg);
    }
}

/* ----------------------------------------------------------- optimizers */

/* Two steps of `spec` from p = [1, -2] with gradients g1 = [0.5, 0.25] then
 * g2 = [1, -0.5]; the parameters after each step go to after1/after2. */
static int run_two_steps(const ln_optim_spec *spec, float after1[2], float after2[2],
                         char *detail, size_t size)
{
    ln_optim opt;
    ln_error err = {LN_OK, ""};
    if (ln_optim_init(&opt, spec, 2, &err) != LN_OK) {
        snprintf(detail, size, "init failed: %.200s", err.msg);
        return 0;
    }
    float p[2] = {1.0f, -2.0f};
    const float g1[2] = {0.5f, 0.25f}, g2[2] = {1.0f, -0.5f};
    ln_optim_step(&opt, p, g1);
    memcpy(after1, p, sizeof p);
    ln_optim_step(&opt, p, g2);
    memcpy(after2, p, sizeof p);
    const int64_t steps = opt.steps;
    ln_optim_release(&opt);
    if (steps != 2) {
        snprintf(detail, size, "steps = %lld after two steps", (long long)steps);
        return 0;
    }
    return 1;
}

static void check_steps(tap *t, const char *desc, const ln_optim_spec *spec, const double w1[2],
                        const double w2[2])
{
    char detail[300] = "";
    float a1[2], a2[2];
    int ok = run_two_steps(spec, a1, a2, detail, sizeof detail);
    if (ok && !all_close(a1, w1, 2, 1e-6, 1e-7, detail, sizeof detail)) {
        ok = 0;
        strncat(detail, " (step 1)", sizeof detail - strlen(detail) - 1);
    }
    if (ok && !all_close(a2, w2, 2, 1e-6, 1e-7, detail, sizeof detail)) {
        ok = 0;
        strncat(detail, " (step 2)", sizeof detail - strlen(detail) - 1);
    }
    tap_checkd(t, ok, desc, "%s", detail);
}

/* spec with weight decay, dampening and Nesterov set */
static ln_optim_spec tuned(ln_optim_spec spec, double weight_decay, double dampening, int nesterov)
{
    spec.weight_decay = weight_decay;
    spec.dampening = dampening;
    spec.nesterov = nesterov;
    return spec;
}

typedef struct {
    const char *desc;
    ln_optim_spec spec;
    double step1[2], step2[2]; /* the parameters after each step */
} optim_case;

static void test_optim_steps(tap *t)
{
    const optim_case cases[] = {
        /* Plain SGD, lr 0.1: p -= 0.1 g.
         *   step 1: [1 - 0.05, -2 - 0.025] = [0.95, -2.025]
         *   step 2: [0.95 - 0.1, -2.025 + 0.05] = [0.85, -1.975] */
        {"sgd: plain steps", ln_sgd_spec(0.1, 0.0), {0.95, -2.025}, {0.85, -1.975}},

        /* Weight decay 0.1: g += 0.1 p.
         *   step 1: g = [0.5 + 0.1, 0.25 - 0.2] = [0.6, 0.05] -> p = [0.94, -2.005]
         *   step 2: g = [1 + 0.094, -0.5 - 0.2005] = [1.094, -0.7005]
         *           -> p = [0.94 - 0.1094, -2.005 + 0.07005] = [0.8306, -1.93495] */
        {"sgd: weight decay", tuned(ln_sgd_spec(0.1, 0.0), 0.1, 0.0, 0), {0.94, -2.005},
         {0.8306, -1.93495}},

        /* Momentum 0.9: the first step copies the gradient into the buffer.
         *   step 1: buf = [0.5, 0.25] -> p = [0.95, -2.025]
         *   step 2: buf = 0.9 [0.5, 0.25] + [1, -0.5] = [1.45, -0.275]
         *           -> p = [0.95 - 0.145, -2.025 + 0.0275] = [0.805, -1.9975] */
        {"sgd: momentum (first step copies the gradient)", ln_sgd_spec(0.1, 0.9), {0.95, -2.025},
         {0.805, -1.9975}},

        /* Momentum 0.9, dampening 0.5: no dampening on the first step.
         *   step 1: buf = [0.5, 0.25] -> p = [0.95, -2.025]
         *   step 2: buf = 0.9 [0.5, 0.25] + 0.5 [1, -0.5] = [0.95, -0.025]
         *           -> p = [0.95 - 0.095, -2.025 + 0.0025] = [0.855, -2.0225] */
        {"sgd: momentum with dampening", tuned(ln_sgd_spec(0.1, 0.9), 0.0, 0.5, 0), {0.95, -2.025},
         {0.855, -2.0225}},

        /* Nesterov, momentum 0.9: g' = g + 0.9 buf.
         *   step 1: buf = [0.5, 0.25], g' = [0.95, 0.475] -> p = [0.905, -2.0475]
         *   step 2: buf = [1.45, -0.275], g' = [1 + 1.305, -0.5 - 0.2475] = [2.305, -0.7475]
         *           -> p = [0.905 - 0.2305, -2.0475 + 0.07475] = [0.6745, -1.97275] */
        {"sgd: nesterov", tuned(ln_sgd_spec(0.1, 0.9), 0.0, 0.0, 1), {0.905, -2.0475},
         {0.6745, -1.97275}},

        /* Adam, lr 0.1, betas (0.9, 0.999), eps 1e-8, in double:
         *   step 1: m = 0.1 g = [0.05, 0.025]; v = 0.001 g^2 = [2.5e-4, 6.25e-5];
         *     bc1 = 0.1, bc2 = 0.001, step_size = 0.1 / 0.1 = 1;
         *     denom = sqrt(v) / sqrt(0.001) + 1e-8 = [0.50000001, 0.25000001];
         *     p = [1 - 0.05/0.50000001, -2 - 0.025/0.25000001] = [0.900000002, -2.099999996]
         *   step 2: m = 0.9 m + 0.1 g2 = [0.145, -0.0275];
         *     v = 0.999 v + 0.001 g2^2 = [0.00124975, 0.0003124375];
         *     bc1 = 1 - 0.81 = 0.19, bc2 = 1 - 0.998001 = 0.001999;
         *     denom = sqrt(v) / sqrt(0.001999) + 1e-8 = [0.790688060875, 0.395344035438];
         *     p -= (0.1 / 0.19) m / denom
         *       -> [0.8034818006385094, -2.0633896442224535] */
        {"adam: two steps", ln_adam_spec(LN_OPT_ADAM, 0.1), {0.900000002, -2.099999996},
         {0.8034818006385094, -2.0633896442224535}},

        /* Adam with L2 weight decay 0.1 (added to the gradient):
         *   step 1: g = [0.6, 0.05]; m = [0.06, 0.005]; v = [3.6e-4, 2.5e-6];
         *     denom = [0.60000001, 0.05000001]; p = [1 - 0.06/0.60000001, -2 - 0.005/0.05000001]
         *       = [0.9000000016666666, -2.0999999800000042]
         *   step 2: g = [1 + 0.09, -0.5 - 0.21] = [1.09, -0.71] (from the step-1 p);
         *     m = [0.163, -0.0665]; v = [0.00154774, 0.0005065975];
         *     denom = [0.87991882941, 0.50341381723]
         *       -> p = [0.8025029703202308, -2.0304746735885457] */
        {"adam: L2 weight decay", tuned(ln_adam_spec(LN_OPT_ADAM, 0.1), 0.1, 0.0, 0),
         {0.9000000016666666, -2.0999999800000042}, {0.8025029703202308, -2.0304746735885457}},

        /* AdamW, lr 0.1, weight_decay 0.01 (its default): p *= 1 - 0.001 first, then the
         * Adam update from the undecayed gradient (same m, v, denom as plain Adam):
         *   step 1: p = [0.999 - 0.099999998, -1.998 - 0.099999996] = [0.899000002, -2.097999996]
         *   step 2: p = 0.999 p - (0.1/0.19) m / denom
         *       -> [0.8015828006365093, -2.0592916442264535] */
        {"adamw: two steps with decoupled weight decay", ln_adam_spec(LN_OPT_ADAMW, 0.1),
         {0.899000002, -2.097999996}, {0.8015828006365093, -2.0592916442264535}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        check_steps(t, cases[k].desc, &cases[k].spec, cases[k].step1, cases[k].step2);
}

static void test_optim_lifecycle(tap *t)
{
    ln_error err = {LN_OK, ""};
    ln_optim opt;

    /* A reset forgets the momentum: the next step copies the gradient again. */
    ln_optim_spec s = ln_sgd_spec(0.1, 0.9);
    ln_status st = ln_optim_init(&opt, &s, 2, &err);
    float p[2] = {1.0f, -2.0f};
    const float g1[2] = {0.5f, 0.25f};
    ln_optim_step(&opt, p, g1);
    ln_optim_step(&opt, p, g1);
    ln_optim_reset(&opt);
    const int zeroed = opt.state && opt.state[0] == 0.0f && opt.state[1] == 0.0f && opt.steps == 0;
    p[0] = 1.0f;
    p[1] = -2.0f;
    ln_optim_step(&opt, p, g1);
    tap_checkd(t, st == LN_OK && zeroed && p[0] == 1.0f - 0.1f * 0.5f && p[1] == -2.0f - 0.1f * 0.25f,
               "optim: reset zeroes the state and the step count", "status %d, p = %g %g", (int)st,
               (double)p[0], (double)p[1]);
    ln_optim_release(&opt);
    ln_optim_release(&opt);
    tap_checkd(t, opt.state == NULL && opt.count == 0, "optim: release is idempotent", NULL);

    s = ln_adam_spec(LN_OPT_ADAM, 0.001);
    st = ln_optim_init(&opt, &s, 1000, &err);
    int zero = st == LN_OK && opt.state != NULL;
    for (int i = 0; zero && i < 2000; i++)
        if (opt.state[i] != 0.0f) zero = 0;
    tap_checkd(t, zero, "optim: adam state is 2*count zeroed floats", "status %d", (int)st);
    ln_optim_release(&opt);

    s = ln_sgd_spec(-1.0, 0.0);
    st = ln_optim_init(&opt, &s, 10, &err);
    tap_checkd(t, st == LN_EINVAL && opt.state == NULL, "optim: init rejects a bad spec",
               "status %d", (int)st);
    ln_optim_release(&opt);

    s = ln_sgd_spec(0.1, 0.0);
    st = ln_optim_init(&opt, &s, -1, &err);
    tap_checkd(t, st == LN_EINVAL, "optim: init rejects a negative count", "status %d", (int)st);
    ln_optim_release(&opt);

    ln_alloc_fail_after(0);
    s = ln_adam_spec(LN_OPT_ADAM, 0.1);
    st = ln_optim_init(&opt, &s, 10, &err);
    ln_alloc_fail_after(-1);
    tap_checkd(t, st == LN_ENOMEM && opt.state == NULL, "optim: allocation failure is LN_ENOMEM",
               "status %d", (int)st);
    ln_optim_release(&opt);

    ln_optim_spec a = ln_adam_spec(LN_OPT_ADAM, 0.001), w = ln_adam_spec(LN_OPT_ADAMW, 0.001),
                  sg = ln_sgd_spec(0.01, 0.9);
    tap_checkd(t,
               a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8 && a.weight_decay == 0.0 &&
               w.weight_decay == 0.01 && w.kind == LN_OPT_ADAMW && sg.dampening == 0.0 &&
               sg.nesterov == 0 && sg.weight_decay == 0.0 && sg.momentum == 0.9,
               "optim: spec constructors fill PyTorch's defaults", NULL);
    tap_checkd(t,
               strcmp(ln_optim_name(LN_OPT_SGD), "sgd") == 0 &&
               strcmp(ln_optim_name(LN_OPT_ADAM), "adam") == 0 &&
               strcmp(ln_optim_name(LN_OPT_ADAMW), "adamw") == 0,
               "ln_optim_name: sgd, adam, adamw", NULL);
}

static void expect_rejected(tap *t, const ln_optim_spec *s, const char *needle, const char *desc)
{
    ln_error err = {LN_OK, ""};
    ln_status st = ln_optim_spec_check(s, &err);
    tap_checkd(t, st == LN_EINVAL && strstr(err.msg, needle) != NULL, desc,
               "status %d, msg '%s' (wanted it to mention '%s')", (int)st, err.msg, needle);
}

static void test_optim_check(tap *t)
{
    ln_error err = {LN_OK, ""};
    ln_optim_spec s;
    int valid = 1;
    const ln_optim_spec good[] = {ln_sgd_spec(0.01, 0.0), ln_sgd_spec(0.01, 0.9),
                                  ln_adam_spec(LN_OPT_ADAM, 1e-3),
                                  ln_adam_spec(LN_OPT_ADAMW, 1e-3)};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (ln_optim_spec_check(&good[i], &err) != LN_OK) valid = 0;
    s = ln_sgd_spec(0.01, 0.9);
    s.nesterov = 1;
    if (ln_optim_spec_check(&s, &err) != LN_OK) valid = 0;
    tap_checkd(t, valid, "optim check: defaults and nesterov with momentum pass", "%s", err.msg);

    /* one number of a valid spec set to a bad value: rejected, the message naming it */
    const struct {
        ln_optim_spec valid;
        size_t field; /* offset of a double in ln_optim_spec */
        double bad;
        const char *names, *desc;
    } bad_numbers[] = {
        {ln_sgd_spec(0.1, 0.0), offsetof(ln_optim_spec, lr), -1.0, "sgd: lr must be > 0",
         "optim check: sgd lr -1 rejected naming lr"},
        {ln_sgd_spec(0.1, 0.0), offsetof(ln_optim_spec, lr), -1.0, "(got -1)",
         "optim check: message gives the bad value"},
        {ln_sgd_spec(0.1, 0.0), offsetof(ln_optim_spec, lr), 0.0, "lr", "optim check: lr 0 rejected"},
        {ln_sgd_spec(0.1, 0.0), offsetof(ln_optim_spec, lr), NAN, "lr", "optim check: lr NaN rejected"},
        {ln_sgd_spec(0.1, 0.0), offsetof(ln_optim_spec, lr), INFINITY, "lr", "optim check: lr inf rejected"},
        {ln_sgd_spec(0.1, 0.0), offsetof(ln_optim_spec, momentum), -0.5, "momentum",
         "optim check: negative momentum rejected"},
        {ln_sgd_spec(0.1, 0.9), offsetof(ln_optim_spec, dampening), NAN, "dampening",
         "optim check: NaN dampening rejected"},
        {ln_sgd_spec(0.1, 0.0), offsetof(ln_optim_spec, weight_decay), -1.0, "weight_decay",
         "optim check: negative weight_decay rejected"},
        {ln_adam_spec(LN_OPT_ADAM, 0.1), offsetof(ln_optim_spec, beta1), 1.0, "beta1",
         "optim check: beta1 = 1 rejected"},
        {ln_adam_spec(LN_OPT_ADAM, 0.1), offsetof(ln_optim_spec, beta2), -0.1, "beta2",
         "optim check: negative beta2 rejected"},
        {ln_adam_spec(LN_OPT_ADAMW, 0.1), offsetof(ln_optim_spec, eps), 0.0, "adamw: eps",
         "optim check: eps 0 rejected"},
        {ln_adam_spec(LN_OPT_ADAMW, 0.1), offsetof(ln_optim_spec, lr), 0.0, "adamw: lr",
         "optim check: adamw lr 0 rejected"},
        {ln_adam_spec(LN_OPT_ADAMW, 0.1), offsetof(ln_optim_spec, weight_decay), NAN, "weight_decay",
         "optim check: NaN weight_decay rejected"},
    };
    for (size_t k = 0; k < sizeof bad_numbers / sizeof bad_numbers[0]; k++) {
        s = bad_numbers[k].valid;
        memcpy((char *)&s + bad_numbers[k].field, &bad_numbers[k].bad, sizeof(double));
        expect_rejected(t, &s, bad_numbers[k].names, bad_numbers[k].desc);
    }
    s = ln_sgd_spec(0.1, 0.0);
    s.nesterov = 1;
    expect_rejected(t, &s, "nesterov", "optim check: nesterov without momentum rejected");
    s = ln_sgd_spec(0.1, 0.9);
    s.nesterov = 1;
    s.dampening = 0.1;
    expect_rejected(t, &s, "nesterov", "optim check: nesterov with dampening rejected");
    s = ln_sgd_spec(0.1, 0.0);
    s.kind = (ln_optim_kind)7;
    expect_rejected(t, &s, "kind", "optim check: unknown kind rejected");
}

/* ------------------------------------------------------------ model file kind tags */

/* The kind numbers model files hold. Append-only: a kind's tag never changes and is
 * never reused, whatever the order of ln_layer_kind; a new kind adds its line here. */
static const struct {
    const char *name;
    uint32_t tag;
} file_tags[] = {
    {"conv2d", 0},  {"maxpool2d", 1}, {"avgpool2d", 2},    {"relu", 3},
    {"tanh", 4},    {"sigmoid", 5},   {"linear", 6},       {"dropout", 7},
    {"dropout2d", 8}, {"flatten", 9}, {"log_softmax", 10}, {"batchnorm2d", 11},
    {"batchnorm1d", 12}, {"leaky_relu", 13},
};

static uint32_t le32_at(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void test_kind_tags(tap *t)
{
    const int n = (int)(sizeof file_tags / sizeof file_tags[0]);
    tap_checkd(t, ln_layer_kind_count() == n, "every layer kind has a pinned model file tag",
               "%d kinds, %d pinned: pin the new kind's tag in file_tags[]", ln_layer_kind_count(), n);
    for (int i = 0; i < n; i++) {
        char desc[96];
        snprintf(desc, sizeof desc, "%s keeps model file tag %u", file_tags[i].name,
                 (unsigned)file_tags[i].tag);
        const int k = ln_layer_kind_from_name(file_tags[i].name);
        const ln_layer_kind_info *info = k < 0 ? NULL : ln_layer_kind_info_of((ln_layer_kind)k);
        tap_checkd(t, info && info->file_tag == file_tags[i].tag && !strcmp(info->name, file_tags[i].name),
                   desc, "kind %d, tag %d", k, info ? (int)info->file_tag : -1);
    }
    tap_checkd(t, ln_layer_kind_from_name("no_such_kind") == -1 && ln_layer_kind_from_name(NULL) == -1 &&
                  ln_layer_kind_info_of(LN_LAYER_KIND_COUNT) == NULL,
               "unknown kind names and numbers are refused", NULL);

    /* The file itself: a saved net's layer records start with those tags. */
    ln_layer_spec specs[] = {ln_conv2d(1, 2, 3, 1, 0), ln_maxpool2d(2, 0),
                             ln_simple_layer(LN_TANH), ln_simple_layer(LN_FLATTEN),
                             ln_linear(8, 3), ln_simple_layer(LN_LOG_SOFTMAX)};
    const int count = (int)(sizeof specs / sizeof specs[0]);
    const uint32_t want[] = {0, 1, 4, 9, 6, 10};
    ln_net *net = NULL;
    ln_error err;
    char path[] = "/tmp/lunet_tags_XXXXXX";
    int fd = mkstemp(path);
    unsigned char buf[512];
    size_t got = 0;
    if (fd >= 0 && !ln_net_create(&net, specs, count, ln_shape_make(3, (int64_t[]){1, 6, 6}),
                                  NULL, &err) &&
        !ln_net_save(net, path, &err)) {
        FILE *f = fopen(path, "rb");
        if (f) {
            got = fread(buf, 1, sizeof buf, f);
            fclose(f);
        }
    }
    const size_t header = 8 + 4 + 4 + 4 + 3 * 8, record = 4 + 8 * 4 + 3 * 4;
    int ok = got >= header + count * record;
    for (int i = 0; ok && i < count; i++) ok = le32_at(buf + header + i * record) == want[i];
    tap_checkd(t, ok, "a saved model file holds the pinned kind tags", "read %zu bytes", got);
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    ln_net_free(net);
}

/* The loss and optimizer tables: names both ways, and the defaults the bindings show. */
static void test_loss_optim_tables(tap *t)
{
    static const char *const losses[] = {"nll", "cross_entropy", "mse"};
    int ok = ln_loss_kind_count() == 3;
    for (int k = 0; k < 3; k++)
        ok = ok && ln_loss_kind_from_name(losses[k]) == k && !strcmp(ln_loss_name(k), losses[k]);
    tap_checkd(t, ok && ln_loss_kind_from_name("l1") == -1 && !strcmp(ln_loss_name(3), "unknown"),
               "loss names both ways", NULL);
    static const char *const optims[] = {"sgd", "adam", "adamw"};
    ok = ln_optim_kind_count() == 3;
    for (int k = 0; k < 3; k++)
        ok = ok && ln_optim_kind_from_name(optims[k]) == k && !strcmp(ln_optim_name(k), optims[k]);
    tap_checkd(t, ok && ln_optim_kind_from_name("rmsprop") == -1, "optimizer names both ways", NULL);
    const ln_optim_spec sgd = ln_optim_defaults(LN_OPT_SGD), adam = ln_optim_defaults(LN_OPT_ADAM),
                        adamw = ln_optim_defaults(LN_OPT_ADAMW);
    tap_checkd(t, sgd.lr == 0.01 && sgd.momentum == 0 && sgd.dampening == 0 && !sgd.nesterov &&
                  sgd.weight_decay == 0,
               "sgd defaults: lr 0.01, momentum 0, dampening 0, nesterov off, weight_decay 0", NULL);
    tap_checkd(t, adam.lr == 1e-3 && adam.beta1 == 0.9 && adam.beta2 == 0.999 && adam.eps == 1e-8 &&
                  adam.weight_decay == 0 && adamw.weight_decay == 0.01 && adamw.lr == 1e-3 &&
                  adamw.beta1 == 0.9 && adamw.beta2 == 0.999 && adamw.eps == 1e-8,
               "adam and adamw defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0 / 0.01",
               NULL);
}

int main(void)
{
    tap t = {0, 0};
    test_selfcheck(&t);
    test_log_softmax(&t);
    test_batchnorm_grads(&t);
    test_batchnorm_values(&t);
    test_dropout(&t);
    test_dropout_parts(&t);
    test_loss_grads(&t);
    test_loss_values(&t);
    test_loss_errors(&t);
    test_optim_steps(&t);
    test_optim_lifecycle(&t);
    test_optim_check(&t);
    test_kind_tags(&t);
    test_loss_optim_tables(&t);
    return tap_done(&t);
}
