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

-- log Gamma(x) for x > 0: the Lanczos approximation (g = 7, nine terms), good to
-- about 1e-15 relative, with the reflection formula below 0.5.
local LANCZOS = { 0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
  -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
  1.5056327351493116e-7 }
local function log_gamma(x)
  if x < 0.5 then
    return math.log(math.pi / math.abs(math.sin(math.pi * x))) - log_gamma(1 - x)
  end
  x = x - 1
  local a = LANCZOS[1]
  local t = x + 7.5
  for i = 2, 9 do a = a + LANCZOS[i] / (x + i - 1) end
  return 0.5 * math.log(2 * math.pi) + (x + 0.5) * math.log(t) - t + math.log(a)
end

-- The continued fraction of the incomplete beta function (modified Lentz's
-- method), converging for x < (a + 1) / (a + b + 2).
local function beta_fraction(a, b, x)
  local tiny = 1e-300
  local c, d = 1, 1 - (a + b) * x / (a + 1)
  if math.abs(d) < tiny then d = tiny end
  d = 1 / d
  local h = d
  for m = 1, 300 do
    local m2 = 2 * m
    local num = m * (b - m) * x / ((a + m2 - 1) * (a + m2))
    d = 1 + num * d
    if math.abs(d) < tiny then d = tiny end
    c = 1 + num / c
    if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    h = h * d * c
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))
    d = 1 + num * d
    if math.abs(d) < tiny then d = tiny end
    c = 1 + num / c
    if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    local step = d * c
    h = h * step
    if math.abs(step - 1) < 1e-15 then break end
  end
  return h
end

-- The regularized incomplete beta function I_x(a, b).
local function beta_regularized(x, a, b)
  if x <= 0 then return 0 end
  if x >= 1 then return 1 end
  local front = math.exp(log_gamma(a + b) - log_gamma(a) - log_gamma(b) + a * math.log(x) + b * math.log(1 - x))
  if x < (a + 1) / (a + b + 2) then
    return front * beta_fraction(a, b, x) / a
  end
  return 1 - front * beta_fraction(b, a, 1 - x) / b
end

--- P(|T| >= |t|) for Student's t distribution with df degrees of freedom (df > 0,
-- not necessarily whole): the two-sided p-value of a t statistic.
function stats.t_two_sided_p(t, df)
  if type(t) ~= "number" or t ~= t then
    error("lunet.stats.t_two_sided_p: argument #1 (t) must be a number, got " .. tostring(t), 2)
  end
  if type(df) ~= "number" or not (df > 0) then
    error("lunet.stats.t_two_sided_p: argument #2 (df) must be a number > 0, got " .. tostring(df), 2)
  end
  if t == math.huge or t == -math.huge then return 0 end
  if df > 1e7 then
    -- the normal limit (within 1e-8 of it here), where log Gamma of df / 2 would
    -- cost the beta function its precision: erfc(|t| / sqrt 2), by the
    -- Chebyshev fit of Numerical Recipes' erfcc (relative error below 1.2e-7)
    local z = math.abs(t) / math.sqrt(2)
    local u = 1 / (1 + 0.5 * z)
    return u * math.exp(-z * z - 1.26551223 + u * (1.00002368 + u * (0.37409196 + u * (0.09678418
      + u * (-0.18628806 + u * (0.27886807 + u * (-1.13520398 + u * (1.48851587
      + u * (-0.82215223 + u * 0.17087277)))))))))
  end
  return beta_regularized(df / (df + t * t), df / 2, 0.5)
end

--- Welch's t-test of the difference of two means (unequal variances).
-- Returns {diff = mean(xs) - mean(ys), ci_low, ci_high (its 95% confidence
-- interval), t, df (Welch-Satterthwaite), p (two-sided), n1, n2}. With fewer than
-- two values on a side the test is undefined: every field but diff, n1, n2 is NaN.
function stats.welch(xs, ys)
  local f = "lunet.stats.welch"
  local n1 = check.number_list(f, 1, "xs", xs)
  local n2 = check.number_list(f, 2, "ys", ys)
  local m1, m2 = mean_of(xs, n1), mean_of(ys, n2)
  local out = { diff = m1 - m2, n1 = n1, n2 = n2, ci_low = NAN, ci_high = NAN, t = NAN, df = NAN, p = NAN }
  if n1 < 2 or n2 < 2 then return out end
  local s1, s2 = std_of(xs, n1), std_of(ys, n2)
  local v1, v2 = s1 * s1 / n1, s2 * s2 / n2
  local se = math.sqrt(v1 + v2)
  if se == 0 then
    -- no spread at all: the means differ surely or not at all
    out.t = out.diff == 0 and NAN or (out.diff > 0 and math.huge or -math.huge)
    out.df = n1 + n2 - 2
    out.p = out.diff == 0 and 1 or 0
    out.ci_low, out.ci_high = out.diff, out.diff
    return out
  end
  out.t = out.diff / se
  out.df = (v1 + v2) ^ 2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
  out.p = stats.t_two_sided_p(out.t, out.df)
  local half = stats.t_quantile_975(math.max(1, out.df)) * se
  out.ci_low, out.ci_high = out.diff - half, out.diff + half
  return out
end

--- First index at which `series` is below `level`, or nil when it never is.
function stats.first_below(series, level)
  local f = "lunet.stats.first_below"
  local n = check.number_list(f, 1, "series", series)
  if type(level) ~= "number" or level ~= level then
    error(f .. ": argument #2 (level) must be a number, got " .. tostring(level), 2)
  end
  for i = 1, n do
    if series[i] < level then return i end
  end
  return nil
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
