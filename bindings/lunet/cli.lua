--- lunet.cli: command-line options for experiment scripts.
--
-- A script names its options once, with their kinds and defaults, and gets a table of
-- values; `--help` prints the usage, and a bad argument ends the script with one line
-- that names the option and what it needs, then the usage (exit status 1 unless the
-- spec says otherwise):
--
--     local cli = require("lunet.cli")
--     local opts = cli.parse(arg, {
--       program = "sweep", usage = "usage: lunet run sweep.lua [--runs N] [--lr LIST] [--out DIR]",
--       options = {
--         runs = { "int", 3, min = 1 },             -- --runs 5
--         lr = { "numbers", { 1e-3, 1e-2 }, positive = true }, -- --lr 0.1,0.01
--         out = { "string", "out/sweep", what = "a directory" },
--         synthetic = { "flag" },                   -- --synthetic (false unless given)
--       },
--       rest = "images",                            -- other arguments -> opts.images
--     })
--
-- `--name value` and `--name=value` are both accepted; `--sweep-runs` sets
-- `sweep_runs`. Kinds: flag, string, int (min, max), number (min, max, positive) and
-- numbers (a comma-separated list; min, max, positive apply to each). Without `rest`,
-- an argument that is not an option is an error. cli.check(args, spec) is the same
-- but returns nil, message instead of ending the script (for scripts that report
-- errors their own way, and for tests). cli.fail(program, message) ends a script on
-- an error of its own in the same form.
-- @module lunet.cli
local M = {}

local KINDS = { flag = true, string = true, int = true, number = true, numbers = true }

-- What an option of this kind and range needs, as the error message says it.
local function needs(o)
  local kind = o[1]
  if kind == "string" then return o.what or "a value" end
  local adjective = ""
  if o.positive or (kind ~= "number" and o.min == 1) then
    adjective = "positive "
  elseif o.min == 0 then
    adjective = "non-negative "
  end
  local range = (o.min and o.min > 1) and (" >= %s"):format(o.min) or ""
  if o.max then range = range .. (" <= %s"):format(o.max) end
  if kind == "numbers" then return "a comma-separated list of " .. adjective .. "numbers" .. range end
  local noun = kind == "int" and "integer" or "number"
  local article = (adjective == "" and noun == "integer") and "an " or "a "
  return article .. adjective .. noun .. range
end

local function in_range(o, v)
  if o.positive and v <= 0 then return false end
  if o.min and v < o.min then return false end
  if o.max and v > o.max then return false end
  return true
end

-- The value of option `name` (spec o) from the text `s`, or nil.
local function convert(o, s)
  local kind = o[1]
  if kind == "string" then return s ~= "" and s or nil end
  if kind == "numbers" then
    local list = {}
    for item in s:gmatch("[^,]+") do
      local v = tonumber(item)
      if not v or v ~= v or not in_range(o, v) then return nil end
      list[#list + 1] = v
    end
    return #list > 0 and list or nil
  end
  local v = tonumber(s)
  if v == nil or v ~= v then return nil end
  if kind == "int" then
    v = math.tointeger(v)
    if v == nil then return nil end
  end
  return in_range(o, v) and v or nil
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = x end
  return t
end

local function check_spec(spec)
  if type(spec) ~= "table" or type(spec.options) ~= "table" then
    error("lunet.cli.parse: argument #2 must be a table with an 'options' table", 3)
  end
  for name, o in pairs(spec.options) do
    if type(o) ~= "table" or not KINDS[o[1]] then
      error(("lunet.cli.parse: option '%s' must be {kind, default}, kind one of flag, string, int, number,"
        .. " numbers"):format(tostring(name)), 3)
    end
  end
end

--- cli.check(args, spec) -> options, given | nil, message | nil, nil, "help"
-- As cli.parse, without printing or exiting: a bad argument gives nil and the message;
-- `--help` or `-h` gives nil, nil, "help".
function M.check(args, spec)
  check_spec(spec)
  local opts, given = {}, {}
  for name, o in pairs(spec.options) do
    if o[1] == "flag" then opts[name] = o[2] or false else opts[name] = copy(o[2]) end
  end
  if spec.rest then opts[spec.rest] = {} end
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then return nil, nil, "help" end
    local name, value = a:match("^%-%-([%w][%w%-_]*)=(.*)$")
    name = name or a:match("^%-%-([%w][%w%-_]*)$")
    if name then
      local key = name:gsub("%-", "_")
      local o = spec.options[key]
      if not o then return nil, ("unknown option '--%s'"):format(name) end
      if o[1] == "flag" then
        if value then return nil, ("--%s takes no value"):format(name) end
        opts[key], given[key] = true, true
      else
        if not value then
          value = args[i + 1]
          i = i + 1
        end
        if value == nil then return nil, ("--%s needs %s"):format(name, needs(o)) end
        local v = convert(o, value)
        if v == nil then return nil, ("--%s needs %s, got '%s'"):format(name, needs(o), value) end
        opts[key], given[key] = v, true
      end
    elseif spec.rest and a:sub(1, 1) ~= "-" then
      table.insert(opts[spec.rest], a)
    else
      return nil, ("unknown argument '%s'"):format(a)
    end
    i = i + 1
  end
  return opts, given
end

--- cli.parse(args, spec) -> options, given
-- spec: {program = name for messages, usage = text, options = {name = {kind, default, ...}},
-- rest = key for the other arguments, status = exit status on a bad argument (1)}.
-- `--help` prints the usage and exits 0; a bad argument prints "program: message" and
-- the usage on stderr and exits with spec.status. given[name] is true for the options
-- set on the command line (the others hold their defaults).
function M.parse(args, spec)
  -- check's second value is the message on failure and the `given` set on success
  local opts, given_or_err, help = M.check(args, spec)
  if help then
    print(spec.usage)
    os.exit(0)
  end
  if not opts then
    M.fail(spec.program, given_or_err .. (spec.usage and ("\n" .. spec.usage) or ""), spec.status)
  end
  return opts, given_or_err
end

--- cli.fail(program, message, status) ends the script: "program: message" on stderr
-- (program "lunet" when nil), exit status `status` (1). For a script's own errors after
-- its options are read, in the same form as a bad option's.
function M.fail(program, message, status)
  io.stderr:write(program or "lunet", ": ", tostring(message), "\n")
  os.exit(status or 1)
end

return M
