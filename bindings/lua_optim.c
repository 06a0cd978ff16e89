/* lua_optim.c - class Optimizer (lunet.Optimizer), core.optimizer and the optimizer
 * spec that net:train and core.runs read too. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "lua_optim.h"
#include "lua_tensor.h"

const obj_class OPTIM_CLASS = {OPTIM_MT, "optimizer"};

static const char *optim_name_of(int k) { return ln_optim_name((ln_optim_kind)k); }

/* An optimizer spec from {kind = "sgd", lr = ..., ...} (keys checked by the Lua side);
 * absent fields take core's defaults (ln_optim_defaults). */
ln_optim_spec read_optim_spec(lua_State *L, int t)
{
    lua_getfield(L, t, "kind");
    const int kind = lua_type(L, -1) == LUA_TSTRING ? ln_optim_kind_from_name(lua_tostring(L, -1)) : -1;
    if (kind < 0)
        luaL_error(L, "optimizer: unknown kind (valid: %s)",
                   push_kind_names(L, ln_optim_kind_count(), optim_name_of));
    lua_pop(L, 1);
    ln_optim_spec s = ln_optim_defaults((ln_optim_kind)kind);
    s.lr = field_num(L, t, "lr", s.lr);
    s.momentum = field_num(L, t, "momentum", s.momentum);
    s.dampening = field_num(L, t, "dampening", s.dampening);
    s.weight_decay = field_num(L, t, "weight_decay", s.weight_decay);
    s.nesterov = field_bool(L, t, "nesterov", s.nesterov);
    lua_getfield(L, t, "betas");
    if (lua_istable(L, -1)) {
        lua_geti(L, -1, 1);
        lua_geti(L, -2, 2);
        if (!lua_isnumber(L, -2) || !lua_isnumber(L, -1))
            luaL_error(L, "option 'betas': two numbers expected");
        s.beta1 = lua_tonumber(L, -2);
        s.beta2 = lua_tonumber(L, -1);
        lua_pop(L, 2);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "option 'betas': table of two numbers expected");
    }
    lua_pop(L, 1);
    s.eps = field_num(L, t, "eps", s.eps);
    ln_error err;
    if (ln_optim_spec_check(&s, &err)) luaL_error(L, "%s", err.msg);
    return s;
}

typedef struct {
    obj_head h;
    ln_optim opt;
} optim_ud;

static optim_ud *check_optim(lua_State *L, int arg)
{
    return check_obj(L, arg, &OPTIM_CLASS);
}

static int optim_free(lua_State *L)
{
    optim_ud *u = begin_release(L, &OPTIM_CLASS);
    if (u) ln_optim_release(&u->opt);
    return 0;
}

/* core.optimizer(spec, count) */
static int l_optimizer(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer count = check_range(L, 2, "count", 1, (lua_Integer)1 << 31);
    ln_optim_spec s = read_optim_spec(L, 1);
    optim_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, OPTIM_MT);
    ln_error err;
    if (ln_optim_init(&u->opt, &s, count, &err)) return luaL_error(L, "%s", err.msg);
    u->h.live = 1;
    return 1;
}

/* opt:step(params, grads): updates the params tensor in place */
static int optim_step(lua_State *L)
{
    optim_ud *u = check_optim(L, 1);
    ln_tensor *p = check_tensor(L, 2);
    ln_tensor *g = check_tensor(L, 3);
    if (ln_shape_numel(p->shape) != u->opt.count)
        return luaL_argerror(L, 2, lua_pushfstring(L, "needs %I parameters", (lua_Integer)u->opt.count));
    if (ln_shape_numel(g->shape) != u->opt.count)
        return luaL_argerror(L, 3, lua_pushfstring(L, "needs %I gradients", (lua_Integer)u->opt.count));
    ln_optim_step(&u->opt, p->data, g->data);
    return 0;
}

static int optim_reset(lua_State *L)
{
    ln_optim_reset(&check_optim(L, 1)->opt);
    return 0;
}

static int optim_steps(lua_State *L)
{
    lua_pushinteger(L, check_optim(L, 1)->opt.steps);
    return 1;
}

static int optim_tostring(lua_State *L)
{
    optim_ud *u = luaL_checkudata(L, 1, OPTIM_MT);
    if (!u->h.live) {
        lua_pushliteral(L, "optimizer (freed)");
        return 1;
    }
    const ln_optim_spec *s = &u->opt.spec;
    if (s->kind == LN_OPT_SGD)
        lua_pushfstring(L, "sgd{lr=%f, momentum=%f} over %I parameters, %I steps", s->lr, s->momentum,
                        (lua_Integer)u->opt.count, (lua_Integer)u->opt.steps);
    else
        lua_pushfstring(L, "%s{lr=%f} over %I parameters, %I steps", ln_optim_name(s->kind), s->lr,
                        (lua_Integer)u->opt.count, (lua_Integer)u->opt.steps);
    return 1;
}

static const luaL_Reg optim_methods[] = {
    {"step", optim_step}, {"reset", optim_reset}, {"steps", optim_steps}, {"free", optim_free}, {NULL, NULL},
};

const lunet_class lunet_optim_class = {
    .name = OPTIM_MT, .field = "Optimizer", .methods = optim_methods, .gc = optim_free,
    .tostring = optim_tostring, .functions = (const luaL_Reg[]){{"optimizer", l_optimizer}, {NULL, NULL}},
};
