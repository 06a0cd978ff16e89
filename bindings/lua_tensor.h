#ifndef LUA_TENSOR_H
#define LUA_TENSOR_H
/* lua_tensor.h - class Tensor, for the other class files. */
#include "lua_aux.h"

#define TENSOR_MT "lunet.Tensor"

typedef struct {
    obj_head h;
    ln_tensor t;
} tensor_ud;

extern const obj_class TENSOR_CLASS;

/* An empty tensor userdata (pushed): nothing taken yet. */
tensor_ud *new_tensor_ud(lua_State *L);
/* Gives the empty tensor u memory for `shape` (zeros); raises on out-of-memory. */
ln_tensor *alloc_tensor(lua_State *L, tensor_ud *u, ln_shape shape);
ln_tensor *check_tensor(lua_State *L, int arg);
#endif
