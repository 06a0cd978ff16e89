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

#include <math.h>
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

/* The weight gradient sums over the batch in groups of samples fixed by the shapes and
 * the batch size alone, never by the thread count: one thread makes a group's sums
 * (every position of every sample in the group, in order) and reduces them to the
 * group's gradient; the groups' gradients are then added in group order. Threads take
 * whole groups, so each unfolds (and transposes, and spreads the pooled gradient of) only
 * its own samples, once. A group has at least DW_GROUP_MIN samples (fewer sums to
 * reduce) and whole chunks; there are at most DW_GROUPS_MAX (their gradients wait in
 * scratch of a fixed size). */
#define DW_GROUP_MIN 16
#define DW_GROUPS_MAX 8

/* Layers with fewer output channels than this take conv_dx and conv_dw even after a
 * fused max pooling: conv_dx_listed saves the products of three places in four (more
 * with a ReLU), but pays for transposing and adding back its sums, which broke even
 * near 32 channels. Per sample on AVX-512 (bench/kernel_bench.c, LISTED=1: one random
 * place in each window, half of them +-0): the study's conv2, 20 channels, input
 * gradient 3.3-3.8 us against 4.0-4.9 listed; CIFAR's conv1 shape, 32 channels of 27
 * rows, 10.6-13.4 against 11.7-15.0; CIFAR's conv2, 64 channels, 46-59 against 24-32;
 * Fashion's, 64, 100-120 against 62-71. The weight gradients of those 64-channel
 * layers: 47 against 19, 97 against 44. */
#define DX_LISTED_MIN_OC 48

/* Whether a layer may take the listed gradients (after a 2x2 max pooling that net.c
 * fuses): only those have room for their lists and sums */
static int may_list(const ln_conv_geom *g) { return g->oc >= DX_LISTED_MIN_OC && g->oh >= 2 && g->ow >= 2; }

/* Entries conv_dx_listed's lists have room for: a 2x2 max pooling's maxima, one a window. */
static int64_t dx_list_room(const ln_conv_geom *g)
{
    return may_list(g) ? (int64_t)g->oc * (g->oh / 2) * (g->ow / 2) : 0;
}

/* The workspace layout, the one place that says it: offsets (floats) of the parts of
 * ln_conv_ws, and the total. */
typedef struct {
    int64_t unf, rows, drows, dypad, dyt, dym, sums, rowst, dxl, dxl_start, dxl_chan, dxl_val, dwl_start, dwl_pos,
        dwl_val, chans, wsub, groups, end;
} ws_offsets;

/* Batches of at most this many samples take the transposed weight gradient (on layers
 * with DW_MIN_CK or more unfolded rows, dw_transposed) even when some of its lanes are
 * padding: the lane partials' reduction, once per group, then costs more than the
 * padding (the study's conv2, 20 channels in 24 lanes: +12.6% samples per second at
 * batch 1, +6.5% at 2, no change at 4; train_bench medians of 7). */
#define DW_FEW_SAMPLES 2
/* Layers whose unfolded rows of one sample hold at most this many floats keep room for
 * them transposed (ln_conv_ws.rowst): the study's conv2 needs 64 x 250. */
#define ROWST_MAX_FLOATS 32768

static int64_t rowst_floats(const ln_conv_geom *g)
{
    return g->p * g->ck <= ROWST_MAX_FLOATS ? DW_FEW_SAMPLES * g->p * g->ck : 0;
}

static ws_offsets ws_layout(const ln_conv_geom *g)
{
    ws_offsets o;
    const int64_t lanes = LN_SIMD_MAX_LANES;
    o.unf = ln_whole_lines(g->unf_n + LN_SIMD_SLACK);
    o.rows = 0;
    o.drows = o.rows + ln_conv_chunk(g) * o.unf;
    o.dypad = o.drows + o.unf;
    o.dyt = o.dypad + ln_whole_lines((int64_t)g->oc * ((g->p + lanes - 1) / lanes * lanes));
    o.dym = o.dyt + ln_whole_lines(ln_conv_chunk(g) * g->p * g->ocp);
    o.sums = o.dym + ln_whole_lines(ln_conv_chunk(g) * g->oc * g->p);
    const int64_t transposed = (g->ck + 1) * g->ocp, partials = (g->oc * g->ck + g->oc) * lanes;
    o.rowst = o.sums + ln_whole_lines(transposed > partials ? transposed : partials);
    o.dxl = o.rowst + ln_whole_lines(rowst_floats(g));
    /* the lists: every place of every channel (a sample whose input is not finite) for
     * the weight gradient's, a window's maximum per entry for the input gradient's (ints,
     * as many as floats) */
    const int list = may_list(g);
    const int64_t every = list ? (int64_t)g->oc * g->p : 0;
    const int64_t maxima = dx_list_room(g);
    o.dxl_start = o.dxl + ln_whole_lines(list ? ln_conv_dx_listed_scratch(g) : 0);
    o.dxl_chan = o.dxl_start + ln_whole_lines(list ? g->p + 1 : 0);
    o.dxl_val = o.dxl_chan + ln_whole_lines(maxima);
    o.dwl_start = o.dxl_val + ln_whole_lines(maxima);
    o.dwl_pos = o.dwl_start + ln_whole_lines(list ? g->oc + 1 : 0);
    o.dwl_val = o.dwl_pos + ln_whole_lines(every);
    o.chans = o.dwl_val + ln_whole_lines(every);
    o.wsub = o.chans + ln_whole_lines((int64_t)ln_conv_chunk(g) * (g->oc + 1)); /* ints, as many as floats */
    o.groups = o.wsub + ln_whole_lines(g->oc * g->ck + 3 * g->oc);
    o.end = o.groups + (DW_GROUPS_MAX - 1) * (g->oc * g->ck + g->oc);
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
    w.rowst = rowst_floats(g) ? ws + o.rowst : NULL;
    w.dxl = ws + o.dxl;
    w.dxl_start = (int *)(void *)(ws + o.dxl_start);
    w.dxl_chan = (int *)(void *)(ws + o.dxl_chan);
    w.dxl_val = ws + o.dxl_val;
    w.dwl_start = (int *)(void *)(ws + o.dwl_start);
    w.dwl_pos = (int *)(void *)(ws + o.dwl_pos);
    w.dwl_val = ws + o.dwl_val;
    w.chans = (int *)(void *)(ws + o.chans);
    w.wsub = ws + o.wsub;
    w.groups = ws + o.groups;
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
 *            sum per weight along p (or, with few channels, lane partials from dy as it
 *            is); after the last chunk of a group of samples (dw_group_size) the sums,
 *            transposed or reduced, are that group's gradient, and the groups'
 *            gradients are added in group order.
 *            The input gradient (skipped when dx == NULL, as for the first layer) is
 *            drows = W^T * dy per sample, folded back onto the input (the adjoint of
 *            the unfolding), chunk by chunk with the weight gradient; channels whose
 *            dy plane is all +-0 (a dropout2d's dropped ones) are left out when the
 *            weights are finite (nonzero_channels: the same bits), and from the lane
 *            partials when the sample's input is (dw_channels).
 *  a ReLU that follows (net.c fuses it: ln_layer.act_y) is applied as the outputs are
 *            stored, and its derivative (relu_bwd: dy where the output > 0) to each
 *            chunk of dy before the products: the same operations as the separate
 *            layer, without its passes over the batch;
 *  a 2x2 max pooling that follows (with ReLUs before or after it, or a dropout2d
 *            before it) likewise: see conv2d_absorbs_pool and conv2d_absorbs_pool_drop;
 *            with a dropout2d and a ReLU after the pooling, the dropped channels'
 *            sums are not computed when they are bound to be finite (kept_channels).
 * Every sum runs in an order fixed by the shapes and the batch size. */

/* Sums that may be left out of a sample's output must stay below this: then none
 * of them, rounding included, reaches infinity */
#define SKIP_BOUND 1e37

/* The channels of sample n's output to compute, into ws->chans, and their count: every
 * channel, or, after a fused dropout2d in training with a ReLU after the pooling, not
 * the dropped ones whose sums are bound to be finite (|bias| + sum |w| times the largest
 * |x|, wabs[o] * xmax, below SKIP_BOUND): such a channel's outputs are +-0 after the
 * dropout, every window of them picks its first input, and the ReLU makes it +0, which
 * forward_samples writes without the sums (the same bits; a sum that could overflow to
 * infinity, inf times 0 being NaN, is computed). */
static int kept_channels(const ln_conv_geom *g, const ln_conv_ws *ws, const float *mask, const float *wabs,
                         double xmax)
{
    int n = 0;
    for (int o = 0; o < g->oc; o++)
        if (!mask || mask[o] != 0.0f || !((double)wabs[o] * xmax < SKIP_BOUND)) ws->chans[n++] = o;
    return n;
}

/* Asks for n floats from p into the cache, a line at a time: the next sample's input,
 * saved by the layer before and by now in L3 or memory, while this one is computed, so
 * that its unfolding does not wait on it (the CIFAR net's conv2 forward: unfolding 6.5 ->
 * 3.7 us a sample, conv1's 2.4 -> 1.1). Only for inputs of PREFETCH_MIN_FLOATS or more:
 * the study's layers (784 and 1440 floats a sample) were about 2% slower with it. The
 * backward asks while it unfolds a chunk's samples, a shorter lead, where only inputs of
 * PREFETCH_BWD_MIN_FLOATS or more gain (CIFAR's and Fashion's second layers: the custom
 * net's conv2, 3136 floats, lost 2-4% to it); asking a whole sample ahead in the listed
 * gradients' loop made the CIFAR net's conv2 backward slower (7.0-7.4 against 6.5-7.4 ms
 * a step). */
#define PREFETCH_MIN_FLOATS 2048
#define PREFETCH_BWD_MIN_FLOATS 4096
static void prefetch_floats(const float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

/* A pooled plane of channel outputs that were all +-0 under a ReLU: +0 everywhere, and
 * each window's first input (its offset in the plane) as the maximum */
static void zero_pooled_plane(const ln_conv_geom *g, float *py, int32_t *am)
{
    const int ph = g->oh / 2, pw = g->ow / 2;
    for (int oy = 0; oy < ph; oy++)
        for (int ox = 0; ox < pw; ox++) {
            py[oy * pw + ox] = 0.0f;
            am[oy * pw + ox] = 2 * oy * g->ow + 2 * ox;
        }
}

/* Samples [b0, b1) of the batch (the pointers are the whole batch's), on one of
 * `threads` threads. */
static void forward_samples(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int64_t b0, int64_t b1,
                            int threads)
{
    const ln_conv_geom g = geom_of(l);
    const ln_simd_kernels *K = ln_simd();
    ln_conv_ws ws = ln_conv_ws_of(&g, ctx->workspace);
    const int64_t pn = l->pool_y ? ln_pooled_n(l) : 0, pplane = l->pool_y ? pn / g.oc : 0;
    /* a fused dropout2d scales channels in training (eval: the identity) */
    ln_layer *drop = l->pool_drop && ctx->training ? l->pool_drop : NULL;
    if (drop) dropout_draw_part(drop, ctx, b0, b1);
    /* dropped channels are left out (kept_channels) under a ReLU after the pooling; the
     * weight bounds for that, and the kept channels' weights, biases and scales */
    const int skip = drop && l->pool_relu && !l->act_y;
    float *wabs = ws.wsub + g.oc * g.ck + 2 * g.oc;
    if (skip) /* |bias| + ck times the largest |w|: at least |bias| + sum |w| */
        for (int o = 0; o < g.oc; o++) {
            const double a = (l->bias ? fabs((double)l->bias[o]) : 0.0) +
                             (double)g.ck * K->max_abs(g.ck, l->weight + o * g.ck);
            wabs[o] = a < 1e38 ? (float)a : INFINITY;
        }
    for (int64_t n = b0; n < b1; n++) {
        /* the next sample's outputs, asked for to be written while this one is computed.
         * On 2 threads the other one read them last step (the study's pooled conv2
         * output is the input of a linear layer whose weight gradient every thread
         * takes all samples of), so each line's store must first invalidate that copy:
         * where the two cores share no L3 (a VM's vCPUs on two dies, a 400 ns round
         * trip) the study's conv2 forward took 91-99 us a step instead of 70, 74-77
         * with this (simd.h, prefetch_write: PREFETCHW on AVX-512). On one thread the
         * lines are this core's already: nothing to ask for */
        if (threads > 1 && n + 1 < b1) {
            if (l->pool_y) {
                K->prefetch_write(l->pool_y + (n + 1) * pn, (int64_t)sizeof(float) * pn);
                K->prefetch_write(l->pool_argmax + (n + 1) * pn, (int64_t)sizeof(int32_t) * pn);
            } else {
                K->prefetch_write(y + (n + 1) * l->out_n, (int64_t)sizeof(float) * l->out_n);
            }
        }
        K->conv_unfold(&g, x + n * l->in_n, ws.rows);
        if (n + 1 < b1 && l->in_n >= PREFETCH_MIN_FLOATS) prefetch_floats(x + (n + 1) * l->in_n, l->in_n);
        if (!l->pool_y) {
            K->conv_fwd(&g, l->weight, l->bias, ws.rows, y + n * l->out_n, l->act_y != NULL);
            continue;
        }
        const float *mask = drop ? drop->mask + n * g.oc : NULL;
        const int nk = skip ? kept_channels(&g, &ws, mask, wabs, K->max_abs(l->in_n, x + n * l->in_n)) : g.oc;
        if (nk < g.oc) {
            /* the kept channels' outputs, as a narrower layer, then their planes pooled
             * one by one; the others' pooled planes written directly */
            ln_conv_geom gk = g;
            gk.oc = nk;
            float *wk = ws.wsub, *bk = wk + (int64_t)nk * g.ck, *sk = bk + nk;
            for (int i = 0; i < nk; i++) {
                const int o = ws.chans[i];
                memcpy(wk + i * g.ck, l->weight + o * g.ck, sizeof(float) * (size_t)g.ck);
                bk[i] = l->bias ? l->bias[o] : 0.0f;
                sk[i] = mask[o];
            }
            K->conv_fwd(&gk, wk, l->bias ? bk : NULL, ws.rows, ws.dym, 0);
            K->scale_runs(nk, g.p, ws.dym, sk, ws.dym);
            for (int o = 0, i = 0; o < g.oc; o++) {
                float *py = l->pool_y + n * pn + o * pplane;
                int32_t *am = l->pool_argmax + n * pn + o * pplane;
                if (i < nk && ws.chans[i] == o)
                    K->maxpool2_fwd(1, g.oh, g.ow, ws.dym + i++ * g.p, py, am, 1, 0);
                else
                    zero_pooled_plane(&g, py, am);
            }
            continue;
        }
        /* a fused max pooling: the sample's output, still in L1, pooled at once */
        K->conv_fwd(&g, l->weight, l->bias, ws.rows, ws.dym, l->act_y != NULL);
        if (drop) K->scale_runs(g.oc, g.p, ws.dym, mask, ws.dym);
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
    forward_samples(l, x, y, ctx, b0, b1, T);
}

/* After the parts: a fused dropout2d's stream advanced past the batch, as the dropout
 * layer's own finish does. */
void conv2d_forward_finish(ln_layer *l, const ln_ctx *ctx)
{
    if (l->pool_drop) dropout_forward_finish(l->pool_drop, ctx);
}

void conv2d_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    forward_samples(l, x, y, ctx, 0, ctx->batch, 1);
    conv2d_forward_finish(l, ctx);
}

/* A batchnorm right after the layer may hand it its input gradient, this layer's dy
 * (net.c; ln_layer.grad_bn): chunk_dy makes it, a chunk of samples at a time. Not with
 * layers fused after this one, which would come between. */
int conv2d_takes_over(const ln_layer *l, const ln_layer *bn)
{
    return !l->act_y && !l->pool_y && !l->pool_drop && bn->in_n == l->out_n;
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

/* Which weight-gradient kernel a layer takes (simd.h) for a batch of n samples: the
 * transposed one unless the layer has few unfolded rows, or too many of its lanes would
 * be padding and the batch is not small. A function of the shapes, the batch size and
 * the ISA only. */
static int dw_transposed(const ln_conv_geom *g, const ln_simd_kernels *K, int n)
{
    const int64_t nv = (g->oc + K->lanes - 1) / K->lanes;
    return g->ck >= DW_MIN_CK &&
           (n <= DW_FEW_SAMPLES || 100 * (int64_t)g->oc >= (int64_t)K->dw_fill * nv * K->lanes);
}

/* Samples per group of a batch of n. */
static int dw_group_size(const ln_conv_geom *g, int n)
{
    const int chunk = ln_conv_chunk(g);
    int s = (n + DW_GROUPS_MAX - 1) / DW_GROUPS_MAX;
    if (s < DW_GROUP_MIN) s = DW_GROUP_MIN;
    return (s + chunk - 1) / chunk * chunk;
}

/* The weight and bias gradient sums of one group (in this thread's workspace) reduced
 * into dw (oc * ck) and db (oc, if there is a bias), which hold zeros. */
static void dw_reduce(const ln_conv_geom *g, const ln_simd_kernels *K, int transposed, int listed,
                      const float *sums, float *dw, float *db)
{
    if (listed) { /* conv_dw_listed's: oc x ck, then the bias's */
        const int64_t n = g->oc * g->ck;
        for (int64_t i = 0; i < n; i++) dw[i] += sums[i];
        if (db)
            for (int o = 0; o < g->oc; o++) db[o] += sums[n + o];
        return;
    }
    if (!transposed) {
        K->reduce_lanes(g->oc * g->ck, sums, dw);
        if (db) K->reduce_lanes(g->oc, sums + g->oc * g->ck * K->lanes, db);
        return;
    }
    const float *bsums = sums + g->ck * g->ocp;
    K->transpose_add(g->ck, g->oc, sums, g->ocp, dw, g->ck);
    if (db)
        for (int o = 0; o < g->oc; o++) db[o] += bsums[o];
}

/* One sample's channels whose dy plane (at d) may hold anything but +-0, into cs, and
 * their count: a fused dropout2d's kept channels (ds, its scales: not read) and every
 * other channel whose plane's largest magnitude is not 0 (a NaN plane reads infinite
 * and is kept). The products of the others would only add +-0 to sums that start at +0
 * (simd.h: conv_dx, conv_dw_lanes_some): leaving them out keeps the bits. */
static int nonzero_channels(const ln_conv_geom *g, const ln_simd_kernels *K, const float *d, const float *ds, int *cs)
{
    int n = 0;
    for (int o = 0; o < g->oc; o++)
        if ((ds && ds[o] != 0.0f) || K->max_abs(g->p, d + (int64_t)o * g->p) != 0.0f) cs[n++] = o;
    return n;
}

/* Every channel, in order, into cs; their count */
static int all_channels(const ln_conv_geom *g, int *cs)
{
    for (int o = 0; o < g->oc; o++) cs[o] = o;
    return g->oc;
}

/* The channels each sample of a chunk (samples n0.., ns of them, their dy at dyc) takes
 * in the lane-partial weight gradient, as lists in ws->chans (sample s's at s*oc, their
 * counts after the chunk's lists), when positions fill 4 vectors (conv_dw_lanes_some):
 * nonzero_channels, or every channel for a sample whose input is not finite (x * 0 is
 * NaN for an infinite x). Returns how many channels the lists leave out (0: the full
 * kernel runs), or -1 when it makes none. */
static int dw_channels(const ln_layer *l, const ln_conv_geom *g, const ln_simd_kernels *K, const ln_conv_ws *ws,
                       const float *x, const float *dyc, int n0, int ns, const float *drop)
{
    if (g->p != 4 * K->lanes) return -1;
    int *nch = ws->chans + (int64_t)ln_conv_chunk(g) * g->oc, left = 0;
    for (int s = 0; s < ns; s++) {
        int *cs = ws->chans + (int64_t)s * g->oc;
        const int finite = K->max_abs(l->in_n, x + (int64_t)(n0 + s) * l->in_n) < INFINITY;
        nch[s] = finite ? nonzero_channels(g, K, dyc + (int64_t)s * l->out_n,
                                           drop ? drop + (int64_t)(n0 + s) * g->oc : NULL, cs)
                        : all_channels(g, cs);
        left += g->oc - nch[s];
    }
    return left;
}

/* conv_dw_listed's lists (ws->dwl_*) of sample n: the places its fused 2x2 max pooling
 * sends a gradient other than +-0 to, channel by channel, each channel's in increasing
 * position, from the pooling's own gradient (dy, the layer's output gradient): the dy
 * of the convolution's output, the pooling spread out (chunk_dy), is not made. The
 * lists have room for oc x P entries (every_place's), and these are at most a quarter
 * of that, so the 16 entries past them that pool_places may write fit (may_list: oc >= 48). */
static void pooled_places(const ln_layer *l, const ln_conv_geom *g, const ln_simd_kernels *K, const ln_conv_ws *ws,
                          const float *dy, int n, const ln_ctx *ctx)
{
    const int64_t pn = ln_pooled_n(l);
    K->pool_places((int)g->oc, (int)g->oh, (int)g->ow, l->pool_argmax + n * pn, dy + n * pn,
                   l->act_y || l->pool_relu ? l->pool_y + n * pn : NULL,
                   l->pool_drop && ctx->training ? l->pool_drop->mask + (int64_t)n * g->oc : NULL, ws->dwl_start,
                   ws->dwl_pos, ws->dwl_val);
}

/* The lists of every place of every channel with its dy (at d): for the weight gradient
 * of a sample whose input is not finite (x * 0 is NaN for an infinite x). */
static void every_place(const ln_conv_geom *g, const float *d, const ln_conv_ws *ws)
{
    int n = 0;
    for (int o = 0; o < g->oc; o++) {
        ws->dwl_start[o] = n;
        for (int p = 0; p < (int)g->p; p++) {
            ws->dwl_pos[n] = p;
            ws->dwl_val[n++] = d[(int64_t)o * g->p + p];
        }
    }
    ws->dwl_start[g->oc] = n;
}

/* The lists of the places whose dy (at d) is not +-0: for a layer whose output gradient
 * comes from a max pooling it does not take in (ln_layer.dy_sparse), one place a window
 * at most. Written without a branch on the data (see pooled_places), n moved on by the
 * test's 0 or 1; the lists have room for every place. */
static void nonzero_places(const ln_conv_geom *g, const float *d, const ln_conv_ws *ws)
{
    int n = 0;
    for (int o = 0; o < g->oc; o++) {
        ws->dwl_start[o] = n;
        const float *dp = d + (int64_t)o * g->p;
        for (int p = 0; p < (int)g->p; p++) {
            ws->dwl_pos[n] = p;
            ws->dwl_val[n] = dp[p];
            n += dp[p] != 0.0f;
        }
    }
    ws->dwl_start[g->oc] = n;
}

/* Whether the input gradient takes conv_dx_listed: after a fused max pooling, with
 * finite weights (sparse), on a layer may_list admits. It then reads the maxima's lists
 * (pooled_places) and no dy. */
static int dx_listed(const ln_layer *l, const ln_conv_geom *g, int sparse)
{
    return l->pool_y && sparse && may_list(g);
}

/* conv_dx_listed's lists (position by position, each position's channels in increasing
 * order) from pooled_places' (channel by channel): a counting sort by position. */
static void position_lists(const ln_conv_geom *g, const ln_conv_ws *ws)
{
    const int64_t P = g->p;
    int *start = ws->dxl_start;
    memset(start, 0, sizeof(int) * (size_t)(P + 1));
    const int n = ws->dwl_start[g->oc];
    for (int i = 0; i < n; i++) start[ws->dwl_pos[i] + 1]++;
    for (int64_t p = 0; p < P; p++) start[p + 1] += start[p];
    for (int o = 0; o < g->oc; o++) /* start[p] moves on to where p's terms end */
        for (int i = ws->dwl_start[o]; i < ws->dwl_start[o + 1]; i++) {
            const int at = start[ws->dwl_pos[i]]++;
            ws->dxl_chan[at] = o;
            ws->dxl_val[at] = ws->dwl_val[i];
        }
    for (int64_t p = P; p > 0; p--) start[p] = start[p - 1];
    start[0] = 0;
}

/* The input gradient of one sample (its dy at d, oc x P floats; NULL when it takes the
 * lists, use_lists: pooled_places' or nonzero_places', at most dx_list_room entries)
 * into dx. */
static void dx_sample(const ln_layer *l, const ln_conv_geom *g, const ln_simd_kernels *K, const ln_conv_ws *ws,
                      const float *d, int sparse, const float *drop, const int *listed, int nlisted, int use_lists,
                      float *dx)
{
    memset(ws->drows, 0, sizeof(float) * (size_t)g->unf_n);
    if (use_lists) { /* a quarter of the places at most hold a gradient */
        position_lists(g, ws);
        K->conv_dx_listed(g, l->weight, ws->dxl_start, ws->dxl_chan, ws->dxl_val, ws->dxl, ws->drows);
        K->conv_fold(g, ws->drows, dx);
        return;
    }
    /* with finite weights (sparse), the channels whose dy plane is not all +-0: the
     * weight gradient's list of them when it made one (it keeps every channel of a
     * sample whose input is not finite), else nonzero_channels; all of them otherwise */
    const int *chans = listed && sparse ? listed : ws->chans;
    const int nch = listed && sparse ? nlisted
                    : sparse         ? nonzero_channels(g, K, d, drop, ws->chans)
                                     : all_channels(g, ws->chans);
    const int64_t pp = (g->p + K->lanes - 1) / K->lanes * K->lanes;
    if (pp != g->p) { /* rows of dy zero-padded to whole vectors */
        for (int o = 0; o < g->oc; o++) {
            memcpy(ws->dypad + o * pp, d + o * g->p, sizeof(float) * (size_t)g->p);
            memset(ws->dypad + o * pp + g->p, 0, sizeof(float) * (size_t)(pp - g->p));
        }
        d = ws->dypad;
    }
    K->conv_dx(g, l->weight, d, pp, chans, nch, ws->drows);
    K->conv_fold(g, ws->drows, dx);
}

/* The dy of samples [n0, n0 + ns) (ns <= a chunk) through the layers fused after this
 * one (pooling, its ReLU, a dropout2d), into scratch; dy itself when there are none. */
static const float *chunk_dy(const ln_layer *l, const ln_conv_geom *g, const ln_simd_kernels *K, const ln_conv_ws *ws,
                             const float *dy, int n0, int ns, const ln_ctx *ctx)
{
    if (l->grad_bn) { /* dy was left unwritten by the batchnorm after this layer */
        batchnorm_input_grad(l->grad_bn, ctx, n0, ns, ws->dym);
        return ws->dym;
    }
    if (l->pool_y) { /* dy is the fused pooling's (or its ReLU's) output gradient */
        const int64_t pn = ln_pooled_n(l);
        K->maxpool2_bwd((int64_t)ns * g->oc, g->oh, g->ow, dy + n0 * pn, l->pool_argmax + n0 * pn,
                        l->act_y || l->pool_relu ? l->pool_y + n0 * pn : NULL, 0, NULL, ws->dym);
        if (l->pool_drop && ctx->training) /* a fused dropout2d's backward */
            K->scale_runs((int64_t)ns * g->oc, g->p, ws->dym, l->pool_drop->mask + (int64_t)n0 * g->oc, ws->dym);
        return ws->dym;
    }
    if (l->act_y) {
        K->relu_bwd(ns * l->out_n, l->act_y + n0 * l->out_n, dy + n0 * l->out_n, ws->dym);
        return ws->dym;
    }
    return dy + (int64_t)n0 * l->out_n;
}

/* The samples whose input gradient thread u of T computes, [*b0, *b1). The threads take
 * whole groups for the weight gradient, and a batch rarely splits into groups evenly
 * (64 samples in chunks of 3: groups of 18, 18, 18 and 10, so 36 samples against 28 on
 * 2 threads; Fashion's conv2 backward waited 21% on the first thread). An input gradient
 * is one sample's alone, the same bits on any thread, so these even the work out: thread
 * u takes the samples, in sample order, that bring its weight-gradient samples plus its
 * input-gradient samples to 2 batch / T (the two cost the same FLOPs). */
static void dx_range(int batch, int gs, int groups, int u, int T, int *b0, int *b1)
{
    int bound[2];
    for (int e = 0; e < 2; e++) {
        const int v = u + e;
        int64_t g0, g1, lo = 0;
        if (v >= T) {
            bound[e] = batch;
            continue;
        }
        for (int w = 0; w <= v; w++) { /* thread w's first weight-gradient sample */
            ln_split(groups, w, T, &g0, &g1);
            int64_t want = 2 * (int64_t)batch * w / T - (g0 * gs < batch ? g0 * gs : batch);
            if (want < lo) want = lo; /* boundaries in order */
            if (want > batch) want = batch;
            lo = want;
        }
        bound[e] = (int)lo;
    }
    *b0 = bound[0];
    *b1 = bound[1];
}

/* Thread t's share of the backward pass: its groups of samples (dw_group_size), chunk
 * by chunk: the chunk's dy (through the fused layers' backward), unfolded inputs (and,
 * transposed, dy transposed), the weight gradient's sums over the chunk, then the input
 * gradient of each of the chunk's samples that dx_range gives this thread (each sample's
 * alone: the same bits on any thread, in any order); then those of its samples in other
 * threads' groups. At a group's end its sums are reduced: the first group's into the
 * gradients (zeroed by net.c), the others' into their place in the shared workspace,
 * which conv2d_backward_reduce adds to the gradients afterwards, on one thread. */
void conv2d_backward_part(ln_layer *l, const float *x, const float *dy, float *dx,
                          const ln_ctx *ctx, int t, int T)
{
    const ln_conv_geom g = geom_of(l);
    const ln_simd_kernels *K = ln_simd();
    ln_conv_ws ws = ln_conv_ws_of(&g, ctx->workspace);
    ln_conv_ws shared = ln_conv_ws_of(&g, ctx->shared ? ctx->shared : ctx->workspace);
    const int lanes = K->lanes, chunk = ln_conv_chunk(&g), transposed = dw_transposed(&g, K, ctx->batch);
    /* A batch of one chunk that takes the transposed kernel: its rows transposed instead
     * of dy, and the gradient as linear's weight gradient (positions as samples, vectors
     * along the rows, so no lane is padding: the study's conv2 has 20 channels in 32
     * lanes). Each (o, k) is then the same chain of FMAs in the same order as in the
     * transposed kernel, written as 0 + the sum as its reduction writes it: the same bits. */
    const int along_rows = transposed && ws.rowst && ctx->batch <= DW_FEW_SAMPLES && ctx->batch <= chunk;
    /* the sums: transposed, the bias's after the weight's; lane partials likewise */
    float *bsums = ws.sums + (transposed ? g.ck * g.ocp : g.oc * g.ck * lanes);
    const int gs = dw_group_size(&g, ctx->batch), groups = (ctx->batch + gs - 1) / gs;
    const int64_t wn = g.oc * g.ck + g.oc; /* floats of one group's gradients */
    int64_t g0, g1;
    ln_split(groups, t, T, &g0, &g1);
    int dx0 = 0, dx1 = 0; /* this thread's input gradients */
    if (dx) dx_range(ctx->batch, gs, groups, t, T, &dx0, &dx1);
    /* the input gradients skip the all-zero dy planes (nonzero_channels) when the weights
     * are finite; a fused dropout2d's scales say which planes can be */
    const int sparse = dx && K->max_abs(g.oc * g.ck, l->weight) < INFINITY;
    const float *drop = l->pool_drop && ctx->training ? l->pool_drop->mask : NULL;
    /* Before a max pooling it does not take in (any window but a fused 2x2 one; net.c's
     * dy_sparse), the output gradient is +-0 but at one place a window at most (make
     * bench's pool3max net: 3x3 windows of stride 2, at most 49 of conv2's 225 places a
     * channel): the listed gradients below, from the places of dy that are not +-0
     * (nonzero_places) */
    const int sparse_dy = l->dy_sparse && !l->pool_y && !l->grad_bn;
    /* After a fused max pooling, the transposed kernel's sums sample by sample over the
     * places the pooling sent a gradient to (conv_dw_listed; the same layers as
     * conv_dx_listed), the lists shared with the input gradient */
    const int listed = transposed && !along_rows && (l->pool_y || sparse_dy) && may_list(&g);
    const int dxl = dx && dx_listed(l, &g, sparse); /* the input gradients take the maxima's lists */
    const int64_t room = dx_list_room(&g);
    for (int64_t grp = g0; grp < g1; grp++) {
        const int s0 = (int)grp * gs, s1 = s0 + gs < ctx->batch ? s0 + gs : ctx->batch;
        for (int n0 = s0; n0 < s1; n0 += chunk) {
            const int ns = s1 - n0 < chunk ? s1 - n0 : chunk;
            /* the listed gradients read the pooling's own gradient instead */
            const float *dyc = listed && !sparse_dy ? NULL : chunk_dy(l, &g, K, &ws, dy, n0, ns, ctx);
            int left = -1; /* channels the weight gradient left out; -1: it made no lists */
            const int *nlist = ws.chans + (int64_t)chunk * g.oc;
            for (int s = 0; s < ns; s++) {
                if (n0 + s + 1 < s1 && l->in_n >= PREFETCH_BWD_MIN_FLOATS)
                    prefetch_floats(x + (int64_t)(n0 + s + 1) * l->in_n, l->in_n);
                K->conv_unfold(&g, x + (int64_t)(n0 + s) * l->in_n, ws.rows + s * ws.unf);
                if (transposed && !listed) K->conv_dy_transpose(&g, dyc + (int64_t)s * l->out_n, ws.dyt + s * g.p * g.ocp);
                if (along_rows) K->conv_rows_transpose(&g, ws.rows + s * ws.unf, ws.rowst + s * g.p * g.ck);
            }
            if (listed) {
                if (n0 == s0) memset(ws.sums, 0, sizeof(float) * (size_t)wn);
                for (int s = 0; s < ns; s++) {
                    const int n = n0 + s;
                    const int finite = K->max_abs(l->in_n, x + (int64_t)n * l->in_n) < INFINITY;
                    /* the sample's dy, made only where needed */
                    const float *ds = sparse_dy ? dyc + (int64_t)s * l->out_n : NULL;
                    if (sparse_dy)
                        (finite ? nonzero_places : every_place)(&g, ds, &ws);
                    else if (finite)
                        pooled_places(l, &g, K, &ws, dy, n, ctx);
                    else
                        every_place(&g, ds = chunk_dy(l, &g, K, &ws, dy, n, 1, ctx), &ws);
                    K->conv_rows_transpose(&g, ws.rows + s * ws.unf, ws.dxl);
                    K->conv_dw_listed(&g, ws.dxl, ws.dwl_start, ws.dwl_pos, ws.dwl_val, ws.sums,
                                      l->dbias ? ws.sums + g.oc * g.ck : NULL);
                    if (!dx || n < dx0 || n >= dx1) continue;
                    int lists = dxl;
                    if (sparse_dy) /* the lists when they fit, else dy itself */
                        lists = sparse && finite && ws.dwl_start[g.oc] <= room;
                    else if (!dxl && !ds)
                        ds = chunk_dy(l, &g, K, &ws, dy, n, 1, ctx);
                    else if (dxl && !finite) /* the maxima's, not every place */
                        pooled_places(l, &g, K, &ws, dy, n, ctx);
                    dx_sample(l, &g, K, &ws, ds, sparse, drop ? drop + (int64_t)n * g.oc : NULL, NULL, 0, lists,
                              dx + (int64_t)n * l->in_n);
                }
                continue; /* the chunk's input gradients are done */
            }
            if (along_rows)
                K->linear_bwd(ns * (int)g.p, (int)g.ck, (int)g.ocp, ws.rowst, NULL, ws.dyt, l->dweight, l->dbias, NULL,
                              0, g.oc, 0, 0);
            else if (transposed)
                K->conv_dw(&g, 0, g.oc, 0, g.ck, ns, ws.dyt, ws.rows, ws.unf, ws.sums, l->dbias ? bsums : NULL,
                           n0 == s0);
            else if ((left = dw_channels(l, &g, K, &ws, x, dyc, n0, ns, drop)) > 0)
                K->conv_dw_lanes_some(&g, ns, dyc, l->out_n, ws.rows, ws.unf, ws.sums, l->dbias ? bsums : NULL,
                                      n0 == s0, ws.chans, nlist);
            else
                K->conv_dw_lanes(&g, 0, g.oc, 0, g.ck, ns, dyc, l->out_n, ws.rows, ws.unf, ws.sums,
                                 l->dbias ? bsums : NULL, n0 == s0);
            for (int s = 0; dx && s < ns; s++)
                if (n0 + s >= dx0 && n0 + s < dx1) {
                    if (dxl) pooled_places(l, &g, K, &ws, dy, n0 + s, ctx);
                    dx_sample(l, &g, K, &ws, dyc + (int64_t)s * l->out_n, sparse, drop ? drop + (int64_t)(n0 + s) * g.oc : NULL,
                              left >= 0 ? ws.chans + (int64_t)s * g.oc : NULL, left >= 0 ? nlist[s] : 0, dxl,
                              dx + (int64_t)(n0 + s) * l->in_n);
                }
        }
        if (along_rows) continue; /* the gradients are written */
        float *dw = l->dweight, *db = l->dbias;
        if (grp > 0) {
            dw = shared.groups + (grp - 1) * wn;
            db = l->dbias ? dw + g.oc * g.ck : NULL;
            memset(dw, 0, sizeof(float) * (size_t)wn);
        }
        dw_reduce(&g, K, transposed, listed, ws.sums, dw, db);
    }
    /* this thread's input gradients in other threads' groups, a chunk at a time */
    const int own0 = g0 * gs < ctx->batch ? (int)g0 * gs : ctx->batch;
    const int own1 = g1 * gs < ctx->batch ? (int)g1 * gs : ctx->batch;
    for (int n0 = dx0; n0 < dx1;) {
        if (n0 >= own0 && n0 < own1) { /* done with the weight gradient */
            n0 = own1;
            continue;
        }
        int ns = dx1 - n0 < chunk ? dx1 - n0 : chunk;
        if (n0 < own0 && n0 + ns > own0) ns = own0 - n0;
        const float *dyc = dxl ? NULL : chunk_dy(l, &g, K, &ws, dy, n0, ns, ctx);
        for (int s = 0; s < ns; s++) {
            int lists = dxl;
            if (!dyc) {
                pooled_places(l, &g, K, &ws, dy, n0 + s, ctx);
            } else if (sparse_dy && sparse && may_list(&g)) { /* as in the weight gradient's loop */
                nonzero_places(&g, dyc + (int64_t)s * l->out_n, &ws);
                lists = ws.dwl_start[g.oc] <= room;
            }
            dx_sample(l, &g, K, &ws, lists ? NULL : dyc + (int64_t)s * l->out_n, sparse,
                      drop ? drop + (int64_t)(n0 + s) * g.oc : NULL, NULL, 0, lists, dx + (int64_t)(n0 + s) * l->in_n);
        }
        n0 += ns;
    }
}

/* The groups' gradients after the first (in the shared workspace) added to the layer's
 * gradients, in group order. */
void conv2d_backward_reduce(ln_layer *l, const ln_ctx *ctx)
{
    const ln_conv_geom g = geom_of(l);
    ln_conv_ws shared = ln_conv_ws_of(&g, ctx->shared ? ctx->shared : ctx->workspace);
    const int gs = dw_group_size(&g, ctx->batch), groups = (ctx->batch + gs - 1) / gs;
    const int64_t wn = g.oc * g.ck + g.oc, n = g.oc * g.ck;
    for (int grp = 1; grp < groups; grp++) {
        const float *dw = shared.groups + (grp - 1) * wn;
        for (int64_t i = 0; i < n; i++) l->dweight[i] += dw[i];
        if (l->dbias)
            for (int o = 0; o < g.oc; o++) l->dbias[o] += dw[n + o];
    }
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
