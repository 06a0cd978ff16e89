-- The cluster recipes with real daemons: a one-node Slurm (munged, slurmctld, slurmd from
-- tools/cluster/slurm.sh) running array jobs, dependencies and `bin/lunet sweep slurm`, and
-- an sshd on 127.0.0.1 (tools/cluster/sshd.sh) that GNU parallel and `bin/lunet sweep
-- parallel` reach under two host aliases. The daemons run as root; elsewhere (not root,
-- packages missing) these skip, saying why. Every daemon is stopped by its pid at the end,
-- also when a test failed, and the last test of each group checks that none is left.
local util = require("util")
local lfs = require("lfs")

local ROOT = lfs.currentdir()
local LUNET = ROOT .. "/bin/lunet"
local TINY = ROOT .. "/spec/support/tiny_sweep.lua"
local q = util.shell_quote

local function why_not(programs)
  if util.run("id -u").out ~= "0\n" then return "needs root: the daemons run as root (CI runs as root)" end
  local missing = {}
  for _, p in ipairs(programs) do
    if not util.run("command -v " .. q(p)).ok and not util.run("test -x " .. q(p)).ok then missing[#missing + 1] = p end
  end
  if #missing > 0 then return "not installed: " .. table.concat(missing, ", ") .. " (`make deps`)" end
  return nil
end

-- "K=V; export K" lines, as the cluster scripts print them
local function env_of(text)
  local env = {}
  for k, v in text:gmatch("([%w_]+)=([^;\n]*); export") do env[k] = v end
  return env
end

local function alive(pid) return util.run("kill -0 " .. pid).ok == true end

local function wait_until(seconds, f)
  for _ = 1, seconds * 10 do
    if f() then return true end
    util.run("sleep 0.1")
  end
  return false
end

describe("a one-node Slurm (tools/cluster/slurm.sh) #cluster", function()
  local reason = why_not({ "munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel", "sinfo" })
  if reason then
    it("is skipped", function() pending(reason) end)
    return
  end
  local dir, S, pids, work

  setup(function()
    -- MaxArraySize 4: a 4-task array fits, a sweep of 6 tasks is split in two arrays
    local r = util.run("LUNET_SLURM_MAX_ARRAY=4 sh tools/cluster/slurm.sh start")
    assert(r.ok, util.explain(r))
    local env = env_of(r.out)
    dir = env.LUNET_SLURM_DIR
    S = "SLURM_CONF=" .. q(env.SLURM_CONF) .. " "
    pids = {}
    for _, n in ipairs({ "munged", "slurmctld", "slurmd" }) do pids[n] = util.read(dir .. "/pids/" .. n):match("%d+") end
    work = util.temp_dir()
  end)
  teardown(function()
    if dir and lfs.attributes(dir) then util.run("sh tools/cluster/slurm.sh stop " .. q(dir)) end
    if work then util.rm_rf(work) end
  end)

  local function slurm(cmd) return util.run(S .. cmd) end
  local function wait_jobs(ids)
    local r = slurm(("timeout 120 sh -c 'while squeue -h -j %s | grep -q .; do sleep 0.2; done'"):format(ids))
    assert(r.ok, "jobs did not finish within 120 s: " .. util.explain(slurm("squeue")))
  end

  it("is up: one idle node with every CPU of this host", function()
    local r = slurm("sinfo -h -o '%t %c %D'")
    assert.are.equal(("idle %d 1\n"):format(tonumber(util.run("nproc").out)), r.out)
    assert.matches("MaxArraySize%s+= 4\n", slurm("scontrol show config").out)
  end)

  it("runs a 4-task array job, then a job that depends on it (afterany)", function()
    local r = slurm(("sbatch --parsable --array=0-3 -o %s/arr-%%a.out --wrap 'echo task $SLURM_ARRAY_TASK_ID; sleep 0.3'")
      :format(work))
    assert.is_true(r.ok, util.explain(r))
    local array = r.out:match("^(%d+)")
    r = slurm(("sbatch --parsable --dependency=afterany:%s -o %s/after.out --wrap 'cat %s/arr-*.out | wc -l'")
      :format(array, work, work))
    assert.is_true(r.ok, util.explain(r))
    local after = r.out:match("^(%d+)")
    wait_jobs(array .. "," .. after)
    for i = 0, 3 do assert.are.equal("task " .. i .. "\n", util.read(("%s/arr-%d.out"):format(work, i))) end
    assert.are.equal("4\n", util.read(work .. "/after.out")) -- it ran once all four had written
    local states = slurm("scontrol -o show job " .. array).out
    local n = 0
    for st in states:gmatch("JobState=(%u+)") do
      assert.are.equal("COMPLETED", st)
      n = n + 1
    end
    assert.are.equal(4, n)
    r = slurm("sbatch --parsable --array=0-4 --wrap true")
    assert.is_not_true(r.ok) -- beyond MaxArraySize
    assert.matches("[Ii]nvalid job array", r.err)
  end)

  it("sweep slurm: 2 lr x 2 momenta x 3 runs x 3 epochs of 500 images, one task per run, split arrays, failed tasks "
    .. "reported by the merge job and resubmitted from --missing; the merge equals bin/lunet run", function()
    local args = " out 3 0.01,0.05 3 500"
    local sweep = ("cd %s && %%s %s%s sweep slurm --wait --cpus-per-task 1 %%s %s" .. args):format(q(work), S, LUNET,
      TINY)
    -- 4 cells x 3 runs = 12 tasks: arrays 0-3, 4-7 (--index-offset 4), 8-11; array task 1 fails in each
    local r = util.run(sweep:format("FAIL_TASK=1", "--runs-per-task 1"))
    assert.are.equal(1, r.code, util.explain(r))
    assert.matches("submitted array job %d+: tasks 0%-3 %(", r.out)
    assert.matches("submitted array job %d+: tasks 4%-7 %(", r.out)
    assert.matches("submitted array job %d+: tasks 8%-11 %(", r.out)
    assert.matches("tasks: 9 COMPLETED, 3 FAILED", r.out)
    assert.matches("failed tasks %(plan indices%): 1,5,9", r.out)
    assert.matches("merge job %d+: FAILED", r.out)
    local logs = {}
    for name in lfs.dir(work .. "/out/slurm/logs") do logs[#logs + 1] = name end
    table.sort(logs)
    local merge_log = ""
    for _, name in ipairs(logs) do
      if name:match("merge") then merge_log = util.read(work .. "/out/slurm/logs/" .. name) end
    end
    assert.matches("3 of 12 tasks have runs missing from the store: %-%-array=1,5,9", merge_log)
    assert.matches("task 5: tiny%-lr=0.01%-momentum=0.9 runs 3%-3", merge_log)
    local first = util.read(work .. "/out/slurm/tiny_sweep.sbatch")
    assert.matches("#SBATCH %-%-array=0%-3\n", first)
    local second = util.read(work .. "/out/slurm/tiny_sweep-from-4.sbatch")
    assert.matches("#SBATCH %-%-array=0%-3\n", second)
    assert.matches("sweep task %-%-out [^\n]* %-%-index%-offset 4 %-%- ", second)
    assert.matches("LUNET_ISA=" .. require("lunet.core").isa() .. "; export LUNET_ISA", second)
    assert.matches("LUNET_THREADS=1; export LUNET_THREADS", second)
    assert.matches("%-%-index%-offset 8 ", util.read(work .. "/out/slurm/tiny_sweep-from-8.sbatch"))

    -- --missing keeps the plan's --runs-per-task and task indices
    r = util.run(("cd %s && %s sweep plan --missing %s" .. args):format(q(work), LUNET, TINY))
    assert.matches("3 of 12 tasks are missing: %-%-array=1,5,9", r.out)
    r = util.run(sweep:format("", "--missing"))
    assert.is_true(r.ok, util.explain(r))
    assert.matches("tasks: 3 COMPLETED\n", r.out)
    assert.matches("merge job %d+: COMPLETED", r.out)
    local here = util.run(("cd %s && %s run %s" .. args:gsub(" out ", " local ")):format(q(work), LUNET, TINY))
    assert.is_true(here.ok, util.explain(here))
    -- CSV byte for byte; JSON equal but for the provenance (date, host, threads, origin)
    -- and the time each run took (measured where it ran)
    local cjson = require("cjson")
    local function without_provenance(path)
      local doc = cjson.decode(util.read(path))
      doc.provenance = nil
      for _, run in ipairs(doc.runs) do run.seconds = nil end
      return doc
    end
    assert.are.equal(util.read(work .. "/local/tiny.csv"), util.read(work .. "/out/tiny.csv"))
    for i = 1, 4 do
      assert.are.equal(util.read(("%s/local/cell%d.csv"):format(work, i)), util.read(("%s/out/cell%d.csv"):format(work, i)))
      assert.are.same(without_provenance(("%s/local/cell%d.json"):format(work, i)),
        without_provenance(("%s/out/cell%d.json"):format(work, i)))
    end
    assert.matches(here.out:gsub("%p", "%%%0"), r.out) -- the merge job's printed results, in its log

    -- every task checks that it sees the submitter's output directory
    local marker = work .. "/out/.lunet-shared"
    local token = util.read(marker)
    util.write(marker, "another machine's directory")
    r = util.run("SLURM_ARRAY_TASK_ID=0 sh " .. q(work .. "/out/slurm/tiny_sweep.sbatch"))
    util.write(marker, token)
    assert.are.equal(3, r.code, util.explain(r))
    assert.matches("out is not shared with .*: the marker .* is not there", r.err)
  end)

  it("a task cancelled like one past its time limit (SIGTERM, then SIGKILL) keeps its finished runs; "
    .. "resubmitted, it computes only the rest", function()
    local tl = work .. "/timelimit"
    assert(lfs.mkdir(tl))
    local args = TINY .. " out 10 0.01,0.05 4 500" -- task 0: 4 runs of 10 epochs, about a second each
    assert.is_true(util.run(("cd %s && %s sweep plan %s"):format(q(tl), LUNET, args)).ok)
    local task = ("cd %s && %s sweep task --index 0 %s"):format(q(tl), LUNET, args)
    local function records() return #util.store_records(tl .. "/out") end
    local r = slurm(("sbatch --parsable -o %s/first.out --wrap %s"):format(q(tl), q(task)))
    assert.is_true(r.ok, util.explain(r))
    local job = r.out:match("%d+")
    assert.is_true(wait_until(120, function() return records() >= 1 end), "no run stored")
    assert.is_true(slurm("scancel " .. job).ok) -- what Slurm does at the time limit: SIGTERM, KillWait, SIGKILL
    wait_jobs(job)
    local kept = records()
    assert.is_true(kept >= 1 and kept < 4, kept .. " records")
    r = slurm(("sbatch --parsable --wait -o %s/second.out --wrap %s"):format(q(tl), q(task)))
    assert.is_true(r.ok, util.explain(r))
    assert.matches(("runs 1%%-4: %d computed, %d already stored"):format(4 - kept, kept), util.read(tl .. "/second.out"))
    assert.are.equal(4, records())
  end)

  it("stop ends every daemon it started and the jobs still running, and removes its directory", function()
    local r = slurm(("sbatch --parsable -o /dev/null --wrap 'echo $$ > %s/job.pid; exec sleep 300'"):format(work))
    assert.is_true(r.ok, util.explain(r))
    assert.is_true(wait_until(30, function() return util.read(work .. "/job.pid") ~= nil end))
    local job_pid = util.read(work .. "/job.pid"):match("%d+")
    assert.is_true(alive(job_pid))
    r = util.run("sh tools/cluster/slurm.sh stop " .. q(dir))
    assert.is_true(r.ok, util.explain(r))
    for n, pid in pairs(pids) do assert.is_false(alive(pid), n .. " (pid " .. pid .. ") still runs") end
    assert.is_true(wait_until(5, function() return not alive(job_pid) end), "the job's process still runs")
    assert.is_nil(lfs.attributes(dir))
  end)
end)

describe("an sshd on 127.0.0.1 with two host aliases (tools/cluster/sshd.sh) #cluster", function()
  local reason = why_not({ "/usr/sbin/sshd", "ssh", "ssh-keygen", "parallel" })
  if reason then
    it("is skipped", function() pending(reason) end)
    return
  end
  local env, pid, work

  setup(function()
    local r = util.run("sh tools/cluster/sshd.sh start")
    assert(r.ok, util.explain(r))
    env = env_of(r.out)
    pid = util.read(env.LUNET_SSHD_DIR .. "/sshd.pid.started"):match("%d+")
    work = util.temp_dir()
  end)
  teardown(function()
    if env and lfs.attributes(env.LUNET_SSHD_DIR) then util.run("sh tools/cluster/sshd.sh stop " .. q(env.LUNET_SSHD_DIR)) end
    if work then util.rm_rf(work) end
  end)

  local function hosts_in(joblog)
    local seen = {}
    for line in joblog:gmatch("[^\n]+") do
      local host, exit = line:match("^%d+\t[^\t]*(lunet%-%a)\t[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t(%d+)\t")
      if host then
        assert.are.equal("0", exit, line)
        seen[host] = (seen[host] or 0) + 1
      end
    end
    return seen
  end

  it("listens on 127.0.0.1 only and lets in the key it made", function()
    local config = util.read(env.LUNET_SSHD_DIR .. "/sshd_config")
    local listen = {}
    for addr in config:gmatch("\nListenAddress (%S+)") do listen[#listen + 1] = addr end
    assert.are.equal(1, #listen)
    assert.matches("^127%.0%.0%.1:%d+$", listen[1])
    local r = util.run(("ssh -F %s lunet-b 'echo $SSH_CONNECTION'"):format(q(env.LUNET_SSH_CONFIG)))
    assert.is_true(r.ok, util.explain(r))
    assert.matches("^127%.0%.0%.1 %d+ 127%.0%.0%.1 %d+\n$", r.out)
  end)

  it("GNU parallel runs jobs on both aliases", function()
    local joblog = work .. "/plain.joblog"
    local r = util.run(("parallel --will-cite --joblog %s --sshloginfile %s 'sleep 0.5; echo {}' ::: 1 2 3 4"):format(
      q(joblog), q(env.LUNET_SSHLOGINFILE)))
    assert.is_true(r.ok, util.explain(r))
    local seen = hosts_in(util.read(joblog))
    assert.is_true((seen["lunet-a"] or 0) >= 1 and (seen["lunet-b"] or 0) >= 1, util.read(joblog))
    assert.are.equal(4, (seen["lunet-a"] or 0) + (seen["lunet-b"] or 0))
  end)

  it("bin/lunet sweep parallel --sshloginfile runs the tasks on both, then merges", function()
    local r = util.run(("cd %s && %s sweep parallel --sshloginfile %s %s"):format(q(work), LUNET,
      q(env.LUNET_SSHLOGINFILE), TINY))
    assert.is_true(r.ok, util.explain(r))
    local seen = hosts_in(util.read(work .. "/out/parallel/tiny_sweep.joblog"))
    assert.is_true((seen["lunet-a"] or 0) >= 1 and (seen["lunet-b"] or 0) >= 1)
    assert.are.equal(4, seen["lunet-a"] + seen["lunet-b"])
    local here = util.run(("cd %s && %s run %s local"):format(q(work), LUNET, TINY))
    assert.is_true(here.ok, util.explain(here))
    assert.are.equal(util.read(work .. "/local/tiny.csv"), util.read(work .. "/out/tiny.csv"))
  end)

  it("stop ends that sshd and removes its directory", function()
    local r = util.run("sh tools/cluster/sshd.sh stop " .. q(env.LUNET_SSHD_DIR))
    assert.is_true(r.ok, util.explain(r))
    assert.is_false(alive(pid))
    assert.is_nil(lfs.attributes(env.LUNET_SSHD_DIR))
  end)
end)
