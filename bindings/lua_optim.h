#ifndef LUA_OPTIM_H
#define LUA_OPTIM_H
/* lua_optim.h - the optimizer spec, for the training options. */
#include "lua_aux.h"

#define OPTIM_MT "lunet.Optimizer"

extern const obj_class OPTIM_CLASS;

/* An optimizer spec from {kind = "sgd", lr = ..., ...} (keys checked by the Lua side). */
ln_optim_spec read_optim_spec(lua_State *L, int t);
#endif
