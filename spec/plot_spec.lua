local plot = require("lunet.plot")
local Result = require("lunet.result")
local util = require("util")
local temp_dir = util.temp_dir
local rm_rf = util.rm_rf
local list_dir = util.list_dir
local read = util.read

local PNG_SIGNATURE = "\137PNG\r\n\26\n"

-- A result of `runs` noisy exponential decays towards `floor`.
local function decay(name, floor, runs)
  local list = {}
  for r = 1, runs do
    local loss = {}
    for i = 1, 60 do
      loss[i] = floor + 2 * math.exp(-i / 12) + 0.05 * math.sin(i * r)
    end
    list[r] = { loss = loss, seed = r }
  end
  return Result.new({ name = name, runs = list })
end

-- The text elements of a gnuplot SVG: {x =, y =, anchor =, text =}, in order.
local function svg_texts(svg)
  local out = {}
  for x, y, anchor, text in svg:gmatch('<g transform="translate%(([%d.]+),([%d.]+)%)[^"]*"[^>]-text%-anchor="(%a+)">%s*<text>([^<]*)</text>') do
    out[#out + 1] = { x = tonumber(x), y = tonumber(y), anchor = anchor, text = text:gsub("^%s+", "") }
  end
  return out
end

-- The tick labels of the x axis (centred numbers) and of the y axis (right-aligned).
local function ticks(svg)
  local xs, ys = {}, {}
  for _, t in ipairs(svg_texts(svg)) do
    if tonumber(t.text) then
      if t.anchor == "middle" then xs[#xs + 1] = t.text elseif t.anchor == "end" then ys[#ys + 1] = t.text end
    end
  end
  return xs, ys
end

local function text_at(svg, text)
  for _, t in ipairs(svg_texts(svg)) do if t.text == text then return t end end
  return nil
end

describe("lunet.plot", function()
  local dir
  before_each(function()
    plot.gnuplot = "gnuplot"
    dir = temp_dir()
  end)
  after_each(function()
    plot.gnuplot = "gnuplot"
    rm_rf(dir)
  end)

  it("finds gnuplot and its terminals", function()
    assert.is_true(plot.available())
    local t = plot.terminals()
    assert.is_true(t.dumb and t.svg and (t.pngcairo or t.png) or false)
  end)

  describe("results", function()
    it("writes a PNG atomically, creating the parent directory", function()
      local a, b = decay("a", 0.2, 4), decay("b", 0.5, 3)
      local ok, err = plot.results({ a, b }, { file = dir .. "/figs/loss.png", title = "two runs",
        labels = { "first", "second" } })
      assert.is_true(ok, err)
      local png = read(dir .. "/figs/loss.png")
      assert.are.equal(PNG_SIGNATURE, png:sub(1, 8))
      assert.is_true(#png > 1000)
      assert.are.same({ "loss.png" }, list_dir(dir .. "/figs"))
    end)

    it("writes an SVG with a confidence band and log scale", function()
      local ok, err = plot.results({ decay("a", 0.2, 4) }, { file = dir .. "/loss.svg", band = "ci",
        logscale = true, width = 640, height = 480, xlabel = "step", ylabel = "cross-entropy" })
      assert.is_true(ok, err)
      local svg = read(dir .. "/loss.svg")
      assert.matches("<svg", svg, 1, true)
      assert.matches("cross-entropy", svg, 1, true)
      assert.matches("width=\"640\"", svg, 1, true)
      assert.are.same({ "loss.svg" }, list_dir(dir))
    end)

    it("names the x axis by the unit with integer ticks, and the y axis by the loss", function()
      local runs = {}
      for r = 1, 4 do runs[r] = { loss = { 300 + r, 200 + r, 100 + r } } end
      local res = Result.new({ name = "short", runs = runs, config = { unit = "epoch", loss = "nll" } })
      assert.is_true(res:plot({ file = dir .. "/short.svg" }))
      local svg = read(dir .. "/short.svg")
      assert.is_table(text_at(svg, "epoch"))
      assert.is_table(text_at(svg, "training loss (NLL)"))
      local xs, ys = ticks(svg)
      assert.are.same({ "1", "2", "3" }, xs) -- not 1.5 and 2.5
      assert.is_true(#ys >= 3)
      -- a long run: round whole steps
      local long = {}
      for r = 1, 2 do
        long[r] = { loss = {} }
        for i = 1, 100 do long[r].loss[i] = 1000 + i * r end
      end
      assert.is_true(Result.new({ runs = long, config = { unit = "step", loss = "cross_entropy" } })
        :plot({ file = dir .. "/long.svg" }))
      svg = read(dir .. "/long.svg")
      xs = ticks(svg)
      assert.are.same({ "10", "20", "30", "40", "50", "60", "70", "80", "90", "100" }, xs)
      assert.is_table(text_at(svg, "step"))
      assert.is_table(text_at(svg, "training loss (cross-entropy)"))
      assert.are.equal(1, plot._integer_step(3, 10))
      assert.are.equal(2, plot._integer_step(11, 10))
      assert.are.equal(5, plot._integer_step(50, 10))
      assert.are.equal(50, plot._integer_step(500, 10))
    end)

    it("states the band in the legend, which sits below the plot area", function()
      local a, b = decay("SGD", 0.2, 20), decay("SGD + Nesterov", 0.25, 20)
      assert.is_true(plot.results({ a, b }, { file = dir .. "/two.svg" }))
      local svg = read(dir .. "/two.svg")
      local bottom = 0
      for _, t in ipairs(svg_texts(svg)) do
        if tonumber(t.text) then bottom = math.max(bottom, t.y) end -- the x tick labels are lowest
      end
      local entries = {}
      for _, t in ipairs(svg_texts(svg)) do
        if t.anchor == "start" then
          entries[#entries + 1] = t.text
          assert.is_true(t.y > bottom, t.text .. " is inside the plot area")
        end
      end
      assert.are.same({ "SGD: mean", "mean +- 1 std over 20 runs", "SGD + Nesterov: mean",
        "mean +- 1 std over 20 runs" }, entries)
      -- distinct colours, light fills, and each band outlined in its colour
      assert.matches("fill = 'rgb%(%s*0,%s*114,%s*178%)' fill%-opacity = '0%.15", svg)
      assert.matches("fill = 'rgb%(213,%s*94,%s*0%)' fill%-opacity = '0%.15", svg)
      assert.matches("stroke=\"rgb%(213,%s*94,%s*0%)\" stroke%-width=\"1%.00\"", svg) -- the outline
      assert.is_true(plot.results({ a }, { file = dir .. "/ci.svg", band = "ci", labels = { "Figure 3: lr 1e-3" } }))
      svg = read(dir .. "/ci.svg")
      assert.is_table(text_at(svg, "Figure 3: lr 1e-3: mean"))
      assert.is_table(text_at(svg, "95% CI of the mean over 20 runs"))
      -- a single run has no band to explain
      assert.is_true(plot.results({ Result.new({ name = "one", runs = { { loss = { 3, 2, 1 } } } }) },
        { file = dir .. "/one.svg" }))
      svg = read(dir .. "/one.svg")
      assert.is_table(text_at(svg, "one"))
      assert.is_nil(svg:find("std over", 1, true))
      assert.is_table(text_at(svg, "iteration")) -- no unit known
      assert.is_table(text_at(svg, "loss"))
    end)

    it("draws a text plot returned as a string", function()
      local text = assert(plot.results({ decay("decay", 0.2, 3) }, { output = "string", width = 80, height = 24 }))
      assert.is_string(text)
      assert.matches("decay", text, 1, true) -- key entry
      assert.matches("iteration", text, 1, true) -- x label
      assert.matches("+----", text, 1, true) -- frame
      local rows = 0
      for _ in text:gmatch("\n") do
        rows = rows + 1
      end
      assert.is_true(rows >= 20)
    end)

    it("prints the text plot on stdout without a file", function()
      local captured = {}
      local real = io.stdout
      -- io.stdout is looked up at call time, so a stand-in captures the plot.
      io.stdout = { -- luacheck: ignore 122
        write = function(_, s) captured[#captured + 1] = s end,
        flush = function() end,
      }
      local ok, err = plot.results(decay("printed", 0.3, 2), {})
      io.stdout = real -- luacheck: ignore 122
      assert.is_true(ok, err)
      assert.matches("printed", table.concat(captured), 1, true)
    end)

    it("is reachable as Result:plot", function()
      local ok, err = decay("m", 0.1, 2):plot({ file = dir .. "/m.png" })
      assert.is_true(ok, err)
      assert.are.equal(PNG_SIGNATURE, read(dir .. "/m.png"):sub(1, 8))
    end)

    it("handles single runs, NaN means and plain tables", function()
      local r = Result.new({ runs = { { loss = { 1, 0.5, 0 / 0, 0.25 } } } })
      local ok, err = plot.results({ r }, { file = dir .. "/one.png" })
      assert.is_true(ok, err)
      local none = Result.new({ runs = { { loss = { 0 / 0 } } } })
      local ok2, err2 = plot.results({ none }, { file = dir .. "/none.png" })
      assert.is_nil(ok2)
      assert.matches("nothing to plot", err2)
      assert.are.same({ "one.png" }, list_dir(dir))
    end)

    it("returns nil and a message when the file cannot be written", function()
      util.write(dir .. "/plain", "x")
      local ok, err = plot.results({ decay("a", 0.2, 2) }, { file = dir .. "/plain/x.png" })
      assert.is_nil(ok)
      assert.is_string(err)
      assert.are.same({ "plain" }, list_dir(dir))
    end)

    it("reports a missing gnuplot", function()
      plot.gnuplot = "lunet-no-such-gnuplot"
      assert.is_false(plot.available())
      local ok, err = plot.results({ decay("a", 0.2, 2) }, { file = dir .. "/x.png" })
      assert.is_nil(ok)
      assert.are.equal("gnuplot not found: install the Debian package gnuplot-nox (make deps)", err)
      ok, err = plot.heatmap({ { x = 1, y = 1, value = 1 } }, { file = dir .. "/h.png" })
      assert.is_nil(ok)
      assert.matches("gnuplot not found", err, 1, true)
      assert.are.same({}, list_dir(dir))
    end)

    it("reports a failing gnuplot and cleans up", function()
      plot.gnuplot = "false" -- exists, reads nothing, exits 1
      local ok, err = plot.results({ decay("a", 0.2, 2) }, { file = dir .. "/x.png" })
      assert.is_nil(ok)
      assert.matches("gnuplot failed", err, 1, true)
      assert.are.same({}, list_dir(dir))
    end)

    it("survives a gnuplot that exits without reading a large script", function()
      plot.gnuplot = "false"
      local runs = {}
      for r = 1, 4 do
        local loss = {}
        for i = 1, 50000 do
          loss[i] = 1 / i + r
        end
        runs[r] = { loss = loss }
      end
      local big = Result.new({ runs = runs })
      local ok, err = plot.results({ big, big, big }, { file = dir .. "/big.png" })
      assert.is_nil(ok)
      assert.matches("gnuplot failed", err, 1, true)
    end)

    it("rejects unknown options and bad values", function()
      local r = decay("a", 0.2, 2)
      assert.has_error(function() plot.results({ r }, { fiel = "x.png" }) end,
        "plot.results: unknown option 'fiel' (valid: band, file, height, labels, logscale, output, "
        .. "title, validation, width, xlabel, ylabel)")
      local ok, err = pcall(function() plot.results({ r }, { fiel = "x.png" }) end)
      assert.is_false(ok)
      assert.matches("^spec/plot_spec.lua:%d+: plot.results: unknown option", err)
      assert.has_error(function() plot.results({ r }, { band = "iqr" }) end)
      assert.has_error(function() plot.results({ r }, { file = dir .. "/x.gif" }) end)
      assert.has_error(function() plot.results({ r }, { width = -3 }) end)
      assert.has_error(function() plot.results({}, {}) end)
      assert.has_error(function() r:plot({ colour = "red" }) end)
    end)
  end)

  describe("heatmap", function()
    local function grid()
      local cells = {}
      for _, lr in ipairs({ 0.001, 0.01, 0.1, 1 }) do
        for _, m in ipairs({ 0, 0.5, 0.9 }) do
          local v = (lr == 1 and m == 0.9) and 0 / 0 or math.abs(math.log(lr, 10) + 2) + m
          cells[#cells + 1] = { x = lr, y = m, value = v }
        end
      end
      return cells
    end

    it("writes a PNG with values on a 2-D grid", function()
      local ok, err = plot.heatmap(grid(), { file = dir .. "/maps/lr.png", xlabel = "lr",
        ylabel = "momentum", title = "final loss", logx = true })
      assert.is_true(ok, err)
      assert.are.equal(PNG_SIGNATURE, read(dir .. "/maps/lr.png"):sub(1, 8))
      assert.are.same({ "lr.png" }, list_dir(dir .. "/maps"))
    end)

    it("labels tics with the actual values and cells with their values", function()
      local ok, err = plot.heatmap(grid(), { file = dir .. "/lr.svg", logx = true })
      assert.is_true(ok, err)
      local svg = read(dir .. "/lr.svg")
      assert.matches("<svg", svg, 1, true)
      assert.matches("1e-3", svg, 1, true)
      assert.matches("0.9", svg, 1, true)
      assert.matches(">2.5<", svg, 1, true) -- lr = 1, momentum = 0.5: |0 + 2| + 0.5
      assert.matches("nan", svg, 1, true)
    end)

    it("formats log-spaced tic labels compactly", function()
      assert.are.equal("1e-3", plot._tic_label(0.001, true))
      assert.are.equal("3e-3", plot._tic_label(0.003, true))
      assert.are.equal("2.5e-4", plot._tic_label(2.5e-4, true))
      assert.are.equal("1e-3", plot._tic_label(9.9996e-4, true))
      assert.are.equal("1", plot._tic_label(1, true))
      assert.are.equal("1e2", plot._tic_label(100, true))
      assert.are.equal("0.001", plot._tic_label(0.001, false))
    end)

    it("draws thin grids and missing cells", function()
      local ok, err = plot.heatmap({ { x = 1, y = 0, value = 3 }, { x = 2, y = 0, value = 4 } },
        { file = dir .. "/row.png" })
      assert.is_true(ok, err)
      ok, err = plot.heatmap({ { x = 1, y = 0, value = 3 }, { x = 2, y = 1, value = 4 } },
        { file = dir .. "/sparse.png" })
      assert.is_true(ok, err)
      assert.are.same({ "row.png", "sparse.png" }, list_dir(dir))
    end)

    it("prints values in a text heatmap", function()
      local text = assert(plot.heatmap(grid(), { output = "string", xlabel = "lr" }))
      assert.matches("0.001", text, 1, true)
      assert.matches("2.5", text, 1, true)
      assert.matches("lr", text, 1, true)
    end)

    it("rejects bad cells and unknown options", function()
      assert.has_error(function() plot.heatmap({}, {}) end)
      assert.has_error(function() plot.heatmap({ { x = 1, value = 2 } }, {}) end)
      assert.has_error(function()
        plot.heatmap({ { x = 1, y = 1, value = 2 }, { x = 1, y = 1, value = 3 } }, {})
      end)
      assert.has_error(function() plot.heatmap({ { x = 1, y = 1, value = 2 } }, { logy = true }) end,
        "plot.heatmap: unknown option 'logy' (valid: file, height, logx, output, title, width, xlabel, ylabel)")
    end)
  end)
end)
