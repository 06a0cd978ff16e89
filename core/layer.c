/* layer.c - what every layer kind is: its spec constructors, shape inference,
 * memory needs, PyTorch-like initialisation and the dispatch to its kernels. */
#include "layer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[LN_LAYER_KIND_COUNT] = {
    "conv2d", "maxpool2d", "avgpool2d", "relu",        "tanh",        "sigmoid",     "linear",
    "dropout", "dropout2d", "flatten", "log_softmax", "batchnorm2d", "batchnorm1d",
};

const char *ln_layer_kind_name(ln_layer_kind k)
{
    if ((int)k < 0 || k >= LN_LAYER_KIND_COUNT) return "unknown";
    return kind_names[k];
}

static ln_layer_spec blank(ln_layer_kind kind)
{
    ln_layer_spec s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    return s;
}

ln_layer_spec ln_conv2d(int in_channels, int out_channels, int kernel, int stride, int padding)
{
    ln_layer_spec s = blank(LN_CONV2D);
    s.in_channels = in_channels;
    s.out_channels = out_channels;
    s.kernel = kernel;
    s.stride = stride;
    s.padding = padding;
    s.bias = 1;
    return s;
}

ln_layer_spec ln_maxpool2d(int kernel, int stride)
{
    ln_layer_spec s = blank(LN_MAXPOOL2D);
    s.kernel = kernel;
    s.stride = stride > 0 ? stride : kernel; /* PyTorch: stride defaults to kernel */
    return s;
}

ln_layer_spec ln_avgpool2d(int kernel, int stride)
{
    ln_layer_spec s = ln_maxpool2d(kernel, stride);
    s.kind = LN_AVGPOOL2D;
    return s;
}

ln_layer_spec ln_linear(int in_features, int out_features)
{
    ln_layer_spec s = blank(LN_LINEAR);
    s.in_features = in_features;
    s.out_features = out_features;
    s.bias = 1;
    return s;
}

ln_layer_spec ln_dropout(ln_layer_kind kind, float p)
{
    ln_layer_spec s = blank(kind);
    s.p = p;
    return s;
}

ln_layer_spec ln_batchnorm(ln_layer_kind kind, int features)
{
    ln_layer_spec s = blank(kind);
    s.in_channels = features;
    s.eps = 1e-5f;
    s.momentum = 0.1f;
    return s;
}

ln_layer_spec ln_simple_layer(ln_layer_kind kind) { return blank(kind); }

/* ------------------------------------------------------------ shape inference */

#define SHAPE_BUF 64

static ln_status shape_error(ln_error *err, const ln_layer *l, int index, const char *expected)
{
    char got[SHAPE_BUF];
    ln_shape_format(l->in, got, sizeof got);
    return ln_fail(err, LN_ESHAPE, "layer %d (%s): expects input %s, got %s", index,
                   ln_layer_kind_name(l->spec.kind), expected, got);
}

static ln_status spec_error(ln_error *err, const ln_layer *l, int index, const char *what)
{
    return ln_fail(err, LN_EINVAL, "layer %d (%s): %s", index, ln_layer_kind_name(l->spec.kind),
                   what);
}

/* Sizes far beyond any net: products are checked against this before they are
 * formed, so a hostile spec (a model file, a REPL typo) cannot overflow int64. */
#define SIZE_LIMIT ((int64_t)1 << 62)

/* *out = a * b for a, b >= 0; 0 if the product exceeds SIZE_LIMIT. */
static int mul_ok(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0 || (a != 0 && b > SIZE_LIMIT / a)) return 0;
    *out = a * b;
    return 1;
}

/* Elements of a shape, or -1 when they exceed SIZE_LIMIT. */
static int64_t checked_numel(ln_shape s)
{
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++)
        if (!mul_ok(n, s.dim[i], &n)) return -1;
    return n;
}

static ln_status too_large(ln_error *err, const ln_layer *l, int index, const char *what)
{
    return ln_fail(err, LN_ENOMEM, "layer %d (%s): %s is too large", index,
                   ln_layer_kind_name(l->spec.kind), what);
}

/* Output side of a window sliding over `size` cells; < 1 when the window does not fit. */
static int64_t window_out(int64_t size, int kernel, int stride, int padding)
{
    int64_t span = size + 2 * (int64_t)padding - kernel;
    return span < 0 ? 0 : span / stride + 1;
}

static ln_status setup_window(ln_layer *l, int index, int64_t channels, ln_error *err)
{
    const ln_layer_spec *s = &l->spec;
    char buf[SHAPE_BUF + 64];
    if (s->kernel < 1) return spec_error(err, l, index, "kernel must be >= 1");
    if (s->stride < 1) return spec_error(err, l, index, "stride must be >= 1");
    if (s->padding < 0) return spec_error(err, l, index, "padding must be >= 0");
    if (s->kind != LN_CONV2D && s->padding * 2 > s->kernel)
        return spec_error(err, l, index, "padding must be at most half the kernel");
    if (l->in.ndim != 3) return shape_error(err, l, index, "of 3 dimensions (C x H x W)");
    int64_t oh = window_out(l->in.dim[1], s->kernel, s->stride, s->padding);
    int64_t ow = window_out(l->in.dim[2], s->kernel, s->stride, s->padding);
    if (oh < 1 || ow < 1) {
        snprintf(buf, sizeof buf, "at least %dx%d per channel for kernel %d (padding %d)",
                 s->kernel - 2 * s->padding, s->kernel - 2 * s->padding, s->kernel, s->padding);
        return shape_error(err, l, index, buf);
    }
    int64_t dims[3] = {channels, oh, ow};
    l->out = ln_shape_make(3, dims);
    return LN_OK;
}

ln_status ln_layer_setup(ln_layer *l, int index, ln_error *err)
{
    const ln_layer_spec *s = &l->spec;
    char buf[SHAPE_BUF + 64];
    l->in_n = checked_numel(l->in);
    l->weight_n = l->bias_n = 0;
    if (l->in_n < 0) return too_large(err, l, index, "the input");
    l->out = l->in;
    switch (s->kind) {
    case LN_CONV2D: {
        if (s->in_channels < 1 || s->out_channels < 1)
            return spec_error(err, l, index, "in_channels and out_channels must be >= 1");
        if (l->in.ndim == 3 && l->in.dim[0] != s->in_channels) {
            snprintf(buf, sizeof buf, "%d x H x W (in_channels = %d)", s->in_channels,
                     s->in_channels);
            return shape_error(err, l, index, buf);
        }
        ln_status st = setup_window(l, index, s->out_channels, err);
        if (st) return st;
        if (!mul_ok((int64_t)s->out_channels * s->in_channels, (int64_t)s->kernel * s->kernel,
                    &l->weight_n))
            return too_large(err, l, index, "the weight");
        l->bias_n = s->bias ? s->out_channels : 0;
        break;
    }
    case LN_MAXPOOL2D:
    case LN_AVGPOOL2D: {
        ln_status st = setup_window(l, index, l->in.ndim == 3 ? l->in.dim[0] : 0, err);
        if (st) return st;
        break;
    }
    case LN_LINEAR:
        if (s->in_features < 1 || s->out_features < 1)
            return spec_error(err, l, index, "in_features and out_features must be >= 1");
        if (l->in.ndim != 1 || l->in.dim[0] != s->in_features) {
            if (l->in.ndim != 1 && l->in_n == s->in_features)
                snprintf(buf, sizeof buf, "%d (add a flatten layer before it)", s->in_features);
            else
                snprintf(buf, sizeof buf, "%d (in_features)", s->in_features);
            return shape_error(err, l, index, buf);
        }
        l->out = ln_shape_make(1, (int64_t[]){s->out_features});
        l->weight_n = (int64_t)s->out_features * s->in_features;
        l->bias_n = s->bias ? s->out_features : 0;
        break;
    case LN_RELU:
    case LN_TANH:
    case LN_SIGMOID:
        break;
    case LN_DROPOUT:
    case LN_DROPOUT2D:
        if (!(s->p >= 0.0f && s->p <= 1.0f))
            return spec_error(err, l, index, "p must be in [0, 1]");
        if (s->kind == LN_DROPOUT2D && l->in.ndim != 3)
            return shape_error(err, l, index, "of 3 dimensions (C x H x W)");
        break;
    case LN_FLATTEN:
        l->out = ln_shape_make(1, (int64_t[]){l->in_n});
        break;
    case LN_LOG_SOFTMAX:
        if (l->in.ndim != 1)
            return shape_error(err, l, index, "of 1 dimension (classes; add a flatten layer)");
        break;
    case LN_BATCHNORM2D:
    case LN_BATCHNORM1D: {
        const int want = s->kind == LN_BATCHNORM2D ? 3 : 1;
        if (s->in_channels < 1) return spec_error(err, l, index, "features must be >= 1");
        if (!(s->eps > 0.0f)) return spec_error(err, l, index, "eps must be > 0");
        if (!(s->momentum >= 0.0f && s->momentum <= 1.0f))
            return spec_error(err, l, index, "momentum must be in [0, 1]");
        if (l->in.ndim != want || l->in.dim[0] != s->in_channels) {
            snprintf(buf, sizeof buf, want == 3 ? "%d x H x W (features = %d)" : "%d (features = %d)",
                     s->in_channels, s->in_channels);
            return shape_error(err, l, index, buf);
        }
        l->weight_n = l->bias_n = s->in_channels;
        break;
    }
    default:
        return ln_fail(err, LN_EINVAL, "layer %d: unknown layer kind %d", index, (int)s->kind);
    }
    l->out_n = checked_numel(l->out);
    if (l->out_n < 0) return too_large(err, l, index, "the output");
    return LN_OK;
}

int64_t ln_layer_workspace(const ln_layer *l)
{
    if (l->spec.kind != LN_CONV2D) return 0;
    return conv2d_workspace(l);
}

int64_t ln_layer_mask_per_sample(const ln_layer *l)
{
    if (l->spec.kind == LN_DROPOUT) return l->in_n;
    if (l->spec.kind == LN_DROPOUT2D) return l->in.dim[0];
    return 0;
}

int64_t ln_layer_argmax_per_sample(const ln_layer *l)
{
    return l->spec.kind == LN_MAXPOOL2D ? l->out_n : 0;
}

int64_t ln_layer_saved_count(const ln_layer *l)
{
    int bn = l->spec.kind == LN_BATCHNORM2D || l->spec.kind == LN_BATCHNORM1D;
    return bn ? 2 * (int64_t)l->spec.in_channels : 0;
}

int64_t ln_layer_buffer_count(const ln_layer *l) { return ln_layer_saved_count(l); }

/* ------------------------------------------------------------ initialisation */

/* PyTorch's default for Conv2d and Linear: kaiming_uniform_(a = sqrt(5)) for the weight,
 * which works out to U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias. */
static void fill_uniform(float *p, int64_t n, float bound, ln_rng *rng)
{
    for (int64_t i = 0; i < n; i++) p[i] = (2.0f * ln_rng_uniform(rng) - 1.0f) * bound;
}

void ln_layer_init(ln_layer *l, ln_rng *rng)
{
    switch (l->spec.kind) {
    case LN_CONV2D:
    case LN_LINEAR: {
        int64_t fan_in = l->spec.kind == LN_CONV2D
                             ? (int64_t)l->spec.in_channels * l->spec.kernel * l->spec.kernel
                             : l->spec.in_features;
        float bound = (float)(1.0 / sqrt((double)fan_in));
        fill_uniform(l->weight, l->weight_n, bound, rng);
        if (l->bias) fill_uniform(l->bias, l->bias_n, bound, rng);
        break;
    }
    case LN_BATCHNORM2D:
    case LN_BATCHNORM1D:
        for (int64_t i = 0; i < l->weight_n; i++) l->weight[i] = 1.0f;
        for (int64_t i = 0; i < l->bias_n; i++) l->bias[i] = 0.0f;
        for (int i = 0; i < l->spec.in_channels; i++) {
            l->running_mean[i] = 0.0f;
            l->running_var[i] = 1.0f;
        }
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------ dispatch */

void ln_layer_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    switch (l->spec.kind) {
    case LN_CONV2D:
        if (ctx->reference)
            conv2d_forward_reference(l, x, y, ctx);
        else
            conv2d_forward(l, x, y, ctx);
        break;
    case LN_LINEAR:
        if (ctx->reference)
            linear_forward_reference(l, x, y, ctx);
        else
            linear_forward(l, x, y, ctx);
        break;
    case LN_MAXPOOL2D:
        if (ctx->reference)
            maxpool2d_forward_reference(l, x, y, ctx);
        else
            maxpool2d_forward(l, x, y, ctx);
        break;
    case LN_AVGPOOL2D:
        if (ctx->reference)
            avgpool2d_forward_reference(l, x, y, ctx);
        else
            avgpool2d_forward(l, x, y, ctx);
        break;
    case LN_RELU:
    case LN_TANH:
    case LN_SIGMOID:
        if (ctx->reference)
            activation_forward_reference(l, x, y, ctx);
        else
            activation_forward(l, x, y, ctx);
        break;
    case LN_DROPOUT:
    case LN_DROPOUT2D: dropout_forward(l, x, y, ctx); break;
    case LN_FLATTEN:
        memcpy(y, x, sizeof(float) * (size_t)(l->in_n * ctx->batch));
        break;
    case LN_LOG_SOFTMAX: log_softmax_forward(l, x, y, ctx); break;
    case LN_BATCHNORM2D:
    case LN_BATCHNORM1D: batchnorm_forward(l, x, y, ctx); break;
    default: break;
    }
}

void ln_layer_backward(ln_layer *l, const float *x, const float *y, const float *dy, float *dx,
                       const ln_ctx *ctx)
{
    switch (l->spec.kind) {
    case LN_CONV2D:
        if (ctx->reference)
            conv2d_backward_reference(l, x, dy, dx, ctx);
        else
            conv2d_backward(l, x, dy, dx, ctx);
        break;
    case LN_LINEAR:
        if (ctx->reference)
            linear_backward_reference(l, x, dy, dx, ctx);
        else
            linear_backward(l, x, dy, dx, ctx);
        break;
    case LN_BATCHNORM2D:
    case LN_BATCHNORM1D: batchnorm_backward(l, x, dy, dx, ctx); break;
    default:
        if (!dx) break; /* the rest only pass gradients on */
        switch (l->spec.kind) {
        case LN_MAXPOOL2D:
            if (ctx->reference)
                maxpool2d_backward_reference(l, dy, dx, ctx);
            else
                maxpool2d_backward(l, dy, dx, ctx);
            break;
        case LN_AVGPOOL2D:
            if (ctx->reference)
                avgpool2d_backward_reference(l, dy, dx, ctx);
            else
                avgpool2d_backward(l, dy, dx, ctx);
            break;
        case LN_RELU:
        case LN_TANH:
        case LN_SIGMOID:
            if (ctx->reference)
                activation_backward_reference(l, y, dy, dx, ctx);
            else
                activation_backward(l, y, dy, dx, ctx);
            break;
        case LN_DROPOUT:
        case LN_DROPOUT2D: dropout_backward(l, dy, dx, ctx); break;
        case LN_FLATTEN:
            memcpy(dx, dy, sizeof(float) * (size_t)(l->in_n * ctx->batch));
            break;
        case LN_LOG_SOFTMAX: log_softmax_backward(l, y, dy, dx, ctx); break;
        default: break;
        }
    }
}
