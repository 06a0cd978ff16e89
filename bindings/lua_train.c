/* lua_train.c - what net:train and core.runs share: the training options (loss,
 * optimizer, schedule, stop, checkpoint), the history table, the progress callbacks;
 * and the functions core.loss and core.schedule_lr. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "lua_dataset.h"
#include "lua_optim.h"
#include "lua_tensor.h"
#include "lua_train.h"

static const char *loss_name_of(int k) { return ln_loss_name((ln_loss_kind)k); }

int check_loss(lua_State *L, int arg, const char *def)
{
    const char *name = def ? luaL_optstring(L, arg, def) : luaL_checkstring(L, arg);
    const int k = ln_loss_kind_from_name(name);
    if (k < 0) return luaL_argerror(L, arg, lua_pushfstring(L, "invalid option '%s'", name));
    return k;
}

/* t[key] as "epoch" (the default) or "step"; `what` names it in the error. */
static ln_unit read_unit(lua_State *L, int t, const char *key, const char *what)
{
    const char *unit = field_str(L, t, key, "epoch");
    if (!strcmp(unit, "epoch")) return LN_UNIT_EPOCH;
    if (!strcmp(unit, "step")) return LN_UNIT_STEP;
    luaL_error(L, "%s must be \"epoch\" or \"step\" (got \"%s\")", what, unit);
    return LN_UNIT_EPOCH;
}

static const char *const schedule_names[] = {"none", "step", "multistep", "exponential", "cosine", NULL};

/* A schedule from {kind = "step", per = "epoch"|"step", step_size =, milestones = {...},
 * gamma =, t_max =, eta_min =} (keys checked by the Lua side, values by the engine). */
static void read_schedule(lua_State *L, int t, ln_schedule *s)
{
    memset(s, 0, sizeof *s);
    const char *kind = field_str(L, t, "kind", "none");
    int k = -1;
    for (int i = 0; schedule_names[i]; i++)
        if (!strcmp(kind, schedule_names[i])) k = i;
    if (k < 0)
        luaL_error(L, "option 'schedule': unknown kind '%s' (valid: step, multistep, exponential, cosine)",
                   kind);
    s->kind = (ln_schedule_kind)k;
    s->per = read_unit(L, t, "per", "option 'schedule': per");
    s->step_size = field_int(L, t, "step_size", 0, 0, (lua_Integer)1 << 40);
    s->gamma = field_num(L, t, "gamma", 0.1);
    s->t_max = field_int(L, t, "t_max", 0, 0, (lua_Integer)1 << 40);
    s->eta_min = field_num(L, t, "eta_min", 0.0);
    lua_getfield(L, t, "milestones");
    if (lua_istable(L, -1)) {
        lua_Integer n = luaL_len(L, -1);
        if (n > LN_MAX_MILESTONES)
            luaL_error(L, "option 'schedule': at most %d milestones (got %I)", LN_MAX_MILESTONES, n);
        for (lua_Integer i = 0; i < n; i++) {
            lua_geti(L, -1, i + 1);
            int ok;
            s->milestones[i] = lua_tointegerx(L, -1, &ok);
            if (!ok) luaL_error(L, "option 'schedule': milestones[%I] must be an integer", i + 1);
            lua_pop(L, 1);
        }
        s->milestone_count = (int)n;
    }
    lua_pop(L, 1);
}

/* core.schedule_lr(schedule_table, base_lr, t) -> the rate at scheduler time t */
static int l_schedule_lr(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    ln_schedule s;
    read_schedule(L, 1, &s);
    double base = luaL_checknumber(L, 2);
    lua_Integer t = luaL_checkinteger(L, 3);
    ln_error err;
    if (ln_schedule_check(&s, &err)) return luaL_error(L, "%s", err.msg);
    lua_pushnumber(L, ln_schedule_lr(&s, base, (int64_t)t));
    return 1;
}

void read_train_config(lua_State *L, int t, ln_train_config *cfg)
{
    ln_train_config_defaults(cfg);
    const char *loss = field_str(L, t, "loss", "nll");
    const int k = ln_loss_kind_from_name(loss);
    if (k < 0)
        luaL_error(L, "option 'loss': unknown loss '%s' (valid: %s)", loss,
                   push_kind_names(L, ln_loss_kind_count(), loss_name_of));
    cfg->loss = (ln_loss_kind)k;
    lua_getfield(L, t, "optimizer");
    if (!lua_istable(L, -1)) luaL_error(L, "option 'optimizer': table expected");
    cfg->optim = read_optim_spec(L, lua_gettop(L));
    lua_pop(L, 1);
    cfg->batch = (int)field_int(L, t, "batch", LN_DEFAULT_BATCH, 1, 1 << 20);
    cfg->iterations = field_int(L, t, "iterations", 1, 1, (lua_Integer)1 << 32);
    cfg->unit = read_unit(L, t, "unit", "option 'unit'");
    cfg->shuffle = field_bool(L, t, "shuffle", 1);
    lua_getfield(L, t, "seed");
    if (!lua_isnil(L, -1)) {
        int ok;
        cfg->seed = (uint64_t)lua_tointegerx(L, -1, &ok);
        if (!ok) luaL_error(L, "option 'seed': integer expected");
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "schedule"); /* stays pushed: read_schedule leaves strings above it */
    if (lua_istable(L, -1)) read_schedule(L, lua_gettop(L), &cfg->schedule);
    lua_getfield(L, t, "validate");
    if (!lua_isnil(L, -1)) cfg->validate = check_dataset(L, lua_gettop(L));
    lua_pop(L, 1); /* the caller's options table keeps the dataset alive */
    cfg->validate_every = field_int(L, t, "validate_every", 1, 1, (lua_Integer)1 << 32);
    lua_getfield(L, t, "stop");
    if (lua_istable(L, -1)) {
        const int s = lua_gettop(L);
        const char *metric = field_str(L, s, "metric", "val_loss");
        if (!strcmp(metric, "loss"))
            cfg->early.metric = LN_STOP_LOSS;
        else if (!strcmp(metric, "val_loss"))
            cfg->early.metric = LN_STOP_VAL_LOSS;
        else
            luaL_error(L, "option 'stop': metric must be \"val_loss\" or \"loss\" (got \"%s\")", metric);
        cfg->early.patience = field_int(L, s, "patience", 0, 0, (lua_Integer)1 << 40);
        cfg->early.min_delta = field_num(L, s, "min_delta", 0.0);
    } /* the table stays pushed, below the metric string */
    lua_getfield(L, t, "checkpoint"); /* stays pushed, as the path field_str leaves above it */
    if (lua_istable(L, -1)) {
        const int c = lua_gettop(L);
        cfg->checkpoint_every = field_int(L, c, "every", 1, 1, (lua_Integer)1 << 40);
        cfg->checkpoint = field_str(L, c, "path", NULL);
        if (!cfg->checkpoint) luaL_error(L, "option 'checkpoint': path is required");
    }
    ln_error err;
    if (ln_schedule_check(&cfg->schedule, &err)) luaL_error(L, "option 'schedule': %s", err.msg);
}

void push_history(lua_State *L, const ln_history *h, int with_steps)
{
    lua_createtable(L, 0, 8);
    lua_createtable(L, (int)h->iterations, 0);
    for (int64_t i = 0; i < h->iterations; i++) {
        lua_pushnumber(L, h->loss[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "loss");
    if (with_steps) {
        lua_createtable(L, (int)h->steps, 0);
        for (int64_t i = 0; i < h->steps; i++) {
            lua_pushnumber(L, h->step_loss[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "step_loss");
    }
    lua_pushinteger(L, h->iterations);
    lua_setfield(L, -2, "iterations");
    lua_pushinteger(L, h->steps);
    lua_setfield(L, -2, "steps");
    lua_pushinteger(L, h->samples);
    lua_setfield(L, -2, "samples");
    lua_pushnumber(L, h->seconds);
    lua_setfield(L, -2, "seconds");
    lua_pushnumber(L, h->cpu_seconds);
    lua_setfield(L, -2, "cpu_seconds");
    lua_pushnumber(L, h->seconds > 0 ? (double)h->samples / h->seconds : 0.0);
    lua_setfield(L, -2, "samples_per_second");
    lua_pushboolean(L, h->diverged);
    lua_setfield(L, -2, "diverged");
    lua_pushboolean(L, h->interrupted);
    lua_setfield(L, -2, "interrupted");
    if (h->first_iteration > 0) {
        lua_pushinteger(L, h->first_iteration);
        lua_setfield(L, -2, "resumed_after");
    }
    if (h->checkpoint_error[0]) {
        lua_pushstring(L, h->checkpoint_error);
        lua_setfield(L, -2, "checkpoint_error");
    }
    lua_createtable(L, (int)h->iterations, 0);
    for (int64_t i = 0; i < h->iterations; i++) {
        lua_pushnumber(L, h->lr[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "lr");
    if (h->val_loss) {
        lua_createtable(L, (int)h->validations, 0);
        lua_createtable(L, (int)h->validations, 0);
        lua_createtable(L, (int)h->validations, 0);
        for (int64_t i = 0; i < h->validations; i++) {
            lua_pushinteger(L, h->val_iteration[i]);
            lua_rawseti(L, -4, i + 1);
            lua_pushnumber(L, h->val_loss[i]);
            lua_rawseti(L, -3, i + 1);
            lua_pushnumber(L, h->val_accuracy[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -4, "val_accuracy");
        lua_setfield(L, -3, "val_loss");
        lua_setfield(L, -2, "val_iterations");
    }
    if (h->stopped_at > 0) {
        lua_pushinteger(L, h->stopped_at);
        lua_setfield(L, -2, "stopped_at");
    }
}

typedef struct {
    int nfields;
    const char *const *keys;
    const double *vals;
} progress_fields;

static int progress_traceback(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1; /* other error values pass unchanged */
}

/* Runs protected: (fn, fields) -> fn{fields} */
static int progress_trampoline(lua_State *L)
{
    const progress_fields *f = lua_touserdata(L, 2);
    lua_settop(L, 1);
    lua_createtable(L, 0, f->nfields);
    for (int i = 0; i < f->nfields; i++) {
        lua_pushnumber(L, f->vals[i]);
        lua_setfield(L, -2, f->keys[i]);
    }
    lua_call(L, 1, 1);
    return 1;
}

int call_progress(lua_progress *lp, int nfields, const char *const *keys, const double *vals)
{
    lua_State *L = lp->L;
    if (lp->failed) return 1;
    if (!lua_checkstack(L, 5)) { /* (returns 0 instead of raising) */
        lp->failed = 1;
        return 1;
    }
    progress_fields f = {nfields, keys, vals};
    lua_pushcfunction(L, progress_traceback); /* light C functions: nothing allocated */
    int msgh = lua_gettop(L);
    lua_pushcfunction(L, progress_trampoline);
    lua_pushvalue(L, lp->fn);
    lua_pushlightuserdata(L, &f);
    int stop;
    if (lua_pcall(L, 2, 1, msgh) != LUA_OK) {
        lua_replace(L, lp->err_slot);
        lp->failed = stop = 1;
    } else {
        stop = lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* the handler */
    return stop;
}

/* After the engine returned: raises the callback's error again, named by the caller. */
int raise_progress_error(lua_State *L, const lua_progress *lp)
{
    lua_pushvalue(L, lp->err_slot);
    if (lua_isnil(L, -1)) return luaL_error(L, "%s: no Lua stack left for the progress callback", lp->caller);
    if (lua_type(L, -1) != LUA_TSTRING) return lua_error(L); /* an error object, unchanged */
    const char *msg = lua_tostring(L, -1);
    static const char *const yields[] = {"attempt to yield across a C-call boundary",
                                         "attempt to yield from outside a coroutine"};
    for (int i = 0; i < 2; i++)
        if (strstr(msg, yields[i]))
            msg = luaL_gsub(L, msg, yields[i],
                            lua_pushfstring(L, "a progress callback cannot yield (coroutine.yield) "
                                               "inside %s", lp->caller));
    lua_pushfstring(L, "%s: progress callback failed: %s", lp->caller, msg);
    return lua_error(L);
}

/* core.loss(kind, pred, labels | nil, targets | nil) -> loss, grad tensor */
static int l_loss(lua_State *L)
{
    lua_settop(L, 4); /* scratch pushed below must not be mistaken for arguments */
    int kind = check_loss(L, 1, NULL);
    const ln_shape shape = check_tensor(L, 2)->shape;
    if (shape.ndim != 2) return luaL_argerror(L, 2, "pred must be batch x classes");
    int batch = (int)shape.dim[0], classes = (int)shape.dim[1];
    int32_t *labels = NULL;
    if (!lua_isnoneornil(L, 3)) {
        luaL_argexpected(L, lua_istable(L, 3), 3, "table (labels)");
        if (luaL_len(L, 3) != batch)
            return luaL_argerror(L, 3, lua_pushfstring(L, "needs %d labels (one per row of pred)", batch));
        labels = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)batch, 0);
        for (int i = 0; i < batch; i++) {
            lua_geti(L, 3, i + 1);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok || v < INT32_MIN || v > INT32_MAX)
                return luaL_argerror(L, 3, lua_pushfstring(L, "labels[%d] is not an integer", i + 1));
            labels[i] = (int32_t)v;
            lua_pop(L, 1);
        }
    }
    const int has_targets = !lua_isnoneornil(L, 4);
    if (has_targets && !ln_shape_equal(check_tensor(L, 4)->shape, shape))
        return luaL_argerror(L, 4, "targets must have pred's shape");
    if (!labels && !(kind == LN_LOSS_MSE && has_targets))
        return luaL_argerror(L, 3, "labels expected");
    tensor_ud *g = new_tensor_ud(L);
    /* the pointers after the labels' metamethods and the allocations */
    const ln_tensor *pred = check_tensor(L, 2);
    const float *targets = has_targets ? check_tensor(L, 4)->data : NULL;
    ln_tensor *grad = alloc_tensor(L, g, shape);
    double loss;
    ln_error err;
    if (ln_loss((ln_loss_kind)kind, pred->data, batch, classes, labels, targets, &loss, grad->data, &err))
        return luaL_error(L, "loss: %s", err.msg);
    lua_pushnumber(L, loss);
    lua_insert(L, -2);
    return 2;
}


static const luaL_Reg train_functions[] = {
    {"loss", l_loss},
    {"schedule_lr", l_schedule_lr},
    {NULL, NULL},
};

void lunet_open_train(lua_State *L)
{
    luaL_setfuncs(L, train_functions, 0);
}
