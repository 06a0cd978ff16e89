package.path = "bindings/?.lua;bindings/?/init.lua;" .. package.path
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
      "Progress.new: unknown option 'total' (valid: enabled, now, stream, total_iterations, total_runs)")
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
