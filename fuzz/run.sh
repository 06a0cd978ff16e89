#!/bin/sh
# fuzz/run.sh [seconds] - builds the libFuzzer harnesses (clang, ASan + UBSan) and runs
# each one for `seconds` (default 60), starting from the committed seed corpus in
# fuzz/corpus/<harness>/ (new inputs go to build/fuzz/corpus/<harness>/, crash
# reproducers to build/fuzz/artifacts/). Exits 1 if any harness finds a crash, a leak,
# undefined behaviour, a timeout or an out-of-memory.
#   sh fuzz/run.sh --corpus   remakes the seed corpus (fuzz/make_corpus.c)
#   FUZZ_HARNESSES="fuzz_idx" sh fuzz/run.sh 600   runs only some harnesses
#   FUZZ_PARALLEL=1 runs the harnesses at the same time instead of one after another
# Needs clang and its runtime (Debian: clang, libclang-rt-14-dev).
set -eu
cd "$(dirname "$0")/.."

CLANG="${CLANG:-clang}"
OUT=build/fuzz
HARNESSES="${FUZZ_HARNESSES:-fuzz_idx fuzz_model fuzz_files}"
CFLAGS="-std=c11 -D_DEFAULT_SOURCE -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "fuzz: $CLANG not found (install clang and libclang-rt-14-dev)" >&2
    exit 1
fi

mkdir -p "$OUT/obj" "$OUT/corpus" "$OUT/artifacts"

# The engine, instrumented for coverage (fuzzer-no-link) and sanitizers. One object
# per source, compiled in parallel; rebuilt when the source or the header is newer.
objs=""
pids=""
for src in core/*.c; do
    obj="$OUT/obj/$(basename "$src" .c).o"
    objs="$objs $obj"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ core/lunet.h -nt "$obj" ] || [ core/layer.h -nt "$obj" ]; then
        case "$src" in
        core/simd.c)
            # The SIMD kernels select ISAs with `#pragma GCC target`, which clang does
            # not honour; gcc compiles them (uninstrumented: they parse nothing).
            gcc -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -O2 -g -c "$src" -o "$obj" & ;;
        *)
            $CLANG $CFLAGS -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer-no-link -c "$src" -o "$obj" & ;;
        esac
        pids="$pids $!"
    fi
done
for p in $pids; do wait "$p" || { echo "fuzz: compiling the engine failed" >&2; exit 1; }; done

if [ "${1:-}" = "--corpus" ]; then
    $CLANG $CFLAGS -o "$OUT/make_corpus" fuzz/make_corpus.c $objs -lz -lm -pthread
    rm -f fuzz/corpus/fuzz_idx/* fuzz/corpus/fuzz_model/*
    mkdir -p fuzz/corpus/fuzz_idx fuzz/corpus/fuzz_model
    "$OUT/make_corpus"
    # fuzz_files: checkpoints written by the engine itself (needs the module: make)
    rm -f fuzz/corpus/fuzz_files/*
    mkdir -p fuzz/corpus/fuzz_files
    bin/lunet run fuzz/files_corpus.lua fuzz/corpus/fuzz_files
    echo "fuzz: seed corpus written to fuzz/corpus/"
    exit 0
fi

SECONDS_EACH="${1:-60}"
for h in $HARNESSES; do
    $CLANG $CFLAGS -fsanitize=fuzzer -o "$OUT/$h" "fuzz/$h.c" $objs -lz -lm -pthread
done

run_one() {
    h=$1
    mkdir -p "$OUT/corpus/$h"
    log="$OUT/$h.log"
    # -rss_limit_mb also bounds single allocations (malloc_limit_mb defaults to it):
    # no input of a few KiB may make the readers allocate gigabytes.
    status=0
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        "$OUT/$h" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=20 \
        -rss_limit_mb=2048 -artifact_prefix="$OUT/artifacts/$h-" \
        "$OUT/corpus/$h" "fuzz/corpus/$h" >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $h FAILED (exit $status) after ${execs:-?} executions; log $log:" >&2
        grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -n 20 >&2
        return 1
    fi
    printf 'fuzz: %s ok: %s executions in %s s, 0 crashes (corpus %s inputs)\n' "$h" "${execs:-?}" \
        "$SECONDS_EACH" "$(ls "$OUT/corpus/$h" | wc -l)"
}

failed=0
if [ "${FUZZ_PARALLEL:-0}" = 1 ]; then
    pids=""
    for h in $HARNESSES; do run_one "$h" & pids="$pids $!"; done
    for p in $pids; do wait "$p" || failed=1; done
else
    for h in $HARNESSES; do run_one "$h" || failed=1; done
fi
exit $failed
