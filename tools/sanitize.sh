#!/bin/sh
# tools/sanitize.sh - lunet under the sanitizers; exits 1 on any report.
#
#  1. ASan + UBSan: the SANITIZE=1 tree (build/sanitize, as `make SANITIZE=1`), then
#     every C test (LeakSanitizer on) and the whole busted suite against its module.
#  2. Lua fuzzing (step luafuzz): tools/lua_fuzz.lua's random Lua programs (objects
#     freed from callbacks, metamethods and finalizers, wrong selves, yields) for
#     LUA_FUZZ_SECONDS (default 60) against the ASan+UBSan module; any crash or report
#     fails, the program is kept in build/fuzz/artifacts/.
#  3. TSan: the engine and spec/c/test_runs.c (ln_runs on 2 and 4 threads, stop
#     requests from another thread) built with -fsanitize=thread, then the experiment
#     and interrupt specs (parallel runs driven from Lua, Ctrl-C) against a TSan build
#     of the module.
#
# lua5.4 itself is not instrumented, so the sanitizer runtimes must be loaded before
# anything else. LD_PRELOAD would do, but every process the specs start (sh, gcc,
# gnuplot, luarocks) would inherit it: under TSan sh crashes, under LSan the compilers
# "leak". So a `lua5.4` wrapper first on PATH runs the real interpreter through the
# dynamic loader with --preload, which reaches that interpreter only (and the lua5.4
# processes the specs start, through the same wrapper); LUNET_BUILD points
# `lunet.core` at the sanitized module (for the specs, spec/support/paths.lua; for
# bin/lunet, its module search). Leak checking is on for those Lua processes
# (with one suppression: the dynamic loader keeps the preloaded library's name).
#
# This script never replaces the release products (build/release/) that other processes
# may be using: it builds its own trees build/sanitize/ and build/tsan/.
#   SANITIZE_STEPS="asan luafuzz tsan" (default all); SANITIZE_SPECS="spec" (busted arguments).
set -eu
cd "$(dirname "$0")/.."

CC=${CC:-cc}
LUA=${LUA:-lua5.4}
BUSTED=${BUSTED:-/usr/bin/busted}
JOBS=${JOBS:-2}
STEPS=${SANITIZE_STEPS:-asan luafuzz tsan}
# every spec but the packaging one (it installs a release build through make and
# luarocks; luarocks also takes the wrapper's directory for Lua's prefix)
SPECS=${SANITIZE_SPECS:-$(ls spec/*_spec.lua | grep -v install_spec)}
LOGS=build/sanitize-logs
mkdir -p "$LOGS"
export MNIST_DIR="${MNIST_DIR:-$(pwd)/data/mnist}"

failed=0
now() { date +%s; }

REAL_LUA=$(command -v "$LUA")
LDSO=$(readelf -l "$REAL_LUA" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
# wrapper <dir> <libs...>: writes <dir>/lua5.4 that preloads the libraries
wrapper() {
    d=$1
    shift
    mkdir -p "$d"
    printf '#!/bin/sh\nexec %s --preload "%s" %s "$@"\n' "$LDSO" "$*" "$REAL_LUA" >"$d/lua5.4"
    chmod +x "$d/lua5.4"
}
# reports <log>: nonzero if the log holds a sanitizer report
reports() {
    grep -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer|SUMMARY: (Address|Undefined|Thread)" "$1" >/dev/null 2>&1
}
check() { # check <name> <status> <log> <seconds>
    if [ "$2" -ne 0 ] || reports "$3"; then
        echo "sanitize: $1 FAILED (exit $2, $4 s); log $3:" >&2
        grep -E "ERROR: |runtime error:|WARNING: ThreadSanitizer|SUMMARY:|not ok|FAILED|[0-9]+ passed, [0-9]+ failed" "$3" | head -n 30 >&2
        failed=1
    else
        echo "sanitize: $1 ok ($4 s)"
    fi
}

# asan_run <log> <command...>: the command (and the lua5.4 processes it starts) on the
# ASan+UBSan interpreter wrapper and module, leak checking on; output to <log>, exit
# status in $status. (A subshell, so the preload reaches nothing but the command and
# what it starts.)
asan_run() {
    log=$1
    shift
    wrapper build/sanitize/bin "$($CC -print-file-name=libasan.so)" "$($CC -print-file-name=libubsan.so)"
    printf 'leak:add_name_to_object\n' >build/sanitize/lsan.supp
    status=0
    (
        export PATH="$(pwd)/build/sanitize/bin:$PATH"
        export ASAN_OPTIONS=detect_leaks=1
        export LSAN_OPTIONS="suppressions=$(pwd)/build/sanitize/lsan.supp:print_suppressions=0"
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        export LUNET_BUILD="$(pwd)/build/sanitize"
        export LUNET_LUA=lua5.4 # the session bin/lunet execs: the wrapper, not the bare interpreter
        export LUNET_C_TESTS=build/sanitize/spec
        exec "$@"
    ) >"$log" 2>&1 || status=$?
}

C_TESTS=$(for f in spec/c/test_*.c; do basename "$f" .c; done)

for step in $STEPS; do
case "$step" in
asan)
    t0=$(now)
    targets="build/sanitize/lunet/core.so build/sanitize/liblunet.a"
    for t in $C_TESTS; do targets="$targets build/sanitize/spec/$t"; done
    make -s -j"$JOBS" SANITIZE=1 $targets
    echo "sanitize: ASan+UBSan build ($(( $(now) - t0 )) s)"

    for t in $C_TESTS; do
        t0=$(now)
        status=0
        ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            "build/sanitize/spec/$t" >"$LOGS/$t.asan.log" 2>&1 || status=$?
        check "ASan+UBSan $t" "$status" "$LOGS/$t.asan.log" "$(( $(now) - t0 ))"
    done

    t0=$(now)
    asan_run "$LOGS/busted.asan.log" lua5.4 "$BUSTED" -o spec/support/summary_handler.lua $SPECS
    check "ASan+UBSan busted ($(tail -n 1 "$LOGS/busted.asan.log"))" "$status" "$LOGS/busted.asan.log" \
        "$(( $(now) - t0 ))"
    ;;
luafuzz)
    t0=$(now)
    make -s -j"$JOBS" SANITIZE=1 build/sanitize/lunet/core.so
    asan_run "$LOGS/lua_fuzz.asan.log" bin/lunet run tools/lua_fuzz.lua "${LUA_FUZZ_SECONDS:-60}"
    check "ASan+UBSan $(tail -n 1 "$LOGS/lua_fuzz.asan.log")" "$status" "$LOGS/lua_fuzz.asan.log" "$(( $(now) - t0 ))"
    ;;
tsan)
    t0=$(now)
    TSAN_FLAGS="-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g -fPIC -pthread -fsanitize=thread"
    mkdir -p build/tsan/core build/tsan/lunet build/tsan/spec
    objs=""
    pids=""
    for src in core/*.c; do
        obj="build/tsan/core/$(basename "$src" .c).o"
        objs="$objs $obj"
        if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ core/lunet.h -nt "$obj" ]; then
            $CC $TSAN_FLAGS -c "$src" -o "$obj" &
            pids="$pids $!"
        fi
    done
    for p in $pids; do wait "$p"; done
    $CC $TSAN_FLAGS -o build/tsan/spec/test_runs spec/c/test_runs.c $objs -lz -lm
    LUA_INC=$(pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
    $CC $TSAN_FLAGS $LUA_INC -fvisibility=hidden -shared -o build/tsan/lunet/core.so bindings/*.c $objs -lz -lm
    echo "sanitize: TSan build ($(( $(now) - t0 )) s)"

    t0=$(now)
    status=0
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build/tsan/spec/test_runs \
        >"$LOGS/test_runs.tsan.log" 2>&1 || status=$?
    check "TSan test_runs" "$status" "$LOGS/test_runs.tsan.log" "$(( $(now) - t0 ))"

    t0=$(now)
    status=0
    wrapper build/tsan/bin "$($CC -print-file-name=libtsan.so)"
    (
        export PATH="$(pwd)/build/tsan/bin:$PATH"
        export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
        export LUNET_BUILD="$(pwd)/build/tsan"
        export LUNET_LUA=lua5.4
        # (#slow: the 40-run Ctrl-C test, minutes under TSan; it runs in make test)
        exec lua5.4 "$BUSTED" -o spec/support/summary_handler.lua --exclude-tags=slow spec/experiment_spec.lua spec/interrupt_spec.lua
    ) >"$LOGS/busted.tsan.log" 2>&1 || status=$?
    check "TSan experiment + interrupt specs ($(tail -n 1 "$LOGS/busted.tsan.log"))" "$status" \
        "$LOGS/busted.tsan.log" "$(( $(now) - t0 ))"
    ;;
*)
    echo "sanitize: unknown step '$step' (asan, luafuzz, tsan)" >&2
    exit 2
    ;;
esac
done
exit $failed
