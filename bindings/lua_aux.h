#ifndef LUA_AUX_H
#define LUA_AUX_H
/* lua_aux.h - the shared helper of the binding `lunet.core` (after LuaSocket's
 * auxiliar.h): what every class file uses, and the memory-safety rules they all follow.
 *
 * The binding: lua_module.c (luaopen_lunet_core, calls the openers below), lua_aux.c
 * (this helper), one file per class -- lua_tensor.c, lua_dataset.c, lua_net.c,
 * lua_optim.c -- plus lua_train.c (the training options, history and progress
 * callbacks net:train and core.runs share), lua_runs.c (core.runs) and lua_sys.c (the run
 * store's system calls). These are the only files that include lua.h.
 *
 * Conventions (as Lua's own libraries and LuaFileSystem):
 *  - a userdata is created empty before any C memory is taken, so an allocation
 *    error never leaks; one idempotent release serves __gc, __close and :free();
 *  - argument errors raise (luaL_argerror / luaL_error naming the argument);
 *    file and data errors return nil, message;
 *  - no globals: everything lives in the module table and the registry.
 */
#include <signal.h>

#include "lauxlib.h"
#include "lua.h"

#include "../core/lunet.h"

/* The openers: each adds its functions and class (metatable) to the module table on
 * top of the stack. */
void lunet_open_aux(lua_State *L);
void lunet_open_layer_kinds(lua_State *L); /* lua_net.c: core.layer_kinds */
void lunet_open_train(lua_State *L);
void lunet_open_runs(lua_State *L);
int lunet_open_sys(lua_State *L); /* lua_sys.c: the run store's system calls */

/* ------------------------------------------------------- arguments and options */

int push_fail(lua_State *L, const ln_error *err); /* nil, err->msg */
/* An integer argument in [lo, hi], with an error naming it otherwise. */
lua_Integer check_range(lua_State *L, int arg, const char *name, lua_Integer lo, lua_Integer hi);
/* Option t[key] (default if nil), raising an error naming the field. */
lua_Integer field_int(lua_State *L, int t, const char *key, lua_Integer def, lua_Integer lo,
                      lua_Integer hi);
double field_num(lua_State *L, int t, const char *key, double def);
int field_bool(lua_State *L, int t, const char *key, int def);
/* The string stays pushed (the table need not hold it). */
const char *field_str(lua_State *L, int t, const char *key, const char *def);
/* Pushes and returns "a, b, c": the names of core's kinds 0 .. count-1 (the valid
 * values an error message lists). */
const char *push_kind_names(lua_State *L, int count, const char *(*name_of)(int));
void push_shape(lua_State *L, ln_shape s);
ln_shape check_shape(lua_State *L, int arg, const char *name);
/* A path argument: a string without NUL bytes. */
const char *check_path(lua_State *L, int arg);

/* ------------------------------------------------------------------- SIGINT */

/* Set by SIGINT, SIGTERM and SIGHUP while a long call runs (sigint_catch until
 * sigint_restore); the engine's stop flag (ln_train_config.stop). */
extern atomic_int interrupt_flag;
#define N_CAUGHT 3 /* SIGINT, SIGTERM, SIGHUP */
typedef struct {
    struct sigaction old[N_CAUGHT];
    int installed[N_CAUGHT];
} sigint_guard;
void sigint_catch(sigint_guard *g);
void sigint_restore(sigint_guard *g);
int l_interrupt_signal(lua_State *L); /* core.interrupt_signal() */

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

typedef struct {
    const char *mt, *noun;
} obj_class;

extern const pin_kind PIN_READ, PIN_TRAINING, PIN_EXCLUSIVE;

/* The object (its userdata, which starts with an obj_head) at `arg`: of class c, not freed. */
void *check_obj(lua_State *L, int arg, const obj_class *c);
/* check_obj for a call `op` (NULL: unnamed) that makes `uses` of the object. */
void *check_use(lua_State *L, int arg, const obj_class *c, unsigned uses, const char *op);
/* check_obj for the methods that change the object (or its engine state). */
void *check_mutable(lua_State *L, int arg, const obj_class *c);
/* The start of every release (:free(), __gc, __close): refused while pinned. Returns
 * the object if it is still live (the caller releases it), NULL if already freed. */
void *begin_release(lua_State *L, const obj_class *c);
/* Keeps `nargs` arguments and pushes a to-be-closed pin guard after them; returns its
 * stack index. */
int pin_open(lua_State *L, int nargs);
/* Checks the object at `arg` for the uses of `kind` and pins it until the guard at
 * `guard` closes; `user` names the call ("net:train"). */
void *pin(lua_State *L, int guard, int arg, const obj_class *c, const char *user,
          const pin_kind *kind);
/* Checks and pins the object in option `key` of the table at `t` (it stays pushed). */
void *pin_field(lua_State *L, int guard, int t, const char *key, const obj_class *c,
                const char *user, const pin_kind *kind);

/* ------------------------------------------------------------------ classes */

/* One class of the binding: what open_class registers. */
typedef struct {
    const char *name;          /* metatable name in the registry, e.g. "lunet.Tensor" */
    const char *field;         /* the module field holding the metatable, e.g. "Tensor" */
    const luaL_Reg *functions; /* module-level functions (constructors), set on the module */
    const luaL_Reg *methods;   /* also the metatable's field "methods" */
    lua_CFunction gc;          /* __gc = __close */
    lua_CFunction tostring;    /* __tostring, or NULL */
    lua_CFunction index;       /* NULL: __index is the methods table; else a closure over it */
    lua_CFunction len;         /* __len, or NULL */
    int info;                  /* 1: the method _info (see info_method in lua_aux.c) */
} lunet_class;
/* With the module table on top of the stack: sets c->functions on it, builds the class's
 * metatable and stores it as module[c->field]. */
void open_class(lua_State *L, const lunet_class *c);
/* The classes, one per file: lua_tensor.c, lua_dataset.c, lua_net.c, lua_optim.c. */
extern const lunet_class lunet_tensor_class, lunet_dataset_class, lunet_net_class, lunet_optim_class;
/* A metatable for userdata that never reach Lua code (pin guards, run results): hidden,
 * with __gc and, if `closable`, __close = gc. */
void register_hidden_class(lua_State *L, const char *name, lua_CFunction gc, int closable);
#endif
