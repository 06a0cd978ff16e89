#ifndef LUA_DATASET_H
#define LUA_DATASET_H
/* lua_dataset.h - class Dataset, for the other class files. */
#include "lua_aux.h"

#define DATASET_MT "lunet.Dataset"

typedef struct {
    obj_head h;
    ln_dataset *ds;
    int has_checksum; /* a dataset never changes: ds:checksum() is computed once */
    lua_Integer checksum;
} dataset_ud;

extern const obj_class DATASET_CLASS;

ln_dataset *check_dataset(lua_State *L, int arg);
#endif
