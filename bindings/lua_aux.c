/* lua_aux.c - the shared helper of the binding (LuaSocket's auxiliar.c): option and
 * argument checks, shapes, failures, Ctrl-C, class registration and the memory-safety
 * rules of every object (lua_aux.h says them). The class files (lua_tensor.c,
 * lua_dataset.c, lua_net.c, lua_optim.c, lua_runs.c) build on it.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <string.h>

#include "lua_aux.h"

/* ------------------------------------------------------------------ helpers */

int push_fail(lua_State *L, const ln_error *err)
{
    luaL_pushfail(L);
    lua_pushstring(L, err->msg);
    return 2;
}

/* An integer argument in [lo, hi], with an error naming it otherwise. */
lua_Integer check_range(lua_State *L, int arg, const char *name, lua_Integer lo,
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

/* Pushes t[key] and returns 1, or pushes nothing and returns 0 when it is nil. */
static int field_get(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    return 0;
}

/* Raises "option 'key': <what> expected, got <type of the value on top>". */
static void field_type_error(lua_State *L, const char *key, const char *what)
{
    luaL_error(L, "option '%s': %s expected, got %s", key, what, luaL_typename(L, -1));
}

/* Reads t[key] as an integer (default if nil), raising an error naming the field. */
lua_Integer field_int(lua_State *L, int t, const char *key, lua_Integer def, lua_Integer lo,
                             lua_Integer hi)
{
    if (!field_get(L, t, key)) return def;
    int ok;
    const lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok) field_type_error(L, key, "integer");
    if (v < lo || v > hi) luaL_error(L, "option '%s' must be in [%I, %I] (got %I)", key, lo, hi, v);
    lua_pop(L, 1);
    return v;
}

double field_num(lua_State *L, int t, const char *key, double def)
{
    if (!field_get(L, t, key)) return def;
    int ok;
    const double v = lua_tonumberx(L, -1, &ok);
    if (!ok) field_type_error(L, key, "number");
    if (isnan(v)) luaL_error(L, "option '%s' must not be NaN", key);
    lua_pop(L, 1);
    return v;
}

int field_bool(lua_State *L, int t, const char *key, int def)
{
    if (!field_get(L, t, key)) return def;
    if (!lua_isboolean(L, -1)) field_type_error(L, key, "boolean");
    const int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* A string option; the string stays on the stack (pushed above everything), since the
 * table need not hold it (an __index metamethod may have made it). */
const char *field_str(lua_State *L, int t, const char *key, const char *def)
{
    luaL_checkstack(L, 2, "option tables");
    if (!field_get(L, t, key)) return def;
    if (lua_type(L, -1) != LUA_TSTRING) field_type_error(L, key, "string");
    return lua_tostring(L, -1);
}

void push_shape(lua_State *L, ln_shape s)
{
    lua_createtable(L, s.ndim, 0);
    for (int i = 0; i < s.ndim; i++) {
        lua_pushinteger(L, s.dim[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* A shape from a Lua list of positive integers. */
ln_shape check_shape(lua_State *L, int arg, const char *name)
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
atomic_int interrupt_flag; /* lock-free (core/train.c checks), so signal-safe */
static volatile sig_atomic_t interrupt_signal;
static const int caught_signals[N_CAUGHT] = {SIGINT, SIGTERM, SIGHUP};

static void on_sigint(int sig)
{
    if (!interrupt_signal) interrupt_signal = sig; /* the first one says why */
    atomic_store_explicit(&interrupt_flag, 1, memory_order_relaxed); /* read by the worker threads */
}

void sigint_catch(sigint_guard *g)
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

void sigint_restore(sigint_guard *g)
{
    for (int i = 0; i < N_CAUGHT; i++) {
        if (g->installed[i]) sigaction(caught_signals[i], &g->old[i], NULL);
        g->installed[i] = 0;
    }
}

/* core.interrupt_signal() -> the signal that stopped the last training call, or 0 */
int l_interrupt_signal(lua_State *L)
{
    lua_pushinteger(L, interrupt_signal);
    return 1;
}
/* ------------------------------------------- object safety (the rules: lua_aux.h) */

const pin_kind PIN_READ = {0, USES(USE_FREE)};
const pin_kind PIN_TRAINING = {USES(USE_TRAIN) | USES(USE_CHANGE), USES(USE_FREE) | USES(USE_TRAIN)};
const pin_kind PIN_EXCLUSIVE = {USES(USE_CHANGE),
                                       USES(USE_FREE) | USES(USE_TRAIN) | USES(USE_CHANGE)};

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
void *check_obj(lua_State *L, int arg, const obj_class *c)
{
    obj_head *h = luaL_checkudata(L, arg, c->mt);
    if (!h->live) luaL_argerror(L, arg, lua_pushfstring(L, "%s has been freed", c->noun));
    return h;
}

/* check_obj for a call `op` (NULL: unnamed) that makes `uses` of the object. */
void *check_use(lua_State *L, int arg, const obj_class *c, unsigned uses, const char *op)
{
    obj_head *h = check_obj(L, arg, c);
    refuse_pinned(L, h, c, uses, op);
    return h;
}

/* check_obj for the methods that change the object (or its engine state). */
void *check_mutable(lua_State *L, int arg, const obj_class *c)
{
    return check_use(L, arg, c, USES(USE_CHANGE), NULL);
}

/* The start of every release (:free(), __gc, __close): refused while pinned. Returns
 * the object if it is still live (the caller releases it), NULL if already freed. */
void *begin_release(lua_State *L, const obj_class *c)
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
int pin_open(lua_State *L, int nargs)
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
void *pin(lua_State *L, int guard, int arg, const obj_class *c, const char *user,
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
void *pin_field(lua_State *L, int guard, int t, const char *key, const obj_class *c,
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
const char *check_path(lua_State *L, int arg)
{
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    if (strlen(s) != len) luaL_argerror(L, arg, "path contains a NUL byte");
    return s;
}

/* obj:_info() / obj:_info(table): the Lua-side description of a dataset or net
 * (split, source ...), kept in the userdata's first user value. Upvalue 1: the class's
 * metatable name. */
static int info_method(lua_State *L)
{
    luaL_checkudata(L, 1, lua_tostring(L, lua_upvalueindex(1)));
    if (lua_gettop(L) >= 2) {
        lua_settop(L, 2);
        lua_setiuservalue(L, 1, 1);
        return 0;
    }
    lua_getiuservalue(L, 1, 1);
    return 1;
}

void open_class(lua_State *L, const lunet_class *c)
{
    luaL_setfuncs(L, c->functions, 0);
    luaL_newmetatable(L, c->name);
    lua_newtable(L);
    luaL_setfuncs(L, c->methods, 0);
    if (c->info) {
        lua_pushstring(L, c->name);
        lua_pushcclosure(L, info_method, 1);
        lua_setfield(L, -2, "_info");
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "methods");
    if (c->index) lua_pushcclosure(L, c->index, 1); /* upvalue: the methods table */
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, c->gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, c->gc);
    lua_setfield(L, -2, "__close");
    if (c->tostring) {
        lua_pushcfunction(L, c->tostring);
        lua_setfield(L, -2, "__tostring");
    }
    if (c->len) {
        lua_pushcfunction(L, c->len);
        lua_setfield(L, -2, "__len");
    }
    lua_pushstring(L, c->name);
    lua_setfield(L, -2, "__name");
    lua_setfield(L, -2, c->field);
}

/* A metatable for userdata that never reach Lua code (pin guards, run results): hidden
 * (__metatable), with __gc and, if `closable`, __close = gc. */
void register_hidden_class(lua_State *L, const char *name, lua_CFunction gc, int closable)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    if (closable) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

/* The pin guard's metatable (pin_open). */
void lunet_open_aux(lua_State *L)
{
    register_hidden_class(L, PIN_MT, pin_guard_close, 1);
}

const char *push_kind_names(lua_State *L, int count, const char *(*name_of)(int))
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int k = 0; k < count; k++) {
        if (k) luaL_addstring(&b, ", ");
        luaL_addstring(&b, name_of(k));
    }
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}
