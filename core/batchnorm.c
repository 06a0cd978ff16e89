/* batchnorm.c - BatchNorm2d and BatchNorm1d (PyTorch's nn.BatchNorm2d/1d, affine,
 * track_running_stats).
 *
 * Shapes (per sample): BatchNorm2d: C x H x W; BatchNorm1d: F (or F x L). Both are
 * read as C = in.dim[0] channels of S = in_n / C contiguous values, and statistics
 * are taken per channel over the batch and those S values (m = batch * S of them).
 * Parameters: weight (gamma) C, bias (beta) C; buffers running_mean C, running_var C;
 * saved: mean[C] then invstd[C] of the last training forward, used by backward, then
 * mean(dy)[C] and mean(dy * xhat)[C] of a backward that deferred its input gradient,
 * then (batchnorm2d) a fused pooling's unpool map (below).
 *
 * Training: y = (x - mean) * invstd * gamma + beta with the biased batch variance;
 * the running stats move by `momentum` towards the batch mean and the unbiased
 * variance (m/(m-1)), as PyTorch. Eval: the running stats take the batch's place.
 * Sums are kept in double: a channel can hold hundreds of thousands of values.
 */
#include "layer.h"
#include "simd.h"
#include "workers.h"

#include <math.h>

/* Samples per call of the statistics' and the gradient sums' kernels. */
#define GRAD_RUNS 8

typedef struct {
    int64_t c, s;    /* channels, values per channel per sample */
    int64_t stride;  /* values per sample */
    int64_t m;       /* values per channel in the batch */
} bn_dims;

static bn_dims dims_of(const ln_layer *l, const ln_ctx *ctx)
{
    bn_dims d;
    d.c = l->in.ndim >= 1 && l->in.dim[0] > 0 ? l->in.dim[0] : l->in_n;
    d.s = d.c > 0 ? l->in_n / d.c : 0;
    d.stride = l->in_n;
    d.m = (int64_t)ctx->batch * d.s;
    return d;
}

static float gamma_of(const ln_layer *l, int64_t c) { return l->weight ? l->weight[c] : 1.0f; }
static float beta_of(const ln_layer *l, int64_t c) { return l->bias ? l->bias[c] : 0.0f; }

/* y = (x - mean) * alpha + beta over one channel of the whole batch. */
static void normalise_channel(const bn_dims *d, int64_t c, const float *x, float *y,
                              float mean, float alpha, float beta, int batch)
{
    for (int n = 0; n < batch; n++) {
        const float *xs = x + (int64_t)n * d->stride + c * d->s;
        float *ys = y + (int64_t)n * d->stride + c * d->s;
        for (int64_t i = 0; i < d->s; i++) ys[i] = (xs[i] - mean) * alpha + beta;
    }
}

void batchnorm_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    batchnorm_forward_part(l, x, y, ctx, 0, 1);
}

void batchnorm_backward(ln_layer *l, const float *x, const float *dy, float *dx,
                        const ln_ctx *ctx)
{
    batchnorm_backward_part(l, x, dy, dx, ctx, 0, 1);
}

/* From a channel's batch mean and sum of squared deviations: the saved mean and invstd
 * (for backward) and the running statistics. */
static void store_stats(ln_layer *l, const bn_dims *d, int64_t c, double mean, double sq)
{
    const double momentum = (double)l->spec.momentum;
    const double var = d->m > 0 ? sq / (double)d->m : 0.0;
    const double invstd = 1.0 / sqrt(var + (double)l->spec.eps);
    /* PyTorch refuses a single value per channel in training; the net is expected
     * to reject it too. Should one arrive, the biased variance (0) keeps the running
     * variance finite instead of dividing by zero. */
    const double unbiased = d->m > 1 ? sq / (double)(d->m - 1) : var;
    l->running_mean[c] = (float)((1.0 - momentum) * l->running_mean[c] + momentum * mean);
    l->running_var[c] = (float)((1.0 - momentum) * l->running_var[c] + momentum * unbiased);
    l->saved[c] = (float)mean;
    l->saved[d->c + c] = (float)invstd;
}

/* ---- reference twin: channel by channel, element by element, sums in double ---- */

static void forward_reference(ln_layer *l, const float *x, float *y, const ln_ctx *ctx,
                              int64_t c0, int64_t c1)
{
    const bn_dims d = dims_of(l, ctx);
    const double eps = (double)l->spec.eps;
    if (!ctx->training) {
        for (int64_t c = c0; c < c1; c++) {
            const double invstd = 1.0 / sqrt((double)l->running_var[c] + eps);
            normalise_channel(&d, c, x, y, l->running_mean[c], (float)(invstd * gamma_of(l, c)),
                              beta_of(l, c), ctx->batch);
        }
        return;
    }

    float *saved_mean = l->saved, *saved_invstd = l->saved + d.c;
    for (int64_t c = c0; c < c1; c++) {
        /* Two passes (mean, then squared deviations) rather than sum and sum of
         * squares, which cancels badly when the mean is large against the spread. */
        double sum = 0.0;
        for (int n = 0; n < ctx->batch; n++) {
            const float *xs = x + (int64_t)n * d.stride + c * d.s;
            for (int64_t i = 0; i < d.s; i++) sum += xs[i];
        }
        const double mean = d.m > 0 ? sum / (double)d.m : 0.0;
        double sq = 0.0;
        for (int n = 0; n < ctx->batch; n++) {
            const float *xs = x + (int64_t)n * d.stride + c * d.s;
            for (int64_t i = 0; i < d.s; i++) {
                const double dev = (double)xs[i] - mean;
                sq += dev * dev;
            }
        }
        store_stats(l, &d, c, mean, sq);
        normalise_channel(&d, c, x, y, saved_mean[c],
                          (float)((double)saved_invstd[c] * gamma_of(l, c)), beta_of(l, c),
                          ctx->batch);
    }
}

/* The statistics backward differentiates through: the training forward's saved batch
 * mean and invstd, or the running ones in eval mode. */
static void backward_stats(const ln_layer *l, const ln_ctx *ctx, const bn_dims *d, int64_t c,
                           float *mean, float *invstd)
{
    if (ctx->training) {
        *mean = l->saved[c];
        *invstd = l->saved[d->c + c];
    } else {
        *mean = l->running_mean[c];
        *invstd = (float)(1.0 / sqrt((double)l->running_var[c] + (double)l->spec.eps));
    }
}

static void backward_reference(ln_layer *l, const float *x, const float *dy, float *dx,
                               const ln_ctx *ctx, int64_t c0, int64_t c1)
{
    const bn_dims d = dims_of(l, ctx);
    for (int64_t c = c0; c < c1; c++) {
        float mean, invstd;
        backward_stats(l, ctx, &d, c, &mean, &invstd);
        /* dbeta = sum(dy), dgamma = sum(dy * xhat) over the channel. */
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int n = 0; n < ctx->batch; n++) {
            const float *xs = x + (int64_t)n * d.stride + c * d.s;
            const float *dys = dy + (int64_t)n * d.stride + c * d.s;
            for (int64_t i = 0; i < d.s; i++) {
                sum_dy += dys[i];
                sum_dy_xhat += (double)dys[i] * (double)((xs[i] - mean) * invstd);
            }
        }
        if (l->dweight) l->dweight[c] += (float)sum_dy_xhat;
        if (l->dbias) l->dbias[c] += (float)sum_dy;
        if (!dx) continue;

        const float k = invstd * gamma_of(l, c);
        if (!ctx->training) {
            /* The running stats are constants: the layer is affine in x. */
            for (int n = 0; n < ctx->batch; n++) {
                const float *dys = dy + (int64_t)n * d.stride + c * d.s;
                float *dxs = dx + (int64_t)n * d.stride + c * d.s;
                for (int64_t i = 0; i < d.s; i++) dxs[i] = dys[i] * k;
            }
            continue;
        }
        /* The batch mean and variance depend on every x of the channel:
         * dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy*xhat)). */
        const float mean_dy = d.m > 0 ? (float)(sum_dy / (double)d.m) : 0.0f;
        const float mean_dy_xhat = d.m > 0 ? (float)(sum_dy_xhat / (double)d.m) : 0.0f;
        for (int n = 0; n < ctx->batch; n++) {
            const float *xs = x + (int64_t)n * d.stride + c * d.s;
            const float *dys = dy + (int64_t)n * d.stride + c * d.s;
            float *dxs = dx + (int64_t)n * d.stride + c * d.s;
            for (int64_t i = 0; i < d.s; i++) {
                const float xhat = (xs[i] - mean) * invstd;
                dxs[i] = k * (dys[i] - mean_dy - xhat * mean_dy_xhat);
            }
        }
    }
}

/* ---- fast path: the same formulas; each sample's run of S values of a channel is
 * summed in vector lanes (float) and that partial added to the channel's double sum;
 * the elementwise steps are the reference's operations in its order. ---- */

/* Runs shorter than this go to the reference, except runs of one value (batchnorm1d on
 * N x F), which take the bn_feat kernels (forward_features, backward_features). */
#define FAST_MIN_RUN 8

/* The fast forward's y = (x - mean) * alpha + beta of channel c: the saved batch
 * statistics in training (after store_stats), the running ones in eval. Backward
 * recomputes a fused ReLU's mask from the same floats. */
static void affine_of(const ln_layer *l, const bn_dims *d, int64_t c, int training, float *mean, float *alpha)
{
    if (training) {
        *mean = l->saved[c];
        *alpha = (float)((double)l->saved[d->c + c] * gamma_of(l, c));
    } else {
        const double invstd = 1.0 / sqrt((double)l->running_var[c] + (double)l->spec.eps);
        *mean = l->running_mean[c];
        *alpha = (float)(invstd * gamma_of(l, c));
    }
}

static void forward_fast(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int64_t c0,
                         int64_t c1)
{
    const bn_dims d = dims_of(l, ctx);
    const ln_simd_kernels *K = ln_simd();
    for (int64_t c = c0; c < c1; c++) {
        if (ctx->training) {
            double sum = 0.0;
            /* each sample's run summed alone, added in sample order; the kernels take up
             * to GRAD_RUNS of them side by side */
            double part[GRAD_RUNS];
            for (int n0 = 0; n0 < ctx->batch; n0 += GRAD_RUNS) {
                const int runs = ctx->batch - n0 < GRAD_RUNS ? ctx->batch - n0 : GRAD_RUNS;
                K->bn_sums(d.s, runs, d.stride, x + n0 * d.stride + c * d.s, part);
                for (int r = 0; r < runs; r++) sum += part[r];
            }
            const double mean = d.m > 0 ? sum / (double)d.m : 0.0;
            double sq = 0.0;
            for (int n0 = 0; n0 < ctx->batch; n0 += GRAD_RUNS) {
                const int runs = ctx->batch - n0 < GRAD_RUNS ? ctx->batch - n0 : GRAD_RUNS;
                K->bn_sqdevs(d.s, runs, d.stride, x + n0 * d.stride + c * d.s, (float)mean, part);
                for (int r = 0; r < runs; r++) sq += part[r];
            }
            store_stats(l, &d, c, mean, sq);
        }
        float mean_f, alpha;
        affine_of(l, &d, c, ctx->training, &mean_f, &alpha);
        const float beta = beta_of(l, c);
        const int full_y = !l->pool_y || (l->act_y && l->act_kind != LN_RELU);
        const int64_t pn = l->pool_y ? ln_pooled_n(l) : 0, plane = pn / d.c;
        for (int n = 0; n < ctx->batch; n++) {
            /* with a fused pooling, only a fused tanh's or sigmoid's backward reads the
             * full output: otherwise the plane goes to scratch, pooled from there */
            float *yp = full_y ? y + n * d.stride + c * d.s : ctx->workspace;
            /* the next sample's outputs, asked for ahead, to be written: a channel's runs
             * are a sample's stride apart (the custom net's first layer: 3 KiB runs 49 KiB
             * apart), which the hardware prefetchers do not follow (the custom net's
             * pooled planes waited on their lines) */
            if (n + 1 < ctx->batch) {
                if (full_y) K->prefetch_write(y + (n + 1) * d.stride + c * d.s, (int64_t)sizeof(float) * d.s);
                if (l->pool_y)
                    K->prefetch_write(l->pool_y + (n + 1) * pn + c * plane, (int64_t)sizeof(float) * plane);
            }
            K->bn_affine(d.s, x + n * d.stride + c * d.s, yp, mean_f, alpha, beta,
                         l->act_y ? (int)l->act_kind : 0);
            /* a fused pooling: the plane just written, still in L1 */
            if (l->pool_y)
                K->avgpool2_fwd(1, (int)l->in.dim[1], (int)l->in.dim[2], yp, l->pool_y + n * pn + c * plane);
        }
    }
}

/* A fused pooling's backward (ln_layer.pool_y): dy is the pooling's output gradient;
 * the gradient of `runs` planes of channel c from sample n0 on, spread as the pooling
 * layer would spread it, into `to` (runs planes `stride` floats apart). */
static const float *unpooled_dy(const ln_layer *l, const bn_dims *d, const float *dy, int64_t c,
                                int n0, int runs, float *to, int64_t stride)
{
    const int64_t pn = ln_pooled_n(l), plane = pn / d->c;
    for (int r = 0; r < runs; r++)
        ln_simd()->avgpool2_bwd(1, (int)l->in.dim[1], (int)l->in.dim[2], dy + (n0 + r) * pn + c * plane,
                                to + r * stride);
    return to;
}

/* A channel's constants of the input gradient, from its forward's statistics. */
typedef struct {
    float mean, invstd, k; /* k = invstd * gamma */
    ln_bn_act act;         /* a fused activation's (its y: set per run) */
} grad_consts;

static grad_consts grad_consts_of(const ln_layer *l, const ln_ctx *ctx, const bn_dims *d, int64_t c)
{
    grad_consts g;
    backward_stats(l, ctx, d, c, &g.mean, &g.invstd);
    g.k = g.invstd * gamma_of(l, c);
    /* a fused activation (l->act_y): its derivative applies to dy; a ReLU's mask is
     * recomputed from x, tanh and sigmoid read their output */
    g.act = (ln_bn_act){(int)l->act_kind, 0.0f, beta_of(l, c), NULL};
    float act_mean; /* the same as mean */
    affine_of(l, d, c, ctx->training, &act_mean, &g.act.alpha);
    return g;
}

/* ---- a fused pooling's unpool map ----
 * The backward kernels read a fused 2x2 average pooling's gradient from its pooled planes
 * (bn_grad_sums' and bn_dx's `up`) instead of spreading it out first: for each vector of
 * VL places of an h x w plane, in the order the sums take them, the first pooled value
 * its lanes read and each lane's offset from it, so that a load or two and a permutation
 * give the vector (simd_impl.h's unpooled). It depends on the plane and the ISA alone:
 * the forward pass makes it (first thread), once for an ISA, after the 4C saved floats:
 * a head (magic, ISA, h, w) then the entries. Planes it cannot serve are spread as
 * before: odd sides (the last row or column gets 0), pooled planes smaller than the
 * ISA's unpool_window (the floats its kernels load), a vector's lanes reading values
 * that far apart or more (rows wider than 32 but for multiples of the lanes). */
#define UNPOOL_MAX_PLANE 4096
#define UNPOOL_HEAD 4
#define UNPOOL_MAGIC 0x6c706e75 /* a map was made for the head's ISA */
#define UNPOOL_NONE 0x656e6f6e  /* none can be for the head's ISA */
#define UNPOOL_MIN_LANES 4      /* the generic ISA's: the most entries */

/* Floats of room for the map after the 4C saved floats (int32s, one a float). */
int64_t batchnorm_unpool_floats(const ln_layer *l)
{
    if (l->in.ndim != 3 || l->in.dim[1] * l->in.dim[2] > UNPOOL_MAX_PLANE) return 0;
    const int64_t n = l->in.dim[1] * l->in.dim[2];
    return UNPOOL_HEAD + (n + UNPOOL_MIN_LANES - 1) / UNPOOL_MIN_LANES * (UNPOOL_MIN_LANES + 1);
}

/* The entries for planes of h x w at `lanes` lanes into e (room int32s), each spanning
 * fewer than `window` pooled values (0: any; ln_simd_kernels.unpool_window); 0 if they
 * cannot be. */
static int make_unpool_map(int64_t h, int64_t w, int lanes, int window, int32_t *e, int64_t room)
{
    const int64_t n = h * w, pw = w / 2, pn = h / 2 * pw, nvec = (n + lanes - 1) / lanes;
    if ((h | w) & 1 || pn < window || lanes > LN_SIMD_MAX_LANES || nvec * (lanes + 1) > room) return 0;
    for (int64_t v = 0; v < nvec; v++, e += lanes + 1) {
        int64_t at[LN_SIMD_MAX_LANES], lo = pn, hi = 0;
        for (int l = 0; l < lanes; l++) {
            const int64_t f = v * lanes + l < n ? v * lanes + l : n - 1; /* past the plane: its last place */
            at[l] = f / w / 2 * pw + f % w / 2;
            lo = at[l] < lo ? at[l] : lo;
            hi = at[l] > hi ? at[l] : hi;
        }
        const int64_t base = !window || lo < pn - window ? lo : pn - window; /* the loads stay in the plane */
        if (window && hi - base >= window) return 0;
        e[0] = (int32_t)base;
        for (int l = 0; l < lanes; l++) e[1 + l] = (int32_t)(at[l] - base);
    }
    return 1;
}

/* The map's int32s in the saved floats' block: allocated memory, only ever written and
 * read as int32 there. */
static int32_t *unpool_head(const ln_layer *l, const bn_dims *d)
{
    void *p = l->saved + 4 * d->c;
    return p;
}

/* Made for this ISA unless it was (forward, first thread: no other thread reads it then). */
static void prepare_unpool_map(ln_layer *l, const bn_dims *d)
{
    const int64_t room = batchnorm_unpool_floats(l);
    const ln_simd_kernels *K = ln_simd();
    int32_t *m = unpool_head(l, d);
    if (!room || ((m[0] == UNPOOL_MAGIC || m[0] == UNPOOL_NONE) && m[1] == (int32_t)K->isa)) return;
    const int ok = make_unpool_map(l->in.dim[1], l->in.dim[2], K->lanes, K->unpool_window, m + UNPOOL_HEAD,
                                   room - UNPOOL_HEAD);
    m[1] = (int32_t)K->isa;
    m[2] = (int32_t)l->in.dim[1];
    m[3] = (int32_t)l->in.dim[2];
    m[0] = ok ? UNPOOL_MAGIC : UNPOOL_NONE;
}

/* The map for this ISA, or NULL (none made, or none can be: spread the gradient). */
static const int32_t *unpool_map(const ln_layer *l, const bn_dims *d)
{
    if (!l->pool_y || !batchnorm_unpool_floats(l)) return NULL;
    const int32_t *m = unpool_head(l, d);
    return m[0] == UNPOOL_MAGIC && m[1] == (int32_t)ln_simd()->isa && m[2] == l->in.dim[1] && m[3] == l->in.dim[2]
               ? m + UNPOOL_HEAD
               : NULL;
}

/* Whether the backward reads the fused pooling's gradient through the map (for tests). */
int batchnorm_unpools(const ln_layer *l)
{
    const bn_dims d = {l->in.dim[0], 0, 0, 0};
    return unpool_map(l, &d) != NULL;
}

static void backward_fast(ln_layer *l, const float *x, const float *dy, float *dx,
                          const ln_ctx *ctx, int64_t c0, int64_t c1)
{
    const bn_dims d = dims_of(l, ctx);
    const ln_simd_kernels *K = ln_simd();
    /* deferred (ln_layer.defer_dx): only the sums here, and their means saved for
     * batchnorm_input_grad; a fused pooling's gradient then read through the unpool map,
     * or spread into the workspace where the map cannot serve the plane */
    const int defer = l->defer_dx;
    float *const wdx = defer ? NULL : dx;
    const int32_t *up = unpool_map(l, &d);
    const int64_t pn = l->pool_y ? ln_pooled_n(l) : 0, plane = pn / d.c;
    for (int64_t c = c0; c < c1; c++) {
        grad_consts gc = grad_consts_of(l, ctx, &d, c);
        ln_bn_act *act = &gc.act;
        const ln_bn_act *fused = l->act_y ? act : NULL;
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        /* each sample's run summed alone, added in sample order; the kernel takes up
         * to GRAD_RUNS of them side by side */
        for (int n0 = 0; n0 < ctx->batch; n0 += GRAD_RUNS) {
            const int runs = ctx->batch - n0 < GRAD_RUNS ? ctx->batch - n0 : GRAD_RUNS;
            double a[GRAD_RUNS], b[GRAD_RUNS];
            const int64_t at = n0 * d.stride + c * d.s;
            act->y = l->act_y ? l->act_y + at : NULL;
            /* a fused pooling's gradient read through the map, or, for planes it cannot
             * serve, spread into dx, where the second pass reads it and writes over it (in
             * place, value by value), or into the workspace when there is no dx: spread
             * once, not once a pass (the custom net, before the map: 4.4% of its profile
             * in the spreading) */
            if (up) /* the pooled planes read through the map */
                K->bn_grad_sums(d.s, runs, d.stride, pn, x + at, dy + n0 * pn + c * plane, up, fused, gc.mean,
                                gc.invstd, a, b);
            else if (l->pool_y && wdx)
                K->bn_grad_sums(d.s, runs, d.stride, d.stride, x + at,
                                unpooled_dy(l, &d, dy, c, n0, runs, wdx + at, d.stride), NULL, fused, gc.mean,
                                gc.invstd, a, b);
            else if (l->pool_y)
                K->bn_grad_sums(d.s, runs, d.stride, d.s, x + at,
                                unpooled_dy(l, &d, dy, c, n0, runs, ctx->workspace, d.s), NULL, fused, gc.mean,
                                gc.invstd, a, b);
            else
                K->bn_grad_sums(d.s, runs, d.stride, d.stride, x + at, dy + at, NULL, fused, gc.mean, gc.invstd, a,
                                b);
            for (int r = 0; r < runs; r++) {
                sum_dy += a[r];
                sum_dy_xhat += b[r];
            }
        }
        if (l->dweight) l->dweight[c] += (float)sum_dy_xhat;
        if (l->dbias) l->dbias[c] += (float)sum_dy;
        if (!dx) continue;
        /* eval: the layer is affine in x (dx = dy * k); training: the batch statistics
         * depend on every x of the channel */
        const float mean_dy = ctx->training && d.m > 0 ? (float)(sum_dy / (double)d.m) : 0.0f;
        const float mean_dy_xhat = ctx->training && d.m > 0 ? (float)(sum_dy_xhat / (double)d.m) : 0.0f;
        if (defer) {
            l->saved[2 * d.c + c] = mean_dy;
            l->saved[3 * d.c + c] = mean_dy_xhat;
            continue;
        }
        for (int n = 0; n < ctx->batch; n++) {
            const int64_t at = n * d.stride + c * d.s;
            act->y = l->act_y ? l->act_y + at : NULL;
            /* the pooled plane, or the spread gradient read in place */
            const float *g = up ? dy + n * pn + c * plane : l->pool_y ? dx + at : dy + at;
            K->bn_dx(d.s, x + at, g, up, fused, dx + at, gc.mean, gc.invstd, gc.k, mean_dy, mean_dy_xhat,
                     ctx->training);
        }
    }
}

/* The backward's second pass for samples [n0, n0 + ns), sample by sample: the same
 * kernel on the same values as backward_fast's, so the same bits. A fused pooling's
 * gradient is read through the unpool map; where the map cannot serve the plane it is
 * spread for all of a sample's channels before the first is read: a plane
 * read right after its spread waits on those stores (a trial in the second pass, one
 * plane at a time: 70 -> 320 us a step of the custom net's first batchnorm), and
 * spreading 4 planes ahead instead was slower still than all at once. */
void batchnorm_input_grad(const ln_layer *l, const ln_ctx *ctx, int64_t n0, int ns, float *out)
{
    const bn_dims d = dims_of(l, ctx);
    const ln_simd_kernels *K = ln_simd();
    const int64_t pn = l->pool_y ? ln_pooled_n(l) : 0, plane = pn / d.c;
    const int32_t *up = unpool_map(l, &d);
    for (int s = 0; s < ns; s++) {
        const int64_t n = n0 + s;
        float *o = out + s * d.stride;
        const float *pdy = l->pool_y ? l->defer_dy + n * pn : NULL;
        if (pdy && !up) K->avgpool2_bwd(d.c, (int)l->in.dim[1], (int)l->in.dim[2], pdy, o);
        for (int64_t c = 0; c < d.c; c++) {
            grad_consts gc = grad_consts_of(l, ctx, &d, c);
            const int64_t at = n * d.stride + c * d.s;
            gc.act.y = l->act_y ? l->act_y + at : NULL;
            const float *g = up ? pdy + c * plane : pdy ? o + c * d.s : l->defer_dy + at;
            K->bn_dx(d.s, l->defer_x + at, g, up, l->act_y ? &gc.act : NULL, o + c * d.s, gc.mean, gc.invstd, gc.k,
                     l->saved[2 * d.c + c], l->saved[3 * d.c + c], ctx->training);
        }
    }
}

/* ---- runs of one value (batchnorm1d on N x F): the reference's sums, in lanes ----
 * Each feature's statistics are its column's, which the reference walks down one
 * column at a time; the bn_feat kernels walk along the rows, a vector of features at
 * a time, with the reference's operations in its order (simd.h): the same bits. */

/* Features whose constants one pass of the kernels holds (on the stack) */
#define FEAT_BLOCK 256

static void forward_features(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int64_t c0, int64_t c1)
{
    const bn_dims d = dims_of(l, ctx);
    const ln_simd_kernels *K = ln_simd();
    double sum[FEAT_BLOCK], mean[FEAT_BLOCK];
    float mf[FEAT_BLOCK], alpha[FEAT_BLOCK], beta[FEAT_BLOCK];
    for (int64_t b0 = c0; b0 < c1; b0 += FEAT_BLOCK) {
        const int64_t nb = c1 - b0 < FEAT_BLOCK ? c1 - b0 : FEAT_BLOCK;
        if (ctx->training) { /* two passes, as forward_reference: the mean, then the deviations */
            K->bn_feat_sums(ctx->batch, nb, d.stride, x + b0, NULL, sum);
            for (int64_t j = 0; j < nb; j++) mean[j] = d.m > 0 ? sum[j] / (double)d.m : 0.0;
            K->bn_feat_sums(ctx->batch, nb, d.stride, x + b0, mean, sum);
            for (int64_t j = 0; j < nb; j++) store_stats(l, &d, b0 + j, mean[j], sum[j]);
        }
        for (int64_t j = 0; j < nb; j++) {
            affine_of(l, &d, b0 + j, ctx->training, &mf[j], &alpha[j]);
            beta[j] = beta_of(l, b0 + j);
        }
        K->bn_feat_affine(ctx->batch, nb, d.stride, x + b0, y + b0, mf, alpha, beta, l->act_y != NULL);
    }
}

static void backward_features(ln_layer *l, const float *x, const float *dy, float *dx, const ln_ctx *ctx,
                              int64_t c0, int64_t c1)
{
    const bn_dims d = dims_of(l, ctx);
    const ln_simd_kernels *K = ln_simd();
    double sum_dy[FEAT_BLOCK], sum_dy_xhat[FEAT_BLOCK];
    float mean[FEAT_BLOCK], invstd[FEAT_BLOCK], k[FEAT_BLOCK], mdy[FEAT_BLOCK], mdyx[FEAT_BLOCK];
    float alpha[FEAT_BLOCK], beta[FEAT_BLOCK], mf; /* a fused ReLU's (ln_layer.act_y): its mask's */
    const float *ra = l->act_y ? alpha : NULL;
    for (int64_t b0 = c0; b0 < c1; b0 += FEAT_BLOCK) {
        const int64_t nb = c1 - b0 < FEAT_BLOCK ? c1 - b0 : FEAT_BLOCK;
        for (int64_t j = 0; j < nb; j++) {
            backward_stats(l, ctx, &d, b0 + j, &mean[j], &invstd[j]);
            if (ra) {
                affine_of(l, &d, b0 + j, ctx->training, &mf, &alpha[j]);
                beta[j] = beta_of(l, b0 + j);
            }
        }
        K->bn_feat_grad_sums(ctx->batch, nb, d.stride, x + b0, dy + b0, mean, invstd, ra, beta, sum_dy,
                             sum_dy_xhat);
        for (int64_t j = 0; j < nb; j++) {
            const int64_t c = b0 + j;
            if (l->dweight) l->dweight[c] += (float)sum_dy_xhat[j];
            if (l->dbias) l->dbias[c] += (float)sum_dy[j];
            k[j] = invstd[j] * gamma_of(l, c);
            mdy[j] = ctx->training && d.m > 0 ? (float)(sum_dy[j] / (double)d.m) : 0.0f;
            mdyx[j] = ctx->training && d.m > 0 ? (float)(sum_dy_xhat[j] / (double)d.m) : 0.0f;
        }
        if (dx)
            K->bn_feat_dx(ctx->batch, nb, d.stride, x + b0, dy + b0, dx + b0, mean, invstd, ra, beta, k, mdy,
                          mdyx, ctx->training);
    }
}

/* Whether the layer before may make its input gradient (ln_layer.defer_dx): on the fast
 * path only (batchnorm_backward_part's choice). */
int batchnorm_hands_off(const ln_layer *l, const ln_ctx *ctx)
{
    return !ctx->reference && dims_of(l, ctx).s >= FAST_MIN_RUN;
}

/* The fast path applies a ReLU, tanh or sigmoid that follows (ln_layer.act_y); runs
 * shorter than FAST_MIN_RUN take the reference, which does not, except runs of one
 * value, whose bn_feat kernels apply a ReLU (the Linear, BatchNorm1d, ReLU block: on 2
 * threads the separate ReLU took as long as the batchnorm, its two halves split by
 * samples where the batchnorm's are by features). */
int batchnorm_absorbs_act(const ln_layer *l, ln_layer_kind act)
{
    const int64_t c = l->in.ndim >= 1 && l->in.dim[0] > 0 ? l->in.dim[0] : l->in_n;
    if (c > 0 && l->in_n == c) return act == LN_RELU; /* runs of one: the bn_feat kernels */
    return (act == LN_RELU || act == LN_TANH || act == LN_SIGMOID) && c > 0 && l->in_n / c >= FAST_MIN_RUN;
}

/* A 2x2 average pooling (stride 2, no padding) after a batchnorm2d whose runs take the
 * fast path: its forward pools each plane right after normalising it, its backward
 * reads the pooled gradient through the unpool map or spreads each plane's gradient
 * into the workspace (batchnorm_workspace). */
/* Planes larger than this (floats) are not pooled in place: the scratch stays small. */
#define POOL_MAX_PLANE 65536

int batchnorm_absorbs_pool(const ln_layer *l, const ln_layer *pool)
{
    return pool->spec.kind == LN_AVGPOOL2D && ln_pool_is_2x2(pool) && l->in.ndim == 3 && l->in.dim[1] >= 2 && l->in.dim[2] >= 2 &&
           l->in.dim[1] * l->in.dim[2] >= FAST_MIN_RUN && l->in.dim[1] * l->in.dim[2] <= POOL_MAX_PLANE;
}

/* Scratch of a fused pooling: GRAD_RUNS planes (backward; forward takes one). */
int64_t batchnorm_workspace(const ln_layer *l)
{
    const int64_t plane = l->in.ndim == 3 ? l->in.dim[1] * l->in.dim[2] : 0;
    return plane <= POOL_MAX_PLANE ? GRAD_RUNS * plane : 0;
}

/* Thread t of T takes the channels [c0, c1): every statistic, running stat and
 * gradient belongs to one channel, so the split changes no bit. */
void batchnorm_forward_part(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int t, int T)
{
    const bn_dims d = dims_of(l, ctx);
    int64_t c0, c1;
    ln_split(d.c, t, T, &c0, &c1);
    if (!ctx->reference && d.s == 1) {
        forward_features(l, x, y, ctx, c0, c1);
        return;
    }
    if (ctx->reference || d.s < FAST_MIN_RUN) {
        forward_reference(l, x, y, ctx, c0, c1);
        return;
    }
    if (t == 0 && l->pool_y) prepare_unpool_map(l, &d);
    forward_fast(l, x, y, ctx, c0, c1);
}

void batchnorm_backward_part(ln_layer *l, const float *x, const float *dy, float *dx,
                             const ln_ctx *ctx, int t, int T)
{
    const bn_dims d = dims_of(l, ctx);
    int64_t c0, c1;
    ln_split(d.c, t, T, &c0, &c1);
    if (!ctx->reference && d.s == 1)
        backward_features(l, x, dy, dx, ctx, c0, c1);
    else if (ctx->reference || d.s < FAST_MIN_RUN)
        backward_reference(l, x, dy, dx, ctx, c0, c1);
    else
        backward_fast(l, x, dy, dx, ctx, c0, c1);
}
