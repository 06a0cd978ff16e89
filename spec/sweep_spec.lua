-- `bin/lunet sweep` without a batch system: option parsing, the task-index rule, array
-- ranges and splitting (lunet.cluster), plan mode and its placeholders (lunet.plan), and
-- plan / task / merge / parallel on one machine with real processes. The Slurm and ssh
-- recipes with real daemons are in spec/cluster_spec.lua.
local util = require("util")
local lfs = require("lfs")
local cluster = require("lunet.cluster")

-- How many runs the `sweep task` lines on a command's stderr say they computed.
local function computed_runs(err)
  local n = 0
  for k in err:gmatch("runs %d+%-%d+: (%d+) computed") do n = n + tonumber(k) end
  return n
end

local ROOT = lfs.currentdir()
local LUNET = ROOT .. "/bin/lunet"

describe("lunet.cluster.parse", function()
  it("takes the options before SCRIPT and leaves everything after it to the script", function()
    local o, script, args = cluster.parse("slurm", { "--partition", "gpu", "--time=1:00:00", "--cpus-per-task", "4",
      "--mem=8G", "--max-parallel", "10", "--sbatch", "--qos=low -A proj", "--wait", "--isa", "avx2",
      "run.lua", "--wait", "--out", "x" })
    assert.are.same({ partition = "gpu", time = "1:00:00", ["cpus-per-task"] = 4, mem = "8G", ["max-parallel"] = 10,
      sbatch = "--qos=low -A proj", wait = true, isa = "avx2", out = "out" }, o)
    assert.are.equal("run.lua", script)
    assert.are.same({ "--wait", "--out", "x" }, args)
  end)

  it("knows each subcommand's options, -j N and -jN, and -- before a script named like an option", function()
    local o, s = cluster.parse("parallel", { "-j", "3", "--sshloginfile", "hosts", "a.lua" })
    assert.are.same({ j = 3, sshloginfile = "hosts", out = "out" }, o)
    assert.are.equal("a.lua", s)
    o = cluster.parse("parallel", { "-j2", "a.lua" })
    assert.are.equal(2, o.j)
    local _, s2, a2 = cluster.parse("task", { "--index", "0", "--", "--odd.lua", "x" })
    assert.are.equal("--odd.lua", s2)
    assert.are.same({ "x" }, a2)
    o = cluster.parse("plan", { "--missing", "--json", "--runs-per-task", "5", "--out", "/s", "p.lua" })
    assert.are.same({ missing = true, json = true, ["runs-per-task"] = 5, out = "/s" }, o)
    o = cluster.parse("merge", { "--compute-missing", "m.lua" })
    assert.is_true(o["compute-missing"])
    o = cluster.parse("task", { "--index-offset=1000", "t.lua" })
    assert.are.equal(1000, o["index-offset"])
  end)

  it("names what is wrong", function()
    local function err(cmd, argv)
      local o, msg = cluster.parse(cmd, argv)
      assert.is_nil(o)
      return msg
    end
    assert.matches("unknown option '%-%-wait' %(valid: .*%-%-index", err("task", { "--wait", "s.lua" }))
    assert.matches("option %-%-index must be an integer >= 0 %(got \"%-1\"%)", err("task", { "--index", "-1", "s.lua" }))
    assert.matches("option %-%-cpus%-per%-task must be an integer >= 1 %(got \"0\"%)",
      err("slurm", { "--cpus-per-task", "0", "s.lua" }))
    assert.matches("option %-%-partition needs a value", err("slurm", { "--partition" }))
    assert.matches("option %-%-wait takes no value", err("slurm", { "--wait=yes", "s.lua" }))
    assert.matches("missing SCRIPT", err("plan", { "--json" }))
    assert.matches("unknown command 'run'", err("run", { "s.lua" }))
    assert.matches("unknown option '%-%-j'", err("parallel", { "--j", "2", "s.lua" }))
  end)
end)

describe("lunet.cluster.task_index", function()
  local function env(t) return function(k) return t[k] end end
  it("is --index, else $SLURM_ARRAY_TASK_ID + --index-offset, else $JOB_COMPLETION_INDEX", function()
    assert.are.equal(7, cluster.task_index({ index = 7 }, env { SLURM_ARRAY_TASK_ID = "2", JOB_COMPLETION_INDEX = "3" }))
    assert.are.equal(2, cluster.task_index({}, env { SLURM_ARRAY_TASK_ID = "2", JOB_COMPLETION_INDEX = "3" }))
    assert.are.equal(1002, cluster.task_index({ ["index-offset"] = 1000 }, env { SLURM_ARRAY_TASK_ID = "2" }))
    assert.are.equal(3, cluster.task_index({}, env { JOB_COMPLETION_INDEX = "3" }))
    assert.are.equal(3, cluster.task_index({}, env { SLURM_ARRAY_TASK_ID = "", JOB_COMPLETION_INDEX = "3" }))
  end)
  it("says how to give one when there is none, and rejects a malformed one", function()
    local i, msg = cluster.task_index({}, env {})
    assert.is_nil(i)
    assert.matches("give %-%-index I.*SLURM_ARRAY_TASK_ID.*JOB_COMPLETION_INDEX", msg)
    i, msg = cluster.task_index({}, env { SLURM_ARRAY_TASK_ID = "4294967294x" })
    assert.is_nil(i)
    assert.matches("SLURM_ARRAY_TASK_ID is \"4294967294x\", not a task index", msg)
  end)
end)

describe("lunet.cluster arrays", function()
  it("writes index lists as Slurm ranges", function()
    assert.are.equal("0-3,7,9-10", cluster.ranges({ 10, 0, 1, 2, 3, 7, 9, 3 }))
    assert.are.equal("5", cluster.ranges({ 5 }))
    assert.are.equal("", cluster.ranges({}))
  end)
  it("splits indices at MaxArraySize into arrays with offsets", function()
    assert.are.same({ { offset = 0, indices = { 0, 1, 2 } }, { offset = 3, indices = { 0, 1, 2 } },
      { offset = 6, indices = { 0 } } }, cluster.split({ 0, 1, 2, 3, 4, 5, 6 }, 3))
    -- resubmitting a sparse list: every array id stays below MaxArraySize
    local chunks = cluster.split({ 1, 2, 1500, 2999, 3000 }, 1001)
    assert.are.same({ { offset = 1, indices = { 0, 1 } }, { offset = 1500, indices = { 0 } },
      { offset = 2999, indices = { 0, 1 } } }, chunks)
    assert.are.same({ { offset = 0, indices = { 0, 1, 2, 3 } } }, cluster.split({ 0, 1, 2, 3 }, 1001))
  end)
  it("reads scontrol's config and job records", function()
    local c = cluster.parse_config("Configuration data as of 2026-01-01T00:00:00\nMaxArraySize            = 4\n"
      .. "AuthInfo                = socket=/tmp/x/munge.socket\n")
    assert.are.equal("4", c.MaxArraySize)
    assert.are.equal("socket=/tmp/x/munge.socket", c.AuthInfo)
    local recs = cluster.parse_job_records(
      "JobId=5 ArrayJobId=4 ArrayTaskId=1 JobName=x JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0\n"
      .. "JobId=4 ArrayJobId=4 ArrayTaskId=2-3 JobState=PENDING Reason=None ExitCode=0:0\n")
    assert.are.equal(2, #recs)
    assert.are.same({ "5", "1", "FAILED", "3:0" }, { recs[1].JobId, recs[1].ArrayTaskId, recs[1].JobState, recs[1].ExitCode })
    assert.are.same({ "2-3", "PENDING" }, { recs[2].ArrayTaskId, recs[2].JobState })
  end)
  it("waits for jobs keeping every task's last record, though slurmctld forgets finished ones", function()
    local function rec(task, state) return { JobId = "9", ArrayJobId = "9", ArrayTaskId = task, JobState = state } end
    -- what `scontrol show job` lists at each poll: the merge job 10 after the array 9; tasks 0
    -- and 1 are forgotten (MinJobAge) before the merge ends; task 2 vanishes while running
    local polls = {
      { ["9"] = { rec("0", "RUNNING"), rec("1-3", "PENDING") }, ["10"] = { { JobId = "10", JobState = "PENDING" } } },
      { ["9"] = { rec("0", "COMPLETED"), rec("1", "RUNNING"), rec("2-3", "PENDING") },
        ["10"] = { { JobId = "10", JobState = "PENDING" } } },
      { ["9"] = { rec("1", "FAILED"), rec("2", "RUNNING"), rec("3", "RUNNING") },
        ["10"] = { { JobId = "10", JobState = "PENDING" } } },
      { ["9"] = { rec("3", "COMPLETED") }, ["10"] = { { JobId = "10", JobState = "COMPLETED" } } },
    }
    local n = 0
    local final = cluster.wait_jobs({ "10", "9" }, 0, function(id)
      if id == "10" then n = n + 1 end
      return polls[math.min(n, #polls)][id]
    end)
    assert.are.equal(4, n)
    local states = {}
    for _, r in ipairs(final["9"]) do states[#states + 1] = r.ArrayTaskId .. "=" .. r.JobState end
    assert.are.same({ "0=COMPLETED", "1=FAILED", "2=UNKNOWN", "3=COMPLETED" }, states)
    assert.are.equal("COMPLETED", final["10"][1].JobState)
  end)

  it("writes sbatch scripts that check the shared directory, pin the ISA and run the task", function()
    local dir = util.temp_dir()
    util.write(dir .. "/marker", "abc123")
    local text = cluster.sbatch_script { comment = "a test\nsecond line", job_name = "lunet-x",
      output = dir .. "/%A_%a.out", chdir = dir, array = "0-3%2", cpus = 2, marker = dir .. "/marker",
      token = "abc123", out = dir, env = { { "LUNET_ISA", "avx2" }, { "LUNET_THREADS", "${SLURM_CPUS_PER_TASK:-1}", raw = true } },
      command = { "sh", "-c", "echo ran $LUNET_ISA $LUNET_THREADS \"$0\"", "it's" } }
    assert.matches("^#!/bin/sh\n# a test\n# second line\n#SBATCH %-%-job%-name=lunet%-x\n", text)
    assert.matches("\n#SBATCH %-%-array=0%-3%%2\n#SBATCH %-%-cpus%-per%-task=2\n#SBATCH %-%-ntasks=1\n", text)
    local file = dir .. "/job.sbatch"
    util.write(file, text)
    local r = util.run("sh " .. file)
    assert.is_true(r.ok, util.explain(r))
    assert.are.equal("ran avx2 1 it's\n", r.out)
    r = util.run("SLURM_CPUS_PER_TASK=4 sh " .. file)
    assert.are.equal("ran avx2 4 it's\n", r.out)
    util.write(dir .. "/marker", "another")
    r = util.run("sh " .. file)
    util.rm_rf(dir)
    assert.are.equal(3, r.code)
    assert.are.equal("", r.out)
    assert.matches("is not shared with .*: the marker .* is not there", r.err)
  end)

  it("quotes for sh", function()
    assert.are.equal("plain/path.lua", cluster.quote("plain/path.lua"))
    assert.are.equal("'it'\\''s here'", cluster.quote("it's here"))
    local r = util.run("printf '%s|' " .. cluster.command_line({ "a b", "$HOME", "x'y", "" }))
    assert.are.equal("a b|$HOME|x'y||", r.out)
  end)
end)

-- 2 learning rates x 2 momenta x 2 runs x 2 epochs of 64 synthetic images
local TINY = ROOT .. "/spec/support/tiny_sweep.lua"

describe("plan mode", function()
  local planning = require("lunet.plan")
  local lunet = require("lunet")
  after_each(function() planning.finish() end)

  it("records every experiment and returns placeholders that print as planned", function()
    local data = require("synthetic")(16, 4, 1)
    planning.begin {}
    local res = lunet.experiment { name = "p", model = lunet.models.mnist_cnn, data = data, runs = 3, iterations = 2,
      optimizer = { "sgd", lr = 0.1 }, quiet = true, out = "/nonexistent/never-written" }
    local entries = planning.finish()
    assert.is_true(planning.is_placeholder(res))
    assert.matches("^planned: p %(3 runs x 2 epochs, sgd lr=0.1 .*n=16", tostring(res))
    assert.are.equal(1, #entries)
    assert.are.same({ "p", 3, 2 }, { entries[1].name, entries[1].runs, entries[1].iterations })
    assert.matches("^spec/sweep_spec.lua:%d+$", entries[1].line)
    assert.is_true(entries[1].cost > 0)
    assert.is_nil(lfs.attributes("/nonexistent/never-written"))
  end)

  it("stops at the first read of a placeholder's numbers, naming the line", function()
    local data = require("synthetic")(16, 4, 1)
    planning.begin {}
    local res = lunet.experiment { name = "q", model = lunet.models.mnist_cnn, data = data, runs = 1, iterations = 1,
      quiet = true }
    local ok, err = pcall(function() return res.mean[1] end)
    planning.finish()
    assert.is_false(ok)
    assert.are.equal(planning.Stop, getmetatable(err))
    assert.matches("planning stops at spec/sweep_spec.lua:%d+: it reads 'mean' of experiment 'q'", tostring(err))
  end)

  it("asks the store which runs are stored, and computes a task's runs into it (run by run)", function()
    local out = util.temp_dir()
    local data = require("synthetic")(16, 4, 1)
    local function plan(iterations)
      planning.begin { keep = function() return true end }
      lunet.experiment { name = "s", model = lunet.models.mnist_cnn, data = data, runs = 3, iterations = iterations,
        optimizer = { "sgd", lr = 0.1 }, threads = 1, quiet = true, out = out }
      return planning.finish()[1]
    end
    local e = plan(2)
    assert.are.same({}, planning.stored_runs(e))
    assert.is_nil(lfs.attributes(out .. "/store")) -- planning writes nothing
    local res = planning.compute_task(lunet, e, { index = 1, first = 2, last = 3 }, e.opts)
    assert.are.same({ 2, 0 }, { res.provenance.runs_computed, res.provenance.runs_cached })
    assert.are.equal(2, #res.runs)
    assert.are.same({ [2] = true, [3] = true }, planning.stored_runs(e))
    -- again: nothing computed; a longer question is not answered by 2-iteration runs
    res = planning.compute_task(lunet, e, { index = 1, first = 1, last = 3 }, e.opts)
    assert.are.same({ 1, 2 }, { res.provenance.runs_computed, res.provenance.runs_cached })
    assert.are.same({ [1] = true, [2] = true, [3] = true }, planning.stored_runs(e))
    assert.are.same({}, planning.stored_runs(plan(3)))
    -- the stored runs are those of an ordinary experiment: it computes none
    local whole = lunet.experiment { name = "s", model = lunet.models.mnist_cnn, data = data, runs = 3,
      iterations = 2, optimizer = { "sgd", lr = 0.1 }, threads = 1, quiet = true, out = out }
    assert.are.same({ 0, 3 }, { whole.provenance.runs_computed, whole.provenance.runs_cached })
    assert.are.same(res.runs[1].loss, whole.runs[1].loss)
    -- a seed reads the same computed (res) and from the store (whole): an integer
    assert.are.equal("integer", math.type(res.runs[1].seed))
    assert.are.equal(res.runs[1].seed, whole.runs[1].seed)
    assert.has_error(function() planning.compute_task(lunet, e, { index = 7, first = 3, last = 4 }, e.opts) end,
      "sweep task 7: runs 3-4 are not runs of 's' (1-3)")
    util.rm_rf(out)
  end)

  it("gives no tasks to an experiment that an earlier one's runs answer (same settings, under any name)",
    function()
    local data = require("synthetic")(16, 4, 1)
    local test = require("synthetic")(8, 4, 2)
    local function experiment(t) -- t's settings on the same model and data
      t.model, t.data, t.quiet, t.out = lunet.models.mnist_cnn, data, true, "/nonexistent/never-written"
      t.optimizer = t.optimizer or { "sgd", lr = 0.1 }
      return lunet.experiment(t)
    end
    planning.begin {}
    experiment { name = "figure2", runs = 4, iterations = 3, test = test, test_at = { 2 } }
    experiment { name = "figure1", runs = 3, iterations = 2, test = test }   -- answered
    experiment { name = "longer", runs = 3, iterations = 4 }                 -- not: more iterations
    experiment { name = "more", runs = 5, iterations = 1 }                   -- not: more runs
    experiment { name = "untested", runs = 2, iterations = 1, test = test }  -- not: no test at 1
    experiment { name = "other", runs = 2, iterations = 2, optimizer = { "sgd", lr = 0.2 } }
    local entries = planning.finish()
    assert.are.equal(entries[1].key, entries[2].key)
    assert.are.equal(entries[3].key, entries[4].key)
    assert.are_not.equal(entries[1].key, entries[3].key) -- the test data is part of the key
    local names = {}
    for _, t in ipairs(planning.tasks(entries, 2)) do names[#names + 1] = t.name .. ":" .. t.first end
    assert.are.same({ "figure2:1", "figure2:3", "longer:1", "longer:3", "more:1", "more:3", "more:5",
      "untested:1", "other:1" }, names)
    local doc = planning.document { script = "x.lua", entries = entries }
    assert.are.equal("figure2", doc.experiments[2].answered_by)
    assert.is_nil(doc.experiments[3].answered_by)
    assert.is_nil(lfs.attributes("/nonexistent/never-written"))
  end)

  it("cuts configurations into tasks of K runs, in a fixed order with a fingerprint", function()
    local entries = { { index = 1, name = "a", key = "k1", runs = 5, iterations = 2, unit = "epoch" },
      { index = 2, name = "b", key = "k2", runs = 2, iterations = 2, unit = "epoch" } }
    local tasks = planning.tasks(entries, 2)
    local got = {}
    for _, t in ipairs(tasks) do got[#got + 1] = ("%d:%s:%d-%d"):format(t.index, t.name, t.first, t.last) end
    assert.are.same({ "0:a:1-2", "1:a:3-4", "2:a:5-5", "3:b:1-2" }, got)
    assert.are.equal(2, #planning.tasks(entries, nil))
    assert.are_not.equal(planning.fingerprint(entries, 2), planning.fingerprint(entries, nil))
    assert.are.equal(planning.fingerprint(entries, 2), planning.fingerprint(entries, 2))
  end)
end)

describe("bin/lunet sweep on one machine", function()
  local dir
  before_each(function() dir = util.temp_dir() end)
  after_each(function() util.rm_rf(dir) end)

  local function lunet(args) return util.run(("cd %s && %s %s"):format(util.shell_quote(dir), LUNET, args)) end
  -- lunet(args), which must succeed / must fail with exit code 1
  local function lunet_ok(args)
    local r = lunet(args)
    assert.is_true(r.ok, util.explain(r))
    return r
  end
  local function lunet_fails(args)
    local r = lunet(args)
    assert.are.equal(1, r.code, util.explain(r))
    return r
  end
  -- the CSV a sweep wrote equals that of `bin/lunet run` of the same script and arguments
  local function equals_local_run(merged, args)
    lunet_ok("run " .. TINY .. " local " .. (args or ""))
    assert.are.equal(util.read(dir .. "/local/tiny.csv"), merged)
  end
  local function have_parallel()
    if os.execute("command -v parallel >/dev/null 2>&1") == true then return true end
    pending("GNU parallel not installed (Debian package parallel; `make deps`)")
  end

  it("plans without training, runs tasks by index, refuses a merge with missing runs, and merges", function()
    local r = lunet_ok("sweep plan " .. TINY)
    assert.matches("plan of " .. TINY .. ": 4 tasks, 4 experiments", r.out, 1, true)
    assert.matches("\n%s+3%s+tiny%-lr=0.05%-momentum=0.9%s+sgd lr=0.05 momentum=0.9", r.out)
    assert.matches("planning stops at " .. TINY .. ":18: it reads", r.out, 1, true)
    assert.is_nil(lfs.attributes(dir .. "/out/store"))  -- nothing trained, nothing written
    r = lunet_ok("sweep plan --json " .. TINY)
    local doc = require("cjson").decode(r.out)
    assert.are.equal("lunet-sweep-plan", doc.format)
    assert.are.equal(4, #doc.tasks)

    r = lunet_fails("sweep task --index 4 " .. TINY)
    assert.matches("task 4 does not exist: the plan in out/sweep/tiny_sweep.plan.json has 4 tasks %(0%-3%)", r.err)
    r = lunet_fails("sweep task " .. TINY)
    assert.matches("which task%?", r.err)
    r = util.run(("cd %s && SLURM_ARRAY_TASK_ID=0 %s sweep task --index-offset 1 " .. TINY):format(dir, LUNET))
    assert.is_true(r.ok, util.explain(r))
    assert.matches("sweep task 1: tiny%-lr=0.01%-momentum=0.9 runs 1%-2: 2 computed", r.err)
    r = util.run(("cd %s && JOB_COMPLETION_INDEX=2 %s sweep task " .. TINY):format(dir, LUNET))
    assert.is_true(r.ok, util.explain(r))

    r = lunet("sweep plan --missing " .. TINY)
    assert.matches("2 of 4 tasks are missing: %-%-array=0,3", r.out)
    r = lunet_fails("sweep merge " .. TINY)
    assert.matches("2 of 4 tasks have runs missing from the store: %-%-array=0,3", r.err)
    assert.is_nil(lfs.attributes(dir .. "/out/tiny.csv"))

    lunet_ok("sweep merge --compute-missing " .. TINY)
    equals_local_run(util.read(dir .. "/out/tiny.csv"))
  end)

  it("plans a script in stages: each plan goes as far as the stored runs allow, with the same task indices",
    function()
    local STAGED = ROOT .. "/spec/support/staged_sweep.lua"
    local r = lunet_ok("sweep plan " .. STAGED)
    assert.matches(": 1 tasks, 1 experiments", r.out)
    assert.matches("planning stops at " .. STAGED .. ":17: it reads 'final' of experiment 'first'", r.out, 1, true)
    assert.is_true(lunet("sweep task --index 0 " .. STAGED).ok)
    -- stage 1 is stored: its merge gets as far as the unplanned stage 2, and refuses to compute it
    r = lunet_fails("sweep merge " .. STAGED)
    assert.matches("experiment 'second' (" .. STAGED .. ":18) is not in the store and was not planned", r.err, 1, true)
    r = lunet("sweep plan --missing " .. STAGED)
    assert.matches(": 2 tasks, 2 experiments", r.out)
    assert.matches("1 of 2 tasks are missing: %-%-array=1\n", r.out)
    assert.matches("\n%s+1%s+second%s+sgd lr=0.05", r.out)
    lunet_ok("sweep task --index 1 " .. STAGED)
    lunet_ok("sweep merge " .. STAGED)
    local merged = util.read(dir .. "/out/second.csv")
    lunet_ok("run " .. STAGED .. " local")
    assert.are.equal(util.read(dir .. "/local/second.csv"), merged)
  end)

  it("refuses a task against a different plan, and a pinned ISA this machine does not compute with", function()
    assert.is_true(lunet("sweep plan " .. TINY).ok)
    local r = lunet("sweep task --index 0 " .. TINY .. " out 3") -- 3 epochs: other configurations
    assert.are.equal(1, r.code)
    assert.matches("plans differently from the plan in out/sweep/tiny_sweep.plan.json", r.err)
    r = util.run(("cd %s && LUNET_ISA=avx9000 %s sweep task --index 0 " .. TINY):format(dir, LUNET))
    assert.are.equal(1, r.code)
    assert.matches("LUNET_ISA is avx9000 but this machine computes with " .. require("lunet.core").isa(), r.err)
  end)

  it("a task decodes only the kept items of a gzipped IDX file: the plan's data checksums vouch for them",
    function()
    local data = dir .. "/data"
    lfs.mkdir(data)
    local images_gz = util.write_idx_gz(data, 200, 5)
    util.write(dir .. "/idx_sweep.lua", ([[
local lunet = require("lunet")
local data = assert(lunet.idx { images = %q, labels = %q, n = 8 })
local res = lunet.experiment { name = "idx", model = lunet.models.mnist_cnn, data = data, batch = 4, iterations = 1,
  runs = 1, seed = 2, threads = 1, quiet = true, optimizer = { "sgd", lr = 0.01 } }
print(res)
]]):format(images_gz, data .. "/train-labels-idx1-ubyte.gz"))
    lunet_ok("sweep plan idx_sweep.lua")
    -- damage near the end of the images' stream: a whole read (bin/lunet run, the plan)
    -- refuses the file; the task never decodes that far, and computes the planned run
    local good = util.read(images_gz)
    util.flip_byte(images_gz, #good - 2000)
    local r = lunet_fails("run idx_sweep.lua")
    assert.matches("corrupt gzip data", r.err, 1, true)
    r = lunet_ok("sweep task --index 0 idx_sweep.lua")
    assert.matches("sweep task 0: idx runs 1%-1: 1 computed", r.err)
    -- a kept image changed (a valid file): its checksum, hence the configuration's key,
    -- differs from the plan's, and the task refuses to compute
    util.write_idx_gz(data, 200, 5, function(i, b) return i == 3000 and (b + 1) % 256 or b end)
    r = lunet_fails("sweep task --index 0 idx_sweep.lua")
    assert.matches("plans differently from the plan in out/sweep/idx_sweep.plan.json", r.err, 1, true)
    -- the original file again: the task's run is stored, the merge answers from the store
    util.write(images_gz, good)
    r = lunet_ok("sweep merge idx_sweep.lua")
    assert.matches("all 1 runs taken from the cache", r.out, 1, true)
  end)

  it("refuses to merge runs of mixed instruction sets unless asked", function()
    local isa = require("lunet.core").isa()
    if isa == "generic" then return pending("this machine computes with the generic kernels only") end
    assert.is_true(lunet("sweep plan " .. TINY).ok)
    -- task 0 on a "node" computing with the generic kernels, the others here
    local r = util.run(("cd %s && LUNET_ISA=generic %s sweep task --index 0 " .. TINY):format(util.shell_quote(dir),
      LUNET))
    assert.is_true(r.ok, util.explain(r))
    for i = 1, 3 do assert.is_true(lunet("sweep task --index " .. i .. " " .. TINY).ok) end
    r = lunet_fails("sweep merge " .. TINY)
    assert.matches("'tiny%-lr=0.01%-momentum=0': 2 runs in out/store/%x+ were computed with generic, not " .. isa, r.err)
    assert.matches("runs of mixed instruction sets", r.err)
    -- allowed: the generic runs are not this machine's, so task 0 is missing
    r = lunet_fails("sweep merge --allow-mixed-isa " .. TINY)
    assert.matches("1 of 4 tasks have runs missing from the store: %-%-array=0\n", r.err)
    assert.is_true(lunet("sweep task --index 0 " .. TINY).ok)
    assert.are.equal(1, lunet("sweep merge " .. TINY).code)
    lunet_ok("sweep merge --allow-mixed-isa " .. TINY)
    equals_local_run(util.read(dir .. "/out/tiny.csv"))
  end)

  it("a task killed at its time limit (SIGTERM, or SIGKILL) keeps its finished runs; run again, it computes the rest",
    function()
    local args = TINY .. " out 10 0.01,0.05 4 500" -- task 0: 4 runs of 10 epochs, about a second each
    assert.is_true(lunet("sweep plan " .. args).ok)
    local function kill_after_next_run(sig, before)
      -- started in the background; killed once one more record is on disk
      local r = util.run(("cd %s && { %s sweep task --index 0 %s & pid=$!; i=0; "
        .. "while [ \"$(ls out/store/*/run-*.json 2>/dev/null | wc -l)\" -le %d ] && [ $i -lt 1200 ]; do "
        .. "sleep 0.05; i=$((i+1)); done; kill -%s $pid; wait $pid; echo \"exit $?\"; }"):format(
        util.shell_quote(dir), LUNET, args, before, sig))
      return tonumber(r.out:match("exit (%d+)")), r
    end
    local function records() return #util.store_records(dir .. "/out") end
    -- SIGKILL (what follows SIGTERM after Slurm's KillWait) once a run is stored: it stays
    local code, r = kill_after_next_run("KILL", 0)
    assert.are.equal(137, code, util.explain(r))
    local kept = records()
    assert.is_true(kept >= 1 and kept < 4, kept .. " records")
    -- SIGTERM once one more is stored: one stderr line, exit 143, every finished run kept
    code, r = kill_after_next_run("TERM", kept)
    assert.are.equal(143, code, util.explain(r))
    assert.matches("interrupted by SIGTERM: %d of %d runs finished and are kept in out/store/", r.err)
    assert.is_true(records() > kept)
    kept = records()
    assert.is_true(kept < 4, kept .. " records")
    r = lunet_ok("sweep task --index 0 " .. args)
    assert.matches(("runs 1%%-4: %d computed, %d already stored"):format(4 - kept, kept), r.err)
    assert.are.equal(4, records())
    assert.matches("3 of 4 tasks are missing: %-%-array=1%-3", lunet("sweep plan --missing " .. args).out)
  end)

  it("sweep parallel --runs-per-task 1: one task per run, merged equal to the local run", function()
    if not have_parallel() then return end
    local r = lunet_ok("sweep plan --runs-per-task 1 " .. TINY)
    assert.matches("8 tasks, 4 experiments", r.out)
    r = lunet_ok("sweep parallel -j 2 --runs-per-task 1 " .. TINY)
    -- every task computed its one run: none twice, none from another task
    assert.are.equal(8, computed_runs(r.err))
    equals_local_run(util.read(dir .. "/out/tiny.csv"))
  end)

  it("sweep parallel -j 2 runs every task through GNU parallel with a joblog, then merges", function()
    if not have_parallel() then return end
    local r = lunet_ok("sweep parallel -j 2 " .. TINY)
    assert.matches("sweep tiny: 4 cells", r.out)
    local joblog = util.read(dir .. "/out/parallel/tiny_sweep.joblog")
    local n = 0
    for line in joblog:gmatch("[^\n]+") do
      if line:match("sweep task %-%-out") then
        n = n + 1
        assert.matches("^%d+\t:\t.-\t0\t0\t", line) -- exit 0, no signal
      end
    end
    assert.are.equal(4, n)
    local merged = util.read(dir .. "/out/tiny.csv")
    -- a second run finds every task done in the joblog and only merges
    lunet_ok("sweep parallel -j 2 " .. TINY)
    assert.are.equal(joblog, util.read(dir .. "/out/parallel/tiny_sweep.joblog"))
    equals_local_run(merged)
  end)

  it("sweep parallel killed midway runs only the tasks not done when run again", function()
    if not have_parallel() then return end
    local joblog = dir .. "/out/parallel/tiny_sweep.joblog"
    local function done_lines()
      local seqs = {}
      for seq, exit, sig in (util.read(joblog) or ""):gmatch("\n(%d+)\t[^\n]-\t(%d+)\t(%d+)\t[^\n]*sweep task") do
        if exit == "0" and sig == "0" then seqs[#seqs + 1] = seq end
      end
      return seqs
    end
    -- -j 2: two tasks at a time (of 200 epochs, about 0.4 s a task on a Zen 5 core, so that
    -- the kill comes in the middle: at 10 epochs, 0.05 s, all four were done before it), in
    -- a session of its own: the kill reaches lunet, GNU parallel and the running tasks
    os.execute(("cd %s && (setsid sh -c 'echo $$ > sid; exec %s sweep parallel -j 2 %s out 200' >/dev/null 2>&1 &)")
      :format(util.shell_quote(dir), LUNET, TINY))
    local waited = 0
    while #done_lines() < 1 and waited < 1200 do
      os.execute("sleep 0.05")
      waited = waited + 1
    end
    local sid = util.read(dir .. "/sid"):match("%d+")
    -- pkill and pgrep without the sanitizer runtimes `make test SANITIZE=1` preloads for
    -- lua5.4 (pkill hung in a futex under them)
    os.execute("env -u LD_PRELOAD pkill -TERM -s " .. sid)
    waited = 0
    while os.execute("env -u LD_PRELOAD pgrep -s " .. sid .. " >/dev/null") == true and waited < 600 do
      os.execute("sleep 0.05")
      waited = waited + 1
    end
    local before = #done_lines()
    assert.is_true(before >= 1 and before < 4, util.read(joblog))
    local stored = #util.store_records(dir .. "/out") -- also the runs that the killed tasks finished
    local r = lunet_ok("sweep parallel -j 2 " .. TINY .. " out 200")
    assert.are.equal(8 - stored, computed_runs(r.err)) -- no run is computed twice
    local seqs = done_lines()
    table.sort(seqs)
    assert.are.same({ "1", "2", "3", "4" }, seqs, util.read(joblog)) -- each task done once: none ran again
    equals_local_run(util.read(dir .. "/out/tiny.csv"), "200")
  end)
end)
