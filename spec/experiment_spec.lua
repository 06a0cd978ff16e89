-- Repeat-run experiments: thread-count invariance, divergence, caching and resume,
-- strict configs, result files and plots, sweeps, Ctrl-C.
local lunet = require("lunet")
local lfs = require("lfs")
local synthetic = require("synthetic")
local util = require("util")
local remove_tree = util.rm_rf

local out = os.tmpname()
os.remove(out)

local function small_net()
  return lunet.sequential {
    lunet.conv2d(1, 4, 5, { stride = 2 }), lunet.relu(), lunet.maxpool2d(2), lunet.dropout2d(0.2),
    lunet.flatten(), lunet.linear(144, 4), lunet.log_softmax(),
  }
end

local data = synthetic(64, 4, 9)

local function base(extra)
  local cfg = { name = "spec", model = small_net, data = data, optimizer = lunet.sgd { lr = 0.05, momentum = 0.5 },
    batch = 16, iterations = 4, runs = 4, seed = 3, out = out, quiet = true }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return cfg
end

local function bits(res)
  local parts = {}
  for _, r in ipairs(res.runs) do
    for _, v in ipairs(r.loss) do parts[#parts + 1] = string.pack("<d", v) end
  end
  return table.concat(parts)
end

describe("lunet.experiment", function()
  teardown(function() remove_tree(out) end)

  it("returns every run's series and per-iteration statistics", function()
    local res = lunet.experiment(base { fresh = true, test = data })
    assert.equal(4, #res.runs)
    assert.equal(4, res.iterations)
    for i = 1, 4 do
      local xs = {}
      for r = 1, 4 do xs[r] = res.runs[r].loss[i] end
      assert.near(lunet.stats.mean(xs), res.mean[i], 1e-12)
      assert.near(lunet.stats.std(xs), res.std[i], 1e-12)
      assert.is_true(res.ci_low[i] < res.mean[i] and res.mean[i] < res.ci_high[i])
    end
    assert.is_true(res.mean[4] < res.mean[1])
    assert.is_number(res.runs[1].test_accuracy)
    assert.equal(16, res.config.batch)
    assert.equal(0.05, res.config.lr)
    assert.equal("sgd", res.config.optimizer)
    assert.is_string(res.provenance.cpu)
    assert.matches("runs:    4", tostring(res), 1, true)
    -- seeds differ between runs and so do the curves
    assert.are_not.equal(res.runs[1].seed, res.runs[2].seed)
    assert.are_not.equal(res.runs[1].loss[4], res.runs[2].loss[4])
  end)

  -- runs computed on `threads` threads: the same bits as on one; their provenance
  local function arranged(runs, threads)
    local one = lunet.experiment(base { runs = runs, threads = 1, fresh = true, cache = false })
    local res = lunet.experiment(base { runs = runs, threads = threads, fresh = true, cache = false })
    assert.equal(bits(one), bits(res))
    assert.is_nil(one.provenance.tail_threads_per_run)
    return res.provenance
  end

  it("puts spare threads inside the runs when there are fewer runs than threads, with the same bits", function()
    local three = arranged(1, 3)
    assert.equal(1, three.runs_side_by_side)
    assert.equal(3, three.threads_per_run)
    local many = lunet.experiment(base { runs = 4, threads = 2, fresh = true, cache = false })
    assert.equal(2, many.provenance.runs_side_by_side)
    assert.equal(1, many.provenance.threads_per_run)
    assert.is_nil(many.provenance.tail_threads_per_run)
  end)

  it("computes the runs past the last full row of threads on all the threads, with the same bits", function()
    local pv = arranged(3, 2)
    assert.equal(2, pv.runs_side_by_side)
    assert.equal(1, pv.threads_per_run)
    assert.equal(2, pv.tail_threads_per_run)
    -- the time and speed cover both rounds: 3 runs x 4 epochs x 64 samples
    assert.is_true(pv.seconds > 0)
    assert.near(3 * 4 * 64, pv.samples_per_second * pv.seconds, 1e-6 * 3 * 4 * 64)
  end)

  it("gives the same bits with 1 thread and with 2", function()
    local one = lunet.experiment(base { threads = 1, fresh = true, cache = false })
    local two = lunet.experiment(base { threads = 2, fresh = true, cache = false })
    assert.equal(bits(one), bits(two))
    assert.equal(#bits(one), 4 * 4 * 8)
  end)

  it("marks diverged runs and leaves them out of the statistics", function()
    local res = lunet.experiment(base { optimizer = lunet.sgd { lr = 1e10, momentum = 0.9 }, fresh = true, runs = 3 })
    local diverged = 0
    for _, r in ipairs(res.runs) do if r.diverged then diverged = diverged + 1 end end
    assert.is_true(diverged >= 1)
    assert.equal(diverged, res.left_out)
    assert.equal(3 - diverged, res.n[1])
    assert.matches("left out as diverged", tostring(res), 1, true)
    for _, r in ipairs(res.runs) do
      if r.diverged then
        local last = r.loss[#r.loss]
        assert.is_true(last ~= last or math.abs(last) == math.huge)
      end
    end
  end)

  it("reuses cached runs, and recomputes with fresh = true", function()
    local first = lunet.experiment(base { fresh = true })
    assert.equal(4, first.provenance.runs_computed)
    local again = lunet.experiment(base {})
    assert.equal(4, again.provenance.runs_cached)
    assert.equal(0, again.provenance.runs_computed)
    assert.equal(bits(first), bits(again))
    -- more runs of the same config: only the new ones are computed
    local more = lunet.experiment(base { runs = 6 })
    assert.equal(6, #more.runs)
    -- a different config is a different cache entry
    local other = lunet.experiment(base { batch = 8 })
    assert.equal(0, other.provenance.runs_cached)
  end)

  it("keeps nets that differ in any layer parameter apart in the store (batchnorm eps, momentum)", function()
    local function bn_net(opts)
      return function()
        return lunet.sequential { lunet.flatten(), lunet.linear(28 * 28, 8), lunet.batchnorm1d(8, opts),
          lunet.relu(), lunet.linear(8, 4), lunet.log_softmax(), input = { 1, 28, 28 }, seed = 2 }
      end
    end
    local plain = lunet.experiment(base { name = "bn", model = bn_net(), runs = 2, iterations = 2 })
    assert.equal(2, plain.provenance.runs_computed)
    -- eps changes the training losses; momentum only the running statistics (evaluation)
    local eps = lunet.experiment(base { name = "bn", model = bn_net { eps = 1e-2 }, runs = 2, iterations = 2 })
    assert.equal(0, eps.provenance.runs_cached)
    assert.are_not.equal(bits(plain), bits(eps))
    local momentum = lunet.experiment(base { name = "bn", model = bn_net { momentum = 0.5 }, runs = 2,
      iterations = 2, test = data })
    assert.equal(0, momentum.provenance.runs_cached)
    assert.equal(2, lunet.experiment(base { name = "bn", model = bn_net(), runs = 2, iterations = 2 })
      .provenance.runs_cached)
  end)

  it("answers a shorter experiment from a longer one's cached runs, test figures included", function()
    local long = lunet.experiment(base { name = "prefix", test = data, test_at = { 2 }, fresh = true })
    local short = lunet.experiment(base { name = "prefix", test = data, iterations = 2 })
    assert.equal(4, short.provenance.runs_cached)
    assert.equal(0, short.provenance.runs_computed)
    local direct = lunet.experiment(base { name = "prefix", test = data, iterations = 2, cache = false })
    assert.equal(bits(direct), bits(short))
    for r = 1, 4 do
      assert.equal(direct.runs[r].test_accuracy, short.runs[r].test_accuracy)
      assert.equal(direct.runs[r].test_loss, short.runs[r].test_loss)
      assert.equal(long.runs[r].loss[2], short.runs[r].loss[2])
    end
    -- without the test figures at iteration 3, a 3-iteration experiment must recompute
    local three = lunet.experiment(base { name = "prefix", test = data, iterations = 3 })
    assert.equal(4, three.provenance.runs_computed)
  end)

  it("rejects unknown keys and bad values, naming them", function()
    local ok, err = pcall(lunet.experiment, base { iteratons = 5 })
    assert.is_false(ok)
    assert.matches("unknown option 'iteratons'", err, 1, true)
    ok, err = pcall(lunet.experiment, base { runs = 0 })
    assert.is_false(ok)
    assert.matches("option 'runs' must be a positive integer", err, 1, true)
    ok, err = pcall(lunet.experiment, base { model = 3 })
    assert.is_false(ok)
    assert.matches("option 'model'", err, 1, true)
    ok, err = pcall(lunet.experiment, base { data = "mnist" })
    assert.is_false(ok)
    assert.matches("option 'data' must be a dataset", err, 1, true)
  end)

  it("refuses absurd run counts before doing anything else", function()
    local built = 0
    local function counted_net()
      built = built + 1
      return small_net()
    end
    for _, runs in ipairs({ 1000001, math.maxinteger }) do
      local ok, err = pcall(lunet.experiment, base { runs = runs, model = counted_net })
      assert.is_false(ok)
      assert.matches(("lunet.experiment: option 'runs' must be at most 1000000 (got %d)"):format(runs), err, 1, true)
      ok, err = pcall(lunet.sweep, { base = base { runs = runs, model = counted_net }, grid = { lr = { 0.1 } } })
      assert.is_false(ok)
      assert.matches("option 'runs' must be at most 1000000", err, 1, true)
    end
    assert.equal(0, built) -- refused before the model was even built
  end)

  it("saves CSV and JSON that load back, and plots PNG and SVG", function()
    local res = lunet.experiment(base {})
    assert.is_true(res:save(out .. "/files/spec"))
    local back = assert(lunet.load_result(out .. "/files/spec.json"))
    assert.equal(bits(res), bits(back))
    assert.same(res.mean, back.mean)
    local csv = assert(io.open(out .. "/files/spec.csv")):read("a")
    assert.matches("^iteration,mean,std,ci_low,ci_high,run_1,run_2,run_3,run_4\n", csv)
    assert.is_true(res:plot { file = out .. "/files/spec.png" })
    assert.equal("\137PNG\r\n\26\n", assert(io.open(out .. "/files/spec.png", "rb")):read(8))
    assert.is_true(lunet.plot({ res, back }, { file = out .. "/files/cmp.svg", labels = { "a", "b" } }))
    assert.matches("<svg", assert(io.open(out .. "/files/cmp.svg")):read("a"))
  end)

  it("sweeps a grid and draws a heatmap", function()
    local sw = lunet.sweep { name = "grid", base = base { runs = 2, iterations = 2 },
      grid = { lr = { 0.01, 0.05 }, momentum = { 0, 0.5 } } }
    assert.equal(4, #sw.cells)
    local seen = {}
    for _, c in ipairs(sw.cells) do
      seen[c.params.lr .. "/" .. c.params.momentum] = true
      assert.equal(c.params.lr, c.result.config.lr)
      assert.equal(c.params.momentum, c.result.config.momentum)
    end
    assert.is_true(seen["0.01/0"] and seen["0.05/0.5"])
    assert.is_true(sw:heatmap { file = out .. "/grid.png" })
    assert.equal("\137PNG", assert(io.open(out .. "/grid.png", "rb")):read(4))
    assert.is_true(sw:save(out .. "/grid"))
    assert.matches("lr,momentum,final_mean", assert(io.open(out .. "/grid.csv")):read("a"), 1, true)
    local ok, err = pcall(lunet.sweep, { base = base(), grid = { lerning = { 1 } } })
    assert.is_false(ok)
    assert.matches("lerning", err, 1, true)
    -- the methods check self, and their arguments
    for _, name in ipairs({ "heatmap", "rows", "save", "__tostring" }) do
      ok, err = pcall(sw[name], { file = out .. "/x.png" })
      assert.is_false(ok)
      assert.equal(("sweep:%s: must be called on a sweep (with ':'), got table"):format(name), err)
    end
    ok, err = pcall(sw.save, sw)
    assert.is_false(ok)
    assert.equal("sweep:save: argument #1 (prefix) must be a non-empty string, got nil", err)
    ok, err = pcall(sw.heatmap, sw, { x = "batch" })
    assert.is_false(ok)
    assert.equal("sweep:heatmap: option 'x' must be an axis of the grid (lr, momentum), got \"batch\"", err)
    ok, err = pcall(sw.heatmap, sw, { metric = "best" })
    assert.is_false(ok)
    assert.equal("sweep:heatmap: option 'metric' must be one of final_mean, final_std, plateau, test_accuracy "
      .. "(got \"best\")", err)
  end)
end)

describe("Ctrl-C during an experiment", function()
  local dir = out .. "-int"
  teardown(function() remove_tree(dir) end)

  it("stops, keeps finished runs in the store, ends the script with 130, and a rerun resumes #slow", function()
    lfs.mkdir(dir)
    -- time one run of the same work here, so the interrupt lands after a couple of runs
    local probe_data = synthetic(256, 4, 1)
    local t0 = os.clock()
    lunet.experiment { name = "int-probe", model = lunet.models.mnist_cnn, data = probe_data, batch = 8,
      iterations = 12, runs = 1, threads = 1, cache = false, quiet = true }
    local one_run = os.clock() - t0
    local script = dir .. "/run.lua"
    local f = assert(io.open(script, "w"))
    f:write(([[
local lunet = require("lunet")
local data = require("synthetic")(256, 4, 1)
local res = lunet.experiment{ name = "int", model = lunet.models.mnist_cnn, data = data, batch = 8,
  iterations = %d, runs = 40, threads = 1, out = %q, quiet = true }
print("RUNS " .. #res.runs .. " COMPUTED " .. res.provenance.runs_computed)
]]):format(12, dir))
    f:close()
    -- one run takes a few tenths of a second here; interrupt in the middle of the runs
    local cmd = (util.LUA .. " %s > %s/out1 2> %s/err1 & pid=$!; sleep %.2f; kill -INT $pid; wait $pid; echo $? > %s/status")
      :format(script, dir, dir, 0.3 + 2.5 * one_run, dir)
    os.execute(cmd)
    local out1 = assert(io.open(dir .. "/out1")):read("a")
    local err1 = assert(io.open(dir .. "/err1")):read("a")
    -- a script ends at once (the code after the experiment does not run), saying so
    assert.equal("130\n", assert(io.open(dir .. "/status")):read("a"), out1 .. err1)
    assert.equal("", out1)
    local kept = tonumber(err1:match("int: interrupted by SIGINT: (%d+) of 40 runs finished and are kept in "))
    assert.is_number(kept, out1 .. err1)
    assert.is_true(kept < 40, "expected an interruption, got " .. err1)
    os.execute((util.LUA .. " %s > %s/out2 2> %s/err2"):format(script, dir, dir))
    local out2 = assert(io.open(dir .. "/out2")):read("a")
    assert.equal(40, tonumber(out2:match("RUNS (%d+)")))
    assert.equal(40 - kept, tonumber(out2:match("COMPUTED (%d+)")))
  end)
end)

describe("experiments with schedules, validation and early stopping", function()
  local dir = os.tmpname()
  os.remove(dir)
  teardown(function() remove_tree(dir) end)
  local val = synthetic(24, 4, 11)
  local function cfg(extra)
    local c = base { out = dir, name = "val", validate = val, schedule = { "step", step_size = 2, gamma = 0.5 },
      stop = { metric = "loss", patience = 1, min_delta = 0.05 }, iterations = 8 }
    for k, v in pairs(extra or {}) do c[k] = v end
    return c
  end

  it("each run equals net:train with the same options; validation curves; stopped runs", function()
    local res = lunet.experiment(cfg())
    assert.equal(4, #res.runs)
    local stopped = 0
    for r, run in ipairs(res.runs) do
      -- run r: the template's layers initialised from its seed, trained with that seed
      local net = small_net()
      net:init(run.seed)
      local h = net:train { data = data, validate = val, optimizer = lunet.sgd { lr = 0.05, momentum = 0.5 },
        batch = 16, iterations = 8, seed = run.seed, quiet = true,
        schedule = { "step", step_size = 2, gamma = 0.5 }, stop = { metric = "loss", patience = 1, min_delta = 0.05 } }
      assert.same(h.loss, run.loss, "run " .. r)
      assert.same(h.val_loss, run.val_loss)
      assert.equal(h.stopped_at, run.stopped_at)
      if run.stopped_at then stopped = stopped + 1 end
    end
    assert.is_true(stopped > 0, "min_delta 0.05 with patience 1 should stop some runs")
    assert.is_table(res.val_mean)
    assert.equal(res.val_iterations[1], 1)
    assert.matches("stopped: ", tostring(res), 1, true)
    -- part of the key: another schedule or stop rule is another configuration
    assert.equal("step", res.config.schedule.kind)
    local other = lunet.experiment(cfg { schedule = { "step", step_size = 3, gamma = 0.5 } })
    assert.equal(4, other.provenance.runs_computed)
    -- a longer question is answered from the store when every run stopped before it
    -- or ran long enough: here only the runs that did not stop are computed again
    local again = lunet.experiment(cfg())
    assert.equal(0, again.provenance.runs_computed)
    local longer = lunet.experiment(cfg { iterations = 10 })
    assert.equal(4 - stopped, longer.provenance.runs_computed)
    for r, run in ipairs(longer.runs) do
      if res.runs[r].stopped_at then assert.same(res.runs[r].loss, run.loss) end
    end
  end)

  it("a sweep over schedules names its cells with a canonical form of the table", function()
    local b = cfg { runs = 2, iterations = 3 }
    b.stop = nil
    local sw = lunet.sweep { name = "sched", base = b,
      grid = { schedule = { { "cosine", t_max = 3 }, { "exponential", gamma = 0.5 } } }, quiet = true }
    assert.equal(2, #sw.cells)
    local text = tostring(sw)
    assert.matches("schedule=cosine(t_max=3)", text, 1, true)
    assert.matches("schedule=exponential(gamma=0.5)", text, 1, true)
    assert.is_nil(text:find("table: 0x", 1, true))
    -- 3 iterations are fewer than the plateau window: n/a, not "none"
    assert.matches("plateau n/a", text, 1, true)
    assert.is_nil(text:find("plateau none", 1, true))
    assert(sw:save(dir .. "/sched"))
    local csv = assert(io.open(dir .. "/sched.csv")):read("a")
    assert.matches("\ncosine(t_max=3),", csv, 1, true)
    assert.equal("step(gamma=0.5,step_size=2)",
      require("lunet.experiment").value_label({ "step", step_size = 2, gamma = 0.5 }))
  end)
end)
