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
    lua_pushstring(L, LUNET_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, LUNET_ENGINE_REVISION);
    lua_setfield(L, -2, "engine_revision");
    return 1;
}
