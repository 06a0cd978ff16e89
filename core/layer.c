/* layer.c - what every layer kind is: one descriptor per kind (the table at the end:
 * name, constructor parameters, model file tag, shape rule, memory needs, PyTorch-like
 * initialisation, kernels and their reference twins, how threads share the work), the
 * spec constructors, and the dispatch that reads the table. */
#include "layer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The descriptors, in enum order; defined at the end of this file. */
static const ln_layer_ops kinds[LN_LAYER_KIND_COUNT];

static int is_kind(int k) { return k >= 0 && k < LN_LAYER_KIND_COUNT; }

static ln_layer_spec blank(ln_layer_kind kind)
{
    ln_layer_spec s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    return s;
}

double ln_layer_param_get(const ln_layer_spec *s, const ln_layer_param *p)
{
    const char *field = (const char *)s + p->offset;
    if (p->type == LN_PARAM_FLOAT) return *(const float *)(const void *)field;
    return *(const int *)(const void *)field;
}

void ln_layer_param_set(ln_layer_spec *s, const ln_layer_param *p, double value)
{
    char *field = (char *)s + p->offset;
    if (p->type == LN_PARAM_FLOAT)
        *(float *)(void *)field = (float)value;
    else
        *(int *)(void *)field = (int)value;
}

/* A spec of kind k from the first n of its constructor parameters, in the order of the
 * kind's descriptor (the C constructors take them in that order); the others keep
 * their defaults, so that every default lives in the descriptor only. */
static ln_layer_spec from_args(ln_layer_kind k, int n, const double *args)
{
    ln_layer_spec s = ln_layer_spec_defaults(k);
    for (int i = 0; is_kind((int)k) && i < n && i < kinds[k].info.param_count; i++)
        ln_layer_param_set(&s, &kinds[k].info.params[i], args[i]);
    return s;
}

ln_layer_spec ln_conv2d(int in_channels, int out_channels, int kernel, int stride, int padding)
{
    return from_args(LN_CONV2D, 5, (const double[]){in_channels, out_channels, kernel, stride, padding});
}

/* PyTorch: a pool's stride defaults to its kernel */
ln_layer_spec ln_maxpool2d(int kernel, int stride)
{
    return from_args(LN_MAXPOOL2D, 2, (const double[]){kernel, stride > 0 ? stride : kernel});
}

ln_layer_spec ln_avgpool2d(int kernel, int stride)
{
    return from_args(LN_AVGPOOL2D, 2, (const double[]){kernel, stride > 0 ? stride : kernel});
}

ln_layer_spec ln_linear(int in_features, int out_features)
{
    return from_args(LN_LINEAR, 2, (const double[]){in_features, out_features});
}

ln_layer_spec ln_dropout(ln_layer_kind kind, float p) { return from_args(kind, 1, (const double[]){p}); }

ln_layer_spec ln_batchnorm(ln_layer_kind kind, int features)
{
    return from_args(kind, 1, (const double[]){features});
}

ln_layer_spec ln_leaky_relu(float negative_slope)
{
    return from_args(LN_LEAKY_RELU, 1, (const double[]){negative_slope});
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
    /* the pooling kernels pad nothing (a model file could still carry a padding) */
    if (s->kind != LN_CONV2D && s->padding != 0)
        return spec_error(err, l, index, "padding must be 0 (pooling layers do not pad)");
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

/* ------------------------------------------------------------------ shape rules */

static ln_status setup_conv2d(ln_layer *l, int index, ln_error *err)
{
    const ln_layer_spec *s = &l->spec;
    char buf[SHAPE_BUF + 64];
    if (s->in_channels < 1 || s->out_channels < 1)
        return spec_error(err, l, index, "in_channels and out_channels must be >= 1");
    if (l->in.ndim == 3 && l->in.dim[0] != s->in_channels) {
        snprintf(buf, sizeof buf, "%d x H x W (in_channels = %d)", s->in_channels, s->in_channels);
        return shape_error(err, l, index, buf);
    }
    ln_status st = setup_window(l, index, s->out_channels, err);
    if (st) return st;
    if (!mul_ok((int64_t)s->out_channels * s->in_channels, (int64_t)s->kernel * s->kernel,
                &l->weight_n))
        return too_large(err, l, index, "the weight");
    l->bias_n = s->bias ? s->out_channels : 0;
    return LN_OK;
}

/* Pools keep the channels. A stride of 0 is PyTorch's stride=None: the kernel. */
static ln_status setup_pool(ln_layer *l, int index, ln_error *err)
{
    if (l->spec.stride == 0) l->spec.stride = l->spec.kernel;
    return setup_window(l, index, l->in.ndim == 3 ? l->in.dim[0] : 0, err);
}

static ln_status setup_linear(ln_layer *l, int index, ln_error *err)
{
    const ln_layer_spec *s = &l->spec;
    char buf[SHAPE_BUF + 64];
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
    return LN_OK;
}

/* Elementwise kinds: any shape in, the same shape out. */
static ln_status setup_same(ln_layer *l, int index, ln_error *err)
{
    (void)l, (void)index, (void)err;
    return LN_OK;
}

static ln_status setup_leaky_relu(ln_layer *l, int index, ln_error *err)
{
    if (!isfinite(l->spec.negative_slope))
        return spec_error(err, l, index, "negative_slope must be finite");
    return LN_OK;
}

static ln_status setup_dropout(ln_layer *l, int index, ln_error *err)
{
    const ln_layer_spec *s = &l->spec;
    if (!(s->p >= 0.0f && s->p <= 1.0f)) return spec_error(err, l, index, "p must be in [0, 1]");
    if (s->kind == LN_DROPOUT2D && l->in.ndim != 3)
        return shape_error(err, l, index, "of 3 dimensions (C x H x W)");
    return LN_OK;
}

static ln_status setup_flatten(ln_layer *l, int index, ln_error *err)
{
    (void)index, (void)err;
    l->out = ln_shape_make(1, (int64_t[]){l->in_n});
    return LN_OK;
}

static ln_status setup_log_softmax(ln_layer *l, int index, ln_error *err)
{
    if (l->in.ndim != 1)
        return shape_error(err, l, index, "of 1 dimension (classes; add a flatten layer)");
    return LN_OK;
}

static ln_status setup_batchnorm(ln_layer *l, int index, ln_error *err)
{
    const ln_layer_spec *s = &l->spec;
    char buf[SHAPE_BUF + 64];
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
    return LN_OK;
}

ln_status ln_layer_setup(ln_layer *l, int index, ln_error *err)
{
    const ln_layer_kind k = l->spec.kind;
    if ((int)k < 0 || k >= LN_LAYER_KIND_COUNT)
        return ln_fail(err, LN_EINVAL, "layer %d: unknown layer kind %d", index, (int)k);
    l->in_n = checked_numel(l->in);
    l->weight_n = l->bias_n = 0;
    if (l->in_n < 0) return too_large(err, l, index, "the input");
    l->out = l->in;
    ln_status st = kinds[k].setup(l, index, err);
    if (st) return st;
    l->out_n = checked_numel(l->out);
    if (l->out_n < 0) return too_large(err, l, index, "the output");
    return LN_OK;
}

/* ------------------------------------------------------------------ memory */

static int64_t or_zero(int64_t (*f)(const ln_layer *), const ln_layer *l) { return f ? f(l) : 0; }

int64_t ln_layer_workspace(const ln_layer *l) { return or_zero(kinds[l->spec.kind].workspace, l); }

int64_t ln_layer_mask_per_sample(const ln_layer *l)
{
    return or_zero(kinds[l->spec.kind].mask_per_sample, l);
}

int64_t ln_layer_argmax_per_sample(const ln_layer *l)
{
    return or_zero(kinds[l->spec.kind].argmax_per_sample, l);
}

int64_t ln_layer_saved_count(const ln_layer *l) { return or_zero(kinds[l->spec.kind].saved_count, l); }

int64_t ln_layer_buffer_count(const ln_layer *l) { return or_zero(kinds[l->spec.kind].buffer_count, l); }

/* Dropout draws its mask in training unless nothing can be dropped. */
static int dropout_draws(const ln_layer *l) { return l->spec.p > 0.0f; }

static int64_t dropout_mask(const ln_layer *l)
{
    return l->spec.kind == LN_DROPOUT2D ? l->in.dim[0] : l->in_n;
}

static int64_t maxpool_argmax(const ln_layer *l) { return l->out_n; }

/* batchnorm: mean and invstd per channel (saved), running mean and var (buffers). */
/* saved: the batch mean and invstd, then mean(dy) and mean(dy * xhat) of a backward
 * that deferred its input gradient (batchnorm_input_grad), then room for a fused
 * pooling's unpool map (batchnorm.c) */
static int64_t batchnorm_saved(const ln_layer *l)
{
    return 4 * (int64_t)l->spec.in_channels + batchnorm_unpool_floats(l);
}
static int64_t batchnorm_buffers(const ln_layer *l) { return 2 * (int64_t)l->spec.in_channels; }

/* ------------------------------------------------------------ initialisation */

/* PyTorch's default for Conv2d and Linear: kaiming_uniform_(a = sqrt(5)) for the weight,
 * which works out to U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias. */
static void fill_uniform(float *p, int64_t n, float bound, ln_rng *rng)
{
    for (int64_t i = 0; i < n; i++) p[i] = (2.0f * ln_rng_uniform(rng) - 1.0f) * bound;
}

static void init_fan_in(ln_layer *l, int64_t fan_in, ln_rng *rng)
{
    float bound = (float)(1.0 / sqrt((double)fan_in));
    fill_uniform(l->weight, l->weight_n, bound, rng);
    if (l->bias) fill_uniform(l->bias, l->bias_n, bound, rng);
}

static void init_conv2d(ln_layer *l, ln_rng *rng)
{
    init_fan_in(l, (int64_t)l->spec.in_channels * l->spec.kernel * l->spec.kernel, rng);
}

static void init_linear(ln_layer *l, ln_rng *rng) { init_fan_in(l, l->spec.in_features, rng); }

static void init_batchnorm(ln_layer *l, ln_rng *rng)
{
    (void)rng;
    for (int64_t i = 0; i < l->weight_n; i++) l->weight[i] = 1.0f;
    for (int64_t i = 0; i < l->bias_n; i++) l->bias[i] = 0.0f;
    for (int i = 0; i < l->spec.in_channels; i++) {
        l->running_mean[i] = 0.0f;
        l->running_var[i] = 1.0f;
    }
}

void ln_layer_init(ln_layer *l, ln_rng *rng)
{
    if (kinds[l->spec.kind].init) kinds[l->spec.kind].init(l, rng);
}

/* ------------------------------------------------------------------ flops, shapes */

static double conv2d_flops(const ln_layer *l)
{
    return 2.0 * (double)l->weight_n * (double)(l->out.dim[1] * l->out.dim[2]);
}

static double linear_flops(const ln_layer *l) { return 2.0 * (double)l->weight_n; }

double ln_layer_flops(const ln_layer *l)
{
    return kinds[l->spec.kind].flops ? kinds[l->spec.kind].flops(l) : 0.0;
}

static ln_shape conv2d_weight_shape(const ln_layer *l)
{
    const ln_layer_spec *s = &l->spec;
    return ln_shape_make(4, (int64_t[]){s->out_channels, s->in_channels, s->kernel, s->kernel});
}

static ln_shape linear_weight_shape(const ln_layer *l)
{
    return ln_shape_make(2, (int64_t[]){l->spec.out_features, l->spec.in_features});
}

ln_shape ln_layer_weight_shape(const ln_layer *l)
{
    if (kinds[l->spec.kind].weight_shape) return kinds[l->spec.kind].weight_shape(l);
    return ln_shape_make(1, (int64_t[]){l->weight_n});
}

/* ------------------------------------------------------------------ dispatch */

void ln_layer_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx)
{
    const ln_layer_ops *k = &kinds[l->spec.kind];
    (ctx->reference ? &k->reference : &k->fast)->forward(l, x, y, ctx);
}

void ln_layer_backward(ln_layer *l, const float *x, const float *y, const float *dy, float *dx,
                       const ln_ctx *ctx)
{
    /* A layer without parameters has nothing to do when no input gradient is wanted. */
    if (!dx && l->weight_n + l->bias_n == 0) return;
    const ln_layer_ops *k = &kinds[l->spec.kind];
    (ctx->reference ? &k->reference : &k->fast)->backward(l, x, y, dy, dx, ctx);
}
/* ------------------------------------------------------------------ kernels
 *
 * The kernels in one signature (ln_kernels). Each kind file keeps the signature that
 * says what its kernel reads (const layer, no x, no y); these adapters fit them:
 * FORWARD passes everything on, BACKWARD_X drops y, BACKWARD_D drops x and y. */

#define FORWARD(name, kernel)                                                                 \
    static void name(ln_layer *l, const float *x, float *y, const ln_ctx *c) { kernel(l, x, y, c); }
#define BACKWARD_X(name, kernel)                                                              \
    static void name(ln_layer *l, const float *x, const float *y, const float *dy, float *dx, \
                     const ln_ctx *c)                                                         \
    {                                                                                         \
        (void)y;                                                                              \
        kernel(l, x, dy, dx, c);                                                              \
    }
#define BACKWARD_D(name, kernel)                                                              \
    static void name(ln_layer *l, const float *x, const float *y, const float *dy, float *dx, \
                     const ln_ctx *c)                                                         \
    {                                                                                         \
        (void)x, (void)y;                                                                     \
        kernel(l, dy, dx, c);                                                                 \
    }

FORWARD(conv2d_fwd, conv2d_forward)
FORWARD(conv2d_fwd_ref, conv2d_forward_reference)
BACKWARD_X(conv2d_bwd, conv2d_backward)
BACKWARD_X(conv2d_bwd_ref, conv2d_backward_reference)
FORWARD(linear_fwd, linear_forward)
FORWARD(linear_fwd_ref, linear_forward_reference)
BACKWARD_X(linear_bwd, linear_backward)
BACKWARD_X(linear_bwd_ref, linear_backward_reference)
BACKWARD_D(maxpool2d_bwd, maxpool2d_backward)
BACKWARD_D(maxpool2d_bwd_ref, maxpool2d_backward_reference)
FORWARD(avgpool2d_fwd, avgpool2d_forward)
FORWARD(avgpool2d_fwd_ref, avgpool2d_forward_reference)
BACKWARD_D(avgpool2d_bwd, avgpool2d_backward)
BACKWARD_D(avgpool2d_bwd_ref, avgpool2d_backward_reference)
BACKWARD_D(dropout_bwd, dropout_backward)
BACKWARD_X(batchnorm_bwd, batchnorm_backward)
FORWARD(log_softmax_fwd, log_softmax_forward)

/* flatten: the same floats, another shape. */
static void flatten_fwd(ln_layer *l, const float *x, float *y, const ln_ctx *c)
{
    memcpy(y, x, sizeof(float) * (size_t)(l->in_n * c->batch));
}
static void flatten_bwd(ln_layer *l, const float *x, const float *y, const float *dy, float *dx,
                        const ln_ctx *c)
{
    (void)x, (void)y;
    memcpy(dx, dy, sizeof(float) * (size_t)(l->in_n * c->batch));
}

static void log_softmax_bwd(ln_layer *l, const float *x, const float *y, const float *dy,
                            float *dx, const ln_ctx *c)
{
    (void)x;
    log_softmax_backward(l, y, dy, dx, c);
}

/* ------------------------------------------------------------------ threads */

static int split_always(const ln_layer *l, const ln_ctx *ctx, int backward)
{
    (void)l, (void)ctx, (void)backward;
    return 1;
}

/* Linear layers of fewer multiply-adds than this per batch stay on one thread: on two
 * threads, a small layer's time is that of its data moving between the cores, not of
 * its arithmetic (the study's last layer, 50 -> 10 at batch 64, 32,000 multiply-adds:
 * 5.8 us forward and 4.1 backward a step on 2 threads where the cores share no L3,
 * 1.9 and 1.9 on one; its 320 -> 50 layer, a million, is faster split). */
#define LINEAR_SPLIT_MIN_MACS 262144

static int linear_split_ok(const ln_layer *l, const ln_ctx *ctx, int backward)
{
    (void)backward;
    return (int64_t)ctx->batch * l->in_n * l->out_n >= LINEAR_SPLIT_MIN_MACS;
}

/* Batchnorm splits by channels; its reference twin stays on one thread. */
static int batchnorm_split_ok(const ln_layer *l, const ln_ctx *ctx, int backward)
{
    (void)backward;
    return !ctx->reference && l->in.dim[0] > 1;
}

/* ------------------------------------------------------------------ the table */

#define INT_P(n, field, req, def, lo, hi) \
    {n, LN_PARAM_INT, req, def, lo, hi, offsetof(ln_layer_spec, field)}
#define BOOL_P(n, field, def) {n, LN_PARAM_BOOL, 0, def, 0, 1, offsetof(ln_layer_spec, field)}
#define FLOAT_P(n, field, req, def, lo, hi) \
    {n, LN_PARAM_FLOAT, req, def, lo, hi, offsetof(ln_layer_spec, field)}
#define SIZE_MAX_P (1 << 24) /* channels, features: far beyond any net here */
#define WINDOW_MAX_P 4096    /* kernel, stride, padding */
#define PARAMS(a) (int)(sizeof(a) / sizeof(a[0])), a
#define NO_PARAMS 0, NULL

static const ln_layer_param conv2d_params[] = {
    INT_P("in_channels", in_channels, 1, 0, 1, SIZE_MAX_P),
    INT_P("out_channels", out_channels, 1, 0, 1, SIZE_MAX_P),
    INT_P("kernel", kernel, 1, 0, 1, WINDOW_MAX_P),
    INT_P("stride", stride, 0, 1, 1, WINDOW_MAX_P),
    INT_P("padding", padding, 0, 0, 0, WINDOW_MAX_P),
    BOOL_P("bias", bias, 1),
};
/* stride 0 (the default) is PyTorch's stride=None: the kernel */
static const ln_layer_param pool_params[] = {
    INT_P("kernel", kernel, 1, 0, 1, WINDOW_MAX_P),
    INT_P("stride", stride, 0, 0, 0, WINDOW_MAX_P),
};
static const ln_layer_param linear_params[] = {
    INT_P("in_features", in_features, 1, 0, 1, SIZE_MAX_P),
    INT_P("out_features", out_features, 1, 0, 1, SIZE_MAX_P),
    BOOL_P("bias", bias, 1),
};
static const ln_layer_param dropout_params[] = {
    FLOAT_P("p", p, 0, 0.5, 0, 1),
};
static const ln_layer_param batchnorm_params[] = {
    INT_P("features", in_channels, 1, 0, 1, SIZE_MAX_P),
    FLOAT_P("eps", eps, 0, 1e-5, 0, HUGE_VAL),
    FLOAT_P("momentum", momentum, 0, 0.1, 0, 1),
};

/* relu, tanh, sigmoid: no parameters, same shape, core/activation.c's kernels */
static const ln_layer_param leaky_relu_params[] = {
    FLOAT_P("negative_slope", negative_slope, 0, 0.01, -HUGE_VAL, HUGE_VAL),
};

#define ACTIVATION(nm, tag)                                                                   \
    {                                                                                         \
        .info = {nm, tag, NO_PARAMS}, .setup = setup_same,                                    \
        .fast = {activation_forward, activation_backward},                                    \
        .reference = {activation_forward_reference, activation_backward_reference},           \
        .absorbs_pool = activation_absorbs_pool,                                              \
    }

/* dropout, dropout2d: one kernel, masks of elements or of whole channels (dropout.c) */
#define DROPOUT(nm, tag)                                                                      \
    {                                                                                         \
        .info = {nm, tag, PARAMS(dropout_params)}, .setup = setup_dropout,                    \
        .fast = {dropout_forward, dropout_bwd}, .reference = {dropout_forward, dropout_bwd},  \
        .mask_per_sample = dropout_mask, .draws = dropout_draws,                              \
        .forward_part = dropout_forward_part, .forward_finish = dropout_forward_finish,       \
    }

/* batchnorm2d, batchnorm1d: one kernel over N x C x (rest); it chooses its reference
 * twin itself, per channel range (core/batchnorm.c) */
#define BATCHNORM(nm, tag, min_batch)                                                         \
    {                                                                                         \
        .info = {nm, tag, PARAMS(batchnorm_params)}, .setup = setup_batchnorm,                \
        .init = init_batchnorm, .fast = {batchnorm_forward, batchnorm_bwd},                   \
        .reference = {batchnorm_forward, batchnorm_bwd}, .saved_count = batchnorm_saved,      \
        .buffer_count = batchnorm_buffers, .hands_off = batchnorm_hands_off,                   \
        .split_ok = batchnorm_split_ok, .forward_part = batchnorm_forward_part,               \
        .backward_part = batchnorm_backward_part, .min_training_batch = min_batch,            \
        .absorbs_act = batchnorm_absorbs_act, .absorbs_pool = batchnorm_absorbs_pool,         \
        .workspace = batchnorm_workspace,                                                     \
    }

/* In enum order (designated, so a slip is a compile error, not a shifted table). The
 * file tags are the model file's kind numbers: append-only, see ln_layer_kind_info. */
static const ln_layer_ops kinds[LN_LAYER_KIND_COUNT] = {
    [LN_CONV2D] = {.info = {"conv2d", 0, PARAMS(conv2d_params)},
                   .setup = setup_conv2d,
                   .init = init_conv2d,
                   .fast = {conv2d_fwd, conv2d_bwd},
                   .reference = {conv2d_fwd_ref, conv2d_bwd_ref},
                   .workspace = conv2d_workspace,
                   .split_ok = split_always,
                   .backward_part = conv2d_backward_part,
                   .backward_finish = conv2d_backward_reduce,
                   .flops = conv2d_flops,
                   .weight_shape = conv2d_weight_shape,
                   .absorbs_act = conv2d_absorbs_act,
                   .absorbs_pool = conv2d_absorbs_pool,
                   .absorbs_pool_act = conv2d_absorbs_pool_act,
                   .absorbs_pool_drop = conv2d_absorbs_pool_drop,
                   .takes_over = conv2d_takes_over,
                   .forward_part = conv2d_forward_part,
                   .forward_finish = conv2d_forward_finish},
    [LN_MAXPOOL2D] = {.info = {"maxpool2d", 1, PARAMS(pool_params)},
                      .setup = setup_pool,
                      .fast = {maxpool2d_forward, maxpool2d_bwd},
                      .reference = {maxpool2d_forward_reference, maxpool2d_bwd_ref},
                      .argmax_per_sample = maxpool_argmax,
                      .absorbs_act = maxpool2d_absorbs_act},
    [LN_AVGPOOL2D] = {.info = {"avgpool2d", 2, PARAMS(pool_params)},
                      .setup = setup_pool,
                      .fast = {avgpool2d_fwd, avgpool2d_bwd},
                      .reference = {avgpool2d_fwd_ref, avgpool2d_bwd_ref}},
    [LN_RELU] = ACTIVATION("relu", 3),
    [LN_TANH] = ACTIVATION("tanh", 4),
    [LN_SIGMOID] = ACTIVATION("sigmoid", 5),
    [LN_LINEAR] = {.info = {"linear", 6, PARAMS(linear_params)},
                   .setup = setup_linear,
                   .init = init_linear,
                   .fast = {linear_fwd, linear_bwd},
                   .reference = {linear_fwd_ref, linear_bwd_ref},
                   .split_ok = linear_split_ok,
                   .backward_part = linear_backward_part,
                   .flops = linear_flops,
                   .weight_shape = linear_weight_shape,
                   .writes_grads = 1},
    [LN_DROPOUT] = DROPOUT("dropout", 7),
    [LN_DROPOUT2D] = DROPOUT("dropout2d", 8),
    [LN_FLATTEN] = {.info = {"flatten", 9, NO_PARAMS},
                    .setup = setup_flatten,
                    .fast = {flatten_fwd, flatten_bwd},
                    .reference = {flatten_fwd, flatten_bwd}},
    [LN_LOG_SOFTMAX] = {.info = {"log_softmax", 10, NO_PARAMS},
                        .setup = setup_log_softmax,
                        .fast = {log_softmax_fwd, log_softmax_bwd},
                        .reference = {log_softmax_fwd, log_softmax_bwd}},
    [LN_BATCHNORM2D] = BATCHNORM("batchnorm2d", 11, 0),
    /* one sample has no variance per feature: PyTorch refuses to train on it too */
    [LN_BATCHNORM1D] = BATCHNORM("batchnorm1d", 12, 2),
    [LN_LEAKY_RELU] = {.info = {"leaky_relu", 13, PARAMS(leaky_relu_params)},
                       .setup = setup_leaky_relu,
                       .fast = {activation_forward, activation_backward},
                       .reference = {activation_forward_reference, activation_backward_reference}},
};

const ln_layer_ops *ln_layer_ops_of(ln_layer_kind k) { return &kinds[k]; }

const ln_layer_kind_info *ln_layer_kind_info_of(ln_layer_kind k)
{
    return is_kind((int)k) ? &kinds[k].info : NULL;
}

const char *ln_layer_kind_name(ln_layer_kind k)
{
    return is_kind((int)k) ? kinds[k].info.name : "unknown";
}

int ln_layer_kind_count(void) { return LN_LAYER_KIND_COUNT; }

int ln_layer_kind_from_name(const char *name)
{
    for (int k = 0; name && k < LN_LAYER_KIND_COUNT; k++)
        if (!strcmp(kinds[k].info.name, name)) return k;
    return -1;
}

int ln_layer_kind_from_file_tag(uint32_t tag)
{
    for (int k = 0; k < LN_LAYER_KIND_COUNT; k++)
        if (kinds[k].info.file_tag == tag) return k;
    return -1;
}

ln_layer_spec ln_layer_spec_defaults(ln_layer_kind k)
{
    ln_layer_spec s = blank(k);
    if (!is_kind((int)k)) return s;
    for (int i = 0; i < kinds[k].info.param_count; i++)
        ln_layer_param_set(&s, &kinds[k].info.params[i], kinds[k].info.params[i].fallback);
    return s;
}

