/* net.c - a sequential network: layers in order, with one contiguous block each for
 * parameters, gradients and buffers (batchnorm running statistics), and activation
 * memory sized once per batch size so the training step never allocates.
 *
 * Activation block (for a reserved batch B):
 *   act[0]      = B x input       (a copy of the forward's input, kept for backward)
 *   act[i + 1]  = B x output(i)   (layer i's output; a flatten's is its input's floats,
 *                                  the same memory: the net neither copies nor stores it)
 * Gradient block: two ping-pong buffers of B x (largest per-sample size).
 */
#include "conv_geom.h" /* ln_whole_lines */
#include "layer.h"
#include "workers.h"

#include <string.h>

struct ln_net {
    int count;
    ln_layer *layers;
    ln_layer_spec *specs;
    ln_shape input;
    int64_t param_count, buffer_count, saved_count;
    float *params, *grads, *buffers, *saved;

    int reserved;            /* batch the activation memory is sized for */
    float **act;             /* count + 1 pointers into act_block */
    float *act_block;
    float *grad_a, *grad_b;  /* ping-pong gradient buffers */
    float *grad_block;
    float *mask_block;
    int32_t *argmax_block;
    float *workspace;
    int64_t workspace_n;

    int last_batch;          /* batch of the last forward, 0 if none */
    int last_training;
    int last_reference;      /* the kernels of the last forward: its backward takes the same */
    int reference;

    int threads;             /* threads a pass uses (ln_net_set_threads), >= 1 */
    ln_workers *workers;     /* NULL when threads == 1 */
};

/* Most floats (or int32s) of activation memory one net may reserve: 2^32, 16 GiB. */
#define LN_ACTIVATION_LIMIT ((int64_t)1 << 32)

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Points every layer's views into the net's blocks. */
static void bind_views(ln_net *net)
{
    int64_t p = 0, b = 0, s = 0;
    for (int i = 0; i < net->count; i++) {
        ln_layer *l = &net->layers[i];
        l->weight = l->weight_n ? net->params + p : NULL;
        l->dweight = l->weight_n ? net->grads + p : NULL;
        p += l->weight_n;
        l->bias = l->bias_n ? net->params + p : NULL;
        l->dbias = l->bias_n ? net->grads + p : NULL;
        p += l->bias_n;
        int64_t nb = ln_layer_buffer_count(l);
        l->running_mean = nb ? net->buffers + b : NULL;
        l->running_var = nb ? net->buffers + b + nb / 2 : NULL;
        b += nb;
        int64_t ns = ln_layer_saved_count(l);
        l->saved = ns ? net->saved + s : NULL;
        s += ns;
    }
}

static void release_activations(ln_net *net)
{
    ln_dealloc(net->act);
    ln_dealloc(net->act_block);
    ln_dealloc(net->grad_block);
    ln_dealloc(net->mask_block);
    ln_dealloc(net->argmax_block);
    ln_dealloc(net->workspace);
    net->act = NULL;
    net->act_block = net->grad_block = net->mask_block = net->workspace = NULL;
    net->argmax_block = NULL;
    net->grad_a = net->grad_b = NULL;
    net->reserved = 0;
    net->last_batch = 0;
    for (int i = 0; net->layers && i < net->count; i++) { /* no layers: a failed create */
        net->layers[i].mask = NULL;
        net->layers[i].argmax = NULL;
    }
}

void ln_net_free(ln_net *net)
{
    if (!net) return;
    release_activations(net);
    ln_workers_free(net->workers);
    ln_dealloc(net->layers);
    ln_dealloc(net->specs);
    ln_dealloc(net->params);
    ln_dealloc(net->grads);
    ln_dealloc(net->buffers);
    ln_dealloc(net->saved);
    ln_dealloc(net);
}

/* ln_alloc_zeroed of n floats, but a valid (1-float) block when n == 0 so that every
 * pointer of a live net is non-NULL. */
static float *floats(int64_t n) { return ln_alloc_zeroed((size_t)(n > 0 ? n : 1), sizeof(float)); }

ln_status ln_net_create(ln_net **out, const ln_layer_spec *layers, int count, ln_shape input,
                        ln_rng *rng, ln_error *err)
{
    if (!out) return ln_fail(err, LN_EINVAL, "net: output is NULL");
    *out = NULL;
    if (count < 1 || !layers) return ln_fail(err, LN_EINVAL, "net: needs at least one layer");
    if (input.ndim < 1 || input.ndim > 3)
        return ln_fail(err, LN_EINVAL, "net: input shape must have 1 to 3 dimensions (per sample)");
    for (int i = 0; i < input.ndim; i++)
        if (input.dim[i] < 1 || input.dim[i] > (1 << 24))
            return ln_fail(err, LN_EINVAL, "net: input dimension %d must be in [1, 2^24]", i + 1);
    /* each dimension is below 2^25, so the product of three fits in int64 */
    if (ln_shape_numel(input) > ((int64_t)1 << 31))
        return ln_fail(err, LN_ENOMEM, "net: inputs of more than 2^31 elements per sample are too large");

    ln_net *net = ln_alloc_zeroed(1, sizeof *net);
    if (!net) return ln_fail(err, LN_ENOMEM, "net: out of memory");
    net->count = count;
    net->input = input;
    net->threads = 1;
    net->layers = ln_alloc_zeroed((size_t)count, sizeof *net->layers);
    net->specs = ln_alloc_zeroed((size_t)count, sizeof *net->specs);
    if (!net->layers || !net->specs) {
        ln_net_free(net);
        return ln_fail(err, LN_ENOMEM, "net: out of memory for %d layers", count);
    }
    ln_shape shape = input;
    for (int i = 0; i < count; i++) {
        ln_layer *l = &net->layers[i];
        net->specs[i] = layers[i];
        l->spec = layers[i];
        l->in = shape;
        ln_status st = ln_layer_setup(l, i + 1, err);
        if (st) {
            ln_net_free(net);
            return st;
        }
        net->specs[i] = l->spec; /* as completed by the shape rule (a pool's stride 0) */
        /* Keep sizes far from overflow: 2^31 elements per sample is beyond any CNN here. */
        /* (the kind is named from the caller's spec: l dies with the net) */
        if (l->out_n < 1 || l->out_n > ((int64_t)1 << 31) || l->weight_n > ((int64_t)1 << 31)) {
            ln_net_free(net);
            return ln_fail(err, LN_ENOMEM, "layer %d (%s): too large", i + 1,
                           ln_layer_kind_name(layers[i].kind));
        }
        net->param_count += l->weight_n + l->bias_n;
        net->buffer_count += ln_layer_buffer_count(l);
        net->saved_count += ln_layer_saved_count(l);
        int64_t ws = ln_layer_workspace(l);
        if (ws < 0 || ws > ((int64_t)1 << 33)) {
            ln_net_free(net);
            return ln_fail(err, LN_ENOMEM, "layer %d (%s): its scratch memory is too large", i + 1,
                           ln_layer_kind_name(layers[i].kind));
        }
        /* whole cache lines, so that every thread's scratch (workspace_n floats apart)
         * starts on one: 35,140 floats left the second thread's unfolded rows and
         * lane partials 16 bytes off, and its share of the study's conv2 backward took
         * 15% longer than the first thread's, every vector access split over two lines */
        net->workspace_n = max64(net->workspace_n, ln_whole_lines(ws));
        shape = l->out;
    }
    net->params = floats(net->param_count);
    net->grads = floats(net->param_count);
    net->buffers = floats(net->buffer_count);
    net->saved = floats(net->saved_count);
    if (!net->params || !net->grads || !net->buffers || !net->saved) {
        const long long params = (long long)net->param_count; /* read before the net dies */
        ln_net_free(net);
        return ln_fail(err, LN_ENOMEM, "net: out of memory for %lld parameters", params);
    }
    bind_views(net);
    ln_rng fallback;
    if (!rng) {
        ln_rng_seed(&fallback, 0, LN_STREAM_INIT);
        rng = &fallback;
    }
    ln_net_init_params(net, rng);
    *out = net;
    return LN_OK;
}

ln_status ln_net_clone(const ln_net *net, ln_net **out, ln_error *err)
{
    if (!net) return ln_fail(err, LN_EINVAL, "clone: net is NULL");
    ln_status st = ln_net_create(out, net->specs, net->count, net->input, NULL, err);
    if (st) return st;
    memcpy((*out)->params, net->params, sizeof(float) * (size_t)net->param_count);
    memcpy((*out)->buffers, net->buffers, sizeof(float) * (size_t)net->buffer_count);
    (*out)->reference = net->reference;
    return LN_OK;
}

void ln_net_init_params(ln_net *net, ln_rng *rng)
{
    for (int i = 0; i < net->count; i++) ln_layer_init(&net->layers[i], rng);
}

int ln_net_layer_count(const ln_net *net) { return net->count; }
const ln_layer_spec *ln_net_layer_spec(const ln_net *net, int i) { return &net->specs[i]; }
ln_shape ln_net_input_shape(const ln_net *net) { return net->input; }
ln_shape ln_net_layer_output_shape(const ln_net *net, int i) { return net->layers[i].out; }
ln_shape ln_net_output_shape(const ln_net *net) { return net->layers[net->count - 1].out; }

int64_t ln_net_layer_param_count(const ln_net *net, int i)
{
    return net->layers[i].weight_n + net->layers[i].bias_n;
}

double ln_net_layer_flops(const ln_net *net, int i)
{
    /* Only the multiply-adds of conv2d and linear count (2 FLOPs each); the rest is
     * memory-bound and small beside them. */
    return ln_layer_flops(&net->layers[i]);
}

double ln_net_forward_flops(const ln_net *net)
{
    double f = 0.0;
    for (int i = 0; i < net->count; i++) f += ln_net_layer_flops(net, i);
    return f;
}

/* Index of the first layer with parameters: no input gradient is needed at or before it. */
static int first_param_layer(const ln_net *net)
{
    for (int i = 0; i < net->count; i++)
        if (net->layers[i].weight_n + net->layers[i].bias_n > 0) return i;
    return net->count;
}

double ln_net_backward_flops(const ln_net *net)
{
    /* Weight gradient and input gradient each cost as much as the forward product;
     * the first parametric layer needs no input gradient. */
    double f = 0.0;
    int first = first_param_layer(net);
    for (int i = 0; i < net->count; i++) f += (i == first ? 1.0 : 2.0) * ln_net_layer_flops(net, i);
    return f;
}

int64_t ln_net_param_count(const ln_net *net) { return net->param_count; }
float *ln_net_params(ln_net *net) { return net->params; }
float *ln_net_grads(ln_net *net) { return net->grads; }
int64_t ln_net_buffer_count(const ln_net *net) { return net->buffer_count; }
float *ln_net_buffers(ln_net *net) { return net->buffers; }

ln_status ln_net_layer_tensor(ln_net *net, int layer, const char *name, ln_tensor *view,
                              ln_error *err)
{
    memset(view, 0, sizeof *view);
    if (layer < 0 || layer >= net->count)
        return ln_fail(err, LN_EINVAL, "layer index %d out of range [1, %d]", layer + 1,
                       net->count);
    ln_layer *l = &net->layers[layer];
    float *data = NULL;
    int64_t dims[1] = {0};
    int is_weight = 0;
    if (!strcmp(name, "weight") || !strcmp(name, "weight_grad")) {
        data = !strcmp(name, "weight") ? l->weight : l->dweight;
        is_weight = 1;
    } else if (!strcmp(name, "bias") || !strcmp(name, "bias_grad")) {
        data = !strcmp(name, "bias") ? l->bias : l->dbias;
        dims[0] = l->bias_n;
    } else if (!strcmp(name, "running_mean") || !strcmp(name, "running_var")) {
        data = !strcmp(name, "running_mean") ? l->running_mean : l->running_var;
        dims[0] = l->spec.in_channels;
    } else {
        return ln_fail(err, LN_EINVAL,
                       "unknown tensor name '%s' (valid: weight, bias, running_mean, running_var, "
                       "weight_grad, bias_grad)",
                       name);
    }
    if (!data)
        return ln_fail(err, LN_EINVAL, "layer %d (%s) has no %s", layer + 1,
                       ln_layer_kind_name(l->spec.kind), name);
    view->shape = is_weight ? ln_layer_weight_shape(l) : ln_shape_make(1, dims);
    view->data = data;
    view->owns = 0;
    return LN_OK;
}

ln_status ln_net_reserve(ln_net *net, int max_batch, ln_error *err)
{
    if (max_batch < 1) return ln_fail(err, LN_EINVAL, "batch must be >= 1 (got %d)", max_batch);
    if (max_batch == net->reserved) return LN_OK;
    release_activations(net);
    /* Limit: the activation memory of one net (inputs, outputs, gradients, dropout masks,
     * pooling indices, scratch) stays below LN_ACTIVATION_LIMIT floats. Per-sample sizes
     * are below 2^31 each and there are at most 10000 layers, so the per-sample sum
     * cannot overflow; it is compared with the limit before multiplying by the batch. */
    const int64_t b = max_batch;
    int64_t per_sample = ln_shape_numel(net->input), widest = ln_shape_numel(net->input);
    int64_t act_n = 0, mask_n = 0, argmax_n = 0;
    for (int i = 0; i < net->count; i++) {
        const ln_layer *l = &net->layers[i];
        per_sample += l->out_n + ln_layer_mask_per_sample(l) + ln_layer_argmax_per_sample(l);
        widest = max64(widest, l->out_n);
    }
    per_sample += 2 * widest;
    const int64_t workspace_all = net->workspace_n * net->threads;
    if (workspace_all > LN_ACTIVATION_LIMIT ||
        per_sample > (LN_ACTIVATION_LIMIT - workspace_all) / b)
        return ln_fail(err, LN_ENOMEM,
                       "batch %d needs more than %d GiB of activation memory (the limit; "
                       "use a smaller batch)",
                       max_batch, (int)(LN_ACTIVATION_LIMIT >> 28));
    act_n = b * ln_shape_numel(net->input);
    for (int i = 0; i < net->count; i++) {
        const ln_layer *l = &net->layers[i];
        if (l->spec.kind != LN_FLATTEN) act_n += b * l->out_n;
        mask_n += b * ln_layer_mask_per_sample(l);
        argmax_n += b * ln_layer_argmax_per_sample(l);
    }
    net->act = ln_alloc_zeroed((size_t)net->count + 1, sizeof(float *));
    net->act_block = floats(act_n);
    net->grad_block = floats(2 * b * widest);
    net->mask_block = floats(mask_n);
    net->argmax_block = ln_alloc_zeroed((size_t)(argmax_n > 0 ? argmax_n : 1), sizeof(int32_t));
    net->workspace = floats(net->workspace_n * net->threads);
    if (!net->act || !net->act_block || !net->grad_block || !net->mask_block ||
        !net->argmax_block || !net->workspace) {
        release_activations(net);
        return ln_fail(err, LN_ENOMEM, "net: out of memory for activations of batch %d",
                       max_batch);
    }
    float *a = net->act_block;
    net->act[0] = a;
    a += b * ln_shape_numel(net->input);
    float *m = net->mask_block;
    int32_t *am = net->argmax_block;
    for (int i = 0; i < net->count; i++) {
        ln_layer *l = &net->layers[i];
        if (l->spec.kind == LN_FLATTEN) { /* the same floats under another shape */
            net->act[i + 1] = net->act[i];
        } else {
            net->act[i + 1] = a;
            a += b * l->out_n;
        }
        l->mask = ln_layer_mask_per_sample(l) ? m : NULL;
        m += b * ln_layer_mask_per_sample(l);
        l->argmax = ln_layer_argmax_per_sample(l) ? am : NULL;
        am += b * ln_layer_argmax_per_sample(l);
    }
    net->grad_a = net->grad_block;
    net->grad_b = net->grad_block + b * widest;
    net->reserved = max_batch;
    return LN_OK;
}

int ln_net_reserved_batch(const ln_net *net) { return net->reserved; }

void ln_net_use_reference_kernels(ln_net *net, int on) { net->reference = on ? 1 : 0; }

/* ------------------------------------------------------------------ threads */

/* One layer's forward (backward = 0: x -> y) or backward pass (dy -> dx) on the net's
 * threads, split as core/layer_split.c says; on one thread when there are none. */
typedef struct {
    ln_layer *l;
    const float *x, *y, *dy;
    float *out;              /* forward: y; backward: dx */
    const ln_ctx *ctx;
    int64_t ws_stride;
    int backward;
} layer_job;

static void layer_region(void *arg, int t, int T)
{
    const layer_job *j = arg;
    ln_ctx c = *j->ctx;
    c.workspace = j->ctx->workspace + t * j->ws_stride;
    c.shared = j->ctx->workspace;
    if (j->backward)
        ln_layer_backward_part(j->l, j->x, j->y, j->dy, j->out, &c, t, T);
    else
        ln_layer_forward_part(j->l, j->x, j->out, &c, t, T);
}

static void layer_pass(ln_net *net, ln_layer *l, const float *x, float *y, const float *dy,
                       float *dx, const ln_ctx *ctx, int backward)
{
    if (!net->workers || !ln_layer_split_ok(l, ctx, backward)) {
        if (backward)
            ln_layer_backward(l, x, y, dy, dx, ctx);
        else
            ln_layer_forward(l, x, y, ctx);
        return;
    }
    layer_job j = {l, x, y, dy, backward ? dx : y, ctx, net->workspace_n, backward};
    ln_workers_run(net->workers, layer_region, &j);
    if (backward)
        ln_layer_backward_finish(l, ctx);
    else
        ln_layer_forward_finish(l, ctx);
}

ln_status ln_net_set_threads(ln_net *net, int threads, ln_error *err)
{
    if (!net) return ln_fail(err, LN_EINVAL, "threads: net is NULL");
    if (threads < 1 || threads > LN_MAX_THREADS)
        return ln_fail(err, LN_EINVAL, "threads must be in [1, %d] (got %d)", LN_MAX_THREADS, threads);
    if (threads == net->threads) return LN_OK;
    ln_workers *w = NULL;
    if (threads > 1) {
        ln_status st = ln_workers_create(&w, threads, err);
        if (st) return st;
    }
    float *ws = NULL;
    if (net->reserved) { /* every thread needs its own scratch */
        ws = floats(net->workspace_n * threads);
        if (!ws) {
            ln_workers_free(w);
            return ln_fail(err, LN_ENOMEM, "threads: out of memory for %d threads' scratch", threads);
        }
        ln_dealloc(net->workspace);
        net->workspace = ws;
    }
    ln_workers_free(net->workers);
    net->workers = w;
    net->threads = threads;
    return LN_OK;
}

int ln_net_threads(const ln_net *net) { return net->threads; }

/* Parameter passes (the optimizer step, zeroing the gradients) over fewer floats than
 * this stay on one thread: waking the others costs more than they would save. The
 * study's 21,840 parameters are split: where the two cores share no L3, each thread then
 * waits on half of the lines the other thread wrote (gradients) or read (parameters),
 * side by side (the study on 2 threads +1.5-2.5% there; unchanged where they share one) */
#define PARAM_SPLIT_MIN 16384

/* The optimizer step over parameter ranges, one per thread (every update is
 * elementwise, so the split changes nothing). */
typedef struct {
    ln_optim *opt;
    float *params;
    const float *grads;
} optim_job;

static void optim_region(void *arg, int t, int T)
{
    const optim_job *j = arg;
    int64_t b, e;
    ln_split(j->opt->count, t, T, &b, &e);
    /* cache-line aligned ranges: threads never write the same line */
    b = t == 0 ? 0 : b / 16 * 16;
    e = t == T - 1 ? j->opt->count : e / 16 * 16;
    ln_optim_step_range(j->opt, j->params, j->grads, b, e);
}

void ln_net_optim_step(ln_net *net, ln_optim *opt)
{
    if (!net->workers || opt->count < PARAM_SPLIT_MIN) {
        ln_optim_step(opt, ln_net_params(net), ln_net_grads(net));
        return;
    }
    ln_optim_step_begin(opt);
    optim_job j = {opt, ln_net_params(net), ln_net_grads(net)};
    ln_workers_run(net->workers, optim_region, &j);
}

/* Gradients are overwritten by a backward pass: those that the layers' kernels add to
 * are zeroed first, over the threads when there are many; those of kinds whose kernels
 * write them (ln_layer_ops.writes_grads: linear) are not. */
typedef struct {
    float *p;
    int64_t n;
} zero_job;

static void zero_range(void *arg, int t, int T)
{
    const zero_job *j = arg;
    int64_t b, e;
    ln_split(j->n, t, T, &b, &e);
    memset(j->p + b, 0, sizeof(float) * (size_t)(e - b));
}

static void zero_floats(ln_net *net, float *p, int64_t n)
{
    zero_job j = {p, n};
    if (net->workers && n >= PARAM_SPLIT_MIN)
        ln_workers_run(net->workers, zero_range, &j);
    else if (n > 0)
        memset(p, 0, sizeof(float) * (size_t)n);
}

static void zero_grads(ln_net *net)
{
    for (int i = 0; i < net->count; i++) {
        ln_layer *l = &net->layers[i];
        if (ln_layer_ops_of(l->spec.kind)->writes_grads) continue;
        if (l->dweight) zero_floats(net, l->dweight, l->weight_n);
        if (l->dbias) zero_floats(net, l->dbias, l->bias_n);
    }
}

/* Whether layer i takes in the activation that follows it in this forward pass: the
 * fast kernels only (the reference twins stay one layer each), and the layer kind's
 * say. The results are the same bits either way (the same operations on the same
 * values); what is saved is the activation's read and write of the whole batch,
 * forward and backward. */
static int fuses_act(const ln_net *net, int i, const ln_ctx *ctx)
{
    if (ctx->reference || i + 1 >= net->count) return 0;
    const ln_layer_kind act = net->layers[i + 1].spec.kind;
    if (act != LN_RELU && act != LN_TANH && act != LN_SIGMOID) return 0;
    const ln_layer_ops *k = ln_layer_ops_of(net->layers[i].spec.kind);
    return k->absorbs_act && k->absorbs_act(&net->layers[i], act);
}

/* Whether layer i also takes in the pooling at index p that follows it (after its
 * fused activation, if any): the fast kernels only, and the layer kind's say. The same
 * bits either way; what is saved is the pooling's pass over the layer's whole output,
 * forward, and writing and reading back the spread gradient, backward. */
static int fuses_pool(const ln_net *net, int i, int p, const ln_ctx *ctx)
{
    if (ctx->reference || p >= net->count) return 0;
    const ln_layer_ops *k = ln_layer_ops_of(net->layers[i].spec.kind);
    return k->absorbs_pool && k->absorbs_pool(&net->layers[i], &net->layers[p]);
}

/* Whether layer i, which takes in the pooling at index p, also takes in a ReLU right
 * after it (ln_layer.pool_relu): the pooling kind's fusion of it and the layer kind's
 * say. */
static int fuses_pool_act(const ln_net *net, int i, int p, const ln_ctx *ctx)
{
    if (ctx->reference || p + 1 >= net->count) return 0;
    const ln_layer_kind act = net->layers[p + 1].spec.kind;
    const ln_layer_ops *pk = ln_layer_ops_of(net->layers[p].spec.kind);
    const ln_layer_ops *k = ln_layer_ops_of(net->layers[i].spec.kind);
    return act == LN_RELU && pk->absorbs_act && pk->absorbs_act(&net->layers[p], act) && k->absorbs_pool_act &&
           k->absorbs_pool_act(&net->layers[i], &net->layers[p], act);
}

/* Whether layer i takes in the dropout at index d and the pooling right after it
 * (ln_layer.pool_drop): the layer kind's say on both. */
static int fuses_pool_drop(const ln_net *net, int i, int d, const ln_ctx *ctx)
{
    if (ctx->reference || d + 1 >= net->count) return 0;
    const ln_layer_ops *k = ln_layer_ops_of(net->layers[i].spec.kind);
    return k->absorbs_pool_drop && k->absorbs_pool_drop(&net->layers[i], &net->layers[d]) &&
           fuses_pool(net, i, d + 1, ctx);
}

/* Whether layer p is a max pooling whose input gradient is +-0 at three places in four or
 * more (one place a window, at most a quarter as many windows as places: 3x3 windows of
 * stride 2, not 2x2 of stride 1), so that the layer before it takes it as lists
 * (ln_layer.dy_sparse). */
static int sparse_grad_pool(const ln_net *net, int p)
{
    if (p >= net->count || net->layers[p].spec.kind != LN_MAXPOOL2D) return 0;
    const ln_layer *l = &net->layers[p];
    return 4 * l->out_n <= l->in_n;
}

/* Whether layer i (i >= 1, not absorbed) hands work to the layer before it
 * (ln_layer.defer_dx, grad_bn): both kinds' say. The same bits either way (the same
 * kernel on the same values); what is saved is writing layer i's input gradient out
 * whole and reading it back. */
static int hands_off(const ln_net *net, int i, const ln_ctx *ctx)
{
    if (ctx->reference) return 0;
    const ln_layer *l = &net->layers[i], *before = &net->layers[i - 1];
    const ln_layer_ops *k = ln_layer_ops_of(l->spec.kind), *kb = ln_layer_ops_of(before->spec.kind);
    return !before->absorbed && k->hands_off && k->hands_off(l, ctx) && kb->takes_over && kb->takes_over(before, l);
}

/* The first layer that draws random numbers in training, or -1. */
static int first_drawing(const ln_net *net)
{
    for (int i = 0; i < net->count; i++) {
        const ln_layer_ops *k = ln_layer_ops_of(net->layers[i].spec.kind);
        if (k->draws && k->draws(&net->layers[i])) return i;
    }
    return -1;
}

ln_status ln_net_forward(ln_net *net, const float *x, int batch, int training, ln_rng *rng,
                         const float **out, ln_error *err)
{
    if (out) *out = NULL;
    if (!x) return ln_fail(err, LN_EINVAL, "forward: input is NULL");
    if (batch < 1) return ln_fail(err, LN_EINVAL, "forward: batch must be >= 1 (got %d)", batch);
    if (batch > net->reserved) {
        ln_status st = ln_net_reserve(net, batch, err);
        if (st) return st;
    }
    const int drawing = training && !rng ? first_drawing(net) : -1;
    if (drawing >= 0)
        return ln_fail(err, LN_EINVAL, "forward: training with layer %d (%s) needs a random state",
                       drawing + 1, ln_layer_kind_name(net->layers[drawing].spec.kind));
    for (int i = 0; training && i < net->count; i++)
        if (batch < ln_layer_ops_of(net->layers[i].spec.kind)->min_training_batch)
            return ln_fail(err, LN_EINVAL,
                           "layer %d (%s): training needs at least %d samples per batch (as "
                           "PyTorch)",
                           i + 1, ln_layer_kind_name(net->layers[i].spec.kind),
                           ln_layer_ops_of(net->layers[i].spec.kind)->min_training_batch);
    ln_ctx ctx = {batch, training ? 1 : 0, net->reference, rng, net->workspace, NULL};
    if (x != net->act[0]) /* the caller may have gathered the batch in place */
        memcpy(net->act[0], x, sizeof(float) * (size_t)(batch * ln_shape_numel(net->input)));
    for (int i = 0; i < net->count; i++) {
        ln_layer *l = &net->layers[i];
        l->absorbed = 0;
        l->act_y = fuses_act(net, i, &ctx) ? net->act[i + 2] : NULL;
        l->act_kind = l->act_y ? net->layers[i + 1].spec.kind : LN_RELU;
        /* the layer's own output: the activation's when it is fused (then act[i + 1] is
         * not written), then a fused pooling's after it */
        const int out = l->act_y ? i + 1 : i;
        /* a dropout2d between the layer and a pooling it takes in, taken in too */
        const int drop = !l->act_y && fuses_pool_drop(net, i, out + 1, &ctx) ? out + 1 : -1;
        l->pool_drop = drop >= 0 ? &net->layers[drop] : NULL;
        const int pool = drop >= 0 ? drop + 1 : fuses_pool(net, i, out + 1, &ctx) ? out + 1 : -1;
        l->pool_relu = pool >= 0 && fuses_pool_act(net, i, pool, &ctx);
        /* the last layer taken in, whose output the fused pass writes */
        const int last = pool < 0 ? out : l->pool_relu ? pool + 1 : pool;
        l->pool_y = pool >= 0 ? net->act[last + 1] : NULL;
        l->pool_argmax = pool >= 0 ? net->layers[pool].argmax : NULL;
        l->dy_sparse = pool < 0 && sparse_grad_pool(net, out + 1);
        if (l->spec.kind == LN_FLATTEN) continue; /* its output is its input (see reserve) */
        layer_pass(net, l, net->act[i], net->act[out + 1], NULL, NULL, &ctx, 0);
        while (i < last) {
            ln_layer *a = &net->layers[++i];
            a->absorbed = 1;
            a->act_y = NULL;
            a->pool_y = NULL;
            a->pool_argmax = NULL;
            a->dy_sparse = 0;
            a->pool_relu = 0;
            a->pool_drop = NULL;
        }
    }
    net->last_batch = batch;
    net->last_training = ctx.training;
    net->last_reference = ctx.reference;
    if (out) *out = net->act[net->count];
    return LN_OK;
}

/* Samples an eval pass forwards at a time. A net's activation memory is sized for the
 * largest batch it has run (about 100 KB a sample for the study's net) and zeroed when it
 * is taken: forwarding net:evaluate's default batch of 1000 whole took 100 MB and, on
 * first use, a third of a second of page faults for 0.08 s of work; net:predict of 10000
 * images 1 GB and 3.2 s for 0.09 s. A sample's eval output does not depend on the samples
 * forwarded beside it (test_fast_kernels checks it on every layer kind, ISA and thread
 * count), so chunks give the whole batch's bits. */
#define EVAL_CHUNK 64

int ln_net_eval_chunk(const ln_net *net, int batch)
{
    if (batch <= EVAL_CHUNK) return batch < 1 ? 1 : batch;
    if (net->reserved > EVAL_CHUNK) return net->reserved < batch ? net->reserved : batch;
    return EVAL_CHUNK;
}

ln_status ln_net_predict(ln_net *net, const float *x, int batch, float *out, ln_error *err)
{
    if (!x || !out) return ln_fail(err, LN_EINVAL, "predict: %s is NULL", x ? "output" : "input");
    if (batch < 1) return ln_fail(err, LN_EINVAL, "predict: batch must be >= 1 (got %d)", batch);
    const int chunk = ln_net_eval_chunk(net, batch);
    const int64_t per_in = ln_shape_numel(net->input), per_out = ln_shape_numel(ln_net_output_shape(net));
    ln_status st = LN_OK;
    for (int done = 0; !st && done < batch; done += chunk) {
        const int m = batch - done < chunk ? batch - done : chunk;
        const float *y;
        st = ln_net_forward(net, x + (int64_t)done * per_in, m, 0, NULL, &y, err);
        if (!st) memcpy(out + (int64_t)done * per_out, y, sizeof(float) * (size_t)(m * per_out));
    }
    ln_net_forget_forward(net); /* its activations hold the last chunk, not the batch */
    return st;
}

float *ln_net_input(ln_net *net) { return net->act[0]; }

/* Gathers of fewer floats than this stay on one thread (as SPLIT_MIN_FLOATS in
 * layer_split.c: waking the others would cost more). */
#define GATHER_SPLIT_MIN 16384

typedef struct {
    const ln_dataset *data;
    const int64_t *indices;
    int64_t n, per;
    float *x;
    int32_t *labels;
} gather_job;

static void gather_region(void *arg, int t, int T)
{
    const gather_job *j = arg;
    int64_t b, e;
    ln_split(j->n, t, T, &b, &e);
    if (b < e) ln_dataset_gather(j->data, j->indices + b, e - b, j->x + b * j->per, j->labels ? j->labels + b : NULL);
}

float *ln_net_gather_input(ln_net *net, const ln_dataset *data, const int64_t *indices, int n,
                           int32_t *labels)
{
    gather_job j = {data, indices, n, ln_shape_numel(net->input), net->act[0], labels};
    if (net->workers && j.n * j.per >= GATHER_SPLIT_MIN)
        ln_workers_run(net->workers, gather_region, &j);
    else
        ln_dataset_gather(data, indices, n, j.x, labels);
    return j.x;
}

int ln_net_forward_batch(const ln_net *net) { return net->last_batch; }

void ln_net_forget_forward(ln_net *net) { net->last_batch = 0; }

ln_status ln_net_backward(ln_net *net, const float *dout, float *dx, ln_error *err)
{
    if (!net->last_batch) return ln_fail(err, LN_EINVAL, "backward: no forward pass to go back through");
    if (!dout) return ln_fail(err, LN_EINVAL, "backward: output gradient is NULL");
    /* the forward's kernels, even if use_reference_kernels switched since: the fast
     * forward leaves some outputs unwritten (an activation fused into the layer before,
     * an activation that took in the pooling after it) */
    ln_ctx ctx = {net->last_batch, net->last_training, net->last_reference, NULL, net->workspace, NULL};
    zero_grads(net);
    /* Without a request for dx, nothing before the first parametric layer needs a gradient. */
    const int stop = dx ? 0 : first_param_layer(net);
    for (int i = 0; i < net->count; i++) {
        net->layers[i].defer_dx = 0;
        net->layers[i].grad_bn = NULL;
    }
    const float *dy = dout;
    for (int i = net->count - 1; i >= 0 && i >= stop; i--) {
        /* an activation or pooling fused into a layer before it by the forward pass
         * (only ever with the fast kernels, which ctx has from that forward): that
         * layer applies its backward to dy */
        if (net->layers[i].absorbed) continue;
        /* a flatten's gradient is its output's, the same floats; only the net's input
         * gradient (dx) needs a copy */
        if (net->layers[i].spec.kind == LN_FLATTEN && i > stop) continue;
        float *target = NULL;
        if (i > stop)
            target = (dy == net->grad_a) ? net->grad_b : net->grad_a;
        else if (dx)
            target = dx;
        ln_layer *l = &net->layers[i];
        /* y: a fused activation's output when there is one (act[i + 1] was not written) */
        /* the layer before may make this one's dx from its dy, which must then outlive
         * that layer's backward: dy stays where it is, and the layer before writes its
         * own dx to the other buffer */
        const int deferred = i - 1 >= stop && hands_off(net, i, &ctx);
        if (deferred) {
            l->defer_dx = 1;
            l->defer_x = net->act[i];
            l->defer_dy = dy;
            net->layers[i - 1].grad_bn = l;
        }
        layer_pass(net, l, net->act[i], net->act[l->act_y ? i + 2 : i + 1], dy, target, &ctx, 1);
        if (!deferred) dy = target;
    }
    return LN_OK;
}
