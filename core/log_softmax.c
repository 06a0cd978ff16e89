/* log_softmax.c - LogSoftmax over each sample's whole vector (PyTorch's
 * nn.LogSoftmax(dim=1) on N x C input).
 *
 * Shapes (per sample): n elements in, n out; y_i = x_i - log(sum_j exp(x_j)).
 * The maximum is subtracted before exponentiating so large scores cannot overflow,
 * and the sum of exponentials is kept in double so many small terms are not lost.
 * A NaN anywhere in a sample makes the whole sample NaN (the max skips it, but the
 * sum does not), so divergence stays visible.
 * Backward uses the saved output: dx = dy - exp(y) * sum(dy).
 */
#include "layer.h"

#include <math.h>

/* log(sum_i exp(x_i)) of n >= 1 floats, in double: the maximum m is subtracted before
 * exponentiating so large scores cannot overflow. Shared with the cross-entropy loss,
 * so both give the same value to the bit. */
double ln_log_sum_exp(const float *x, int64_t n)
{
    float m = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > m) m = x[i];
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += exp((double)x[i] - (double)m);
    /* the maximum's own term is exp(0) = 1, so the sum is >= 1 */
    // cppcheck-suppress invalidFunctionArg
    return (double)m + log(sum);
}

void log_softmax_forward(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    const int64_t n = l->in_n;
    for (int s = 0; s < ctx->batch; s++) {
        const float *xs = x + (int64_t)s * n;
        float *ys = y + (int64_t)s * n;
        const double shift = ln_log_sum_exp(xs, n);
        for (int64_t i = 0; i < n; i++) ys[i] = (float)((double)xs[i] - shift);
    }
}

void log_softmax_backward(const ln_layer *l, const float *y, const float *dy, float *dx,
                          const ln_ctx *ctx)
{
    if (!dx) return;
    const int64_t n = l->in_n;
    for (int s = 0; s < ctx->batch; s++) {
        const float *ys = y + (int64_t)s * n;
        const float *dys = dy + (int64_t)s * n;
        float *dxs = dx + (int64_t)s * n;
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) sum += dys[i];
        const float fs = (float)sum;
        for (int64_t i = 0; i < n; i++) dxs[i] = dys[i] - expf(ys[i]) * fs;
    }
}
