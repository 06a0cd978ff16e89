/* lunet.c - the Lua 5.4 binding of the lunet engine: module `lunet.core`.
 *
 * This is the one file that includes lua.h. It exposes the engine's objects as
 * userdata (Tensor, Dataset, Net, Optimizer) and a few functions; the pure-Lua
 * part of the module (bindings/lunet/init.lua) builds the public API on top
 * (strict option tables, models, experiments, printing).
 *
 * Conventions (as Lua's own libraries and LuaFileSystem):
 *  - a userdata is created empty before any C memory is taken, so an allocation
 *    error never leaks; one idempotent release serves __gc, __close and :free();
 *  - argument errors raise (luaL_argerror / luaL_error naming the argument);
 *    file and data errors return nil, message;
 *  - no globals: everything lives in the module table and the registry.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"
#include <zlib.h>

#include "../core/lunet.h"

#define TENSOR_MT "lunet.Tensor"
#define DATASET_MT "lunet.Dataset"
#define NET_MT "lunet.Net"
#define OPTIM_MT "lunet.Optimizer"

/* ------------------------------------------------------------------ helpers */

static int push_fail(lua_State *L, const ln_error *err)
{
    luaL_pushfail(L);
    lua_pushstring(L, err->msg);
    return 2;
}

/* An integer argument in [lo, hi], with an error naming it otherwise. */
static lua_Integer check_range(lua_State *L, int arg, const char *name, lua_Integer lo,
                               lua_Integer hi)
{
    if (!lua_isinteger(L, arg)) {
        if (lua_type(L, arg) == LUA_TNUMBER)
            return luaL_argerror(L, arg, lua_pushfstring(L, "%s must be an integer", name));
        return luaL_argerror(L, arg,
                             lua_pushfstring(L, "%s: integer expected, got %s", name,
                                             luaL_typename(L, arg)));
    }
    lua_Integer v = lua_tointeger(L, arg);
    if (v < lo || v > hi)
        return luaL_argerror(L, arg,
                             lua_pushfstring(L, "%s must be in [%I, %I] (got %I)", name, lo, hi, v));
    return v;
}

/* Reads t[key] as an integer (default if nil), raising an error naming the field. */
static lua_Integer field_int(lua_State *L, int t, const char *key, lua_Integer def, lua_Integer lo,
                             lua_Integer hi)
{
    lua_getfield(L, t, key);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok) luaL_error(L, "option '%s': integer expected, got %s", key, luaL_typename(L, -1));
        if (v < lo || v > hi) luaL_error(L, "option '%s' must be in [%I, %I] (got %I)", key, lo, hi, v);
    }
    lua_pop(L, 1);
    return v;
}

static double field_num(lua_State *L, int t, const char *key, double def)
{
    lua_getfield(L, t, key);
    double v = def;
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tonumberx(L, -1, &ok);
        if (!ok) luaL_error(L, "option '%s': number expected, got %s", key, luaL_typename(L, -1));
        if (isnan(v)) luaL_error(L, "option '%s' must not be NaN", key);
    }
    lua_pop(L, 1);
    return v;
}

static int field_bool(lua_State *L, int t, const char *key, int def)
{
    lua_getfield(L, t, key);
    int v = def;
    if (!lua_isnil(L, -1)) {
        if (!lua_isboolean(L, -1))
            luaL_error(L, "option '%s': boolean expected, got %s", key, luaL_typename(L, -1));
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* A string option; the string stays on the stack (pushed above everything), since the
 * table need not hold it (an __index metamethod may have made it). */
static const char *field_str(lua_State *L, int t, const char *key, const char *def)
{
    luaL_checkstack(L, 2, "option tables");
    lua_getfield(L, t, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "option '%s': string expected, got %s", key, luaL_typename(L, -1));
    return lua_tostring(L, -1);
}

static void push_shape(lua_State *L, ln_shape s)
{
    lua_createtable(L, s.ndim, 0);
    for (int i = 0; i < s.ndim; i++) {
        lua_pushinteger(L, s.dim[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* A shape from a Lua list of positive integers. */
static ln_shape check_shape(lua_State *L, int arg, const char *name)
{
    luaL_argexpected(L, lua_istable(L, arg), arg, "table (shape)");
    lua_Integer n = luaL_len(L, arg);
    if (n < 1 || n > LN_MAX_DIMS)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s must have 1 to %d dimensions", name, LN_MAX_DIMS));
    int64_t dims[LN_MAX_DIMS];
    int64_t numel = 1;
    for (int i = 0; i < n; i++) {
        lua_geti(L, arg, i + 1);
        int ok;
        lua_Integer d = lua_tointegerx(L, -1, &ok);
        if (!ok || d < 1 || d > (1 << 30))
            luaL_argerror(L, arg,
                          lua_pushfstring(L, "%s: dimension %d must be a positive integer", name, i + 1));
        dims[i] = d;
        numel *= d; /* below 2^31 * 2^30: checked after every factor */
        if (numel >= ((int64_t)1 << 31))
            luaL_argerror(L, arg, lua_pushfstring(L, "%s holds 2^31 elements or more", name));
        lua_pop(L, 1);
    }
    return ln_shape_make((int)n, dims);
}

/* ------------------------------------------------------------------- SIGINT */

/* SIGINT (Ctrl-C), SIGTERM (kill, Slurm, systemd) and SIGHUP (a closed terminal) during
 * a long call set this flag; the engine checks it before every step. The signal's
 * number is kept for core.interrupt_signal(), so that the Lua side can end a script
 * with 128 + signal. The previous handlers are restored when the call returns, so the
 * REPL's own handling (and the default action of SIGTERM) is untouched outside training. */
static atomic_int interrupt_flag; /* lock-free (core/train.c checks), so signal-safe */
static volatile sig_atomic_t interrupt_signal;
static const int caught_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define N_CAUGHT ((int)(sizeof caught_signals / sizeof caught_signals[0]))

static void on_sigint(int sig)
{
    if (!interrupt_signal) interrupt_signal = sig; /* the first one says why */
    atomic_store_explicit(&interrupt_flag, 1, memory_order_relaxed); /* read by the worker threads */
}

typedef struct {
    struct sigaction old[N_CAUGHT];
    int installed[N_CAUGHT];
} sigint_guard;

static void sigint_catch(sigint_guard *g)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    interrupt_flag = 0;
    interrupt_signal = 0;
    for (int i = 0; i < N_CAUGHT; i++)
        g->installed[i] = sigaction(caught_signals[i], &sa, &g->old[i]) == 0;
}

static void sigint_restore(sigint_guard *g)
{
    for (int i = 0; i < N_CAUGHT; i++) {
        if (g->installed[i]) sigaction(caught_signals[i], &g->old[i], NULL);
        g->installed[i] = 0;
    }
}

/* core.interrupt_signal() -> the signal that stopped the last training call, or 0 */
static int l_interrupt_signal(lua_State *L)
{
    lua_pushinteger(L, interrupt_signal);
    return 1;
}

/* ----------------------------------------------------------- object safety
 *
 * No Lua program may crash the process (the debug library aside), so every entry
 * point -- methods, metamethods, everything in lunet.core and the class
 * metatables, which stay public -- follows these rules:
 *
 *  1. self and every userdata argument are checked (class and not freed) with
 *     check_obj or pin before they are touched.
 *  2. A pointer into an object's engine memory is used only while no Lua code can
 *     run. Lua code runs in callbacks, in metamethods of argument tables (luaL_len,
 *     lua_geti, lua_getfield, luaL_tolstring) and in finalizers, which any
 *     allocation through the Lua API (strings, tables, userdata, number-to-string
 *     conversions) may start; any of them may call :free(). So an entry point
 *     either reads its Lua input and creates its results before it takes the
 *     pointers (checking the object again after the last Lua call: it cannot
 *     change but for being freed), or pins the objects for the whole call
 *     (pin_open + pin): the calls that run callbacks while the engine works.
 *  3. A pin says what it forbids until it is released, among the uses below; every
 *     entry point that makes such a use checks it (check_use, pin), so one check
 *     serves :free(), __close, __gc and the methods alike:
 *       PIN_READ      (the data of net:train, of lunet.core.runs): freeing it;
 *       PIN_TRAINING  (the net of net:train): freeing it and what replaces or releases
 *                     its training state (net:train -- fresh, resume --, net:init), so
 *                     that its progress callback may still evaluate, run and set the net;
 *       PIN_EXCLUSIVE (the net of lunet.core.runs, which worker threads read): every
 *                     change, until the workers are joined.
 *     A refused release raises "net is in use by net:train". A pinned object cannot be
 *     collected either: the pin guard, a to-be-closed value on the call's stack,
 *     references it. Closing the guard (the call returns or raises) unpins; if a
 *     coroutine dies with the call inside, the guard's __gc does.
 */

/* What a call does to an object, one bit each; a pin forbids a set of them. */
enum {
    USE_FREE,   /* releases it: :free(), __close, __gc */
    USE_TRAIN,  /* replaces or releases a net's training state: net:train, net:init */
    USE_CHANGE, /* changes its engine state: parameters, activations, kernels, threads */
    N_USES
};
#define USES(u) (1u << (u))

typedef struct {
    int live;               /* 0 once freed (or before the engine object exists) */
    int held[N_USES];       /* per use: how many pins forbid it now */
    const char *by[N_USES]; /* per use: the outermost of them, for the error */
} obj_head;

/* A kind of pin: the uses its call makes of the object (refused if a pin forbids them)
 * and the uses it forbids until released. */
typedef struct {
    unsigned does, forbids;
} pin_kind;

static const pin_kind PIN_READ = {0, USES(USE_FREE)};
static const pin_kind PIN_TRAINING = {USES(USE_TRAIN) | USES(USE_CHANGE), USES(USE_FREE) | USES(USE_TRAIN)};
static const pin_kind PIN_EXCLUSIVE = {USES(USE_CHANGE),
                                       USES(USE_FREE) | USES(USE_TRAIN) | USES(USE_CHANGE)};

typedef struct {
    const char *mt, *noun;
} obj_class;

static const obj_class TENSOR_CLASS = {TENSOR_MT, "tensor"};
static const obj_class DATASET_CLASS = {DATASET_MT, "dataset"};
static const obj_class NET_CLASS = {NET_MT, "net"};
static const obj_class OPTIM_CLASS = {OPTIM_MT, "optimizer"};

/* Raises if a pin forbids one of `uses` of h; `op` (or NULL) names the refused call. */
static void refuse_pinned(lua_State *L, const obj_head *h, const obj_class *c, unsigned uses,
                          const char *op)
{
    for (int k = 0; k < N_USES; k++) {
        if (!(uses & USES(k)) || !h->held[k]) continue;
        if (!op)
            luaL_error(L, "%s is in use by %s", c->noun, h->by[k]);
        else
            luaL_error(L, "%s is in use by %s (%s%s cannot run inside it)", c->noun, h->by[k],
                       strcmp(op, h->by[k]) ? "" : "a second ", op);
    }
}

/* The object (its userdata, which starts with an obj_head) at `arg`: of class c, not freed. */
static void *check_obj(lua_State *L, int arg, const obj_class *c)
{
    obj_head *h = luaL_checkudata(L, arg, c->mt);
    if (!h->live) luaL_argerror(L, arg, lua_pushfstring(L, "%s has been freed", c->noun));
    return h;
}

/* check_obj for a call `op` (NULL: unnamed) that makes `uses` of the object. */
static void *check_use(lua_State *L, int arg, const obj_class *c, unsigned uses, const char *op)
{
    obj_head *h = check_obj(L, arg, c);
    refuse_pinned(L, h, c, uses, op);
    return h;
}

/* check_obj for the methods that change the object (or its engine state). */
static void *check_mutable(lua_State *L, int arg, const obj_class *c)
{
    return check_use(L, arg, c, USES(USE_CHANGE), NULL);
}

/* The start of every release (:free(), __gc, __close): refused while pinned. Returns
 * the object if it is still live (the caller releases it), NULL if already freed. */
static void *begin_release(lua_State *L, const obj_class *c)
{
    obj_head *h = luaL_checkudata(L, 1, c->mt);
    refuse_pinned(L, h, c, USES(USE_FREE), NULL);
    if (!h->live) return NULL;
    h->live = 0;
    return h;
}

#define PIN_MAX 4
#define PIN_MT "lunet.PinGuard"
typedef struct {
    obj_head *obj[PIN_MAX];
    unsigned forbids[PIN_MAX];
    int n;
} pin_guard;

static int pin_guard_close(lua_State *L)
{
    pin_guard *g = luaL_checkudata(L, 1, PIN_MT);
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < N_USES; k++)
            if (g->forbids[i] & USES(k)) g->obj[i]->held[k]--;
    g->n = 0;
    return 0;
}

/* Keeps `nargs` arguments (so absent ones stay none, not the guard) and pushes a
 * to-be-closed pin guard after them; returns its stack index. */
static int pin_open(lua_State *L, int nargs)
{
    lua_settop(L, nargs);
    pin_guard *g = lua_newuserdatauv(L, sizeof *g, PIN_MAX);
    g->n = 0;
    luaL_setmetatable(L, PIN_MT);
    lua_toclose(L, -1);
    return lua_gettop(L);
}

/* Checks the object at `arg` for the uses of `kind` and pins it until the guard at
 * `guard` closes; `user` names the call ("net:train"). */
static void *pin(lua_State *L, int guard, int arg, const obj_class *c, const char *user,
                 const pin_kind *kind)
{
    obj_head *h = check_use(L, arg, c, kind->does, user);
    pin_guard *g = lua_touserdata(L, guard);
    if (g->n == PIN_MAX) luaL_error(L, "%s: internal error: too many pins", user);
    lua_pushvalue(L, arg);
    lua_setiuservalue(L, guard, g->n + 1); /* the collector cannot take it while pinned */
    g->obj[g->n] = h;
    g->forbids[g->n] = kind->forbids;
    g->n++;
    for (int k = 0; k < N_USES; k++)
        if (kind->forbids & USES(k) && h->held[k]++ == 0) h->by[k] = user;
    return h;
}

/* Checks and pins the object in option `key` of the table at `t` (it stays pushed). */
static void *pin_field(lua_State *L, int guard, int t, const char *key, const obj_class *c,
                       const char *user, const pin_kind *kind)
{
    lua_getfield(L, t, key);
    obj_head *h = luaL_testudata(L, -1, c->mt);
    if (!h)
        luaL_error(L, "%s: option '%s' must be a %s, got %s", user, key, c->noun, luaL_typename(L, -1));
    else if (!h->live)
        luaL_error(L, "%s: option '%s': %s has been freed", user, key, c->noun);
    return pin(L, guard, lua_gettop(L), c, user, kind);
}

/* A path argument: a string without NUL bytes (the C library would cut it there). */
static const char *check_path(lua_State *L, int arg)
{
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    if (strlen(s) != len) luaL_argerror(L, arg, "path contains a NUL byte");
    return s;
}

/* ------------------------------------------------------------------ Tensor */

typedef struct {
    obj_head h;
    ln_tensor t;
} tensor_ud;

static tensor_ud *new_tensor_ud(lua_State *L)
{
    tensor_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, TENSOR_MT);
    return u;
}

/* Gives the empty tensor u memory for `shape` (zeros); raises on out-of-memory. */
static ln_tensor *alloc_tensor(lua_State *L, tensor_ud *u, ln_shape shape)
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

static ln_tensor *check_tensor(lua_State *L, int arg)
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

/* ----------------------------------------------------------------- Dataset */

typedef struct {
    obj_head h;
    ln_dataset *ds;
    int has_checksum; /* a dataset never changes: ds:checksum() is computed once */
    lua_Integer checksum;
} dataset_ud;

static dataset_ud *new_dataset_ud(lua_State *L)
{
    dataset_ud *u = lua_newuserdatauv(L, sizeof *u, 1); /* uservalue 1: Lua-side info table */
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, DATASET_MT);
    return u;
}

static ln_dataset *check_dataset(lua_State *L, int arg)
{
    return ((dataset_ud *)check_obj(L, arg, &DATASET_CLASS))->ds;
}

static int dataset_free(lua_State *L)
{
    dataset_ud *u = begin_release(L, &DATASET_CLASS);
    if (u) {
        ln_dataset_free(u->ds);
        u->ds = NULL;
    }
    return 0;
}

/* A normalisation from {mean = number | list, std = number | list, normalize = "auto" |
 * false} (the Lua side has checked the kinds; this checks the values). */
static void read_norm(lua_State *L, int t, ln_norm *norm)
{
    memset(norm, 0, sizeof *norm);
    lua_getfield(L, t, "normalize");
    int none = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "mean");
    lua_getfield(L, t, "std");
    const int given = !lua_isnil(L, -2) || !lua_isnil(L, -1);
    if (none && given) luaL_error(L, "normalize = false takes no mean or std");
    if (given && (lua_isnil(L, -2) || lua_isnil(L, -1)))
        luaL_error(L, "option '%s' needs option '%s' too", lua_isnil(L, -2) ? "std" : "mean",
                   lua_isnil(L, -2) ? "mean" : "std");
    norm->mode = none ? LN_NORM_NONE : given ? LN_NORM_GIVEN : LN_NORM_AUTO;
    if (given) {
        double *dst[2] = {norm->mean, norm->std};
        const char *names[2] = {"mean", "std"};
        int counts[2];
        for (int k = 0; k < 2; k++) {
            int at = lua_gettop(L) - 1 + k;
            if (lua_type(L, at) == LUA_TNUMBER) {
                dst[k][0] = lua_tonumber(L, at);
                counts[k] = 1;
            } else if (lua_istable(L, at)) {
                lua_Integer n = luaL_len(L, at);
                if (n < 1 || n > LN_MAX_NORM_CHANNELS)
                    luaL_error(L, "option '%s': 1 to %d values (one per channel), got %I", names[k],
                               LN_MAX_NORM_CHANNELS, n);
                for (lua_Integer i = 0; i < n; i++) {
                    lua_geti(L, at, i + 1);
                    int ok;
                    dst[k][i] = lua_tonumberx(L, -1, &ok);
                    if (!ok) luaL_error(L, "option '%s'[%I]: number expected", names[k], i + 1);
                    lua_pop(L, 1);
                }
                counts[k] = (int)n;
            } else {
                luaL_error(L, "option '%s': a number or a list of numbers (one per channel) expected",
                           names[k]);
            }
        }
        if (counts[0] != counts[1])
            luaL_error(L, "options 'mean' and 'std' have %d and %d values", counts[0], counts[1]);
        norm->count = counts[0];
    }
    lua_pop(L, 2);
}

static void push_list(lua_State *L, const double *v, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* Before a loader: its normalisation from the options table at `t`, and the empty
 * dataset it fills (pushed). */
static dataset_ud *begin_load(lua_State *L, int t, ln_norm *norm)
{
    luaL_checktype(L, t, LUA_TTABLE);
    read_norm(L, t, norm);
    return new_dataset_ud(L);
}

/* After a loader: dataset (already on the stack), mean list, std list | nil, message */
static int push_loaded(lua_State *L, dataset_ud *u, ln_status st, const ln_error *err,
                       const ln_norm *norm)
{
    if (st) return push_fail(L, err);
    u->h.live = 1;
    push_list(L, norm->mean, norm->count);
    push_list(L, norm->std, norm->count);
    return 3;
}

/* core.dataset_idx(images_path, labels_path, limit, {mean, std, normalize}) */
static int l_dataset_idx(lua_State *L)
{
    const char *images = check_path(L, 1);
    const char *labels = check_path(L, 2);
    lua_Integer limit = luaL_optinteger(L, 3, 0);
    ln_norm norm;
    ln_error err;
    dataset_ud *u = begin_load(L, 4, &norm);
    ln_status st = ln_dataset_load_idx_norm(images, labels, limit, &norm, &u->ds, &err);
    return push_loaded(L, u, st, &err, &norm);
}

/* core.dataset_csv(path, {label_column, shape = {C, H, W}, header, n, mean, std, normalize}) */
static int l_dataset_csv(lua_State *L)
{
    const char *path = check_path(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int label_column = (int)field_int(L, 2, "label_column", 1, 1, 1 << 24);
    int shape[3] = {1, 28, 28};
    lua_getfield(L, 2, "shape");
    if (lua_istable(L, -1)) {
        if (luaL_len(L, -1) != 3) luaL_error(L, "option 'shape': {C, H, W} expected");
        for (int i = 0; i < 3; i++) {
            lua_geti(L, -1, i + 1);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok || v < 1 || v > (1 << 24)) luaL_error(L, "option 'shape': {C, H, W} of positive integers expected");
            shape[i] = (int)v;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    int header = field_bool(L, 2, "header", 1);
    lua_Integer limit = field_int(L, 2, "n", 0, 0, (lua_Integer)1 << 40);
    ln_norm norm;
    ln_error err;
    dataset_ud *u = begin_load(L, 2, &norm);
    ln_status st = ln_dataset_load_csv(path, label_column, shape[0], shape[1], shape[2], header,
                                       limit, &norm, &u->ds, &err);
    return push_loaded(L, u, st, &err, &norm);
}

/* core.dataset_cifar({paths...}, limit, {mean, std, normalize}) */
static int l_dataset_cifar(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (n < 1 || n > 64) return luaL_argerror(L, 1, "1 to 64 file names expected");
    const char *paths[64];
    luaL_checkstack(L, (int)n + 8, "cifar10: file names");
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1); /* kept on the stack: the table may change meanwhile */
        size_t len;
        paths[i] = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (!paths[i] || strlen(paths[i]) != len)
            return luaL_argerror(L, 1, "file names must be strings without NUL bytes");
    }
    lua_Integer limit = luaL_optinteger(L, 2, 0);
    ln_norm norm;
    ln_error err;
    dataset_ud *u = begin_load(L, 3, &norm);
    ln_status st = ln_dataset_load_cifar(paths, (int)n, limit, &norm, &u->ds, &err);
    return push_loaded(L, u, st, &err, &norm);
}

/* core.dataset_from(images_tensor N x C x H x W (or N x H x W), labels list) */
static int l_dataset_from(lua_State *L)
{
    lua_settop(L, 2);
    ln_shape s = check_tensor(L, 1)->shape;
    if (s.ndim != 3 && s.ndim != 4)
        return luaL_argerror(L, 1, "images must be N x H x W or N x C x H x W");
    int64_t n = s.dim[0];
    int c = s.ndim == 4 ? (int)s.dim[1] : 1;
    int h = (int)s.dim[s.ndim - 2], w = (int)s.dim[s.ndim - 1];
    int32_t *labels = NULL;
    if (!lua_isnoneornil(L, 2)) {
        luaL_argexpected(L, lua_istable(L, 2), 2, "table (labels)");
        if (luaL_len(L, 2) != n)
            return luaL_argerror(L, 2, lua_pushfstring(L, "needs %I labels (one per image), got %I",
                                                       (lua_Integer)n, luaL_len(L, 2)));
        labels = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)n, 0); /* freed by the GC */
        for (int64_t i = 0; i < n; i++) {
            lua_geti(L, 2, i + 1);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok || v < 0 || v > 65535)
                return luaL_argerror(L, 2, lua_pushfstring(L, "labels[%I] must be an integer in [0, 65535]",
                                                           (lua_Integer)i + 1));
            labels[i] = (int32_t)v;
            lua_pop(L, 1);
        }
    }
    dataset_ud *u = new_dataset_ud(L);
    ln_tensor *t = check_tensor(L, 1); /* after the labels' metamethods and the allocations */
    ln_error err;
    if (ln_dataset_from_arrays(t->data, labels, n, c, h, w, &u->ds, &err))
        return luaL_error(L, "%s", err.msg);
    u->h.live = 1;
    return 1;
}

static int dataset_size(lua_State *L)
{
    lua_pushinteger(L, check_dataset(L, 1)->count);
    return 1;
}

static int dataset_shape(lua_State *L)
{
    ln_dataset *d = check_dataset(L, 1);
    const lua_Integer dims[3] = {d->channels, d->height, d->width}; /* read before allocating */
    lua_createtable(L, 3, 0);
    for (int i = 0; i < 3; i++) {
        lua_pushinteger(L, dims[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int dataset_classes(lua_State *L)
{
    lua_pushinteger(L, check_dataset(L, 1)->classes);
    return 1;
}

/* ds:image(i) -> C x H x W tensor (a copy) */
static int dataset_image(lua_State *L)
{
    ln_dataset *d = check_dataset(L, 1);
    lua_Integer i = check_range(L, 2, "index", 1, d->count);
    int64_t dims[3] = {d->channels, d->height, d->width};
    tensor_ud *u = new_tensor_ud(L);
    d = check_dataset(L, 1); /* again after the allocation */
    ln_dataset_read(d, i - 1, 1, alloc_tensor(L, u, ln_shape_make(3, dims))->data);
    return 1;
}

/* ds:memory() -> bytes held, "bytes" | "float32" (how the samples are stored) */
static int dataset_memory(lua_State *L)
{
    ln_dataset *d = check_dataset(L, 1);
    lua_pushinteger(L, (lua_Integer)ln_dataset_bytes(d));
    lua_pushstring(L, d->pixels ? "bytes" : "float32");
    return 2;
}

static int dataset_label(lua_State *L)
{
    ln_dataset *d = check_dataset(L, 1);
    lua_Integer i = check_range(L, 2, "index", 1, d->count);
    lua_pushinteger(L, d->labels[i - 1]);
    return 1;
}

/* ds:class_counts() -> {count of class 0, count of class 1, ...} (list, 1-based) */
static int dataset_class_counts(lua_State *L)
{
    const int classes = check_dataset(L, 1)->classes;
    int64_t *counts = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)classes, 0);
    lua_createtable(L, classes, 0);
    ln_dataset_class_counts(check_dataset(L, 1), counts, classes); /* after the allocations */
    for (int c = 0; c < classes; c++) {
        lua_pushinteger(L, counts[c]);
        lua_rawseti(L, -2, c + 1);
    }
    return 1;
}

/* ds:_subset(n, random, stratified, seed) -> dataset */
static int dataset_subset(lua_State *L)
{
    lua_Integer n = check_range(L, 2, "n", 1, check_dataset(L, 1)->count);
    int random = lua_toboolean(L, 3), stratified = lua_toboolean(L, 4);
    lua_Integer seed = luaL_optinteger(L, 5, 1);
    ln_rng rng;
    ln_rng_seed(&rng, (uint64_t)seed, LN_STREAM_SUBSET);
    dataset_ud *u = new_dataset_ud(L);
    ln_dataset *d = check_dataset(L, 1); /* after the allocation */
    ln_error err;
    if (ln_dataset_subset(d, n, random, stratified, &rng, &u->ds, &err))
        return luaL_error(L, "subset: %s", err.msg);
    u->h.live = 1;
    return 1;
}

/* ds:checksum() -> CRC-32 of the images (as float32, whatever the storage) and labels:
 * identifies the data in result caches, so a cache is never reused for different
 * samples. Every experiment asks for it (a sweep planned in one process, many times). */
static int dataset_checksum(lua_State *L)
{
    ln_dataset *d = check_dataset(L, 1);
    dataset_ud *u = lua_touserdata(L, 1);
    if (u->has_checksum) {
        lua_pushinteger(L, u->checksum);
        return 1;
    }
    size_t per = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
    uLong crc = crc32(0L, Z_NULL, 0);
    /* one sample at a time through a scratch buffer that Lua owns (freed on error) */
    float *sample = lua_newuserdatauv(L, per * sizeof(float), 0);
    d = check_dataset(L, 1); /* after the allocation */
    for (int64_t i = 0; i < d->count; i++) {
        ln_dataset_read(d, i, 1, sample);
        crc = crc32(crc, (const unsigned char *)sample, (uInt)(per * sizeof(float)));
    }
    lua_pop(L, 1);
    crc = crc32(crc, (const unsigned char *)d->labels, (uInt)((size_t)d->count * sizeof(int32_t)));
    u->checksum = (lua_Integer)crc;
    u->has_checksum = 1;
    lua_pushinteger(L, u->checksum);
    return 1;
}

/* obj:_info() / obj:_info(table): the Lua-side description of a dataset or net
 * (split, source ...), kept in the userdata's first user value. */
static int info_slot(lua_State *L, const char *mt)
{
    luaL_checkudata(L, 1, mt);
    if (lua_gettop(L) >= 2) {
        lua_settop(L, 2);
        lua_setiuservalue(L, 1, 1);
        return 0;
    }
    lua_getiuservalue(L, 1, 1);
    return 1;
}

static int dataset_info(lua_State *L) { return info_slot(L, DATASET_MT); }

static const luaL_Reg dataset_methods[] = {
    {"size", dataset_size},       {"shape", dataset_shape},
    {"classes", dataset_classes}, {"image", dataset_image},
    {"label", dataset_label},     {"class_counts", dataset_class_counts},
    {"_subset", dataset_subset},  {"_info", dataset_info},
    {"checksum", dataset_checksum}, {"memory", dataset_memory},
    {"free", dataset_free},       {NULL, NULL},
};

/* ---------------------------------------------------------------------- Net */

typedef struct {
    obj_head h;
    ln_net *net;
    int forward_batch; /* batch of the last net:forward, 0 if none since (backward needs it) */
    ln_train_state train; /* kept between net:train calls (optimizer, streams, counters) */
} net_ud;

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

static const char *const layer_kind_names[] = {
    "conv2d", "maxpool2d", "avgpool2d", "relu", "tanh", "sigmoid", "linear", "dropout",
    "dropout2d", "flatten", "log_softmax", "batchnorm2d", "batchnorm1d", NULL,
};

/* A layer spec from a Lua table {kind = "conv2d", in_channels = 1, ...}; the Lua side
 * has already checked the keys, this checks the values. */
static ln_layer_spec read_layer_spec(lua_State *L, int t, int index)
{
    ln_layer_spec s;
    memset(&s, 0, sizeof s);
    lua_getfield(L, t, "kind");
    int kind = -1;
    if (lua_type(L, -1) == LUA_TSTRING)
        for (int k = 0; layer_kind_names[k]; k++)
            if (!strcmp(layer_kind_names[k], lua_tostring(L, -1))) kind = k;
    if (kind < 0) luaL_error(L, "layer %d: unknown kind '%s'", index, luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    s.kind = (ln_layer_kind)kind;
    const lua_Integer big = 1 << 24;
    s.in_channels = (int)field_int(L, t, "in_channels", 0, 0, big);
    if (s.kind == LN_BATCHNORM2D || s.kind == LN_BATCHNORM1D)
        s.in_channels = (int)field_int(L, t, "features", s.in_channels, 0, big);
    s.out_channels = (int)field_int(L, t, "out_channels", 0, 0, big);
    s.in_features = (int)field_int(L, t, "in_features", 0, 0, big);
    s.out_features = (int)field_int(L, t, "out_features", 0, 0, big);
    s.kernel = (int)field_int(L, t, "kernel", 0, 0, 4096);
    s.stride = (int)field_int(L, t, "stride", (s.kind == LN_CONV2D) ? 1 : s.kernel, 0, 4096);
    if (s.stride == 0) s.stride = s.kernel;
    s.padding = (int)field_int(L, t, "padding", 0, 0, 4096);
    s.bias = field_bool(L, t, "bias", 1);
    s.p = (float)field_num(L, t, "p", 0.5);
    s.eps = (float)field_num(L, t, "eps", 1e-5);
    s.momentum = (float)field_num(L, t, "momentum", 0.1);
    return s;
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
#define INT_FIELD(f)                                                                              \
    do {                                                                                          \
        lua_pushinteger(L, s->f);                                                                 \
        lua_setfield(L, -2, #f);                                                                  \
    } while (0)
    switch (s->kind) {
    case LN_CONV2D:
        INT_FIELD(in_channels);
        INT_FIELD(out_channels);
        INT_FIELD(kernel);
        INT_FIELD(stride);
        INT_FIELD(padding);
        lua_pushboolean(L, s->bias);
        lua_setfield(L, -2, "bias");
        break;
    case LN_MAXPOOL2D:
    case LN_AVGPOOL2D:
        INT_FIELD(kernel);
        INT_FIELD(stride);
        break;
    case LN_LINEAR:
        INT_FIELD(in_features);
        INT_FIELD(out_features);
        lua_pushboolean(L, s->bias);
        lua_setfield(L, -2, "bias");
        break;
    case LN_DROPOUT:
    case LN_DROPOUT2D:
        lua_pushnumber(L, s->p);
        lua_setfield(L, -2, "p");
        break;
    case LN_BATCHNORM2D:
    case LN_BATCHNORM1D:
        lua_pushinteger(L, s->in_channels);
        lua_setfield(L, -2, "features");
        lua_pushnumber(L, s->eps);
        lua_setfield(L, -2, "eps");
        lua_pushnumber(L, s->momentum);
        lua_setfield(L, -2, "momentum");
        break;
    default:
        break;
    }
#undef INT_FIELD
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
    ln_shape os = ln_net_output_shape(net);
    int64_t dims[LN_MAX_DIMS] = {batch};
    for (int i = 0; i < os.ndim && i + 1 < LN_MAX_DIMS; i++) dims[i + 1] = os.dim[i];
    int nd = os.ndim + 1 > LN_MAX_DIMS ? LN_MAX_DIMS : os.ndim + 1;
    tensor_ud *y = new_tensor_ud(L);
    net_ud *u = check_net_mutable(L, 1); /* the pointers after the allocation */
    ln_tensor *x = check_tensor(L, 2);
    const float *out;
    ln_error err;
    u->forward_batch = 0;
    if (ln_net_forward(u->net, x->data, batch, training, &rng, &out, &err))
        return luaL_error(L, "forward: %s", err.msg);
    u->forward_batch = batch;
    memcpy(alloc_tensor(L, y, ln_shape_make(nd, dims))->data, out, sizeof(float) * (size_t)(batch * ln_shape_numel(os)));
    return 1;
}

/* net:backward(dout) -> dx (same shape as the forward's input batch); the parameter
 * gradients can then be read with net:get(i, "weight_grad") */
static int net_backward(lua_State *L)
{
    lua_settop(L, 2);
    net_ud *u = check_net_mutable(L, 1);
    ln_net *net = u->net;
    ln_tensor *dout = check_tensor(L, 2);
    ln_shape in = ln_net_input_shape(net);
    int64_t per_out = ln_shape_numel(ln_net_output_shape(net));
    int64_t n = ln_shape_numel(dout->shape);
    if (n % per_out != 0) return luaL_argerror(L, 2, "output gradient does not fit the output shape");
    int batch = (int)(n / per_out);
    /* The engine goes back through the activations of the last forward pass, so dout
     * must hold exactly that many samples (more would be ignored, fewer read past it). */
    int forward_batch = u->forward_batch;
    if (forward_batch == 0) return luaL_error(L, "backward: call net:forward first");
    if (batch != forward_batch)
        return luaL_argerror(L, 2, lua_pushfstring(L, "output gradient holds %d samples, the last "
                                                      "forward pass had %d", batch, forward_batch));
    int64_t dims[LN_MAX_DIMS] = {batch};
    for (int i = 0; i < in.ndim && i + 1 < LN_MAX_DIMS; i++) dims[i + 1] = in.dim[i];
    tensor_ud *dxu = new_tensor_ud(L);
    net = check_net_mutable(L, 1)->net; /* the pointers after the allocation */
    dout = check_tensor(L, 2);
    ln_tensor *dx = alloc_tensor(L, dxu, ln_shape_make(in.ndim + 1 > LN_MAX_DIMS ? LN_MAX_DIMS : in.ndim + 1, dims));
    ln_error err;
    if (ln_net_backward(net, dout->data, dx->data, &err)) return luaL_error(L, "backward: %s", err.msg);
    return 1;
}

static const char *const loss_names[] = {"nll", "cross_entropy", "mse", NULL};
static const char *const optim_names[] = {"sgd", "adam", "adamw", NULL};

/* An optimizer spec from {kind = "sgd", lr = ..., ...} (keys checked by the Lua side). */
static ln_optim_spec read_optim_spec(lua_State *L, int t)
{
    lua_getfield(L, t, "kind");
    int kind = -1;
    if (lua_type(L, -1) == LUA_TSTRING)
        for (int k = 0; optim_names[k]; k++)
            if (!strcmp(optim_names[k], lua_tostring(L, -1))) kind = k;
    if (kind < 0) luaL_error(L, "optimizer: unknown kind (valid: sgd, adam, adamw)");
    lua_pop(L, 1);
    ln_optim_spec s = kind == LN_OPT_SGD ? ln_sgd_spec(0.01, 0.0) : ln_adam_spec((ln_optim_kind)kind, 1e-3);
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

static void read_train_config(lua_State *L, int t, ln_train_config *cfg)
{
    ln_train_config_defaults(cfg);
    const char *loss = field_str(L, t, "loss", "nll");
    int k = -1;
    for (int i = 0; loss_names[i]; i++)
        if (!strcmp(loss, loss_names[i])) k = i;
    if (k < 0) luaL_error(L, "option 'loss': unknown loss '%s' (valid: nll, cross_entropy, mse)", loss);
    cfg->loss = (ln_loss_kind)k;
    lua_getfield(L, t, "optimizer");
    if (!lua_istable(L, -1)) luaL_error(L, "option 'optimizer': table expected");
    cfg->optim = read_optim_spec(L, lua_gettop(L));
    lua_pop(L, 1);
    cfg->batch = (int)field_int(L, t, "batch", 64, 1, 1 << 20);
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

static void push_history(lua_State *L, const ln_history *h, int with_steps)
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

/* Progress callbacks (net:train, lunet.core.runs). The engine calls them between steps
 * on the calling thread. Nothing here may raise -- an error must not unwind through
 * the engine's frames (and, in runs, past running worker threads) -- so the Lua
 * function runs under lua_pcall with a traceback handler; a failure is kept in a
 * stack slot, the work stops, and the entry point raises it again once the engine has
 * returned. A callback cannot yield (the engine's C frames are in the way): that is
 * an error too, said so. Returning true (exactly) asks to stop. */
typedef struct {
    lua_State *L;
    int fn;            /* stack index of the Lua function */
    int err_slot;      /* stack index that receives the error value */
    int failed;        /* the callback raised (or there was no stack for it): stop */
    const char *caller;
} lua_progress;

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

static int call_progress(lua_progress *lp, int nfields, const char *const *keys, const double *vals)
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
static int raise_progress_error(lua_State *L, const lua_progress *lp)
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
    u->forward_batch = 0; /* training overwrites the activations */
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
    int loss = luaL_checkoption(L, 3, "nll", loss_names);
    int batch = lua_isnoneornil(L, 4) ? 1000 : (int)check_range(L, 4, "batch", 1, 1 << 20);
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
    u->forward_batch = 0; /* evaluation overwrites the activations */
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
        const int threads = (int)check_range(L, 2, "threads", 1, 256);
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

static int net_info(lua_State *L) { return info_slot(L, NET_MT); }

static const luaL_Reg net_methods[] = {
    {"layer_count", net_layer_count},   {"layer", net_layer},
    {"input_shape", net_input_shape},   {"output_shape", net_output_shape},
    {"param_count", net_param_count},   {"flops", net_flops},
    {"get", net_get},                   {"set", net_set},
    {"_params", net_params},            {"_set_params", net_set_params},
    {"_grads", net_grads},
    {"forward", net_forward},           {"backward", net_backward},
    {"_train", net_train},              {"_evaluate", net_evaluate},
    {"clone", net_clone},               {"init", net_init},
    {"use_reference_kernels", net_use_reference}, {"_threads", net_threads},
    {"save", net_save},                 {"_info", net_info},
    {"free", net_free},                 {NULL, NULL},
};

/* ------------------------------------------------------------------- losses */

/* core.loss(kind, pred, labels | nil, targets | nil) -> loss, grad tensor */
static int l_loss(lua_State *L)
{
    lua_settop(L, 4); /* scratch pushed below must not be mistaken for arguments */
    int kind = luaL_checkoption(L, 1, NULL, loss_names);
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

/* --------------------------------------------------------------- Optimizer */

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

/* -------------------------------------------------------------------- runs */

/* What lunet.core.runs passes its callbacks: the progress callback (first, so that
 * runs_progress can take it as a lua_progress) and the on_run and claim hooks. */
typedef struct {
    lua_progress progress;
    int on_run, claim;        /* stack indices of the hooks (0: none) */
    int keep_steps;
    const int64_t *test_at;
    int test_at_count;
    int run;                  /* the run being handed over or claimed (0-based) */
    ln_run_result *result;
    int claimed;              /* the claim function's answer */
    char error[512];          /* the first error of on_run or claim, "" if none */
} runs_progress_ctx;

/* Progress of lunet.core.runs; a stop (true, or an error) reaches the workers through
 * the flag they already watch for Ctrl-C, so ln_runs returns once they are joined. */
static int runs_progress(void *user, const ln_runs_progress *p)
{
    lua_progress *lp = user;
    static const char *const keys[] = {"runs_done", "runs_total", "iterations_done",
                                       "iterations_total", "samples", "seconds", "loss"};
    double vals[] = {p->runs_done, p->runs_total, (double)p->iterations_done,
                     (double)p->iterations_total, (double)p->samples, p->seconds, p->last_loss};
    if (call_progress(lp, 7, keys, vals)) atomic_store_explicit(&interrupt_flag, 1, memory_order_relaxed);
    return 0;
}

/* Results live in a userdata so an error (or Ctrl-C in Lua code) never leaks them. */
typedef struct {
    ln_run_result *r;
    int n;
} results_ud;

static void results_release(results_ud *u)
{
    if (u->r) {
        for (int i = 0; i < u->n; i++) ln_run_result_release(&u->r[i]);
        ln_dealloc(u->r);
    }
    u->r = NULL;
}

static int results_gc(lua_State *L)
{
    results_release(lua_touserdata(L, 1));
    return 0;
}

/* Pushes the table of one finished (or stopped) run. */
static void push_run(lua_State *L, const runs_progress_ctx *c, const ln_run_result *r)
{
    push_history(L, &r->hist, c->keep_steps);
    lua_pushinteger(L, (lua_Integer)r->seed);
    lua_setfield(L, -2, "seed");
    lua_pushboolean(L, r->done);
    lua_setfield(L, -2, "done");
    if (!isnan(r->test_loss)) {
        lua_pushnumber(L, r->test_loss);
        lua_setfield(L, -2, "test_loss");
        lua_pushnumber(L, r->test_accuracy);
        lua_setfield(L, -2, "test_accuracy");
    }
    if (r->test_loss_at) {
        lua_createtable(L, 0, c->test_at_count);
        for (int k = 0; k < c->test_at_count; k++) {
            if (isnan(r->test_loss_at[k])) continue;
            lua_createtable(L, 0, 2);
            lua_pushnumber(L, r->test_loss_at[k]);
            lua_setfield(L, -2, "loss");
            lua_pushnumber(L, r->test_accuracy_at[k]);
            lua_setfield(L, -2, "accuracy");
            lua_seti(L, -2, c->test_at[k]);
        }
        lua_setfield(L, -2, "tests");
    }
}

/* on_run(index, run) and claim(index), called in protected mode: an error in Lua (or
 * out of memory while building the run's table) must not jump out of ln_runs while its
 * threads run. Arguments: the context (a light userdata) and the Lua function. */
static int runs_hook_protected(lua_State *L)
{
    runs_progress_ctx *c = lua_touserdata(L, 1);
    lua_pushvalue(L, 2); /* on_run or claim */
    if (c->result) {
        lua_pushinteger(L, c->run + 1);
        push_run(L, c, c->result);
        lua_call(L, 2, 0);
    } else {
        lua_pushinteger(L, c->run + 1);
        lua_call(L, 1, 1);
        c->claimed = lua_toboolean(L, -1);
    }
    return 0;
}

static int runs_hook(runs_progress_ctx *c, int run, ln_run_result *result)
{
    lua_State *L = c->progress.L;
    if (!lua_checkstack(L, 5)) { /* (returns 0 instead of raising) */
        if (!c->error[0]) snprintf(c->error, sizeof c->error, "no Lua stack left for a runs callback");
        return LUA_ERRMEM;
    }
    c->run = run;
    c->result = result;
    lua_pushcfunction(L, runs_hook_protected);
    lua_pushlightuserdata(L, c);
    lua_pushvalue(L, result ? c->on_run : c->claim);
    int st = lua_pcall(L, 2, 0, 0);
    if (st != LUA_OK) {
        if (!c->error[0])
            snprintf(c->error, sizeof c->error, "%s",
                     lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error in a runs callback");
        lua_pop(L, 1);
    }
    return st;
}

static int runs_on_run(void *user, int run, ln_run_result *res)
{
    runs_progress_ctx *c = user;
    int st = runs_hook(c, run, res);
    ln_run_result_release(res); /* its table was handed over: the history is Lua's now */
    return st != LUA_OK;
}

static int runs_claim(void *user, int run)
{
    runs_progress_ctx *c = user;
    c->claimed = 0;
    if (runs_hook(c, run, NULL) != LUA_OK) return -1;
    return c->claimed ? 1 : 0;
}

/* core.runs{net=, data=, test=, train={...}, runs=, threads=, threads_per_run=,
 *           only={bool...}, progress=fn, on_run=fn, claim=fn} -> list of run tables,
 *           interrupted flag
 * progress(p) returning true stops the runs (interrupted = true, finished runs
 * returned); an error in it stops them and, once the workers are joined, is raised
 * again (with its traceback) instead of returning.
 * on_run(index, run) receives each finished run as soon as it finished (its entry in
 * the list is then false); claim(index) -> true to compute run `index` (1-based). */
static int l_runs(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    /* pinned for the whole call: worker threads read them until they are joined, and
     * no one may change the net they copy (exclusive) */
    int guard = pin_open(L, 1);
    net_ud *nu = pin_field(L, guard, 1, "net", &NET_CLASS, "lunet.core.runs", &PIN_EXCLUSIVE);
    dataset_ud *du = pin_field(L, guard, 1, "data", &DATASET_CLASS, "lunet.core.runs", &PIN_READ);
    lua_getfield(L, 1, "test");
    dataset_ud *tu = lua_isnil(L, -1) ? NULL : pin_field(L, guard, 1, "test", &DATASET_CLASS, "lunet.core.runs", &PIN_READ);
    lua_getfield(L, 1, "train");
    luaL_checktype(L, -1, LUA_TTABLE);
    ln_runs_config cfg;
    memset(&cfg, 0, sizeof cfg);
    const int train_at = lua_gettop(L);
    read_train_config(L, train_at, &cfg.train);
    lua_getfield(L, train_at, "validate"); /* every run validates on it: pinned like test */
    if (!lua_isnil(L, -1))
        cfg.train.validate =
            ((dataset_ud *)pin_field(L, guard, train_at, "validate", &DATASET_CLASS, "lunet.core.runs", &PIN_READ))->ds;
    cfg.template_net = nu->net;
    cfg.data = du->ds;
    cfg.test = tu ? tu->ds : NULL;
    cfg.runs = (int)field_int(L, 1, "runs", 1, 1, 1000000);
    cfg.threads = (int)field_int(L, 1, "threads", 0, 0, 256);
    cfg.threads_per_run = (int)field_int(L, 1, "threads_per_run", 1, 1, 256);
    /* every step's loss only on request: 20 runs x 100 epochs are 94000 numbers */
    const int keep_steps = field_bool(L, 1, "keep_steps", 0);
    int64_t *test_at = NULL;
    lua_getfield(L, 1, "test_at");
    if (lua_istable(L, -1)) {
        lua_Integer n = luaL_len(L, -1);
        if (n < 0 || n > 100000) return luaL_error(L, "option 'test_at': at most 100000 iterations");
        test_at = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(n > 0 ? n : 1), 0);
        for (lua_Integer i = 0; i < n; i++) {
            lua_geti(L, -2, i + 1);
            int ok;
            test_at[i] = lua_tointegerx(L, -1, &ok);
            if (!ok || test_at[i] < 1) return luaL_error(L, "option 'test_at': positive integers expected");
            lua_pop(L, 1);
        }
        cfg.test_at = test_at;
        cfg.test_at_count = (int)n;
    }
    int *only = NULL;
    lua_getfield(L, 1, "only");
    if (lua_istable(L, -1)) {
        only = lua_newuserdatauv(L, sizeof(int) * (size_t)cfg.runs, 0);
        for (int i = 0; i < cfg.runs; i++) {
            lua_geti(L, -2, i + 1);
            only[i] = lua_toboolean(L, -1);
            lua_pop(L, 1);
        }
        cfg.only = only;
    }
    runs_progress_ctx pc;
    memset(&pc, 0, sizeof pc);
    pc.keep_steps = keep_steps;
    pc.test_at = test_at;
    pc.test_at_count = cfg.test_at_count;
    cfg.user = &pc;
    lua_getfield(L, 1, "on_run");
    if (lua_isfunction(L, -1)) {
        pc.on_run = lua_gettop(L);
        cfg.on_run = runs_on_run;
    }
    lua_getfield(L, 1, "claim");
    if (lua_isfunction(L, -1)) {
        pc.claim = lua_gettop(L);
        cfg.claim = runs_claim;
    }
    lua_getfield(L, 1, "progress");
    lua_pushnil(L); /* the callback's error, if any */
    pc.progress = (lua_progress){L, lua_gettop(L) - 1, lua_gettop(L), 0, "lunet.core.runs"};
    if (lua_isfunction(L, -2)) cfg.on_progress = runs_progress;
    results_ud *ru = lua_newuserdatauv(L, sizeof *ru, 0);
    ru->r = NULL;
    ru->n = 0;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, results_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    ru->r = ln_alloc_zeroed((size_t)cfg.runs, sizeof *ru->r);
    if (!ru->r) return luaL_error(L, "runs: out of memory");
    ru->n = cfg.runs;
    cfg.train.stop = &interrupt_flag;
    ln_error err;
    sigint_guard g;
    sigint_catch(&g);
    ln_status st = ln_runs(&cfg, ru->r, &err);
    sigint_restore(&g);
    if (pc.error[0]) { /* an error in on_run or claim: it is the cause */
        results_release(ru);
        return luaL_error(L, "runs: %s", pc.error);
    }
    if (pc.progress.failed) { /* the workers are joined: raise it now */
        results_release(ru);
        return raise_progress_error(L, &pc.progress);
    }
    if (st) {
        results_release(ru);
        return luaL_error(L, "runs: %s", err.msg);
    }
    lua_createtable(L, cfg.runs, 0);
    for (int i = 0; i < cfg.runs; i++) {
        ln_run_result *r = &ru->r[i];
        if ((only && !only[i]) || (cfg.on_run && r->done) || (cfg.claim && !r->hist.loss && !r->done))
            lua_pushboolean(L, 0); /* not asked for, handed over, or not claimed */
        else
            push_run(L, &pc, r);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushboolean(L, interrupt_flag);
    results_release(ru);
    return 2;
}

/* -------------------------------------------------------------------- misc */

/* core.idx_read(path) -> {type=, dims={...}, count=} | nil, msg */
static int l_idx_read(lua_State *L)
{
    const char *path = check_path(L, 1);
    ln_idx idx;
    ln_error err;
    if (ln_idx_read(path, &idx, &err)) return push_fail(L, &err);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, idx.type);
    lua_setfield(L, -2, "type");
    lua_createtable(L, idx.ndim, 0);
    for (int i = 0; i < idx.ndim; i++) {
        lua_pushinteger(L, idx.dim[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "dims");
    lua_pushinteger(L, (lua_Integer)idx.count);
    lua_setfield(L, -2, "count");
    if (idx.type == 0x08 && idx.count <= 4096) { /* small files: the bytes too, for tests */
        lua_createtable(L, (int)idx.count, 0);
        for (size_t i = 0; i < idx.count; i++) {
            lua_pushinteger(L, idx.data[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "data");
    }
    ln_idx_release(&idx);
    return 1;
}

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

static void register_class(lua_State *L, const char *name, const luaL_Reg *methods,
                           lua_CFunction gc, lua_CFunction tostring, lua_CFunction index)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "methods");
    if (index) lua_pushcclosure(L, index, 1); /* upvalue: the methods table */
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
    if (tostring) {
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
}

static const luaL_Reg functions[] = {
    {"tensor", l_tensor},
    {"dataset_from", l_dataset_from},
    {"dataset_idx", l_dataset_idx},
    {"dataset_csv", l_dataset_csv},
    {"dataset_cifar", l_dataset_cifar},
    {"net", l_net},
    {"load", l_load},
    {"loss", l_loss},
    {"optimizer", l_optimizer},
    {"runs", l_runs},
    {"schedule_lr", l_schedule_lr},
    {"idx_read", l_idx_read},
    {"isatty", l_isatty},
    {"cpu_count", l_cpu_count},
    {"isa", l_isa},
    {"alloc_fail_after", l_alloc_fail_after},
    {"interrupt_signal", l_interrupt_signal},
    {NULL, NULL},
};

int lunet_open_sys(lua_State *L); /* bindings/sys.c: the run store's system calls */

int luaopen_lunet_core(lua_State *L)
{
    luaL_newlib(L, functions);
    lunet_open_sys(L);
    luaL_newmetatable(L, PIN_MT); /* reachable from C only (and __metatable hides it) */
    lua_pushcfunction(L, pin_guard_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, pin_guard_close);
    lua_setfield(L, -2, "__gc");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    register_class(L, TENSOR_MT, tensor_methods, tensor_free, tensor_tostring, tensor_index);
    lua_pushcfunction(L, tensor_len);
    lua_setfield(L, -2, "__len");
    lua_setfield(L, -2, "Tensor");
    register_class(L, DATASET_MT, dataset_methods, dataset_free, NULL, NULL);
    lua_pushcfunction(L, dataset_size);
    lua_setfield(L, -2, "__len");
    lua_setfield(L, -2, "Dataset");
    register_class(L, NET_MT, net_methods, net_free, NULL, NULL);
    lua_setfield(L, -2, "Net");
    register_class(L, OPTIM_MT, optim_methods, optim_free, optim_tostring, NULL);
    lua_setfield(L, -2, "Optimizer");
    lua_pushstring(L, LUNET_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, LUNET_ENGINE_REVISION);
    lua_setfield(L, -2, "engine_revision");
    return 1;
}
