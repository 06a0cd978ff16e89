local stats = require("lunet.stats")

local function is_nan(x)
  return x ~= x
end

describe("lunet.stats", function()
  local xs = { 2, 4, 4, 4, 5, 5, 7, 9 }

  describe("mean and std", function()
    it("computes the mean and the sample standard deviation", function()
      assert.are.equal(5, stats.mean(xs))
      -- sum of squared deviations = 32, 32 / 7 = 4.571428..., sqrt = 2.138089935
      assert.is_near(2.138089935, stats.std(xs), 1e-9)
      assert.is_near(math.sqrt(32 / 7), stats.std(xs), 1e-15)
    end)

    it("returns NaN where the statistic is undefined", function()
      assert.is_true(is_nan(stats.mean({})))
      assert.is_true(is_nan(stats.std({})))
      assert.is_true(is_nan(stats.std({ 3 })))
      assert.are.equal(0, stats.std({ 3, 3 }))
    end)

    it("lets a NaN value propagate", function()
      assert.is_true(is_nan(stats.mean({ 1, 0 / 0, 2 })))
    end)
  end)

  describe("t_quantile_975", function()
    -- cases: {degrees of freedom, expected quantile, tolerance}
    local function check(cases)
      for _, c in ipairs(cases) do assert.is_near(c[2], stats.t_quantile_975(c[1]), c[3], "df=" .. c[1]) end
    end

    it("matches the standard table", function()
      check({ { 1, 12.706, 1e-3 }, { 2, 4.303, 1e-3 }, { 10, 2.228, 1e-3 }, { 19, 2.093, 1e-3 }, { 30, 2.042, 1e-3 } })
    end)

    it("is accurate beyond the table", function()
      -- Reference values from numerically integrating the t density.
      check({
        { 31, 2.0395134464, 1e-6 }, { 40, 2.0210753903, 1e-6 }, { 60, 2.0002978220, 1e-6 },
        { 100, 1.984, 1e-3 }, { 100, 1.9839715185, 1e-6 }, { 1000, 1.9623390808, 1e-6 },
        { math.huge, 1.959964, 1e-6 },
      })
    end)

    it("decreases monotonically with df", function()
      local prev = math.huge
      for df = 1, 200 do
        local q = stats.t_quantile_975(df)
        assert.is_true(q < prev, "not decreasing at df=" .. df)
        prev = q
      end
    end)

    it("rejects df < 1", function()
      assert.has_error(function() stats.t_quantile_975(0) end)
      assert.has_error(function() stats.t_quantile_975(0 / 0) end)
    end)
  end)

  describe("ci95", function()
    it("is mean ± t * sd / sqrt(n)", function()
      local lo, hi = stats.ci95(xs)
      -- t(7) = 2.364624252, sd / sqrt(8) = 0.755928946 -> half width 1.787509...
      local half = 2.3646242516 * 2.138089935 / math.sqrt(8)
      assert.is_near(5 - half, lo, 1e-8)
      assert.is_near(5 + half, hi, 1e-8)
      assert.is_near(1.78749, hi - 5, 1e-5)
    end)

    it("collapses to the mean for fewer than two values", function()
      local lo, hi = stats.ci95({ 3.5 })
      assert.are.equal(3.5, lo)
      assert.are.equal(3.5, hi)
      lo, hi = stats.ci95({})
      assert.is_true(is_nan(lo) and is_nan(hi))
    end)
  end)

  describe("summarize", function()
    it("leaves out diverged runs and handles unequal lengths", function()
      local s = stats.summarize({
        { 1, 2, 3 },
        { 3, 4 },
        { 100, 0 / 0, 1e9, 1e9 }, -- diverged: must not contaminate anything
        { 5, 6, 7 },
      }, { false, false, true, false })
      assert.are.equal(1, s.left_out)
      assert.are.same({ 3, 3, 2, 0 }, s.n)
      assert.are.equal(3, s.mean[1])
      assert.are.equal(4, s.mean[2])
      assert.are.equal(5, s.mean[3])
      assert.are.equal(2, s.std[1])
      assert.are.equal(2, s.std[2])
      assert.is_near(math.sqrt(8), s.std[3], 1e-12)
      -- index 4 is reached only by the diverged run
      assert.is_true(is_nan(s.mean[4]) and is_nan(s.std[4]))
      local half1 = 4.3026527297 * 2 / math.sqrt(3)
      assert.is_near(3 - half1, s.ci_low[1], 1e-9)
      assert.is_near(3 + half1, s.ci_high[1], 1e-9)
      local half3 = 12.7062047362 * math.sqrt(8) / math.sqrt(2)
      assert.is_near(5 + half3, s.ci_high[3], 1e-9)
    end)

    it("treats missing flags as not diverged", function()
      local s = stats.summarize({ { 1 }, { 3 } })
      assert.are.equal(0, s.left_out)
      assert.are.same({ 2 }, s.mean)
      assert.are.same({ 2 }, s.n)
    end)

    it("gives single-run statistics with NaN spread", function()
      local s = stats.summarize({ { 4, 5 } }, { false })
      assert.are.same({ 4, 5 }, s.mean)
      assert.is_true(is_nan(s.std[1]))
      assert.are.equal(4, s.ci_low[1])
      assert.are.equal(4, s.ci_high[1])
    end)
  end)

  describe("plateau", function()
    it("finds where an exponential decay settles", function()
      local s = {}
      for i = 1, 200 do
        s[i] = 0.5 + 2 * math.exp(-i / 10)
      end
      -- tail range 2e^{-i/10} - 2e^{-20} <= 1e-3 first holds at i = 77
      -- (2e^{-7.6} = 1.0009e-3 is just too large).
      assert.are.equal(77, stats.plateau(s, { window = 10, tol = 1e-3 }))
      assert.are.equal(77, stats.plateau(s))
      -- a looser tolerance plateaus earlier
      assert.are.equal(53, stats.plateau(s, { tol = 1e-2 }))
    end)

    it("never finds one on a linear decline", function()
      local s = {}
      for i = 1, 100 do
        s[i] = 1 - 0.01 * i
      end
      assert.is_nil(stats.plateau(s))
    end)

    it("finds a noisy flat line flat from the start", function()
      local s = {}
      for i = 1, 100 do
        -- deterministic noise of amplitude 4e-4 (range < 1e-3)
        s[i] = 0.7 + 4e-4 * math.sin(i * 12.9898)
      end
      assert.are.equal(1, stats.plateau(s, { window = 10, tol = 1e-3 }))
    end)

    it("scales the tolerance with large values", function()
      local s = {}
      for i = 1, 50 do
        s[i] = 1000 + 0.4 * math.sin(i) -- range 0.8 <= 1e-3 * 1000
      end
      assert.are.equal(1, stats.plateau(s))
    end)

    it("requires the flat stretch to last a full window", function()
      local s = {}
      for i = 1, 20 do
        s[i] = 20 - i
      end
      for i = 21, 25 do
        s[i] = 0
      end
      assert.is_nil(stats.plateau(s, { window = 10 }))
      assert.are.equal(20, stats.plateau(s, { window = 6 })) -- s[20] = 0 as well
    end)

    it("returns nil for short or non-finite series", function()
      assert.is_nil(stats.plateau({ 1, 1, 1 }, { window = 10 }))
      assert.is_nil(stats.plateau({}))
      local s = {}
      for i = 1, 30 do
        s[i] = 1
      end
      s[30] = 0 / 0
      assert.is_nil(stats.plateau(s))
      s[30] = 1
      s[10] = 0 / 0
      assert.are.equal(11, stats.plateau(s))
    end)

    it("rejects unknown and invalid options", function()
      assert.has_error(function() stats.plateau({ 1 }, { windw = 3 }) end,
        "lunet.stats.plateau: unknown option 'windw' (valid: tol, window)")
      assert.has_error(function() stats.plateau({ 1 }, { window = 0 }) end)
      assert.has_error(function() stats.plateau({ 1 }, { tol = -1 }) end)
    end)

    it("reports option errors at the caller's line", function()
      local ok, err = pcall(function() stats.plateau({ 1 }, { windw = 3 }) end)
      assert.is_false(ok)
      assert.matches("stats_spec.lua:%d+: lunet%.stats%.plateau: unknown option 'windw'", err)
    end)

    it("names the option that has a bad value", function()
      assert.has_error(function() stats.plateau({ 1 }, { window = 0 }) end,
        "lunet.stats.plateau: option 'window' must be a positive integer, got 0")
      assert.has_error(function() stats.plateau({ 1 }, { window = math.huge }) end,
        "lunet.stats.plateau: option 'window' must be a positive integer, got inf")
      assert.has_error(function() stats.plateau({ 1 }, { tol = 0 / 0 }) end,
        "lunet.stats.plateau: option 'tol' must be a finite number >= 0, got " .. tostring(0 / 0))
      -- an integral float is a fine window
      assert.are.equal(1, stats.plateau({ 2, 2, 2 }, { window = 3.0 }))
    end)
  end)

  describe("bad arguments", function()
    local function err_of(f, ...)
      local ok, err = pcall(f, ...)
      assert.is_false(ok, "expected an error")
      return err
    end

    it("need a list of numbers, and say which argument is wrong", function()
      for _, name in ipairs({ "mean", "std", "ci95", "sparkline", "plateau" }) do
        local arg = name == "plateau" and "series" or "xs"
        assert.are.equal(("lunet.stats.%s: argument #1 (%s) must be a list of numbers, got nil"):format(name, arg),
          err_of(stats[name]))
        assert.are.equal(('lunet.stats.%s: argument #1 (%s) must be a list of numbers, got "1 2"'):format(name, arg),
          err_of(stats[name], "1 2"))
        assert.are.equal(('lunet.stats.%s: argument #1 (%s) must be a list of numbers, got "x" at index 2')
          :format(name, arg), err_of(stats[name], { 1, "x", 3 }))
        assert.are.equal(("lunet.stats.%s: argument #1 (%s) must be a list of numbers, got nil at index 1")
          :format(name, arg), err_of(stats[name], { nil, 2, 3 }))
      end
    end)

    it("are reported at the caller's line", function()
      assert.matches("^spec/stats_spec.lua:%d+: lunet%.stats%.mean: argument #1",
        err_of(function() stats.mean({ true }) end))
      assert.matches("^spec/stats_spec.lua:%d+: lunet%.stats%.summarize: argument #1",
        err_of(function() stats.summarize({ { 1 }, 7 }) end))
      assert.matches("^spec/stats_spec.lua:%d+: lunet%.stats%.plateau: option 'tol'",
        err_of(function() stats.plateau({ 1 }, { tol = -1 }) end))
    end)

    it("check every series of summarize, which allows absent values", function()
      assert.are.equal("lunet.stats.summarize: argument #1 (series_list) must be a list of lists of numbers, got 3",
        err_of(stats.summarize, 3))
      assert.are.equal("lunet.stats.summarize: argument #1 (series_list[2]) must be a list of numbers, got nil",
        err_of(stats.summarize, { { 1 }, nil, { 2 } }))
      assert.are.equal('lunet.stats.summarize: argument #1 (series_list[1]) must be a list of numbers, got "a" '
        .. "at index 2", err_of(stats.summarize, { { 1, "a" } }))
      assert.are.equal("lunet.stats.summarize: argument #2 (diverged_flags) must be a list of booleans, got boolean",
        err_of(stats.summarize, { { 1 } }, true))
      local s = stats.summarize({ { nil, 2 }, { 4, 6 } })
      assert.are.same({ 1, 2 }, s.n)
      assert.are.same({ 4, 4 }, s.mean)
    end)

    it("check the other arguments", function()
      assert.are.equal("lunet.stats.sparkline: argument #2 (width) must be a number >= 0, got -1",
        err_of(stats.sparkline, { 1, 2 }, -1))
      assert.matches("^lunet%.stats%.sparkline: argument #2 %(width%) must be a number >= 0, got %-?nan",
        err_of(stats.sparkline, { 1, 2 }, 0 / 0))
      assert.are.equal("", stats.sparkline({ 1, 2 }, 0))
      assert.are.equal("lunet.stats.t_quantile_975: argument #1 (df) must be a number >= 1, got 0",
        err_of(stats.t_quantile_975, 0))
    end)
  end)

  describe("Welch's t-test", function()
    it("gives two-sided p-values of Student's t distribution", function()
      -- closed forms: df = 1 (Cauchy) and df = 2
      for _, t in ipairs({ 0.1, 1, 3, 12 }) do
        assert.is_true(math.abs(stats.t_two_sided_p(t, 1) - (1 - 2 / math.pi * math.atan(t))) < 1e-12)
        assert.is_true(math.abs(stats.t_two_sided_p(-t, 2) - (1 - t / math.sqrt(2 + t * t))) < 1e-12)
      end
      -- the 0.975 quantiles of the table have p = 0.05 exactly
      for _, df in ipairs({ 3, 5, 10, 30 }) do
        assert.is_true(math.abs(stats.t_two_sided_p(stats.t_quantile_975(df), df) - 0.05) < 1e-9, "df " .. df)
      end
      -- a non-integral df (checked by numerical integration of the density: 0.00707589879121)
      assert.is_true(math.abs(stats.t_two_sided_p(3, 20) - 0.0070758987912) < 1e-12)
      assert.is_true(math.abs(stats.t_two_sided_p(1.96, math.huge) - 0.0499957903) < 1e-8)
      assert.are.equal(0, stats.t_two_sided_p(math.huge, 4))
      assert.are.equal(1, stats.t_two_sided_p(0, 4))
      assert.has_error(function() stats.t_two_sided_p(1, 0) end,
        "lunet.stats.t_two_sided_p: argument #2 (df) must be a number > 0, got 0")
    end)

    it("compares two means with unequal variances", function()
      local w = stats.welch({ 1, 2, 3, 4, 5 }, { 2, 4, 6, 8, 10 })
      assert.are.equal(-3, w.diff)
      assert.is_true(math.abs(w.t - (-3 / math.sqrt(2.5))) < 1e-12)
      assert.is_true(math.abs(w.df - 100 / 17) < 1e-12) -- (0.5 + 2)^2 / (0.5^2/4 + 2^2/4)
      -- R: t.test(1:5, c(2,4,6,8,10)) gives p-value = 0.1075, CI -6.891912 0.891912
      assert.is_true(math.abs(w.p - 0.10753) < 1e-4)
      assert.is_true(math.abs(w.ci_low + 6.891912) < 1e-3 and math.abs(w.ci_high - 0.891912) < 1e-3)
      assert.are.same({ 5, 5 }, { w.n1, w.n2 })
      local same = stats.welch({ 1, 1 }, { 1, 1 })
      assert.are.same({ 0, 1 }, { same.diff, same.p })
      local one = stats.welch({ 1 }, { 2, 3 })
      assert.are.equal(-1.5, one.diff)
      assert.is_true(one.p ~= one.p)
      assert.has_error(function() stats.welch({ 1, "x" }, { 1, 2 }) end)
    end)

    it("finds the first index below a level", function()
      assert.are.equal(3, stats.first_below({ 2.3, 2.0, 1.9, 1.2, 0.9 }, 2.0))
      assert.are.equal(5, stats.first_below({ 2.3, 2.0, 1.9, 1.2, 0.9 }, 1.0))
      assert.is_nil(stats.first_below({ 2.3, 2.0 }, 1.5))
      assert.is_nil(stats.first_below({ 0 / 0 }, 1.5))
      assert.has_error(function() stats.first_below({ 1 }, nil) end,
        "lunet.stats.first_below: argument #2 (level) must be a number, got nil")
    end)
  end)

  describe("sparkline", function()
    it("maps the range onto the eight blocks", function()
      assert.are.equal("▁▂▃▄▅▆▇█", stats.sparkline({ 0, 1, 2, 3, 4, 5, 6, 7 }, 20))
      assert.are.equal("█▁", stats.sparkline({ 10, 2 }))
    end)

    it("draws NaN as a space and constant series at the bottom", function()
      assert.are.equal("▁ █", stats.sparkline({ 1, 0 / 0, 3 }, 10))
      assert.are.equal("▁▁▁", stats.sparkline({ 4, 4, 4 }, 10))
      assert.are.equal("", stats.sparkline({}, 10))
    end)

    it("resamples long series to the width by bucket means", function()
      local ramp = {}
      for i = 1, 100 do
        ramp[i] = i
      end
      local s = stats.sparkline(ramp, 10)
      assert.are.equal(10, utf8.len(s))
      assert.are.equal("▁", s:sub(1, 3))
      assert.are.equal("█", s:sub(-3))
      -- buckets of 2: means 1.5, 3.5 -> lowest and highest
      assert.are.equal("▁█", stats.sparkline({ 1, 2, 3, 4 }, 2))
    end)
  end)
end)
