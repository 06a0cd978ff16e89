local Result = require("lunet.result")
local lfs = require("lfs")
local cjson = require("cjson")
local util = require("util")
local temp_dir = util.temp_dir
local rm_rf = util.rm_rf
local list_dir = util.list_dir
local read = util.read

local NAN = 0 / 0

-- Deep equality where NaN equals NaN (plain same() says NaN ~= NaN).
local function deep_equal(a, b, path)
  path = path or "value"
  if type(a) == "number" and type(b) == "number" then
    if a ~= a and b ~= b then
      return true
    end
    if a == b then
      return true
    end
    return false, path .. ": " .. tostring(a) .. " ~= " .. tostring(b)
  end
  if type(a) ~= type(b) then
    return false, path .. ": type " .. type(a) .. " ~= " .. type(b)
  end
  if type(a) ~= "table" then
    if a == b then
      return true
    end
    return false, path .. ": " .. tostring(a) .. " ~= " .. tostring(b)
  end
  for k, v in pairs(a) do
    local ok, why = deep_equal(v, b[k], path .. "." .. tostring(k))
    if not ok then
      return false, why
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false, path .. "." .. tostring(k) .. " missing on the left"
    end
  end
  return true
end

local function sample()
  return Result.new({
    name = "sgd lr=0.1",
    config = { optimizer = "sgd", lr = 0.1, momentum = 0.9, batch = 64, iterations = 4, runs = 3 },
    provenance = { seconds = 12.5, host = "box", git = "abc123" },
    runs = {
      { loss = { 2.0, 1.0, 0.5, 0.25 }, seed = 1, diverged = false, interrupted = false,
        test_loss = 0.3, test_accuracy = 0.91 },
      { loss = { 2.2, 1.2, 0.7 }, seed = 2, diverged = false, interrupted = true,
        test_loss = 0.35, test_accuracy = 0.9 },
      { loss = { 2.5, 40.0, NAN }, seed = 3, diverged = true, interrupted = false,
        test_loss = NAN, test_accuracy = 0.1 },
      { loss = { 1.9, 0.9, 0.3, 0.15 }, seed = 4, diverged = false, interrupted = false,
        test_loss = 0.28, test_accuracy = 1 / 3 },
    },
  })
end

describe("lunet.result", function()
  describe("new", function()
    it("computes the per-iteration summary without diverged runs", function()
      local r = sample()
      assert.are.equal(4, r.iterations)
      assert.are.equal(1, r.left_out)
      assert.are.same({ 3, 3, 3, 2 }, r.n)
      assert.is_near(2.0333333333, r.mean[1], 1e-9)
      assert.is_near(1.0333333333, r.mean[2], 1e-9)
      assert.is_near(0.5, r.mean[3], 1e-12)
      assert.is_near(0.2, r.mean[4], 1e-12)
      assert.is_near(0.2, r.std[3], 1e-12) -- {0.5, 0.7, 0.3}
      local half = 12.7062047362 * math.sqrt(0.005) / math.sqrt(2) -- {0.25, 0.15}
      assert.is_near(0.2 - half, r.ci_low[4], 1e-9)
      assert.is_near(0.2 + half, r.ci_high[4], 1e-9)
    end)

    it("copies its input", function()
      local loss = { 1, 2 }
      local r = Result.new({ runs = { { loss = loss } } })
      loss[1] = 99
      assert.are.equal(1, r.runs[1].loss[1])
      assert.are.equal(1, r.mean[1])
    end)

    it("accepts an empty result", function()
      local r = Result.new({ name = "empty" })
      assert.are.equal(0, r.iterations)
      assert.are.equal(0, #r.runs)
      local m, sd, at = r:final()
      assert.is_true(m ~= m and sd ~= sd)
      assert.is_nil(at)
      assert.matches("final:   none", tostring(r))
    end)

    it("rejects unknown keys", function()
      assert.has_error(function() Result.new({ run = {} }) end,
        "Result.new: unknown option 'run' (valid: config, name, provenance, runs)")
    end)

    it("rejects values of the wrong type, naming them", function()
      assert.has_error(function() Result.new({ name = {} }) end, "Result.new: option 'name' must be a string, got table")
      assert.has_error(function() Result.new({ config = "lr=1" }) end,
        "Result.new: option 'config' must be a table, got string")
      assert.has_error(function() Result.new({ provenance = 3 }) end,
        "Result.new: option 'provenance' must be a table, got number")
      assert.has_error(function() Result.new({ runs = { { loss = 1 } } }) end,
        "Result.new: runs[1].loss must be an array of numbers, got number")
      assert.has_error(function() Result.new({ runs = { { loss = { 1 } }, { loss = { 1, "2" } } } }) end,
        "Result.new: runs[2].loss must be an array of numbers, got string at index 2")
      -- absent values (holes) are skipped, as before
      local r = Result.new({ runs = { { loss = { nil, 2 } }, { loss = { 4, 6 } } } })
      assert.are.same({ 4, 4 }, r.mean)
    end)
  end)

  describe("methods", function()
    it("final gives mean and std at the last iteration", function()
      local m, sd, at = sample():final()
      assert.is_near(0.2, m, 1e-12)
      assert.is_near(math.sqrt(0.005), sd, 1e-12)
      assert.are.equal(4, at)
    end)

    it("plateau runs on the mean", function()
      local runs = {}
      for r = 1, 3 do
        local loss = {}
        for i = 1, 100 do
          loss[i] = 0.1 * r + math.exp(-i / 5)
        end
        runs[r] = { loss = loss }
      end
      local res = Result.new({ runs = runs })
      -- e^{-i/5} - e^{-20} <= 1e-3 from i = 35 (e^{-6.8} = 1.11e-3 > 1e-3)
      assert.are.equal(35, res:plateau())
      assert.are.equal(35, res:plateau({ window = 10, tol = 1e-3 }))
      assert.is_nil(sample():plateau())
    end)

    it("raises strict option errors that point at the caller", function()
      local r = sample()
      assert.has_error(function() r:plateau({ windw = 5 }) end,
        "result:plateau: unknown option 'windw' (valid: tol, window)")
      local ok, err = pcall(function() r:plateau({ windw = 5 }) end)
      assert.is_false(ok)
      assert.matches("^spec/result_spec.lua:%d+: result:plateau: unknown option 'windw' %(valid: tol, window%)$", err)
      ok, err = pcall(function() r:plateau({ window = -2 }) end)
      assert.is_false(ok)
      assert.matches("^spec/result_spec.lua:%d+: result:plateau: option 'window' must be a positive integer, got %-2$",
        err)
    end)

    it("must be called on a result, with ':'", function()
      local r = sample()
      for _, name in ipairs({ "plateau", "final", "test_summary", "plot", "to_csv", "to_json", "save",
        "__tostring" }) do
        local ok, err = pcall(r[name], { window = 2 })
        assert.is_false(ok)
        assert.are.equal(("result:%s: must be called on a result (with ':'), got table"):format(name), err)
        ok, err = pcall(r[name])
        assert.is_false(ok)
        assert.are.equal(("result:%s: must be called on a result (with ':'), got nil"):format(name), err)
      end
      local ok, err = pcall(function() r.final("x") end)
      assert.is_false(ok)
      assert.matches('^spec/result_spec.lua:%d+: result:final: must be called on a result %(with \':\'%), got "x"$',
        err)
    end)

    it("prints a short summary", function()
      local s = tostring(sample())
      util.assert_contains(s, {
        'lunet result "sgd lr=0.1"',
        "optimizer=sgd lr=0.1 momentum=0.9 batch=64 iterations=4 runs=3",
        "runs:    4 (1 left out as diverged)",
        "final:   0.2 ± 0.0707 (iteration 4)",
        "plateau: n/a (fewer iterations than the window of 10)",
        "time:    12.50 s",
        "mean:    █▄▂▁",
      })
    end)

    it("shows every optimizer setting that is not its default", function()
      local function cfg_line(config)
        return tostring(Result.new({ config = config, runs = { { loss = { 1, 0.5 } } } })):match("config:  ([^\n]*)")
      end
      local base = { optimizer = "sgd", lr = 0.01, momentum = 0.9, batch = 64, iterations = 2, runs = 1 }
      assert.are.equal("optimizer=sgd lr=0.01 momentum=0.9 batch=64 iterations=2 runs=1", cfg_line(base))
      local nesterov = {}
      for k, v in pairs(base) do nesterov[k] = v end
      nesterov.nesterov, nesterov.weight_decay, nesterov.dampening = true, 5e-4, 0
      assert.are.equal("optimizer=sgd lr=0.01 momentum=0.9 nesterov=true weight_decay=0.0005 batch=64 iterations=2 runs=1",
        cfg_line(nesterov))
      assert.are.equal("optimizer=sgd lr=0.01 dampening=0.5 loss=mse",
        cfg_line({ optimizer = "sgd", lr = 0.01, dampening = 0.5, loss = "mse" }))
      assert.are.equal("optimizer=adam lr=0.001 betas={0.8, 0.99} eps=1e-06",
        cfg_line({ optimizer = "adam", lr = 1e-3, betas = { 0.8, 0.99 }, eps = 1e-6 }))
      assert.are.equal("optimizer=adam lr=0.001", cfg_line({ optimizer = "adam", lr = 1e-3, betas = { 0.9, 0.999 },
        eps = 1e-8, weight_decay = 0 }))
      -- AdamW's default weight decay is 0.01, so 0 is the setting to show
      assert.are.equal("optimizer=adamw lr=0.001 weight_decay=0", cfg_line({ optimizer = "adamw", lr = 1e-3,
        weight_decay = 0 }))
      assert.are.equal("optimizer=adamw lr=0.001", cfg_line({ optimizer = "adamw", lr = 1e-3, weight_decay = 0.01 }))
    end)

    it("says when the runs were taken from the cache instead of showing a time of 0 s", function()
      local runs = { { loss = { 1, 0.5 } }, { loss = { 1.1, 0.6 } } }
      local s = tostring(Result.new({ runs = runs, provenance = { seconds = 0, runs_cached = 2, runs_computed = 0,
        store = "out/store/0123456789abcdef" } }))
      assert.matches("source:  all 2 runs taken from the cache out/store/0123456789abcdef (computed earlier", s, 1, true)
      assert.is_nil(s:find("time:", 1, true))
      s = tostring(Result.new({ runs = runs, provenance = { seconds = 3.5, runs_cached = 1, runs_computed = 1 } }))
      assert.matches("time:    3.50 s (1 runs computed, 1 taken from the cache)", s, 1, true)
      s = tostring(Result.new({ runs = runs, provenance = { seconds = 3.5, runs_cached = 0, runs_computed = 2 } }))
      assert.matches("time:    3.50 s\n", s, 1, true)
    end)

    it("shows the plateau iteration when there is one", function()
      local loss = {}
      for i = 1, 30 do
        loss[i] = 1
      end
      local s = tostring(Result.new({ runs = { { loss = loss } } }))
      assert.matches("plateau: iteration 1 (window 10, tol 1e-3)", s, 1, true)
      assert.matches("(unnamed)", s, 1, true)
    end)
  end)

  -- save and load: each test gets a fresh empty directory, removed after it
  describe("files", function()
    local dir
    before_each(function() dir = temp_dir() end)
    after_each(function() rm_rf(dir) end)

    describe("save", function()
      it("writes a CSV with summary and run columns", function()
        local r = sample()
        assert.is_true(r:save(dir .. "/exp"))
        local lines = {}
        for line in read(dir .. "/exp.csv"):gmatch("([^\n]*)\n") do
          lines[#lines + 1] = line
        end
        assert.are.equal(5, #lines)
        assert.are.equal("iteration,mean,std,ci_low,ci_high,run_1,run_2,run_3,run_4", lines[1])
        local rows = {}
        for i = 2, #lines do
          local cells = {}
          for cell in (lines[i] .. ","):gmatch("([^,]*),") do
            cells[#cells + 1] = cell
          end
          assert.are.equal(9, #cells)
          rows[i - 1] = cells
        end
        assert.are.equal("1", rows[1][1])
        assert.are.equal("2.03333333", rows[1][2]) -- %.9g
        assert.is_near(r.std[1], tonumber(rows[1][3]), 1e-8)
        assert.is_near(r.ci_low[1], tonumber(rows[1][4]), 1e-7)
        assert.are.equal("2.5", rows[1][8])
        assert.are.equal("nan", rows[3][8]) -- diverged run's NaN
        assert.are.equal("", rows[4][7])    -- run 2 stopped after 3 iterations
        assert.are.equal("", rows[4][8])
        assert.are.equal("0.15", rows[4][9])
        assert.are.equal("0.2", rows[4][2])
      end)

      it("round-trips through JSON exactly, NaN and infinities included", function()
        local r = sample()
        r.runs[3].loss[2] = math.huge
        r.runs[1].loss[1] = 0.1 + 0.2 -- needs 17 significant digits
        r = Result.new({ name = r.name, config = r.config, provenance = r.provenance, runs = r.runs })
        assert.is_true(r:save(dir .. "/rt"))
        local back = assert(Result.load(dir .. "/rt.json"))
        assert.are.equal(Result, getmetatable(back))
        local fields = { "name", "config", "provenance", "runs", "mean", "std", "ci_low", "ci_high",
          "n", "left_out", "iterations" }
        for _, k in ipairs(fields) do
          local ok, why = deep_equal(r[k], back[k], k)
          assert.is_true(ok, why)
        end
        assert.are.equal(0.1 + 0.2, back.runs[1].loss[1])
        assert.are.equal(math.huge, back.runs[3].loss[2])
        assert.is_true(back.runs[3].loss[3] ~= back.runs[3].loss[3])
        assert.is_true(back.runs[3].test_loss ~= back.runs[3].test_loss)
        assert.are.equal(1 / 3, back.runs[4].test_accuracy)
        assert.are.equal("integer", math.type(back.config.batch))
        assert.are.equal(tostring(r), tostring(back))
        -- a path without the extension loads too
        assert.is_true(deep_equal(r.mean, assert(Result.load(dir .. "/rt")).mean))
      end)

      it("writes standard JSON with the format tag", function()
        assert.is_true(sample():save(dir .. "/std"))
        local doc = cjson.decode(read(dir .. "/std.json"))
        assert.are.equal("lunet-result", doc.format)
        assert.are.equal(1, doc.version)
        assert.are.equal("sgd lr=0.1", doc.name)
        assert.are.equal(4, #doc.runs)
        assert.are.equal("NaN", doc.runs[3].loss[3])
        assert.are.equal(1, doc.left_out)
        assert.are.same({ 3, 3, 3, 2 }, doc.n)
        assert.is_true(doc.runs[3].diverged)
      end)

      it("creates nested parent directories and leaves no temporary files", function()
        local r = sample()
        assert.is_true(r:save(dir .. "/a/b/c/exp"))
        assert.are.equal("directory", lfs.attributes(dir .. "/a/b/c", "mode"))
        assert.are.same({ "exp.csv", "exp.json" }, list_dir(dir .. "/a/b/c"))
        -- saving again replaces the files, still without leftovers
        assert.is_true(r:save(dir .. "/a/b/c/exp"))
        assert.is_true(r:save(dir .. "/a/b/c/other"))
        assert.are.same({ "exp.csv", "exp.json", "other.csv", "other.json" }, list_dir(dir .. "/a/b/c"))
        assert.are.same({ "a" }, list_dir(dir))
      end)

      it("returns nil and a message on I/O errors instead of raising", function()
        util.write(dir .. "/plain", "x")
        local ok, err = sample():save(dir .. "/plain/sub/exp")
        assert.is_nil(ok)
        assert.is_string(err)
        assert.matches("plain", err)
        ok, err = sample():save(dir .. "/plain/exp")
        assert.is_nil(ok)
        assert.is_string(err)
        assert.are.same({ "plain" }, list_dir(dir))
      end)

      it("reports values that cannot be encoded", function()
        local r = Result.new({ config = { callback = print }, runs = { { loss = { 1 } } } })
        local ok, err = r:save(dir .. "/bad")
        assert.is_nil(ok)
        assert.matches("cannot encode", err)
        assert.are.same({}, list_dir(dir))
      end)
    end)

    describe("load", function()
      -- Loading the file `name` holding `text` must fail with no result and an error matching `pattern`.
      local function load_fails(name, text, pattern)
        local path = dir .. "/" .. name
        if text then util.write(path, text) end
        local r, err = Result.load(path)
        assert.is_nil(r)
        assert.matches(pattern, err)
      end

      it("raises on a path that is not a string", function()
        assert.has_error(function() Result.load() end, "Result.load: argument #1 (path) must be a string, got nil")
        assert.has_error(function() Result.load({}) end, "Result.load: argument #1 (path) must be a string, got table")
      end)

      it("fails cleanly on a missing file", function()
        load_fails("nope.json", nil, "cannot open")
      end)

      it("fails cleanly on corrupt JSON", function()
        load_fails("bad.json", '{"format": "lunet-result", "runs": [', "corrupt JSON")
      end)

      it("fails cleanly on a wrong format tag or version", function()
        load_fails("other.json", '{"format": "something-else", "version": 1}', "not a lunet result")
        load_fails("list.json", "[1, 2, 3]", "not a lunet result")
        load_fails("v2.json", '{"format": "lunet-result", "version": 2}', "version 2")
      end)

      it("fails cleanly on malformed runs", function()
        load_fails("runs.json", '{"format": "lunet-result", "version": 1, "runs": [3]}', "runs%[1%]")
      end)
    end)
  end)
end)

describe("validation curves and early stops in a result", function()
  -- run 2 stopped after iteration 2; validations every 2 iterations and after the last
  local runs = {
    { loss = { 1.0, 0.8, 0.6, 0.5, 0.45 }, val_iterations = { 2, 4, 5 }, val_loss = { 0.9, 0.7, 0.65 },
      val_accuracy = { 0.5, 0.6, 0.7 } },
    { loss = { 1.2, 1.0 }, val_iterations = { 2 }, val_loss = { 1.1 }, val_accuracy = { 0.3 }, stopped_at = 2 },
    { loss = { 1.1, 0.9, 0.7, 0.6, 0.55 }, val_iterations = { 2, 4, 5 }, val_loss = { 1.0, 0.8, 0.75 },
      val_accuracy = { 0.4, 0.6, 0.8 } },
  }
  local res = Result.new { name = "v", runs = runs }

  it("summarises the k-th validation of every run; each point over the runs that reached it", function()
    assert.same({ 2, 4, 5 }, res.val_iterations)
    assert.same({ 3, 2, 2 }, res.val_n)
    assert.near(1.0, res.val_mean[1], 1e-12)
    assert.near(0.75, res.val_mean[2], 1e-12)
    assert.near(0.7, res.val_mean[3], 1e-12)
    assert.near(0.75, res.val_accuracy_mean[3], 1e-12)
    -- the loss the same way: iterations 3-5 are the mean of the two runs that went on
    assert.same({ 3, 3, 2, 2, 2 }, res.n)
    assert.near(0.65, res.mean[3], 1e-12)
    assert.same({ { iteration = 2, count = 1 } }, res:stopped())
    local text = tostring(res)
    assert.matches("valid.:  loss 0.7, accuracy 75.00%% %(iteration 5, 2 runs%)", text)
    assert.matches("stopped: 1 runs early, after iteration 2", text, 1, true)
  end)

  it("survives a save and load", function()
    local dir = temp_dir()
    assert(res:save(dir .. "/v"))
    local back = assert(Result.load(dir .. "/v.json"))
    assert.same(res.val_mean, back.val_mean)
    assert.same(res:stopped(), back:stopped())
    rm_rf(dir)
  end)

  it("res:plot draws the validation curve and marks the early stops", function()
    local plot = require("lunet.plot")
    if not plot.available() then return pending("gnuplot not installed") end
    local text = assert(res:plot { output = "string", width = 80, height = 25 })
    assert.matches("v (validation)", text, 1, true)
    assert.matches("v: early stops", text, 1, true)
    local plain = assert(res:plot { output = "string", width = 80, height = 25, validation = false })
    assert.is_nil(plain:find("(validation)", 1, true))
  end)
end)
