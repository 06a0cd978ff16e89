/* lua_sys.c - the operating-system primitives of the run store (bindings/lunet/store.lua),
 * part of the `lunet.core` module (lua_module.c).
 *
 * The store needs what plain Lua and LuaFileSystem do not give: exclusive creation
 * (O_CREAT|O_EXCL, the claim of a run), durable atomic writes (temporary file, fsync,
 * rename, fsync of the directory), whether a process is alive (kill(pid, 0)), the host
 * name and process id (unique temporary names, claim owners), file times with
 * sub-second precision, zlib's crc32 (record checksums), a sleep, and the seed of a
 * run (to check a record's seed against its index). Conventions as in the rest of
 * the binding (lua_aux.h):
 * argument errors raise; file errors return nil, message (and a short reason).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "lua_aux.h"

static int fail_errno(lua_State *L, const char *what, const char *path, int e)
{
    luaL_pushfail(L);
    lua_pushfstring(L, "%s%s%s: %s", what, path ? " " : "", path ? path : "", strerror(e));
    lua_pushstring(L, e == EEXIST ? "exists" : e == ENOENT ? "missing" : "error");
    return 3;
}

/* The directory part of path into buf ("." when there is none). */
static void dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, size, ".");
    } else if (slash == path) {
        snprintf(buf, size, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= size) n = size - 1;
        memcpy(buf, path, n);
        buf[n] = '\0';
    }
}

/* fsync of a directory, so that a rename or a new entry in it survives a crash. Some
 * file systems refuse fsync on a directory (EINVAL): nothing more can be done there. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return errno;
    int e = fsync(fd) == 0 || errno == EINVAL ? 0 : errno;
    close(fd);
    return e;
}

/* Creates path with content, failing when it exists; the content is fsynced. */
static int create_file(const char *path, const char *s, size_t n, int exclusive)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (exclusive ? O_EXCL : 0), 0644);
    if (fd < 0) return errno;
    int e = ln_write_all(fd, s, n);
    if (!e && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (e) unlink(path);
    return e;
}

/* core.create_excl(path, content) -> true | nil, message, "exists"|"missing"|"error"
 * O_CREAT|O_EXCL: of several processes creating the same path, exactly one succeeds
 * (on NFS too since NFSv3). */
static int l_create_excl(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *s = luaL_optlstring(L, 2, "", &n);
    int e = create_file(path, s, n, 1);
    if (e) return fail_errno(L, "cannot create", path, e);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.write_durable(path, content, temp_path) -> true | nil, message
 * Writes temp_path (which must not exist, and must be in path's directory), fsyncs it,
 * renames it over path and fsyncs the directory: a reader sees the old file or the
 * whole new one, and after a crash the new one is there or the old one is. */
static int l_write_durable(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    const char *tmp = luaL_checkstring(L, 3);
    int e = create_file(tmp, s, n, 1);
    if (e) return fail_errno(L, "cannot write", tmp, e);
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return fail_errno(L, "cannot rename to", path, e);
    }
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    e = sync_dir(dir);
    if (e) return fail_errno(L, "cannot sync the directory", dir, e);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.fsync_dir(dir) -> true | nil, message */
static int l_fsync_dir(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    int e = sync_dir(dir);
    if (e) return fail_errno(L, "cannot sync the directory", dir, e);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.pid_alive(pid) -> boolean: is there a process with this id on this host? */
static int l_pid_alive(lua_State *L)
{
    lua_Integer pid = luaL_checkinteger(L, 1);
    if (pid <= 0 || pid > 0x7fffffff) {
        lua_pushboolean(L, 0);
        return 1;
    }
    /* EPERM: it exists but belongs to someone else */
    lua_pushboolean(L, kill((pid_t)pid, 0) == 0 || errno == EPERM);
    return 1;
}

static int l_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

static int l_hostname(lua_State *L)
{
    char name[256];
    if (gethostname(name, sizeof name) != 0) snprintf(name, sizeof name, "unknown");
    name[sizeof name - 1] = '\0';
    lua_pushstring(L, name);
    return 1;
}

/* core.mtime(path) -> seconds since the epoch (with fractions) | nil, message */
static int l_mtime(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) return fail_errno(L, "cannot stat", path, errno);
    lua_pushnumber(L, (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec);
    lua_pushinteger(L, (lua_Integer)st.st_size);
    return 2;
}

/* core.touch(path) -> true | nil, message: sets the times to now (on NFS: the server's
 * clock, since no time is passed). */
static int l_touch(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (utimensat(AT_FDCWD, path, NULL, 0) != 0) return fail_errno(L, "cannot touch", path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.now() -> wall-clock seconds since the epoch, with fractions */
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
    return 1;
}

/* core.sleep(seconds) */
static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s <= 3600, 1, "seconds must be in [0, 3600]");
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return 0;
}

/* core.crc32(s) -> zlib's CRC-32 of the string, as an integer in [0, 2^32) */
static int l_crc32(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    uLong crc = crc32(0L, Z_NULL, 0);
    while (n > 0) { /* crc32 takes a uInt length */
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, (const Bytef *)s, chunk);
        s += chunk;
        n -= chunk;
    }
    lua_pushinteger(L, (lua_Integer)crc);
    return 1;
}

/* core.seed_derive(seed, index) -> the seed of run `index` (0-based) of base `seed`,
 * as the engine derives it (a record's seed must be this). */
static int l_seed_derive(lua_State *L)
{
    lua_Integer seed = luaL_checkinteger(L, 1);
    lua_Integer index = luaL_checkinteger(L, 2);
    luaL_argcheck(L, index >= 0, 2, "index must be >= 0");
    lua_pushinteger(L, (lua_Integer)ln_seed_derive((uint64_t)seed, (uint64_t)index));
    return 1;
}

/* core.exec(argv) replaces this process by argv[1] (searched on PATH) with arguments
 * argv[2..]; returns only on failure: nil, message. The launcher uses it so that the
 * session is the launcher's own process: signals sent to it reach the session, and its
 * exit status is the session's. */
static int l_exec(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1 && n < 256, 1, "argv must list 1 to 255 strings");
    const char *argv[256];
    /* every string stays on the stack: the table need not hold it (an __index may have
     * made it, and a number becomes a new string), so a later element's metamethod could
     * otherwise collect it */
    luaL_checkstack(L, (int)n, "argv");
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        size_t len;
        argv[i] = lua_tolstring(L, -1, &len);
        if (!argv[i] || strlen(argv[i]) != len)
            return luaL_argerror(L, 1, "argv must list strings without NUL bytes");
    }
    argv[n] = NULL;
    fflush(NULL);
    execvp(argv[0], (char *const *)argv);
    return fail_errno(L, "cannot run", argv[0], errno);
}

static const luaL_Reg sys_functions[] = {
    {"create_excl", l_create_excl},
    {"write_durable", l_write_durable},
    {"fsync_dir", l_fsync_dir},
    {"pid_alive", l_pid_alive},
    {"pid", l_pid},
    {"hostname", l_hostname},
    {"mtime", l_mtime},
    {"touch", l_touch},
    {"now", l_now},
    {"sleep", l_sleep},
    {"crc32", l_crc32},
    {"seed_derive", l_seed_derive},
    {"exec", l_exec},
    {NULL, NULL},
};

/* Adds the functions to the table on top of the stack (the module table). */
int lunet_open_sys(lua_State *L)
{
    luaL_setfuncs(L, sys_functions, 0);
    return 0;
}
