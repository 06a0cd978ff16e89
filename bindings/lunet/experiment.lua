--- lunet.experiment: repeat-run experiments and sweeps.
-- An experiment is R independent training runs of one configuration. The runs go to
-- the C thread pool (lunet.core.runs); run r draws all its randomness from a seed
-- derived from (seed, r), so results are bit-identical for any thread count.
-- Every run is written to the run store (lunet.store, under <out>/store/) the moment it
-- finishes, keyed by the settings (data checksum and engine revision included, the
-- experiment's name not): running the same settings again, from any experiment, after
-- a kill, or in several processes at once, only computes what is missing.
local core = require("lunet.core")
local check = require("lunet.check")
local format = require("lunet.format")
local Result = require("lunet.result")
local plot = require("lunet.plot")
local Progress = require("lunet.progress")
local fs = require("lunet.fs")
local store = require("lunet.store")
local training = require("lunet.config")

local M = {}

-- ------------------------------------------------------------ small helpers

M.hash = store.hash -- (kept for scripts that used it; plan.lua uses store.hash)

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
local MAX_RUNS = core.defaults.max_runs
local SIGNALS = { [1] = "SIGHUP", [2] = "SIGINT", [15] = "SIGTERM" }

local function template_net(model, f, level)
  if type(model) == "function" then
    local ok, net = xpcall(model, debug.traceback)
    if not ok then
      if type(net) ~= "string" then error(net, 0) end -- an error object, unchanged
      net = net:gsub("attempt to yield from outside a coroutine", "the model function cannot yield")
      error(f .. ": option 'model' failed: " .. net, level)
    end
    if getmetatable(net) ~= core.Net then
      error(f .. ": option 'model' must return a net (got " .. type(net) .. ")", level)
    end
    return net
  elseif getmetatable(model) == core.Net then
    return model
  end
  error(f .. ": option 'model' must be a function returning a net, or a net (got " .. type(model) .. ")", level)
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
-- stored record cannot answer (too short, or test figures missing). The first I
-- iterations of a run do not depend on how many follow, so a 100-epoch run also
-- answers a 50-epoch question, test figures included when recorded at iteration 50.
-- A run that early stopping ended answers any longer question, as a diverged one does.
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

local function optimizer_text(optim)
  local fields = {}
  for k, v in pairs(optim) do
    if k ~= "kind" then fields[#fields + 1] = ("%s=%s"):format(k, type(v) == "table" and (store.key(v)) or tostring(v)) end
  end
  table.sort(fields)
  return optim.kind .. " " .. table.concat(fields, " ")
end

-- Checks the options and decides everything before any run: the settings (the
-- store's key), the config shown in results, the iterations tested. Errors at `level`.
local function prepare(lunet, opts, f, level)
  -- the limits first: everything below may loop over the runs
  local runs = opts.runs or 20
  if runs > MAX_RUNS then error(("%s: option 'runs' must be at most %d (got %d)"):format(f, MAX_RUNS, runs), level) end
  if (opts.threads or 0) > core.defaults.max_threads then
    error(("%s: option 'threads' must be at most %d"):format(f, core.defaults.max_threads), level)
  end
  if opts.model == nil then error(f .. ": option 'model' is required", level) end
  lunet._check_datasets(f, opts, true)
  local train = training.train(opts, f)
  local net = template_net(opts.model, f, level + 1)
  local threads = opts.threads or core.cpu_count()
  if threads == 0 then threads = core.cpu_count() end
  local name = opts.name or "experiment"

  -- What the results show: everything that decides the numbers, and the name.
  local optim = {}
  for k, v in pairs(train.optimizer) do optim[k] = v end
  local config = {
    name = name, model = format.model(net), data = describe_data(opts.data),
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
  -- The store's key: what decides a run's numbers, and nothing else (not the name,
  -- the number of runs, the iterations, the threads or the output directory).
  local settings = { engine = core.engine_revision, version = core.version, isa = core.isa(),
    steps = opts.keep_steps or false }
  for k, v in pairs(config) do
    if k ~= "name" and k ~= "runs" and k ~= "iterations" and k ~= "n" then settings[k] = v end
  end

  local iterations = train.iterations
  local test_iterations = { iterations }
  for _, i in ipairs(opts.test_at or {}) do
    if math.type(i) ~= "integer" or i < 1 or i > iterations then
      error(f .. ": option 'test_at' must list iterations in [1, iterations]", level)
    end
    if i ~= iterations then test_iterations[#test_iterations + 1] = i end
  end
  return {
    opts = opts, name = name, runs = runs, threads = threads, train = train, net = net, config = config,
    settings = settings, iterations = iterations, need_test = opts.test ~= nil, test_iterations = test_iterations,
    out = opts.out or "out", use_store = opts.cache ~= false, fresh = opts.fresh or false,
    summary = ("%s; %s; %s; batch %d; %s; seed %d; data %d (crc %s)"):format(config.model, train.loss,
      optimizer_text(optim), train.batch, train.unit, train.seed, config.n, tostring(config.data.checksum)),
  }
end

-- ------------------------------------------------ the cache before the store

-- Results of the previous format (one <out>/cache/NAME-HASH.json per experiment,
-- written after its last run) are converted into the store once, then renamed
-- *.imported, so nobody recomputes what they already have.
local function legacy_path(p)
  local keyed = {}
  for k, v in pairs(p.config) do if k ~= "iterations" then keyed[k] = v end end
  local key, digest = store.key({ config = keyed, engine = core.engine_revision, version = core.version,
    isa = core.isa(), steps = p.opts.keep_steps or false })
  return ("%s/cache/%s-%s.json"):format(p.out, p.name:gsub("[^%w%-_.]", "_"), digest), key
end

local function import_legacy(p, s)
  local path, key = legacy_path(p)
  local f = io.open(path, "rb")
  if not f then return 0 end
  f:close()
  local res = Result.load(path)
  if not res or not res.provenance or res.provenance.cache_key ~= key then return 0 end
  local imported = 0
  for _, r in ipairs(res.runs) do
    local index = math.tointeger(r.index)
    if index and index >= 1 and type(r.loss) == "table" and #r.loss >= 1 then
      local rec = { index = index, iterations = #r.loss, seed = core.seed_derive(p.train.seed, index - 1),
        loss = r.loss, diverged = r.diverged == true, tests = r.tests, seconds = r.seconds, samples = r.samples,
        step_loss = r.step_loss, name = p.name, host = "imported from " .. path }
      if not s:find(index, function(old) return #old.loss >= #r.loss end) and s:write(rec) then
        imported = imported + 1
      end
    end
  end
  os.rename(path, path .. ".imported")
  return imported
end

-- --------------------------------------------------------------- running

local function record_of(p, r, run)
  local tests = {}
  for it, t in pairs(run.tests or {}) do
    tests[#tests + 1] = { iteration = it, loss = t.loss, accuracy = t.accuracy }
  end
  -- a run that stopped early was tested after its last iteration
  if run.stopped_at and run.test_loss and not (run.tests and run.tests[run.stopped_at]) then
    tests[#tests + 1] = { iteration = run.stopped_at, loss = run.test_loss, accuracy = run.test_accuracy }
  end
  table.sort(tests, function(a, b) return a.iteration < b.iteration end)
  return {
    index = r, iterations = p.iterations, seed = run.seed, loss = run.loss, diverged = run.diverged,
    tests = #tests > 0 and tests or nil, seconds = run.seconds, samples = run.samples,
    step_loss = p.opts.keep_steps and run.step_loss or nil, stopped_at = run.stopped_at,
    val_iterations = run.val_iterations, val_loss = run.val_loss, val_accuracy = run.val_accuracy,
    name = p.name, host = core.hostname(), pid = core.pid(), time = core.now(),
  }
end

local function open_store(p)
  if not p.use_store then return nil end
  local s, err = store.open(p.out, p.settings, { summary = p.summary, seed = p.train.seed })
  if not s then
    io.stderr:write(("%s: cannot use the run store under %s/store (%s): runs are not kept\n"):format(p.name, p.out,
      tostring(err)))
    return nil
  end
  s:mark(p.name)
  return s
end

-- Computes the runs listed in `wanted` (a set of indices) that the store cannot
-- answer, and returns a state: views[r] for every run answered, whether each came
-- from the store (cached[r]) and who computed it, and the interruption if any.
local function execute(p, wanted)
  local s = open_store(p)
  local iterations, need_test = p.iterations, p.need_test
  local since = p.fresh and core.now() or nil -- fresh: only records written from now on
  local st = { views = {}, cached = {}, from = {}, store = s, seconds = 0, samples = 0, store_seconds = 0 }
  local function answer(r, files)
    if not s then return nil end
    local v, rec = s:find(r, function(x) return view_of(x, iterations, need_test) end, files, since)
    if v then
      st.views[r], st.cached[r] = v, true
      if rec.name then st.from[rec.name] = true end
    end
    return v
  end
  if s and not p.fresh then import_legacy(p, s) end
  local pending = {}
  local files = s and s:scan() or {}
  local scanned = core.now()
  local function recent_files() -- a listing at most a second old: one per claim would be O(runs^2)
    if core.now() - scanned > 1 then files, scanned = s:scan(), core.now() end
    return files
  end
  for _, r in ipairs(wanted) do
    if not answer(r, files[r] or {}) then pending[#pending + 1] = r end
  end

  local function claim(r, waiting)
    -- another process may have stored it meanwhile
    if answer(r, recent_files()[r] or {}) then return false end
    if not s:claim(r, iterations) then
      waiting[#waiting + 1] = r
      return false
    end
    -- a writer stores its record before it releases its claim: a claim won just
    -- after that release must see the record, or the run would be computed twice
    local exact = s.dir .. "/" .. store.record_name(r, iterations)
    if answer(r, { { iterations = iterations, path = exact } }) then
      s:release(r, iterations)
      return false
    end
    return true
  end
  local function on_run(r, run)
    local rec = record_of(p, r, run)
    st.views[r] = view_of(rec, iterations, need_test)
    if s then
      local path, err = s:write(rec)
      if not path then
        io.stderr:write(("%s: cannot store run %d: %s\n"):format(p.name, r, tostring(err)))
      end
      s:release(r, iterations)
    end
  end

  local progress = Progress.new { total_runs = #wanted, total_iterations = iterations,
    mode = Progress.mode(p.opts.quiet, core.isatty(2)), label = p.name }
  local done_before = #wanted - #pending
  local failure
  -- the rounds before this one (lunet.core.runs reports each round's own time and samples)
  local seconds_before, samples_before = 0, 0
  local function report(pr)
    if s then s:heartbeat() end
    local seconds, samples = seconds_before + pr.seconds, samples_before + pr.samples
    progress:update { runs_done = done_before + pr.runs_done, iterations_done = pr.iterations_done
      + done_before * iterations, seconds = seconds, loss = pr.loss == pr.loss and pr.loss or nil,
      samples_per_second = seconds > 0 and samples / seconds or nil }
    st.seconds, st.samples = seconds, samples
  end
  while #pending > 0 do
    local only, waiting, later = {}, {}, {}
    -- Runs side by side while there are as many runs to compute as threads (they share
    -- nothing); with fewer, the spare threads go inside the runs. Same numbers either way.
    -- Runs beyond the last full row of `threads` wait for a round of their own, with the
    -- spare threads inside them: 3 runs on 2 threads are 2 side by side, then 1 on both
    -- threads, instead of a last run alone with a core idle (a run on 2 threads goes
    -- about 1.7x as fast as on one: the sweep's cells of 3 runs took 10-18% less time).
    local now = #pending
    if now > p.threads then now = now - now % p.threads end
    for i, r in ipairs(pending) do
      if i <= now then only[r] = true else later[#later + 1] = r end
    end
    st.side = math.max(1, math.min(p.threads, now))
    st.per_run = math.max(1, p.threads // st.side)
    if st.first_side then
      st.tail_per_run = st.per_run
    else
      st.first_side, st.first_per_run = st.side, st.per_run
    end
    local ok, list, interrupted = pcall(core.runs, {
      net = p.net, data = p.opts.data, test = p.opts.test, train = p.train, runs = p.runs, threads = st.side,
      threads_per_run = st.per_run,
      only = only, test_at = need_test and p.test_iterations or nil, keep_steps = p.opts.keep_steps or false,
      claim = s and function(r)
        local t0 = core.now()
        local ok = claim(r, waiting)
        st.store_seconds = st.store_seconds + (core.now() - t0)
        return ok
      end or nil,
      on_run = function(r, run)
        local t0 = core.now()
        on_run(r, run)
        st.store_seconds = st.store_seconds + (core.now() - t0)
      end,
      -- a failing progress display stops the runs (true) instead of raising through
      -- lunet.core.runs; the finished ones are stored already
      progress = function(pr)
        local rok, err = xpcall(report, debug.traceback, pr)
        if not rok then
          failure = failure or err
          return true
        end
      end,
    })
    if s then s:release_all() end
    if not ok then
      progress:finish()
      error(list, 0) -- every run finished before the error is stored already
    end
    if failure then
      error(("lunet.experiment: the progress display failed (finished runs are stored): %s"):format(tostring(failure)), 5)
    end
    if interrupted then
      st.interrupted = true
      break
    end
    -- runs that another live process is computing: wait for its records; a claim
    -- whose owner died is free again and computed here in the next round
    seconds_before, samples_before = st.seconds, st.samples
    pending = later
    local delay = 0.05
    while #waiting > 0 do
      local still = {}
      -- the claims first, then the records: a record is stored before its claim goes
      local states = {}
      for _, r in ipairs(waiting) do states[r] = s:claim_state(r, iterations) end
      files, scanned = s:scan(), core.now()
      for _, r in ipairs(waiting) do
        if not answer(r, files[r] or {}) then
          if states[r] == "live" then still[#still + 1] = r else pending[#pending + 1] = r end
        end
      end
      waiting = still
      if #waiting > 0 then
        core.sleep(delay)
        delay = math.min(delay * 2, 1)
      end
    end
    done_before = 0
    for _, r in ipairs(wanted) do if st.views[r] then done_before = done_before + 1 end end
  end
  st.progress = progress
  return st
end

local function result_of(p, st, wanted, started, clock0)
  local kept, cached, from = {}, 0, {}
  for _, r in ipairs(wanted) do
    if st.views[r] then
      kept[#kept + 1] = st.views[r]
      if st.cached[r] then cached = cached + 1 end
    end
  end
  for name in pairs(st.from) do from[#from + 1] = name end
  table.sort(from)
  collectgarbage() -- the run tables of a long experiment are garbage now
  return Result.new {
    name = p.name, config = p.config,
    provenance = {
      lunet = core.version, engine_revision = core.engine_revision, lua = _VERSION,
      threads = p.threads, runs_side_by_side = st.first_side, threads_per_run = st.first_per_run,
      tail_threads_per_run = st.tail_per_run, cpu = cpu_name(),
      isa = core.isa(), date = os.date("!%Y-%m-%dT%H:%M:%SZ", started),
      seconds = st.seconds, cpu_seconds = os.clock() - clock0,
      samples_per_second = st.seconds > 0 and st.samples / st.seconds or nil,
      runs_computed = #kept - cached, runs_cached = cached, interrupted = st.interrupted or nil,
      signal = st.signal and SIGNALS[st.signal] or nil,
      store = st.store and st.store.dir or nil, key = st.store and st.store.digest or nil,
      store_seconds = st.store_seconds, -- spent claiming and writing records
      reused_from = cached > 0 and from or nil,
    },
    runs = kept,
  }
end

-- After an interruption: one line on stderr; a script (or any SIGTERM/SIGHUP) ends
-- the process with 128 + signal, which pcall cannot catch; the session goes on with
-- the partial result after Ctrl-C.
local function on_interrupt(lunet, what, kept, total, where)
  local sig = core.interrupt_signal()
  local exits = sig ~= 0 and (sig ~= 2 or not rawget(lunet, "interactive"))
  io.stderr:write(("%s: interrupted%s: %d of %d runs finished and are %s\n"):format(what,
    sig ~= 0 and (" by " .. (SIGNALS[sig] or ("signal " .. sig))) or "", kept, total,
    where and ("kept in " .. where .. "; run the same command again to resume")
      or (exits and "lost (cache = false: no run store)" or "in the result only (cache = false: no run store)")))
  if exits then os.exit(128 + sig, true) end
  return sig
end

local function run_experiment(lunet, p, wanted)
  local started, clock0 = os.time(), os.clock()
  local st = execute(p, wanted)
  local res = result_of(p, st, wanted, started, clock0)
  if st.interrupted then
    st.progress:finish()
    st.signal = on_interrupt(lunet, p.name, #res.runs, #wanted, st.store and st.store.dir)
    res.provenance.signal = SIGNALS[st.signal]
  elseif res.provenance.runs_computed > 0 then
    st.progress:finish(("%s: %d runs in %.1f s%s"):format(p.name, res.provenance.runs_computed, st.seconds,
      res.provenance.runs_cached > 0 and (", %d from the store"):format(res.provenance.runs_cached) or ""))
  end
  return res
end

-- {[r] = true} for the runs 1..p.runs that the store `s` answers (records of at least
-- p.iterations iterations, or diverged; with the test figures when p has test data),
-- their views {[r] = view} and the names of the experiments that computed them.
-- One directory listing, then one read of the longest record of each run.
local function stored_set(p, s)
  local set, views, from = {}, {}, {}
  if not s then return set, views, from end
  local files = s:scan()
  for r = 1, p.runs do
    if files[r] then
      local v, rec = s:find(r, function(x) return view_of(x, p.iterations, p.need_test) end, files[r])
      if v then
        set[r], views[r] = true, v
        if rec.name then from[rec.name] = true end
      end
    end
  end
  return set, views, from
end

local function missing_of(p, set)
  local list = {}
  for r = 1, p.runs do
    if not set[r] then list[#list + 1] = r end
  end
  return list
end

local function all_runs(p)
  local wanted = {}
  for r = 1, p.runs do wanted[r] = r end
  return wanted
end

--- lunet.experiment{name = "experiment", model, data, test = none, loss = "nll",
---   optimizer = lunet.sgd{} (lr 0.01), batch = 64, iterations = 1, unit = "epoch",
---   runs = 20, seed = 1, threads = cores, shuffle = true, out = "out", cache = true,
---   fresh = false, test_at = {}, keep_steps = false, quiet = false, schedule = none,
---   validate = none, validate_every = 1, stop = none}
-- model: a function returning a fresh net (or a net); data: the training dataset;
-- test: a dataset for every run's final loss and accuracy, also recorded at the
-- iterations listed in test_at. Every run is stored under out/store as it finishes
-- (cache = false: not at all; fresh = true: recompute instead of reading the store);
-- keep_steps keeps every step's loss (res.runs[r].step_loss); quiet silences the
-- progress display. In a script, SIGINT, SIGTERM and SIGHUP end the process (130,
-- 143, 129) with the finished runs stored.
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
  local p = prepare(lunet, opts, f, 4)
  -- `bin/lunet sweep` plans here: the options are checked and the key is known (bindings/lunet/plan.lua)
  local planning = package.loaded["lunet.plan"]
  if planning and planning.mode then
    local _, digest = store.key(p.settings)
    local planned = planning.experiment(lunet, opts, { config = p.config, digest = digest, net = p.net,
      need_test = p.need_test, test_iterations = p.test_iterations, out = p.out, settings = p.settings,
      -- the runs stored for this configuration (without marking it used by this experiment)
      -- (planning writes nothing: no store yet, no runs)
      stored = function()
        if not p.use_store or not fs.is_dir(("%s/store/%s"):format(p.out, digest)) then return {} end
        return (stored_set(p, store.open(p.out, p.settings, { summary = p.summary, seed = p.train.seed })))
      end })
    if planned then return planned end -- a placeholder; nil: the stored runs answer, go on
  end
  return run_experiment(lunet, p, all_runs(p))
end

-- ------------------------------------------- the store, run by run
-- For running parts of an experiment (one run index per cluster task, say) and
-- merging from the store: require("lunet.experiment").key / missing / run_indices /
-- from_store. (Not in lunet.help's list: they take `lunet` first.)

local function plan_of(lunet, opts, f)
  opts = check.options(f, 1, opts, EXPERIMENT_KEYS)
  return prepare(lunet, opts, f, 4)
end

-- experiment.key(lunet, opts) -> key text, digest (the store directory's name)
function M.key(lunet, opts)
  local p = plan_of(lunet, opts, "experiment.key")
  return store.key(p.settings)
end

-- experiment.legacy_cache(lunet, opts) -> path, key of the experiment's cache file in
-- the format before the run store (read and converted once when present)
function M.legacy_cache(lunet, opts)
  return legacy_path(plan_of(lunet, opts, "experiment.legacy_cache"))
end

-- experiment.missing(lunet, opts) -> sorted list of the run indices the store cannot answer
function M.missing(lunet, opts)
  local p = plan_of(lunet, opts, "experiment.missing")
  return missing_of(p, (stored_set(p, open_store(p))))
end

-- experiment.run_indices(lunet, opts, indices) -> Result of those runs only: computes
-- (and stores) the ones the store cannot answer; other processes' claims are honoured.
function M.run_indices(lunet, opts, indices)
  local p = plan_of(lunet, opts, "experiment.run_indices")
  check.arg_type("experiment.run_indices", 2, "indices", indices, "table")
  local wanted = {}
  for i, r in ipairs(indices) do
    if math.type(r) ~= "integer" or r < 1 or r > p.runs then
      error(("experiment.run_indices: indices[%d] must be a run index in [1, %d]"):format(i, p.runs), 2)
    end
    wanted[#wanted + 1] = r
  end
  return run_experiment(lunet, p, wanted)
end

-- experiment.from_store(lunet, opts) -> Result | nil, missing indices: the experiment
-- answered wholly from the store, computing nothing.
function M.from_store(lunet, opts)
  local p = plan_of(lunet, opts, "experiment.from_store")
  local s = open_store(p)
  local set, views, from = stored_set(p, s)
  local missing = missing_of(p, set)
  if #missing > 0 then return nil, missing end
  local st = { views = views, cached = set, from = from, seconds = 0, samples = 0, store = s }
  return result_of(p, st, all_runs(p), os.time(), os.clock())
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
  local base_optim = training.optimizer(opts.base.optimizer or lunet.sgd {}, f)
  local name = opts.name or opts.base.name or "sweep"
  local cells = {}
  local interrupted = false
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
      local res = M.experiment(lunet, cfg)
      cells[#cells + 1] = { params = p, result = res }
      -- after an interrupt (the session's Ctrl-C; a script has ended already) no
      -- further cell starts
      -- (a planned cell, under `bin/lunet sweep`, has no numbers to read yet)
      if getmetatable(res) == Result and res.provenance.interrupted then interrupted = true end
      return
    end
    for _, v in ipairs(opts.grid[axes[i]]) do
      if interrupted then return end
      params[axes[i]] = v
      walk(i + 1, params)
    end
    params[axes[i]] = nil
  end
  walk(1, {})
  return setmetatable({ name = name, axes = axes, grid = opts.grid, cells = cells,
    interrupted = interrupted or nil }, Sweep)
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
  check.arg("nonempty_string", "sweep:save", 1, "prefix", prefix)
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
  for i, row in ipairs(self:rows()) do
    local p = {}
    for _, k in ipairs(self.axes) do p[#p + 1] = ("%s=%s"):format(k, value_label(row[k])) end
    -- as print(res): a cell shorter than the plateau window cannot have one
    local plateau = row.plateau and tostring(row.plateau)
      or (self.cells[i].result.iterations < Result.PLATEAU_WINDOW and "n/a" or "none")
    lines[#lines + 1] = ("  %-32s final %.4f +- %.4f  plateau %s"):format(table.concat(p, " "),
      row.final_mean or 0 / 0, row.final_std or 0 / 0, plateau)
  end
  return table.concat(lines, "\n")
end

return M
