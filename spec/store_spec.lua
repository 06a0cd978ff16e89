-- The run store (lunet.store): every finished run is on disk the moment it finishes,
-- and survives kills, races and tampering. Real child processes and real signals:
-- a child trains an experiment of 8 runs on 256 generated images and prints its
-- result's bits; the specs kill, stop, race and tamper with it and compare the bits
-- with an uninterrupted run.
local lunet = require("lunet")
local lfs = require("lfs")
local util = require("util")
local synthetic = require("synthetic")

local ROOT = lfs.currentdir()
local dir = util.temp_dir()
local q = util.shell_quote
local RUNS, ITER = 8, 6

local child = dir .. "/child.lua"
util.write(child, [[
local lunet = require("lunet")
local out, iterations, runs, threads, name = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), arg[5]
local data = require("synthetic")(256, 4, 1)
local res = lunet.experiment { name = name or "store-spec", model = lunet.models.mnist_cnn, data = data, batch = 8,
  iterations = iterations, runs = runs, threads = threads, out = out, quiet = true, seed = 5 }
local parts = {}
for _, r in ipairs(res.runs) do for _, v in ipairs(r.loss) do parts[#parts + 1] = string.pack("<d", v) end end
print(("RESULT runs=%d computed=%d cached=%d bits=%s"):format(#res.runs, res.provenance.runs_computed,
  res.provenance.runs_cached, lunet.store.hash(table.concat(parts))))
]])

-- no `timeout` or subshell in between: $! must be the Lua process itself, which the
-- signals are for
local LUA = util.LUA .. " " .. q(child)

-- A shell loop that waits (at most 60 s) until `n` records of `iterations` are stored under out.
local function wait_records(out, n, iterations)
  return ([[i=0; while [ $i -lt 1200 ] && [ $(ls %s/store/*/run-*-i%06d.json 2>/dev/null | wc -l) -lt %d ]; do sleep 0.05; i=$((i + 1)); done]])
    :format(q(out), iterations, n)
end

local function result(text)
  local runs, computed, cached, bits = text:match("RESULT runs=(%d+) computed=(%d+) cached=(%d+) bits=(%x+)")
  if not runs then return nil end
  return { runs = tonumber(runs), computed = tonumber(computed), cached = tonumber(cached), bits = bits }
end

local function run_child(out, iterations, runs, threads, name)
  local r = util.run(("cd %s && timeout 300 %s %s %d %d %d %s"):format(q(ROOT), LUA, q(out), iterations, runs, threads, name or "store-spec"))
  return result(r.out), r
end

local records = util.store_records

local reference = {}
local function ref(iterations)
  if not reference[iterations] then
    local res, r = run_child(dir .. "/ref" .. iterations, iterations, RUNS, 2)
    assert(res and res.computed == RUNS, util.explain(r))
    reference[iterations] = res.bits
  end
  return reference[iterations]
end

describe("the run store", function()
  teardown(function() util.rm_rf(dir) end)

  for _, case in ipairs({ { "KILL", 137 }, { "TERM", 143 }, { "HUP", 129 }, { "INT", 130 } }) do
    local sig, code = case[1], case[2]
    it(("keeps every finished run through SIG%s (exit %d), and a rerun is bit-identical"):format(sig, code), function()
      local out = dir .. "/sig" .. sig
      local script = ([[
cd %s
%s %s %d %d 2 > %s/out 2> %s/err &
pid=$!
%s
kill -%s $pid
wait $pid 2>/dev/null
echo "exit $?" > %s/status
]]):format(q(ROOT), LUA, q(out), ITER, RUNS, q(dir), q(dir), wait_records(out, 2, ITER), sig, q(dir))
      os.execute(script)
      local status, err = util.read(dir .. "/status"), util.read(dir .. "/err") or ""
      local diag = "\nstatus: " .. tostring(status) .. "\nstdout: " .. tostring(util.read(dir .. "/out")) ..
        "\nstderr: " .. err
      assert.equal("exit " .. code .. "\n", status, diag)
      local stored = #records(out, ITER)
      assert.is_true(stored >= 2, diag)
      if sig ~= "KILL" then
        -- one line: how many runs are kept, and how to resume
        local kept = err:match("interrupted by SIG" .. sig .. ": (%d+) of 8 runs finished and are kept in [^\n]+; "
          .. "run the same command again to resume\n")
        assert.is_string(kept, diag)
        assert.equal(stored, tonumber(kept), diag)
      end
      local again, r = run_child(out, ITER, RUNS, 2)
      assert.is_table(again, util.explain(r))
      assert.is_true(again.cached >= 2, util.explain(r))
      assert.equal(stored, again.cached, util.explain(r))
      assert.equal(RUNS - stored, again.computed)
      assert.equal(ref(ITER), again.bits)
    end)
  end

  local function session(sig)
    local out = dir .. "/session" .. sig
    util.write(dir .. "/session.lua", ([[
res = lunet.experiment { name = "store-spec", model = lunet.models.mnist_cnn, data = require("synthetic")(256, 4, 1), batch = 8, iterations = %d, runs = %d, threads = 2, out = %q, quiet = true, seed = 5 }
print(res)
print("AFTER", #res.runs, res.provenance.interrupted)
]]):format(ITER, RUNS, out))
    os.execute(([[
cd %s && exec env %s bin/lunet < %s/session.lua > %s/out 2> %s/err &
pid=$!
%s
kill -%s $pid
wait $pid
echo "exit $?" > %s/status
]]):format(q(ROOT), util.ENV, q(dir), q(dir), q(dir), wait_records(out, 2, ITER), sig, q(dir)))
    local o, e = util.read(dir .. "/out") or "", util.read(dir .. "/err") or ""
    return o, e, util.read(dir .. "/status"), "\nstdout: " .. o .. "\nstderr: " .. e, out
  end

  it("returns the partial result after Ctrl-C in the interactive session, which goes on", function()
    local o, _, status, diag, out = session("INT")
    assert.equal("exit 0\n", status, diag)
    local k = tonumber(o:match("interrupted: (%d+) of 8 runs"))
    assert.is_number(k, diag)
    assert.is_true(k >= 2 and k < RUNS, diag)
    assert.matches("AFTER\t" .. k .. "\ttrue", o, 1, true)
    assert.equal(k, #records(out, ITER))
  end)

  it("ends the interactive session with 143 after SIGTERM, the finished runs stored", function()
    local o, e, status, diag, out = session("TERM")
    assert.equal("exit 143\n", status, diag)
    assert.is_nil(o:find("AFTER", 1, true), diag)
    local k = tonumber(e:match("interrupted by SIGTERM: (%d+) of 8 runs finished and are kept"))
    assert.equal(#records(out, ITER), k, diag)
  end)

  it("loses nothing in the A/B race (4 and 12 iterations), and B run again computes nothing", function()
    local out = dir .. "/race"
    os.execute(([[
cd %s
%s %s 4 %d 1 A > %s/outA 2> %s/errA &
a=$!
%s
kill -STOP $a
%s %s 12 %d 2 B > %s/outB 2> %s/errB
kill -CONT $a
wait $a
]]):format(q(ROOT), LUA, q(out), RUNS, q(dir), q(dir), wait_records(out, 1, 4), LUA, q(out), RUNS, q(dir), q(dir)))
    local a, b = result(util.read(dir .. "/outA") or ""), result(util.read(dir .. "/outB") or "")
    local diag = "\nA: " .. tostring(util.read(dir .. "/errA")) .. "\nB: " .. tostring(util.read(dir .. "/errB"))
    assert.is_table(a, diag)
    assert.is_table(b, diag)
    assert.equal(RUNS, #records(out, 12))
    local report = lunet.store.verify(out)
    assert.same({}, report.bad)
    local again, r = run_child(out, 12, RUNS, 2, "B")
    assert.is_table(again, util.explain(r))
    assert.equal(0, again.computed)
    assert.equal(RUNS, again.cached)
    assert.equal(b.bits, again.bits)
    assert.equal(ref(4), a.bits) -- A is what an undisturbed 4-iteration experiment gives
  end)

  it("lets two processes share one experiment: each run computed and stored once", function()
    local out = dir .. "/pair"
    os.execute(([[
cd %s
%s %s %d %d 2 > %s/o1 2> %s/e1 &
p1=$!
%s %s %d %d 2 > %s/o2 2> %s/e2 &
p2=$!
wait $p1
wait $p2
]]):format(q(ROOT), LUA, q(out), ITER, RUNS, q(dir), q(dir), LUA, q(out), ITER, RUNS, q(dir), q(dir)))
    local one, two = result(util.read(dir .. "/o1") or ""), result(util.read(dir .. "/o2") or "")
    local diag = "\n1: " .. tostring(util.read(dir .. "/e1")) .. "\n2: " .. tostring(util.read(dir .. "/e2"))
    assert.is_table(one, diag)
    assert.is_table(two, diag)
    assert.equal(ref(ITER), one.bits)
    assert.equal(ref(ITER), two.bits)
    local twice = one.computed + two.computed - RUNS
    assert.equal(0, twice, ("runs computed twice: %d"):format(twice))
    assert.equal(RUNS, #records(out, ITER))
    assert.same({}, lunet.store.verify(out).bad)
  end)

  -- A copy of the reference store, to damage: its directory and its record files.
  local function copy_of_reference(name)
    ref(ITER)
    local out = dir .. "/" .. name
    os.execute(("cp -r %s %s"):format(q(dir .. "/ref" .. ITER), q(out)))
    local files = records(out, ITER)
    assert.equal(RUNS, #files)
    return out, files
  end

  it("detects a changed digit, a truncation, a duplicate and a flipped byte, and recomputes them", function()
    local out, files = copy_of_reference("tamper")
    local text = util.read(files[1])
    local changed = text:gsub('"loss":%[(%d)%.(%d)', function(a, b) return '"loss":[' .. a .. "." .. (b + 1) % 10 end, 1)
    assert.are_not.equal(text, changed)
    util.write(files[1], changed)
    util.write(files[2], util.read(files[2]):sub(1, 200))
    util.write(files[4], util.read(files[3])) -- run 3's record under run 4's name
    local t5 = util.read(files[5])
    local at = #t5 // 2
    util.write(files[5], t5:sub(1, at - 1) .. string.char(t5:byte(at) ~ 1) .. t5:sub(at + 1))
    local bad = lunet.store.verify(out).bad
    assert.equal(4, #bad)
    local res, r = run_child(out, ITER, RUNS, 2)
    assert.is_table(res, util.explain(r))
    for _, i in ipairs({ 1, 2, 4, 5 }) do
      local _, n = r.err:gsub("lunet.store: ignoring " .. files[i]:gsub("%p", "%%%0") .. ": [^\n]+; its run is recomputed\n", "")
      assert.equal(1, n, "one warning naming " .. files[i] .. "\n" .. r.err)
    end
    assert.equal(4, res.computed)
    assert.equal(RUNS - 4, res.cached)
    assert.equal(ref(ITER), res.bits)
    assert.same({}, lunet.store.verify(out).bad) -- the recomputed runs replaced the bad records
    local quiet = run_child(out, ITER, RUNS, 2)
    assert.equal(0, quiet.computed)
  end)

  it("refuses records whose checksum is right but whose values cannot be", function()
    local out, files = copy_of_reference("values")
    local store = lunet.store
    local function rewrite(path, change)
      local rec = assert(store.decode_record(util.read(path)))
      change(rec)
      util.write(path, assert(store.encode_record(rec)))
    end
    rewrite(files[1], function(rec) rec.loss[2] = 1e308 end)
    rewrite(files[2], function(rec) rec.diverged = "yes" end)
    rewrite(files[3], function(rec) rec.loss[3] = 0 / 0 end)
    rewrite(files[4], function(rec) rec.loss[#rec.loss] = nil end)
    rewrite(files[5], function(rec) rec.index = 6 end)
    rewrite(files[6], function(rec) rec.key = rec.key:gsub("seed=5", "seed=6") end)
    local reasons = {}
    for _, b in ipairs(store.verify(out).bad) do reasons[b.path] = b.reason end
    assert.matches("beyond any float32 loss", reasons[files[1]])
    assert.matches("'diverged' is not a boolean", reasons[files[2]])
    assert.matches("without the run being marked diverged", reasons[files[3]])
    assert.matches("5 losses for 6 iterations", reasons[files[4]])
    assert.matches("it holds run 6, not run 5", reasons[files[5]])
    assert.matches("another configuration", reasons[files[6]])
    local res, r = run_child(out, ITER, RUNS, 2)
    assert.equal(6, res.computed, util.explain(r))
    assert.equal(ref(ITER), res.bits)
  end)

  it("keeps every run finished before a late allocation failure", function()
    local data = synthetic(64, 4, 9)
    local function cfg(extra)
      local c = { name = "late", model = lunet.models.mnist_cnn, data = data, batch = 16, iterations = 3, runs = 6,
        threads = 1, seed = 2, out = dir .. "/late", quiet = true }
      for k, v in pairs(extra or {}) do c[k] = v end
      return c
    end
    local core = lunet.core
    -- allocations of one run, counted by the engine's test hook
    local before = core.alloc_fail_after(-1)
    lunet.experiment(cfg { runs = 1, cache = false })
    local per_run = core.alloc_fail_after(-1) - before
    assert.is_true(per_run > 0)
    core.alloc_fail_after(3 * per_run + per_run // 2)
    local ok, err = pcall(lunet.experiment, cfg())
    core.alloc_fail_after(-1)
    assert.is_false(ok)
    assert.matches("out of memory", err)
    local res = lunet.experiment(cfg())
    assert.is_true(res.provenance.runs_cached >= 2, "kept " .. res.provenance.runs_cached)
    assert.is_true(res.provenance.runs_cached < 6)
    local direct = lunet.experiment(cfg { cache = false })
    for r = 1, 6 do assert.same(direct.runs[r].loss, res.runs[r].loss) end
  end)

  it("runs an experiment in parts (missing, run_indices) and answers it wholly from the store", function()
    local ex = require("lunet.experiment")
    local c = { name = "parts", model = lunet.models.mnist_cnn, data = synthetic(64, 4, 9), batch = 16,
      iterations = 2, runs = 4, threads = 2, seed = 8, out = dir .. "/parts", quiet = true }
    local key, digest = ex.key(lunet, c)
    assert.equal(lunet.store.hash(key), digest)
    assert.same({ 1, 2, 3, 4 }, ex.missing(lunet, c))
    local part = ex.run_indices(lunet, c, { 2, 4 })
    assert.equal(2, #part.runs)
    assert.equal(2, part.provenance.runs_computed)
    assert.same({ 1, 3 }, ex.missing(lunet, c))
    local none, missing = ex.from_store(lunet, c)
    assert.is_nil(none)
    assert.same({ 1, 3 }, missing)
    ex.run_indices(lunet, c, { 1, 3 })
    local whole = assert(ex.from_store(lunet, c))
    assert.equal(0, whole.provenance.runs_computed)
    assert.equal(4, whole.provenance.runs_cached)
    assert.equal(dir .. "/parts/store/" .. digest, whole.provenance.store)
    local copy = {}
    for k, v in pairs(c) do copy[k] = v end
    copy.cache = false
    local direct = lunet.experiment(copy)
    for r = 1, 4 do assert.same(direct.runs[r].loss, whole.runs[r].loss) end
    local ok, err = pcall(ex.run_indices, lunet, c, { 5 })
    assert.is_false(ok)
    assert.matches("indices%[1%] must be a run index in %[1, 4%]", err)
  end)

  it("converts a cache file of the previous format once, so nothing is recomputed", function()
    local data = synthetic(64, 4, 9)
    local c = { name = "legacy", model = lunet.models.mnist_cnn, data = data, batch = 16, iterations = 2, runs = 3,
      threads = 2, seed = 4, out = dir .. "/legacy", quiet = true }
    local copy = {}
    for k, v in pairs(c) do copy[k] = v end
    copy.cache = false
    local direct = lunet.experiment(copy)
    local path, key = require("lunet.experiment").legacy_cache(lunet, c)
    local old = lunet.Result.new { name = "legacy", config = direct.config, provenance = { cache_key = key },
      runs = direct.runs }
    assert.is_true(old:save(path:gsub("%.json$", "")))
    local res = lunet.experiment(c)
    assert.equal(3, res.provenance.runs_cached)
    assert.equal(0, res.provenance.runs_computed)
    for r = 1, 3 do assert.same(direct.runs[r].loss, res.runs[r].loss) end
    assert.equal("file", lfs.attributes(path .. ".imported", "mode"))
    assert.is_nil(lfs.attributes(path, "mode"))
  end)

  it("gives the study's Figure 1 from Figure 2's runs, and the report says so because the store does", function()
    if not util.mnist_dir() then return pending(util.NO_MNIST) end
    local out = dir .. "/report"
    local r = util.run(("cd %s && timeout 600 bin/lunet report --runs 2 --iterations1 2 --iterations 3 "
      .. "--n 200 --sweep-runs 1 --sweep-iterations 1 --threads 2 --fresh --out %s"):format(q(ROOT), q(out)))
    assert.equal(0, r.code, util.explain(r))
    local fig1 = assert(lunet.load_result(out .. "/figure1.json"))
    local fig2 = assert(lunet.load_result(out .. "/figure2.json"))
    assert.equal(0, fig1.provenance.runs_computed)
    assert.same({ "figure2" }, fig1.provenance.reused_from)
    assert.equal(fig2.provenance.store, fig1.provenance.store) -- one key: the same settings
    -- the store holds Figure 2's 3-epoch records (and the sweep's), none of Figure 1's 2 epochs
    assert.equal(0, #records(out, 2))
    for rr = 1, 2 do
      assert.equal(fig2.runs[rr].loss[2], fig1.runs[rr].loss[2])
      assert.equal("file", lfs.attributes(fig1.provenance.store .. "/" .. lunet.store.record_name(rr, 3), "mode"))
    end
    local report = util.read(out .. "/report.md")
    assert.matches("| figure1 | 2 | 2 |[^\n]*| from figure 2's runs |", report)
    assert.matches("| figure2 | 2 | 3 |[^\n]*| %d+ s |", report)
  end)

  it("is listed, verified and pruned by `lunet store`", function()
    ref(ITER)
    local out = dir .. "/ref" .. ITER
    local lunet_cmd = "cd " .. q(ROOT) .. " && bin/lunet store "
    local r = util.run(lunet_cmd .. "list --out " .. q(out))
    assert.equal(0, r.code, util.explain(r))
    assert.matches("store%-spec%s+8 runs %(8 records%), longest 6 iterations", r.out)
    r = util.run(lunet_cmd .. "verify --out " .. q(out))
    assert.equal(0, r.code, util.explain(r))
    assert.matches("1 configurations, 8 records checked, 0 bad", r.out, 1, true)
    r = util.run(lunet_cmd .. "prune --name other --out " .. q(out))
    assert.matches("0 configurations removed", r.out, 1, true)
    r = util.run(lunet_cmd .. "prune --name 'store-*' --dry-run --out " .. q(out))
    assert.matches("1 configurations would be removed", r.out, 1, true)
    assert.equal(8, #records(out, ITER))
    r = util.run(lunet_cmd .. "prune --older-than 1d --out " .. q(out))
    assert.matches("0 configurations removed", r.out, 1, true)
    r = util.run(lunet_cmd .. "bogus --out " .. q(out))
    assert.equal(2, r.code)
  end)
end)
