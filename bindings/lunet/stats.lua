-- lunet.stats: small, dependency-free statistics used to summarise repeated
-- training runs (mean curve, spread, confidence band, plateau detection).
--
-- Every function is pure: inputs are never modified and no state is kept.
-- NaN handling follows one rule throughout: a NaN that is present in the data
-- is a value (it propagates into means), while an *absent* value (a series that
-- is shorter than the iteration index) is simply skipped.
--
-- Arguments are checked (a list of numbers is a table or a tensor): a bad one
-- raises an error that names the function and the argument.

local check = require("lunet.check")

local stats = {}

local NAN = 0 / 0

local function is_nan(x)
  return x ~= x
end

local function is_finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
end

-- The unchecked versions of mean, std and ci95 (for lists already checked), each
-- given the length n of xs.
local mean_of, std_of, ci95_of

function mean_of(xs, n)
  if n == 0 then
    return NAN
  end
  local s = 0
  for i = 1, n do
    s = s + xs[i]
  end
  return s / n
end

function std_of(xs, n)
  if n < 2 then
    return NAN
  end
  local m = mean_of(xs, n)
  -- Two-pass formula: numerically stable for losses that are close together.
  local ss = 0
  for i = 1, n do
    local d = xs[i] - m
    ss = ss + d * d
  end
  return math.sqrt(ss / (n - 1))
end

--- Arithmetic mean of the array `xs`. Returns NaN for an empty array.
function stats.mean(xs)
  local n = check.number_list("lunet.stats.mean", 1, "xs", xs)
  return mean_of(xs, n)
end

--- Sample standard deviation (divisor n-1) of `xs`.
-- Returns NaN when n < 2: a single observation carries no information about
-- spread, and NaN makes that visible instead of pretending the spread is 0.
function stats.std(xs)
  local n = check.number_list("lunet.stats.std", 1, "xs", xs)
  return std_of(xs, n)
end

-- Student's t 0.975 quantiles for df = 1..30 (two-sided 95% interval).
local T975 = {
  12.7062047362, 4.3026527297, 3.1824463053, 2.7764451052, 2.5705818356,
  2.4469118511, 2.3646242516, 2.3060041352, 2.2621571628, 2.2281388520,
  2.2009851601, 2.1788128297, 2.1603686565, 2.1447866879, 2.1314495456,
  2.1199052992, 2.1098155778, 2.1009220402, 2.0930240544, 2.0859634473,
  2.0796138447, 2.0738730679, 2.0686576104, 2.0638985616, 2.0595385528,
  2.0555294386, 2.0518305165, 2.0484071418, 2.0452296421, 2.0422724563,
}

local Z975 = 1.959963984540054

--- Student's t distribution 0.975 quantile for `df` degrees of freedom.
-- df = 1..30 come from an exact table (non-integer df in that range are
-- interpolated linearly); df > 30 use the Cornish-Fisher expansion around the
-- normal quantile (four terms), which is within 1e-6 of the exact value there;
-- df = math.huge gives the normal quantile 1.95996...
function stats.t_quantile_975(df)
  if type(df) ~= "number" or is_nan(df) or df < 1 then
    error("lunet.stats.t_quantile_975: argument #1 (df) must be a number >= 1, got " .. tostring(df), 2)
  end
  if df == math.huge then
    return Z975
  end
  if df <= 30 then
    local lo = math.floor(df)
    if lo == df then
      return T975[lo]
    end
    local f = df - lo
    return T975[lo] * (1 - f) + T975[lo + 1] * f
  end
  local z = Z975
  local z2 = z * z
  local g1 = (z2 + 1) * z / 4
  local g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
  local g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
  local g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
  return z + g1 / df + g2 / df ^ 2 + g3 / df ^ 3 + g4 / df ^ 4
end

function ci95_of(xs, n)
  local m = mean_of(xs, n)
  if n < 2 then
    return m, m
  end
  local half = stats.t_quantile_975(n - 1) * std_of(xs, n) / math.sqrt(n)
  return m - half, m + half
end

--- 95% confidence interval of the mean: mean ± t(n-1) * sd / sqrt(n).
-- Returns low, high. For n < 2 both bounds equal the mean (NaN when n = 0):
-- the interval is undefined, and a zero-width band keeps plots drawable.
function stats.ci95(xs)
  local n = check.number_list("lunet.stats.ci95", 1, "xs", xs)
  return ci95_of(xs, n)
end

--- Per-iteration summary of several runs.
-- series_list: array of arrays (one loss curve per run, possibly of unequal
-- length). diverged_flags: optional array of booleans, true = leave that run
-- out entirely. Returns {mean, std, ci_low, ci_high, n, left_out}, where the
-- first five are arrays indexed by iteration 1..L with L the length of the
-- longest series (diverged ones included, so the arrays line up with every
-- run's column); at index i they summarise the non-diverged runs that have a
-- value at i, n[i] counts them, and an index no kept run reaches gets NaN
-- statistics with n = 0. left_out is the number of diverged runs.
function stats.summarize(series_list, diverged_flags)
  local f = "lunet.stats.summarize"
  local runs = check.list(f, 1, "series_list", series_list, "a list of lists of numbers")
  local lengths = {}
  for r = 1, runs do
    lengths[r] = check.number_list(f, 1, ("series_list[%d]"):format(r), series_list[r], true)
  end
  if diverged_flags ~= nil then
    check.list(f, 2, "diverged_flags", diverged_flags, "a list of booleans")
  end
  diverged_flags = diverged_flags or {}
  local kept = {}
  local left_out = 0
  local len = 0
  for r = 1, runs do
    local s = series_list[r]
    if lengths[r] > len then
      len = lengths[r]
    end
    if diverged_flags[r] then
      left_out = left_out + 1
    else
      kept[#kept + 1] = s
    end
  end
  local out = { mean = {}, std = {}, ci_low = {}, ci_high = {}, n = {}, left_out = left_out }
  local column = {}
  for i = 1, len do
    local c = 0
    for _, s in ipairs(kept) do
      local v = s[i]
      if v ~= nil then
        c = c + 1
        column[c] = v
      end
    end
    for j = #column, c + 1, -1 do
      column[j] = nil
    end
    out.n[i] = c
    out.mean[i] = mean_of(column, c)
    out.std[i] = std_of(column, c)
    out.ci_low[i], out.ci_high[i] = ci95_of(column, c)
  end
  return out
end

-- window: a count of points; tol: a finite tolerance (an infinite one would make
-- every curve flat).
local PLATEAU_OPTIONS = { window = "positive_int", tol = "nonneg_number" }

--- First iteration from which a curve stays flat until its end.
-- Definition: with n = #series and scale = max(1, |series[n]|), the plateau
-- is the smallest i such that
--   max(series[i..n]) - min(series[i..n]) <= tol * scale   and
--   n - i + 1 >= window   (the flat stretch lasts at least `window` points).
-- The range of a suffix can only shrink as i grows, so once the condition
-- holds it holds for every later i: "flat from i on" is well defined. The
-- scale makes tol absolute for losses below 1 (so curves decaying towards 0
-- can plateau) and relative for larger values.
-- Returns nil when #series < window, when the tail is never flat, or when the
-- last `window` values contain a non-finite number (a NaN tail is not flat).
-- opts: {window = 10, tol = 1e-3}.
function stats.plateau(series, opts)
  local f = "lunet.stats.plateau"
  local n = check.number_list(f, 1, "series", series)
  opts = check.options(f, 2, opts, PLATEAU_OPTIONS)
  local window = opts.window or 10
  local tol = opts.tol or 1e-3
  if n < window then
    return nil
  end
  local last = series[n]
  if not is_finite(last) then
    return nil
  end
  local limit = tol * math.max(1, math.abs(last))
  local lo, hi = last, last
  local first = nil
  -- Walk backwards growing the suffix; stop at the first point that breaks it.
  for i = n, 1, -1 do
    local v = series[i]
    if not is_finite(v) then
      break
    end
    if v < lo then
      lo = v
    end
    if v > hi then
      hi = v
    end
    if hi - lo > limit then
      break
    end
    first = i
  end
  if first == nil or n - first + 1 < window then
    return nil
  end
  return first
end

local BLOCKS = { "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" }

--- Compact text rendering of a curve with the Unicode blocks ▁▂▃▄▅▆▇█.
-- When #xs > width the series is resampled into `width` buckets, each drawn
-- at the mean of its finite values; non-finite values (NaN, ±inf) and
-- buckets with no finite value are drawn as a space. A constant series is
-- drawn at the lowest level. width (a number >= 0) defaults to 60; below 1
-- it gives "".
function stats.sparkline(xs, width)
  local n = check.number_list("lunet.stats.sparkline", 1, "xs", xs)
  if width ~= nil and (type(width) ~= "number" or not (width >= 0)) then
    error("lunet.stats.sparkline: argument #2 (width) must be a number >= 0, got " .. tostring(width), 2)
  end
  width = width or 60
  if n == 0 or width < 1 then
    return ""
  end
  local m = math.min(n, math.floor(width))
  local vals = {}
  for k = 1, m do
    local a = math.floor((k - 1) * n / m) + 1
    local b = math.floor(k * n / m)
    local s, c = 0, 0
    for i = a, b do
      local v = xs[i]
      if is_finite(v) then
        s = s + v
        c = c + 1
      end
    end
    vals[k] = c > 0 and s / c or NAN
  end
  local lo, hi = math.huge, -math.huge
  for k = 1, m do
    local v = vals[k]
    if v == v then
      lo = math.min(lo, v)
      hi = math.max(hi, v)
    end
  end
  local out = {}
  for k = 1, m do
    local v = vals[k]
    if v ~= v then
      out[k] = " "
    elseif hi > lo then
      out[k] = BLOCKS[math.floor((v - lo) / (hi - lo) * 7 + 0.5) + 1]
    else
      out[k] = BLOCKS[1]
    end
  end
  return table.concat(out)
end

return stats
