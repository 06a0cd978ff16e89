/* layer_split.c - how the work of each layer kind is shared among the threads of one
 * run (net.c runs a region per layer; core/workers.h).
 *
 * The rule that keeps results independent of the thread count: a thread computes
 * whole output elements, each with the same sequence of operations as on one thread.
 *  - samples are independent in every forward kernel and in every input gradient:
 *    those are split by samples (contiguous ranges);
 *  - parameter gradients sum over the batch: linear splits them by output channels,
 *    batchnorm by channels; conv2d sums them in groups of samples that the batch size
 *    alone fixes (conv2d.c, dw_group_size), a thread taking whole groups, and adds the
 *    groups' gradients in group order afterwards;
 *  - dropout in training draws its mask from one random stream in sample order: each
 *    thread draws its samples' entries from a copy of the stream jumped ahead to them
 *    (ln_rng_advance), and the stream is advanced past the batch after the region (a
 *    conv2d that takes in a dropout2d draws its mask the same way, sample range by range).
 * The reference twins run on one thread except where they are per sample anyway.
 */
#include "workers.h"
#include "layer.h"

/* Elementwise passes over fewer floats than this stay on one thread: waking the
 * others costs more than they would save. */
#define SPLIT_MIN_FLOATS 16384

int ln_layer_split_by_size(const ln_layer *l, const ln_ctx *ctx)
{
    return (int64_t)ctx->batch * (l->in_n > l->out_n ? l->in_n : l->out_n) >= SPLIT_MIN_FLOATS;
}

int ln_layer_split_ok(const ln_layer *l, const ln_ctx *ctx, int backward)
{
    const ln_layer_ops *k = ln_layer_ops_of(l->spec.kind);
    if (ctx->reference && backward) return 0;
    return k->split_ok ? k->split_ok(l, ctx, backward) : ln_layer_split_by_size(l, ctx);
}

/* Thread t's samples as a layer and context of their own: the per-sample saved state
 * (pooling indices, dropout masks) is offset to the first of them. Returns 0 when the
 * thread has no samples. */
static int sample_share(const ln_layer *l, const ln_ctx *ctx, int t, int T, ln_layer *sub,
                        ln_ctx *sctx, int64_t *first)
{
    int64_t b0, b1;
    ln_split(ctx->batch, t, T, &b0, &b1);
    if (b0 >= b1) return 0;
    *sub = *l;
    if (l->argmax) sub->argmax = l->argmax + b0 * ln_layer_argmax_per_sample(l);
    if (l->mask) sub->mask = l->mask + b0 * ln_layer_mask_per_sample(l);
    if (l->act_y) sub->act_y = l->act_y + b0 * l->out_n;
    if (l->pool_y) sub->pool_y = l->pool_y + b0 * ln_pooled_n(l);
    if (l->pool_argmax) sub->pool_argmax = l->pool_argmax + b0 * ln_pooled_n(l);
    *sctx = *ctx;
    sctx->batch = (int)(b1 - b0);
    *first = b0;
    return 1;
}

void ln_layer_forward_part(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int t, int T)
{
    const ln_layer_ops *k = ln_layer_ops_of(l->spec.kind);
    if (k->forward_part) {
        k->forward_part(l, x, y, ctx, t, T);
        return;
    }
    ln_layer sub;
    ln_ctx sctx;
    int64_t b0;
    if (!sample_share(l, ctx, t, T, &sub, &sctx, &b0)) return;
    ln_layer_forward(&sub, x + b0 * l->in_n, y + b0 * l->out_n, &sctx);
}

void ln_layer_backward_part(ln_layer *l, const float *x, const float *y, const float *dy,
                            float *dx, const ln_ctx *ctx, int t, int T)
{
    const ln_layer_ops *k = ln_layer_ops_of(l->spec.kind);
    if (k->backward_part) {
        k->backward_part(l, x, dy, dx, ctx, t, T);
        return;
    }
    ln_layer sub;
    ln_ctx sctx;
    int64_t b0;
    if (!dx || !sample_share(l, ctx, t, T, &sub, &sctx, &b0)) return;
    /* with a fused pooling, dy is the pooling's output gradient */
    const int64_t dy_n = l->pool_y ? ln_pooled_n(l) : l->out_n;
    ln_layer_backward(&sub, x + b0 * l->in_n, y + b0 * l->out_n, dy + b0 * dy_n, dx + b0 * l->in_n, &sctx);
}

void ln_layer_forward_finish(ln_layer *l, const ln_ctx *ctx)
{
    const ln_layer_ops *k = ln_layer_ops_of(l->spec.kind);
    if (k->forward_finish) k->forward_finish(l, ctx);
}

void ln_layer_backward_finish(ln_layer *l, const ln_ctx *ctx)
{
    const ln_layer_ops *k = ln_layer_ops_of(l->spec.kind);
    if (k->backward_finish) k->backward_finish(l, ctx);
}
