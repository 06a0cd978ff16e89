/* lua_runs.c - core.runs: repeated training runs on worker threads, with progress,
 * on_run and claim hooks. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lua_dataset.h"
#include "lua_net.h"
#include "lua_train.h"

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

/* Results live in a userdata so an error (or Ctrl-C in Lua code) never leaks them;
 * its metatable (made once, in lunet_open_runs) only frees them. */
#define RESULTS_MT "lunet.RunResults"
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
    results_release(luaL_checkudata(L, 1, RESULTS_MT));
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
    cfg.runs = (int)field_int(L, 1, "runs", 1, 1, LN_MAX_RUNS);
    cfg.threads = (int)field_int(L, 1, "threads", 0, 0, LN_MAX_THREADS);
    cfg.threads_per_run = (int)field_int(L, 1, "threads_per_run", 1, 1, LN_MAX_THREADS);
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
    luaL_setmetatable(L, RESULTS_MT);
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

static const luaL_Reg runs_functions[] = {
    {"runs", l_runs},
    {NULL, NULL},
};

void lunet_open_runs(lua_State *L)
{
    luaL_setfuncs(L, runs_functions, 0);
    register_hidden_class(L, RESULTS_MT, results_gc, 0);
}
