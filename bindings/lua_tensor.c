/* lua_tensor.c - class Tensor (lunet.Tensor) and core.tensor. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lua_tensor.h"

const obj_class TENSOR_CLASS = {TENSOR_MT, "tensor"};

tensor_ud *new_tensor_ud(lua_State *L)
{
    tensor_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, TENSOR_MT);
    return u;
}

/* Gives the empty tensor u memory for `shape` (zeros); raises on out-of-memory. */
ln_tensor *alloc_tensor(lua_State *L, tensor_ud *u, ln_shape shape)
{
    ln_error err;
    if (ln_tensor_alloc(&u->t, shape, &err)) luaL_error(L, "%s", err.msg);
    u->h.live = 1;
    return &u->t;
}

/* Pushes a new tensor of `shape` (zeros); raises on out-of-memory. */
static ln_tensor *push_tensor(lua_State *L, ln_shape shape)
{
    return alloc_tensor(L, new_tensor_ud(L), shape);
}

ln_tensor *check_tensor(lua_State *L, int arg)
{
    return &((tensor_ud *)check_obj(L, arg, &TENSOR_CLASS))->t;
}

static int tensor_free(lua_State *L)
{
    tensor_ud *u = begin_release(L, &TENSOR_CLASS);
    if (u) ln_tensor_release(&u->t);
    return 0;
}

/* lunet.core.tensor(shape [, data]) : data is a flat list of numbers in row-major order */
static int l_tensor(lua_State *L)
{
    lua_settop(L, 2); /* index 2 is the data, never the tensor pushed below */
    ln_shape shape = check_shape(L, 1, "shape");
    int64_t n = ln_shape_numel(shape);
    if (n > ((int64_t)1 << 31)) return luaL_argerror(L, 1, "shape is too large");
    if (!lua_isnoneornil(L, 2)) {
        luaL_argexpected(L, lua_istable(L, 2), 2, "table (data)");
        if (luaL_len(L, 2) != n)
            return luaL_argerror(L, 2,
                                 lua_pushfstring(L, "data has %I numbers but the shape holds %I",
                                                 luaL_len(L, 2), (lua_Integer)n));
    }
    ln_tensor *t = push_tensor(L, shape);
    if (!lua_isnoneornil(L, 2)) {
        for (int64_t i = 0; i < n; i++) {
            lua_geti(L, 2, i + 1);
            int ok;
            lua_Number v = lua_tonumberx(L, -1, &ok);
            if (!ok)
                return luaL_argerror(L, 2, lua_pushfstring(L, "data[%I] is not a number", (lua_Integer)i + 1));
            t->data[i] = (float)v;
            lua_pop(L, 1);
        }
    }
    return 1;
}

static int tensor_shape(lua_State *L)
{
    push_shape(L, check_tensor(L, 1)->shape);
    return 1;
}

static int tensor_numel(lua_State *L)
{
    lua_pushinteger(L, ln_shape_numel(check_tensor(L, 1)->shape));
    return 1;
}

static int tensor_totable(lua_State *L)
{
    int64_t n = ln_shape_numel(check_tensor(L, 1)->shape);
    lua_createtable(L, (int)n, 0);
    ln_tensor *t = check_tensor(L, 1); /* after the allocation: a finalizer may have freed it */
    for (int64_t i = 0; i < n; i++) {
        lua_pushnumber(L, t->data[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int tensor_get(lua_State *L)
{
    ln_tensor *t = check_tensor(L, 1);
    lua_Integer i = check_range(L, 2, "index", 1, ln_shape_numel(t->shape));
    lua_pushnumber(L, t->data[i - 1]);
    return 1;
}

static int tensor_set(lua_State *L)
{
    ln_tensor *t = check_tensor(L, 1);
    lua_Integer i = check_range(L, 2, "index", 1, ln_shape_numel(t->shape));
    t->data[i - 1] = (float)luaL_checknumber(L, 3);
    return 0;
}

static int tensor_clone(lua_State *L)
{
    check_tensor(L, 1);
    tensor_ud *c = new_tensor_ud(L);
    ln_tensor *t = check_tensor(L, 1); /* again: the allocation may have run a finalizer */
    memcpy(alloc_tensor(L, c, t->shape)->data, t->data, sizeof(float) * (size_t)ln_shape_numel(t->shape));
    return 1;
}

/* t:reshape(shape) -> a new tensor with the same data */
static int tensor_reshape(lua_State *L)
{
    check_tensor(L, 1);
    ln_shape s = check_shape(L, 2, "shape"); /* its metamethods may run any Lua code */
    tensor_ud *c = new_tensor_ud(L);
    ln_tensor *t = check_tensor(L, 1);
    if (ln_shape_numel(s) != ln_shape_numel(t->shape))
        return luaL_argerror(L, 2, "shape must hold as many elements as the tensor");
    memcpy(alloc_tensor(L, c, s)->data, t->data, sizeof(float) * (size_t)ln_shape_numel(s));
    return 1;
}

static int tensor_len(lua_State *L) { return tensor_numel(L); }

static int tensor_tostring(lua_State *L)
{
    tensor_ud *u = luaL_checkudata(L, 1, TENSOR_MT);
    if (!u->h.live) {
        lua_pushliteral(L, "tensor (freed)");
        return 1;
    }
    /* composed in C memory, pushed once: no Lua allocation while the data is read */
    char text[512], shape[64];
    ln_shape_format(u->t.shape, shape, sizeof shape);
    int len = snprintf(text, sizeof text, "tensor %s [", shape);
    int64_t n = ln_shape_numel(u->t.shape);
    double lo = INFINITY, hi = -INFINITY, sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double v = u->t.data[i];
        if (i < 6) len += snprintf(text + len, sizeof text - (size_t)len, "%s%.4g", i ? ", " : "", v);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v;
    }
    snprintf(text + len, sizeof text - (size_t)len, "%s] min %.4g max %.4g mean %.4g",
             n > 6 ? ", ..." : "", lo, hi, sum / (double)n);
    lua_pushstring(L, text);
    return 1;
}

/* t[i] reads element i (flat, 1-based); names find methods (upvalue 1: the methods
 * table, so that a changed metatable cannot make this index a non-table). */
static int tensor_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TNUMBER) return tensor_get(L); /* checks self */
    luaL_checkudata(L, 1, TENSOR_MT); /* (freed tensors still find :free()) */
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

static const luaL_Reg tensor_methods[] = {
    {"shape", tensor_shape}, {"numel", tensor_numel},     {"totable", tensor_totable},
    {"get", tensor_get},     {"set", tensor_set},         {"clone", tensor_clone},
    {"reshape", tensor_reshape}, {"free", tensor_free},   {NULL, NULL},
};

const lunet_class lunet_tensor_class = {
    .name = TENSOR_MT, .field = "Tensor", .methods = tensor_methods, .gc = tensor_free,
    .tostring = tensor_tostring, .index = tensor_index, .len = tensor_len,
    .functions = (const luaL_Reg[]){{"tensor", l_tensor}, {NULL, NULL}},
};
