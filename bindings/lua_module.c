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

/* Sets t[key] = v for the table on top of the stack. */
static void set_number(lua_State *L, const char *key, lua_Number v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

static void set_integer(lua_State *L, const char *key, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, key);
}

/* Pushes one optimizer's defaults, the fields of its Lua constructor (lunet.sgd{} ...). */
static void push_optim_defaults(lua_State *L, const ln_optim_spec *s)
{
    lua_createtable(L, 0, 5);
    set_number(L, "lr", s->lr);
    set_number(L, "weight_decay", s->weight_decay);
    if (s->kind == LN_OPT_SGD) {
        set_number(L, "momentum", s->momentum);
        set_number(L, "dampening", s->dampening);
        lua_pushboolean(L, s->nesterov);
        lua_setfield(L, -2, "nesterov");
        return;
    }
    lua_createtable(L, 2, 0);
    lua_pushnumber(L, s->beta1);
    lua_rawseti(L, -2, 1);
    lua_pushnumber(L, s->beta2);
    lua_rawseti(L, -2, 2);
    lua_setfield(L, -2, "betas");
    set_number(L, "eps", s->eps);
}

/* Read-only views: an empty table whose metatable reads from the real one (kept as an
 * upvalue-free __index table) and refuses writes. pairs and # see the real contents. */
static int read_only_newindex(lua_State *L)
{
    return luaL_error(L, "lunet.core.defaults is read-only: it shows the engine's values "
                         "(core/lunet.h); give your own settings to the function instead");
}

static int read_only_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    return lua_next(L, 1) ? 2 : (lua_pushnil(L), 1);
}

static int read_only_pairs(lua_State *L)
{
    lua_getmetatable(L, 1);
    lua_pushcfunction(L, read_only_next);
    lua_getfield(L, -2, "__index"); /* the real table */
    lua_pushnil(L);
    return 3;
}

static int read_only_len(lua_State *L)
{
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__index");
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

/* Replaces the table on the top of the stack, and every table inside it, by read-only
 * views of them. */
static void make_read_only(lua_State *L)
{
    lua_pushnil(L);
    while (lua_next(L, -2)) { /* table, key, value */
        if (lua_istable(L, -1)) {
            make_read_only(L);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -4); /* same key: assigning existing fields keeps lua_next valid */
        } else {
            lua_pop(L, 1);
        }
    }
    static const luaL_Reg view_meta[] = {{"__newindex", read_only_newindex},
                                         {"__pairs", read_only_pairs},
                                         {"__len", read_only_len},
                                         {NULL, NULL}};
    lua_newtable(L); /* the view */
    lua_createtable(L, 0, 5);
    luaL_setfuncs(L, view_meta, 0);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_remove(L, -2); /* the real table, now reachable from the view only */
}

/* core.defaults: the defaults and limits that the binding and the Lua modules share,
 * made once from the engine's values (core/lunet.h; the optimizers' from their descriptors
 * in core/optim.c, ln_optim_defaults), so no number is written twice:
 * optimizers.{sgd, adam, adamw}, mnist = {mean, std}, batch, eval_batch, max_runs,
 * max_threads. Read-only (a write raises): changing it would change what the Lua side
 * assumes but not the engine. */
static void push_defaults(lua_State *L)
{
    lua_createtable(L, 0, 6);
    lua_createtable(L, 0, 3);
    for (int k = 0; k < ln_optim_kind_count(); k++) { /* the core's descriptors */
        const ln_optim_spec s = ln_optim_defaults((ln_optim_kind)k);
        push_optim_defaults(L, &s);
        lua_setfield(L, -2, ln_optim_name((ln_optim_kind)k));
    }
    lua_setfield(L, -2, "optimizers");
    lua_createtable(L, 0, 2);
    set_number(L, "mean", LN_MNIST_MEAN);
    set_number(L, "std", LN_MNIST_STD);
    lua_setfield(L, -2, "mnist");
    set_integer(L, "batch", LN_DEFAULT_BATCH);
    set_integer(L, "eval_batch", LN_DEFAULT_EVAL_BATCH);
    set_integer(L, "max_runs", LN_MAX_RUNS);
    set_integer(L, "max_threads", LN_MAX_THREADS);
    make_read_only(L);
}

static const luaL_Reg module_functions[] = {
    {"isatty", l_isatty},
    {"cpu_count", l_cpu_count},
    {"isa", l_isa},
    {"alloc_fail_after", l_alloc_fail_after},
    {"interrupt_signal", l_interrupt_signal},
    {NULL, NULL},
};

/* the one symbol the module exports (the Makefile hides the rest) */
__attribute__((visibility("default"))) int luaopen_lunet_core(lua_State *L)
{
    luaL_newlib(L, module_functions);
    lunet_open_aux(L);
    lunet_open_sys(L);
    static const lunet_class *const classes[] = {&lunet_tensor_class, &lunet_dataset_class,
                                                 &lunet_net_class, &lunet_optim_class};
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) open_class(L, classes[i]);
    lunet_open_layer_kinds(L);
    lunet_open_train(L);
    lunet_open_runs(L);
    push_defaults(L);
    lua_setfield(L, -2, "defaults");
    lua_pushstring(L, LUNET_VERSION);
    lua_setfield(L, -2, "version");
    set_integer(L, "engine_revision", LUNET_ENGINE_REVISION);
    return 1;
}
