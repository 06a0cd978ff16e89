/* conv2d.c - 2-D convolution, square kernel, zero padding, optional bias.
 *
 * Shapes (per sample): x: C x H x W -> y: OC x OH x OW, with
 *   OH = (H + 2*padding - kernel) / stride + 1 (likewise OW),
 *   weight: OC x C x kernel x kernel, bias: OC.
 *
 * Fast path: per sample, unfold the input into columns (im2col, CK = C*k*k rows of
 * P = OH*OW) so the convolution is the product weight[OC x CK] * col[CK x P]. The
 * inner loops run along P with unit stride, which the compiler vectorises.
 * The reference twin below computes the same sums directly from the definition.
 */
#include "layer.h"

#include <string.h>

typedef struct {
    int c, h, w, oc, oh, ow, k, stride, pad;
    int64_t ck, p;
} conv_dims;

static conv_dims dims_of(const ln_layer *l)
{
    conv_dims d;
    d.c = (int)l->in.dim[0];
    d.h = (int)l->in.dim[1];
    d.w = (int)l->in.dim[2];
    d.oc = (int)l->out.dim[0];
    d.oh = (int)l->out.dim[1];
    d.ow = (int)l->out.dim[2];
    d.k = l->spec.kernel;
    d.stride = l->spec.stride;
    d.pad = l->spec.padding;
    d.ck = (int64_t)d.c * d.k * d.k;
    d.p = (int64_t)d.oh * d.ow;
    return d;
}

/* col[(c*k + ki)*k + kj][oy*OW + ox] = x[c][oy*stride - pad + ki][ox*stride - pad + kj] */
static void im2col(const conv_dims *d, const float *restrict x, float *restrict col)
{
    for (int c = 0; c < d->c; c++)
        for (int ki = 0; ki < d->k; ki++)
            for (int kj = 0; kj < d->k; kj++) {
                float *row = col + ((int64_t)(c * d->k + ki) * d->k + kj) * d->p;
                for (int oy = 0; oy < d->oh; oy++) {
                    int iy = oy * d->stride - d->pad + ki;
                    float *out = row + (int64_t)oy * d->ow;
                    if (iy < 0 || iy >= d->h) {
                        memset(out, 0, sizeof(float) * (size_t)d->ow);
                        continue;
                    }
                    const float *in = x + ((int64_t)c * d->h + iy) * d->w;
                    for (int ox = 0; ox < d->ow; ox++) {
                        int ix = ox * d->stride - d->pad + kj;
                        out[ox] = (ix >= 0 && ix < d->w) ? in[ix] : 0.0f;
                    }
                }
            }
}

/* The adjoint of im2col: adds every column entry back onto the pixel it came from. */
static void col2im_add(const conv_dims *d, const float *restrict col, float *restrict x)
{
    for (int c = 0; c < d->c; c++)
        for (int ki = 0; ki < d->k; ki++)
            for (int kj = 0; kj < d->k; kj++) {
                const float *row = col + ((int64_t)(c * d->k + ki) * d->k + kj) * d->p;
                for (int oy = 0; oy < d->oh; oy++) {
                    int iy = oy * d->stride - d->pad + ki;
                    if (iy < 0 || iy >= d->h) continue;
                    const float *in = row + (int64_t)oy * d->ow;
                    float *out = x + ((int64_t)c * d->h + iy) * d->w;
                    for (int ox = 0; ox < d->ow; ox++) {
                        int ix = ox * d->stride - d->pad + kj;
                        if (ix >= 0 && ix < d->w) out[ix] += in[ox];
                    }
                }
            }
}

void conv2d_forward(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    conv_dims d = dims_of(l);
    float *col = ctx->workspace;
    for (int n = 0; n < ctx->batch; n++) {
        im2col(&d, x + (int64_t)n * l->in_n, col);
        float *ys = y + (int64_t)n * l->out_n;
        for (int o = 0; o < d.oc; o++) {
            float *restrict yrow = ys + (int64_t)o * d.p;
            const float *wrow = l->weight + (int64_t)o * d.ck;
            float b = l->bias ? l->bias[o] : 0.0f;
            for (int64_t p = 0; p < d.p; p++) yrow[p] = b;
            for (int64_t k = 0; k < d.ck; k++) {
                const float wk = wrow[k];
                const float *restrict crow = col + k * d.p;
                for (int64_t p = 0; p < d.p; p++) yrow[p] += wk * crow[p];
            }
        }
    }
}

void conv2d_backward(ln_layer *l, const float *x, const float *dy, float *dx, const ln_ctx *ctx)
{
    conv_dims d = dims_of(l);
    float *col = ctx->workspace;
    float *dcol = ctx->workspace + d.ck * d.p;
    for (int n = 0; n < ctx->batch; n++) {
        const float *dys = dy + (int64_t)n * l->out_n;
        im2col(&d, x + (int64_t)n * l->in_n, col);
        for (int o = 0; o < d.oc; o++) {
            const float *restrict drow = dys + (int64_t)o * d.p;
            if (l->dbias) {
                float s = 0.0f;
                for (int64_t p = 0; p < d.p; p++) s += drow[p];
                l->dbias[o] += s;
            }
            float *restrict dw = l->dweight + (int64_t)o * d.ck;
            for (int64_t k = 0; k < d.ck; k++) {
                const float *restrict crow = col + k * d.p;
                float s = 0.0f;
                for (int64_t p = 0; p < d.p; p++) s += drow[p] * crow[p];
                dw[k] += s;
            }
        }
        if (!dx) continue;
        memset(dcol, 0, sizeof(float) * (size_t)(d.ck * d.p));
        for (int o = 0; o < d.oc; o++) {
            const float *restrict drow = dys + (int64_t)o * d.p;
            const float *wrow = l->weight + (int64_t)o * d.ck;
            for (int64_t k = 0; k < d.ck; k++) {
                const float wk = wrow[k];
                float *restrict crow = dcol + k * d.p;
                for (int64_t p = 0; p < d.p; p++) crow[p] += wk * drow[p];
            }
        }
        float *dxs = dx + (int64_t)n * l->in_n;
        memset(dxs, 0, sizeof(float) * (size_t)l->in_n);
        col2im_add(&d, dcol, dxs);
    }
}

/* ---- reference twin: the definition, loop by loop ---- */

static float input_at(const conv_dims *d, const float *x, int c, int iy, int ix)
{
    if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) return 0.0f;
    return x[((int64_t)c * d->h + iy) * d->w + ix];
}

void conv2d_forward_reference(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    conv_dims d = dims_of(l);
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

void conv2d_backward_reference(ln_layer *l, const float *x, const float *dy, float *dx,
                               const ln_ctx *ctx)
{
    conv_dims d = dims_of(l);
    if (dx) memset(dx, 0, sizeof(float) * (size_t)(l->in_n * ctx->batch));
    for (int n = 0; n < ctx->batch; n++) {
        const float *xs = x + (int64_t)n * l->in_n;
        const float *dys = dy + (int64_t)n * l->out_n;
        float *dxs = dx ? dx + (int64_t)n * l->in_n : NULL;
        for (int o = 0; o < d.oc; o++)
            for (int oy = 0; oy < d.oh; oy++)
                for (int ox = 0; ox < d.ow; ox++) {
                    float g = dys[((int64_t)o * d.oh + oy) * d.ow + ox];
                    if (l->dbias) l->dbias[o] += g;
                    for (int c = 0; c < d.c; c++)
                        for (int ki = 0; ki < d.k; ki++)
                            for (int kj = 0; kj < d.k; kj++) {
                                int iy = oy * d.stride - d.pad + ki;
                                int ix = ox * d.stride - d.pad + kj;
                                int64_t wi = ((int64_t)(o * d.c + c) * d.k + ki) * d.k + kj;
                                l->dweight[wi] += g * input_at(&d, xs, c, iy, ix);
                                if (dxs && iy >= 0 && iy < d.h && ix >= 0 && ix < d.w)
                                    dxs[((int64_t)c * d.h + iy) * d.w + ix] += g * l->weight[wi];
                            }
                }
    }
}
