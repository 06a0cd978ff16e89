--- lunet.experiment: repeat-run experiments and sweeps.
-- An experiment is R independent training runs of one configuration. The runs go to
-- the C thread pool (lunet.core.runs); run r draws all its randomness from a seed
-- derived from (seed, r), so results are bit-identical for any thread count.
-- Finished runs are cached under the output directory, keyed by a hash of the full
-- configuration (data checksum and engine revision included), so running the same
-- script again, or resuming after Ctrl-C, only computes what is missing.
local core = require("lunet.core")
local check = require("lunet.check")
local Result = require("lunet.result")
local plot = require("lunet.plot")
local stats = require("lunet.stats")
local Progress = require("lunet.progress")
local fs = require("lunet.fs")

local M = {}

-- ------------------------------------------------------------ small helpers

-- A canonical text form of a value: sorted keys, exact numbers (%a for floats),
-- so equal configurations hash equally.
local function canonical(v)
  local t = type(v)
  if t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. canonical(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return ("%a"):format(v)
  end
  return tostring(v)
end

-- FNV-1a, 64 bits (Lua integers wrap modulo 2^64), printed as 16 hex digits.
local function hash(s)
  local h = -3750763034362895579 -- 0xcbf29ce484222325
  for i = 1, #s do
    h = h ~ s:byte(i)
    h = h * 1099511628211
  end
  return ("%016x"):format(h)
end
M.hash = hash

local mkdir_p, write_atomic = fs.mkdir_p, fs.write_atomic

local function cpu_name()
  local f = io.open("/proc/cpuinfo", "r")
  if not f then return "unknown" end
  for line in f:lines() do
    local name = line:match("^model name%s*:%s*(.-)%s*$")
    if name then
      f:close()
      return name
    end
  end
  f:close()
  return "unknown"
end

local function describe_data(ds)
  local info = ds:_info() or {}
  return {
    name = info.name, split = info.split, first = info.first, subset = info.subset,
    count = ds:size(), shape = ds:shape(), checksum = ds:checksum(),
  }
end

local function describe_model(net)
  local parts = {}
  for i = 1, net:layer_count() do
    local l = net:layer(i)
    local o = {}
    for _, k in ipairs({ "in_channels", "out_channels", "in_features", "out_features", "features",
      "kernel", "stride", "padding", "p" }) do
      if l[k] ~= nil then o[#o + 1] = ("%s"):format(l[k]) end
    end
    if l.bias == false then o[#o + 1] = "nobias" end
    parts[#parts + 1] = l.kind .. (#o > 0 and ("(" .. table.concat(o, ",") .. ")") or "")
  end
  return table.concat(parts, " ")
end

-- ------------------------------------------------------------- experiment

local EXPERIMENT_KEYS = {
  name = "string", model = "any", data = "any", test = "any", loss = "string",
  optimizer = "any", batch = "positive_int", iterations = "positive_int", unit = "string",
  runs = "positive_int", seed = "integer", threads = "nonneg_int", shuffle = "boolean",
  quiet = "boolean", out = "string", fresh = "boolean", keep_steps = "boolean", cache = "boolean",
  test_at = "table", schedule = "table", validate = "any", validate_every = "positive_int", stop = "table",
}
M.EXPERIMENT_KEYS = EXPERIMENT_KEYS
-- Most runs one experiment may have (the engine's limit, lunet.core.runs).
local MAX_RUNS = 1000000

local function template_net(model, f)
  if type(model) == "function" then
    local ok, net = xpcall(model, debug.traceback)
    if not ok then
      if type(net) ~= "string" then error(net, 0) end -- an error object, unchanged
      net = net:gsub("attempt to yield from outside a coroutine", "the model function cannot yield")
      error(f .. ": option 'model' failed: " .. net, 4)
    end
    if getmetatable(net) ~= core.Net then
      error(f .. ": option 'model' must return a net (got " .. type(net) .. ")", 4)
    end
    return net
  elseif getmetatable(model) == core.Net then
    return model
  end
  error(f .. ": option 'model' must be a function returning a net, or a net (got " .. type(model) .. ")", 4)
end

-- The cache holds, per run index, the longest run computed so far for this
-- configuration (iterations are not part of its key: the first I iterations of a
-- run do not depend on how many follow, so a 100-epoch run also answers a 50-epoch
-- question, including its test figures when they were recorded at iteration 50).
local function load_cache(path, key)
  local f = io.open(path, "rb")
  if not f then return {} end
  f:close()
  local res = Result.load(path)
  if not res or not res.provenance or res.provenance.cache_key ~= key then return {} end
  local runs = {}
  for _, r in ipairs(res.runs) do
    if math.type(r.index) == "integer" then runs[r.index] = r end
  end
  return runs
end

local function save_cache(path, name, config, key, by_index, runs_total)
  local list = {}
  for r = 1, math.max(runs_total, #by_index) do if by_index[r] then list[#list + 1] = by_index[r] end end
  local res = Result.new { name = name, config = config, provenance = { cache_key = key }, runs = list }
  return write_atomic(path, res:to_json())
end

local function test_at(record, iteration)
  for _, t in ipairs(record.tests or {}) do
    if t.iteration == iteration then return t end
  end
  return nil
end

-- The validations of a record up to `iterations`; nil when a run of that length would
-- have validated after its last iteration and the record did not (validate_every).
local function validations_of(record, iterations, ended_early)
  if not record.val_iterations then return {} end
  local v = { val_iterations = {}, val_loss = {}, val_accuracy = {} }
  for k, it in ipairs(record.val_iterations) do
    if it <= iterations then
      v.val_iterations[k], v.val_loss[k], v.val_accuracy[k] = it, record.val_loss[k], record.val_accuracy[k]
    end
  end
  if not ended_early and v.val_iterations[#v.val_iterations] ~= iterations then return nil end
  return v
end

-- The run as an experiment of `iterations` iterations sees it, or nil when the
-- cached record cannot answer (too short, or test figures missing). A run that early
-- stopping ended answers any longer question, as a diverged one does.
local function view_of(record, iterations, need_test)
  local n = #record.loss
  local stopped = math.type(record.stopped_at) == "integer" and record.stopped_at < iterations
  local val = validations_of(record, iterations, stopped or (record.diverged and n <= iterations))
  if not val then return nil end
  if stopped then
    local t = need_test and test_at(record, record.stopped_at) or nil
    if need_test and not t then return nil end
    return { index = record.index, seed = record.seed, loss = record.loss, diverged = false,
      stopped_at = record.stopped_at, test_loss = t and t.loss or nil, test_accuracy = t and t.accuracy or nil,
      seconds = record.seconds, samples = record.samples, step_loss = record.step_loss,
      val_iterations = val.val_iterations, val_loss = val.val_loss, val_accuracy = val.val_accuracy }
  end
  if n < iterations then
    if not record.diverged then return nil end
    if need_test then return { index = record.index, seed = record.seed, loss = record.loss, diverged = true,
      seconds = record.seconds, samples = record.samples } end
  end
  local t = need_test and test_at(record, iterations) or nil
  if need_test and not t and not (record.diverged and n <= iterations) then return nil end
  local loss = {}
  for i = 1, math.min(n, iterations) do loss[i] = record.loss[i] end
  return {
    index = record.index, seed = record.seed, loss = loss,
    diverged = record.diverged and n <= iterations or false,
    test_loss = t and t.loss or nil, test_accuracy = t and t.accuracy or nil,
    seconds = record.seconds, samples = record.samples, step_loss = record.step_loss,
    val_iterations = val.val_iterations, val_loss = val.val_loss, val_accuracy = val.val_accuracy,
  }
end

--- lunet.experiment{name = "experiment", model, data, test = none, loss = "nll",
---   optimizer = lunet.sgd{} (lr 0.01), batch = 64, iterations = 1, unit = "epoch",
---   runs = 20, seed = 1, threads = cores, shuffle = true, out = "out", cache = true,
---   fresh = false, test_at = {}, keep_steps = false, quiet = false, schedule = none,
---   validate = none, validate_every = 1, stop = none}
-- model: a function returning a fresh net (or a net); data: the training dataset;
-- test: a dataset for every run's final loss and accuracy, also recorded at the
-- iterations listed in test_at. Finished runs are cached under out/cache (cache =
-- false: not at all; fresh = true: recompute); keep_steps keeps every step's loss
-- (res.runs[r].step_loss); quiet silences the progress display.
-- schedule, validate (a dataset), validate_every and stop as net:train's; they are part
-- of the configuration and its store key. With validate: res.val_mean / val_std /
-- val_ci_low / val_ci_high per validation (at res.val_iterations). Each run stops on its
-- own (res.runs[r].stopped_at); a stopped run answers any longer question from the store.
-- Runs of different lengths: each iteration's mean and spread are over the runs that
-- reached it (res.n[i]).
-- Returns a Result (lunet.help("result")): res.mean / std / ci_low / ci_high per
-- iteration, res.runs[r].loss, :save(prefix), :plot{file}, :plateau{}, print(res).
function M.experiment(lunet, opts)
  local f = "lunet.experiment"
  opts = check.options(f, 1, opts, EXPERIMENT_KEYS)
  -- the limits first: everything below may loop over the runs
  local runs = opts.runs or 20
  if runs > MAX_RUNS then error(("%s: option 'runs' must be at most %d (got %d)"):format(f, MAX_RUNS, runs), 3) end
  if (opts.threads or 0) > 256 then error(f .. ": option 'threads' must be at most 256", 3) end
  if opts.model == nil then error(f .. ": option 'model' is required", 3) end
  lunet._check_datasets(f, opts, 3, true)
  local train = lunet.train_config(opts, f, 3)
  local net = template_net(opts.model, f)
  local threads = opts.threads or core.cpu_count()
  if threads == 0 then threads = core.cpu_count() end
  local name = opts.name or "experiment"

  -- Everything that decides the numbers, and nothing that does not (threads, out).
  local optim = {}
  for k, v in pairs(train.optimizer) do optim[k] = v end
  local config = {
    name = name, model = describe_model(net), data = describe_data(opts.data),
    test = opts.test and describe_data(opts.test) or nil,
    -- schedule and stop are tables: the key's canonical form covers their contents
    schedule = train.schedule, stop = train.stop,
    validate = train.validate and describe_data(train.validate) or nil,
    validate_every = train.validate and train.validate_every or nil,
    loss = train.loss, optimizer = optim.kind, batch = train.batch, iterations = train.iterations,
    unit = train.unit, runs = runs, seed = train.seed, shuffle = train.shuffle,
    n = opts.data:size(),
  }
  for k, v in pairs(optim) do if k ~= "kind" then config[k] = v end end
  local keyed = {}
  for k, v in pairs(config) do if k ~= "iterations" then keyed[k] = v end end
  local key = canonical({ config = keyed, engine = core.engine_revision, version = core.version,
    isa = core.isa(), steps = opts.keep_steps or false })
  local digest = hash(key)

  local iterations = train.iterations
  local need_test = opts.test ~= nil
  local test_iterations = { iterations }
  for _, i in ipairs(opts.test_at or {}) do
    if math.type(i) ~= "integer" or i < 1 or i > iterations then
      error(f .. ": option 'test_at' must list iterations in [1, iterations]", 3)
    end
    if i ~= iterations then test_iterations[#test_iterations + 1] = i end
  end

  local out = opts.out or "out"
  local use_cache = opts.cache ~= false
  local cache_path = ("%s/cache/%s-%s.json"):format(out, name:gsub("[^%w%-_.]", "_"), digest)
  local by_index = {}
  if use_cache and not opts.fresh then by_index = load_cache(cache_path, key) end

  local views, only, missing, cached = {}, {}, 0, 0
  for r = 1, runs do
    views[r] = by_index[r] and view_of(by_index[r], iterations, need_test)
    only[r] = views[r] == nil
    if only[r] then missing = missing + 1 else cached = cached + 1 end
  end

  local started = os.time()
  local clock0 = os.clock()
  local progress = Progress.new { total_runs = runs, total_iterations = iterations,
    mode = Progress.mode(opts.quiet, core.isatty(2)), label = name }
  local interrupted = false
  local wall_seconds, samples = 0, 0
  -- Runs side by side while there are as many runs to compute as threads (they share
  -- nothing); with fewer, the spare threads go inside the runs. Same numbers either way.
  local side = math.max(1, math.min(threads, missing))
  local per_run = math.max(1, threads // side)
  if missing > 0 then
    local list, failure
    local function report(p)
      progress:update { runs_done = p.runs_done + cached, iterations_done = p.iterations_done +
        cached * iterations, seconds = p.seconds, loss = p.loss == p.loss and p.loss or nil,
        samples_per_second = p.seconds > 0 and p.samples / p.seconds or nil }
      wall_seconds, samples = p.seconds, p.samples
    end
    list, interrupted = core.runs {
      net = net, data = opts.data, test = opts.test, train = train, runs = runs, threads = side,
      threads_per_run = per_run,
      only = only, test_at = need_test and test_iterations or nil, keep_steps = opts.keep_steps or false,
      -- a failing progress display stops the runs (true) instead of raising through
      -- lunet.core.runs, so the finished ones reach the cache before the error is raised
      progress = function(p)
        local ok, err = xpcall(report, debug.traceback, p)
        if not ok then
          failure = failure or err
          return true
        end
      end,
    }
    for r = 1, runs do
      local run = list[r]
      if run and run.done then
        local tests = {}
        for it, t in pairs(run.tests or {}) do
          tests[#tests + 1] = { iteration = it, loss = t.loss, accuracy = t.accuracy }
        end
        -- a run that stopped early was tested after its last iteration
        if run.stopped_at and run.test_loss and not (run.tests and run.tests[run.stopped_at]) then
          tests[#tests + 1] = { iteration = run.stopped_at, loss = run.test_loss, accuracy = run.test_accuracy }
        end
        table.sort(tests, function(a, b) return a.iteration < b.iteration end)
        local record = {
          index = r, seed = run.seed, loss = run.loss, diverged = run.diverged,
          tests = #tests > 0 and tests or nil, seconds = run.seconds, samples = run.samples,
          step_loss = opts.keep_steps and run.step_loss or nil, stopped_at = run.stopped_at,
          val_iterations = run.val_iterations, val_loss = run.val_loss, val_accuracy = run.val_accuracy,
        }
        -- keep the longer record: it answers every shorter question too
        local old = by_index[r]
        if not old or #old.loss <= #record.loss then by_index[r] = record end
        views[r] = view_of(record, iterations, need_test)
      end
    end
    if use_cache then
      local ok, err = mkdir_p(out .. "/cache")
      if ok then ok, err = save_cache(cache_path, name, config, key, by_index, runs) end
      if not ok then io.stderr:write(("lunet.experiment: cannot write the cache %s: %s\n"):format(cache_path, tostring(err))) end
    end
    if failure then error(("%s: the progress display failed (finished runs are cached): %s"):format(f, tostring(failure)), 3) end
  end

  local kept = {}
  for r = 1, runs do if views[r] then kept[#kept + 1] = views[r] end end
  collectgarbage() -- the run tables of a long experiment are garbage now
  local res = Result.new {
    name = name, config = config,
    provenance = {
      lunet = core.version, engine_revision = core.engine_revision, lua = _VERSION,
      threads = threads, runs_side_by_side = side, threads_per_run = per_run, cpu = cpu_name(), isa = core.isa(), date = os.date("!%Y-%m-%dT%H:%M:%SZ", started),
      seconds = wall_seconds, cpu_seconds = os.clock() - clock0,
      samples_per_second = wall_seconds > 0 and samples / wall_seconds or nil,
      runs_computed = #kept - cached, runs_cached = cached, interrupted = interrupted or nil,
      cache = use_cache and cache_path or nil,
    },
    runs = kept,
  }
  if interrupted then
    progress:finish()
    io.stderr:write(("%s: interrupted: %d of %d runs finished and are kept%s\n"):format(name, #kept, runs,
      use_cache and (" (cached in " .. cache_path .. "; run again to resume)") or ""))
  elseif missing > 0 then
    progress:finish(("%s: %d runs in %.1f s%s"):format(name, missing, wall_seconds,
      cached > 0 and (", %d from the cache"):format(cached) or ""))
  end
  return res
end

-- ------------------------------------------------------------------- sweep

local OPTIMIZER_FIELDS = { lr = true, momentum = true, dampening = true, nesterov = true,
  weight_decay = true, betas = true, eps = true }

local Sweep = { __name = "lunet.Sweep" }
Sweep.__index = Sweep

-- A grid value as text for cell names, tables and CSV: a table (a schedule) in a
-- canonical form, its kind first and then its other fields sorted: cosine(per=epoch,t_max=10).
local function value_label(v)
  if type(v) ~= "table" then return tostring(v) end
  local keys, parts = {}, {}
  for k in pairs(v) do if k ~= 1 and k ~= "kind" then keys[#keys + 1] = k end end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. value_label(v[k]) end
  local kind = v.kind or v[1]
  if kind == nil then return "{" .. table.concat(parts, ",") .. "}" end
  return tostring(kind) .. "(" .. table.concat(parts, ",") .. ")"
end
M.value_label = value_label

local METRICS = { final_mean = true, final_std = true, plateau = true, test_accuracy = true }

local function metric_of(res, metric)
  if metric == "final_mean" or metric == "final_std" then
    local m, s = res:final()
    return metric == "final_mean" and m or s
  elseif metric == "plateau" then
    return res:plateau() or (0 / 0)
  end
  return (res:test_summary()) -- test_accuracy
end

--- lunet.sweep{name = base.name or "sweep", base = {experiment options},
---   grid = {lr = {...}, momentum = {...}}, quiet = base.quiet}
-- Runs every combination (optimizer fields such as lr and momentum go into the
-- optimizer). Returns a Sweep: sweep.cells[i] = {params = {...}, result = Result}.
function M.sweep(lunet, opts)
  local f = "lunet.sweep"
  opts = check.options(f, 1, opts, { name = "string", base = "table", grid = "table", quiet = "boolean" })
  if not opts.base or not opts.grid then error(f .. ": options 'base' and 'grid' are required", 3) end
  local axes = {}
  for k, values in pairs(opts.grid) do
    if not (OPTIMIZER_FIELDS[k] or EXPERIMENT_KEYS[k]) then
      error(("%s: grid key '%s' is neither an experiment option nor an optimizer field"):format(f, tostring(k)), 3)
    end
    if type(values) ~= "table" or #values == 0 then
      error(("%s: grid '%s' must be a non-empty list of values"):format(f, tostring(k)), 3)
    end
    axes[#axes + 1] = k
  end
  table.sort(axes)
  local base_optim = lunet.optimizer_spec(opts.base.optimizer or lunet.sgd {}, f, 3)
  local name = opts.name or opts.base.name or "sweep"
  local cells = {}
  local function walk(i, params)
    if i > #axes then
      local cfg, optim = {}, { base_optim.kind }
      for k, v in pairs(opts.base) do cfg[k] = v end
      for k, v in pairs(base_optim) do if k ~= "kind" then optim[k] = v end end
      local label = {}
      for _, k in ipairs(axes) do
        if OPTIMIZER_FIELDS[k] then optim[k] = params[k] else cfg[k] = params[k] end
        label[#label + 1] = ("%s=%s"):format(k, value_label(params[k]))
      end
      cfg.optimizer = optim
      cfg.name = name .. "-" .. table.concat(label, "-")
      if opts.quiet ~= nil then cfg.quiet = opts.quiet end
      local p = {}
      for k, v in pairs(params) do p[k] = v end
      cells[#cells + 1] = { params = p, result = M.experiment(lunet, cfg) }
      return
    end
    for _, v in ipairs(opts.grid[axes[i]]) do
      params[axes[i]] = v
      walk(i + 1, params)
    end
    params[axes[i]] = nil
  end
  walk(1, {})
  return setmetatable({ name = name, axes = axes, grid = opts.grid, cells = cells }, Sweep)
end

--- sweep:heatmap{file = none (the terminal), metric = "final_mean", x = first axis,
---   y = second axis, title = "NAME: final mean", logx = (x is lr), output = "stdout"}
function Sweep:heatmap(opts)
  local f = "sweep:heatmap"
  check.self(f, self, Sweep, "sweep")
  opts = check.options(f, 1, opts, { file = "string", metric = "string", x = "string",
    y = "string", title = "string", logx = "boolean", output = "string" })
  local x, y = opts.x or self.axes[1], opts.y or self.axes[2]
  if not y then error(f .. ": needs a grid with two axes", 2) end
  for _, k in ipairs({ "x", "y" }) do
    local axis = opts[k]
    if axis ~= nil and self.grid[axis] == nil then
      error(("%s: option '%s' must be an axis of the grid (%s), got %q"):format(f, k,
        table.concat(self.axes, ", "), axis), 2)
    end
  end
  local metric = opts.metric or "final_mean"
  if not METRICS[metric] then
    error(("%s: option 'metric' must be one of final_mean, final_std, plateau, test_accuracy (got %q)")
      :format(f, metric), 2)
  end
  local cells = {}
  for _, c in ipairs(self.cells) do
    cells[#cells + 1] = { x = c.params[x], y = c.params[y], value = metric_of(c.result, metric) }
  end
  return plot.heatmap(cells, { file = opts.file, xlabel = x, ylabel = y, output = opts.output,
    title = opts.title or (self.name .. ": " .. metric:gsub("_", " ")),
    logx = opts.logx == nil and x == "lr" or opts.logx })
end

--- sweep:rows() -> list of {params..., final_mean, final_std, plateau, test_accuracy}
function Sweep:rows()
  check.self("sweep:rows", self, Sweep, "sweep")
  local rows = {}
  for _, c in ipairs(self.cells) do
    local row = {}
    for k, v in pairs(c.params) do row[k] = v end
    row.final_mean, row.final_std = c.result:final()
    row.plateau = c.result:plateau()
    row.test_accuracy = c.result:test_summary()
    rows[#rows + 1] = row
  end
  return rows
end

--- sweep:save(prefix): prefix.csv with one row per cell
function Sweep:save(prefix)
  check.self("sweep:save", self, Sweep, "sweep")
  if type(prefix) ~= "string" or prefix == "" then
    error("sweep:save: argument #1 (prefix) must be a non-empty string, got " ..
      (type(prefix) == "string" and '""' or type(prefix)), 2)
  end
  local header = {}
  for _, k in ipairs(self.axes) do header[#header + 1] = k end
  for _, k in ipairs({ "final_mean", "final_std", "plateau", "test_accuracy" }) do header[#header + 1] = k end
  local lines = { table.concat(header, ",") }
  for _, row in ipairs(self:rows()) do
    local cells = {}
    for i, k in ipairs(header) do
      local v = row[k]
      cells[i] = v == nil and "" or (type(v) == "number" and ("%.9g"):format(v) or value_label(v))
      if cells[i]:find("[,\"]") then cells[i] = '"' .. cells[i]:gsub('"', '""') .. '"' end
    end
    lines[#lines + 1] = table.concat(cells, ",")
  end
  local dir = prefix:match("^(.*)/[^/]*$")
  if dir then
    local ok, err = mkdir_p(dir)
    if not ok then return nil, err end
  end
  return write_atomic(prefix .. ".csv", table.concat(lines, "\n") .. "\n")
end

function Sweep:__tostring()
  check.self("sweep:__tostring", self, Sweep, "sweep")
  local lines = { ("sweep %s: %d cells over %s"):format(self.name, #self.cells, table.concat(self.axes, " x ")) }
  for _, row in ipairs(self:rows()) do
    local p = {}
    for _, k in ipairs(self.axes) do p[#p + 1] = ("%s=%s"):format(k, value_label(row[k])) end
    lines[#lines + 1] = ("  %-32s final %.4f +- %.4f  plateau %s"):format(table.concat(p, " "),
      row.final_mean or 0 / 0, row.final_std or 0 / 0, row.plateau and tostring(row.plateau) or "none")
  end
  return table.concat(lines, "\n")
end

-- ---------------------------------------------------------------- install

function M.install(lunet)
  -- not tail calls: the errors raised at level 3 must land on the caller's line
  rawset(lunet, "experiment", function(opts)
    local res = M.experiment(lunet, opts)
    return res
  end)
  rawset(lunet, "sweep", function(opts)
    local sw = M.sweep(lunet, opts)
    return sw
  end)
  rawset(lunet, "plot", function(results, opts) return plot.results(results, opts) end)
  rawset(lunet, "load_result", Result.load)
  rawset(lunet, "Result", Result)
  rawset(lunet, "stats", stats)
  rawset(lunet, "Progress", Progress)
end

return M
