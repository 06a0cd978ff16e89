/* dropout.c - Dropout (elementwise) and Dropout2d (whole channels), as PyTorch's
 * nn.Dropout / nn.Dropout2d.
 *
 * Shapes (per sample): any shape in, same shape out. Dropout2d reads the input as
 * C x (rest), C = in.dim[0], and zeroes whole channels.
 * Mask (training only): Dropout: batch x in_n keep-scales; Dropout2d: batch x C.
 * A keep-scale is 0 (dropped) or 1/(1-p) (kept), so the expected output equals the
 * input and eval mode can be the identity.
 *
 * Draws: one ln_rng_uniform per mask entry, sample-major then element/channel, drop
 * when the draw is < p. p <= 0 and p >= 1 have a certain outcome and draw nothing
 * (PyTorch also short-cuts p == 0), so the stream only advances for real dropout.
 * The output is x * scale, not a select, so a NaN or Inf input stays visible even
 * when dropped, as in PyTorch (which multiplies by the noise tensor).
 */
#include "layer.h"
#include "simd.h"
#include "workers.h" /* ln_split */

#include <string.h>

/* Mask entries per sample and input elements covered by each entry. */
static void mask_layout(const ln_layer *l, int64_t *per_sample, int64_t *span)
{
    if (l->spec.kind == LN_DROPOUT2D && l->in.ndim >= 1 && l->in.dim[0] > 0) {
        *per_sample = l->in.dim[0];
        *span = l->in_n / l->in.dim[0];
    } else {
        *per_sample = l->in_n;
        *span = 1;
    }
}

/* out = in * mask, each mask entry scaling its span of elements. Forward and backward
 * both multiply by the same keep-scales (the layer is linear in its input). The fast
 * path (core/simd_impl.h) does the same products a vector at a time; these loops are
 * its reference twin. */
static void apply_mask(const ln_layer *l, const ln_ctx *ctx, const float *in, float *out)
{
    int64_t per_sample, span;
    mask_layout(l, &per_sample, &span);
    const int64_t entries = (int64_t)ctx->batch * per_sample;
    if (!ctx->reference) {
        ln_simd()->scale_runs(entries, span, in, l->mask, out);
        return;
    }
    if (span == 1) {
        for (int64_t i = 0; i < entries; i++) out[i] = in[i] * l->mask[i];
        return;
    }
    for (int64_t e = 0; e < entries; e++) {
        const float s = l->mask[e];
        const float *ins = in + e * span;
        float *outs = out + e * span;
        for (int64_t i = 0; i < span; i++) outs[i] = ins[i] * s;
    }
}

/* The keep-scales of mask entries [e0, e1), rng positioned at entry e0's draw. The
 * fast path (ln_simd()->dropout_mask) draws 8 entries at a time; the loop below is its
 * reference twin. */
static void draw_mask(ln_layer *l, ln_rng *rng, int64_t e0, int64_t e1, int reference)
{
    const float p = l->spec.p;
    if (!(p > 0.0f) || !rng) {
        /* p == 0: nothing is dropped. A missing rng cannot draw; keeping everything is
         * the only outcome that does not invent randomness (the net checks for it). */
        for (int64_t i = e0; i < e1; i++) l->mask[i] = 1.0f;
    } else if (p >= 1.0f) {
        /* Everything is dropped; 1/(1-p) would divide by zero, and no scale is needed. */
        for (int64_t i = e0; i < e1; i++) l->mask[i] = 0.0f;
    } else {
        /* The scale in double then rounded once, so it is the float nearest 1/(1-p). */
        const float scale = (float)(1.0 / (1.0 - (double)p));
        if (!reference) {
            ln_simd()->dropout_mask(rng, e1 - e0, p, scale, l->mask + e0);
            return;
        }
        for (int64_t i = e0; i < e1; i++) l->mask[i] = ln_rng_uniform(rng) < p ? 0.0f : scale;
    }
}

/* Whether a training forward of l draws from ctx->rng (one draw per mask entry). */
static int draws(const ln_layer *l, const ln_ctx *ctx)
{
    return ctx->training && ctx->rng && l->spec.p > 0.0f && l->spec.p < 1.0f;
}

/* The mask entries of samples [b0, b1) of a training pass, drawn from a copy of the
 * stream jumped ahead past the entries of the samples before (the same draws as on one
 * thread); ctx->rng is only read here, and dropout_forward_finish advances it past the
 * whole batch after the region. Also for a layer that takes in a dropout2d
 * (ln_layer.pool_drop). */
void dropout_draw_part(ln_layer *l, const ln_ctx *ctx, int64_t b0, int64_t b1)
{
    int64_t per_sample, span;
    mask_layout(l, &per_sample, &span);
    ln_rng rng, *from = ctx->rng; /* drawn from only when draws() says so */
    if (draws(l, ctx)) {
        rng = *ctx->rng;
        ln_rng_advance(&rng, (uint64_t)(b0 * per_sample));
        from = &rng;
    }
    draw_mask(l, from, b0 * per_sample, b1 * per_sample, ctx->reference);
}

/* Thread t of T: the samples ln_split gives it, their mask entries drawn as above. */
void dropout_forward_part(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int t, int T)
{
    int64_t b0, b1, per_sample, span;
    ln_split(ctx->batch, t, T, &b0, &b1);
    if (b0 >= b1) return;
    if (!ctx->training) { /* the identity */
        if (y != x) memcpy(y + b0 * l->in_n, x + b0 * l->in_n, sizeof(float) * (size_t)((b1 - b0) * l->in_n));
        return;
    }
    dropout_draw_part(l, ctx, b0, b1);
    mask_layout(l, &per_sample, &span);
    ln_layer sub = *l;
    sub.mask = l->mask + b0 * per_sample;
    ln_ctx sctx = *ctx;
    sctx.batch = (int)(b1 - b0);
    apply_mask(&sub, &sctx, x + b0 * l->in_n, y + b0 * l->in_n);
}

void dropout_forward_finish(ln_layer *l, const ln_ctx *ctx)
{
    int64_t per_sample, span;
    mask_layout(l, &per_sample, &span);
    if (draws(l, ctx)) ln_rng_advance(ctx->rng, (uint64_t)ctx->batch * (uint64_t)per_sample);
}

/* One thread: the one part of the batch and the stream advanced past it, so one thread
 * and many draw alike by construction. */
void dropout_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    dropout_forward_part(l, x, y, ctx, 0, 1);
    dropout_forward_finish(l, ctx);
}

void dropout_backward(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx)
{
    if (!dx) return;
    const int64_t total = (int64_t)ctx->batch * l->in_n;
    if (!ctx->training) {
        /* Eval forward was the identity, so is its derivative. */
        if (dx != dy) memcpy(dx, dy, sizeof(float) * (size_t)total);
        return;
    }
    apply_mask(l, ctx, dy, dx);
}
