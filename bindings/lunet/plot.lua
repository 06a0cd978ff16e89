-- lunet.plot: loss curves and hyper-parameter heatmaps through gnuplot.
--
-- gnuplot runs as a child process fed a script on its standard input; data
-- travels inside the script as `$name << EOD` datablocks, so no temporary
-- data files exist. Image files are produced under a temporary name and
-- renamed into place, so a reader never sees a half-written picture.
--
-- Argument mistakes (unknown options, wrong types) raise errors; runtime
-- failures (gnuplot missing or failing, I/O) return nil, message.

local check = require("lunet.check")
local format = require("lunet.format")
local fs = require("lunet.fs")
local lfs = require("lfs")

local plot = {}

--- The gnuplot command. Tests (or users with an unusual install) may point
-- it elsewhere; it is looked up through the shell's PATH.
plot.gnuplot = "gnuplot"

local MISSING = "gnuplot not found: install the Debian package gnuplot-nox (make deps)"

-- The option names; their values are checked by check_common and the functions.
local RESULTS_KEYS = { file = "any", labels = "any", title = "any", band = "any", width = "any", height = "any",
  logscale = "any", xlabel = "any", ylabel = "any", output = "any", validation = "any" }
local HEATMAP_KEYS = { file = "any", title = "any", xlabel = "any", ylabel = "any", logx = "any", width = "any",
  height = "any", output = "any" }

-- Colours for successive results: the Okabe-Ito set, chosen to stay distinct for
-- colour-blind readers; blue and vermilion (the first two) stay apart where their
-- bands overlap, unlike blue and orange, which blend into brown.
local COLORS = { "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442" }
-- Bands are light (two overlapping ones stay readable) and outlined: each band's
-- edges are drawn in its colour, dashed differently per result.
local BAND_ALPHA = 0.15

-- The y axis names the loss the curves show (net:train's per-iteration mean loss).
local LOSS_NAMES = { nll = "NLL", cross_entropy = "cross-entropy", mse = "MSE" }

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- gnuplot single-quoted string: no backslash escapes, '' stands for '.
local function gp_quote(s)
  return "'" .. tostring(s):gsub("[\r\n]", " "):gsub("'", "''") .. "'"
end

local function is_finite(x)
  return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge
end

-- plot data: 9 significant digits
local function num(v)
  return format.real(v, "%.9g")
end

--- True when the gnuplot command can be found.
function plot.available()
  local ok = os.execute("command -v " .. shell_quote(plot.gnuplot) .. " >/dev/null 2>&1")
  return ok == true or ok == 0
end

local terminal_cache = {}

--- Set of terminal names the gnuplot command supports (asked once per
-- command, then cached: the answer cannot change while we run).
function plot.terminals()
  local cmd = plot.gnuplot
  if terminal_cache[cmd] then
    return terminal_cache[cmd]
  end
  local set = {}
  local p = io.popen(shell_quote(cmd) .. " -e 'set terminal' 2>&1 </dev/null", "r")
  if p then
    for line in p:lines() do
      local name = line:match("^%s*([%w_]+)%s")
      if name then
        set[name] = true
      end
    end
    p:close()
  end
  terminal_cache[cmd] = set
  return set
end

local mkdir_p, temp_suffix, read_file = fs.mkdir_p, fs.temp_suffix, fs.read

-- Terminal line for the output kind; width/height are pixels for images and
-- characters for text.
local function terminal_for(kind, opts)
  if kind == "png" then
    local t = plot.terminals()
    local name = t.pngcairo and "pngcairo" or "png"
    return string.format("set terminal %s size %d,%d noenhanced", name,
      opts.width or 800, opts.height or 600)
  elseif kind == "svg" then
    return string.format("set terminal svg size %d,%d noenhanced background rgb 'white'",
      opts.width or 800, opts.height or 600)
  end
  return string.format("set terminal dumb size %d,%d noenhanced", opts.width or 100, opts.height or 30)
end

local function output_kind(file)
  if file == nil then
    return "text"
  end
  local lower = file:lower()
  if lower:match("%.png$") then
    return "png"
  elseif lower:match("%.svg$") then
    return "svg"
  elseif lower:match("%.txt$") then
    return "text"
  end
  return nil
end

-- Run `body` (the script after the terminal/output lines) and deliver the
-- output: to opts.file atomically, else the text plot to stdout or, with
-- opts.output = "string", as the return value.
local function render(kind, body, opts)
  if not plot.available() then
    return nil, MISSING
  end
  local target, tmp
  if opts.file then
    local dir = opts.file:match("^(.*)/[^/]*$")
    if dir then
      local ok, err = mkdir_p(dir)
      if not ok then
        return nil, "plot: " .. err
      end
    end
    target = opts.file
    tmp = opts.file .. ".tmp-" .. temp_suffix()
  else
    tmp = os.tmpname()
  end
  local errfile = os.tmpname()
  local script = table.concat({
    terminal_for(kind, opts),
    "set output " .. gp_quote(tmp),
    body,
    "unset output",
    "",
  }, "\n")
  -- If gnuplot stopped reading early (crash, odd binary), our remaining
  -- writes would hit a closed pipe and SIGPIPE would kill the whole Lua
  -- process; `cat` drains whatever is left, and gnuplot's status is kept.
  local p = io.popen(shell_quote(plot.gnuplot) .. " >/dev/null 2>" .. shell_quote(errfile)
    .. "; status=$?; cat >/dev/null; exit $status", "w")
  if not p then
    os.remove(errfile)
    os.remove(tmp)
    return nil, "plot: cannot start " .. plot.gnuplot
  end
  p:write(script)
  local ok, _, code = p:close()
  local errtext = read_file(errfile) or ""
  os.remove(errfile)
  if not ok then
    os.remove(tmp)
    local msg = errtext:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
    return nil, string.format("plot: gnuplot failed (exit %s): %s", tostring(code), msg)
  end
  if target then
    local size = lfs.attributes(tmp, "size")
    if not size or size == 0 then
      os.remove(tmp)
      return nil, "plot: gnuplot produced no output for " .. target
    end
    local rok, rerr = os.rename(tmp, target)
    if not rok then
      os.remove(tmp)
      return nil, "plot: " .. tostring(rerr)
    end
    return true
  end
  local text = read_file(tmp) or ""
  os.remove(tmp)
  if opts.output == "string" then
    return text
  end
  io.stdout:write(text)
  io.stdout:flush()
  plot.drawn_on_stdout = true -- read by the lunet session's print (lunet.help.repl_print)
  return true
end

local function check_common(fname, opts)
  if opts.file ~= nil and type(opts.file) ~= "string" then
    error(fname .. ": file must be a string path", 3)
  end
  if opts.file and not output_kind(opts.file) then
    error(fname .. ": unsupported file extension in '" .. opts.file .. "' (use .png, .svg or .txt)", 3)
  end
  for _, k in ipairs({ "width", "height" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v < 1 or v ~= math.floor(v)) then
      error(fname .. ": " .. k .. " must be a positive integer", 3)
    end
  end
  if opts.output ~= nil and opts.output ~= "string" and opts.output ~= "stdout" then
    error(fname .. ": output must be 'string' or 'stdout'", 3)
  end
  for _, k in ipairs({ "title", "xlabel", "ylabel" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      error(fname .. ": " .. k .. " must be a string", 3)
    end
  end
end

-- The value of config[key] shared by every result, or nil when they differ or
-- do not say (the x axis is "epoch" only when every curve counts epochs).
local function common_config(results_list, key)
  local v
  for _, res in ipairs(results_list) do
    local c = type(res.config) == "table" and res.config[key] or nil
    if type(c) ~= "string" or (v ~= nil and c ~= v) then return nil end
    v = c
  end
  return v
end

-- The runs a result's statistics are over (its diverged runs left out).
local function kept_runs(res)
  local most = 0
  for _, k in ipairs(type(res.n) == "table" and res.n or {}) do
    if type(k) == "number" and k > most then most = k end
  end
  if most == 0 and type(res.runs) == "table" then most = #res.runs - (res.left_out or 0) end
  return most
end

-- A round whole tick step (1, 2, 5, 10, 20, 50, ...) giving at most `ticks` ticks
-- over 1..n.
local function integer_step(n, ticks)
  local decade = 1
  while true do
    for _, m in ipairs({ 1, 2, 5 }) do
      local step = m * decade
      if n / step <= ticks then return step end
    end
    decade = decade * 10
  end
end
plot._integer_step = integer_step -- exposed for the spec

--- Plot the mean loss of one or more results, each with a shaded band.
-- results_list: array of Results (a single Result is accepted too).
-- opts: file (.png/.svg/.txt; none = text plot on stdout), labels (array,
-- default: each result's name), title, band ("std": mean ± std, default;
-- "ci": the 95% confidence interval), width, height (pixels, or characters
-- for text), logscale (log y axis), xlabel (default: the results' unit,
-- "epoch" or "step"), ylabel (default: the loss, e.g. "training loss (NLL)"),
-- output ("string": return the text plot instead of printing it).
-- The legend sits below the plot, one row per result: its mean line, then what
-- the band is ("mean +- 1 std over 20 runs", "95% CI of the mean over 20 runs").
-- The text terminal cannot shade transparently, so there the band is drawn
-- only when a single result is plotted (overlapping bands would hide lines).
-- On a log axis the band's lower edge is clipped to stay above zero.
-- Results with validation curves (experiments with validate =) also get their mean
-- validation loss as a dashed line with its band, in the same colour (validation = false
-- leaves it out); runs that early stopping ended are marked with a cross on the mean
-- curve at the iteration they stopped after.
-- Returns true (or the text with output="string"), or nil, message.
function plot.results(results_list, opts)
  opts = check.options("plot.results", 2, opts, RESULTS_KEYS)
  check_common("plot.results", opts)
  if type(results_list) ~= "table" then
    error("plot.results: expected an array of results", 2)
  end
  if results_list.mean ~= nil then
    results_list = { results_list }
  end
  if #results_list == 0 then
    error("plot.results: no results to plot", 2)
  end
  local band = opts.band or "std"
  if band ~= "std" and band ~= "ci" then
    error("plot.results: band must be 'std' or 'ci', got " .. tostring(band), 2)
  end
  if opts.labels ~= nil then
    if type(opts.labels) ~= "table" then error("plot.results: labels must be an array of strings", 2) end
    for i, l in ipairs(opts.labels) do
      if type(l) ~= "string" and type(l) ~= "number" then
        error(("plot.results: labels[%d] must be a string, got %s"):format(i, type(l)), 2)
      end
    end
  end
  if opts.validation ~= nil and type(opts.validation) ~= "boolean" then
    error("plot.results: validation must be a boolean", 2)
  end
  local kind = output_kind(opts.file)
  local labels = opts.labels or {}
  local log = opts.logscale and true or false
  local draw_band = kind ~= "text" or #results_list == 1
  for r, res in ipairs(results_list) do
    if type(res) ~= "table" or type(res.mean) ~= "table" then
      error(string.format("plot.results: item %d is not a result", r), 2)
    end
  end
  local unit, loss = common_config(results_list, "unit"), common_config(results_list, "loss")
  if kind ~= "text" and opts.height == nil then
    -- room for the legend rows below the plot, so the plot area keeps its size
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.height = 480 + 40 * #results_list
    opts = o
  end
  local longest = 0
  for _, res in ipairs(results_list) do longest = math.max(longest, #res.mean) end

  local lines = {
    "set style fill transparent solid " .. BAND_ALPHA .. " noborder",
    -- below the plot area: the legend never covers a curve; one row per result
    -- line: its mean, then what its band is
    "set key outside below left vertical maxcols 1 Left reverse height 1",
    "set xlabel " .. gp_quote(opts.xlabel or unit or "iteration"),
  }
  -- with validation curves drawn too, the axis holds both losses
  local validated = false
  for _, res in ipairs(results_list) do
    if opts.validation ~= false and type(res.val_mean) == "table" and #res.val_mean > 0 then validated = true end
  end
  local losses = validated and "training and validation loss (" or "training loss ("
  local ylabel = opts.ylabel or (loss and (losses .. (LOSS_NAMES[loss] or loss) .. ")")) or "loss"
  local title = opts.title
  if kind == "text" then
    -- the dumb terminal draws no y label: the title names the y axis instead
    title = (title and (title .. "; ") or "") .. "y: " .. ylabel
  else
    lines[#lines + 1] = "set ylabel " .. gp_quote(ylabel)
  end
  -- iterations are whole numbers: integer ticks only, at a round step
  if longest <= 1 then
    lines[#lines + 1] = "set xrange [0.5:1.5]"
    lines[#lines + 1] = "set xtics 1"
  else
    lines[#lines + 1] = ("set xrange [1:%d]"):format(longest)
    lines[#lines + 1] = ("set xtics %d"):format(integer_step(longest, kind == "text" and 6 or 10))
  end
  lines[#lines + 1] = 'set format x "%.0f"'
  -- Dotted grid lines help on images but clutter a character plot.
  if kind ~= "text" then
    lines[#lines + 1] = "set grid"
  end
  if title then
    lines[#lines + 1] = "set title " .. gp_quote(title)
  end
  if log then
    lines[#lines + 1] = "set logscale y"
  end
  local plots, entries = {}, {}
  local points = 0
  for r, res in ipairs(results_list) do
    local lo_s = band == "ci" and res.ci_low or nil
    local hi_s = band == "ci" and res.ci_high or nil
    local block = { "$d" .. r .. " << EOD" }
    for i = 1, #res.mean do
      local m = res.mean[i]
      if is_finite(m) and (not log or m > 0) then
        local lo, hi
        if band == "ci" then
          lo, hi = lo_s[i], hi_s[i]
        else
          local sd = res.std and res.std[i]
          if is_finite(sd) then
            lo, hi = m - sd, m + sd
          end
        end
        if not is_finite(lo) or not is_finite(hi) then
          lo, hi = m, m
        end
        if log and lo <= 0 then
          lo = m * 1e-3
        end
        block[#block + 1] = num(i) .. " " .. num(m) .. " " .. num(lo) .. " " .. num(hi)
        points = points + 1
      end
    end
    block[#block + 1] = "EOD"
    lines[#lines + 1] = table.concat(block, "\n")
    local color = COLORS[(r - 1) % #COLORS + 1]
    local label = labels[r] or res.name or ("result " .. r)
    local runs = kept_runs(res)
    -- bands first, so that every mean line is drawn over every band; the legend
    -- entry of a band is a keyentry placed after its line's
    entries[#entries + 1] = string.format("$d%d using 1:2 title %s with lines lw 2 lc rgb '%s'",
      r, gp_quote(runs > 1 and (label .. ": mean") or label), color)
    if draw_band and runs > 1 then
      local what = band == "ci" and "95% CI of the mean" or "mean +- 1 std"
      plots[#plots + 1] = string.format("$d%d using 1:3:4 notitle with filledcurves lc rgb '%s'", r, color)
      if kind ~= "text" then
        for _, col in ipairs({ 3, 4 }) do
          plots[#plots + 1] = string.format("$d%d using 1:%d notitle with lines lw 1 dt %d lc rgb '%s'",
            r, col, (r - 1) % 4 + 1, color)
        end
      end
      entries[#entries + 1] = string.format("keyentry with filledcurves lc rgb '%s' title %s", color,
        gp_quote(("%s over %d runs"):format(what, runs)))
    elseif draw_band then
      entries[#entries + 1] = "keyentry with lines lc rgb 'white' title ''" -- one row per result
    end
    local vm = opts.validation ~= false and type(res.val_mean) == "table" and type(res.val_iterations) == "table"
      and res.val_mean
    if vm and #vm > 0 then
      local vblock = { "$v" .. r .. " << EOD" }
      for k = 1, #vm do
        local m, sd = vm[k], res.val_std and res.val_std[k]
        if is_finite(m) and (not log or m > 0) then
          local lo, hi = m, m
          if band == "ci" and is_finite(res.val_ci_low[k]) and is_finite(res.val_ci_high[k]) then
            lo, hi = res.val_ci_low[k], res.val_ci_high[k]
          elseif band == "std" and is_finite(sd) then
            lo, hi = m - sd, m + sd
          end
          if log and lo <= 0 then lo = m * 1e-3 end
          vblock[#vblock + 1] = num(res.val_iterations[k]) .. " " .. num(m) .. " " .. num(lo) .. " " .. num(hi)
          points = points + 1
        end
      end
      vblock[#vblock + 1] = "EOD"
      lines[#lines + 1] = table.concat(vblock, "\n")
      if draw_band and (res.val_n and (res.val_n[1] or 0) > 1) then
        plots[#plots + 1] = string.format("$v%d using 1:3:4 notitle with filledcurves lc rgb '%s'", r, color)
      end
      entries[#entries + 1] = string.format("$v%d using 1:2 title %s with lines lw 2 dt 2 lc rgb '%s'",
        r, gp_quote(label .. " (validation)"), color)
    end
    local marks = {}
    for _, run in ipairs(type(res.runs) == "table" and res.runs or {}) do
      local at = type(run) == "table" and run.stopped_at
      local m = math.type(at) == "integer" and res.mean[at]
      if m and is_finite(m) and (not log or m > 0) then marks[#marks + 1] = num(at) .. " " .. num(m) end
    end
    if #marks > 0 then
      lines[#lines + 1] = "$s" .. r .. " << EOD\n" .. table.concat(marks, "\n") .. "\nEOD"
      entries[#entries + 1] = string.format("$s%d using 1:2 title %s with points pt 2 ps 1.5 lc rgb '%s'",
        r, gp_quote(label .. ": early stops"), color)
    end
  end
  for _, e in ipairs(entries) do plots[#plots + 1] = e end
  if points == 0 then
    return nil, "plot.results: nothing to plot (no finite mean values)"
  end
  lines[#lines + 1] = "plot " .. table.concat(plots, ", \\\n     ")
  return render(kind, table.concat(lines, "\n"), opts)
end

-- Tic label for a grid value; `sci` gives compact exponent form (1e-3),
-- which reads better for log-spaced values such as learning rates.
local function tic_label(v, sci)
  if type(v) ~= "number" then
    return tostring(v)
  end
  if sci and v ~= 0 and is_finite(v) then
    local e = math.floor(math.log(math.abs(v), 10) + 1e-9)
    if e == 0 then
      return string.format("%g", v)
    end
    local m = v / 10 ^ e
    local ms = string.format("%.3g", m)
    -- rounding can carry the mantissa to 10 (9.9996e-4 -> "10"): renormalise
    if ms == "10" or ms == "-10" then
      e = e + 1
      ms = ms == "10" and "1" or "-1"
    end
    if ms == "1" then
      return "1e" .. e
    elseif ms == "-1" then
      return "-1e" .. e
    end
    return ms .. "e" .. e
  end
  return string.format("%g", v)
end

plot._tic_label = tic_label -- exposed for the spec

-- a heatmap cell's text: 3 significant digits
local function value_label(v)
  return format.real(v, "%.3g")
end

--- Heatmap of a scalar over a 2-D grid (e.g. final loss over lr × momentum).
-- cells: array of {x=, y=, value=}; the distinct x and y values, sorted,
-- form the grid and cells are placed by index, so log-spaced values come out
-- evenly spaced. Each cell shows its value as text; missing cells and NaN
-- values are left blank. opts: file, title, xlabel, ylabel, logx (x values
-- are log-spaced: label the x tics as 1e-3 rather than 0.001), width,
-- height, output (as in plot.results).
-- Returns true (or the text with output="string"), or nil, message.
function plot.heatmap(cells, opts)
  opts = check.options("plot.heatmap", 2, opts, HEATMAP_KEYS)
  check_common("plot.heatmap", opts)
  if type(cells) ~= "table" or #cells == 0 then
    error("plot.heatmap: cells must be a non-empty array of {x=, y=, value=}", 2)
  end
  local xs, ys, xset, yset = {}, {}, {}, {}
  for i, c in ipairs(cells) do
    if type(c) ~= "table" or type(c.x) ~= "number" or type(c.y) ~= "number"
        or type(c.value) ~= "number" then
      error(string.format("plot.heatmap: cell %d must be {x=number, y=number, value=number}", i), 2)
    end
    if not xset[c.x] then
      xset[c.x] = true
      xs[#xs + 1] = c.x
    end
    if not yset[c.y] then
      yset[c.y] = true
      ys[#ys + 1] = c.y
    end
  end
  table.sort(xs)
  table.sort(ys)
  local xi, yi = {}, {}
  for i, v in ipairs(xs) do
    xi[v] = i - 1
  end
  for i, v in ipairs(ys) do
    yi[v] = i - 1
  end
  local grid = {}
  for i, c in ipairs(cells) do
    local key = xi[c.x] .. ":" .. yi[c.y]
    if grid[key] then
      error(string.format("plot.heatmap: cell %d repeats x=%g, y=%g", i, c.x, c.y), 2)
    end
    grid[key] = c.value
  end

  local kind = output_kind(opts.file)
  local lines = {
    "set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')",
    "set style textbox opaque margins 1,1 noborder",
    string.format("set xrange [-0.5:%g]", #xs - 0.5),
    string.format("set yrange [-0.5:%g]", #ys - 0.5),
    "set tics out nomirror",
  }
  local labels = { title = opts.title, xlabel = opts.xlabel, ylabel = opts.ylabel }
  if kind == "text" and opts.ylabel then
    -- the dumb terminal draws no y label: the title names the y axis instead
    labels.title = (opts.title and (opts.title .. "; ") or "") .. "y: " .. opts.ylabel
    labels.ylabel = nil
  end
  for _, k in ipairs({ "title", "xlabel", "ylabel" }) do
    if labels[k] then
      lines[#lines + 1] = "set " .. k .. " " .. gp_quote(labels[k])
    end
  end
  local xt, yt = {}, {}
  for i, v in ipairs(xs) do
    xt[#xt + 1] = gp_quote(tic_label(v, opts.logx)) .. " " .. (i - 1)
  end
  for i, v in ipairs(ys) do
    yt[#yt + 1] = gp_quote(tic_label(v, false)) .. " " .. (i - 1)
  end
  lines[#lines + 1] = "set xtics (" .. table.concat(xt, ", ") .. ")"
  lines[#lines + 1] = "set ytics (" .. table.concat(yt, ", ") .. ")"

  -- A complete grid (missing cells written as NaN, which gnuplot leaves
  -- blank) lets `with image` draw it; image needs at least 2 x 2 points, so
  -- thinner grids are drawn cell by cell as filled boxes instead.
  local block = { "$cells << EOD" }
  local finite = 0
  for j = 0, #ys - 1 do
    for i = 0, #xs - 1 do
      local v = grid[i .. ":" .. j]
      if v ~= nil then
        if is_finite(v) then
          finite = finite + 1
        end
        block[#block + 1] = string.format("%d %d %s \"%s\"", i, j,
          is_finite(v) and num(v) or "NaN", value_label(v))
      else
        block[#block + 1] = string.format("%d %d NaN \"\"", i, j)
      end
    end
    block[#block + 1] = ""
  end
  block[#block + 1] = "EOD"
  lines[#lines + 1] = table.concat(block, "\n")
  local plots = {}
  if finite > 0 and kind ~= "text" then
    if #xs >= 2 and #ys >= 2 then
      plots[#plots + 1] = "$cells using 1:2:3 notitle with image"
    else
      lines[#lines + 1] = "set style fill solid 1.0 noborder"
      plots[#plots + 1] = "$cells using 1:2:(0.5):(0.5):3 notitle with boxxyerror fc palette"
    end
  else
    lines[#lines + 1] = "unset colorbox"
  end
  plots[#plots + 1] = "$cells using 1:2:4 notitle with labels" .. (kind ~= "text" and " boxed" or "")
  lines[#lines + 1] = "plot " .. table.concat(plots, ", ")
  return render(kind, table.concat(lines, "\n"), opts)
end

return plot
