#ifndef LUA_TRAIN_H
#define LUA_TRAIN_H
/* lua_train.h - what net:train and core.runs share. */
#include "lua_aux.h"

/* The loss named by argument arg (def when absent, NULL: required), by core's table;
 * any other name is an argument error "invalid option 'name'". */
int check_loss(lua_State *L, int arg, const char *def);

/* The training options at t (ln_train_config); strings it reads stay pushed. */
void read_train_config(lua_State *L, int t, ln_train_config *cfg);
/* Pushes the table of a training history (every step's loss if with_steps). */
void push_history(lua_State *L, const ln_history *h, int with_steps);

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

/* Calls the progress function with {keys = vals}; nonzero: stop (asked, or it failed). */
int call_progress(lua_progress *lp, int nfields, const char *const *keys, const double *vals);
/* After the engine returned: raises the callback's error again, named by the caller. */
int raise_progress_error(lua_State *L, const lua_progress *lp);
#endif
