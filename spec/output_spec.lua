-- What a scientist sees: errors that name the cause where the mistake shows, help
-- that documents every option and whose references lead somewhere, callback counts
-- that are integers, a session without stray values, results that say where they
-- came from.
local lfs = require("lfs")
local lunet = require("lunet")
local help = require("lunet.help")
local synthetic = require("synthetic")
local util = require("util")

local ROOT = lfs.currentdir()

local function tiny_net()
  return lunet.sequential { lunet.flatten(), lunet.linear(784, 4), lunet.log_softmax() }
end

local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "no error")
  return tostring(err)
end

describe("missing data", function()
  local dir
  setup(function() dir = util.temp_dir() end)
  teardown(function() util.rm_rf(dir) end)

  it("loaders still return nil, message, and say how to get the files", function()
    local ds, err = lunet.mnist { dir = dir .. "/nothing-here", n = 3000 }
    assert.is_nil(ds)
    assert.are.equal("lunet.mnist: cannot open " .. dir .. "/nothing-here/train-images-idx3-ubyte.gz (the MNIST "
      .. "train files are not in " .. dir .. "/nothing-here); get the files with `make mnist` (downloads into "
      .. "data/mnist) or set MNIST_DIR to their directory", err)
  end)

  it("a nil data option names the last loader failure", function()
    local ds = lunet.mnist { dir = dir .. "/gone", split = "test" }
    local net = tiny_net()
    local err = err_of(function() net:train { data = ds, iterations = 1 } end)
    assert.matches("^spec/output_spec.lua:%d+: net:train: option 'data' is nil; lunet.mnist returned nil before: "
      .. "cannot open " .. (dir .. "/gone/t10k"):gsub("%p", "%%%0"), err)
    assert.matches("make mnist", err, 1, true)
    assert.matches("MNIST_DIR", err, 1, true)
    err = err_of(function() lunet.experiment { model = tiny_net, data = ds, runs = 1, quiet = true, cache = false } end)
    assert.matches("^spec/output_spec.lua:%d+: lunet.experiment: option 'data' is nil; lunet.mnist returned nil", err)
    err = err_of(function() net:evaluate(ds) end)
    assert.matches("net:evaluate: argument #1 (data) is nil; lunet.mnist returned nil before", err, 1, true)
    -- a value that is not nil is simply the wrong type
    err = err_of(function() net:train { data = {}, iterations = 1 } end)
    assert.matches("net:train: option 'data' must be a dataset (lunet.mnist{...} or lunet.dataset(...)), got table",
      err, 1, true)
  end)

  it("a test set that failed to load is not silently dropped", function()
    local script = ([[
      local lunet = require("lunet")
      local data = dofile("spec/support/synthetic.lua")(32)
      local test = lunet.mnist { dir = %q, split = "test" }
      local res = lunet.experiment { model = function() return lunet.sequential { lunet.flatten(),
        lunet.linear(784, 4), lunet.log_softmax() } end, data = data, test = test, runs = 1, iterations = 1,
        quiet = true, cache = false }
      print(#res.runs)
    ]]):format(dir .. "/no-test")
    local r = util.run(util.LUA .. " -e " .. util.shell_quote(script))
    assert.are.equal(0, r.code, util.explain(r))
    assert.are.equal("lunet.experiment: no test set (option 'test' is nil); note that lunet.mnist returned nil before: "
      .. "cannot open " .. dir .. "/no-test/t10k-images-idx3-ubyte.gz (the MNIST test files are not in " .. dir
      .. "/no-test); get the files with `make mnist` (downloads into data/mnist) or set MNIST_DIR to their "
      .. "directory\n", r.err)
  end)

  it("in the interactive session a failing loader says why at once", function()
    local r = util.run(util.shell_quote(ROOT .. "/bin/lunet"),
      ("ds = lunet.mnist{dir = %q, n = 3000}\nprint(ds == nil)\n"):format(dir .. "/absent"))
    assert.are.equal(0, r.code, util.explain(r))
    assert.matches("lunet.mnist: cannot open " .. dir .. "/absent/train-images-idx3-ubyte.gz", r.err, 1, true)
    assert.matches("> print(ds == nil)\ntrue\n", r.out, 1, true)
    -- a script keeps the quiet nil, message contract
    r = util.run(util.LUA .. " -e " .. util.shell_quote(([[print(select("#", require("lunet").mnist { dir = %q }))]]):format(dir .. "/absent")))
    assert.are.same({ 0, "2\n", "" }, { r.code, r.out, r.err }, util.explain(r))
  end)

  it("the README's lines check what the loaders return", function()
    local readme = assert(util.read(ROOT .. "/README.md"))
    local loads = 0
    for line in readme:gmatch("[^\n]+") do
      if line:find("lunet.mnist{", 1, true) and not line:find("assert(lunet.mnist{", 1, true) then
        error("README loads data without assert: " .. line)
      end
      if line:find("assert(lunet.mnist", 1, true) then loads = loads + 1 end
    end
    assert.is_true(loads >= 4, "README: " .. loads .. " checked loads")
  end)

  it("names no C function in argument errors", function()
    local t = lunet.zeros { 2, 1, 2, 2 }
    local err = err_of(lunet.dataset, t, { 0 })
    assert.matches("lunet.dataset: argument #2 (labels): needs 2 labels (one per image), got 1", err, 1, true)
    assert.is_nil(err:find("dataset_from", 1, true))
    err = err_of(function() return lunet.tensor({ 1, 2 }, { 3 }) end)
    assert.matches("lunet.tensor: argument #1 (data): data has 2 numbers but the shape holds 3", err, 1, true)
    err = err_of(function() return lunet.zeros { -1 } end)
    assert.matches("^spec/output_spec.lua:%d+: lunet.zeros: argument #1 %(shape%)", err)
  end)
end)

describe("lunet.help", function()
  local function text(x) return help.text(lunet, x) end
  local function valid_options(f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok)
    local list = tostring(err):match("%(valid: ([^)]*)%)")
    assert.is_string(list, err)
    local keys = {}
    for k in list:gmatch("[^, ]+") do keys[#keys + 1] = k end
    return keys
  end

  it("documents every option with its default", function()
    local net = tiny_net()
    local ds = synthetic(8)
    local sweep = lunet.sweep { base = { model = tiny_net, data = ds, test = ds, runs = 1, iterations = 1, quiet = true,
      cache = false }, grid = { lr = { 0.1, 0.2 }, momentum = { 0, 0.5 } } }
    local cases = {
      { "lunet.experiment", valid_options(lunet.experiment, { zzz = 1 }), { model = true, data = true } },
      { "net:train", valid_options(net.train, net, { zzz = 1 }), { data = true } },
      { "lunet.sweep", valid_options(lunet.sweep, { zzz = 1 }), { base = true, grid = true } },
      { "sweep:heatmap", valid_options(sweep.heatmap, sweep, { zzz = 1 }), {} },
      { "lunet.mnist", valid_options(lunet.mnist, { zzz = 1 }), {} },
    }
    for _, c in ipairs(cases) do
      local doc = text(c[1])
      local signature = doc:match("^[%w_.:]*(%b{})")
      for _, k in ipairs(c[2]) do
        if c[3][k] then
          assert.matches("[{, ]" .. k .. "[ ,=}]", signature, nil, c[1] .. ": option " .. k .. " not named")
        else
          assert.matches("[{, ]" .. k .. " = [^,}]", signature, nil, c[1] .. ": option " .. k .. " has no default")
        end
      end
    end
    local e = text("experiment")
    for _, s in ipairs({ "batch = 64", "iterations = 1", "test_at = {}", "keep_steps = false", "cache = true" }) do
      assert.matches(s, e, 1, true)
    end
    -- every option of lunet.plot is explained
    for _, k in ipairs(valid_options(lunet.plot, { tiny = 1 }, { zzz = 1 })) do
      assert.matches(k, text(lunet.plot), 1, true)
    end
  end)

  it("resolves every reference in the documentation", function()
    local refs, seen = {}, {}
    for _, e in ipairs(help.entries().list) do
      for _, line in ipairs(e.doc) do
        for ref in line:gmatch("see ([%a_][%w_.:]*[%w_])") do refs[#refs + 1] = { ref, e.name } end
        for ref in line:gmatch('lunet%.help%("([^"]+)"%)') do refs[#refs + 1] = { ref, e.name } end
      end
    end
    assert.is_true(#refs >= 5, #refs .. " references")
    for _, r in ipairs(refs) do
      if not seen[r[1]] then
        seen[r[1]] = true
        local t = text(r[1])
        assert.is_nil(t:find("^no documentation"), ("%s refers to %s: %s"):format(r[2], r[1], t))
        assert.is_nil(t:find("^lunet %d+%.%d+%.%d+: CNN"), r[2] .. " refers to " .. r[1] .. ": the whole list")
      end
    end
    for _, name in ipairs({ "result", "lunet.result", "lunet.Result", "lunet.plot.results", "plot.results",
      "Progress.mode", "stats.plateau", "lunet.stats" }) do
      assert.is_nil(text(name):find("^no documentation"), name)
    end
    assert.matches("result:plateau(opts)", help.text(lunet, lunet.Result), 1, true)
    assert.matches("progress:update", help.text(lunet, lunet.Progress), 1, true)
    assert.matches("^lunet.plot%(results_list, opts%)", help.text(lunet, lunet.plot))
  end)

  it("lists whole lines, wrapped, without the internals", function()
    local listing = text()
    for line in listing:gmatch("[^\n]+") do
      assert.is_true(utf8.len(line) <= 100, "too long: " .. line)
      assert.is_nil(line:find("%.%.%.$"), "cut: " .. line)
    end
    -- lunet.config serves net:train and lunet.experiment; scripts do not call it
    assert.is_nil(listing:find("config.train", 1, true))
    assert.is_nil(listing:find("lunet._", 1, true))
    -- a signature over two doc lines is listed whole, its continuation indented
    assert.matches("\n  net:train{data, loss = \"nll\",[^\n]*\n      [^\n]*quiet = false,[^\n]*\n      [^\n]*\n"
      .. "      [^\n]*resume = none,%s+threads = 1}", listing)
  end)

  it("gives a training callback integer counts", function()
    local seen = {}
    tiny_net():train { data = synthetic(16), iterations = 2, batch = 8, progress = function(p) seen[#seen + 1] = p end }
    assert.are.equal(2, #seen)
    for _, k in ipairs({ "iteration", "iterations", "step", "samples" }) do
      assert.are.equal("integer", math.type(seen[2][k]), k)
    end
    assert.are.same({ 2, 2, 4, 32 }, { seen[2].iteration, seen[2].iterations, seen[2].step, seen[2].samples })
    assert.are.equal("float", math.type(seen[2].loss))
  end)
end)

describe("the interactive session", function()
  it("prints no stray true after a plot", function()
    if not require("lunet.plot").available() then
      pending("gnuplot not installed")
      return
    end
    local r = util.run(util.shell_quote(ROOT .. "/bin/lunet"), table.concat({
      'h = lunet.sequential{lunet.flatten(), lunet.linear(784, 4), lunet.log_softmax()}:train{data = '
        .. 'dofile("spec/support/synthetic.lua")(32), iterations = 3, quiet = true}',
      "h:plot{width = 60, height = 16}",
      "1 == 1",
    }, "\n") .. "\n")
    assert.are.equal(0, r.code, util.explain(r))
    local plot_out = r.out:match("> h:plot{width = 60, height = 16}\n(.-)> 1 == 1\n")
    assert.is_string(plot_out, r.out)
    assert.matches("epoch", plot_out, 1, true)
    assert.matches("y: training loss", plot_out, 1, true)
    assert.is_nil(plot_out:find("true", 1, true), plot_out)
    assert.matches("> 1 == 1\ntrue\n", r.out, 1, true) -- other values are still printed
  end)
end)

describe("a result taken from the cache", function()
  it("says so instead of printing a time of 0 s", function()
    local out = util.temp_dir()
    finally(function() util.rm_rf(out) end)
    local ds = synthetic(16)
    local opts = { name = "cached", model = tiny_net, data = ds, test = ds, runs = 2, iterations = 2, threads = 1,
      out = out, quiet = true }
    local first = lunet.experiment(opts)
    assert.matches("time:    [%d.]+ s\n", tostring(first))
    local again = lunet.experiment(opts)
    assert.are.equal(2, again.provenance.runs_cached)
    local s = tostring(again)
    assert.matches("source:  all 2 runs taken from the cache " .. out, s, 1, true)
    assert.is_nil(s:find("time:", 1, true))
  end)
end)
