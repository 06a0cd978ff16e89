-- tools/lua_fuzz.lua - random Lua programs against lunet: no Lua program may crash it.
--
--   bin/lunet run tools/lua_fuzz.lua [seconds=60] [first_seed=the clock's seconds]
--       runs batches of generated programs in child processes (bin/lunet run, so the
--       `lua5.4` on PATH and the module of LUNET_BUILD: under tools/sanitize.sh the
--       sanitized interpreter and module) until the time
--       is up; prints the programs run and the crashes found; exits 1 on any crash,
--       sanitizer report or hang. A failing program is written to
--       build/fuzz/artifacts/lua-<seed>.lua, which `bin/lunet run <file>` replays.
--   bin/lunet run tools/lua_fuzz.lua --print SEED   prints program SEED
--   bin/lunet run tools/lua_fuzz.lua --batch SEED COUNT   (internal) runs COUNT programs
--
-- A program is a seeded sequence of operations from a small op language over 6
-- slots, each holding a net, a dataset, a tensor, an optimizer or anything else:
-- constructors, every method (called through the raw metatables too, so slots of the
-- wrong class are wrong selves), :free() and __close, lunet.core.runs and net:train
-- with progress callbacks that run nested operations (free the objects in use, raise,
-- yield, return true), argument tables whose __len/__index run operations, and
-- garbage whose __gc runs operations. Every operation is called under pcall: errors
-- are fine, only the process dying (or a sanitizer report) is a failure.
local mode = arg[1]

-- ------------------------------------------------------------ generator

local function generator(seed)
  local s = seed * 2654435761 % 4294967296 + 1
  local function rand(n) -- 1..n
    s = (s * 1103515245 + 12345) % 2147483648
    return s % n + 1
  end
  local function pick(list) return list[rand(#list)] end
  -- slots 1 and 4 mostly hold nets, 2 and 5 datasets, 3 tensors, 6 optimizers: the
  -- operations mostly pick a slot of the right kind, sometimes any slot
  local function slot() return rand(6) end
  local function typed(a, b) return function() local r = rand(5) return r <= 2 and a or r <= 4 and b or rand(6) end end
  local netslot, dataslot, tslot = typed(1, 4), typed(2, 5), typed(3, 3)

  local op -- forward: op(depth) -> a line of Lua
  local function body(depth, n)
    local lines = {}
    for _ = 1, n do lines[#lines + 1] = op(depth + 1) end
    return table.concat(lines, " ")
  end
  -- a callback: nested operations, then one of the endings
  local function callback(depth)
    local ending = pick({ "", "", "", "return true", "error('cb error')", "error({})",
      "coroutine.yield()", "return 1" })
    return ("function() %s %s end"):format(depth < 2 and body(depth, rand(3)) or "", ending)
  end
  -- a table argument whose metamethods run operations
  local function hostile(depth, len, value)
    if depth >= 2 or rand(3) == 1 then return ("L(%d, %s)"):format(len, value) end
    return ("H(%d, %s, %s)"):format(len, value, callback(depth))
  end

  local ops = {
    function() return ("S[%d] = net(%d)"):format(netslot(), rand(3)) end,
    function() return ("S[%d] = data(%d)"):format(dataslot(), pick({ 4, 8, 12 })) end,
    function() return ("S[%d] = tensor(%d)"):format(tslot(), rand(4)) end,
    function() return ("S[%d] = optim(%d)"):format(typed(6, 6)(), pick({ 4, 68, 6 })) end,
    function() return ("S[%d] = S[%d]"):format(slot(), slot()) end,
    function() return ("S[%d] = %s"):format(slot(), pick({ "nil", "1/0", "'x'", "{}", "true" })) end,
    function() return ("R(free, %d)"):format(slot()) end,
    function() return ("R(close, %d)"):format(slot()) end,
    function(d) return ("R(train, %d, %d, %d, %s)"):format(netslot(), dataslot(), rand(3), callback(d)) end,
    function(d) return ("R(train_raw, %d, %d, %s, %s)"):format(netslot(), dataslot(), hostile(d, 0, "nil"), callback(d)) end,
    function(d) return ("R(runs, %d, %d, %d, %s)"):format(netslot(), dataslot(), dataslot(), callback(d)) end,
    function() return ("R(forward, %d, %d)"):format(netslot(), tslot()) end,
    function() return ("R(backward, %d, %d)"):format(netslot(), tslot()) end,
    function() return ("R(evaluate, %d, %d)"):format(netslot(), dataslot()) end,
    function(d) return ("R(set, %d, %d, %s)"):format(netslot(), rand(2), hostile(d, pick({ 2, 4, 50 }), "0.5")) end,
    function() return ("R(set_tensor, %d, %d, %d)"):format(netslot(), rand(2), tslot()) end,
    function() return ("R(get, %d, %d)"):format(netslot(), rand(2)) end,
    function(d) return ("R(reshape, %d, %s)"):format(tslot(), hostile(d, pick({ 1, 2 }), pick({ "2", "1", "4" }))) end,
    function(d) return ("R(tensor_from, %s)"):format(hostile(d, 4, "1.5")) end,
    function(d) return ("R(dataset_from, %d, %s)"):format(tslot(), hostile(d, pick({ 1, 2, 4 }), "1")) end,
    function() return ("R(method, %d, %d, %d)"):format(slot(), rand(64), slot()) end,
    function() return ("R(loss, %d, %d)"):format(tslot(), tslot()) end,
    function() return ("R(step, %d, %d, %d)"):format(typed(6, 6)(), tslot(), tslot()) end,
    function() return ("R(save_load, %d)"):format(netslot()) end,
    function(d) return ("R(garbage, %s)"):format(callback(d)) end,
    function() return ("R(gc, %d)"):format(rand(3)) end,
    function(d) return ("R(co, %s, %s)"):format(callback(d), pick({ "true", "false" })) end,
  }
  op = function(depth)
    local i = rand(#ops)
    if depth >= 2 and (i == 9 or i == 10 or i == 11) then i = rand(8) end -- no deep training
    return ops[i](depth)
  end
  local lines = { "local S = {}", ("S[1] = net(%d) S[2] = data(8) S[3] = tensor(%d) S[4] = net(%d)"):format(
    rand(3), rand(4), rand(3)), "S[5] = data(12) S[6] = optim(68)" }
  for _ = 1, 20 + rand(30) do lines[#lines + 1] = op(0) end
  return table.concat(lines, "\n") .. "\n"
end

-- ------------------------------------------------------------ runtime

-- The environment the programs run in: helpers over the slots S.
local function runtime()
  local lunet = require("lunet")
  local core = lunet.core
  local env = setmetatable({}, { __index = _G })
  local nets = {
    function() return lunet.sequential { lunet.flatten(), lunet.linear(16, 4), lunet.log_softmax(), input = { 1, 4, 4 } } end,
    function()
      return lunet.sequential { lunet.conv2d(1, 2, 3), lunet.relu(), lunet.flatten(), lunet.linear(8, 4),
        lunet.log_softmax(), input = { 1, 4, 4 } }
    end,
    function()
      return lunet.sequential { lunet.flatten(), lunet.linear(16, 4), lunet.dropout(0.5), lunet.log_softmax(),
        input = { 1, 4, 4 } }
    end,
  }
  local shapes = { { 2, 1, 4, 4 }, { 4 }, { 8, 1, 4, 4 }, { 2, 4 } }
  function env.net(k) return nets[k]() end
  function env.data(n)
    local labels = {}
    for i = 1, n do labels[i] = (i - 1) % 4 end
    local t = core.tensor({ n, 1, 4, 4 })
    for i = 1, n * 16, 7 do t:set(i, (i % 5) / 5) end
    return lunet.dataset(t, labels)
  end
  function env.tensor(k) return core.tensor(shapes[k]) end
  function env.optim(n) return core.optimizer({ kind = "sgd", lr = 0.1 }, n) end
  -- plain and hostile list arguments
  function env.L(len, v)
    local t = {}
    for i = 1, len do t[i] = v end
    return t
  end
  function env.H(len, v, f)
    return setmetatable({}, { __len = function() pcall(f) return len end,
      __index = function(_, k) pcall(f) if math.type(k) == "integer" and k <= len then return v end end })
  end
  function env.R(f, ...) return pcall(f, ...) end
  local S
  function env.bind(slots)
    S = slots
    env.S = slots
  end
  local function obj(i) return S[i] end
  function env.free(i) return obj(i):free() end
  function env.close(i)
    local mt = getmetatable(obj(i))
    return mt.__close(obj(i))
  end
  local function train_cfg(iters)
    return { loss = "nll", optimizer = { kind = "sgd", lr = 0.05 }, batch = 4, iterations = iters, unit = "step" }
  end
  function env.train(a, b, iters, cb)
    return obj(a):train { data = obj(b), batch = 4, iterations = iters, unit = "step", quiet = true, progress = cb }
  end
  function env.train_raw(a, b, cfg, cb)
    local c = train_cfg(2)
    if type(cfg) == "table" then setmetatable(c, { __index = function(_, k) return cfg[k] end }) end
    c.iterations = nil -- read through __index, which runs the hostile table's operations
    return core.Net.methods._train(obj(a), obj(b), c, cb)
  end
  function env.runs(a, b, c, cb)
    return core.runs { net = obj(a), data = obj(b), test = obj(c), runs = 2, threads = 2, train = train_cfg(3),
      progress = cb }
  end
  function env.forward(a, b) return core.Net.methods.forward(obj(a), obj(b), true, 1) end
  function env.backward(a, b) return core.Net.methods.backward(obj(a), obj(b)) end
  function env.evaluate(a, b) return core.Net.methods._evaluate(obj(a), obj(b), "nll", 3) end
  function env.set(a, layer, list) return core.Net.methods.set(obj(a), layer, "bias", list) end
  function env.set_tensor(a, layer, b) return core.Net.methods.set(obj(a), layer, "bias", obj(b)) end
  function env.get(a, layer) return core.Net.methods.get(obj(a), layer, "weight") end
  function env.reshape(a, shape) return core.Tensor.methods.reshape(obj(a), shape) end
  function env.tensor_from(list) return core.tensor({ 4 }, list) end
  function env.dataset_from(a, labels) return core.dataset_from(obj(a), labels) end
  -- any function of any class's metatable or methods, on any slot (wrong selves too)
  local all = {}
  for _, class in ipairs({ "Tensor", "Dataset", "Net", "Optimizer" }) do
    for _, t in ipairs({ core[class], core[class].methods }) do
      local names = {}
      for k, v in pairs(t) do if type(v) == "function" then names[#names + 1] = k end end
      table.sort(names)
      for _, k in ipairs(names) do
        -- not the engine-wide test hook, nor blocking calls
        if k ~= "_train" then all[#all + 1] = t[k] end
      end
    end
  end
  function env.method(a, k, b) return all[(k - 1) % #all + 1](obj(a), obj(b), 1) end
  function env.loss(a, b) return core.loss("nll", obj(a), { 0, 1 }, obj(b)) end
  function env.step(a, b, c) return core.Optimizer.methods.step(obj(a), obj(b), obj(c)) end
  local tmp = os.tmpname()
  function env.save_load(a)
    local ok = core.Net.methods.save(obj(a), tmp)
    if ok then S[a] = lunet.load(tmp) end
    os.remove(tmp)
  end
  function env.garbage(f)
    for _ = 1, 3 do setmetatable({}, { __gc = function() pcall(f) end }) end
  end
  function env.gc(k)
    if k == 1 then collectgarbage() else collectgarbage("step", k * 10) end
  end
  function env.co(f, close)
    local co = coroutine.create(function()
      local t = core.tensor({ 1 })
      -- a C call whose argument's metamethod runs f, which may yield (refused) or raise
      t:reshape(setmetatable({}, { __len = function() f() coroutine.yield() return 1 end }))
    end)
    coroutine.resume(co)
    if close then coroutine.close(co) end -- else left to the collector
  end
  return env
end

-- ------------------------------------------------------------ modes

if mode == "--print" then
  io.write(generator(tonumber(arg[2])))
  os.exit(0)
end

if mode == "--batch" then
  local first, count = tonumber(arg[2]), tonumber(arg[3])
  io.stdout:setvbuf("no")
  local env = runtime()
  for seed = first, first + count - 1 do
    io.stdout:write("start ", seed, "\n")
    local S = {}
    env.bind(S)
    local src = generator(seed):gsub("^local S = {}\n", "")
    local chunk = assert(load(src, "=program " .. seed, "t", env))
    pcall(chunk)
    for i = 1, 6 do S[i] = nil end
    collectgarbage()
  end
  io.stdout:write("done\n")
  os.exit(0)
end

-- the driver
local seconds = tonumber(mode or "") or 60
local seed = tonumber(arg[2] or "") or os.time() % 100000000 -- new programs every run
local first_seed = seed
local BATCH = 25
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local artifacts = "build/fuzz/artifacts"
os.execute("mkdir -p " .. artifacts)
local deadline = os.time() + seconds
local programs, batches, crashes = 0, 0, 0
local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
while os.time() < deadline do
  local out, err = os.tmpname(), os.tmpname()
  local cmd = ("timeout 120 %s run %s --batch %d %d >%s 2>%s"):format(sh_quote(here .. "/../bin/lunet"),
    sh_quote(here .. "/lua_fuzz.lua"), seed, BATCH, out, err)
  local ok = os.execute(cmd)
  local log = io.open(out):read("a")
  local errors = io.open(err):read("a")
  os.remove(out)
  os.remove(err)
  local last = tonumber(log:match("start (%d+)\n[^\n]*$") or log:match("start (%d+)%s*$") or "")
  local report = errors:match("ERROR: %w+Sanitizer") or errors:match("runtime error:")
  batches = batches + 1
  if ok and log:find("done\n$") and not report then
    programs = programs + BATCH
    seed = seed + BATCH
  else
    crashes = crashes + 1
    local bad = last or seed
    programs = programs + (bad - seed + 1)
    local file = ("%s/lua-%d.lua"):format(artifacts, bad)
    local f = assert(io.open(file, "w"))
    f:write("-- lua_fuzz program ", bad, " (replay: bin/lunet run ", file, " from the repository root)\n",
      ("arg = { [0] = 'tools/lua_fuzz.lua', '--batch', '%d', '1' }\ndofile('tools/lua_fuzz.lua')\n"):format(bad),
      "--[[ the program:\n", generator(bad), "]]\n")
    f:close()
    io.stderr:write(("lua_fuzz: program %d failed; written to %s\n%s\n"):format(bad, file,
      errors:sub(1, 3000)))
    seed = bad + 1
  end
end
print(("lua_fuzz: %d programs (seeds %d to %d) in %d batches, %d s, %d crashes"):format(programs, first_seed,
  seed - 1, batches, seconds, crashes))
os.exit(crashes == 0 and 0 or 1)
