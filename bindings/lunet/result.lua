-- lunet.result: the outcome of one experiment (several runs of the same
-- configuration), its summary statistics, and its on-disk form.
--
-- On disk a result is two files written side by side:
--   <prefix>.csv   one row per iteration: summary columns then one per run,
--                  for spreadsheets / pandas / gnuplot;
--   <prefix>.json  everything needed to rebuild the Result (Result.load).

local stats = require("lunet.stats")
local check = require("lunet.check")
local format = require("lunet.format")
local fs = require("lunet.fs")
local cjson = require("cjson")

-- A private cjson instance so that settings made here never leak into (or
-- are changed by) other code using the global cjson module.
local json = cjson.new()

local Result = {}
Result.__index = Result

local FORMAT = "lunet-result"
local VERSION = 1

local NEW_KEYS = { name = "any", config = "any", provenance = "any", runs = "any" } -- checked below
local PLATEAU_KEYS = { window = "positive_int", tol = "nonneg_number" } -- as in stats.plateau

local function copy_series(s)
  local out = {}
  for i = 1, #s do
    out[i] = s[i]
  end
  return out
end

-- Shallow copy of a run record with its loss series copied too, so later
-- changes by the caller cannot alter a result after its statistics are made.
local function copy_run(run)
  local out = {}
  for k, v in pairs(run) do
    out[k] = v
  end
  out.loss = copy_series(run.loss or {})
  return out
end

-- Validation curves (runs trained with validate =): the k-th validation of every run is
-- at the same iteration (every validate_every iterations; a run that stopped early has
-- fewer), so they are summarised by index like the loss, and val_iterations is the
-- longest run's list. Like the loss, each point is over the runs that reached it (n).
local function validation_stats(self, flags)
  local vl, va, at = {}, {}, {}
  for r, run in ipairs(self.runs) do
    if type(run.val_loss) == "table" and type(run.val_iterations) == "table" then
      vl[r], va[r] = run.val_loss, run.val_accuracy or {}
      if #run.val_iterations > #at then at = run.val_iterations end
    else
      vl[r], va[r] = {}, {}
    end
  end
  if #at == 0 then return end
  local s = stats.summarize(vl, flags)
  local a = stats.summarize(va, flags)
  self.val_iterations = copy_series(at)
  self.val_mean, self.val_std, self.val_ci_low, self.val_ci_high = s.mean, s.std, s.ci_low, s.ci_high
  self.val_n = s.n
  self.val_accuracy_mean, self.val_accuracy_std = a.mean, a.std
end

--- Build a result from {name=, config=, provenance=, runs={...}}.
-- Each run is a table {loss={...}, seed=, diverged=bool, interrupted=bool,
-- test_loss=, test_accuracy=, ...}; extra run fields are kept as they are.
-- Diverged runs are left out of the statistics (counted in left_out).
function Result.new(t)
  t = check.options("Result.new", 1, t, NEW_KEYS)
  if t.name ~= nil and type(t.name) ~= "string" and type(t.name) ~= "number" then
    error("Result.new: option 'name' must be a string, got " .. type(t.name), 2)
  end
  for _, k in ipairs({ "config", "provenance" }) do
    if t[k] ~= nil and type(t[k]) ~= "table" then
      error(("Result.new: option '%s' must be a table, got %s"):format(k, type(t[k])), 2)
    end
  end
  if t.runs ~= nil and type(t.runs) ~= "table" then
    error("Result.new: runs must be an array of run tables, got " .. type(t.runs), 2)
  end
  local self = setmetatable({}, Result)
  self.name = t.name
  self.config = t.config or {}
  self.provenance = t.provenance or {}
  self.runs = {}
  local series, flags = {}, {}
  for r, run in ipairs(t.runs or {}) do
    if type(run) ~= "table" then
      error(string.format("Result.new: runs[%d] must be a table, got %s", r, type(run)), 2)
    end
    if run.loss ~= nil and type(run.loss) ~= "table" then
      error(string.format("Result.new: runs[%d].loss must be an array of numbers, got %s", r, type(run.loss)), 2)
    end
    for i = 1, run.loss and #run.loss or 0 do
      local v = run.loss[i]
      if v ~= nil and type(v) ~= "number" then -- nil: an absent value, as in stats.summarize
        error(string.format("Result.new: runs[%d].loss must be an array of numbers, got %s at index %d", r,
          type(v), i), 2)
      end
    end
    local c = copy_run(run)
    self.runs[r] = c
    series[r] = c.loss
    flags[r] = c.diverged and true or false
  end
  local s = stats.summarize(series, flags)
  self.mean, self.std = s.mean, s.std
  self.ci_low, self.ci_high = s.ci_low, s.ci_high
  self.n, self.left_out = s.n, s.left_out
  self.iterations = #s.mean
  validation_stats(self, flags)
  return self
end

--- The runs that early stopping ended, as {iteration = stopped_at, count = runs}, sorted.
function Result:stopped()
  check.self("result:stopped", self, Result, "result")
  local counts = {}
  for _, r in ipairs(self.runs) do
    if math.type(r.stopped_at) == "integer" then counts[r.stopped_at] = (counts[r.stopped_at] or 0) + 1 end
  end
  local out = {}
  for it, c in pairs(counts) do out[#out + 1] = { iteration = it, count = c } end
  table.sort(out, function(x, y) return x.iteration < y.iteration end)
  return out
end

--- Iteration at which the mean curve plateaus (see stats.plateau), or nil.
function Result:plateau(opts)
  check.self("result:plateau", self, Result, "result")
  opts = check.options("result:plateau", 1, opts, PLATEAU_KEYS)
  return stats.plateau(self.mean, opts)
end

--- Mean and std at the last iteration that some kept run reached, plus that
-- iteration index. Returns NaN, NaN, nil when no run was kept.
function Result:final()
  check.self("result:final", self, Result, "result")
  for i = self.iterations, 1, -1 do
    if (self.n[i] or 0) > 0 then
      return self.mean[i], self.std[i], i
    end
  end
  return 0 / 0, 0 / 0, nil
end

--- Mean and sample std of the runs' test accuracy (and test loss), over the runs
-- that did not diverge and were evaluated; NaN when there are none.
function Result:test_summary()
  check.self("result:test_summary", self, Result, "result")
  local acc, loss = {}, {}
  for _, r in ipairs(self.runs) do
    if not r.diverged and type(r.test_accuracy) == "number" then
      acc[#acc + 1] = r.test_accuracy
      loss[#loss + 1] = r.test_loss
    end
  end
  if #acc == 0 then return 0 / 0, 0 / 0, 0 / 0, 0 / 0, 0 end
  return stats.mean(acc), stats.std(acc), stats.mean(loss), stats.std(loss), #acc
end

--- Plot this result (see lunet.plot for the options).
function Result:plot(opts)
  check.self("result:plot", self, Result, "result")
  -- Required lazily: plotting is optional and must not slow down or break
  -- loading results on machines without gnuplot.
  return require("lunet.plot").results({ self }, opts)
end

local fmt_number, fmt_value = format.number, format.value

-- The defaults of each optimizer (lunet.sgd, lunet.adam, lunet.adamw): a setting
-- equal to its default is left out of the printed config, any other is shown, so
-- two results that print alike were made alike.
-- (core.defaults.optimizers; only the OPTIMIZER_OPTIONAL fields are compared)
local OPTIMIZER_DEFAULTS = require("lunet.core").defaults.optimizers
local OPTIMIZER_OPTIONAL = { "dampening", "nesterov", "weight_decay", "betas", "eps" }

local function same_setting(a, b)
  if type(a) == "table" and type(b) == "table" then
    if #a ~= #b then return false end
    for i = 1, #a do if a[i] ~= b[i] then return false end end
    return true
  end
  return a == b
end

local function fmt_setting(v)
  if type(v) == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = fmt_value(v[i]) end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return fmt_value(v)
end

--- Result.optimizer_settings(config) -> {"lr=0.001", "momentum=0.4", ...}
-- The optimizer's settings as print(res) shows them: lr, momentum (SGD), and every
-- other setting (dampening, nesterov, weight_decay, betas, eps) that is not the
-- optimizer's default.
function Result.optimizer_settings(config)
  check.arg_type("Result.optimizer_settings", 1, "config", config, "table")
  local out = {}
  local defaults = OPTIMIZER_DEFAULTS[config.optimizer] or {}
  for _, k in ipairs({ "lr", "momentum" }) do
    if config[k] ~= nil then out[#out + 1] = k .. "=" .. fmt_setting(config[k]) end
  end
  for _, k in ipairs(OPTIMIZER_OPTIONAL) do
    local v = config[k]
    if v ~= nil and not same_setting(v, defaults[k]) then out[#out + 1] = k .. "=" .. fmt_setting(v) end
  end
  return out
end

local CONFIG_SHOWN = { "batch", "iterations", "unit", "runs", "n" }

-- The plateau window print(res) uses (stats.plateau's default).
local PLATEAU_WINDOW = 10
Result.PLATEAU_WINDOW = PLATEAU_WINDOW -- what print(res) and sweeps call too short for a plateau

function Result:__tostring()
  check.self("result:__tostring", self, Result, "result")
  local lines = {}
  lines[#lines + 1] = "lunet result " .. (self.name and string.format("%q", tostring(self.name)) or "(unnamed)")
  local cfg = {}
  if self.config.optimizer ~= nil then cfg[1] = "optimizer=" .. fmt_value(self.config.optimizer) end
  for _, item in ipairs(Result.optimizer_settings(self.config)) do cfg[#cfg + 1] = item end
  if self.config.loss ~= nil and self.config.loss ~= "nll" then cfg[#cfg + 1] = "loss=" .. fmt_value(self.config.loss) end
  for _, k in ipairs(CONFIG_SHOWN) do
    local v = self.config[k]
    if v ~= nil then
      cfg[#cfg + 1] = k .. "=" .. fmt_value(v)
    end
  end
  if #cfg > 0 then
    lines[#lines + 1] = "  config:  " .. table.concat(cfg, " ")
  end
  if self.provenance.interrupted then -- a partial result, as the session returns it after Ctrl-C
    lines[#lines + 1] = ("  interrupted: %d of %s runs"):format(#self.runs, tostring(self.config.runs or "?"))
  end
  local runs = "  runs:    " .. #self.runs
  if self.left_out > 0 then
    runs = runs .. string.format(" (%d left out as diverged)", self.left_out)
  end
  lines[#lines + 1] = runs
  local m, sd, at = self:final()
  if at then
    -- A single kept run has no spread (NaN std): leave the ± part out.
    local spread = sd == sd and (" ± " .. fmt_number(sd, "%.3g")) or ""
    lines[#lines + 1] = string.format("  final:   %s%s (iteration %d)", fmt_number(m, "%.6g"), spread, at)
  else
    lines[#lines + 1] = "  final:   none"
  end
  local unit = type(self.config.unit) == "string" and self.config.unit or "iteration"
  if self.iterations < PLATEAU_WINDOW then
    lines[#lines + 1] = ("  plateau: n/a (fewer iterations than the window of %d)"):format(PLATEAU_WINDOW)
  else
    local p = self:plateau { window = PLATEAU_WINDOW }
    lines[#lines + 1] = "  plateau: " .. (p and (unit .. " " .. p) or "none")
      .. (" (window %d, tol 1e-3)"):format(PLATEAU_WINDOW)
  end
  if self.val_mean and #self.val_mean > 0 then
    local k = #self.val_mean
    lines[#lines + 1] = string.format("  valid.:  loss %s, accuracy %.2f%% (%s %d, %d runs)",
      fmt_number(self.val_mean[k], "%.6g"), 100 * (self.val_accuracy_mean[k] or 0 / 0), unit,
      self.val_iterations[k], self.val_n[k])
  end
  local stopped = self:stopped()
  if #stopped > 0 then
    local parts, total = {}, 0
    for _, e in ipairs(stopped) do
      parts[#parts + 1] = e.count > 1 and ("%d (x%d)"):format(e.iteration, e.count) or tostring(e.iteration)
      total = total + e.count
    end
    lines[#lines + 1] = ("  stopped: %d runs early, after %s %s"):format(total, unit, table.concat(parts, ", "))
  end
  local acc, acc_sd, _, _, tested = self:test_summary()
  if tested > 0 then
    lines[#lines + 1] = string.format("  test:    accuracy %.2f%%%s over %d runs", 100 * acc,
      acc_sd == acc_sd and string.format(" ± %.2f", 100 * acc_sd) or "", tested)
  end
  local prov = self.provenance
  local cached, computed = prov.runs_cached, prov.runs_computed
  if math.type(cached) == "integer" and cached > 0 and cached >= #self.runs and (computed or 0) == 0 then
    -- nothing was computed now: the time of this call says nothing about the runs
    lines[#lines + 1] = ("  source:  all %d runs taken from the cache%s (computed earlier; fresh = true recomputes)")
      :format(cached, type(prov.store) == "string" and (" " .. prov.store) or "")
  elseif type(prov.seconds) == "number" then
    local from = ""
    if math.type(cached) == "integer" and cached > 0 then
      from = (" (%d runs computed, %d taken from the cache)"):format(computed or (#self.runs - cached), cached)
    end
    lines[#lines + 1] = "  time:    " .. fmt_number(prov.seconds, "%.2f") .. " s" .. from
  end
  if self.iterations > 0 then
    lines[#lines + 1] = "  mean:    " .. stats.sparkline(self.mean, 60)
  end
  return table.concat(lines, "\n")
end

---------------------------------------------------------------------------
-- Files
---------------------------------------------------------------------------

local write_atomic = fs.write_atomic

local function csv_number(v)
  if v == nil then
    return ""
  end
  return format.real(v, "%.9g")
end

function Result:to_csv()
  check.self("result:to_csv", self, Result, "result")
  local out = {}
  local header = { "iteration", "mean", "std", "ci_low", "ci_high" }
  for r = 1, #self.runs do
    header[#header + 1] = "run_" .. r
  end
  out[1] = table.concat(header, ",")
  for i = 1, self.iterations do
    local row = { tostring(i), csv_number(self.mean[i]), csv_number(self.std[i]),
      csv_number(self.ci_low[i]), csv_number(self.ci_high[i]) }
    for r = 1, #self.runs do
      row[#row + 1] = csv_number(self.runs[r].loss[i])
    end
    out[#out + 1] = table.concat(row, ",")
  end
  return table.concat(out, "\n") .. "\n"
end

-- JSON encoding. cjson 2.1.0 prints at most 14 significant digits, which
-- does not round-trip doubles (17 are needed), so numbers are formatted here
-- and cjson only escapes strings. Non-finite numbers become the strings
-- "NaN", "Infinity" and "-Infinity": the file stays valid JSON for any
-- reader (Python's float() accepts those strings too) and nothing is lost.
-- The decoder turns those exact strings back into numbers.

local function json_number(v)
  if math.type(v) == "integer" then
    return string.format("%d", v)
  end
  if v ~= v then
    return '"NaN"'
  elseif v == math.huge then
    return '"Infinity"'
  elseif v == -math.huge then
    return '"-Infinity"'
  end
  -- Shortest of 15/16/17 digits that reads back to the same double.
  for _, p in ipairs({ "%.15g", "%.16g", "%.17g" }) do
    local s = string.format(p, v)
    if tonumber(s) == v then
      return s
    end
  end
  return string.format("%.17g", v)
end

local function is_array(t)
  local n = #t
  local count = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      return false
    end
    count = count + 1
  end
  return count == n
end

local function encode(v, out, seen)
  local ty = type(v)
  if ty == "number" then
    out[#out + 1] = json_number(v)
  elseif ty == "string" then
    out[#out + 1] = json.encode(v)
  elseif ty == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif v == nil or v == cjson.null then
    out[#out + 1] = "null"
  elseif ty == "table" then
    if seen[v] then
      error("cannot encode a table that contains itself", 0)
    end
    seen[v] = true
    -- Empty tables are written as []: every empty table in a result is a
    -- series or a run list (or an empty config, which reads back the same).
    if next(v) == nil then
      out[#out + 1] = "[]"
    elseif is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then
          out[#out + 1] = ","
        end
        encode(v[i], out, seen)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        local kt = type(k)
        if kt ~= "string" and kt ~= "number" then
          error("cannot encode a table key of type " .. kt, 0)
        end
        keys[#keys + 1] = tostring(k)
      end
      -- Sorted keys: identical results give byte-identical files (diffable).
      table.sort(keys)
      local first = true
      local map = {}
      for k, val in pairs(v) do
        map[tostring(k)] = val
      end
      out[#out + 1] = "{"
      for _, k in ipairs(keys) do
        if not first then
          out[#out + 1] = ","
        end
        first = false
        out[#out + 1] = json.encode(k)
        out[#out + 1] = ":"
        encode(map[k], out, seen)
      end
      out[#out + 1] = "}"
    end
    seen[v] = nil
  else
    error("cannot encode a value of type " .. ty, 0)
  end
end

local function to_json(v)
  local out = {}
  local ok, err = pcall(encode, v, out, {})
  if not ok then
    return nil, err
  end
  return table.concat(out)
end

local SPECIAL = { NaN = 0 / 0, Infinity = math.huge, ["-Infinity"] = -math.huge }

-- Undo the encoding of non-finite numbers; cjson.null becomes nil (only
-- ever produced by hand-edited files). With `integers`, integral floats go
-- back to integers, since cjson reads every number as a float and counts
-- such as config.iterations should print as 1000, not 1000.0.
local function revive(v, integers)
  if type(v) == "string" then
    local s = SPECIAL[v]
    if s then
      return s
    end
    return v
  elseif type(v) == "number" then
    if integers then
      return math.tointeger(v) or v
    end
    return v
  elseif v == cjson.null then
    return nil
  elseif type(v) == "table" then
    local out = {}
    for k, x in pairs(v) do
      out[k] = revive(x, integers)
    end
    return out
  end
  return v
end

function Result:to_json()
  check.self("result:to_json", self, Result, "result")
  local doc = {
    format = FORMAT,
    version = VERSION,
    name = self.name,
    config = self.config,
    provenance = self.provenance,
    runs = self.runs,
    mean = self.mean,
    std = self.std,
    ci_low = self.ci_low,
    ci_high = self.ci_high,
    n = self.n,
    left_out = self.left_out,
  }
  -- One top-level field per line: small diffs between two saved results.
  local keys = {}
  for k in pairs(doc) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local text, err = to_json(doc[k])
    if not text then
      return nil, k .. ": " .. tostring(err)
    end
    parts[#parts + 1] = "  " .. json.encode(k) .. ": " .. text
  end
  return "{\n" .. table.concat(parts, ",\n") .. "\n}"
end

--- Write prefix..".csv" and prefix..".json" atomically (parent directories
-- are created). Returns true, or nil and a message; never raises on I/O.
function Result:save(prefix)
  check.self("result:save", self, Result, "result")
  check.arg("nonempty_string", "result:save", 1, "prefix", prefix)
  local text, err = self:to_json()
  if not text then
    return nil, "save: cannot encode result as JSON: " .. tostring(err)
  end
  local ok, werr = write_atomic(prefix .. ".csv", self:to_csv())
  if not ok then
    return nil, "save: " .. tostring(werr)
  end
  ok, werr = write_atomic(prefix .. ".json", text .. "\n")
  if not ok then
    return nil, "save: " .. tostring(werr)
  end
  return true
end

--- Read a result written by Result:save (the .json file; a path without the
-- .json extension is accepted too). Returns the Result or nil, message; raises
-- only when path is not a string.
function Result.load(path)
  check.arg_type("Result.load", 1, "path", path, "string")
  local f = io.open(path, "rb")
  if not f and not path:match("%.json$") then
    path = path .. ".json"
    f = io.open(path, "rb")
  end
  if not f then
    return nil, "load: cannot open " .. path
  end
  local text = f:read("a")
  f:close()
  local ok, doc = pcall(json.decode, text or "")
  if not ok then
    return nil, "load: " .. path .. ": corrupt JSON: " .. tostring(doc)
  end
  if type(doc) ~= "table" or doc.format ~= FORMAT then
    return nil, "load: " .. path .. ": not a lunet result (format tag is not '" .. FORMAT .. "')"
  end
  if doc.version ~= VERSION then
    return nil, "load: " .. path .. ": unsupported lunet-result version " .. tostring(doc.version)
  end
  local runs = {}
  for r, run in ipairs(type(doc.runs) == "table" and doc.runs or {}) do
    if type(run) ~= "table" then
      return nil, "load: " .. path .. ": runs[" .. r .. "] is not an object"
    end
    local c = {}
    for k, v in pairs(run) do
      c[k] = revive(v, k ~= "loss")
    end
    if type(c.loss) ~= "table" then
      c.loss = {}
    end
    runs[r] = c
  end
  local name = doc.name
  if name == cjson.null then
    name = nil
  end
  -- The summary is recomputed from the runs rather than trusted from the
  -- file: the same code produced it, so it is equal, and a hand-edited run
  -- cannot leave a stale mean behind.
  local rok, res = pcall(Result.new, {
    name = name,
    config = type(doc.config) == "table" and revive(doc.config, true) or {},
    provenance = type(doc.provenance) == "table" and revive(doc.provenance, true) or {},
    runs = runs,
  })
  if not rok then
    return nil, "load: " .. path .. ": " .. tostring(res)
  end
  return res
end

--- The exact JSON encoder of result files (numbers round-trip bit for bit, keys
-- sorted), for other on-disk forms: the run store (lunet.store). text or nil, message.
Result.encode_json = to_json

--- Decodes what encode_json wrote ("NaN", "Infinity", "-Infinity" become numbers
-- again; numbers stay floats). value or nil, message.
function Result.decode_json(text)
  local ok, doc = pcall(json.decode, text)
  if not ok then return nil, tostring(doc) end
  return revive(doc, false)
end

return Result
