-- The interactive side of lunet: the `lunet` launcher (bin/lunet) and its REPL, driven
-- non-interactively through a pipe; lunet.help(); and the printed form of every object.
local lfs = require("lfs")
local lunet = require("lunet")
local synthetic = require("synthetic")
local util = require("util")
local shell_quote, write, temp_dir, rm_rf, run, explain =
  util.shell_quote, util.write, util.temp_dir, util.rm_rf, util.run, util.explain

local ROOT = lfs.currentdir()
local LUNET = ROOT .. "/bin/lunet"

-- Runs a shell command with `input` on stdin; returns {code =, out =, err =}.

-- The REPL echoes each line after its prompt "> "; the output of line i sits between
-- the echo of line i and that of line i + 1.
local function session(lines)
  local r = run(shell_quote(LUNET), table.concat(lines, "\n") .. "\n")
  local answers = {}
  local out = r.out
  for i, line in ipairs(lines) do
    local echo = "> " .. line .. "\n"
    local s, e = out:find(echo, 1, true)
    assert(s, ("line %d (%s) not echoed by the REPL:\n%s"):format(i, line, explain(r)))
    local nexts = lines[i + 1] and out:find("> " .. lines[i + 1] .. "\n", e + 1, true) or #out + 1
    answers[i] = out:sub(e + 1, nexts - 1)
    if not lines[i + 1] then answers[i] = answers[i]:gsub("> \n?$", "") end -- the last prompt
    out = out:sub(nexts)
  end
  return r, answers
end

local tmp
setup(function() tmp = temp_dir() end)
teardown(function() if tmp then rm_rf(tmp) end end)

describe("the lunet REPL", function()
  local lines = {
    'net = lunet.sequential{lunet.flatten(), lunet.linear(784, 4), lunet.log_softmax()}',
    'net',
    'ds = dofile("spec/support/synthetic.lua")(64)',
    'ds',
    'h = net:train{data = ds, iterations = 2, quiet = true, optimizer = lunet.sgd{lr = 0.1}}',
    'h',
    'h.loss',
    'h:plot{width = 60, height = 14}',
    'net:evaluate(ds)',
    'net:train{lerning_rate = 1}',
    'res = lunet.experiment{model = function() return lunet.sequential{lunet.flatten(), '
      .. 'lunet.linear(784, 4), lunet.log_softmax()} end, data = ds, runs = 2, iterations = 3, '
      .. 'quiet = true, cache = false}',
    'res',
    'res:plot{width = 60, height = 14}',
    'lunet.help("experiment")',
    'ds:shape()',
    '6 * 7',
  }
  local r, a
  setup(function() r, a = session(lines) end)

  it("starts with lunet loaded and a banner, and ends with status 0 at end of input", function()
    assert.equal(0, r.code, explain(r))
    assert.matches("^Lua 5%.4", r.out)
    assert.matches("lunet %d+%.%d+%.%d+: lunet%.help%(%) lists the API", r.out)
  end)

  it("prints a net as a table of layers", function()
    assert.equal("", a[1])
    assert.matches("net: 3 layers, input 1x28x28", a[2], 1, true)
    assert.matches("linear", a[2], 1, true)
    assert.matches("parameters 3140", a[2], 1, true)
  end)

  it("prints a dataset, a training history, a list and an evaluation", function()
    assert.matches("dataset synthetic: 64 samples of 1x28x28, 4 classes", a[4], 1, true)
    assert.matches("training history: 2 epochs, 2 steps, 128 samples", a[6], 1, true)
    assert.matches("loss [%d.]+ %-> [%d.]+", a[6])
    assert.matches("^{[%d.]+, [%d.]+}\n$", a[7])
    assert.matches("^evaluation: loss [%d.]+, accuracy [%d.]+%%", a[9])
  end)

  it("plots in the terminal", function()
    if not require("lunet.plot").available() then
      pending("gnuplot not installed")
      return
    end
    for _, k in ipairs({ 8, 13 }) do
      assert.matches("%+%-%-%-%-%-%-%-%-%-%-", a[k]) -- the frame of gnuplot's dumb terminal
      assert.matches("loss", a[k], 1, true)
      assert.is_true(select(2, a[k]:gsub("\n", "")) >= 10, a[k])
    end
    assert.matches("epoch", a[8], 1, true)
  end)

  it("reports an error and goes on", function()
    assert.matches("net:train: unknown option 'lerning_rate'", r.err, 1, true)
    assert.equal("42\n", a[16])
  end)

  it("prints an experiment's result with its sparkline, and help", function()
    assert.matches('lunet result "experiment"', a[12], 1, true)
    assert.matches("final:", a[12], 1, true)
    assert.matches("mean:    [▁▂▃▄▅▆▇█]+", a[12])
    assert.matches("lunet.experiment{", a[14], 1, true)
    assert.equal("{1, 28, 28}\n", a[15])
  end)

  it("keeps lunet out of the globals of code that requires it", function()
    local q = util.run_lua('local l = require("lunet"); print(rawget(_G, "lunet"), type(l))')
    assert.equal("nil\ttable\n", q.out, explain(q))
  end)
end)

describe("the lunet launcher", function()
  it("prints its version and usage", function()
    local r = run(shell_quote(LUNET) .. " --version")
    assert.equal(0, r.code, explain(r))
    assert.equal(("lunet %s (engine revision %d, Lua 5.4)\n"):format(lunet.version, lunet.engine_revision), r.out)
    r = run(shell_quote(LUNET) .. " --help")
    assert.equal(0, r.code)
    for _, w in ipairs({ "lunet run FILE", "lunet report", "lunet help", "--version" }) do
      assert.matches(w, r.out, 1, true)
    end
  end)

  it("runs a script with its arguments in `arg` and `...`", function()
    local script = tmp .. "/args.lua"
    write(script, 'local lunet = require("lunet")\nprint(arg[0], #arg, arg[1], arg[2], select("#", ...), ...)\n'
      .. 'print(lunet.version, rawget(_G, "lunet"))\n')
    local r = run(("%s run %s one 'two words'"):format(shell_quote(LUNET), shell_quote(script)))
    assert.equal(0, r.code, explain(r))
    assert.equal(("%s\t2\tone\ttwo words\t2\tone\ttwo words\n%s\tnil\n"):format(script, lunet.version), r.out)
    -- `lunet FILE.lua` is the same
    local r2 = run(("%s %s one 'two words'"):format(shell_quote(LUNET), shell_quote(script)))
    assert.equal(r.out, r2.out)
  end)

  it("finds the module from any directory, also through a symlink", function()
    assert(lfs.link(LUNET, tmp .. "/lunet-link", true))
    local script = tmp .. "/where.lua"
    write(script, 'local l = require("lunet")\nprint(debug.getinfo(l.sequential, "S").source)\n')
    local r = run(("cd %s && ./lunet-link run where.lua"):format(shell_quote(tmp)))
    assert.equal(0, r.code, explain(r))
    assert.equal("@" .. ROOT .. "/bindings/lunet/init.lua\n", r.out)
  end)

  it("reports a missing script, a script error, and unknown commands with status 1", function()
    local r = run(shell_quote(LUNET) .. " run " .. shell_quote(tmp .. "/missing.lua"))
    assert.equal(1, r.code)
    assert.matches("lunet: cannot open .*missing%.lua", r.err)
    write(tmp .. "/boom.lua", 'local function f() error("boom") end\nf()\n')
    r = run(shell_quote(LUNET) .. " run " .. shell_quote(tmp .. "/boom.lua"))
    assert.equal(1, r.code)
    assert.matches("lunet: .*boom%.lua:1: boom\nstack traceback:", r.err)
    assert.not_matches("xpcall", r.err)
    r = run(shell_quote(LUNET) .. " frobnicate")
    assert.equal(1, r.code)
    assert.matches("unknown command 'frobnicate'", r.err, 1, true)
    r = run(shell_quote(LUNET) .. " --frob")
    assert.equal(1, r.code)
    assert.matches("unknown option '--frob'", r.err, 1, true)
    r = run(shell_quote(LUNET) .. " run")
    assert.equal(1, r.code)
    assert.matches("run: missing FILE", r.err, 1, true)
  end)

  it("passes a script's exit status through", function()
    write(tmp .. "/exit3.lua", "os.exit(3)\n")
    assert.equal(3, run(shell_quote(LUNET) .. " run " .. shell_quote(tmp .. "/exit3.lua")).code)
  end)

  it("runs the study's report script (`lunet report --help`)", function()
    local r = run(shell_quote(LUNET) .. " report --help")
    assert.equal(0, r.code, explain(r))
    assert.matches("seed_report", r.out, 1, true)
    assert.matches("--runs N", r.out, 1, true)
  end)

  it("shows help from the command line", function()
    local r = run(shell_quote(LUNET) .. " help net:train")
    assert.equal(0, r.code, explain(r))
    assert.matches('^net:train{data, loss = "nll"', r.out)
    r = run(shell_quote(LUNET) .. " help")
    assert.matches("layers:\n  lunet.conv2d(", r.out, 1, true)
  end)
end)

describe("lunet.help", function()
  local help = require("lunet.help")
  local function text(x) return help.text(lunet, x) end

  it("lists every public function of lunet with one line each", function()
    local listing = text()
    for _, k in ipairs(lunet._lazy_names()) do local _ = lunet[k] end -- loads what loads on first use
    for k, v in pairs(lunet) do
      if type(v) == "function" and k:sub(1, 1) ~= "_" then
        assert.matches("\n  lunet%." .. k .. "[%({ ]", listing, nil, "lunet." .. k .. " missing from lunet.help()")
      end
    end
    for k in pairs(lunet.core.Net.methods) do
      if k:sub(1, 1) ~= "_" and k ~= "use_reference_kernels" then
        assert.matches("\n  net:" .. k .. "[%({ ]", listing, nil, "net:" .. k .. " missing from lunet.help()")
      end
    end
    for k in pairs(lunet.core.Dataset.methods) do
      if k:sub(1, 1) ~= "_" then
        assert.matches("\n  dataset:" .. k .. "[%({ ]", listing, nil, "dataset:" .. k .. " missing from lunet.help()")
      end
    end
    for line in listing:gmatch("[^\n]+") do
      assert.is_true(utf8.len(line) <= 100, "too long: " .. line)
    end
  end)

  it("documents a function given as a value or a name", function()
    local doc = text(lunet.experiment)
    assert.matches("^lunet%.experiment{name = \"experiment\", model, data", doc)
    assert.matches("experiment%.lua:%d+%)", doc)
    assert.equal(doc, text("experiment"))
    assert.equal(doc, text("lunet.experiment"))
    assert.matches("^net:train{", text("net:train"))
    assert.matches("^net:train{", text("Net:train"))
    assert.matches("^net:train{", text(lunet.core.Net.methods.train))
    assert.matches("^lunet%.relu%(%)\nReLU", text(lunet.relu))
    assert.matches("implemented in C", text(lunet.core.Net.methods.forward), 1, true)
    assert.matches("^lunet%.load_result%(path%)", text(lunet.load_result))
    assert.matches("^lunet%.mnist{dir", text(lunet.mnist))
    assert.matches("^lunet%.sgd{lr = 0%.01", text(lunet.sgd { lr = 0.1 }))
    assert.matches("^lunet%.conv2d%(in_channels", text(lunet.conv2d(1, 2, 3)))
    assert.matches("see also: .*result:plot", text("plot"))
    assert.matches("^no documentation for 'frobnicate'", text("frobnicate"))
  end)

  it("lists the methods of an object", function()
    local ds = synthetic(8)
    local net = lunet.sequential { lunet.flatten(), lunet.linear(784, 4), lunet.log_softmax() }
    assert.matches("net:train{", text(net), 1, true)
    assert.matches("net:forward(", text(net), 1, true)
    assert.matches("dataset:subset{", text(ds), 1, true)
    assert.matches("tensor:reshape(", text(ds:image(1)), 1, true)
    local h = net:train { data = ds, quiet = true }
    assert.matches("history:plot(", text(h), 1, true)
  end)

  it("prints through lunet.help", function()
    local r = util.run_lua('require("lunet").help("net:save")')
    assert.matches("^net:save%(path%)", r.out, explain(r))
  end)
end)

describe("printed objects", function()
  local function printed(x)
    local s = tostring(x)
    assert.not_matches("^table: 0x", s)
    assert.not_matches("^userdata: 0x", s)
    assert.not_matches(": 0x%x+$", s)
    return s
  end

  it("have a useful __tostring", function()
    local ds = synthetic(16)
    local net = lunet.sequential { lunet.flatten(), lunet.linear(784, 4), lunet.log_softmax() }
    assert.matches("net: 3 layers", printed(net), 1, true)
    assert.matches("tensor 1x28x28 %[", printed(ds:image(1)))
    assert.matches("dataset synthetic: 16 samples", printed(ds), 1, true)
    assert.matches("per class 0:4 1:4 2:4 3:4", printed(ds), 1, true)
    assert.equal("conv2d(in_channels=1, out_channels=2, kernel=3, stride=1, padding=0, bias=true)",
      printed(lunet.conv2d(1, 2, 3)))
    assert.equal("sgd{lr=0.1, momentum=0.5}", printed(lunet.sgd { lr = 0.1, momentum = 0.5 }))
    assert.matches("^adam{lr=0%.001", printed(lunet.adam {}))
    assert.matches("over 10 parameters, 0 steps", printed(lunet.optimizer(lunet.sgd {}, 10)), 1, true)
    local h = net:train { data = ds, iterations = 2, quiet = true }
    assert.matches("^training history: 2 epochs, 2 steps, 32 samples", printed(h))
    assert.equal("epoch", h.unit)
    assert.matches("^evaluation: loss [%d.]+, accuracy [%d.]+%%$", printed(net:evaluate(ds)))
    assert.matches("^lunet %d+%.%d+%.%d+: lunet.help%(%) lists the API$", printed(lunet))
    local res = lunet.experiment { model = function() return net:clone() end, data = ds, runs = 2,
      iterations = 3, quiet = true, cache = false }
    local s = printed(res)
    assert.matches("final:", s, 1, true)
    assert.matches("mean:    [▁▂▃▄▅▆▇█]+", s)
    local sw = lunet.sweep { base = { model = function() return net:clone() end, data = ds, runs = 1,
      iterations = 1, quiet = true, cache = false }, grid = { lr = { 0.01, 0.1 }, momentum = { 0, 0.5 } } }
    assert.matches("sweep sweep: 4 cells over lr x momentum", printed(sw), 1, true)
  end)

  it("shows plain tables inline in the REPL's print", function()
    local help = require("lunet.help")
    assert.equal("{1, 28, 28}", help.repr({ 1, 28, 28 }))
    assert.equal('{accuracy = 0.5, loss = 1.25, name = "x", nested = {1, {2}}}',
      help.repr({ loss = 1.25, accuracy = 0.5, name = "x", nested = { 1, { 2 } } }))
    local long = {}
    for i = 1, 40 do long[i] = i end
    assert.equal("{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ..., 39, 40} (40 items)", help.repr(long))
    assert.equal("{x = {y = {z = {...}}}}", help.repr({ x = { y = { z = { 1 } } } }))
    local got
    local p = help.repl_print(function(...) got = table.pack(...) end)
    p({ 1 }, "s", nil, 2.5)
    assert.same({ "{1}", "s", nil, 2.5, n = 4 }, got)
  end)
end)
