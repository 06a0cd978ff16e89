local Progress = require("lunet.progress")

-- A stream that records what is written to it.
local function sink()
  local s = { parts = {} }
  function s.write(self, ...)
    for _, p in ipairs({ ... }) do
      self.parts[#self.parts + 1] = tostring(p)
    end
    return self
  end
  function s.flush() end
  function s.text(self)
    return table.concat(self.parts)
  end
  return s
end

describe("lunet.progress", function()
  it("formats durations", function()
    assert.are.equal("0s", Progress.format_duration(0))
    assert.are.equal("42s", Progress.format_duration(42.2))
    assert.are.equal("1m05s", Progress.format_duration(65))
    assert.are.equal("59m59s", Progress.format_duration(3599))
    assert.are.equal("2h03m09s", Progress.format_duration(7389))
    assert.are.equal("?", Progress.format_duration(0 / 0))
    assert.are.equal("?", Progress.format_duration(math.huge))
  end)

  it("draws one line with runs, percent, loss, rate and ETA", function()
    local out = sink()
    local p = Progress.new({ total_runs = 4, total_iterations = 100, stream = out, enabled = true })
    assert.is_true(p:update({ runs_done = 1, iterations_done = 100, loss = 0.123456,
      samples_per_second = 12345, seconds = 65 }))
    local text = out:text()
    -- 100 of 400 iterations in 65 s -> 195 s left
    assert.are.equal("\rruns 1/4   25%  loss 0.1235  12.3k samples/s  ETA 3m15s\27[K", text)
    assert.is_nil(text:find("\n"))
  end)

  it("throttles redraws to ten per second", function()
    local out = sink()
    local p = Progress.new({ total_runs = 1, total_iterations = 1000, stream = out })
    local drawn = 0
    -- 1000 updates over 2 seconds -> one redraw per 0.1 s
    for i = 1, 1000 do
      if p:update({ iterations_done = i, seconds = (i - 1) * 0.002, loss = 1 / i }) then
        drawn = drawn + 1
      end
    end
    assert.is_true(drawn >= 19 and drawn <= 21, "drew " .. drawn .. " times")
    local count = select(2, out:text():gsub("\r", ""))
    assert.are.equal(drawn, count)
  end)

  it("uses the injected clock when no seconds are given", function()
    local out = sink()
    local t = 0
    local p = Progress.new({ total_runs = 2, stream = out, now = function() return t end })
    assert.is_true(p:update({ runs_done = 0 }))
    t = 0.05
    assert.is_false(p:update({ runs_done = 1 }))
    t = 0.2
    assert.is_true(p:update({}))
    -- skipped fields are remembered
    assert.matches("runs 1/2   50%", out:text(), 1, true)
  end)

  it("keeps earlier fields and finishes with a newline", function()
    local out = sink()
    local p = Progress.new({ total_runs = 3, total_iterations = 10, stream = out })
    p:update({ runs_done = 3, iterations_done = 30, loss = 0.5, seconds = 9 })
    p:finish()
    local text = out:text()
    local final = "\rruns 3/3  100%  loss 0.5  ETA 0s\27[K\n"
    assert.are.equal(final, text:sub(-#final))
    assert.are.equal(2, select(2, text:gsub("\r", ""))) -- the update, then finish
    out.parts = {}
    p:finish("done: 3 runs in 9s")
    assert.are.equal("\rdone: 3 runs in 9s\27[K\n", out:text())
  end)

  it("clamps the fraction and omits unknown pieces", function()
    local out = sink()
    local p = Progress.new({ total_runs = 2, total_iterations = 10, stream = out })
    p:update({ iterations_done = 50, seconds = 1 })
    assert.are.equal("\rruns 0/2  100%  ETA 0s\27[K", out:text())
    local q = Progress.new({ stream = sink() })
    assert.are.equal("", q:line())
    assert.is_nil(q:fraction())
  end)

  it("prints nothing when disabled", function()
    local out = sink()
    local p = Progress.new({ total_runs = 2, total_iterations = 5, stream = out, enabled = false })
    assert.is_false(p:update({ runs_done = 1, iterations_done = 5, loss = 1, seconds = 1 }))
    p:finish("bye")
    assert.are.equal("", out:text())
    -- the state is still tracked, so a caller can query it
    assert.are.equal(0.5, p:fraction())
  end)

  it("rejects unknown options", function()
    assert.has_error(function() Progress.new({ total = 3 }) end,
      "Progress.new: unknown option 'total' (valid: enabled, interval, label, mode, now, stream, total_iterations, "
      .. "total_runs, unit)")
    local p = Progress.new({ stream = sink() })
    assert.has_error(function() p:update({ los = 1 }) end,
      "progress:update: unknown option 'los' (valid: iterations_done, loss, runs_done, samples_per_second, seconds)")
  end)

  it("rejects bad option values, naming them", function()
    assert.has_error(function() Progress.new({ total_runs = -1 }) end,
      "Progress.new: option 'total_runs' must be an integer >= 0, got -1")
    assert.has_error(function() Progress.new({ total_iterations = 0.5 }) end,
      "Progress.new: option 'total_iterations' must be an integer >= 0, got 0.5")
    assert.has_error(function() Progress.new({ enabled = 1 }) end,
      "Progress.new: option 'enabled' must be a boolean, got 1")
    assert.has_error(function() Progress.new({ now = 5 }) end, "Progress.new: option 'now' must be a function, got 5")
    assert.has_error(function() Progress.new({ stream = {} }) end,
      "Progress.new: option 'stream' must be a file (or an object with write and flush methods), got table")
    local p = Progress.new({ stream = sink(), enabled = false })
    assert.has_error(function() p:update({ runs_done = 0.5 }) end,
      "progress:update: option 'runs_done' must be an integer >= 0, got 0.5")
    assert.has_error(function() p:update({ seconds = "1" }) end,
      'progress:update: option \'seconds\' must be a finite number >= 0, got "1"')
    assert.has_error(function() p:update({ loss = {} }) end,
      "progress:update: option 'loss' must be a number, got table")
    assert.has_error(function() p:finish({}) end, "progress:finish: argument #1 (message) must be a string, got table")
    -- a NaN loss is a value (a diverged run), not an error
    assert.is_false(p:update({ loss = 0 / 0 }))
  end)

  it("methods must be called on a progress display, with ':'", function()
    local p = Progress.new({ stream = sink() })
    for _, name in ipairs({ "fraction", "line", "update", "finish" }) do
      local ok, err = pcall(p[name], { loss = 1 })
      assert.is_false(ok)
      assert.are.equal(("progress:%s: must be called on a progress display (with ':'), got table"):format(name), err)
    end
  end)

  describe("plain mode (stderr is not a terminal)", function()
    it("writes whole lines, no control characters, at most every 10 s", function()
      local out = sink()
      local p = Progress.new({ total_runs = 4, total_iterations = 100, stream = out, mode = "plain",
        label = "figure2" })
      local lines = 0
      -- an update every 0.5 s for 60 s: the first line after 10 s, then one per 10 s
      for i = 0, 120 do
        if p:update({ runs_done = i // 30, iterations_done = i * 400 // 120, loss = 2 - i / 100,
          samples_per_second = 1234, seconds = i * 0.5 }) then
          lines = lines + 1
        end
      end
      assert.are.equal(6, lines)
      p:finish("figure2: 4 runs in 60.0 s")
      local text = out:text()
      assert.is_nil(text:find("[\r\27]"))
      local got = {}
      for l in text:gmatch("[^\n]+") do got[#got + 1] = l end
      assert.are.equal(7, #got)
      -- at 10 s: 20 updates done, 66 of 400 iterations
      assert.are.equal("figure2: runs 0/4   16%  loss 1.8  1234 samples/s  ETA 51s", got[1])
      assert.are.equal("figure2: 4 runs in 60.0 s", got[7])
      assert.are.equal("\n", text:sub(-1))
    end)

    it("stays silent for a run shorter than the interval unless given a message", function()
      local out = sink()
      local p = Progress.new({ total_iterations = 3, unit = "epoch", stream = out, mode = "plain" })
      assert.is_false(p:update({ iterations_done = 1, seconds = 0.2 }))
      assert.is_false(p:update({ iterations_done = 3, seconds = 0.6 }))
      p:finish()
      assert.are.equal("", out:text())
    end)

    it("shows a single training as 'epoch i/n'", function()
      local out = sink()
      local p = Progress.new({ total_iterations = 10, unit = "epoch", stream = out })
      p:update({ iterations_done = 3, loss = 0.5, samples_per_second = 100, seconds = 3 })
      assert.are.equal("\repoch 3/10   30%  loss 0.5  100 samples/s  ETA 7s\27[K", out:text())
    end)

    it("is chosen by Progress.mode: quiet, LUNET_PROGRESS, then whether stderr is a terminal", function()
      local real = os.getenv
      local env
      os.getenv = function(k) if k == "LUNET_PROGRESS" then return env end return real(k) end -- luacheck: ignore 122
      finally(function() os.getenv = real end) -- luacheck: ignore 122
      env = nil
      assert.are.equal("tty", Progress.mode(false, true))
      assert.are.equal("plain", Progress.mode(false, false))
      assert.are.equal("off", Progress.mode(true, true))
      env = "plain"
      assert.are.equal("plain", Progress.mode(false, true))
      env = "tty"
      assert.are.equal("tty", Progress.mode(false, false))
      env = "off"
      assert.are.equal("off", Progress.mode(false, true))
      assert.are.equal("off", Progress.mode(true, false))
      env = "loud" -- not a mode: ignored
      assert.are.equal("plain", Progress.mode(false, false))
      assert.has_error(function() Progress.new({ mode = "loud" }) end,
        'Progress.new: option \'mode\' must be "tty", "plain" or "off", got "loud"')
    end)
  end)

  it("formats only numbers as durations, and absurd ones as unknown", function()
    assert.has_error(function() Progress.format_duration() end,
      "Progress.format_duration: argument #1 (seconds) must be a number, got nil")
    assert.has_error(function() Progress.format_duration("5") end,
      'Progress.format_duration: argument #1 (seconds) must be a number, got "5"')
    assert.are.equal("?", Progress.format_duration(1e308))
    assert.are.equal("?", Progress.format_duration(-1))
    assert.are.equal("2501999792983h36m32s", Progress.format_duration(2 ^ 53))
  end)
end)

describe("progress of a real training whose stderr is a file", function()
  local util = require("util")
  -- a tiny synthetic training in a child process, stderr captured by util.run
  local script = [[
    local lunet = require("lunet")
    local ds = lunet.dataset(lunet.tensor({ 0, 1, 1, 0, 1, 1, 0, 0 }, { 4, 1, 1, 2 }), { 0, 1, 1, 0 })
    local net = lunet.sequential { lunet.flatten(), lunet.linear(2, 2), lunet.log_softmax(), input = { 1, 1, 2 } }
    net:train { data = ds, iterations = 3, batch = 2, quiet = QUIET }
    local res = lunet.experiment { model = function() return net:clone() end, data = ds, iterations = 2,
      runs = 2, threads = 1, cache = false, quiet = QUIET, name = "tiny" }
    print(#res.runs)
  ]]
  local function run(env, quiet)
    return util.run(env .. " " .. util.LUA .. " -e " .. util.shell_quote(script:gsub("QUIET", tostring(quiet))))
  end

  it("writes no escape codes by default, and the experiment's summary line", function()
    local r = run("LUNET_PROGRESS=", false)
    assert.are.equal(0, r.code, util.explain(r))
    assert.are.equal("2\n", r.out)
    assert.is_nil(r.err:find("[\r\27]"), util.explain(r))
    assert.matches("^tiny: 2 runs in [%d.]+ s\n$", r.err)
  end)

  it("draws the terminal line when LUNET_PROGRESS=tty", function()
    local r = run("LUNET_PROGRESS=tty", false)
    assert.are.equal(0, r.code, util.explain(r))
    assert.matches("\repoch 3/3  100%  loss ", r.err, 1, true)
    assert.matches("\27[K", r.err, 1, true)
    assert.matches("\rtiny: 2 runs in", r.err, 1, true)
  end)

  it("is silenced by quiet = true and by LUNET_PROGRESS=off", function()
    local r = run("LUNET_PROGRESS=tty", true)
    assert.are.same({ 0, "" }, { r.code, r.err }, util.explain(r))
    r = run("LUNET_PROGRESS=off", false)
    assert.are.same({ 0, "" }, { r.code, r.err }, util.explain(r))
  end)
end)
