#!/bin/sh
# tools/valgrind.sh - memcheck on the C test programs and on some Lua specs (`make
# valgrind` builds first). Requires 0 errors and 0 leaks: every C test runs under
#   valgrind --leak-check=full --error-exitcode=1
# (definite and possible leaks are errors), and the specs run in lua5.4 under the same
# memcheck with definite leaks as errors (Lua closes its state at exit, so what is
# left definitely lost is lunet's).
#   VALGRIND_C_SKIP="test_fast_kernels"  C tests not run (default: the SIMD kernel
#       sweep, which takes ~8 minutes under valgrind and whose ASan run is in
#       tools/sanitize.sh; valgrind cannot run its AVX-512 paths anyway)
#   VALGRIND_SPECS="..."                  the busted arguments for the Lua part
set -eu
cd "$(dirname "$0")/.."

LUA=${LUA:-lua5.4}
BUSTED=${BUSTED:-/usr/bin/busted}
SKIP=${VALGRIND_C_SKIP-test_fast_kernels}
SPECS=${VALGRIND_SPECS:-spec/api_spec.lua spec/optim_spec.lua spec/idx_spec.lua spec/interrupt_spec.lua spec/robustness_spec.lua}
LOGS=build/valgrind-logs
mkdir -p "$LOGS"
export MNIST_DIR="${MNIST_DIR:-$(pwd)/data/mnist}"

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind: not installed (Debian: valgrind)" >&2
    exit 1
fi
# --fair-sched: valgrind runs one thread at a time; without it a stop request from
# another thread (test_runs, Ctrl-C) can wait seconds for its turn
VG="valgrind --leak-check=full --error-exitcode=1 --track-origins=yes --fair-sched=yes"

failed=0
now() { date +%s; }
check() { # check <name> <status> <log> <seconds>
    if [ "$2" -ne 0 ]; then
        echo "valgrind: $1 FAILED (exit $2, $4 s); log $3:" >&2
        grep -E "Invalid|uninitialised|definitely lost|possibly lost|ERROR SUMMARY|not ok|FAILED|[0-9]+ passed, [0-9]+ failed" "$3" | head -n 30 >&2
        failed=1
    else
        echo "valgrind: $1 ok ($4 s): $(grep -E "ERROR SUMMARY" "$3" | tail -n 1 | sed 's/^==[0-9]*== //')"
    fi
}

for src in spec/c/test_*.c; do
    t=$(basename "$src" .c)
    case " $SKIP " in *" $t "*) echo "valgrind: $t skipped (VALGRIND_C_SKIP)"; continue ;; esac
    t0=$(now)
    status=0
    $VG "build/release/spec/$t" >"$LOGS/$t.log" 2>&1 || status=$?
    check "$t" "$status" "$LOGS/$t.log" "$(( $(now) - t0 ))"
done

# The Lua part: the robustness walk is cut down to the Net and Dataset methods and
# the engine binding (the rest is pure Lua), with its limits, damaged-file and
# allocation-failure checks in full.
t0=$(now)
status=0
LUNET_ROBUSTNESS_ONLY='^Net,^Dataset,^Tensor,^Optimizer,^lunet%.core' \
    $VG --errors-for-leak-kinds=definite $LUA "$BUSTED" -o spec/support/summary_handler.lua $SPECS \
    >"$LOGS/busted.log" 2>&1 || status=$?
check "lua5.4 + busted $SPECS ($(grep -E '^[0-9]+ passed' "$LOGS/busted.log" | tail -n 1))" "$status" \
    "$LOGS/busted.log" "$(( $(now) - t0 ))"
exit $failed
