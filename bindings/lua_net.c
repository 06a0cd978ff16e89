/* lua_net.c - class Net (lunet.Net): core.net, core.load, the passes, net:train and
 * net:evaluate. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "lua_dataset.h"
#include "lua_net.h"
#include "lua_tensor.h"
#include "lua_train.h"

const obj_class NET_CLASS = {NET_MT, "net"};

static net_ud *new_net_ud(lua_State *L)
{
    net_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
    memset(u, 0, sizeof *u); /* the training state too: nothing to continue */
    luaL_setmetatable(L, NET_MT);
    return u;
}

static ln_net *check_net(lua_State *L, int arg)
{
    return ((net_ud *)check_obj(L, arg, &NET_CLASS))->net;
}

/* For the methods that change the net (parameters, activations, kernels). */
static net_ud *check_net_mutable(lua_State *L, int arg)
{
    return check_mutable(L, arg, &NET_CLASS);
}

static int net_free(lua_State *L)
{
    net_ud *u = begin_release(L, &NET_CLASS);
    if (u) {
        ln_net_free(u->net);
        u->net = NULL;
        ln_train_state_release(&u->train);
    }
    return 0;
}

/* A layer spec from a Lua table {kind = "conv2d", in_channels = 1, ...}: the fields
 * are the kind's constructor parameters as core describes them (ln_layer_kind_info_of),
 * the absent ones at their defaults. The Lua side has already checked the keys; this
 * checks the types and the integer ranges, the shape rule in core the rest. */
static ln_layer_spec read_layer_spec(lua_State *L, int t, int index)
{
    lua_getfield(L, t, "kind");
    const int kind = lua_type(L, -1) == LUA_TSTRING ? ln_layer_kind_from_name(lua_tostring(L, -1)) : -1;
    if (kind < 0) luaL_error(L, "layer %d: unknown kind '%s'", index, luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    const ln_layer_kind_info *info = ln_layer_kind_info_of((ln_layer_kind)kind);
    ln_layer_spec s = ln_layer_spec_defaults((ln_layer_kind)kind);
    for (int i = 0; i < info->param_count; i++) {
        const ln_layer_param *p = &info->params[i];
        double v;
        if (p->type == LN_PARAM_FLOAT)
            v = field_num(L, t, p->name, p->fallback);
        else if (p->type == LN_PARAM_BOOL)
            v = field_bool(L, t, p->name, p->fallback != 0.0);
        else
            v = (double)field_int(L, t, p->name, (lua_Integer)p->fallback, (lua_Integer)p->min,
                                  (lua_Integer)p->max);
        ln_layer_param_set(&s, p, v);
    }
    return s;
}

/* A value of layer parameter p (its field's, or its default) as its Lua type. */
static void push_param(lua_State *L, const ln_layer_param *p, double value)
{
    if (p->type == LN_PARAM_BOOL)
        lua_pushboolean(L, value != 0.0);
    else if (p->type == LN_PARAM_INT)
        lua_pushinteger(L, (lua_Integer)value);
    else
        lua_pushnumber(L, value);
}

/* core.net(layers, input_shape, seed) -> net; shape errors raise with the layer named */
static int l_net(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    ln_shape input = check_shape(L, 2, "input");
    lua_Integer seed = luaL_optinteger(L, 3, 0);
    lua_Integer count = luaL_len(L, 1);
    if (count < 1 || count > 10000) return luaL_argerror(L, 1, "needs 1 to 10000 layers");
    ln_layer_spec *specs = lua_newuserdatauv(L, sizeof *specs * (size_t)count, 0);
    for (lua_Integer i = 0; i < count; i++) {
        lua_geti(L, 1, i + 1);
        if (!lua_istable(L, -1)) return luaL_error(L, "layer %d is not a layer (table expected)", (int)i + 1);
        specs[i] = read_layer_spec(L, lua_gettop(L), (int)i + 1);
        lua_pop(L, 1);
    }
    net_ud *u = new_net_ud(L);
    ln_rng rng;
    ln_rng_seed(&rng, (uint64_t)seed, LN_STREAM_INIT);
    ln_error err;
    if (ln_net_create(&u->net, specs, (int)count, input, &rng, &err))
        return luaL_error(L, "%s", err.msg);
    u->h.live = 1;
    return 1;
}

static int net_layer_count(lua_State *L)
{
    lua_pushinteger(L, ln_net_layer_count(check_net(L, 1)));
    return 1;
}

/* net:layer(i) -> {kind, output = shape, params, flops, and the spec's fields} */
static int net_layer(lua_State *L)
{
    ln_net *net = check_net(L, 1);
    int i = (int)check_range(L, 2, "layer", 1, ln_net_layer_count(net)) - 1;
    /* everything copied out before the first allocation (which may run a finalizer) */
    const ln_layer_spec spec = *ln_net_layer_spec(net, i), *s = &spec;
    const ln_shape out = ln_net_layer_output_shape(net, i);
    const ln_shape in = i ? ln_net_layer_output_shape(net, i - 1) : ln_net_input_shape(net);
    const int64_t params = ln_net_layer_param_count(net, i);
    const double flops = ln_net_layer_flops(net, i);
    lua_newtable(L);
    lua_pushstring(L, ln_layer_kind_name(s->kind));
    lua_setfield(L, -2, "kind");
    push_shape(L, out);
    lua_setfield(L, -2, "output");
    push_shape(L, in);
    lua_setfield(L, -2, "input");
    lua_pushinteger(L, params);
    lua_setfield(L, -2, "params");
    lua_pushnumber(L, flops);
    lua_setfield(L, -2, "flops");
    /* the kind's constructor parameters, as read by read_layer_spec */
    const ln_layer_kind_info *info = ln_layer_kind_info_of(s->kind);
    for (int k = 0; info && k < info->param_count; k++) {
        push_param(L, &info->params[k], ln_layer_param_get(s, &info->params[k]));
        lua_setfield(L, -2, info->params[k].name);
    }
    return 1;
}

static int net_input_shape(lua_State *L)
{
    push_shape(L, ln_net_input_shape(check_net(L, 1)));
    return 1;
}

static int net_output_shape(lua_State *L)
{
    push_shape(L, ln_net_output_shape(check_net(L, 1)));
    return 1;
}

static int net_param_count(lua_State *L)
{
    lua_pushinteger(L, ln_net_param_count(check_net(L, 1)));
    return 1;
}

/* net:flops() -> forward, backward FLOPs per sample */
static int net_flops(lua_State *L)
{
    ln_net *net = check_net(L, 1);
    lua_pushnumber(L, ln_net_forward_flops(net));
    lua_pushnumber(L, ln_net_backward_flops(net));
    return 2;
}

/* The view of tensor `name` (argument 3) of layer i (argument 2) of the net (argument
 * 1): the arguments are read first (a number name becomes a string, which may run a
 * finalizer), the net is checked last. */
static ln_tensor layer_view(lua_State *L, int mutates)
{
    int i = (int)check_range(L, 2, "layer", 1, ln_net_layer_count(check_net(L, 1))) - 1;
    const char *name = luaL_checkstring(L, 3);
    ln_net *net = mutates ? check_net_mutable(L, 1)->net : check_net(L, 1);
    ln_tensor view;
    ln_error err;
    if (ln_net_layer_tensor(net, i, name, &view, &err)) luaL_argerror(L, 3, err.msg);
    return view;
}

/* net:get(layer, name) -> a copy of the layer's "weight", "bias", "running_mean",
 * "running_var", "weight_grad" or "bias_grad" */
static int net_get(lua_State *L)
{
    lua_settop(L, 3);
    tensor_ud *u = new_tensor_ud(L); /* first: the view must not meet an allocation */
    ln_tensor view = layer_view(L, 0);
    memcpy(alloc_tensor(L, u, view.shape)->data, view.data, sizeof(float) * (size_t)ln_shape_numel(view.shape));
    return 1;
}

/* net:set(layer, name, tensor | flat list) */
static int net_set(lua_State *L)
{
    lua_settop(L, 4);
    ln_tensor view = layer_view(L, 1);
    int64_t n = ln_shape_numel(view.shape);
    if (lua_istable(L, 4)) {
        if (luaL_len(L, 4) != n)
            return luaL_argerror(L, 4, lua_pushfstring(L, "needs %I numbers, got %I", (lua_Integer)n,
                                                       luaL_len(L, 4)));
        /* read into Lua-owned scratch first: the list's metamethods may run any code */
        float *values = lua_newuserdatauv(L, sizeof(float) * (size_t)n, 0);
        for (int64_t k = 0; k < n; k++) {
            lua_geti(L, 4, k + 1);
            int ok;
            lua_Number v = lua_tonumberx(L, -1, &ok);
            if (!ok) return luaL_argerror(L, 4, lua_pushfstring(L, "[%I] is not a number", (lua_Integer)k + 1));
            values[k] = (float)v;
            lua_pop(L, 1);
        }
        view = layer_view(L, 1); /* the net again, after them */
        memcpy(view.data, values, sizeof(float) * (size_t)n);
        return 0;
    }
    ln_tensor *t = check_tensor(L, 4);
    if (ln_shape_numel(t->shape) != n) {
        char want[64], got[64];
        ln_shape_format(view.shape, want, sizeof want);
        ln_shape_format(t->shape, got, sizeof got);
        return luaL_argerror(L, 4, lua_pushfstring(L, "shape %s expected, got %s", want, got));
    }
    memcpy(view.data, t->data, sizeof(float) * (size_t)n);
    return 0;
}

/* net:_params() -> flat tensor copy of all parameters; net:_set_params(tensor) */
/* A flat tensor copy of a parameter-sized block (parameters or gradients). */
static int push_param_block(lua_State *L, int grads)
{
    check_net(L, 1);
    tensor_ud *u = new_tensor_ud(L);
    ln_net *net = check_net(L, 1); /* after the allocation */
    int64_t n = ln_net_param_count(net);
    ln_tensor *t = alloc_tensor(L, u, ln_shape_make(1, (int64_t[]){n > 0 ? n : 1}));
    memcpy(t->data, grads ? ln_net_grads(net) : ln_net_params(net), sizeof(float) * (size_t)n);
    return 1;
}

static int net_params(lua_State *L) { return push_param_block(L, 0); }

static int net_grads(lua_State *L) { return push_param_block(L, 1); }

static int net_set_params(lua_State *L)
{
    ln_net *net = check_net_mutable(L, 1)->net;
    ln_tensor *t = check_tensor(L, 2);
    int64_t n = ln_net_param_count(net);
    if (ln_shape_numel(t->shape) != n)
        return luaL_argerror(L, 2, lua_pushfstring(L, "needs %I parameters", (lua_Integer)n));
    memcpy(ln_net_params(net), t->data, sizeof(float) * (size_t)n);
    return 0;
}

/* Checks that x is batch x input (or a single input) and returns the batch. */
static int input_batch(lua_State *L, ln_net *net, ln_tensor *x, int arg)
{
    int64_t per = ln_shape_numel(ln_net_input_shape(net));
    int64_t n = ln_shape_numel(x->shape);
    if (n % per != 0 || n == 0) {
        char want[64], got[64];
        ln_shape_format(ln_net_input_shape(net), want, sizeof want);
        ln_shape_format(x->shape, got, sizeof got);
        luaL_argerror(L, arg, lua_pushfstring(L, "input must be N x %s, got %s", want, got));
    }
    if (n / per > (1 << 20)) luaL_argerror(L, arg, "input batch is too large (max 2^20)");
    return (int)(n / per);
}

/* batch x the net's output shape (as many dimensions as a tensor holds) */
static ln_shape batch_output_shape(const ln_net *net, int batch)
{
    const ln_shape os = ln_net_output_shape(net);
    int64_t dims[LN_MAX_DIMS] = {batch};
    for (int i = 0; i < os.ndim && i + 1 < LN_MAX_DIMS; i++) dims[i + 1] = os.dim[i];
    return ln_shape_make(os.ndim + 1 > LN_MAX_DIMS ? LN_MAX_DIMS : os.ndim + 1, dims);
}

/* net:forward(x [, training [, seed]]) -> output tensor (batch x output shape) */
static int net_forward(lua_State *L)
{
    lua_settop(L, 4);
    ln_net *net = check_net_mutable(L, 1)->net;
    int batch = input_batch(L, net, check_tensor(L, 2), 2);
    int training = lua_toboolean(L, 3);
    lua_Integer seed = luaL_optinteger(L, 4, 0);
    ln_rng rng;
    ln_rng_seed(&rng, (uint64_t)seed, LN_STREAM_DROPOUT);
    const ln_shape ys = batch_output_shape(net, batch);
    tensor_ud *y = new_tensor_ud(L);
    net = check_net_mutable(L, 1)->net; /* the pointers after the allocation */
    ln_tensor *x = check_tensor(L, 2);
    const float *out;
    ln_error err;
    if (ln_net_forward(net, x->data, batch, training, &rng, &out, &err))
        return luaL_error(L, "forward: %s", err.msg);
    memcpy(alloc_tensor(L, y, ys)->data, out, sizeof(float) * (size_t)ln_shape_numel(ys));
    return 1;
}

/* net:_predict(x) -> output tensor (batch x output shape): net:forward's eval-mode
 * output, forwarded a chunk at a time (ln_net_predict), so that a large batch does not
 * size the net's activation memory; no net:backward after it. */
static int net_predict(lua_State *L)
{
    lua_settop(L, 2);
    ln_net *net = check_net_mutable(L, 1)->net;
    int batch = input_batch(L, net, check_tensor(L, 2), 2);
    tensor_ud *y = new_tensor_ud(L);
    ln_tensor *out = alloc_tensor(L, y, batch_output_shape(net, batch));
    net = check_net_mutable(L, 1)->net; /* the pointers after the allocations */
    ln_tensor *x = check_tensor(L, 2);
    if (ln_shape_numel(x->shape) != (int64_t)batch * ln_shape_numel(ln_net_input_shape(net)))
        return luaL_argerror(L, 2, "input changed while the output was allocated");
    ln_error err;
    if (ln_net_predict(net, x->data, batch, out->data, &err)) return luaL_error(L, "predict: %s", err.msg);
    return 1;
}

/* net:backward(dout) -> dx (same shape as the forward's input batch); the parameter
 * gradients can then be read with net:get(i, "weight_grad") */
static int net_backward(lua_State *L)
{
    lua_settop(L, 2);
    ln_net *net = check_net_mutable(L, 1)->net;
    ln_tensor *dout = check_tensor(L, 2);
    ln_shape in = ln_net_input_shape(net);
    int64_t per_out = ln_shape_numel(ln_net_output_shape(net));
    int64_t n = ln_shape_numel(dout->shape);
    if (n % per_out != 0) return luaL_argerror(L, 2, "output gradient does not fit the output shape");
    int batch = (int)(n / per_out);
    int64_t dims[LN_MAX_DIMS] = {batch};
    for (int i = 0; i < in.ndim && i + 1 < LN_MAX_DIMS; i++) dims[i + 1] = in.dim[i];
    tensor_ud *dxu = new_tensor_ud(L);
    net = check_net_mutable(L, 1)->net; /* the pointers after the allocation */
    dout = check_tensor(L, 2);
    /* The engine goes back through the activations of the last forward pass, so dout
     * must hold exactly that many samples (more would be ignored, fewer read past it);
     * read after the allocation, whose finalizers may have run net:forward. */
    const int forward_batch = ln_net_forward_batch(net);
    if (forward_batch == 0) return luaL_error(L, "backward: call net:forward first");
    if (batch != forward_batch)
        return luaL_argerror(L, 2, lua_pushfstring(L, "output gradient holds %d samples, the last "
                                                      "forward pass had %d", batch, forward_batch));
    ln_tensor *dx = alloc_tensor(L, dxu, ln_shape_make(in.ndim + 1 > LN_MAX_DIMS ? LN_MAX_DIMS : in.ndim + 1, dims));
    ln_error err;
    if (ln_net_backward(net, dout->data, dx->data, &err)) return luaL_error(L, "backward: %s", err.msg);
    return 1;
}
static int train_progress(void *user, const ln_progress *p)
{
    lua_progress *lp = user;
    static const char *const keys[] = {"iteration", "iterations", "step", "samples", "loss", "seconds"};
    double vals[] = {(double)p->iteration, (double)p->iterations, (double)p->step,
                     (double)p->samples, p->loss, p->seconds};
    return call_progress(lp, 6, keys, vals);
}

/* net:_train(data, config [, progress_fn]) -> history table */
static int net_train(lua_State *L)
{
    int guard = pin_open(L, 4);
    /* its progress function may use the net, but not replace the training state (the
     * epoch's order, the optimizer) under this call: PIN_TRAINING */
    net_ud *u = pin(L, guard, 1, &NET_CLASS, "net:train", &PIN_TRAINING);
    dataset_ud *d = pin(L, guard, 2, &DATASET_CLASS, "net:train", &PIN_READ);
    luaL_checktype(L, 3, LUA_TTABLE);
    ln_train_config cfg;
    read_train_config(L, 3, &cfg);
    /* the validation set is pinned like the data; the checkpoint path stays on the stack,
     * so that a progress callback that changes the options cannot take either away */
    lua_getfield(L, 3, "validate");
    int has_validate = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (has_validate)
        cfg.validate = ((dataset_ud *)pin_field(L, guard, 3, "validate", &DATASET_CLASS, "net:train", &PIN_READ))->ds;
    if (cfg.checkpoint) {
        lua_getfield(L, 3, "checkpoint");
        lua_getfield(L, -1, "path");
        cfg.checkpoint = lua_tostring(L, -1);
        if (!cfg.checkpoint) return luaL_error(L, "option 'checkpoint': path is required");
    }
    /* fresh = true: forget the optimizer state, streams and counters of earlier calls */
    const int fresh = field_bool(L, 3, "fresh", 0);
    const char *resume = field_str(L, 3, "resume", NULL);
    if (resume) {
        lua_getfield(L, 3, "resume"); /* kept on the stack while it is used */
        resume = lua_tostring(L, -1);
    }
    lua_pushnil(L); /* the callback's error, if any */
    lua_progress lp = {L, 4, lua_gettop(L), 0, "net:train"};
    if (lua_isfunction(L, 4)) {
        cfg.on_iteration = train_progress;
        cfg.user = &lp;
    }
    cfg.stop = &interrupt_flag;
    if (fresh) ln_train_state_release(&u->train);
    cfg.state = &u->train;
    ln_history h;
    ln_error err;
    /* resume = path: the net's parameters and training state from a checkpoint. If the
     * checkpoint does not fit this call (ln_train refuses it before any step), the net
     * gets its own parameters and state back. */
    ln_net *before = NULL;
    ln_train_state kept;
    memset(&kept, 0, sizeof kept);
    if (resume) {
        if (ln_net_clone(u->net, &before, &err)) return luaL_error(L, "train: %s", err.msg);
        ln_train_state loaded;
        memset(&loaded, 0, sizeof loaded);
        if (ln_checkpoint_load(resume, u->net, &loaded, &err)) {
            ln_net_free(before);
            return push_fail(L, &err);
        }
        kept = u->train;
        u->train = loaded;
        cfg.resume = 1;
    }
    sigint_guard g;
    sigint_catch(&g);
    ln_status st = ln_train(u->net, d->ds, &cfg, &h, &err);
    sigint_restore(&g);
    if (resume) {
        if (st) {
            memcpy(ln_net_params(u->net), ln_net_params(before),
                   sizeof(float) * (size_t)ln_net_param_count(u->net));
            memcpy(ln_net_buffers(u->net), ln_net_buffers(before),
                   sizeof(float) * (size_t)ln_net_buffer_count(u->net));
            ln_train_state_release(&u->train);
            u->train = kept;
        } else {
            ln_train_state_release(&kept);
        }
        ln_net_free(before);
    }
    if (lp.failed) {
        if (!st) ln_history_release(&h);
        return raise_progress_error(L, &lp);
    }
    if (st) return luaL_error(L, "train: %s", err.msg);
    push_history(L, &h, 1);
    ln_history_release(&h);
    return 1;
}

/* net:_evaluate(data, loss, batch) -> loss, accuracy, confusion rows (true class) */
static int net_evaluate(lua_State *L)
{
    lua_settop(L, 4);
    check_net_mutable(L, 1);
    check_dataset(L, 2);
    int loss = check_loss(L, 3, "nll");
    int batch = lua_isnoneornil(L, 4) ? LN_DEFAULT_EVAL_BATCH : (int)check_range(L, 4, "batch", 1, 1 << 20);
    /* the pointers last: converting argument 3 to a string may run a finalizer */
    net_ud *u = check_net_mutable(L, 1);
    ln_net *net = u->net;
    ln_dataset *data = check_dataset(L, 2);
    double l, acc;
    ln_error err;
    const int classes = (int)ln_net_output_shape(net).dim[0];
    int64_t *confusion = NULL;
    if (classes > 0 && classes <= 100000) /* freed by the GC */
        confusion = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)classes * (size_t)classes, 0);
    /* the allocation may run a finalizer: the pointers again */
    u = check_net_mutable(L, 1);
    net = u->net;
    data = check_dataset(L, 2);
    if (ln_evaluate_confusion(net, data, (ln_loss_kind)loss, batch, &l, &acc, confusion, &err))
        return luaL_error(L, "evaluate: %s", err.msg);
    lua_pushnumber(L, l);
    lua_pushnumber(L, acc);
    if (!confusion) return 2;
    lua_createtable(L, classes, 0); /* rows = true class */
    for (int i = 0; i < classes; i++) {
        lua_createtable(L, classes, 0);
        for (int j = 0; j < classes; j++) {
            lua_pushinteger(L, confusion[(int64_t)i * classes + j]);
            lua_rawseti(L, -2, j + 1);
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 3;
}

static int net_clone(lua_State *L)
{
    check_net(L, 1);
    net_ud *u = new_net_ud(L);
    ln_net *net = check_net(L, 1); /* after the allocation, which may run a finalizer */
    ln_error err;
    if (ln_net_clone(net, &u->net, &err)) return luaL_error(L, "clone: %s", err.msg);
    u->h.live = 1;
    return 1;
}

/* net:init(seed): re-draw all parameters as PyTorch's defaults from the seed */
static int net_init(lua_State *L)
{
    lua_Integer seed = luaL_checkinteger(L, 2);
    net_ud *u = check_use(L, 1, &NET_CLASS, USES(USE_TRAIN) | USES(USE_CHANGE), "net:init");
    ln_net *net = u->net;
    ln_rng rng;
    ln_rng_seed(&rng, (uint64_t)seed, LN_STREAM_INIT);
    ln_net_init_params(net, &rng);
    /* new parameters: the next net:train starts over */
    ln_train_state_release(&u->train);
    return 0;
}

/* net:_threads([n]) -> threads: sets the threads every pass of the net uses (results do
 * not depend on them), returns the count now in force */
static int net_threads(lua_State *L)
{
    lua_settop(L, 2);
    check_net(L, 1);
    if (!lua_isnil(L, 2)) {
        const int threads = (int)check_range(L, 2, "threads", 1, LN_MAX_THREADS);
        /* the pool and the scratch change: not while a call uses the net */
        ln_net *net = check_net_mutable(L, 1)->net;
        ln_error err;
        if (ln_net_set_threads(net, threads, &err)) return luaL_error(L, "threads: %s", err.msg);
    }
    lua_pushinteger(L, ln_net_threads(check_net(L, 1)));
    return 1;
}

static int net_use_reference(lua_State *L)
{
    ln_net_use_reference_kernels(check_net_mutable(L, 1)->net, lua_toboolean(L, 2));
    return 0;
}

/* net:save(path) -> true | nil, msg */
static int net_save(lua_State *L)
{
    check_net(L, 1);
    const char *path = check_path(L, 2);
    ln_net *net = check_net(L, 1); /* after the path, whose conversion may run a finalizer */
    ln_error err;
    if (ln_net_save(net, path, &err)) return push_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.load(path) -> net | nil, msg */
static int l_load(lua_State *L)
{
    const char *path = check_path(L, 1);
    net_ud *u = new_net_ud(L);
    ln_error err;
    if (ln_net_load(path, &u->net, &err)) return push_fail(L, &err);
    u->h.live = 1;
    return 1;
}

static const luaL_Reg net_methods[] = {
    {"layer_count", net_layer_count},   {"layer", net_layer},
    {"input_shape", net_input_shape},   {"output_shape", net_output_shape},
    {"param_count", net_param_count},   {"flops", net_flops},
    {"get", net_get},                   {"set", net_set},
    {"_params", net_params},            {"_set_params", net_set_params},
    {"_grads", net_grads},
    {"forward", net_forward},           {"backward", net_backward},
    {"_predict", net_predict},
    {"_train", net_train},              {"_evaluate", net_evaluate},
    {"clone", net_clone},               {"init", net_init},
    {"use_reference_kernels", net_use_reference}, {"_threads", net_threads},
    {"save", net_save},
    {"free", net_free},                 {NULL, NULL},
};

const lunet_class lunet_net_class = {
    .name = NET_MT, .field = "Net", .methods = net_methods, .gc = net_free, .info = 1,
    .functions = (const luaL_Reg[]){{"net", l_net}, {"load", l_load}, {NULL, NULL}},
};

/* core.layer_kinds: {name = {file_tag =, params = {{name =, type = "int"|"float"|"bool",
 * required =, default =}, ...}}, ...}, built once from core's descriptors. */
static void push_layer_kinds(lua_State *L)
{
    static const char *const type_names[] = {"int", "float", "bool"};
    lua_createtable(L, 0, ln_layer_kind_count());
    for (int k = 0; k < ln_layer_kind_count(); k++) {
        const ln_layer_kind_info *info = ln_layer_kind_info_of((ln_layer_kind)k);
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, info->file_tag);
        lua_setfield(L, -2, "file_tag");
        lua_createtable(L, info->param_count, 0);
        for (int i = 0; i < info->param_count; i++) {
            const ln_layer_param *p = &info->params[i];
            lua_createtable(L, 0, 4);
            lua_pushstring(L, p->name);
            lua_setfield(L, -2, "name");
            lua_pushstring(L, type_names[p->type]);
            lua_setfield(L, -2, "type");
            lua_pushboolean(L, p->required);
            lua_setfield(L, -2, "required");
            if (!p->required) {
                push_param(L, p, p->fallback);
                lua_setfield(L, -2, "default");
            }
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "params");
        lua_setfield(L, -2, info->name);
    }
}

void lunet_open_layer_kinds(lua_State *L)
{
    push_layer_kinds(L);
    lua_setfield(L, -2, "layer_kinds");
}
