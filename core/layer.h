/*
 * layer.h - the engine-internal view of a layer: where its parameters, saved state
 * and shapes live, and the forward/backward kernels of every kind. Not installed.
 *
 * Every kernel works on a whole batch: x is batch x in_n, y is batch x out_n
 * (per-sample sizes), both contiguous. Backward receives the forward's x and y
 * (so activations need not be recomputed), dy, and writes dx when dx != NULL;
 * parameter gradients are accumulated into dweight/dbias, which the net zeroes
 * before a backward pass, or written (kinds whose descriptor says writes_grads).
 */
#ifndef LUNET_LAYER_H
#define LUNET_LAYER_H

#include "lunet.h"

typedef struct ln_layer ln_layer;

struct ln_layer {
    ln_layer_spec spec;
    ln_shape in, out;          /* per sample */
    int64_t in_n, out_n;       /* elements per sample */
    int64_t weight_n, bias_n;  /* parameter counts */
    float *weight, *bias;      /* views into the net's parameter block */
    float *dweight, *dbias;    /* views into the net's gradient block */
    float *running_mean, *running_var; /* batchnorm: views into the buffer block */
    float *mask;               /* dropout: batch x (out_n or channels) keep-scales */
    int32_t *argmax;           /* maxpool: batch x out_n flat input offsets */
    float *saved;              /* batchnorm: mean, invstd, mean dy, mean dy*xhat per channel, unpool map */
    /* Set by the net for a pass when the activation that follows (act_kind: ReLU, tanh,
     * sigmoid) is fused into this layer (its absorbs_act said yes; net.c skips the
     * activation): the activation's output, batch x out_n like y. Forward then writes
     * act(y) there; backward takes dy with respect to it and applies the activation's
     * derivative first. NULL: no fusion. */
    const float *act_y;
    ln_layer_kind act_kind;
    /* Likewise for a 2x2 pooling that follows (average or max, after the fused
     * activation, if any; the kind's absorbs_pool said yes): its output, batch x
     * (C x H/2 x W/2).
     * Forward also writes the pooled values there; backward takes dy with respect to
     * them (pooled) and spreads it as the pooling's backward would. NULL: no fusion. */
    float *pool_y;
    int32_t *pool_argmax; /* a fused max pooling's: the pooling layer's argmax */
    /* A ReLU after the fused pooling (the kind's absorbs_pool_act said yes): applied to
     * the pooled values, so pool_y is the ReLU's output. 0: none. */
    int pool_relu;
    /* A dropout2d between this layer's output and its fused pooling, taken in too (the
     * kind's absorbs_pool_drop said yes): in training the layer draws that layer's mask
     * (its ln_layer.mask, as it would) and scales each channel before the pooling, and
     * scales the spread gradient backward. NULL: none. */
    ln_layer *pool_drop;
    /* Set by the net for a pass: a max pooling this layer does not take in comes next
     * (after a fused activation, if any), with at most a quarter as many windows as
     * places, so its output gradient is +-0 but at one place a window (conv2d then takes
     * its listed gradients). 0: not known. */
    int dy_sparse;
    /* Set by the net for a pass: this layer's work is done by the layer before it (an
     * activation or pooling it absorbed); net.c skips it forward and backward. */
    int absorbed;
    /* Work a batchnorm hands to the layer right before it (a convolution; the kinds'
     * hands_off and takes_over said yes), set by the net for a backward pass with the
     * fast kernels, so that the batchnorm's input gradient is never written out whole
     * and read back (the custom net's first batchnorm: 3.2 MB a step of 64). The
     * batchnorm (defer_dx = 1) makes only its sums and leaves dx unwritten; defer_x and
     * defer_dy are the x and dy of its pass. The layer before (grad_bn: that batchnorm)
     * makes its own dy from them a chunk of samples at a time (batchnorm_input_grad), in
     * scratch. 0, NULL: none. */
    int defer_dx;
    const float *defer_x, *defer_dy;
    const ln_layer *grad_bn;
};

/* Everything a kernel needs that is not the layer's own. */
typedef struct {
    int batch;
    int training;
    int reference;      /* use the plain reference kernels */
    ln_rng *rng;        /* dropout draws */
    float *workspace;   /* scratch of ln_layer_workspace() floats, this thread's own */
    float *shared;      /* with threads: the first thread's workspace, which kernels that
                           split one result over threads share (NULL: workspace) */
} ln_ctx;

/* ------------------------------------------------------------ kind descriptors
 *
 * One per layer kind, in core/layer.c's table (KANN's kad_op_list, Darknet's layer
 * types): everything the engine does differently per kind. NULL members mean "the
 * common case", said beside each. */

/* The two kernels of a kind, in one signature for all kinds. Backward receives the
 * forward's x and y and dy; it writes dx when dx != NULL and accumulates parameter
 * gradients (or writes them: ln_layer_ops.writes_grads). */
typedef struct {
    void (*forward)(ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
    void (*backward)(ln_layer *l, const float *x, const float *y, const float *dy, float *dx,
                     const ln_ctx *ctx);
} ln_kernels;

typedef struct {
    ln_layer_kind_info info; /* public: name, file tag, constructor parameters */
    /* Shape rule: checks the spec, sets l->out and the parameter counts from l->in
     * (which the caller has set, with l->out = l->in and no parameters). */
    ln_status (*setup)(ln_layer *l, int index, ln_error *err);
    void (*init)(ln_layer *l, ln_rng *rng); /* PyTorch's initialisation; NULL: nothing */
    ln_kernels fast, reference;             /* reference: the plain twins (or fast again) */
    /* Memory: floats of scratch (shared by all layers), per-sample saved state (mask
     * floats, argmax int32s), and per-layer saved floats; NULL: none. */
    int64_t (*workspace)(const ln_layer *l);
    int64_t (*mask_per_sample)(const ln_layer *l);
    int64_t (*argmax_per_sample)(const ln_layer *l);
    int64_t (*saved_count)(const ln_layer *l);
    int64_t (*buffer_count)(const ln_layer *l); /* running statistics (batchnorm) */
    /* Threads (core/layer_split.c). split_ok NULL: split by samples when the pass is
     * large enough; forward_part/backward_part NULL: thread t takes its samples;
     * forward_finish/backward_finish NULL: nothing to do after a split pass (run on
     * one thread after the region). */
    int (*split_ok)(const ln_layer *l, const ln_ctx *ctx, int backward);
    void (*forward_part)(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int t, int T);
    void (*backward_part)(ln_layer *l, const float *x, const float *dy, float *dx,
                          const ln_ctx *ctx, int t, int T);
    void (*forward_finish)(ln_layer *l, const ln_ctx *ctx);
    void (*backward_finish)(ln_layer *l, const ln_ctx *ctx);
    /* Multiply-adds of one sample's forward pass x 2; NULL: 0 (memory-bound kinds). */
    double (*flops)(const ln_layer *l);
    /* The weight's shape as a tensor (conv2d: out x in x k x k); NULL: a vector. */
    ln_shape (*weight_shape)(const ln_layer *l);
    /* Training: whether the layer draws random numbers (then the pass needs ctx->rng;
     * NULL: never), and the fewest samples a training batch needs (0: any). */
    int (*draws)(const ln_layer *l);
    int min_training_batch;
    /* Whether the fast kernels can apply the activation `act` that follows the layer
     * (ln_layer.act_y), saving its passes over memory; NULL: never. */
    int (*absorbs_act)(const ln_layer *l, ln_layer_kind act);
    /* Whether the fast kernels can also do the pooling layer `pool` that follows (after
     * the absorbed activation, if any): ln_layer.pool_y; NULL: never. */
    int (*absorbs_pool)(const ln_layer *l, const ln_layer *pool);
    /* Whether, with that pooling absorbed, they can also apply the activation `act` that
     * follows the pooling (ln_layer.pool_relu); NULL: never. */
    int (*absorbs_pool_act)(const ln_layer *l, const ln_layer *pool, ln_layer_kind act);
    /* Whether they can take in a dropout `drop` between the layer (with no fused
     * activation) and that pooling (ln_layer.pool_drop); NULL: never. */
    int (*absorbs_pool_drop)(const ln_layer *l, const ln_layer *drop);
    /* Whether the layer can hand work to the layer before it (ln_layer.defer_dx), and
     * whether a layer can take that work of the layer `next` after it; NULL: never. */
    int (*hands_off)(const ln_layer *l, const ln_ctx *ctx);
    int (*takes_over)(const ln_layer *l, const ln_layer *next);
    /* 1: both backward kernels write the parameter gradients (0 + the sum, the bits of
     * adding it to zeros) instead of adding to them, so the net need not zero them
     * first (the Fashion-MNIST net's 3136 -> 1024 linear: 12.8 MB less to clear and
     * read back per step). */
    int writes_grads;
} ln_layer_ops;

/* Whether a pooling layer has 2x2 windows with stride 2 and no padding: the windows the
 * vectorised pooling kernels and every fused pooling handle. */
static inline int ln_pool_is_2x2(const ln_layer *pool)
{
    return pool->spec.kernel == 2 && pool->spec.stride == 2 && pool->spec.padding == 0;
}

/* Floats per sample of a fused 2x2 pooling's output (ln_layer.pool_y): C x H/2 x W/2
 * of the layer's C x H x W output. */
static inline int64_t ln_pooled_n(const ln_layer *l)
{
    return l->out.dim[0] * (l->out.dim[1] / 2) * (l->out.dim[2] / 2);
}

/* The descriptor of l's kind (the kind was checked when the layer was set up). */
const ln_layer_ops *ln_layer_ops_of(ln_layer_kind k);
/* The kind a model file's tag stands for, or -1. */
int ln_layer_kind_from_file_tag(uint32_t tag);

/* Shape inference: fills layer->out (and parameter counts) from layer->in, or fails
 * with a message naming the layer (index, 1-based) and both shapes. */
ln_status ln_layer_setup(ln_layer *layer, int index, ln_error *err);
/* Floats of scratch a layer's kernels need (shared by all layers of a net). */
int64_t ln_layer_workspace(const ln_layer *layer);
/* Floats (mask) and int32s (argmax) of per-sample saved state. */
int64_t ln_layer_mask_per_sample(const ln_layer *layer);
int64_t ln_layer_argmax_per_sample(const ln_layer *layer);
int64_t ln_layer_saved_count(const ln_layer *layer);
int64_t ln_layer_buffer_count(const ln_layer *layer);

void ln_layer_init(ln_layer *layer, ln_rng *rng);
double ln_layer_flops(const ln_layer *layer);          /* per sample, see ln_net_layer_flops */
ln_shape ln_layer_weight_shape(const ln_layer *layer); /* as ln_net_layer_tensor shows it */
void ln_layer_forward(ln_layer *layer, const float *x, float *y, const ln_ctx *ctx);
void ln_layer_backward(ln_layer *layer, const float *x, const float *y, const float *dy,
                       float *dx, const ln_ctx *ctx);

/* Per-kind kernels (one file each). */
void conv2d_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
void conv2d_backward(ln_layer *l, const float *x, const float *dy, float *dx, const ln_ctx *ctx);
/* Threads (see core/layer_split.c): thread t of T does its share; results do not
 * depend on T. conv2d's lane partials are summed by conv2d_backward_reduce after. */
int conv2d_absorbs_act(const ln_layer *l, ln_layer_kind act);
int conv2d_absorbs_pool(const ln_layer *l, const ln_layer *pool);
int conv2d_absorbs_pool_act(const ln_layer *l, const ln_layer *pool, ln_layer_kind act);
int conv2d_absorbs_pool_drop(const ln_layer *l, const ln_layer *drop);
int conv2d_takes_over(const ln_layer *l, const ln_layer *bn);
void conv2d_forward_part(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int t, int T);
void conv2d_forward_finish(ln_layer *l, const ln_ctx *ctx);
void conv2d_backward_part(ln_layer *l, const float *x, const float *dy, float *dx,
                          const ln_ctx *ctx, int t, int T);
void conv2d_backward_reduce(ln_layer *l, const ln_ctx *ctx);
void conv2d_forward_reference(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
void conv2d_backward_reference(ln_layer *l, const float *x, const float *dy, float *dx,
                               const ln_ctx *ctx);
int64_t conv2d_workspace(const ln_layer *l); /* floats of scratch the fast kernels need */

void linear_forward(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
void linear_backward(ln_layer *l, const float *x, const float *dy, float *dx, const ln_ctx *ctx);
void linear_backward_part(ln_layer *l, const float *x, const float *dy, float *dx,
                          const ln_ctx *ctx, int t, int T);
void linear_forward_reference(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
void linear_backward_reference(ln_layer *l, const float *x, const float *dy, float *dx,
                               const ln_ctx *ctx);

void maxpool2d_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
int maxpool2d_absorbs_act(const ln_layer *l, ln_layer_kind act);
void maxpool2d_backward(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx);
void maxpool2d_forward_reference(ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
void maxpool2d_backward_reference(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx);
void avgpool2d_forward(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
void avgpool2d_backward(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx);
void avgpool2d_forward_reference(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
void avgpool2d_backward_reference(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx);

/* The elementwise kinds (relu, tanh, sigmoid) in the descriptors' own signature. */
void activation_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
int activation_absorbs_pool(const ln_layer *l, const ln_layer *pool);
void activation_backward(ln_layer *l, const float *x, const float *y, const float *dy, float *dx,
                         const ln_ctx *ctx);
void activation_forward_reference(ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
void activation_backward_reference(ln_layer *l, const float *x, const float *y, const float *dy,
                                   float *dx, const ln_ctx *ctx);

void dropout_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
void dropout_backward(const ln_layer *l, const float *dy, float *dx, const ln_ctx *ctx);
void dropout_forward_part(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int t, int T);
void dropout_forward_finish(ln_layer *l, const ln_ctx *ctx);
void dropout_draw_part(ln_layer *l, const ln_ctx *ctx, int64_t b0, int64_t b1);

/* log(sum_i exp(x_i)) of n >= 1 floats, max-shifted, summed in double */
double ln_log_sum_exp(const float *x, int64_t n);
void log_softmax_forward(const ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
void log_softmax_backward(const ln_layer *l, const float *y, const float *dy, float *dx,
                          const ln_ctx *ctx);

void batchnorm_forward(ln_layer *l, const float *x, float *y, const ln_ctx *ctx);
int batchnorm_absorbs_act(const ln_layer *l, ln_layer_kind act);
int batchnorm_absorbs_pool(const ln_layer *l, const ln_layer *pool);
int64_t batchnorm_workspace(const ln_layer *l);
int64_t batchnorm_unpool_floats(const ln_layer *l);
int batchnorm_unpools(const ln_layer *l);
void batchnorm_backward(ln_layer *l, const float *x, const float *dy, float *dx,
                        const ln_ctx *ctx);
void batchnorm_forward_part(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int t, int T);
void batchnorm_backward_part(ln_layer *l, const float *x, const float *dy, float *dx,
                             const ln_ctx *ctx, int t, int T);
int batchnorm_hands_off(const ln_layer *l, const ln_ctx *ctx);
/* The input gradient a deferring batchnorm (ln_layer.defer_dx) left unwritten, of
 * samples [n0, n0 + ns), into out (ns x in_n): bit for bit what its backward would
 * have written. */
void batchnorm_input_grad(const ln_layer *l, const ln_ctx *ctx, int64_t n0, int ns, float *out);

/* The work of one layer split over T threads (core/layer_split.c). ln_layer_split_ok
 * says whether the pass is worth (and able to be) split at all; backward_finish is
 * the serial end of a split backward pass (conv2d's lane reduction). */
int ln_layer_split_ok(const ln_layer *l, const ln_ctx *ctx, int backward);
/* The common rule: split by samples when the pass moves enough floats to pay. */
int ln_layer_split_by_size(const ln_layer *l, const ln_ctx *ctx);
void ln_layer_forward_part(ln_layer *l, const float *x, float *y, const ln_ctx *ctx, int t, int T);
void ln_layer_backward_part(ln_layer *l, const float *x, const float *y, const float *dy,
                            float *dx, const ln_ctx *ctx, int t, int T);
void ln_layer_forward_finish(ln_layer *l, const ln_ctx *ctx);
void ln_layer_backward_finish(ln_layer *l, const ln_ctx *ctx);

#endif
