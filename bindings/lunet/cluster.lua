--- lunet.cluster: `bin/lunet sweep`, a script's experiments as tasks of a batch system.
-- lunet does not schedule: Slurm (array jobs), GNU parallel (local or over ssh) and
-- Kubernetes (Indexed Jobs) each hand a task an index, and lunet's part is the plan
-- (lunet.plan), the task runner and the merge. This module is engine-neutral helpers
-- (option parsing, the task-index rule, array ranges and splitting, shell quoting,
-- scontrol parsing) and the five subcommands.
--
--   bin/lunet sweep plan [--missing] [--json] [--runs-per-task K] [--out DIR] SCRIPT [ARGS...]
--   bin/lunet sweep task [--index I] [--index-offset K] [--out DIR] SCRIPT [ARGS...]
--   bin/lunet sweep merge [--compute-missing] [--allow-mixed-isa] [--out DIR] SCRIPT [ARGS...]
--   bin/lunet sweep slurm [--partition P] [--time T] [--cpus-per-task C] [--mem M]
--       [--max-parallel K] [--sbatch "more sbatch options"] [--wait] [--isa ISA]
--       [--runs-per-task K] [--missing] [--check-timeout S] [--out DIR] SCRIPT [ARGS...]
--   bin/lunet sweep parallel [-j N] [--sshloginfile F] [--isa ISA] [--runs-per-task K]
--       [--out DIR] SCRIPT [ARGS...]
-- Everything after SCRIPT belongs to the script, as with `bin/lunet run`.
local fs = require("lunet.fs")

local M = {}

-- ------------------------------------------------------------------ options

-- kind: "flag" (no value), "string", "count" (integer >= 1), "index" (integer >= 0)
local COMMON = { out = "string" }
M.COMMANDS = {
  plan = { missing = "flag", json = "flag", ["runs-per-task"] = "count" },
  task = { index = "index", ["index-offset"] = "index" },
  merge = { ["compute-missing"] = "flag", ["allow-mixed-isa"] = "flag" },
  slurm = { partition = "string", time = "string", ["cpus-per-task"] = "count", mem = "string",
    ["max-parallel"] = "count", sbatch = "string", wait = "flag", isa = "string",
    ["runs-per-task"] = "count", missing = "flag", ["check-timeout"] = "index" },
  parallel = { j = "count", sshloginfile = "string", isa = "string", ["runs-per-task"] = "count" },
}
local SHORT = { j = true } -- options written with one dash

M.USAGE = [[
usage: lunet sweep plan [--missing] [--json] [--runs-per-task K] [--out DIR] SCRIPT [ARGS...]
       lunet sweep task [--index I] [--index-offset K] [--out DIR] SCRIPT [ARGS...]
       lunet sweep merge [--compute-missing] [--allow-mixed-isa] [--out DIR] SCRIPT [ARGS...]
       lunet sweep slurm [--partition P] [--time T] [--cpus-per-task C] [--mem M] [--max-parallel K]
                         [--sbatch "more sbatch options"] [--wait] [--isa ISA] [--runs-per-task K]
                         [--missing] [--check-timeout S] [--out DIR] SCRIPT [ARGS...]
       lunet sweep parallel [-j N] [--sshloginfile F] [--isa ISA] [--runs-per-task K] [--out DIR]
                            SCRIPT [ARGS...]

The plan lists every experiment SCRIPT would run (lunet.experiment calls and lunet.sweep
cells) as tasks, numbered from 0 in a fixed order. `task` runs one of them (index: --index,
else $SLURM_ARRAY_TASK_ID plus --index-offset, else $JOB_COMPLETION_INDEX), `merge` runs
SCRIPT answering every experiment from the stored runs. `slurm` and `parallel` plan, run
every task through Slurm array jobs or GNU parallel, then merge. --out (default "out") is
the output directory of the experiments, where runs are stored; it must be shared by every
node. Everything after SCRIPT belongs to the script.]]

local function kind_error(cmd, name, kind, value)
  local what = kind == "count" and "an integer >= 1" or "an integer >= 0"
  return ("sweep %s: option %s must be %s (got %q)"):format(cmd, name, what, tostring(value))
end

--- M.parse(cmd, argv) -> opts, script, script_args, or nil, message.
-- Options come before SCRIPT, as `--name value`, `--name=value` or (for -j) `-j N`;
-- `--` ends them. The first other word is SCRIPT; the rest are the script's.
function M.parse(cmd, argv)
  local spec = M.COMMANDS[cmd]
  if not spec then
    return nil, ("sweep: unknown command '%s' (plan, task, merge, slurm, parallel)"):format(tostring(cmd))
  end
  local opts, i = {}, 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      i = i + 1
      break
    end
    local name, value
    if a:sub(1, 2) == "--" then
      name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
    elseif a:sub(1, 1) == "-" and #a > 1 then
      name = a:sub(2, 2)
      if not SHORT[name] then name = a:sub(2) end
      if SHORT[name] and #a > 2 then value = a:sub(3) end
    else
      break
    end
    local kind = spec[name] or COMMON[name]
    local shown = (SHORT[name] and "-" or "--") .. name
    if not kind or (SHORT[name] and a:sub(1, 2) == "--") then
      local valid = {}
      for k in pairs(spec) do valid[#valid + 1] = (SHORT[k] and "-" or "--") .. k end
      valid[#valid + 1] = "--out"
      table.sort(valid)
      return nil, ("sweep %s: unknown option '%s' (valid: %s)"):format(cmd, a, table.concat(valid, ", "))
    end
    if kind == "flag" then
      if value ~= nil then return nil, ("sweep %s: option %s takes no value"):format(cmd, shown) end
      opts[name] = true
    else
      if value == nil then
        i = i + 1
        value = argv[i]
        if value == nil then return nil, ("sweep %s: option %s needs a value"):format(cmd, shown) end
      end
      if kind == "count" or kind == "index" then
        local n = value:match("^%d+$") and math.tointeger(tonumber(value))
        if not n or (kind == "count" and n < 1) then return nil, kind_error(cmd, shown, kind, value) end
        value = n
      elseif value == "" then
        return nil, ("sweep %s: option %s needs a non-empty value"):format(cmd, shown)
      end
      opts[name] = value
    end
    i = i + 1
  end
  local script = argv[i]
  if script == nil then return nil, ("sweep %s: missing SCRIPT\n%s"):format(cmd, M.USAGE) end
  local args = {}
  for k = i + 1, #argv do args[#args + 1] = argv[k] end
  opts.out = opts.out or "out"
  return opts, script, args
end

-- ---------------------------------------------------------------- the index

--- M.task_index(opts, getenv) -> index (0-based) or nil, message. The rule: --index,
-- else $SLURM_ARRAY_TASK_ID + --index-offset, else $JOB_COMPLETION_INDEX + --index-offset.
function M.task_index(opts, getenv)
  getenv = getenv or os.getenv
  if opts.index then return opts.index end
  local offset = opts["index-offset"] or 0
  for _, var in ipairs({ "SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX" }) do
    local v = getenv(var)
    if v and v ~= "" then
      local n = v:match("^%d+$") and math.tointeger(tonumber(v))
      if not n then return nil, ("sweep task: $%s is %q, not a task index"):format(var, v) end
      return n + offset
    end
  end
  return nil, "sweep task: which task? give --index I, or run it as a Slurm array task ($SLURM_ARRAY_TASK_ID) "
    .. "or in a Kubernetes Indexed Job ($JOB_COMPLETION_INDEX)"
end

-- ------------------------------------------------------------------- arrays

--- M.ranges(list of integers) -> "0-3,7,9-10" (sorted, duplicates dropped): Slurm's
-- --array syntax and a compact way to print task lists.
function M.ranges(list)
  local s = {}
  for _, v in ipairs(list) do s[#s + 1] = v end
  table.sort(s)
  local parts, i = {}, 1
  while i <= #s do
    local j = i
    while j < #s and (s[j + 1] == s[j] + 1 or s[j + 1] == s[j]) do j = j + 1 end
    parts[#parts + 1] = s[i] == s[j] and tostring(s[i]) or (s[i] .. "-" .. s[j])
    i = j + 1
  end
  return table.concat(parts, ",")
end

--- M.split(indices, max_array_size) -> list of {offset = K, indices = {...}}: Slurm
-- array task ids must be below MaxArraySize, so indices at or above it go into
-- further arrays whose tasks add --index-offset K. Each array's ids are index - K.
function M.split(indices, max_array_size)
  assert(math.type(max_array_size) == "integer" and max_array_size >= 1, "max_array_size must be >= 1")
  local s = {}
  for _, v in ipairs(indices) do s[#s + 1] = v end
  table.sort(s)
  local chunks = {}
  for _, v in ipairs(s) do
    local c = chunks[#chunks]
    if not c or v - c.offset >= max_array_size then
      c = { offset = v, indices = {} }
      chunks[#chunks + 1] = c
    end
    c.indices[#c.indices + 1] = v - c.offset
  end
  return chunks
end

-- ------------------------------------------------------------------- shells

--- Quotes a word for sh.
function M.quote(s)
  s = tostring(s)
  if s:match("^[%w%-_./=:,+@%%]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function command_line(words)
  local q = {}
  for i, w in ipairs(words) do q[i] = M.quote(w) end
  return table.concat(q, " ")
end
M.command_line = command_line

--- M.capture(cmd) -> output (stdout and stderr), ok, exit code
function M.capture(cmd)
  local p = io.popen(cmd .. " 2>&1", "r")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok == true, code
end

local function have(program)
  local _, ok = M.capture("command -v " .. M.quote(program))
  return ok
end

--- M.parse_config(text) -> {Key = "value"} from `scontrol show config`.
function M.parse_config(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^(%S+)%s+=%s*(.-)%s*$")
    if k then t[k] = v end
  end
  return t
end

--- M.parse_job_records(text) -> list of {JobId=, ArrayJobId=, ArrayTaskId=, JobState=,
-- ExitCode=, ...} from `scontrol -o show job ID` (one record per line).
function M.parse_job_records(text)
  local list = {}
  for line in text:gmatch("[^\n]+") do
    if line:match("^JobId=") then
      local r = {}
      for k, v in line:gmatch("(%w+)=(%S*)") do
        if r[k] == nil then r[k] = v end
      end
      list[#list + 1] = r
    end
  end
  return list
end

local FINISHED = { COMPLETED = true, FAILED = true, CANCELLED = true, TIMEOUT = true, OUT_OF_MEMORY = true,
  NODE_FAIL = true, PREEMPTED = true, BOOT_FAIL = true, DEADLINE = true, REVOKED = true }
M.FINISHED = FINISHED

-- in this process: no `sleep` child per poll (a --wait of hours polls thousands of times,
-- on a one-node cluster beside the tasks)
local function sleep(seconds) require("lunet.core").sleep(seconds) end

--- M.job_records(id) -> the job's records (an array job: one per task, or per pending
-- range), or {} once Slurm has forgotten the job.
function M.job_records(id)
  local out, ok = M.capture("scontrol -o show job " .. M.quote(id))
  if not ok then return {}, out end
  return M.parse_job_records(out)
end

--- M.wait_jobs(ids, poll, records) polls `scontrol show job` (every `poll` seconds,
-- default 0.5) until every record of every job has finished; returns {[id] = records},
-- each task's last record. slurmctld forgets a job MinJobAge (300 s by default) after it
-- ends, so the records are gathered while polling: by the time a long array's last task
-- ends, its first ones are gone from scontrol. A pending range record (ArrayTaskId
-- "3-11") disappears when its tasks start, and is dropped then; a task (or a plain job)
-- seen unfinished that disappears before it was seen to end is kept with JobState
-- "UNKNOWN" (possible only if a poll came later than MinJobAge after its end; an empty
-- answer counts as the job's end only after 20 in a row).
-- `records` (default M.job_records) is the source of a job's records, for tests.
function M.wait_jobs(ids, poll, records)
  records = records or M.job_records
  local function state(r) return (r.JobState or ""):match("^%u+") or "" end
  local seen = {} -- [id] = {order = keys in first-seen order, by = {[key] = record}}
  while true do
    local pending = false
    for _, id in ipairs(ids) do
      local s = seen[id] or { order = {}, by = {}, empty = 0 }
      seen[id] = s
      local listed, list = {}, records(id)
      for _, r in ipairs(list) do
        local key = r.ArrayTaskId or r.JobId or "?"
        listed[key] = true
        if not s.by[key] then s.order[#s.order + 1] = key end
        s.by[key] = r
      end
      -- an empty answer may be a passing failure of scontrol: believe it after 20 in a row
      s.empty = #list == 0 and s.empty + 1 or 0
      for key, r in pairs(s.by) do
        if (#list > 0 or s.empty >= 20) and not listed[key] and not FINISHED[state(r)] and state(r) ~= "UNKNOWN" then
          if r.ArrayTaskId and not tonumber(r.ArrayTaskId) then
            s.by[key] = nil -- a pending range, split as its tasks started
          else
            r.JobState = "UNKNOWN"
          end
        end
      end
      for _, r in pairs(s.by) do
        if not FINISHED[state(r)] and state(r) ~= "UNKNOWN" then pending = true end
      end
    end
    if not pending then
      local final = {}
      for id, s in pairs(seen) do
        local list = {}
        for _, key in ipairs(s.order) do if s.by[key] then list[#list + 1] = s.by[key] end end
        if #list > 0 then final[id] = list end
      end
      return final
    end
    sleep(poll or 0.5)
  end
end

-- -------------------------------------------------------------- the script

local function fail(msg, code)
  io.stderr:write("lunet: ", msg, "\n")
  os.exit(code or 1)
end

local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  local cwd = require("lfs").currentdir()
  if p == "." then return cwd end
  return (cwd .. "/" .. p:gsub("^%./", ""))
end

-- Runs `file` in this process as a main chunk with `arg` and `...` set; ok or false, error
-- (the error value itself when it is a table, e.g. lunet.plan's Stop).
local function run_chunk(file, args)
  local chunk, err = loadfile(file)
  if not chunk then return false, err end
  local script_arg = { [0] = file }
  for i = 1, #args do script_arg[i] = args[i] end
  local saved = arg
  arg = script_arg -- luacheck: ignore 121 (the script sees its own arg, as under bin/lunet run)
  local ok, e = xpcall(chunk, function(x)
    if type(x) == "table" then return x end
    return debug.traceback(tostring(x), 2)
  end, table.unpack(args))
  arg = saved -- luacheck: ignore 121
  return ok, e
end

-- One planning pass over the script: entries, and the Stop that ended it early (or nil).
-- The script's own printing goes to stderr, so that stdout is the plan. data_check: see
-- lunet.plan.data_check ("kept" only where the pass is checked against a plan file).
local function plan_pass(script, args, keep, data_check)
  local planning = require("lunet.plan")
  local saved_print = print
  print = function(...) -- luacheck: ignore 121
    local t = table.pack(...)
    for i = 1, t.n do t[i] = tostring(t[i]) end
    io.stderr:write(table.concat(t, "\t", 1, t.n), "\n")
  end
  planning.begin { script = script, keep = keep, mode = "plan", data_check = data_check }
  local ok, err = run_chunk(script, args)
  print = saved_print -- luacheck: ignore 121
  local entries = planning.finish()
  if ok then return entries, nil end
  if getmetatable(err) == planning.Stop then return entries, err end
  fail(("cannot plan %s: %s"):format(script, tostring(err)))
end

local function human_flops(x)
  for _, u in ipairs({ { 1e15, "PFLOP" }, { 1e12, "TFLOP" }, { 1e9, "GFLOP" }, { 1e6, "MFLOP" } }) do
    if x >= u[1] then return ("%.1f %s"):format(x / u[1], u[2]) end
  end
  return ("%.0f FLOP"):format(x)
end

-- Plans the script and writes the plan file: doc, entries, path.
local function make_plan(opts, script, args)
  local planning = require("lunet.plan")
  local entries, stopped = plan_pass(script, args)
  local path = planning.path(opts.out, script)
  -- --missing lists the tasks of the plan already made: its task indices, its --runs-per-task
  if opts.missing and opts["runs-per-task"] == nil then
    local old = planning.read(path)
    opts["runs-per-task"] = old and old.runs_per_task
  end
  local doc = planning.document { script = script, args = args, runs_per_task = opts["runs-per-task"],
    entries = entries, stopped_at = stopped and stopped.where or nil }
  local ok, err = planning.write(path, doc)
  if not ok then fail(("cannot write the plan %s: %s"):format(path, tostring(err))) end
  return doc, entries, path, stopped
end

-- Plans the script again and checks it against the plan file (task and merge).
local function checked_plan(cmd, opts, script, args, keep, data_check)
  local planning = require("lunet.plan")
  local path = planning.path(opts.out, script)
  local doc, err = planning.read(path)
  if not doc then
    fail(("sweep %s: %s (`bin/lunet sweep plan --out %s %s` writes it; sweep slurm and sweep parallel do too)")
      :format(cmd, err, opts.out, script))
  end
  local entries, stopped = plan_pass(script, args, keep and keep(doc), data_check)
  -- the plan may go further now that earlier stages are stored; its beginning must not change
  local n = #(doc.experiments or {})
  local fp = planning.fingerprint(entries, doc.runs_per_task, n)
  if #entries < n or fp ~= doc.fingerprint then
    fail(("sweep %s: this script plans differently from the plan in %s (fingerprint %s, now %s: changed script, "
      .. "arguments, data or lunet build?); plan again, and rerun its tasks"):format(cmd, path, doc.fingerprint, fp))
  end
  return doc, entries, stopped
end

local function check_isa(cmd)
  local want = os.getenv("LUNET_ISA")
  if want and want ~= "" then
    local have_isa = require("lunet.core").isa()
    if have_isa ~= want then
      fail(("sweep %s: LUNET_ISA is %s but this machine computes with %s: its runs would not match the sweep's "
        .. "(pin an ISA every node has, e.g. --isa avx2)"):format(cmd, want, have_isa))
    end
  end
end

-- ---------------------------------------------------------- sweep plan

local function print_tasks(entries, tasks)
  print(("%5s  %-28s %-44s %9s %12s"):format("task", "experiment", "configuration", "runs", "cost"))
  for _, t in ipairs(tasks) do
    local e = entries[t.experiment]
    local share = (t.last - t.first + 1) / e.runs
    print(("%5d  %-28s %-44s %9s %12s"):format(t.index, e.name, e.summary,
      t.first == t.last and tostring(t.first) or (t.first .. "-" .. t.last), human_flops(e.cost * share)))
  end
end

local function cmd_plan(opts, script, args)
  local planning = require("lunet.plan")
  local doc, entries, path, stopped = make_plan(opts, script, args)
  local tasks = doc.tasks
  if opts.missing then tasks = planning.missing(entries, tasks) end
  if opts.json then
    local out = {}
    for k, v in pairs(doc) do out[k] = v end
    out.tasks = tasks
    out.missing = opts.missing or nil
    print(planning.encode(out))
    return
  end
  local total = 0
  for _, e in ipairs(entries) do total = total + e.cost end
  print(("plan of %s: %d tasks, %d experiments, %s (written to %s, fingerprint %s)"):format(
    command_line({ script, table.unpack(args) }), #doc.tasks, #entries, human_flops(total), path, doc.fingerprint))
  if opts.missing then
    local idx = {}
    for i, t in ipairs(tasks) do idx[i] = t.index end
    print(("%d of %d tasks are missing%s"):format(#tasks, #doc.tasks,
      #tasks > 0 and (": --array=" .. M.ranges(idx)) or ""))
  end
  if #tasks > 0 then print_tasks(entries, tasks) end
  for _, e in ipairs(doc.experiments) do
    if e.answered_by then print(("%s: no tasks, answered by %s's runs (the same settings)"):format(e.name,
      e.answered_by)) end
  end
  if stopped then print(stopped.message) end
end

-- ---------------------------------------------------------- sweep task

local function cmd_task(opts, script, args, lunet)
  local planning = require("lunet.plan")
  local index, err = M.task_index(opts)
  if not index then fail(err) end
  check_isa("task")
  local target
  local doc, entries = checked_plan("task", opts, script, args, function(d)
    target = d.tasks[index + 1]
    return function(e) return target and e.index == target.experiment end
  end, "kept") -- the plan's fingerprint holds the checksums of the data read whole
  if not target then
    fail(("sweep task: task %d does not exist: the plan in %s has %d tasks (0-%d)"):format(index,
      planning.path(opts.out, script), #doc.tasks, #doc.tasks - 1))
  end
  local e = entries[target.experiment]
  local t0 = os.time()
  local res = planning.compute_task(lunet, e, target, e.opts)
  local p = res.provenance or {}
  io.stderr:write(("sweep task %d: %s runs %d-%d: %d computed, %d already stored (%d s)\n"):format(index, e.name,
    target.first, target.last, p.runs_computed or 0, p.runs_cached or 0, os.time() - t0))
  -- (lunet.experiment has ended the process with 128 + signal already; this is for a
  -- stop without a signal)
  if p.interrupted then os.exit(128 + math.max(require("lunet.core").interrupt_signal(), 2)) end
end

-- ---------------------------------------------------------- sweep merge

local function cmd_merge(opts, script, args)
  local planning = require("lunet.plan")
  check_isa("merge")
  local doc, entries = checked_plan("merge", opts, script, args)
  -- runs of these settings computed with another instruction set: a sweep whose tasks ran
  -- on nodes of different ISAs (no --isa pin) is not one experiment
  local others = planning.other_isas(entries)
  if #others > 0 then
    local this_isa = require("lunet.core").isa()
    for _, o in ipairs(others) do
      io.stderr:write(("sweep merge: '%s': %d runs in %s were computed with %s, not %s\n"):format(o.name, o.records,
        o.dir, o.isa, this_isa))
    end
    if not opts["allow-mixed-isa"] then
      fail(("sweep merge: runs of mixed instruction sets (the last bits of every loss differ between them): this "
        .. "merge uses only %s runs. Merge where LUNET_ISA=%s computes, or rerun the sweep pinned with --isa %s, or "
        .. "pass --allow-mixed-isa to merge from the %s runs anyway (the others count as missing)"):format(this_isa,
        others[1].isa, this_isa, this_isa))
    end
  end
  local missing = planning.missing(entries, doc.tasks)
  if #missing > 0 then
    local idx = {}
    for i, t in ipairs(missing) do idx[i] = t.index end
    if not opts["compute-missing"] then
      io.stderr:write(("sweep merge: %d of %d tasks have runs missing from the store: --array=%s\n"):format(
        #missing, #doc.tasks, M.ranges(idx)))
      for _, t in ipairs(missing) do
        io.stderr:write(("  task %d: %s runs %d-%d\n"):format(t.index, t.name, t.first, t.last))
      end
      io.stderr:write(("resubmit them (e.g. `bin/lunet sweep slurm --missing ... %s`, or `bin/lunet sweep task --index I`), "
        .. "or merge with --compute-missing to compute them here\n"):format(script))
      os.exit(1)
    end
    io.stderr:write(("sweep merge: computing %d missing tasks here (--compute-missing): %s\n"):format(#missing,
      M.ranges(idx)))
  end
  -- the merge answers from the store only (--compute-missing: computes what is missing)
  if not opts["compute-missing"] then planning.begin { script = script, mode = "merge" } end
  local ok, err = run_chunk(script, args)
  planning.finish()
  if not ok then fail(tostring(err)) end
end

-- ---------------------------------------------------------- sweep slurm

local function random_token()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(12) or tostring(os.time()) .. tostring({})
  if f then f:close() end
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function write_file(path, text, mode)
  local ok, err = fs.write_atomic(path, text)
  if not ok then fail(("cannot write %s: %s"):format(path, tostring(err))) end
  if mode then os.execute("chmod " .. mode .. " " .. M.quote(path)) end
end

--- M.sbatch_script(t) -> the text of an sbatch script. t: {comment, job_name, output,
-- chdir, array, partition, time, cpus, mem, marker, token, out, env = {{k, v}...},
-- command (list of words)}.
function M.sbatch_script(t)
  local lines = { "#!/bin/sh" }
  for c in (t.comment or ""):gmatch("[^\n]+") do lines[#lines + 1] = "# " .. c end
  local function directive(k, v) if v then lines[#lines + 1] = ("#SBATCH --%s=%s"):format(k, v) end end
  directive("job-name", t.job_name)
  directive("output", t.output)
  directive("chdir", t.chdir)
  directive("array", t.array)
  directive("partition", t.partition)
  directive("time", t.time)
  directive("cpus-per-task", t.cpus)
  directive("mem", t.mem)
  directive("ntasks", 1)
  lines[#lines + 1] = ""
  lines[#lines + 1] = "# the output directory (the run store) must be the one the submitter sees"
  lines[#lines + 1] = ("if [ \"$(cat %s 2>/dev/null)\" != %s ]; then"):format(M.quote(t.marker), M.quote(t.token))
  lines[#lines + 1] = ("    echo \"lunet sweep: %s is not shared with $(hostname): the marker %s written by the "
    .. "submitter is not there. Put --out on a filesystem every node mounts at the same path.\" >&2"):format(
    t.out, t.marker)
  lines[#lines + 1] = "    exit 3"
  lines[#lines + 1] = "fi"
  for _, kv in ipairs(t.env or {}) do
    lines[#lines + 1] = ("%s=%s; export %s"):format(kv[1], kv.raw and kv[2] or M.quote(kv[2]), kv[1])
  end
  lines[#lines + 1] = "exec " .. command_line(t.command)
  return table.concat(lines, "\n") .. "\n"
end

local function sbatch(file, extra)
  local cmd = "sbatch --parsable " .. (extra and (extra .. " ") or "") .. M.quote(file)
  local out, ok = M.capture(cmd)
  local id = out:match("^%s*(%d+)")
  if not ok or not id then fail(("sbatch failed (%s):\n%s"):format(cmd, out)) end
  return id, cmd
end

local function tail(path, n)
  local lines = {}
  local f = io.open(path, "r")
  if not f then return "" end
  for l in f:lines() do
    lines[#lines + 1] = l
    if #lines > n then table.remove(lines, 1) end
  end
  f:close()
  return table.concat(lines, "\n")
end

-- Submits one job that must see the marker (the store is shared); check_shared waits for
-- it. Submitted before planning, so that the two overlap (a script that cannot be planned
-- leaves it to end on its own: it only writes a file under DIR/slurm).
local function submit_probe(dir, base_words, extra, marker, token, out)
  local seen = ("%s/probe-%s.seen"):format(dir, token)
  os.remove(seen) -- (left by a submission that stopped before reading it)
  local file = ("%s/probe.sbatch"):format(dir)
  write_file(file, table.concat({
    "#!/bin/sh",
    "# written by `bin/lunet sweep slurm`: can a job see the output directory (" .. out .. ")?",
    table.concat(base_words, "\n"),
    "#SBATCH --job-name=lunet-check",
    "#SBATCH --output=" .. dir .. "/logs/probe-%j.out",
    "#SBATCH --ntasks=1",
    "#SBATCH --cpus-per-task=1",
    ("test \"$(cat %s 2>/dev/null)\" = %s && hostname > %s"):format(M.quote(marker), M.quote(token), M.quote(seen)),
  }, "\n") .. "\n")
  return { id = sbatch(file, extra), seen = seen, submitted = os.time() }
end

local function check_shared(probe, dir, marker, timeout, out)
  local id, seen = probe.id, probe.seen
  local t0, poll = probe.submitted, 0.05
  while true do
    local recs = M.job_records(id)
    local st = recs[1] and (recs[1].JobState or ""):match("^%u+")
    if #recs == 0 or FINISHED[st] then break end
    if os.time() - t0 > timeout then
      os.execute("scancel " .. M.quote(id))
      io.stderr:write(("sweep slurm: the check job %s did not run within %d s; submitting anyway (every task checks "
        .. "the marker itself and fails if the output directory is not shared)\n"):format(id, timeout))
      return
    end
    -- a job of a few milliseconds, started at once on an idle cluster: polled often at
    -- first, then less, so that a queue of hours is not polled ten times a second
    poll = math.min(poll * 1.5, 2)
    sleep(poll)
  end
  local f = io.open(seen, "r")
  if not f then
    fail(("sweep slurm: the output directory %s is not shared with the nodes: a job could not see %s "
      .. "(log: %s/logs/probe-%s.out). Use --out on a filesystem every node mounts at the same path."):format(
      out, marker, dir, id))
  end
  f:close()
  os.remove(seen)
end

local function indices_of_chunk(c)
  local t = {}
  for i, v in ipairs(c.indices) do t[i] = v + c.offset end
  return t
end

local function cmd_slurm(opts, script, args, _, ctx)
  local planning = require("lunet.plan")
  for _, p in ipairs({ "sbatch", "scontrol" }) do
    if not have(p) then fail(("sweep slurm: %s not found (Debian package slurm-client)"):format(p)) end
  end
  local config_text, ok = M.capture("scontrol show config")
  if not ok then fail("sweep slurm: `scontrol show config` failed:\n" .. config_text) end
  local max_array = math.tointeger(tonumber(M.parse_config(config_text).MaxArraySize or "1001")) or 1001
  if max_array < 1 then max_array = 1001 end

  local out = abspath(opts.out)
  local dir = out .. "/slurm"
  local mok, merr = fs.mkdir_p(dir .. "/logs")
  if not mok then fail(merr) end
  -- one token per output directory: tasks of an earlier submission still queued check the same
  local marker = out .. "/.lunet-shared"
  local f = io.open(marker, "r")
  local token = f and f:read("l")
  if f then f:close() end
  if not token or not token:match("^%x+$") then
    token = random_token()
    write_file(marker, token)
  end
  local base_words = {}
  for _, kv in ipairs({ { "partition", opts.partition }, { "time", opts.time }, { "mem", opts.mem } }) do
    if kv[2] then base_words[#base_words + 1] = ("#SBATCH --%s=%s"):format(kv[1], kv[2]) end
  end
  local timeout = opts["check-timeout"] or 120
  -- the check job runs while the script is planned here; nothing else is submitted before it is seen
  local probe = timeout > 0 and submit_probe(dir, base_words, opts.sbatch, marker, token, out)

  local doc, entries, plan_file, stopped = make_plan(opts, script, args)
  if stopped then io.stderr:write(stopped.message, "\n") end
  local tasks = opts.missing and planning.missing(entries, doc.tasks) or doc.tasks
  if probe and #tasks == 0 then os.execute("scancel " .. M.quote(probe.id) .. " 2>/dev/null") end
  if probe and #tasks > 0 then check_shared(probe, dir, marker, timeout, out) end
  if #tasks == 0 then
    print(("sweep slurm: nothing to run (%d tasks planned, none missing)"):format(#doc.tasks))
    return
  end
  local indices = {}
  for i, t in ipairs(tasks) do indices[i] = t.index end

  local base = plan_file:match("([^/]+)%.plan%.json$")
  local isa = opts.isa or os.getenv("LUNET_ISA") or require("lunet.core").isa()
  local cwd = abspath(".")
  local env = { { "LUNET_ISA", isa } }
  -- threads per task = the CPUs Slurm gives it (one unless --cpus-per-task says more)
  env[#env + 1] = opts["cpus-per-task"] and { "LUNET_THREADS", tostring(opts["cpus-per-task"]) }
    or { "LUNET_THREADS", "${SLURM_CPUS_PER_TASK:-1}", raw = true }

  local common = { "--out", out }
  local chunks = M.split(indices, max_array)
  local ids, submitted = {}, {}
  for _, c in ipairs(chunks) do
    local file = ("%s/%s%s.sbatch"):format(dir, base, c.offset > 0 and ("-from-" .. c.offset) or "")
    local array = M.ranges(c.indices) .. (opts["max-parallel"] and ("%" .. opts["max-parallel"]) or "")
    local command = { ctx.launcher, "sweep", "task" }
    for _, w in ipairs(common) do command[#command + 1] = w end
    if c.offset > 0 then
      command[#command + 1] = "--index-offset"
      command[#command + 1] = tostring(c.offset)
    end
    command[#command + 1] = "--"
    command[#command + 1] = script
    for _, a in ipairs(args) do command[#command + 1] = a end
    write_file(file, M.sbatch_script {
      comment = ("written by `bin/lunet sweep slurm` on %s: tasks of the plan %s (fingerprint %s)\n"
        .. "array task id + %d = plan task index; resubmit some with: sbatch --array=LIST %s"):format(
        os.date("!%Y-%m-%d %H:%M UTC"), plan_file, doc.fingerprint, c.offset, file),
      job_name = "lunet-" .. base, output = ("%s/logs/%s-%%A_%%a.out"):format(dir, base), chdir = cwd,
      array = array, partition = opts.partition, time = opts.time, cpus = opts["cpus-per-task"], mem = opts.mem,
      marker = marker, token = token, out = out, env = env, command = command,
    }, "755")
    local id, cmd = sbatch(file, opts.sbatch)
    ids[#ids + 1] = id
    submitted[#submitted + 1] = { id = id, offset = c.offset, file = file, command = cmd, array = array }
    print(("submitted array job %s: tasks %s (%s)"):format(id, M.ranges(indices_of_chunk(c)), file))
  end

  local merge_file = ("%s/%s-merge.sbatch"):format(dir, base)
  local merge_command = { ctx.launcher, "sweep", "merge" }
  for _, w in ipairs(common) do merge_command[#merge_command + 1] = w end
  merge_command[#merge_command + 1] = "--"
  merge_command[#merge_command + 1] = script
  for _, a in ipairs(args) do merge_command[#merge_command + 1] = a end
  write_file(merge_file, M.sbatch_script {
    comment = ("written by `bin/lunet sweep slurm`: the merge of the plan %s; it runs after the arrays (afterany)")
      :format(plan_file),
    job_name = "lunet-" .. base .. "-merge", output = ("%s/logs/%s-merge-%%j.out"):format(dir, base), chdir = cwd,
    partition = opts.partition, time = opts.time, cpus = opts["cpus-per-task"], mem = opts.mem,
    marker = marker, token = token, out = out, env = env, command = merge_command,
  }, "755")
  local dependency = "--dependency=afterany:" .. table.concat(ids, ":")
  local merge_id, merge_cmd = sbatch(merge_file, dependency .. (opts.sbatch and (" " .. opts.sbatch) or ""))
  print(("submitted merge job %s (%s), after %s"):format(merge_id, merge_file, table.concat(ids, ", ")))
  local record = { "# `bin/lunet sweep slurm` submitted (" .. os.date("!%Y-%m-%d %H:%M UTC") .. "):" }
  for _, s in ipairs(submitted) do record[#record + 1] = s.command .. "    # job " .. s.id .. ", offset " .. s.offset end
  record[#record + 1] = merge_cmd .. "    # job " .. merge_id
  write_file(("%s/%s.submitted"):format(dir, base), table.concat(record, "\n") .. "\n")

  if not opts.wait then
    print(("follow it with `squeue -j %s,%s`; the merge writes %s/logs/%s-merge-%s.out"):format(
      table.concat(ids, ","), merge_id, dir, base, merge_id))
    return
  end
  -- the merge and the arrays together: a task's record must be read before slurmctld
  -- forgets it, MinJobAge after it ended (M.wait_jobs)
  local all = { merge_id }
  for _, id in ipairs(ids) do all[#all + 1] = id end
  local final = M.wait_jobs(all, 0.5)
  local failed, counts = {}, {}
  for _, s in ipairs(submitted) do
    for _, r in ipairs(final[s.id] or {}) do
      local st = (r.JobState or "?"):match("^%u+") or "?"
      counts[st] = (counts[st] or 0) + 1
      local tid = tonumber(r.ArrayTaskId or "")
      if st ~= "COMPLETED" and tid then failed[#failed + 1] = tid + s.offset end
    end
  end
  local states, summary = {}, {}
  for st in pairs(counts) do states[#states + 1] = st end
  table.sort(states)
  for i, st in ipairs(states) do summary[i] = ("%d %s"):format(counts[st], st) end
  print(("tasks: %s"):format(table.concat(summary, ", ")))
  if #failed > 0 then
    print(("failed tasks (plan indices): %s; logs in %s/logs; resubmit with `bin/lunet sweep slurm --missing ...`")
      :format(M.ranges(failed), dir))
  end
  local mrec = (final[merge_id] or {})[1] or {}
  local mstate = (mrec.JobState or "?"):match("^%u+") or "?"
  local mlog = ("%s/logs/%s-merge-%s.out"):format(dir, base, merge_id)
  print(("merge job %s: %s (exit %s); its output, %s:"):format(merge_id, mstate, mrec.ExitCode or "?", mlog))
  print(tail(mlog, 20))
  if mstate ~= "COMPLETED" then os.exit(1) end
end

-- ------------------------------------------------------- sweep parallel

local function cmd_parallel(opts, script, args, _, ctx)
  if not have("parallel") then fail("sweep parallel: GNU parallel not found (Debian package parallel)") end
  local doc, _, plan_file, stopped = make_plan(opts, script, args)
  if stopped then io.stderr:write(stopped.message, "\n") end
  local out = abspath(opts.out)
  local dir = out .. "/parallel"
  local base = plan_file:match("([^/]+)%.plan%.json$")
  local lines = {}
  for i, t in ipairs(doc.tasks) do lines[i] = tostring(t.index) end
  local task_file = ("%s/%s.tasks"):format(dir, base)
  write_file(task_file, table.concat(lines, "\n") .. (#lines > 0 and "\n" or ""))
  local joblog = ("%s/%s.joblog"):format(dir, base)
  local isa = opts.isa or os.getenv("LUNET_ISA") or require("lunet.core").isa()
  local jobs = opts.j or require("lunet.core").cpu_count()
  local env = { "LUNET_ISA=" .. M.quote(isa) }
  if not opts.sshloginfile then
    env[#env + 1] = "LUNET_THREADS=" .. math.max(1, require("lunet.core").cpu_count() // jobs)
  end
  local words = { ctx.launcher, "sweep", "task", "--out", out, "--index" }
  local task_cmd = ("cd %s && %s exec %s {} -- %s"):format(M.quote(abspath(".")), table.concat(env, " "),
    command_line(words), command_line({ script, table.unpack(args) }))
  local cmd = { "parallel", "--will-cite", "-j", tostring(jobs), "--joblog", joblog, "--resume-failed",
    "--halt", "never", "-a", task_file }
  if opts.sshloginfile then
    cmd[#cmd + 1] = "--sshloginfile"
    cmd[#cmd + 1] = opts.sshloginfile
  end
  cmd[#cmd + 1] = task_cmd
  if #lines > 0 then
    io.stderr:write(("sweep parallel: %d tasks, -j %d%s, joblog %s\n"):format(#lines, jobs,
      opts.sshloginfile and (" over " .. opts.sshloginfile) or "", joblog))
    local ok, how, code = os.execute(command_line(cmd))
    if how == "signal" then os.exit(128 + code) end
    if not ok then io.stderr:write(("sweep parallel: %d tasks failed (joblog %s); merging what is stored\n"):format(
      code, joblog)) end
  end
  local merge = { ctx.launcher, "sweep", "merge", "--out", out, "--", script, table.unpack(args) }
  local ok, how, code = os.execute("LUNET_ISA=" .. M.quote(isa) .. " " .. command_line(merge))
  if how == "signal" then os.exit(128 + code) end
  if not ok then os.exit(code or 1) end
end

-- ----------------------------------------------------------------- main

local COMMAND_FUNCTIONS = { plan = cmd_plan, task = cmd_task, merge = cmd_merge, slurm = cmd_slurm,
  parallel = cmd_parallel }

--- M.main(argv, ctx): `bin/lunet sweep ARGV...`; ctx = {launcher = absolute path of
-- bin/lunet, load_lunet = function returning the module}.
function M.main(argv, ctx)
  local cmd = argv[1]
  if cmd == nil or cmd == "--help" or cmd == "-h" or cmd == "help" then
    print(M.USAGE)
    return
  end
  local rest = {}
  for i = 2, #argv do rest[#rest + 1] = argv[i] end
  local opts, script, args = M.parse(cmd, rest)
  if not opts then fail(script) end
  local lunet = ctx.load_lunet()
  COMMAND_FUNCTIONS[cmd](opts, script, args, lunet, ctx)
end

return M
