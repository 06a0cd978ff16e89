#ifndef LUA_NET_H
#define LUA_NET_H
/* lua_net.h - class Net, for core.runs. */
#include "lua_aux.h"

#define NET_MT "lunet.Net"

typedef struct {
    obj_head h;
    ln_net *net;
    ln_train_state train; /* kept between net:train calls (optimizer, streams, counters) */
} net_ud;

extern const obj_class NET_CLASS;
#endif
