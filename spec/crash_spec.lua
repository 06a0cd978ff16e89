-- No Lua code can crash lunet (issue 14): objects in use cannot be freed, and every
-- entry point checks what it is given. Each case runs in its own lua5.4 process, so a
-- crash fails the case instead of ending busted; under tools/sanitize.sh the child is
-- the sanitized interpreter and module too (PATH and LUA_CPATH_5_4 are inherited), so
-- a use-after-free fails the case even when it does not crash.
--
-- A child prints "SURVIVED" as its last line once every check in it passed; a failed
-- check raises (exit 1), a crash ends it with a signal.
local util = require("util")

local PRELUDE = [[
io.stdout:setvbuf("no")
local lunet = require("lunet")
local core = lunet.core
local function small_net()
  return lunet.sequential { lunet.conv2d(1, 2, 5), lunet.maxpool2d(4), lunet.relu(), lunet.flatten(),
    lunet.linear(72, 4), lunet.log_softmax(), input = { 1, 28, 28 }, seed = 1 }
end
local function small_data(n)
  local labels = {}
  for i = 1, n do labels[i] = (i - 1) % 4 end
  return lunet.dataset(core.tensor({ n, 1, 28, 28 }), labels)
end
-- expects f(...) to raise an error containing `want` (plain text); returns the message
local function raises(want, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error containing: " .. want)
  err = tostring(err)
  assert(err:find(want, 1, true), ("error %q does not contain %q"):format(err, want))
  return err
end
]]

local function child(program)
  local r = util.run(util.LUA .. " -", PRELUDE .. program .. "\nprint('SURVIVED')\n")
  assert(r.code == 0 and r.out:find("SURVIVED\n$"), util.explain(r))
  return r
end

describe("no Lua code crashes lunet", function()
  it("1. metamethods and methods check self: Tensor.__index(1/0, '') and friends raise", function()
    child [[
      local n = small_net()
      local h = n:train { data = small_data(8), batch = 4, quiet = true }
      local wrong = { 1 / 0, "", {}, h, small_data(4), n, core.tensor({ 2 }), true, print,
        coroutine.create(print) }
      local calls = 0
      for _, class in ipairs({ "Tensor", "Dataset", "Net", "Optimizer" }) do
        local mt = core[class]
        local fns = {}
        for k, v in pairs(mt) do if type(v) == "function" then fns[class .. "." .. k] = v end end
        for k, v in pairs(mt.methods) do fns[class .. ":" .. k] = v end
        for name, f in pairs(fns) do
          for _, self in ipairs(wrong) do
            if getmetatable(self) ~= mt then
              local ok, err = pcall(f, self, "")
              calls = calls + 1
              assert(not ok, name .. " accepted a wrong self")
              assert(type(err) == "string" and not err:find("attempt to", 1, true)
                and (err:find("expected", 1, true) or err:find("must be called on", 1, true)),
                name .. ": " .. tostring(err))
            end
          end
        end
      end
      raises("lunet.Tensor expected, got number", core.Tensor.__index, 1 / 0, "")
      assert(calls > 300, calls)
    ]]
  end)

  it("2. net:free() in net:train's progress callback is refused; the error comes out of net:train", function()
    local r = child [[
      local n = small_net()
      local err = raises("net is in use by net:train", n.train, n,
        { data = small_data(16), batch = 4, iterations = 2, quiet = true, progress = function() n:free() end })
      assert(err:find("net:train: progress callback failed", 1, true), err)
      assert(err:find("stack traceback", 1, true), err) -- the callback's traceback
      assert(n:forward(core.tensor({ 1, 1, 28, 28 })):numel() == 4) -- the net still works
      n:free()
      raises("net has been freed", n.forward, n, core.tensor({ 1, 1, 28, 28 }))
    ]]
    assert.equal("", r.err)
  end)

  it("a second net:train (or net:init) of the same net inside its progress callback is refused", function()
    -- found by tools/lua_fuzz.lua under ASan: the inner call replaced the training state
    -- (the epoch's order of 12 samples) under the outer one, which read sample 9 of 8
    local r = child [[
      local n = small_net()
      local inner = small_data(12)
      local err = raises("net is in use by net:train", n.train, n,
        { data = small_data(8), batch = 4, iterations = 2, quiet = true,
          progress = function() n:train { data = inner, batch = 4, iterations = 1, quiet = true } end })
      assert(err:find("a second net:train", 1, true), err)
      raises("net is in use by net:train", n.train, n,
        { data = small_data(8), batch = 4, iterations = 2, quiet = true, progress = function() n:init(3) end })
      -- fresh = true would release the state in use: refused as any inner net:train
      raises("a second net:train", n.train, n, { data = small_data(8), batch = 4, iterations = 2, quiet = true,
        progress = function() n:train { data = inner, batch = 4, iterations = 1, quiet = true, fresh = true } end })
      -- what leaves the training state alone stays allowed inside the callback
      local calls = 0
      local h0 = n:train { data = small_data(8), batch = 4, iterations = 2, quiet = true, progress = function()
        assert(n:forward(core.tensor({ 1, 1, 28, 28 })):numel() == 4)
        assert(n:evaluate(inner) ~= nil)
        n:set(1, "bias", n:get(1, "bias"))
        calls = calls + 1
      end }
      assert(#h0.loss == 2 and calls == 2, calls)
      -- afterwards both work again
      n:init(3)
      local h = n:train { data = inner, batch = 4, iterations = 1, quiet = true }
      assert(#h.loss == 1)
    ]]
    assert.equal("", r.err)
  end)

  it("3. dataset:free() in the callback is refused; the data stays intact", function()
    child [[
      local n, d = small_net(), small_data(16)
      raises("dataset is in use by net:train", n.train, n,
        { data = d, batch = 4, iterations = 2, quiet = true, progress = function() d:free() end })
      for i = 1, 16 do assert(d:label(i) == (i - 1) % 4) end
      d:free()
      raises("dataset has been freed", d.label, d, 1)
    ]]
  end)

  it("4. a shape whose metamethods free the tensor: tensor:reshape reads the shape first", function()
    child [[
      local t = lunet.zeros { 4 }
      local shape = setmetatable({}, { __len = function() return 1 end,
        __index = function() t:free() return 4 end })
      raises("tensor has been freed", t.reshape, t, shape)
      raises("tensor has been freed", t.numel, t)
      local u = lunet.tensor({ 1, 2, 3, 4 }, { 4 })
      shape = setmetatable({}, { __len = function() return 2 end, __index = function() collectgarbage() return 2 end })
      local r = u:reshape(shape)
      assert(r:get(4) == 4 and r:shape()[1] == 2 and r:shape()[2] == 2)
    ]]
  end)

  it("5. a training configuration whose __index frees the net", function()
    child [[
      local n, d = small_net(), small_data(8)
      local cfg = setmetatable({ optimizer = { kind = "sgd" } }, { __index = function(_, k)
        n:free()
        d:free()
        return nil
      end })
      raises("is in use by net:train", n._train, n, d, cfg)
      assert(n:param_count() > 0 and d:size() == 8)
      -- options read through __index are kept alive while they are used
      local strings = setmetatable({ optimizer = { kind = "sgd" } }, { __index = function(_, k)
        if k == "loss" then return ("nll"):rep(1) end
        if k == "unit" then collectgarbage() return "step" end
      end })
      local h = n:_train(d, strings)
      assert(h.iterations == 1)
    ]]
  end)

  it("lunet.core.exec keeps every argv string until it runs (an __index that collects cannot take one)", function()
    local r = child [[
      local argv = setmetatable({}, { __len = function() return 3 end, __index = function(_, i)
        if i == 1 then return ("/nonexistent/prog"):rep(1) .. "A" end -- a new string, in no table
        collectgarbage()
        collectgarbage()
        return ("B"):rep(17 + i)
      end })
      local ok, err = core.exec(argv)
      assert(ok == nil and err:find("cannot run /nonexistent/progA:", 1, true), err)
      raises("without NUL bytes", core.exec, { "/bin/true\0x" })
    ]]
    assert.equal("", r.err)
  end)

  it("6. net:set with a value list whose metamethods free the net: an error, not a silent write", function()
    child [[
      local n = small_net()
      local values = setmetatable({}, { __len = function() return 2 end,
        __index = function() n:free() return 0 end })
      raises("net has been freed", n.set, n, 1, "bias", values)
      -- the values are read before the net is written: a failing list changes nothing
      local m = small_net()
      local before = m:get(1, "bias"):totable()
      raises("is not a number", m.set, m, 1, "bias", setmetatable({}, { __len = function() return 2 end,
        __index = function(_, i) return i == 1 and 7 or "x" end }))
      assert(table.concat(m:get(1, "bias"):totable(), " ") == table.concat(before, " "))
      m:set(1, "bias", setmetatable({}, { __len = function() return 2 end, __index = function() return 0.5 end }))
      assert(table.concat(m:get(1, "bias"):totable(), " ") == "0.5 0.5")
    ]]
  end)

  it("7. lunet.core.runs: freeing the net or the data in the callback is refused, workers joined first", function()
    child [[
      local n, d = small_net(), small_data(64)
      local function runs(progress)
        return core.runs { net = n, data = d, runs = 4, threads = 2, progress = progress,
          train = { optimizer = { kind = "sgd", lr = 0.01 }, batch = 4, iterations = 3, unit = "step" } }
      end
      local err = raises("net is in use by lunet.core.runs", runs, function() n:free() end)
      assert(err:find("lunet.core.runs: progress callback failed", 1, true), err)
      raises("dataset is in use by lunet.core.runs", runs, function() d:free() end)
      -- the net is shared with the workers: nothing may change it meanwhile
      raises("net is in use by lunet.core.runs", runs, function() n:init(3) end)
      raises("net is in use by lunet.core.runs", runs, function() n:train { data = d, quiet = true } end)
      -- reading it is fine, and afterwards everything works
      local list = runs(function() assert(n:layer_count() == 6) end)
      assert(#list == 4 and list[4].done)
      n:free()
      d:free()
    ]]
  end)

  it("callback errors stop the work and come out with message and traceback; true stops; yields are refused", function()
    child [[
      local n, d = small_net(), small_data(16)
      local calls = 0
      local err = raises("boom", n.train, n, { data = d, batch = 4, iterations = 50, quiet = true,
        progress = function() calls = calls + 1 error("boom") end })
      assert(calls == 1, calls) -- stopped at the first error
      assert(err:find("stack traceback", 1, true), err)
      -- an error object other than a string comes out unchanged
      local obj = {}
      local ok, e = pcall(n.train, n, { data = d, quiet = true, progress = function() error(obj) end })
      assert(not ok and e == obj)
      -- returning true stops training, the finished iterations are kept
      local h = n:train { data = d, batch = 4, iterations = 50, quiet = true,
        progress = function(p) return p.iteration == 3 end }
      assert(h.iterations == 3 and h.interrupted)
      -- a yield inside the callback is an error that says so
      local co = coroutine.wrap(function()
        return n:train { data = d, quiet = true, progress = function() coroutine.yield() end }
      end)
      raises("cannot yield", co)
      -- lunet.core.runs: same, and returning true stops the runs (reported as interrupted)
      local function runs(progress, iterations)
        return core.runs { net = n, data = d, runs = 3, threads = 2, progress = progress,
          train = { optimizer = { kind = "sgd" }, batch = 4, iterations = iterations, unit = "step" } }
      end
      err = raises("runs boom", runs, function() error("runs boom") end, 200000)
      assert(err:find("stack traceback", 1, true), err)
      local list, interrupted = runs(function() return true end, 200000)
      assert(interrupted and #list == 3)
    ]]
  end)

  it("lunet.experiment: an error in the progress display stops the runs, keeps the finished ones", function()
    local dir = util.temp_dir()
    finally(function() util.rm_rf(dir) end)
    child(([[
      local Progress = require("lunet.progress")
      local update = Progress.update
      Progress.update = function(self, fields)
        if fields.runs_done >= 1 then error("display broke") end
        return update(self, fields)
      end
      local opts = { name = "e", model = small_net, data = small_data(32), runs = 4, threads = 1, batch = 4,
        iterations = 3000, unit = "step", quiet = true, out = %q }
      local err = raises("the progress display failed", lunet.experiment, opts)
      assert(err:find("display broke", 1, true) and err:find("stack traceback", 1, true), err)
      Progress.update = update
      local res = lunet.experiment(opts)
      local cached = res.provenance.runs_cached
      assert(cached >= 1 and cached < 4, cached)
    ]]):format(dir))
  end)

  it("finalizers that free objects during a method's allocations are refused or harmless", function()
    child [[
      local n, t, d = small_net(), core.tensor({ 3, 1, 28, 28 }), small_data(8)
      local function bomb(obj)
        for _ = 1, 50 do setmetatable({}, { __gc = function() pcall(obj.free, obj) end }) end
      end
      for round = 1, 30 do
        bomb(n); bomb(t); bomb(d)
        pcall(n.forward, n, t)
        pcall(n.layer, n, 1)
        pcall(n.get, n, 1, "weight")
        pcall(t.clone, t)
        pcall(t.totable, t)
        pcall(tostring, t)
        pcall(d.image, d, 1)
        pcall(d.checksum, d)
        pcall(d.shape, d)
        if round % 10 == 0 then n, t, d = small_net(), core.tensor({ 3, 1, 28, 28 }), small_data(8) end
      end
      collectgarbage()
    ]]
  end)

  it("a coroutine that dies inside net:train releases its pins when closed or collected", function()
    child [[
      local n, d = small_net(), small_data(8)
      local co = coroutine.create(function()
        n:train { data = d, quiet = true, progress = function() error("stop here") end }
      end)
      local ok = coroutine.resume(co)
      assert(not ok)
      -- as Lua's own to-be-closed variables, the pins of a dead coroutine's calls
      -- are released by coroutine.close (or when the coroutine is collected)
      raises("net is in use by net:train", n.free, n)
      coroutine.close(co)
      n:free()
      d:free()
      -- a dead coroutine never closed: its pins go when the collector takes it
      local n2, d2 = small_net(), small_data(8)
      local dropped = coroutine.create(function()
        n2:train { data = d2, quiet = true, progress = function() error("stop here") end }
      end)
      assert(not coroutine.resume(dropped))
      raises("net is in use by net:train", n2.free, n2)
      raises("dataset is in use by net:train", d2.free, d2)
      dropped = nil
      collectgarbage()
      collectgarbage()
      n2:free()
      d2:free()
      -- a yield from a metamethod inside a C call is refused: the coroutine dies, no crash
      local t = core.tensor({ 1 })
      local dead = coroutine.create(function()
        t:reshape(setmetatable({}, { __len = function() return 1 end,
          __index = function() coroutine.yield() end }))
      end)
      local ok, e = coroutine.resume(dead)
      assert(not ok and tostring(e):find("yield across a C-call boundary", 1, true), tostring(e))
      assert(coroutine.status(dead) == "dead")
      t:free()
    ]]
  end)

  it("core.tensor(shape) does not read the new tensor back into itself", function()
    child [[
      local reads = 0
      local index = core.Tensor.__index
      core.Tensor.__index = function(...) reads = reads + 1 return index(...) end
      local t = core.tensor({ 1000 })
      core.Tensor.__index = index
      assert(reads == 0, reads)
      assert(t:get(1000) == 0)
    ]]
  end)

  it("paths with a NUL byte are refused; loading a directory says so", function()
    local dir = util.temp_dir()
    finally(function() util.rm_rf(dir) end)
    child(([[
      local dir = %q
      local n = small_net()
      raises("path contains a NUL byte", n.save, n, dir .. "/a\0.lnet")
      assert(io.open(dir .. "/a") == nil, "a file named 'a' was written")
      raises("path contains a NUL byte", lunet.load, dir .. "/a\0b")
      raises("path contains a NUL byte", lunet.idx_read, dir .. "/a\0b")
      local net, msg = lunet.load(dir)
      assert(net == nil and msg:find("is a directory", 1, true), msg)
    ]]):format(dir))
  end)

  it("a gzip bomb is refused without growing memory past the IDX limit", function()
    local dir = util.temp_dir()
    finally(function() util.rm_rf(dir) end)
    -- 1100 members of 1 MiB of zeros: 1.1 GiB decoded from about 1 MB
    local r = util.run("head -c 1048576 /dev/zero | gzip -9 > " .. dir .. "/one.gz")
    assert(r.code == 0, util.explain(r))
    local one = assert(io.open(dir .. "/one.gz", "rb")):read("a")
    util.write(dir .. "/bomb.gz", one:rep(1100))
    child(([[
      local st, msg = lunet.idx_read(%q)
      assert(st == nil and msg:find("exceeds the limit", 1, true), msg)
      local peak = tonumber(io.open("/proc/self/status"):read("a"):match("VmHWM:%%s*(%%d+)"))
      assert(peak < 400 * 1024, ("peak resident memory %%d kB"):format(peak))
    ]]):format(dir .. "/bomb.gz"))
  end)
end)
