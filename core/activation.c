/* activation.c - elementwise ReLU, Tanh, Sigmoid, LeakyReLU; any shape in, same shape
 * out. Backward uses the saved output y (as PyTorch does for ReLU, Tanh and Sigmoid)
 * or, for LeakyReLU, the input x (as PyTorch: y's sign says nothing when the slope is
 * negative). ReLU, Tanh and Sigmoid run vectorised kernels (core/simd_impl.h: tanh and
 * sigmoid from a polynomial exp, within a few ulp of the C library's); LeakyReLU a
 * branch-free loop that the compiler vectorises (a select, the same products). The
 * reference twins are the scalar loops, PyTorch's formulas element by element. */
#include "layer.h"
#include "simd.h"

#include <math.h>
#include <string.h>

/* LeakyReLU's select, b where x > 0 and a elsewhere, through the comparison's mask
 * (all ones or zeros) as SIMD code blends: no branch, so the compiler vectorises the
 * loops below. NaN > 0 is false, so a NaN input picks the product, itself NaN: it
 * passes through, as in PyTorch. The result is one of the two floats unchanged, bit
 * for bit the reference's. */
static float select_positive(float x, float b, float a)
{
    uint32_t ub, ua, r;
    memcpy(&ub, &b, sizeof ub);
    memcpy(&ua, &a, sizeof ua);
    const uint32_t mask = -(uint32_t)(x > 0.0f);
    r = (ub & mask) | (ua & ~mask);
    float out;
    memcpy(&out, &r, sizeof out);
    return out;
}

static void leaky_relu_fwd(int64_t n, const float *x, float *y, float slope)
{
    for (int64_t i = 0; i < n; i++) y[i] = select_positive(x[i], x[i], x[i] * slope);
}

static void leaky_relu_bwd(int64_t n, const float *x, const float *dy, float *dx, float slope)
{
    for (int64_t i = 0; i < n; i++) dx[i] = select_positive(x[i], dy[i], dy[i] * slope);
}

/* A 2x2 max pooling that follows a ReLU, tanh or sigmoid: the pooling kernels apply a
 * tanh or sigmoid to each input before comparing, a ReLU to the maxima (ReLU then max
 * and max then ReLU give the same values and input gradients: only the offset kept for
 * a window of no positive value may differ, and its gradients are 0 either way; that
 * is the path maxpool2d's fused ReLU after it takes); ln_layer.pool_y, pool_argmax. The
 * activation's full output is neither written nor read back, forward or backward. */
int activation_absorbs_pool(const ln_layer *l, const ln_layer *pool)
{
    const ln_layer_kind k = l->spec.kind;
    return (k == LN_RELU || k == LN_TANH || k == LN_SIGMOID) && pool->spec.kind == LN_MAXPOOL2D &&
           ln_pool_is_2x2(pool) && l->in.ndim == 3 &&
           l->in.dim[1] >= 2 && l->in.dim[2] >= 2;
}

void activation_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    const int64_t n = (int64_t)ctx->batch * l->in_n;
    if (l->pool_y) { /* y is not written (see activation_absorbs_pool) */
        ln_simd()->maxpool2_fwd((int64_t)ctx->batch * l->in.dim[0], (int)l->in.dim[1], (int)l->in.dim[2], x,
                                l->pool_y, l->pool_argmax, l->spec.kind == LN_RELU,
                                l->spec.kind == LN_RELU ? 0 : (int)l->spec.kind);
        return;
    }
    if (l->spec.kind == LN_RELU)
        ln_simd()->relu_fwd(n, x, y);
    else if (l->spec.kind == LN_LEAKY_RELU)
        leaky_relu_fwd(n, x, y, l->spec.negative_slope);
    else
        ln_simd()->squash_fwd((int)l->spec.kind, n, x, y);
}

void activation_backward(ln_layer *l, const float *x, const float *y, const float *dy, float *dx,
                         const ln_ctx *ctx)
{
    const int64_t n = (int64_t)ctx->batch * l->in_n;
    if (l->pool_y) { /* dy: the pooling's output gradient */
        ln_simd()->maxpool2_bwd((int64_t)ctx->batch * l->in.dim[0], (int)l->in.dim[1], (int)l->in.dim[2], dy,
                                l->pool_argmax, l->spec.kind == LN_RELU ? l->pool_y : NULL,
                                l->spec.kind == LN_RELU ? 0 : (int)l->spec.kind,
                                l->spec.kind == LN_RELU ? NULL : l->pool_y, dx);
        return;
    }
    if (l->spec.kind == LN_RELU)
        ln_simd()->relu_bwd(n, y, dy, dx);
    else if (l->spec.kind == LN_LEAKY_RELU)
        leaky_relu_bwd(n, x, dy, dx, l->spec.negative_slope);
    else
        ln_simd()->squash_bwd((int)l->spec.kind, n, y, dy, dx);
}

/* ---- reference twins ---- */

void activation_forward_reference(ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    const int64_t n = (int64_t)ctx->batch * l->in_n;
    switch (l->spec.kind) {
    case LN_RELU:
        /* NaN passes through, as in PyTorch, so divergence stays visible. */
        for (int64_t i = 0; i < n; i++) y[i] = (x[i] > 0.0f || x[i] != x[i]) ? x[i] : 0.0f;
        break;
    case LN_TANH:
        for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
        break;
    case LN_SIGMOID:
        for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case LN_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : x[i] * l->spec.negative_slope;
        break;
    default:
        break;
    }
}

void activation_backward_reference(ln_layer *l, const float *x, const float *y, const float *dy,
                                   float *dx, const ln_ctx *ctx)
{
    const int64_t n = (int64_t)ctx->batch * l->in_n;
    switch (l->spec.kind) {
    case LN_RELU:
        for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case LN_TANH:
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
    case LN_SIGMOID:
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
        break;
    case LN_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * l->spec.negative_slope;
        break;
    default:
        break;
    }
}
