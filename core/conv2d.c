/* conv2d.c - 2-D convolution, square kernel, zero padding, optional bias.
 *
 * Shapes (per sample): x: C x H x W -> y: OC x OH x OW, with
 *   OH = (H + 2*padding - kernel) / stride + 1 (likewise OW),
 *   weight: OC x C x kernel x kernel, bias: OC.
 *
 * The fast path is described below; the reference twin at the end computes the same
 * sums directly from the definition.
 */
#include "conv_geom.h"
#include "layer.h"
#include "simd.h"
#include "workers.h"

#include <string.h>

/* ---- geometry (conv_geom.h) ---- */

void ln_conv_geom_of(const ln_layer_spec *spec, const ln_shape *in, const ln_shape *out,
                     ln_conv_geom *g)
{
    g->c = (int)in->dim[0];
    g->h = (int)in->dim[1];
    g->w = (int)in->dim[2];
    g->oc = (int)out->dim[0];
    g->oh = (int)out->dim[1];
    g->ow = (int)out->dim[2];
    g->k = spec->kernel;
    g->stride = spec->stride;
    g->pad = spec->padding;
    g->ck = (int64_t)g->c * g->k * g->k;
    g->p = (int64_t)g->oh * g->ow;
    g->shifted = g->stride == 1;
    g->hp = g->h + 2 * g->pad;
    if (g->shifted) {
        g->rs1 = (int64_t)g->hp * g->ow;
        g->rs2 = g->ow;
        g->unf_n = (int64_t)g->c * g->k * g->rs1;
    } else {
        g->rs1 = (int64_t)g->k * g->p;
        g->rs2 = g->p;
        g->unf_n = g->ck * g->p;
    }
    g->ocp = ((int64_t)g->oc + LN_SIMD_MAX_LANES - 1) / LN_SIMD_MAX_LANES * LN_SIMD_MAX_LANES;
}

static ln_conv_geom geom_of(const ln_layer *l)
{
    ln_conv_geom g;
    ln_conv_geom_of(&l->spec, &l->in, &l->out, &g);
    return g;
}

int ln_conv_chunk(const ln_conv_geom *g)
{
    /* enough samples for 512 output positions (32 vectors) per pass of a register tile:
     * conv1 (576 positions) goes sample by sample, conv2 (64) by 8 */
    int64_t n = (512 + g->p - 1) / g->p;
    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

/* The workspace layout, the one place that says it: offsets (floats) of the parts of
 * ln_conv_ws, and the total. */
typedef struct {
    int64_t unf, rows, drows, dypad, dyt, dym, sums, end;
} ws_offsets;

static ws_offsets ws_layout(const ln_conv_geom *g)
{
    ws_offsets o;
    const int64_t lanes = LN_SIMD_MAX_LANES;
    o.unf = g->unf_n + LN_SIMD_SLACK;
    o.rows = 0;
    o.drows = o.rows + ln_conv_chunk(g) * o.unf;
    o.dypad = o.drows + o.unf;
    o.dyt = o.dypad + (int64_t)g->oc * ((g->p + lanes - 1) / lanes * lanes);
    o.dym = o.dyt + ln_conv_chunk(g) * g->p * g->ocp;
    o.sums = o.dym + ln_conv_chunk(g) * g->oc * g->p;
    const int64_t transposed = (g->ck + 1) * g->ocp, partials = (g->oc * g->ck + g->oc) * lanes;
    o.end = o.sums + (transposed > partials ? transposed : partials);
    return o;
}

int64_t ln_conv_workspace(const ln_conv_geom *g) { return ws_layout(g).end; }

ln_conv_ws ln_conv_ws_of(const ln_conv_geom *g, float *ws)
{
    const ws_offsets o = ws_layout(g);
    ln_conv_ws w;
    w.rows = ws + o.rows;
    w.drows = ws + o.drows;
    w.dypad = ws + o.dypad;
    w.dyt = ws + o.dyt;
    w.dym = ws + o.dym;
    w.sums = ws + o.sums;
    w.unf = o.unf;
    return w;
}

int64_t conv2d_workspace(const ln_layer *l)
{
    const ln_conv_geom g = geom_of(l);
    return ln_conv_workspace(&g);
}

void ln_conv_unfold_c(const ln_conv_geom *g, const float *x, float *rows)
{
    const int k = g->k, pad = g->pad, h = g->h, w = g->w, ow = g->ow;
    if (g->shifted) {
        for (int c = 0; c < g->c; c++)
            for (int kj = 0; kj < k; kj++) {
                /* columns ox with 0 <= ox + kj - pad < w */
                const int lo = pad - kj > 0 ? pad - kj : 0;
                const int hi = w + pad - kj < ow ? w + pad - kj : ow;
                float *dst = rows + (int64_t)(c * k + kj) * g->rs1;
                for (int iy = 0; iy < g->hp; iy++, dst += ow) {
                    const int sy = iy - pad;
                    if (sy < 0 || sy >= h || hi <= lo) {
                        memset(dst, 0, sizeof(float) * (size_t)ow);
                        continue;
                    }
                    const float *src = x + ((int64_t)c * h + sy) * w + kj - pad;
                    for (int ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                    for (int ox = lo; ox < hi; ox++) dst[ox] = src[ox];
                    for (int ox = hi; ox < ow; ox++) dst[ox] = 0.0f;
                }
            }
        return;
    }
    const int s = g->stride;
    for (int c = 0; c < g->c; c++)
        for (int kj = 0; kj < k; kj++)
            for (int ki = 0; ki < k; ki++) {
                float *dst = rows + (int64_t)(c * k + kj) * g->rs1 + (int64_t)ki * g->rs2;
                for (int oy = 0; oy < g->oh; oy++, dst += ow) {
                    const int sy = oy * s + ki - pad;
                    if (sy < 0 || sy >= h) {
                        memset(dst, 0, sizeof(float) * (size_t)ow);
                        continue;
                    }
                    const float *src = x + ((int64_t)c * h + sy) * w;
                    for (int ox = 0; ox < ow; ox++) {
                        const int sx = ox * s + kj - pad;
                        dst[ox] = sx >= 0 && sx < w ? src[sx] : 0.0f;
                    }
                }
            }
}

void ln_conv_fold_c(const ln_conv_geom *g, const float *drows, float *dx)
{
    const int k = g->k, pad = g->pad, h = g->h, w = g->w, ow = g->ow;
    memset(dx, 0, sizeof(float) * (size_t)((int64_t)g->c * h * w));
    if (g->shifted) {
        for (int c = 0; c < g->c; c++)
            for (int kj = 0; kj < k; kj++) {
                const int lo = pad - kj > 0 ? pad - kj : 0;
                const int hi = w + pad - kj < ow ? w + pad - kj : ow;
                const float *src = drows + (int64_t)(c * k + kj) * g->rs1;
                for (int iy = 0; iy < g->hp; iy++, src += ow) {
                    const int sy = iy - pad;
                    if (sy < 0 || sy >= h) continue;
                    float *dst = dx + ((int64_t)c * h + sy) * w + kj - pad;
                    for (int ox = lo; ox < hi; ox++) dst[ox] += src[ox];
                }
            }
        return;
    }
    const int s = g->stride;
    for (int c = 0; c < g->c; c++)
        for (int kj = 0; kj < k; kj++)
            for (int ki = 0; ki < k; ki++) {
                const float *src = drows + (int64_t)(c * k + kj) * g->rs1 + (int64_t)ki * g->rs2;
                for (int oy = 0; oy < g->oh; oy++, src += ow) {
                    const int sy = oy * s + ki - pad;
                    if (sy < 0 || sy >= h) continue;
                    float *dst = dx + ((int64_t)c * h + sy) * w;
                    for (int ox = 0; ox < ow; ox++) {
                        const int sx = ox * s + kj - pad;
                        if (sx >= 0 && sx < w) dst[sx] += src[ox];
                    }
                }
            }
}

/* Fast path (core/simd.c, simd_impl.h):
 *  forward   per sample, unfold x into rows (see conv_geom.h: shifted copies for stride 1,
 *            im2col otherwise), then y = W * rows + bias with a register-tiled kernel;
 *  backward  weight and bias gradients: the rows of a chunk of samples are unfolded and
 *            their dy transposed (channels contiguous per position), then register
 *            tiles of (unfolded rows x vectors of channels) sweep over the chunk, one
 *            sum per weight along p; the sums, transposed, go into the gradients after
 *            the last chunk.
 *            The input gradient (skipped when dx == NULL, as for the first layer) is
 *            drows = W^T * dy per sample, folded back onto the input (the adjoint of
 *            the unfolding), chunk by chunk with the weight gradient.
 *  a ReLU that follows (net.c fuses it: ln_layer.act_y) is applied as the outputs are
 *            stored, and its derivative (relu_bwd: dy where the output > 0) to each
 *            chunk of dy before the products: the same operations as the separate
 *            layer, without its passes over the batch;
 *  a 2x2 max pooling that follows (with ReLUs before or after it, or a dropout2d
 *            before it) likewise: see conv2d_absorbs_pool and conv2d_absorbs_pool_drop.
 * Every sum runs in an order fixed by the shapes and the batch size. */

/* Samples [b0, b1) of the batch (the pointers are the whole batch's). */
static void forward_samples(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int64_t b0, int64_t b1)
{
    const ln_conv_geom g = geom_of(l);
    const ln_simd_kernels *K = ln_simd();
    ln_conv_ws ws = ln_conv_ws_of(&g, ctx->workspace);
    const int64_t pn = l->pool_y ? ln_pooled_n(l) : 0;
    /* a fused dropout2d scales channels in training (eval: the identity) */
    ln_layer *drop = l->pool_drop && ctx->training ? l->pool_drop : NULL;
    if (drop) dropout_draw_part(drop, ctx, b0, b1);
    for (int64_t n = b0; n < b1; n++) {
        K->conv_unfold(&g, x + n * l->in_n, ws.rows);
        if (!l->pool_y) {
            K->conv_fwd(&g, l->weight, l->bias, ws.rows, y + n * l->out_n, l->act_y != NULL);
            continue;
        }
        /* a fused max pooling: the sample's output, still in L1, pooled at once */
        K->conv_fwd(&g, l->weight, l->bias, ws.rows, ws.dym, l->act_y != NULL);
        if (drop) K->scale_runs(g.oc, g.p, ws.dym, drop->mask + n * g.oc, ws.dym);
        K->maxpool2_fwd(g.oc, g.oh, g.ow, ws.dym, l->pool_y + n * pn, l->pool_argmax + n * pn, l->pool_relu, 0);
    }
}

/* Thread t of T: its samples (every sample's output is its own). */
void conv2d_forward_part(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int t, int T)
{
    int64_t b0, b1;
    ln_split(ctx->batch, t, T, &b0, &b1);
    if (b0 >= b1) return;
    if (ctx->reference) { /* the twin, on this thread's samples */
        ln_ctx sctx = *ctx;
        sctx.batch = (int)(b1 - b0);
        conv2d_forward_reference(l, x + b0 * l->in_n, y + b0 * l->out_n, &sctx);
        return;
    }
    forward_samples(l, x, y, ctx, b0, b1);
}

/* After the parts: a fused dropout2d's stream advanced past the batch, as the dropout
 * layer's own finish does. */
void conv2d_forward_finish(ln_layer *l, const ln_ctx *ctx)
{
    if (l->pool_drop) dropout_forward_finish(l->pool_drop, ctx);
}

void conv2d_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    forward_samples(l, x, y, ctx, 0, ctx->batch);
    conv2d_forward_finish(l, ctx);
}

/* A ReLU that follows is fused (net.c): conv2d_forward applies it to y, the backward its
 * derivative to dy. */
int conv2d_absorbs_act(const ln_layer *l, ln_layer_kind act)
{
    (void)l;
    return act == LN_RELU;
}

/* A 2x2 max pooling that follows (after the fused ReLU, if any; net.c) is fused too, and
 * a ReLU after it (max then ReLU, the pooling kernel's own fusion, maxpool2d_absorbs_act):
 * each sample's output goes to scratch and is pooled from there, so the layer's full
 * output is never written to the batch's memory nor read back; backward spreads each
 * chunk's pooled gradient into scratch the same way (the pooling kernel's backward, the
 * ReLU's mask from the pooled output, which is the ReLU's value where the maximum was).
 * The same operations on the same values as the separate layers: the same bits, offsets
 * included. */
int conv2d_absorbs_pool(const ln_layer *l, const ln_layer *pool)
{
    return pool->spec.kind == LN_MAXPOOL2D && ln_pool_is_2x2(pool) && l->out.dim[1] >= 2 && l->out.dim[2] >= 2;
}

/* net.c asks only once the pooling is taken in and its own kind takes the activation */
int conv2d_absorbs_pool_act(const ln_layer *l, const ln_layer *pool, ln_layer_kind act)
{
    (void)l, (void)pool;
    return act == LN_RELU;
}

/* A dropout2d between the convolution and that pooling (the study's second layer) goes
 * in too: each channel of the sample's output in scratch is scaled by its keep-scale
 * (scale_runs, the dropout's own products) before the pooling, and the spread gradient
 * likewise backward; the convolution draws the mask as the dropout layer would (the
 * same draws, on any number of threads). Without a ReLU between them only: the pooled
 * output then says nothing of the ReLU's mask where a channel was dropped. */
int conv2d_absorbs_pool_drop(const ln_layer *l, const ln_layer *drop)
{
    return drop->spec.kind == LN_DROPOUT2D && drop->in.ndim == 3 && drop->in.dim[0] == l->out.dim[0];
}

/* Unfolded rows from which the transposed weight gradient pays for transposing dy: the
 * transposition costs about as much per (channel, position) as DW_MIN_CK / 32 of the
 * products (kernel_bench: first layers with 9 to 27 rows lost or broke even). */
#define DW_MIN_CK 32

/* Which weight-gradient kernel a layer takes (simd.h): the transposed one unless too
 * many of its lanes would be padding or the layer has few unfolded rows. A function of
 * the shapes and the ISA only. */
static int dw_transposed(const ln_conv_geom *g, const ln_simd_kernels *K)
{
    const int64_t nv = (g->oc + K->lanes - 1) / K->lanes;
    return g->ck >= DW_MIN_CK && 100 * (int64_t)g->oc >= (int64_t)K->dw_fill * nv * K->lanes;
}

/* Work items of the weight gradient for T threads: blocks of channels (transposed: the
 * kernel's tiles, nv vectors in ceil(nv / tile_vectors) even blocks; lane partials:
 * tile_rows channels) times blocks of unfolded rows (with T > 1, enough of them for
 * about 4T items; a multiple of 12 rows, whole tiles of either kernel, or of 4 where that
 * evens the threads' shares: see dw_items). No block
 * changes any bit of a sum (simd.h), only the balance. */
typedef struct {
    int transposed, unit, nv, oblocks;
    int64_t kblock, kblocks, items;
} dw_plan;

/* Item it's channels [*o0, *o1) and rows [*k0, *k1). */
static void dw_item(const ln_conv_geom *g, const dw_plan *d, int64_t it, int *o0, int *o1, int64_t *k0,
                    int64_t *k1)
{
    const int ob = (int)(it / d->kblocks);
    *o0 = d->nv * ob / d->oblocks * d->unit;
    *o1 = d->nv * (ob + 1) / d->oblocks * d->unit;
    if (*o1 > g->oc) *o1 = g->oc;
    *k0 = it % d->kblocks * d->kblock;
    *k1 = *k0 + d->kblock < g->ck ? *k0 + d->kblock : g->ck;
}

/* Thread t's items [*it0, *it1) (it0 == it1: none): contiguous items of about equal cost
 * (channels x rows) per thread, item i to the thread whose share of the total cost holds
 * the middle of the item. Returns the cost of the busiest thread's items. */
static int64_t dw_share(const ln_conv_geom *g, const dw_plan *d, int t, int T, int64_t *it0,
                        int64_t *it1)
{
    const int64_t total = (int64_t)g->oc * g->ck;
    int64_t before = 0, busiest = 0, run = 0;
    int found = 0, last_owner = 0;
    *it0 = *it1 = 0;
    for (int64_t it = 0; it < d->items; it++) {
        int o0, o1;
        int64_t k0, k1;
        dw_item(g, d, it, &o0, &o1, &k0, &k1);
        const int64_t cost = (int64_t)(o1 - o0) * (k1 - k0);
        const int owner = (int)((2 * before + cost) * T / (2 * total));
        before += cost;
        if (owner != last_owner) run = 0;
        last_owner = owner;
        run += cost;
        if (run > busiest) busiest = run;
        if (owner == t && !found) {
            *it0 = it;
            found = 1;
        }
        if (owner == t) *it1 = it + 1;
    }
    return busiest;
}

static dw_plan dw_plan_with(const ln_conv_geom *g, const ln_simd_kernels *K, int64_t kblock)
{
    dw_plan d;
    d.transposed = dw_transposed(g, K);
    d.unit = d.transposed ? K->lanes : K->tile_rows; /* channels per unit */
    d.nv = (g->oc + d.unit - 1) / d.unit;
    d.oblocks = d.transposed ? (d.nv + K->tile_vectors - 1) / K->tile_vectors : d.nv;
    d.kblock = kblock;
    d.kblocks = (g->ck + d.kblock - 1) / d.kblock;
    d.items = d.oblocks * d.kblocks;
    return d;
}

/* The plan for T threads. When its items split unevenly (the study's first layer: 25
 * rows in blocks of 12, so 59% of the work on one of 2 threads), smaller blocks of rows,
 * multiples of 4, are tried and the most even taken (the larger block on a tie). */
static dw_plan dw_items(const ln_conv_geom *g, const ln_simd_kernels *K, int T)
{
    const int64_t oblocks = dw_plan_with(g, K, g->ck).oblocks;
    int64_t kblock = g->ck;
    if (T > 1 && oblocks < 4 * T) {
        const int64_t splits = (4 * T + oblocks - 1) / oblocks;
        kblock = (g->ck + splits - 1) / splits;
        kblock = (kblock + 11) / 12 * 12;
    }
    dw_plan best = dw_plan_with(g, K, kblock);
    if (T == 1) return best;
    int64_t it0, it1, best_cost = dw_share(g, &best, 0, T, &it0, &it1);
    const int64_t even = ((int64_t)g->oc * g->ck + T - 1) / T;
    for (int64_t kb = kblock / 4 * 4; kb >= 4 && 50 * best_cost > 51 * even; kb -= 4) {
        const dw_plan d = dw_plan_with(g, K, kb);
        const int64_t cost = dw_share(g, &d, 0, T, &it0, &it1);
        if (cost < best_cost) {
            best = d;
            best_cost = cost;
        }
    }
    return best;
}

/* The input gradient of sample n (its dy at d, oc x P floats) into dx. */
static void dx_sample(const ln_layer *l, const ln_conv_geom *g, const ln_simd_kernels *K, const ln_conv_ws *ws,
                      const float *d, float *dx)
{
    const int64_t pp = (g->p + K->lanes - 1) / K->lanes * K->lanes;
    if (pp != g->p) { /* rows of dy zero-padded to whole vectors */
        for (int o = 0; o < g->oc; o++) {
            memcpy(ws->dypad + o * pp, d + o * g->p, sizeof(float) * (size_t)g->p);
            memset(ws->dypad + o * pp + g->p, 0, sizeof(float) * (size_t)(pp - g->p));
        }
        d = ws->dypad;
    }
    memset(ws->drows, 0, sizeof(float) * (size_t)g->unf_n);
    K->conv_dx(g, l->weight, d, pp, ws->drows);
    K->conv_fold(g, ws->drows, dx);
}

/* Thread t's share of the backward pass, chunk of samples by chunk: its weight-gradient
 * items (it unfolds and transposes every chunk into its own workspace; the sums go to
 * the shared workspace, each item to its own places), then the input gradient of those
 * of its samples in the chunk (each sample's alone: the same bits in any order).
 * conv2d_backward_reduce adds the sums to the gradients afterwards, on one thread. */
void conv2d_backward_part(ln_layer *l, const float *x, const float *dy, float *dx,
                          const ln_ctx *ctx, int t, int T)
{
    const ln_conv_geom g = geom_of(l);
    const ln_simd_kernels *K = ln_simd();
    ln_conv_ws ws = ln_conv_ws_of(&g, ctx->workspace);
    ln_conv_ws shared = ln_conv_ws_of(&g, ctx->shared ? ctx->shared : ctx->workspace);
    const int lanes = K->lanes, chunk = ln_conv_chunk(&g);
    float *sums = shared.sums, *bsums = shared.sums + g.ck * g.ocp;
    float *lbsums = shared.sums + g.oc * g.ck * lanes; /* the bias's lane partials */
    const dw_plan plan = dw_items(&g, K, T);
    int64_t it0, it1;
    dw_share(&g, &plan, t, T, &it0, &it1);
    int64_t b0, b1; /* the samples whose input gradient is this thread's */
    ln_split(ctx->batch, t, T, &b0, &b1);
    if (!dx) b1 = b0;
    for (int n0 = 0; n0 < ctx->batch; n0 += chunk) {
        const int ns = ctx->batch - n0 < chunk ? ctx->batch - n0 : chunk;
        const int64_t x0 = b0 > n0 ? b0 : n0, x1 = b1 < n0 + ns ? b1 : n0 + ns;
        const int dw_here = it0 < it1;
        if (!dw_here && x0 >= x1) continue;
        /* the chunk's dy (samples [m0, m1) of it: those this thread needs), through the
         * fused layers' backward if there are any: into scratch */
        const float *dyc = ws.dym;
        const int64_t m0 = dw_here ? n0 : x0, m1 = dw_here ? n0 + ns : x1;
        if (l->pool_y) { /* dy is the fused pooling's (or its ReLU's) output gradient */
            const int64_t pn = ln_pooled_n(l);
            float *d = ws.dym + (m0 - n0) * l->out_n;
            K->maxpool2_bwd((m1 - m0) * g.oc, g.oh, g.ow, dy + m0 * pn, l->pool_argmax + m0 * pn,
                            l->act_y || l->pool_relu ? l->pool_y + m0 * pn : NULL, 0, NULL, d);
            if (l->pool_drop && ctx->training) /* a fused dropout2d's backward */
                K->scale_runs((m1 - m0) * g.oc, g.p, d, l->pool_drop->mask + m0 * g.oc, d);
        } else if (l->act_y) {
            K->relu_bwd((m1 - m0) * l->out_n, l->act_y + m0 * l->out_n, dy + m0 * l->out_n,
                        ws.dym + (m0 - n0) * l->out_n);
        } else {
            dyc = dy + (int64_t)n0 * l->out_n;
        }
        for (int s = 0; dw_here && s < ns; s++) {
            K->conv_unfold(&g, x + (int64_t)(n0 + s) * l->in_n, ws.rows + s * ws.unf);
            if (plan.transposed)
                K->conv_dy_transpose(&g, dyc + (int64_t)s * l->out_n, ws.dyt + s * g.p * g.ocp);
        }
        for (int64_t it = it0; it < it1; it++) {
            int o0, o1;
            int64_t k0, k1;
            dw_item(&g, &plan, it, &o0, &o1, &k0, &k1);
            if (plan.transposed)
                K->conv_dw(&g, o0, o1, k0, k1, ns, ws.dyt, ws.rows, ws.unf, sums,
                           l->dbias ? bsums : NULL, n0 == 0);
            else
                K->conv_dw_lanes(&g, o0, o1, k0, k1, ns, dyc, l->out_n, ws.rows, ws.unf, sums,
                                 l->dbias ? lbsums : NULL, n0 == 0);
        }
        for (int64_t n = x0; n < x1; n++)
            dx_sample(l, &g, K, &ws, dyc + (n - n0) * l->out_n, dx + n * l->in_n);
    }
}

/* The sums (in the shared workspace, transposed or lane partials) into the weight and
 * bias gradients. */
void conv2d_backward_reduce(ln_layer *l, const ln_ctx *ctx)
{
    const ln_conv_geom g = geom_of(l);
    const ln_simd_kernels *K = ln_simd();
    ln_conv_ws shared = ln_conv_ws_of(&g, ctx->shared ? ctx->shared : ctx->workspace);
    if (!dw_transposed(&g, K)) {
        K->reduce_lanes(g.oc * g.ck, shared.sums, l->dweight);
        if (l->dbias) K->reduce_lanes(g.oc, shared.sums + g.oc * g.ck * K->lanes, l->dbias);
        return;
    }
    const float *sums = shared.sums, *bsums = shared.sums + g.ck * g.ocp;
    for (int o = 0; o < g.oc; o++) {
        float *dw = l->dweight + o * g.ck;
        for (int64_t k = 0; k < g.ck; k++) dw[k] += sums[k * g.ocp + o];
    }
    if (l->dbias)
        for (int o = 0; o < g.oc; o++) l->dbias[o] += bsums[o];
}

void conv2d_backward(ln_layer *l, const float *x, const float *dy, float *dx, const ln_ctx *ctx)
{
    conv2d_backward_part(l, x, dy, dx, ctx, 0, 1);
    conv2d_backward_reduce(l, ctx);
}

/* ---- reference twin: the definition, loop by loop ---- */

static float input_at(const ln_conv_geom *d, const float *x, int c, int iy, int ix)
{
    if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) return 0.0f;
    return x[((int64_t)c * d->h + iy) * d->w + ix];
}

void conv2d_forward_reference(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    const ln_conv_geom d = geom_of(l);
    for (int n = 0; n < ctx->batch; n++) {
        const float *xs = x + (int64_t)n * l->in_n;
        float *ys = y + (int64_t)n * l->out_n;
        for (int o = 0; o < d.oc; o++)
            for (int oy = 0; oy < d.oh; oy++)
                for (int ox = 0; ox < d.ow; ox++) {
                    double s = l->bias ? l->bias[o] : 0.0;
                    for (int c = 0; c < d.c; c++)
                        for (int ki = 0; ki < d.k; ki++)
                            for (int kj = 0; kj < d.k; kj++)
                                s += (double)l->weight[((o * d.c + c) * d.k + ki) * d.k + kj] *
                                     input_at(&d, xs, c, oy * d.stride - d.pad + ki,
                                              ox * d.stride - d.pad + kj);
                    ys[((int64_t)o * d.oh + oy) * d.ow + ox] = (float)s;
                }
    }
}

/* Each gradient element is one double sum over everything that touches it:
 *   dW[o][c][ki][kj] = sum_{n, oy, ox} dy[n][o][oy][ox] * x[n][c][oy*s - pad + ki][ox*s - pad + kj]
 *   dbias[o]         = sum_{n, oy, ox} dy[n][o][oy][ox]
 *   dx[n][c][iy][ix] = sum_{o, ki, kj} dy[n][o][oy][ox] * W[o][c][ki][kj]
 *                      over the (oy, ox) with oy*s - pad + ki = iy, ox*s - pad + kj = ix. */
void conv2d_backward_reference(ln_layer *l, const float *x, const float *dy, float *dx,
                               const ln_ctx *ctx)
{
    const ln_conv_geom d = geom_of(l);
    for (int o = 0; o < d.oc; o++) {
        const float *dyo = dy + (int64_t)o * d.p;
        if (l->dbias) {
            double s = 0.0;
            for (int n = 0; n < ctx->batch; n++)
                for (int64_t q = 0; q < d.p; q++) s += dyo[(int64_t)n * l->out_n + q];
            l->dbias[o] += (float)s;
        }
        for (int c = 0; c < d.c; c++)
            for (int ki = 0; ki < d.k; ki++)
                for (int kj = 0; kj < d.k; kj++) {
                    double s = 0.0;
                    for (int n = 0; n < ctx->batch; n++) {
                        const float *xs = x + (int64_t)n * l->in_n;
                        const float *g = dyo + (int64_t)n * l->out_n;
                        for (int oy = 0; oy < d.oh; oy++)
                            for (int ox = 0; ox < d.ow; ox++)
                                s += (double)g[oy * d.ow + ox] *
                                     input_at(&d, xs, c, oy * d.stride - d.pad + ki,
                                              ox * d.stride - d.pad + kj);
                    }
                    l->dweight[((int64_t)(o * d.c + c) * d.k + ki) * d.k + kj] += (float)s;
                }
    }
    if (!dx) return;
    for (int n = 0; n < ctx->batch; n++) {
        const float *dys = dy + (int64_t)n * l->out_n;
        float *dxs = dx + (int64_t)n * l->in_n;
        for (int c = 0; c < d.c; c++)
            for (int iy = 0; iy < d.h; iy++)
                for (int ix = 0; ix < d.w; ix++) {
                    double s = 0.0;
                    for (int o = 0; o < d.oc; o++)
                        for (int ki = 0; ki < d.k; ki++)
                            for (int kj = 0; kj < d.k; kj++) {
                                const int ty = iy + d.pad - ki, tx = ix + d.pad - kj;
                                if (ty < 0 || tx < 0 || ty % d.stride || tx % d.stride) continue;
                                const int oy = ty / d.stride, ox = tx / d.stride;
                                if (oy >= d.oh || ox >= d.ow) continue;
                                s += (double)dys[((int64_t)o * d.oh + oy) * d.ow + ox] *
                                     l->weight[((int64_t)(o * d.c + c) * d.k + ki) * d.k + kj];
                            }
                    dxs[((int64_t)c * d.h + iy) * d.w + ix] = (float)s;
                }
    }
}
