-- luacheck configuration (Debian package lua-check); `make lint` runs it through tools/lint.sh.
std = "lua54"
-- The code wraps at about 120 columns but lets long format strings and signatures run past
-- that; line length is left to review rather than to the linter.
max_line_length = false
-- W581 suggests 'x <= y' for 'not (x > y)'; the checks use the negated form on purpose,
-- since it is also true when x is NaN (check.lua rejects NaN that way).
ignore = { "581" }
exclude_files = { "build/**", "out/**", "data/**", "docs/**" }

-- busted's globals (describe, it, assert, pending, setup, ...) in the specs.
files["spec/**/*.lua"] = { std = "+busted" }
-- A busted output handler is called as handler(options) whether it reads them or not.
files["spec/support/summary_handler.lua"] = { std = "+busted", ignore = { "212/options" } }
-- This spec silences print while it calls every API function, and restores it.
files["spec/robustness_spec.lua"] = { std = "+busted", globals = { "print" } }
