/* linear.c - fully connected layer, y = x W^T + b (PyTorch's nn.Linear).
 *
 * Shapes: x: batch x I -> y: batch x O; weight: O x I, bias: O.
 *
 * The fast kernels (core/simd_impl.h) work on the whole batch: forward as dot
 * products over I in vector lanes, weight gradient dW += dy^T x and input gradient
 * dx = dy W as register-tiled products along I. The reference twins below are the
 * definition, loop by loop, with double accumulators.
 */
#include "layer.h"
#include "simd.h"
#include "workers.h"

#include <string.h>

void linear_forward(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    ln_simd()->linear_fwd(ctx->batch, (int)l->in_n, (int)l->out_n, x, l->weight, l->bias, y);
}

void linear_backward(ln_layer *l, const float *x, const float *dy, float *dx, const ln_ctx *ctx)
{
    linear_backward_part(l, x, dy, dx, ctx, 0, 1);
}

/* Thread t of T: the weight and bias gradients of its outputs, the input gradient of
 * its samples (both in blocks of the kernel's tile rows). */
void linear_backward_part(ln_layer *l, const float *x, const float *dy, float *dx,
                          const ln_ctx *ctx, int t, int T)
{
    const ln_simd_kernels *K = ln_simd();
    const int tm = K->tile_rows, out = (int)l->out_n;
    int64_t o0, o1, a0, a1;
    ln_split((out + tm - 1) / tm, t, T, &o0, &o1);
    ln_split((ctx->batch + tm - 1) / tm, t, T, &a0, &a1);
    o0 *= tm;
    o1 = o1 * tm < out ? o1 * tm : out;
    a0 *= tm;
    a1 = a1 * tm < ctx->batch ? a1 * tm : ctx->batch;
    K->linear_bwd(ctx->batch, (int)l->in_n, out, x, l->weight, dy, l->dweight, l->dbias, dx,
                  (int)o0, (int)o1, (int)a0, (int)a1);
}

/* ---- reference twins ---- */

void linear_forward_reference(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    const int64_t in = l->in_n, out = l->out_n;
    for (int n = 0; n < ctx->batch; n++)
        for (int64_t o = 0; o < out; o++) {
            double s = l->bias ? l->bias[o] : 0.0;
            for (int64_t i = 0; i < in; i++) s += (double)l->weight[o * in + i] * x[n * in + i];
            y[n * out + o] = (float)s;
        }
}

void linear_backward_reference(ln_layer *l, const float *x, const float *dy, float *dx,
                               const ln_ctx *ctx)
{
    const int64_t in = l->in_n, out = l->out_n;
    for (int64_t o = 0; o < out; o++) {
        if (l->dbias) {
            double s = 0.0;
            for (int n = 0; n < ctx->batch; n++) s += dy[n * out + o];
            l->dbias[o] = 0.0f + (float)s; /* written, as the fast kernel */
        }
        for (int64_t i = 0; i < in; i++) {
            double s = 0.0;
            for (int n = 0; n < ctx->batch; n++) s += (double)dy[n * out + o] * x[n * in + i];
            l->dweight[o * in + i] = 0.0f + (float)s;
        }
    }
    if (!dx) return;
    for (int n = 0; n < ctx->batch; n++)
        for (int64_t i = 0; i < in; i++) {
            double s = 0.0;
            for (int64_t o = 0; o < out; o++) s += (double)dy[n * out + o] * l->weight[o * in + i];
            dx[n * in + i] = (float)s;
        }
}
