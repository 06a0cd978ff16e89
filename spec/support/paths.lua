-- Where the specs find lunet in the source tree: the Lua files in bindings/, lunet.core
-- in a build tree (build/release, or $LUNET_BUILD: `make test SANITIZE=1` and
-- tools/sanitize.sh name theirs), the specs' helpers in spec/support/. .busted runs
-- this file before the specs (so `busted spec/x_spec.lua` from the checkout needs no
-- setup); `require("paths")` gives the same to the processes a spec starts:
--   paths.root   the checkout (absolute)
--   paths.build  the build tree holding lunet/core.so (absolute)
--   paths.env    "LUA_PATH_5_4=... LUA_CPATH_5_4=... LUNET_BUILD=...", assignments to put
--                before a command (or after `env`)
--   paths.lua    "env " .. paths.env .. " lua5.4": a Lua process that finds what the specs
--                find (a command of its own, so it also follows `timeout` or `exec`)
local lfs = require("lfs")

local loaded = package.loaded["paths"]
if type(loaded) == "table" then return loaded end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- busted runs from the checkout (that is where it reads .busted)
local root = assert(lfs.currentdir())
local build = os.getenv("LUNET_BUILD")
if build == nil or build == "" then build = "build/release" end
if build:sub(1, 1) ~= "/" then build = root .. "/" .. build end

local lpath = table.concat({ root .. "/spec/support/?.lua", root .. "/bindings/?.lua",
  root .. "/bindings/?/init.lua" }, ";")
local cpath = build .. "/?.so"
package.path = lpath .. ";" .. package.path
package.cpath = cpath .. ";" .. package.cpath

local paths = { root = root, build = build }
-- ";;" keeps Lua's defaults (lfs, cjson) after the tree's own entries
paths.env = ("LUA_PATH_5_4=%s LUA_CPATH_5_4=%s LUNET_BUILD=%s"):format(q(lpath .. ";;"), q(cpath .. ";;"), q(build))
paths.lua = "env " .. paths.env .. " lua5.4"
package.loaded["paths"] = paths
return paths
