/* activation.c - elementwise ReLU, Tanh, Sigmoid; any shape in, same shape out.
 * Backward uses the saved output y (as PyTorch does for all three). All three run
 * vectorised kernels (core/simd_impl.h: tanh and sigmoid from a polynomial exp, within
 * a few ulp of the C library's); the reference twins are the scalar loops. */
#include "layer.h"
#include "simd.h"

#include <math.h>

void activation_forward(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    const int64_t n = (int64_t)ctx->batch * l->in_n;
    if (l->spec.kind == LN_RELU)
        ln_simd()->relu_fwd(n, x, y);
    else
        ln_simd()->squash_fwd((int)l->spec.kind, n, x, y);
}

void activation_backward(const ln_layer *l, const float *y, const float *dy, float *dx,
                         const ln_ctx *ctx)
{
    const int64_t n = (int64_t)ctx->batch * l->in_n;
    if (l->spec.kind == LN_RELU)
        ln_simd()->relu_bwd(n, y, dy, dx);
    else
        ln_simd()->squash_bwd((int)l->spec.kind, n, y, dy, dx);
}

/* ---- reference twins ---- */

void activation_forward_reference(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
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
    default:
        break;
    }
}

void activation_backward_reference(const ln_layer *l, const float *y, const float *dy, float *dx,
                                   const ln_ctx *ctx)
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
    default:
        break;
    }
}
