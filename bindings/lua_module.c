/* lua_module.c - the entry of the Lua 5.4 binding of the lunet engine: module `lunet.core`.
 *
 * The binding exposes the engine's objects as userdata (Tensor, Dataset, Net,
 * Optimizer) and a few functions; the pure-Lua part of the module
 * (bindings/lunet/init.lua) builds the public API on top (strict option tables,
 * models, experiments, printing). luaopen_lunet_core makes the module table and lets
 * each file of the binding add its part (lua_aux.h lists them and says the
 * conventions they follow); the few functions that belong to no class live here.
 */
#define _POSIX_C_SOURCE 200809L
#include <unistd.h>

#include "lua_aux.h"

static int l_isatty(lua_State *L)
{
    lua_Integer fd = luaL_optinteger(L, 1, 2);
    lua_pushboolean(L, isatty((int)fd));
    return 1;
}

static int l_isa(lua_State *L)
{
    lua_pushstring(L, ln_kernel_isa());
    return 1;
}

static int l_cpu_count(lua_State *L)
{
    lua_pushinteger(L, ln_cpu_count());
    return 1;
}

/* core.alloc_fail_after(n): test hook, makes engine allocations fail after n more */
static int l_alloc_fail_after(lua_State *L)
{
    lua_pushinteger(L, ln_alloc_fail_after((long)luaL_checkinteger(L, 1)));
    return 1;
}

/* Pushes one optimizer's defaults, the fields of its Lua constructor (lunet.sgd{} ...). */
static void push_optim_defaults(lua_State *L, const ln_optim_spec *s)
{
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, s->lr);
    lua_setfield(L, -2, "lr");
    if (s->kind == LN_OPT_SGD) {
        lua_pushnumber(L, s->momentum);
        lua_setfield(L, -2, "momentum");
        lua_pushnumber(L, s->dampening);
        lua_setfield(L, -2, "dampening");
        lua_pushboolean(L, s->nesterov);
        lua_setfield(L, -2, "nesterov");
    } else {
        const double betas[2] = {s->beta1, s->beta2};
        lua_createtable(L, 2, 0);
        for (int i = 0; i < 2; i++) {
            lua_pushnumber(L, betas[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "betas");
        lua_pushnumber(L, s->eps);
        lua_setfield(L, -2, "eps");
    }
    lua_pushnumber(L, s->weight_decay);
    lua_setfield(L, -2, "weight_decay");
}

/* core.defaults: the defaults and limits that the binding and the Lua modules share,
 * made once from the engine's values (core/lunet.h), so no number is written twice:
 * optimizers.{sgd, adam, adamw}, mnist = {mean, std}, batch, eval_batch, max_runs,
 * max_threads. Read it, do not change it. */
static void push_defaults(lua_State *L)
{
    lua_createtable(L, 0, 6);
    lua_createtable(L, 0, 3);
    static const ln_optim_kind kinds[] = {LN_OPT_SGD, LN_OPT_ADAM, LN_OPT_ADAMW};
    for (int i = 0; i < 3; i++) {
        const ln_optim_spec s = kinds[i] == LN_OPT_SGD ? ln_sgd_spec(LN_DEFAULT_SGD_LR, 0.0)
                                                       : ln_adam_spec(kinds[i], LN_DEFAULT_ADAM_LR);
        push_optim_defaults(L, &s);
        lua_setfield(L, -2, ln_optim_name(kinds[i]));
    }
    lua_setfield(L, -2, "optimizers");
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, LN_MNIST_MEAN);
    lua_setfield(L, -2, "mean");
    lua_pushnumber(L, LN_MNIST_STD);
    lua_setfield(L, -2, "std");
    lua_setfield(L, -2, "mnist");
    lua_pushinteger(L, LN_DEFAULT_BATCH);
    lua_setfield(L, -2, "batch");
    lua_pushinteger(L, LN_DEFAULT_EVAL_BATCH);
    lua_setfield(L, -2, "eval_batch");
    lua_pushinteger(L, LN_MAX_RUNS);
    lua_setfield(L, -2, "max_runs");
    lua_pushinteger(L, LN_MAX_THREADS);
    lua_setfield(L, -2, "max_threads");
}

static const luaL_Reg module_functions[] = {
    {"isatty", l_isatty},
    {"cpu_count", l_cpu_count},
    {"isa", l_isa},
    {"alloc_fail_after", l_alloc_fail_after},
    {"interrupt_signal", l_interrupt_signal},
    {NULL, NULL},
};

int luaopen_lunet_core(lua_State *L)
{
    luaL_newlib(L, module_functions);
    lunet_open_aux(L);
    lunet_open_sys(L);
    lunet_open_tensor(L);
    lunet_open_dataset(L);
    lunet_open_net(L);
    lunet_open_optim(L);
    lunet_open_train(L);
    lunet_open_runs(L);
    push_defaults(L);
    lua_setfield(L, -2, "defaults");
    lua_pushstring(L, LUNET_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, LUNET_ENGINE_REVISION);
    lua_setfield(L, -2, "engine_revision");
    return 1;
}
