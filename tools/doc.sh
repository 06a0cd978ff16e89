#!/bin/sh
# Generates the API reference in docs/api/ with LDoc (Debian package lua-ldoc).
# The text comes from the `---` doc comments of bindings/lunet/*.lua and the entries for
# the functions written in C, gathered by the same parser as lunet.help() (help.entries)
# into build/doc/lunet.lua; config.ld at the root tells LDoc the rest.
# Usage: sh tools/doc.sh   (or `make doc`); needs no build of the C parts.
set -eu
cd "$(dirname "$0")/.."
LUA="${LUA:-lua5.4}"
if ! command -v ldoc >/dev/null 2>&1; then
    echo "doc: ldoc not found: install the Debian package lua-ldoc (make deps)" >&2
    exit 1
fi
mkdir -p build/doc
LUA_PATH="bindings/?.lua;bindings/?/init.lua;;" LUA_CPATH="build/release/?.so;;" \
  "$LUA" - build/doc/lunet.lua <<'LUA_EOF'
local out_path = arg[1]
local help = require("lunet.help")
local docs = help.entries()

local function esc(s) return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;")) end

-- LDoc reads `--` comment lines; keep every line a comment and free of LDoc's tags.
local out = {}
local function emit(s) out[#out + 1] = ("-- " .. s):gsub("%s+$", "") end

local function summary(e)
  -- a sentence of prose for LDoc's one-line summary: skip a leading signature line
  local first = e.doc[1] or e.name
  local from = first:match("^[%a_][%w_.:]*[({]") and 2 or (first:match("^[%a_][%w_.:]*$") and 2) or 1
  local parts = {}
  for k = from, #e.doc do
    local l = e.doc[k]:gsub("^%s+", "")
    if l == "" then break end
    if k == from and l:match("^[%w_.:]+%s*=") then break end
    parts[#parts + 1] = l
    if l:match("%.$") or l:match("%.%s+%u") then break end
  end
  local s = table.concat(parts, " "):match("^(.-%.)%s+%u") or table.concat(parts, " ")
  if s == "" then s = first end
  -- LDoc ends its summary at the first ". ": keep "e.g. 1x28x28" in one piece
  return (esc(s:gsub("@", "(at)")):gsub("(%a%.%a%.) ", "%1&nbsp;"))
end

local mod = docs.modules["lunet"] or { "lunet: CNN training in C, driven from Lua 5.4." }
out[1] = "--- " .. esc(mod[1])
for k = 2, #mod do emit(esc(mod[k])) end
emit("")
emit("The reference below is also at the prompt: `lunet.help()` lists it, `lunet.help(\"name\")`")
emit("or `lunet.help(f)` prints one entry. See README.md for guides (REPL, scripts, apps, C API).")
emit("@module lunet")
out[#out + 1] = ""

for _, section in ipairs(docs.sections) do
  out[#out + 1] = "--- " .. esc(section:sub(1, 1):upper() .. section:sub(2))
  emit("@section " .. section:gsub("%W+", "_"))
  out[#out + 1] = ""
  for _, e in ipairs(docs.list) do
    if e.section == section then
      out[#out + 1] = "--- " .. summary(e)
      emit("<pre>")
      local sig = e.doc[1] and e.doc[1]:match("^([%a_][%w_.:]*)")
      local is_sig = sig and sig:match("([%w_]+)$") == e.short
      if not is_sig then emit(esc(e.name .. (e.params or ""))) end
      for k, l in ipairs(e.doc) do
        if k == 1 and is_sig then l = e.name .. l:sub(#sig + 1) end
        emit(esc(l:gsub("@", "(at)")))
      end
      emit("</pre>")
      if e.file then
        emit(("Defined in %s, line %d."):format(esc(e.file:gsub("^%./", "")), e.line))
      elseif e.c then
        emit("Implemented in C (lunet.core).")
      end
      emit("@function " .. e.name)
      out[#out + 1] = ""
    end
  end
end

local f = assert(io.open(out_path, "w"))
f:write(table.concat(out, "\n"), "\n")
f:close()
LUA_EOF
rm -rf docs/api
ldoc . >build/doc/ldoc.log 2>&1 || { cat build/doc/ldoc.log >&2; exit 1; }
# LDoc reports problems on stdout and still exits 0: treat any as a failure.
if grep -v -e '^reading configuration' -e '^output written to' build/doc/ldoc.log | grep -q .; then
    cat build/doc/ldoc.log >&2
    exit 1
fi
echo "doc: wrote docs/api/index.html"
