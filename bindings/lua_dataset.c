/* lua_dataset.c - class Dataset (lunet.Dataset), its loaders (core.dataset_idx,
 * dataset_csv, dataset_cifar, dataset_from) and core.idx_read. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <zlib.h>

#include "lua_dataset.h"
#include "lua_tensor.h"

const obj_class DATASET_CLASS = {DATASET_MT, "dataset"};

static dataset_ud *new_dataset_ud(lua_State *L)
{
    dataset_ud *u = lua_newuserdatauv(L, sizeof *u, 1); /* uservalue 1: Lua-side info table */
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, DATASET_MT);
    return u;
}

ln_dataset *check_dataset(lua_State *L, int arg)
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

/* core.dataset_idx(images_path, labels_path, limit, {mean, std, normalize}, check)
 * check: "whole" (default) or "kept" (ln_idx_check: a sweep task, whose plan holds the
 * checksum of the data read whole) */
static int l_dataset_idx(lua_State *L)
{
    const char *images = check_path(L, 1);
    const char *labels = check_path(L, 2);
    lua_Integer limit = luaL_optinteger(L, 3, 0);
    const char *check_name = luaL_optstring(L, 5, "whole");
    const int kept = strcmp(check_name, "kept") == 0;
    if (!kept && strcmp(check_name, "whole") != 0)
        luaL_argerror(L, 5, lua_pushfstring(L, "check must be \"whole\" or \"kept\", got \"%s\"",
                                            check_name));
    const ln_idx_check check = kept ? LN_IDX_CHECK_KEPT : LN_IDX_CHECK_WHOLE;
    ln_norm norm;
    ln_error err;
    dataset_ud *u = begin_load(L, 4, &norm);
    ln_status st = ln_dataset_load_idx_norm(images, labels, limit, check, &norm, &u->ds, &err);
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
    const ln_dataset *d = check_dataset(L, 1);
    const int64_t dims[3] = {d->channels, d->height, d->width};
    push_shape(L, ln_shape_make(3, dims)); /* a copy: read before allocating */
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


static const luaL_Reg dataset_methods[] = {
    {"size", dataset_size},       {"shape", dataset_shape},
    {"classes", dataset_classes}, {"image", dataset_image},
    {"label", dataset_label},     {"class_counts", dataset_class_counts},
    {"_subset", dataset_subset},
    {"checksum", dataset_checksum}, {"memory", dataset_memory},
    {"free", dataset_free},       {NULL, NULL},
};

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

const lunet_class lunet_dataset_class = {
    .name = DATASET_MT, .field = "Dataset", .methods = dataset_methods, .gc = dataset_free,
    .len = dataset_size, .info = 1,
    .functions = (const luaL_Reg[]){{"dataset_from", l_dataset_from}, {"dataset_idx", l_dataset_idx},
                                    {"dataset_csv", l_dataset_csv}, {"dataset_cifar", l_dataset_cifar},
                                    {"idx_read", l_idx_read}, {NULL, NULL}},
};
