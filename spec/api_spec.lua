-- The Lua contract: strict options, argument errors that name the argument,
-- printing, the userdata conventions, model files.
local lunet = require("lunet")
local synthetic = require("synthetic")

local err_of = require("util").err_of
local assert_contains = require("util").assert_contains

describe("strict options", function()
  it("an unknown key names it and lists the valid keys", function()
    local net = lunet.models.mnist_cnn()
    local data = synthetic(8)
    local e = err_of(net.train, net, { data = data, lerning_rate = 0.1 })
    assert.matches("unknown option 'lerning_rate'", e, 1, true)
    assert.matches("valid: batch, checkpoint, data, fresh, iterations, loss, optimizer", e, 1, true)
    e = err_of(lunet.conv2d, 1, 2, 3, { strid = 2 })
    assert.matches("lunet.conv2d: unknown option 'strid'", e, 1, true)
    e = err_of(lunet.mnist, { spilt = "train" })
    assert.matches("unknown option 'spilt'", e, 1, true)
    e = err_of(lunet.sequential, { lunet.relu(), inptu = { 1 } })
    assert.matches("unknown option 'inptu'", e, 1, true)
  end)

  it("wrong types and ranges name the argument", function()
    assert.matches("(in_channels)", err_of(lunet.conv2d, "1", 2, 3), 1, true)
    assert.matches("(kernel) must be a positive integer, got 0", err_of(lunet.conv2d, 1, 2, 0), 1, true)
    -- reported at the caller's line, not inside lunet
    local ok, e = pcall(function() local pool = lunet.maxpool2d(-2); return pool end)
    assert.is_false(ok)
    assert.matches("^spec/api_spec%.lua:%d+: lunet%.maxpool2d: argument #1 %(kernel%)", e)
    assert.matches("(out_features)", err_of(lunet.linear, 3, -1), 1, true)
    assert.matches("(p) must be a number in [0, 1]", err_of(lunet.dropout, 1.5), 1, true)
    local net = lunet.models.mnist_cnn()
    local data = synthetic(8)
    assert.matches("option 'batch' must be a positive integer, got 0",
      err_of(net.train, net, { data = data, batch = 0 }), 1, true)
    assert.matches("option 'unit' must be \"epoch\" or \"step\"",
      err_of(net.train, net, { data = data, unit = "epochs" }), 1, true)
    assert.matches("option 'data' must be a dataset", err_of(net.train, net, { data = {} }), 1, true)
    assert.matches("option 'loss'", err_of(net.train, net, { data = data, loss = "hinge" }), 1, true)
    assert.matches("unknown optimizer 'rmsprop'",
      err_of(net.train, net, { data = data, optimizer = { "rmsprop", lr = 1 } }), 1, true)
    assert.matches("lr", err_of(net.train, net, { data = data, optimizer = { "sgd", lr = -1 } }), 1, true)
    assert.matches("layer must be in [1, 13] (got 99)", err_of(net.get, net, 99, "weight"), 1, true)
    assert.matches("layer 2 (maxpool2d) has no weight", err_of(net.get, net, 2, "weight"), 1, true)
  end)

  it("the optimizer may be given as a list form", function()
    local net = lunet.models.mnist_cnn()
    local h = net:train { data = synthetic(8), optimizer = { "adam", lr = 1e-3 }, batch = 4, quiet = true }
    assert.equal(1, #h.loss)
  end)
end)

describe("shape inference", function()
  it("a wrong shape is an error at construction naming the layer and both shapes", function()
    local e = err_of(lunet.sequential, { lunet.conv2d(1, 10, 5), lunet.conv2d(20, 5, 3) })
    assert.matches("layer 2 (conv2d)", e, 1, true)
    assert.matches("20 x H x W", e, 1, true)
    assert.matches("10x24x24", e, 1, true)
    e = err_of(lunet.sequential, { lunet.conv2d(1, 10, 5), lunet.linear(5760, 10) })
    assert.matches("layer 2 (linear)", e, 1, true)
    assert.matches("flatten", e, 1, true)
    e = err_of(lunet.sequential, { lunet.maxpool2d(40) })
    assert.matches("layer 1 (maxpool2d)", e, 1, true)
  end)
end)

describe("printing", function()
  it("a net shows layers, shapes, parameters and FLOPs", function()
    local s = tostring(lunet.models.mnist_cnn())
    assert_contains(s, { "13 layers", "10x24x24", "21.8k", "0.961 MFLOP forward, 1.634 backward" })
  end)
  it("tensors, datasets, optimizers and layers print usefully", function()
    assert.matches("tensor 2x2 %[1, 2, 3, 4%] min 1 max 4 mean 2.5", tostring(lunet.tensor({ 1, 2, 3, 4 }, { 2, 2 })))
    assert.matches("dataset synthetic: 8 samples of 1x28x28, 4 classes", tostring(synthetic(8)), 1, true)
    assert.matches("sgd{lr=0.1, momentum=0.9}", tostring(lunet.sgd { lr = 0.1, momentum = 0.9 }), 1, true)
    assert.matches("conv2d(in_channels=1, out_channels=2", tostring(lunet.conv2d(1, 2, 3)), 1, true)
  end)
end)

describe("userdata conventions", function()
  it(":free() is idempotent and later use raises a clear error", function()
    local net = lunet.models.mnist_cnn()
    net:free()
    net:free()
    assert.matches("net has been freed", err_of(net.forward, net, lunet.tensor({ 1, 1, 28, 28 })), 1, true)
    assert.equal("net (freed)", tostring(net))
    local t = lunet.tensor({ 3 })
    t:free()
    assert.matches("freed", err_of(t.totable, t))
    local d = synthetic(4)
    d:free()
    assert.matches("dataset has been freed", err_of(d.size, d), 1, true)
  end)
  it("<close> releases at the end of a scope", function()
    local keep
    do
      local net <close> = lunet.models.mnist_cnn()
      keep = net
      assert.equal(13, net:layer_count())
    end
    assert.matches("freed", err_of(keep.layer_count, keep))
  end)
  it("no globals are created", function()
    local before = {}
    for k in pairs(_G) do before[k] = true end
    package.loaded["lunet"] = nil
    require("lunet")
    for k in pairs(_G) do assert.is_true(before[k] ~= nil, "new global " .. k) end
  end)
end)

describe("model files", function()
  local path = os.tmpname()
  after_each(function() os.remove(path) end)

  it("save then load gives the same outputs", function()
    local net = lunet.models.mnist_cnn { seed = 9 }
    assert.is_true(net:save(path))
    local back = assert(lunet.load(path))
    local x = synthetic(2):image(1):reshape({ 1, 1, 28, 28 })
    assert.same(net:forward(x):totable(), back:forward(x):totable())
    assert.equal(tostring(net), tostring(back))
  end)

  it("a truncated or corrupt file returns nil and a message", function()
    local net = lunet.models.mnist_cnn()
    assert(net:save(path))
    local f = assert(io.open(path, "rb"))
    local bytes = f:read("a")
    f:close()
    local function write(b)
      local out = assert(io.open(path, "wb"))
      out:write(b)
      out:close()
    end
    write(bytes:sub(1, #bytes - 100))
    local m, err = lunet.load(path)
    assert.is_nil(m)
    assert.matches(path, err, 1, true)
    write(bytes:sub(1, 200) .. "X" .. bytes:sub(202))
    m, err = lunet.load(path)
    assert.is_nil(m)
    assert.matches("checksum", err, 1, true)
    write("not a model")
    m, err = lunet.load(path)
    assert.is_nil(m)
    assert.matches("magic", err, 1, true)
    m, err = lunet.load(path .. ".missing")
    assert.is_nil(m)
    assert.matches("cannot open", err, 1, true)
  end)

  it("saving into a missing directory returns nil and a message", function()
    local ok, err = lunet.models.mnist_cnn():save("/nonexistent-dir/x/model.lunet")
    assert.is_nil(ok)
    assert.matches("nonexistent", err, 1, true)
  end)
end)

describe("names that load on first use", function()
  local util = require("util")
  -- A child lua5.4 with the specs' module paths (util.LUA) and a lua-cjson that cannot
  -- load: runs `code` and prints what it prints.
  local function without_cjson(code)
    local prelude = "package.preload.cjson = function() error('no cjson in this test') end; "
    return util.run_lua(prelude .. code)
  end

  it("each loads its own module: lunet.stats, lunet.Progress and lunet.plot need no cjson", function()
    local r = without_cjson([[
      local lunet = require("lunet")
      print(lunet.stats.mean({ 1, 2, 6 }))
      print(lunet.Progress.format_duration(75))
      print(type(lunet.plot))
      print(package.loaded["lunet.experiment"], package.loaded["lunet.result"], package.loaded.cjson)]])
    assert.equal(0, r.code, util.explain(r))
    assert.equal("3.0\n1m15s\nfunction\nnil\tnil\tnil\n", r.out)
  end)

  it("a name whose module cannot load says which and why", function()
    local r = without_cjson([[
      local lunet = require("lunet")
      local ok, err = pcall(function() return lunet.Result end)
      print(ok, err)]])
    assert.equal(0, r.code, util.explain(r))
    assert.matches("^false\t[^\n]*lunet.Result failed to load: [^\n]*no cjson in this test", r.out)
  end)

  it("every name listed loads and is kept", function()
    local names = lunet._lazy_names()
    assert.same({ "Progress", "Result", "experiment", "load_result", "plot", "stats", "store", "sweep" }, names)
    for _, k in ipairs(names) do
      assert.is_not_nil(lunet[k], k)
      assert.equal(lunet[k], rawget(lunet, k), k)
    end
    assert.equal(require("lunet.stats"), lunet.stats)
    assert.equal(require("lunet.result").load, lunet.load_result)
  end)
end)

describe("the training config (lunet.config)", function()
  local config = require("lunet.config")
  -- The error of f(...) and the line that called f: the line of this helper's caller.
  local function raised_at(f, ...)
    local line = debug.getinfo(2, "l").currentline
    local ok, err = pcall(f, ...)
    assert.is_false(ok)
    return tostring(err), line
  end

  it("takes no error level: config.train(opts, fname), config.optimizer(o, fname), config.schedule(s, fname)", function()
    for _, f in ipairs({ config.train, config.optimizer, config.schedule }) do
      local info = debug.getinfo(f, "u")
      assert.equal(2, info.nparams)
      assert.is_false(info.isvararg)
    end
  end)

  it("raises at the user's line, naming the user's function and option, however deep it is called", function()
    local net = lunet.models.mnist_cnn()
    local data = synthetic(8)
    -- a direct pcall: no Lua line called net:train, so no position (as error(msg, 2) gives)
    local e = raised_at(net.train, net, { data = data, loss = "hinge" })
    assert.equal('net:train: option \'loss\' must be "nll", "cross_entropy" or "mse" (got "hinge")', e)
    -- (not tail calls: a tail call leaves no line of the case on the stack)
    local cases = {
      { function() local r = net:train { data = data, unit = "epochs" }; return r end, "net:train: option 'unit'" },
      { function() local r = net:train { data = data, optimizer = { "rmsprop" } }; return r end,
        "net:train: unknown optimizer 'rmsprop' (valid: adam, adamw, sgd)" },
      { function() local r = net:train { data = data, optimizer = { "sgd", lr = -1 } }; return r end,
        "lunet.sgd: option 'lr' must be a finite number > 0, got -1" },
      { function() local r = net:train { data = data, schedule = { "step" } }; return r end,
        "net:train: option 'schedule': step needs step_size" },
      { function() local r = net:train { data = data, stop = { metric = "val_loss" } }; return r end,
        "net:train: option 'stop': metric \"val_loss\" needs option 'validate' (a dataset)" },
      { function() local r = lunet.optimizer({ "adam", betas = { 1, 2 } }, 4); return r end,
        "lunet.adam: option 'betas' must be two numbers in [0, 1)" },
      { function() local r = lunet.schedule_lr({ "cosine" }, 0.1, 1); return r end,
        "lunet.schedule_lr: option 'schedule': cosine needs t_max" },
      { function() local r = lunet.experiment { model = lunet.models.mnist_cnn, data = data, runs = 1, cache = false,
        quiet = true, schedule = { "exponential", gamma = 0.5, per = "batch" } }; return r end,
        "lunet.experiment: option 'schedule': per must be \"epoch\" or \"step\" (got \"batch\")" },
      { function() local r = lunet.sweep { base = { model = lunet.models.mnist_cnn, data = data, optimizer = 3 },
        grid = { lr = { 0.1 } } }; return r end,
        "lunet.sweep: option 'optimizer' must be lunet.sgd{...} or {\"sgd\", lr = ...}, got number" },
      { function() local r = config.train({ data = data, batch = 8, loss = "l1" }, "bench"); return r end, "bench: option 'loss'" },
      -- checked two calls below the user's (lunet.experiment -> experiment.lua): at the user's line too
      { function() local r = lunet.experiment { zzz = 1 }; return r end, "lunet.experiment: unknown option 'zzz'" },
      { function() local r = lunet.sweep { name = 3 }; return r end, "lunet.sweep: option 'name' must be a string" },
    }
    for _, c in ipairs(cases) do
      local line = debug.getinfo(c[1], "S").linedefined -- each case calls lunet on its own line
      local err = raised_at(c[1])
      assert.equal(("spec/api_spec.lua:%d: "):format(line), err:match("^[^:]*:%d+: "), err)
      assert.equal(c[2], err:sub(#("spec/api_spec.lua:%d: "):format(line) + 1, #("spec/api_spec.lua:%d: "):format(line)
        + #c[2]), err)
    end
  end)
end)

describe("check.in_lunet", function()
  it("tells lunet's module files from the user's, by path and module name", function()
    local check = require("lunet.check")
    assert.is_true(check.in_lunet(debug.getinfo(lunet.sequential, "S").source))
    assert.is_true(check.in_lunet("@/usr/share/lua/5.4/lunet/config.lua"))
    assert.is_true(check.in_lunet("@lunet/init.lua"))
    assert.is_false(check.in_lunet("@/home/u/lunet/train.lua")) -- a script in a folder named lunet
    assert.is_false(check.in_lunet("@spec/api_spec.lua"))
    assert.is_false(check.in_lunet("=[C]"))
  end)
end)

-- core.defaults, the numbers both languages share (built in C from core/lunet.h), checked
-- against what the engine and the module do when a setting is left out, never against
-- copies of the numbers.
describe("core.defaults", function()
  local core = lunet.core
  local D = core.defaults
  local f32 = function(x) return string.unpack("f", string.pack("f", x)) end

  -- Steps an engine optimizer made from `spec` (its settings left out but for kind)
  -- over params p with the gradients of each step; returns the final params.
  local function steps(spec, p, grads)
    local opt = core.optimizer(spec, #p)
    local params = core.tensor({ #p }, p)
    for _, g in ipairs(grads) do opt:step(params, core.tensor({ #p }, g)) end
    return params:totable()
  end

  it("is read-only all the way down, yet reads, iterates and counts like a table", function()
    for _, write in ipairs {
      function() D.batch = 1 end, function() D.optimizers.sgd.lr = 1 end,
      function() D.optimizers.adam.betas[1] = 0.5 end, function() D.mnist.extra = 1 end,
    } do
      assert.matches("lunet.core.defaults is read-only", err_of(write), 1, true)
    end
    assert.are.equal(0.01, D.optimizers.sgd.lr) -- nothing changed
    local keys = {}
    for k in pairs(D) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({ "batch", "eval_batch", "max_runs", "max_threads", "mnist", "optimizers" }, keys)
    assert.are.equal(2, #D.optimizers.adam.betas)
    local betas = {}
    for i, b in ipairs(D.optimizers.adam.betas) do betas[i] = b end
    assert.are.same({ 0.9, 0.999 }, betas)
  end)

  it("sgd without settings steps by the default rate, no momentum, no decay", function()
    local d = D.optimizers.sgd
    assert.is_true(d.lr > 0)
    -- two steps: momentum or dampening would carry the first gradient into the second,
    -- weight decay would pull p = 2 further
    local got = steps({ kind = "sgd" }, { 2 }, { { 1 }, { 3 } })
    local p = f32(2 - d.lr * (1 + d.weight_decay * 2))
    p = f32(p - d.lr * (3 + d.weight_decay * p))
    assert.near(p, got[1], 1e-6)
    assert.are.equal(0, d.momentum)
    assert.are.equal(0, d.dampening)
    assert.is_false(d.nesterov)
    -- lunet.sgd{} is the same optimizer
    assert.are.equal(d.lr, lunet.sgd {}.lr)
    assert.same(got, steps(lunet.sgd {}, { 2 }, { { 1 }, { 3 } }))
  end)

  -- Adam's (and AdamW's) update by hand from the defaults: PyTorch's rule.
  local function adam_by_hand(d, decoupled, p, grads)
    local m, v = 0, 0
    for t, g in ipairs(grads) do
      if decoupled then p = p * (1 - d.lr * d.weight_decay) else g = g + d.weight_decay * p end
      m = d.betas[1] * m + (1 - d.betas[1]) * g
      v = d.betas[2] * v + (1 - d.betas[2]) * g * g
      local mhat, vhat = m / (1 - d.betas[1] ^ t), v / (1 - d.betas[2] ^ t)
      p = p - d.lr * mhat / (math.sqrt(vhat) + d.eps)
    end
    return p
  end

  for _, kind in ipairs { "adam", "adamw" } do
    it(kind .. " without settings steps by the default rate, betas, eps and decay", function()
      local d = D.optimizers[kind]
      -- gradients near eps make eps count; three different ones make both betas count;
      -- a zero gradient leaves only the decay
      local grads = { { 3e-8 }, { -1e-8 }, { 2e-8 }, { 0 } }
      local got = steps({ kind = kind }, { 1 }, grads)
      local flat = {}
      for i, g in ipairs(grads) do flat[i] = g[1] end
      assert.near(adam_by_hand(d, kind == "adamw", 1, flat), got[1], 2e-7)
      assert.same(got, steps(lunet[kind] {}, { 1 }, grads))
    end)
  end

  it("adam and adamw differ by their default decay only", function()
    local a, w = D.optimizers.adam, D.optimizers.adamw
    assert.same({ a.lr, a.betas, a.eps }, { w.lr, w.betas, w.eps })
    assert.are.equal(0, a.weight_decay)
    assert.is_true(w.weight_decay > 0)
  end)

  it("training without a batch takes batch-sized steps (the engine's and net:train's default)", function()
    local net = lunet.models.mnist_cnn()
    local n = D.batch * 2 + 1
    local data = synthetic(n)
    local h = net:_train(data, { optimizer = { kind = "sgd" } }) -- the binding's default
    assert.are.equal(3, h.steps) -- two full batches and one sample
    h = net:train { data = data, quiet = true } -- the module's
    assert.are.equal(3, h.steps)
    assert.are.equal(n, h.samples)
  end)

  it("lunet.mnist normalises with the mean and std of MNIST's training images", function()
    local dir = os.getenv("MNIST_DIR")
    local train = dir and lunet.mnist { dir = dir, split = "train", normalize = "auto" }
    if not train then return pending("MNIST_DIR not set or MNIST missing: real-data spec skipped") end
    local measured = train:_info()
    assert.near(measured.mean, D.mnist.mean, 5e-5)
    assert.near(measured.std, D.mnist.std, 5e-5)
    local test = lunet.mnist { dir = dir, split = "test", n = 1 }
    local raw = lunet.mnist { dir = dir, split = "test", n = 1, normalize = false }
    local x, r = test:image(1):totable(), raw:image(1):totable()
    for i = 1, #x, 97 do assert.near((r[i] - D.mnist.mean) / D.mnist.std, x[i], 1e-5) end
  end)

  it("the limits are the engine's: max_runs and max_threads are the largest accepted", function()
    local net = lunet.models.mnist_cnn()
    assert.matches(("at most %d"):format(D.max_threads),
      err_of(net.train, net, { data = synthetic(4), quiet = true, threads = D.max_threads + 1 }), 1, true)
    assert.matches(("[1, %d]"):format(D.max_threads), err_of(net._threads, net, D.max_threads + 1), 1, true)
    assert.matches(("at most %d"):format(D.max_runs), err_of(lunet.experiment,
      { model = lunet.models.mnist_cnn, data = synthetic(4), runs = D.max_runs + 1, quiet = true, cache = false }),
      1, true)
    assert.matches(("[1, %d]"):format(D.max_runs), err_of(core.runs, { net = net, data = synthetic(4),
      train = { optimizer = { kind = "sgd" } }, runs = D.max_runs + 1 }), 1, true)
  end)
end)
