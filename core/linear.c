/* linear.c - fully connected layer, y = x W^T + b (PyTorch's nn.Linear).
 *
 * Shapes: x: batch x I -> y: batch x O; weight: O x I, bias: O.
 */
#include "layer.h"

#include <string.h>

void linear_forward(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    const int64_t in = l->in_n, out = l->out_n;
    for (int n = 0; n < ctx->batch; n++) {
        const float *restrict xs = x + n * in;
        float *ys = y + n * out;
        for (int64_t o = 0; o < out; o++) {
            const float *restrict w = l->weight + o * in;
            float s = 0.0f;
            for (int64_t i = 0; i < in; i++) s += w[i] * xs[i];
            ys[o] = s + (l->bias ? l->bias[o] : 0.0f);
        }
    }
}

void linear_backward(ln_layer *l, const float *x, const float *dy, float *dx, const ln_ctx *ctx)
{
    const int64_t in = l->in_n, out = l->out_n;
    for (int n = 0; n < ctx->batch; n++) {
        const float *restrict xs = x + n * in;
        const float *dys = dy + n * out;
        for (int64_t o = 0; o < out; o++) {
            const float g = dys[o];
            if (l->dbias) l->dbias[o] += g;
            float *restrict dw = l->dweight + o * in;
            for (int64_t i = 0; i < in; i++) dw[i] += g * xs[i];
        }
        if (!dx) continue;
        float *restrict dxs = dx + n * in;
        memset(dxs, 0, sizeof(float) * (size_t)in);
        for (int64_t o = 0; o < out; o++) {
            const float g = dys[o];
            const float *restrict w = l->weight + o * in;
            for (int64_t i = 0; i < in; i++) dxs[i] += g * w[i];
        }
    }
}
