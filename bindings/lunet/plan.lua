--- lunet.plan: the plan of a sweep, for `bin/lunet sweep` (plan, task, merge).
-- A script is planned by running it with plan mode on: every lunet.experiment call
-- (each sweep cell is one) records what it would compute and returns a placeholder
-- instead of training. The placeholder prints as "planned"; the first read of its
-- numbers ends the stage: everything after such a line depends on results that do
-- not exist yet, so it cannot be planned in the same pass.
-- A task is one configuration's runs first..last (runs_per_task of them, or all);
-- task indices are 0-based positions in the plan, the same on every machine for the
-- same script and arguments.
--
-- The run store (README, "Results on disk") answers two questions here, each in one
-- function below: which runs of a configuration are stored (M.stored_runs) and how a
-- task's runs are computed into it (M.compute_task). Its key is the settings, not the
-- experiment's name, so an experiment whose runs an earlier one of the plan computes
-- (same key, no more runs or iterations) gets no tasks of its own (M.tasks).
local fs = require("lunet.fs")
local check = require("lunet.check")
local cjson = require("cjson")

local json = cjson.new()
local M = {}

--- nil (a normal run), "plan" while a script is being planned, "merge" while `sweep
-- merge` runs it. lunet.experiment hands its call to M.experiment when this is set.
M.mode = nil

--- How IDX loaders check a gzipped file they keep a prefix of (core.dataset_idx):
-- "whole" (decode it all, check its CRC), or "kept" while `sweep task` plans the script
-- again: decoding stops after the kept items, and what the task uses is verified
-- otherwise, since every experiment's key holds its data's checksum and the task
-- refuses a plan whose fingerprint (made of those keys, read whole) differs.
M.data_check = "whole"

local FORMAT = "lunet-sweep-plan"
M.FORMAT = FORMAT

-- The error value that ends a planning pass early (a placeholder was read). It is not
-- a failure of the script: the plan up to that point stands.
local Stop = { __name = "lunet.plan.Stop" }
Stop.__tostring = function(s) return s.message end
M.Stop = Stop

local state = { entries = {}, script = nil, keep = nil }

--- M.begin{script = path, mode = "plan" | "merge", keep = function(entry) -> keep its options,
-- data_check = "whole" | "kept"}: turns plan (or merge) mode on with an empty plan.
function M.begin(opts)
  M.mode = opts and opts.mode or "plan"
  M.data_check = opts and opts.data_check or "whole"
  state = { entries = {}, script = opts and opts.script, keep = opts and opts.keep }
end

--- M.finish() -> entries: turns plan mode off and hands back what was planned.
function M.finish()
  M.mode = nil
  M.data_check = "whole"

--- How IDX loaders check a gzipped file they keep a prefix of (core.dataset_idx):
-- "whole" (decode it all, check its CRC), or "kept" while `sweep task` plans the script
-- again: decoding stops after the kept items, and what the task uses is verified
-- otherwise, since every experiment's key holds its data's checksum and the task
-- refuses a plan whose fingerprint (made of those keys, read whole) differs.
M.data_check = "whole"
  local entries = state.entries
  state = { entries = {} }
  return entries
end

-- "file:line" of the innermost frame that belongs to the script being planned (the
-- line a user looks for), else of the caller of lunet.experiment.
local function script_line(level)
  local want = state.script and ("@" .. state.script)
  local fallback
  for l = level, level + 40 do
    local info = debug.getinfo(l, "Sl")
    if not info then break end
    if info.currentline and info.currentline > 0 then
      if want and info.source == want then return state.script .. ":" .. info.currentline end
      if not fallback and info.what ~= "C" and not check.in_lunet(info.source) then
        fallback = info.short_src .. ":" .. info.currentline
      end
    end
  end
  return fallback or "?"
end

local Placeholder = { __name = "lunet.plan.Placeholder" }

local function describe_entry(e)
  return ("planned: %s (%d runs x %d %ss, %s)"):format(e.name, e.runs, e.iterations, e.unit, e.summary)
end

Placeholder.__tostring = function(p) return describe_entry(rawget(p, "_entry")) end
-- Every read of a field (res.mean, res:save, res.runs, ...) needs numbers that are
-- not computed in this pass.
Placeholder.__index = function(p, k)
  local e = rawget(p, "_entry")
  local where = script_line(3)
  error(setmetatable({
    stop = true, entry = e, where = where,
    message = ("planning stops at %s: it reads '%s' of experiment '%s' (planned at %s), whose runs are not computed yet. "
      .. "The experiments before it are planned; if later ones depend on these numbers, plan, run and merge this "
      .. "stage, then plan again."):format(
      where, tostring(k), e.name, e.line),
  }, Stop), 0)
end
Placeholder.__newindex = function(p, k) return Placeholder.__index(p, k) end
Placeholder.__len = function(p) return Placeholder.__index(p, "#") end

--- Whether v is a placeholder of the plan (what lunet.experiment returns while planning).
function M.is_placeholder(v) return getmetatable(v) == Placeholder end

-- A one-line summary of the settings that differ between experiments of a sweep.
local function summary(config)
  local parts = { config.optimizer or "?" }
  for _, k in ipairs({ "lr", "momentum", "weight_decay", "betas", "nesterov" }) do
    local v = config[k]
    if v ~= nil then
      if type(v) == "table" then v = table.concat(v, "/") end
      parts[#parts + 1] = ("%s=%s"):format(k, tostring(v))
    end
  end
  parts[#parts + 1] = ("batch=%s"):format(tostring(config.batch))
  parts[#parts + 1] = ("n=%s"):format(tostring(config.n))
  parts[#parts + 1] = ("seed=%s"):format(tostring(config.seed))
  return table.concat(parts, " ")
end

--- Called by lunet.experiment in plan and merge modes, once it has checked the options
-- and computed the configuration's key (info = {config, digest (the store's key of the
-- settings), net, need_test, test_iterations, out, settings (what the key is made of),
-- stored = function -> set of stored runs}). Records the experiment. When every run of it is stored it returns nil:
-- the experiment goes on and answers from the store, so that planning gets past it to
-- the experiments that depend on its numbers (the next stage). Otherwise, in plan mode
-- it returns the experiment's placeholder; in merge mode it is an error (the merge never
-- computes: this experiment comes after the stage that was planned).
function M.experiment(_, opts, info)
  local config = info.config
  local fwd, bwd = info.net:flops()
  local passes = config.unit == "step" and config.batch or config.n
  local e = {
    index = #state.entries + 1,
    name = config.name, key = info.digest, runs = config.runs, iterations = config.iterations,
    unit = config.unit, summary = summary(config), line = script_line(3),
    -- training FLOPs: forward and backward of every sample of every iteration of every run
    cost = (fwd + bwd) * passes * config.iterations * config.runs,
    need_test = info.need_test or nil, test_iterations = info.test_iterations, stored = info.stored,
    out = info.out, settings = info.settings,
  }
  -- the plan's identity leaves the ISA out: a plan made on the submitting machine holds
  -- for nodes pinned to another instruction set (--isa)
  if info.settings then
    local portable = {}
    for k, v in pairs(info.settings) do if k ~= "isa" then portable[k] = v end end
    e.portable_key = select(2, require("lunet.store").key(portable))
  end
  state.entries[#state.entries + 1] = e
  if state.keep and state.keep(e) then e.opts = opts end
  local stored = M.stored_runs(e)
  local complete = true
  for r = 1, e.runs do
    if not stored[r] then
      complete = false
      break
    end
  end
  if complete then return nil end
  if M.mode == "merge" then
    error(setmetatable({ message = ("sweep merge: experiment '%s' (%s) is not in the store and was not planned: it "
      .. "comes after the stage that was planned. Plan again (`bin/lunet sweep plan`) now that this stage's runs are "
      .. "stored, and run the new tasks"):format(e.name, e.line) }, Stop), 0)
  end
  return setmetatable({ _entry = e }, Placeholder)
end

-- Whether the runs of entry `a` answer entry `b`: the same key (settings), at least
-- as many runs and iterations, and the test figures b needs recorded at b's iterations.
local function covers(a, b)
  if a.key ~= b.key or a.runs < b.runs or a.iterations < b.iterations then return false end
  if not b.need_test or a.iterations == b.iterations then return not b.need_test or a.need_test == true end
  if not a.need_test then return false end
  for _, it in ipairs(a.test_iterations or {}) do
    if it == b.iterations then return true end
  end
  return false
end

--- M.covering(entries) -> {[entry index] = index of the earlier entry whose runs answer it}
-- (the study's Figure 1 is answered by Figure 2's runs: same settings, fewer epochs).
function M.covering(entries)
  local by = {}
  for i, b in ipairs(entries) do
    for j = 1, i - 1 do
      if not by[j] and covers(entries[j], b) then
        by[i] = j
        break
      end
    end
  end
  return by
end

--- M.tasks(entries, runs_per_task) -> list of tasks {index (0-based), experiment (entry
-- index), name, key, first, last (run indices, 1-based)}: every configuration cut into
-- chunks of runs_per_task runs (nil: one task per configuration), in plan order. An
-- experiment answered by an earlier one's runs (M.covering) has no tasks.
function M.tasks(entries, runs_per_task)
  local list, covered = {}, M.covering(entries)
  for i, e in ipairs(entries) do
    local k = runs_per_task or e.runs
    for first = 1, covered[i] and 0 or e.runs, k do
      list[#list + 1] = { index = #list, experiment = e.index, name = e.name, key = e.key,
        first = first, last = math.min(first + k - 1, e.runs) }
    end
  end
  return list
end

--- The plan's identity: the same script, arguments, lunet build and runs_per_task give
-- the same fingerprint on every machine (the task list and what each task computes),
-- whatever instruction set it computes with.
-- count: of the first `count` experiments only (a plan made before a stage's runs were
-- stored is the beginning of the plan made after).
function M.fingerprint(entries, runs_per_task, count)
  local lines = { "runs_per_task=" .. tostring(runs_per_task) }
  for i = 1, math.min(count or #entries, #entries) do
    local e = entries[i]
    lines[#lines + 1] = ("%s %s %d %d %s"):format(e.portable_key or e.key, e.name, e.runs, e.iterations, e.unit)
  end
  return require("lunet.store").hash(table.concat(lines, "\n"))
end

--- Where `sweep plan` writes the plan of `script`: OUT/sweep/<script name>.plan.json.
function M.path(out, script)
  local base = script:match("([^/]+)$"):gsub("%.lua$", ""):gsub("[^%w%-_.]", "_")
  return ("%s/sweep/%s.plan.json"):format(out, base)
end

--- M.document{script, args, runs_per_task, entries} -> the plan as a table (what the
-- plan file holds, and `sweep plan --json` prints).
function M.document(t)
  local entries = {}
  for i, e in ipairs(t.entries) do
    entries[i] = { index = e.index, name = e.name, key = e.key, runs = e.runs, iterations = e.iterations,
      unit = e.unit, summary = e.summary, line = e.line, cost = e.cost }
  end
  for i, j in pairs(M.covering(t.entries)) do entries[i].answered_by = t.entries[j].name end
  return {
    format = FORMAT, version = 1, script = t.script, args = t.args or {},
    runs_per_task = t.runs_per_task or cjson.null,
    fingerprint = M.fingerprint(t.entries, t.runs_per_task),
    stopped_at = t.stopped_at or cjson.null,
    experiments = entries, tasks = M.tasks(t.entries, t.runs_per_task),
  }
end

function M.encode(doc) return json.encode(doc) end

--- Writes the plan file atomically. true or nil, message.
function M.write(path, doc) return fs.write_atomic(path, json.encode(doc) .. "\n") end

--- Reads a plan file: the document, or nil, message.
function M.read(path)
  local text = fs.read(path)
  if not text then return nil, "no plan at " .. path end
  local ok, doc = pcall(json.decode, text)
  if not ok or type(doc) ~= "table" or doc.format ~= FORMAT then
    return nil, path .. ": not a lunet sweep plan"
  end
  -- cjson reads every number as a float; indices are integers
  if doc.runs_per_task == cjson.null then doc.runs_per_task = nil end
  doc.runs_per_task = doc.runs_per_task and math.tointeger(doc.runs_per_task)
  for _, t in ipairs(type(doc.tasks) == "table" and doc.tasks or {}) do
    for _, k in ipairs({ "index", "experiment", "first", "last" }) do t[k] = math.tointeger(t[k]) end
  end
  if doc.stopped_at == cjson.null then doc.stopped_at = nil end
  return doc
end

-- ------------------------------------------------------------------ the store

--- M.stored_runs(entry) -> set {[run index] = true} of the runs 1..entry.runs of the
-- entry's configuration that the store answers: a valid record of at least
-- entry.iterations iterations (or diverged), with its test figures at that iteration
-- when the experiment has test data. One listing of the configuration's directory.
function M.stored_runs(entry)
  return entry.stored and entry.stored() or {}
end

--- M.missing(entries, tasks) -> the tasks not all of whose runs are stored.
function M.missing(entries, tasks)
  local stored, list = {}, {}
  for _, t in ipairs(tasks) do
    local e = entries[t.experiment]
    stored[e.index] = stored[e.index] or M.stored_runs(e)
    for r = t.first, t.last do
      if not stored[e.index][r] then
        list[#list + 1] = t
        break
      end
    end
  end
  return list
end

--- M.other_isas(entries) -> list of {name, isa, records, dir}: for each experiment, the
-- store directories holding runs of the same settings computed with another instruction
-- set (the key includes the ISA: their last bits differ, so they are never this
-- machine's runs). One store.list of each output directory.
function M.other_isas(entries)
  local store = require("lunet.store")
  local configs = {} -- out -> store.list(out)
  local found, seen = {}, {}
  for _, e in ipairs(entries) do
    if e.settings and e.out and not seen[e.key] then
      seen[e.key] = true
      configs[e.out] = configs[e.out] or store.list(e.out)
      -- the key text around the ISA's value: another ISA's key differs only there
      local probe = {}
      for k, v in pairs(e.settings) do probe[k] = v end
      probe.isa = "\0"
      local text = store.key(probe)
      local at = text:find("\0", 1, true)
      local before, after = text:sub(1, at - 1), text:sub(at + 1)
      for _, c in ipairs(configs[e.out]) do
        local isa = c.key and c.key:sub(1, #before) == before and c.key:sub(-#after) == after
          and c.key:sub(#before + 1, #c.key - #after)
        if isa and isa ~= e.settings.isa and not isa:find("[,{}=]") and c.records > 0 then
          found[#found + 1] = { name = e.name, isa = isa, records = c.records, dir = c.dir }
        end
      end
    end
  end
  return found
end

--- M.compute_task(lunet, entry, task, opts) computes runs task.first..task.last of the
-- entry's configuration into the store (claimed one by one, each written as it
-- finishes; runs already stored or claimed by a live process are not computed here)
-- and returns their result, whose provenance says runs_computed, runs_cached and
-- interrupted. opts are the experiment's own options (kept from the planning pass);
-- threads come from $LUNET_THREADS when set (the Slurm script sets it to
-- --cpus-per-task). SIGINT, SIGTERM and SIGHUP end the process with 128 + signal once
-- the finished runs are stored (lunet.experiment's rule for scripts).
function M.compute_task(lunet, entry, task, opts)
  if task.first < 1 or task.last > entry.runs or task.first > task.last then
    error(("sweep task %d: runs %d-%d are not runs of '%s' (1-%d)"):format(task.index, task.first, task.last,
      entry.name, entry.runs), 0)
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local threads = tonumber(os.getenv("LUNET_THREADS") or "")
  if threads and threads >= 1 then o.threads = math.floor(threads) end
  local indices = {}
  for r = task.first, task.last do indices[#indices + 1] = r end
  return require("lunet.experiment").run_indices(lunet, o, indices)
end

return M
