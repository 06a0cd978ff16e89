--- lunet.check: argument and option-table checking with errors that name the
-- function, the argument and what was expected. Errors are raised at the user's line:
-- the first caller outside lunet's Lua modules (check.raise), however deep in lunet
-- the check runs (lunet.experiment checks its options two calls below the user's).
local check = {}

-- The names of lunet's Lua modules: the .lua files beside this one ({init = true, ...}).
local module_names
local function lunet_modules()
  if module_names then return module_names end
  module_names = {}
  local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
  local ok, lfs = pcall(require, "lfs")
  if dir and ok then
    pcall(function()
      for file in lfs.dir(dir) do
        local name = file:match("^([%w_]+)%.lua$")
        if name then module_names[name] = true end
      end
    end)
  end
  return module_names
end

-- check.in_lunet(source) -> is this the source (debug.getinfo's) of one of lunet's Lua
-- modules, "@.../lunet/NAME.lua" with NAME one of them? The user's code is everything
-- else (a script ~/lunet/train.lua too).
local function in_lunet(source)
  local name = source:match("^@lunet/([%w_]+)%.lua$") or source:match("^@.*/lunet/([%w_]+)%.lua$")
  return name ~= nil and lunet_modules()[name] == true
end
check.in_lunet = in_lunet

--- check.raise(msg): raises msg at the line of the first caller outside lunet's Lua
-- modules, as luaL_error does at a C function's caller. A function that checks on
-- behalf of a public one (lunet.config's) needs no error level however deep it is
-- called: net:train's errors land on the line calling net:train, lunet.experiment's on
-- the line calling lunet.experiment. A C function in between (pcall) ends the search:
-- the error then has no position, as error(msg, level) gives for a C caller.
function check.raise(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info or not in_lunet(info.source) then break end
    level = level + 1
  end
  error(msg, level)
end
local fail = check.raise

local function describe(v)
  if type(v) == "number" then return tostring(v) end
  if type(v) == "string" then return ("%q"):format(v) end
  return type(v)
end

local function is_int(v) return math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v) and v == v and math.abs(v) < 2^53) end

-- Validators for option kinds: return nil when fine, or what was expected.
local kinds = {
  any = function() end,
  string = function(v) if type(v) ~= "string" then return "a string" end end,
  nonempty_string = function(v) if type(v) ~= "string" or v == "" then return "a non-empty string" end end,
  boolean = function(v) if type(v) ~= "boolean" then return "a boolean" end end,
  table = function(v) if type(v) ~= "table" then return "a table" end end,
  userdata = function(v) if type(v) ~= "userdata" then return "a userdata" end end,
  ["function"] = function(v) if type(v) ~= "function" then return "a function" end end,
  number = function(v) if type(v) ~= "number" or v ~= v then return "a number" end end,
  any_number = function(v) if type(v) ~= "number" then return "a number" end end, -- NaN and inf too
  integer = function(v) if not is_int(v) then return "an integer" end end,
  positive_int = function(v) if not is_int(v) or v < 1 then return "a positive integer" end end,
  nonneg_int = function(v) if not is_int(v) or v < 0 then return "an integer >= 0" end end,
  positive_number = function(v)
    if type(v) ~= "number" or not (v > 0) or v == math.huge then return "a finite number > 0" end
  end,
  nonneg_number = function(v)
    if type(v) ~= "number" or not (v >= 0) or v == math.huge then return "a finite number >= 0" end
  end,
  unit_number = function(v)
    if type(v) ~= "number" or not (v >= 0 and v <= 1) then return "a number in [0, 1]" end
  end,
}
check.kinds = kinds

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

--- Checks an option table against {key = kind}; nil becomes {}. Integral floats are
-- turned into integers so the engine sees integers.
function check.options(fname, argn, opts, spec)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    fail(("%s: argument #%d must be an option table, got %s"):format(fname, argn, type(opts)))
  end
  local out = {}
  for k, v in pairs(opts) do
    local kind = spec[k]
    if kind == nil then
      fail(("%s: unknown option '%s' (valid: %s)"):format(fname, tostring(k),
        table.concat(sorted_keys(spec), ", ")))
    end
    local expected = kinds[kind](v)
    if expected then
      fail(("%s: option '%s' must be %s, got %s"):format(fname, k, expected, describe(v)))
    end
    if (kind == "integer" or kind == "positive_int" or kind == "nonneg_int") and math.type(v) == "float" then
      v = math.tointeger(v)
    end
    out[k] = v
  end
  return out
end

-- The message for an argument that is not of `kind`, or nil when it is. (The checks
-- below call fail themselves, so that the level of the error is the same for all.)
local function bad_value(kind, fname, argn, name, v)
  local expected = kinds[kind](v)
  if expected then
    return ("%s: argument #%d (%s) must be %s, got %s"):format(fname, argn, name, expected, describe(v))
  end
  return nil
end

--- Checks an argument against one of the kinds above ("string", "nonneg_int", ...).
function check.arg(kind, fname, argn, name, v)
  local msg = bad_value(kind, fname, argn, name, v)
  if msg then fail(msg) end
end

-- Shorthands; tail calls, so the error still blames the public function's caller.
function check.positive_int(...) return check.arg("positive_int", ...) end
function check.integer(...) return check.arg("integer", ...) end

--- The same for an optional argument: nil is fine.
function check.optional(kind, fname, argn, name, v)
  local msg = v ~= nil and bad_value(kind, fname, argn, name, v)
  if msg then fail(msg) end
end

-- The length of v when it is a list: a table, or a userdata with a length and
-- indexing (a tensor); else nil and, for a userdata whose length cannot be read
-- (a freed tensor), why.
local function list_length(v)
  if type(v) == "table" then return #v end
  local mt = type(v) == "userdata" and getmetatable(v)
  if type(mt) ~= "table" or mt.__len == nil or mt.__index == nil then return nil end
  local ok, n = pcall(function() return #v end)
  if not ok then return nil, tostring(n):match("%(([^()]*)%)$") or tostring(n) end
  return n
end

-- Raises unless v is a list (what: "a list of numbers" etc.); returns its length.
local function check_list(fname, argn, name, v, what)
  local n, why = list_length(v)
  if why then
    fail(("%s: argument #%d (%s) must be %s, got a userdata that cannot be read: %s"):format(fname, argn, name,
      what, why))
  elseif n == nil then
    fail(("%s: argument #%d (%s) must be %s, got %s"):format(fname, argn, name, what, describe(v)))
  elseif math.type(n) ~= "integer" then
    fail(("%s: argument #%d (%s) must be %s, got a length of %s"):format(fname, argn, name, what, describe(n)))
  end
  return n
end

--- Checks that v is a list (a table or a tensor); returns its length.
function check.list(fname, argn, name, v, what)
  return (check_list(fname, argn, name, v, what or "a list"))
end

--- Checks that v is a list of numbers (NaN and infinities included); with holes_ok,
-- nil elements (absent values) are allowed too. Returns its length.
function check.number_list(fname, argn, name, v, holes_ok)
  local n = check_list(fname, argn, name, v, "a list of numbers")
  for i = 1, n do
    local x = v[i]
    if type(x) ~= "number" and not (holes_ok and x == nil) then
      fail(("%s: argument #%d (%s) must be a list of numbers, got %s at index %d"):format(fname, argn, name,
        describe(x), i))
    end
  end
  return n
end

function check.number_in(fname, argn, name, v, lo, hi)
  if type(v) ~= "number" or not (v >= lo and v <= hi) then
    fail(("%s: argument #%d (%s) must be a number in [%s, %s], got %s"):format(fname, argn, name,
      lo, hi, describe(v)))
  end
end

--- Checks that a method was called on an object whose metatable is mt (`net.train{}`
-- instead of `net:train{}` passes the options as self).
function check.self(fname, v, mt, what)
  if getmetatable(v) ~= mt then
    fail(("%s: must be called on a %s (with ':'), got %s"):format(fname, what, describe(v)))
  end
end

function check.arg_type(fname, argn, name, v, want)
  if type(v) ~= want then
    fail(("%s: argument #%d (%s) must be a %s, got %s"):format(fname, argn, name, want, type(v)))
  end
end

return check
