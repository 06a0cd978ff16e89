#!/bin/sh
# Static checks, zero warnings allowed (`make lint`):
#  - luacheck (Debian package lua-check) on the Lua code: the module, scripts, examples,
#    the launcher, the specs and the developer tools, benchmarks and fuzzers, configured by .luacheckrc;
#  - cppcheck on the C engine, the Lua binding and the C example.
# Exits non-zero when either reports anything.
set -u
cd "$(dirname "$0")/.."
status=0

if command -v luacheck >/dev/null 2>&1; then
    echo "lint: luacheck"
    luacheck --no-color --codes --formatter plain \
        bindings/lunet/*.lua scripts examples bin/lunet spec tools bench fuzz || status=1
else
    echo "lint: luacheck not found: install the Debian package lua-check (make deps)" >&2
    status=1
fi

if command -v cppcheck >/dev/null 2>&1; then
    echo "lint: cppcheck"
    # unmatchedSuppression: an inline suppression that is no longer needed is not a warning
    cppcheck --enable=warning,performance,portability --error-exitcode=1 --inline-suppr \
        --suppress=unmatchedSuppression -I core --std=c11 -q \
        core bindings examples/embed.c || status=1
else
    echo "lint: cppcheck not found: install the Debian package cppcheck (make deps)" >&2
    status=1
fi

if [ "$status" -eq 0 ]; then echo "lint: no warnings"; else echo "lint: FAILED" >&2; fi
exit "$status"
