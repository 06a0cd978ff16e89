/* pool.c - max and average pooling, square window, no padding, floor mode.
 *
 * Shapes (per sample): C x H x W -> C x OH x OW, OH = (H - kernel) / stride + 1.
 * Max pooling keeps the first maximum of a window (as PyTorch's CPU kernel) and lets
 * NaN win, so a NaN anywhere is never hidden; the chosen input offset is saved for
 * backward.
 */
#include "layer.h"
#include "simd.h"

#include <string.h>

/* A pooling's geometry over a batch: planes of h x w in, oh x ow out, window k, stride s,
 * and the average's 1 / k^2. */
typedef struct {
    int64_t planes;
    int h, w, oh, ow, k, s;
    float inv;
} pool_dims;

static pool_dims dims_of(const ln_layer *l, const ln_ctx *ctx)
{
    pool_dims d;
    d.planes = (int64_t)ctx->batch * l->in.dim[0];
    d.h = (int)l->in.dim[1];
    d.w = (int)l->in.dim[2];
    d.oh = (int)l->out.dim[1];
    d.ow = (int)l->out.dim[2];
    d.k = l->spec.kernel;
    d.s = l->spec.stride;
    d.inv = 1.0f / (float)(d.k * d.k);
    return d;
}

/* 2x2 windows with stride 2 (the study's net, the custom and CIFAR nets;
 * ln_pool_is_2x2) go to their own vectorised kernels, other windows forward to kernels
 * for any window (simd.h maxpool_fwd, avgpool_fwd), all bit for bit the reference. Other
 * windows backward: the max pooling's is the reference (one addition per output), the
 * average pooling's is avgpool_backward_any. */

/* The 2x2 kernels apply a ReLU that follows (max then ReLU, exactly as two layers). */
int maxpool2d_absorbs_act(const ln_layer *l, ln_layer_kind act) { return ln_pool_is_2x2(l) && act == LN_RELU; }

void maxpool2d_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    if (!ln_pool_is_2x2(l)) {
        const pool_dims d = dims_of(l, ctx);
        ln_simd()->maxpool_fwd(d.planes, d.h, d.w, d.k, d.s, x, y, l->argmax);
        return;
    }
    ln_simd()->maxpool2_fwd((int64_t)ctx->batch * l->in.dim[0], (int)l->in.dim[1],
                            (int)l->in.dim[2], x, y, l->argmax, l->act_y != NULL, 0);
}

/* The reference's scatter plane by plane: each plane zeroed just before its outputs add
 * to it, so it is still in the cache (one pass over dx instead of a memset of all of it
 * and a second pass): the same additions in the same order. A gather (each input from
 * the outputs whose windows hold it) was slower: the scatter touches each output once. */
static void maxpool_backward_planes(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx)
{
    const pool_dims d = dims_of(l, ctx);
    const int64_t hw = (int64_t)d.h * d.w, ohw = (int64_t)d.oh * d.ow;
    for (int64_t plane = 0; plane < d.planes; plane++) {
        const int32_t *ap = l->argmax + plane * ohw;
        const float *dyp = dy + plane * ohw;
        float *dxp = dx + plane * hw;
        memset(dxp, 0, sizeof(float) * (size_t)hw);
        for (int64_t i = 0; i < ohw; i++) dxp[ap[i]] += dyp[i];
    }
}

void maxpool2d_backward(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx)
{
    if (!ln_pool_is_2x2(l)) {
        maxpool_backward_planes(l, dy, dx, ctx);
        return;
    }
    ln_simd()->maxpool2_bwd((int64_t)ctx->batch * l->in.dim[0], (int)l->in.dim[1],
                            (int)l->in.dim[2], dy, l->argmax, l->act_y, 0, NULL, dx);
}

/* ---- reference twins: any window, scalar ---- */

void maxpool2d_forward_reference(ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    const pool_dims d = dims_of(l, ctx);
    const int h = d.h, w = d.w, oh = d.oh, ow = d.ow, k = d.k, s = d.s;
    for (int64_t plane = 0; plane < d.planes; plane++) {
        const float *xp = x + plane * h * w;
        float *yp = y + plane * oh * ow;
        int32_t *ap = l->argmax + plane * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int best = (oy * s) * w + ox * s;
                float bv = xp[best];
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++) {
                        int idx = (oy * s + ki) * w + ox * s + kj;
                        float v = xp[idx];
                        if (v > bv || (v != v && bv == bv)) {
                            bv = v;
                            best = idx;
                        }
                    }
                yp[oy * ow + ox] = bv;
                ap[oy * ow + ox] = best;
            }
    }
}

void maxpool2d_backward_reference(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx)
{
    const int64_t planes = (int64_t)ctx->batch * l->in.dim[0];
    const int64_t hw = l->in.dim[1] * l->in.dim[2];
    const int64_t ohw = l->out.dim[1] * l->out.dim[2];
    memset(dx, 0, sizeof(float) * (size_t)(planes * hw));
    for (int64_t plane = 0; plane < planes; plane++) {
        const int32_t *ap = l->argmax + plane * ohw;
        const float *dyp = dy + plane * ohw;
        float *dxp = dx + plane * hw;
        for (int64_t i = 0; i < ohw; i++) dxp[ap[i]] += dyp[i];
    }
}

void avgpool2d_forward(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    if (!ln_pool_is_2x2(l)) {
        const pool_dims d = dims_of(l, ctx);
        ln_simd()->avgpool_fwd(d.planes, d.h, d.w, d.k, d.s, x, y);
        return;
    }
    ln_simd()->avgpool2_fwd((int64_t)ctx->batch * l->in.dim[0], (int)l->in.dim[1],
                            (int)l->in.dim[2], x, y);
}

/* The reference's sums in another loop order, the same bits: an input takes the
 * gradients of its windows in the order of their outputs (row, then column), starting
 * from +0, in both. The reference goes output by output, so where windows overlap
 * (stride < window) each addition waits on the one before it through memory; here a
 * window row's column offsets go from last to first, each a pass along the output row
 * that touches every input once (for one input, a later window has an earlier offset),
 * so the additions of a pass are independent. */
static void avgpool_backward_any(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx)
{
    const pool_dims d = dims_of(l, ctx);
    const int h = d.h, w = d.w, oh = d.oh, ow = d.ow, k = d.k, s = d.s;
    const float inv = d.inv;
    memset(dx, 0, sizeof(float) * (size_t)(d.planes * h * w));
    for (int64_t plane = 0; plane < d.planes; plane++) {
        float *dxp = dx + plane * h * w;
        const float *dyp = dy + plane * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ki = 0; ki < k; ki++) {
                float *row = dxp + (int64_t)(oy * s + ki) * w;
                const float *g = dyp + oy * ow;
                for (int kj = k - 1; kj >= 0; kj--)
                    for (int ox = 0; ox < ow; ox++) row[ox * s + kj] += g[ox] * inv;
            }
    }
}

void avgpool2d_backward(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx)
{
    if (!ln_pool_is_2x2(l)) {
        const pool_dims d = dims_of(l, ctx);
        if (!ln_simd()->avgpool_bwd_any(d.planes, d.h, d.w, d.k, d.s, dy, dx))
            avgpool_backward_any(l, dy, dx, ctx);
        return;
    }
    ln_simd()->avgpool2_bwd((int64_t)ctx->batch * l->in.dim[0], (int)l->in.dim[1],
                            (int)l->in.dim[2], dy, dx);
}

void avgpool2d_forward_reference(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    const pool_dims d = dims_of(l, ctx);
    const int h = d.h, w = d.w, oh = d.oh, ow = d.ow, k = d.k, s = d.s;
    const float inv = d.inv;
    for (int64_t plane = 0; plane < d.planes; plane++) {
        const float *xp = x + plane * h * w;
        float *yp = y + plane * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float sum = 0.0f;
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++) sum += xp[(oy * s + ki) * w + ox * s + kj];
                yp[oy * ow + ox] = sum * inv;
            }
    }
}

void avgpool2d_backward_reference(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx)
{
    const pool_dims d = dims_of(l, ctx);
    const int h = d.h, w = d.w, oh = d.oh, ow = d.ow, k = d.k, s = d.s;
    const float inv = d.inv;
    memset(dx, 0, sizeof(float) * (size_t)(d.planes * h * w));
    for (int64_t plane = 0; plane < d.planes; plane++) {
        float *dxp = dx + plane * h * w;
        const float *dyp = dy + plane * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float g = dyp[oy * ow + ox] * inv;
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++) dxp[(oy * s + ki) * w + ox * s + kj] += g;
            }
    }
}
