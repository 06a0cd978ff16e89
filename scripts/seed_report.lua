#!/usr/bin/env lua5.4
--- seed_report.lua: reproduces the study "Loss Values in Neural Networks" on MNIST.
--
-- The first 3000 MNIST training images, NLL loss, the PyTorch MNIST-example CNN,
-- batch 64, iterations = epochs:
--   Figure 1: 20 runs x 50 iterations, SGD lr 1e-4, momentum 0.9;
--   Figure 2: the same with 100 iterations;
--   Figure 3: 20 runs x 100 iterations, lr 1e-3, momentum 0.4;
--   an overlay of Figures 2 and 3, and an lr x momentum sweep (fewer runs) as a heatmap.
-- Writes out/report/: CSV, JSON, PNG and SVG per figure, and report.md.
-- Usage: lunet report [options]   (--help lists them; from a checkout: bin/lunet report)
local lunet = require("lunet")
local cli = require("lunet.cli")

local usage = [[
usage: lunet report [options]   (scripts/seed_report.lua; from a checkout: bin/lunet report)
  --runs N              runs per figure (20)
  --iterations1 N       epochs of Figure 1 (50)
  --iterations N        epochs of Figures 2 and 3 (100)
  --n N                 training images, the first N of MNIST's training set (3000)
  --lr X --momentum X   SGD settings of Figures 1 and 2 (1e-4, 0.9)
  --lr3 X --momentum3 X SGD settings of Figure 3 (1e-3, 0.4)
  --batch N             mini-batch size (64)
  --threads N           worker threads (all cores)
  --sweep-runs N --sweep-iterations N   size of the lr x momentum sweep (3, 20)
  --seed N              base seed (1)
  --out DIR             output directory (out/report)
  --quick               a reduced report for a first look (4 runs, 5/10 epochs, small sweep)
  --fresh               recompute everything instead of reusing stored runs (Figure 1
                        still comes from Figure 2's runs, computed afresh)
  --help]]

local OPTIONS = {
  runs = { "int", 20, min = 1 }, iterations1 = { "int", 50, min = 1 }, iterations = { "int", 100, min = 1 },
  n = { "int", 3000, min = 1 }, lr = { "number", 1e-4, positive = true }, momentum = { "number", 0.9, min = 0 },
  lr3 = { "number", 1e-3, positive = true }, momentum3 = { "number", 0.4, min = 0 },
  batch = { "int", 64, min = 1 }, threads = { "int", lunet.cpu_count(), min = 1 },
  out = { "string", "out/report", what = "a directory" }, sweep_runs = { "int", 3, min = 1 },
  sweep_iterations = { "int", 20, min = 1 }, seed = { "int", 1 }, quick = { "flag" }, fresh = { "flag" },
}

local function fail(msg)
  io.stderr:write("seed_report: ", msg, "\n", usage, "\n")
  os.exit(2)
end

-- --quick shrinks every size the user did not set; what the user set stays.
local function parse(args)
  local cfg, given = cli.parse(args, { program = "seed_report", usage = usage, status = 2, options = OPTIONS })
  if cfg.quick then
    local quick = { runs = 4, iterations1 = 5, iterations = 10, sweep_runs = 2, sweep_iterations = 5,
      out = "out/report-quick" }
    for k, v in pairs(quick) do
      if not given[k] then cfg[k] = v end
    end
  end
  if cfg.iterations1 > cfg.iterations then fail("--iterations1 must not exceed --iterations") end
  return cfg
end

local cfg = parse(arg)
local t0 = os.time()

local train, err = lunet.mnist { split = "train", n = cfg.n }
if not train then
  io.stderr:write("seed_report: ", err, "\n")
  os.exit(1)
end
local test = assert(lunet.mnist { split = "test" })


local function experiment(name, iterations, lr, momentum, extra)
  local e = {
    name = name, model = lunet.models.mnist_cnn, data = train, test = test, loss = "nll",
    optimizer = lunet.sgd { lr = lr, momentum = momentum }, batch = cfg.batch,
    iterations = iterations, unit = "epoch", runs = cfg.runs, seed = cfg.seed,
    threads = cfg.threads, out = cfg.out, fresh = cfg.fresh,
  }
  for k, v in pairs(extra or {}) do e[k] = v end
  io.stderr:write(("%s: %d runs x %d epochs, %s %s\n"):format(name, e.runs, iterations, e.optimizer.kind,
    table.concat(lunet.Result.optimizer_settings(e.optimizer), " ")))
  return lunet.experiment(e)
end

-- Figure 2 first, recording test figures at Figure 1's length too: Figure 1's runs are
-- then the first iterations of Figure 2's (bit for bit the same as running them
-- separately, since an epoch never depends on the epochs after it). Both have the same
-- settings, so the run store holds them under one key, and Figure 1 reads Figure 2's
-- records (never `fresh`: with --fresh, Figure 2's runs are the fresh ones).
local fig2 = experiment("figure2", cfg.iterations, cfg.lr, cfg.momentum, { test_at = { cfg.iterations1 } })
local fig1 = experiment("figure1", cfg.iterations1, cfg.lr, cfg.momentum, { fresh = false })
local fig3 = experiment("figure3", cfg.iterations, cfg.lr3, cfg.momentum3)

local sweep = (function()
  io.stderr:write(("sweep: lr x momentum, %d runs x %d epochs each\n"):format(cfg.sweep_runs, cfg.sweep_iterations))
  return lunet.sweep {
    name = "sweep",
    base = { model = lunet.models.mnist_cnn, data = train, test = test, loss = "nll",
      optimizer = lunet.sgd { lr = cfg.lr, momentum = cfg.momentum }, batch = cfg.batch,
      iterations = cfg.sweep_iterations, runs = cfg.sweep_runs, seed = cfg.seed, threads = cfg.threads,
      out = cfg.out, fresh = cfg.fresh },
    grid = { lr = { 1e-4, 1e-3, 1e-2 }, momentum = { 0, 0.4, 0.9 } },
  }
end)()

-- ------------------------------------------------------------------- files

local problems = {}
local function check(ok, msg)
  if not ok then problems[#problems + 1] = msg end
  return ok
end

local function settings(lr, momentum) return ("lr %g, momentum %g"):format(lr, momentum) end
local figures = {
  { key = "figure1", res = fig1, label = "Figure 1 (" .. settings(cfg.lr, cfg.momentum) .. ")",
    title = ("Figure 1: %d runs x %d epochs, %s"):format(cfg.runs, cfg.iterations1, settings(cfg.lr, cfg.momentum)) },
  { key = "figure2", res = fig2, label = "Figure 2 (" .. settings(cfg.lr, cfg.momentum) .. ")",
    title = ("Figure 2: %d runs x %d epochs, %s"):format(cfg.runs, cfg.iterations, settings(cfg.lr, cfg.momentum)) },
  { key = "figure3", res = fig3, label = "Figure 3 (" .. settings(cfg.lr3, cfg.momentum3) .. ")",
    title = ("Figure 3: %d runs x %d epochs, %s"):format(cfg.runs, cfg.iterations, settings(cfg.lr3, cfg.momentum3)) },
}
for _, f in ipairs(figures) do
  local prefix = cfg.out .. "/" .. f.key
  check(f.res:save(prefix))
  for _, ext in ipairs({ "png", "svg" }) do
    local ok, perr = f.res:plot { file = prefix .. "." .. ext, title = f.title, band = "std", labels = { f.label } }
    check(ok, perr)
  end
end
for _, ext in ipairs({ "png", "svg" }) do
  local ok, perr = lunet.plot({ fig2, fig3 }, { file = cfg.out .. "/overlay." .. ext,
    labels = { figures[2].label, figures[3].label }, title = "Figures 2 and 3 overlaid" })
  check(ok, perr)
end
for _, ext in ipairs({ "png", "svg" }) do
  local ok, perr = sweep:heatmap { file = cfg.out .. "/sweep." .. ext, metric = "final_mean",
    title = ("final mean training loss (NLL) after %d epochs (%d runs each)"):format(cfg.sweep_iterations, cfg.sweep_runs) }
  check(ok, perr)
end
check(sweep:save(cfg.out .. "/sweep"))

-- ------------------------------------------------------------------ report

local function fmt(v, f) return (v == v and v ~= nil) and (f or "%.4f"):format(v) or "n/a" end

-- The time column: the seconds spent, or, when the run store answered every run, whose
-- runs they were (the store's records say which experiment computed them).
local function time_of(r)
  local p = r.provenance
  if p.runs_computed == 0 and p.runs_cached == #r.runs and p.reused_from and #p.reused_from > 0 then
    local names = {}
    for i, n in ipairs(p.reused_from) do names[i] = n:gsub("^figure(%d)$", "figure %1") end
    return "from " .. table.concat(names, " and ") .. "'s runs"
  end
  return ("%.0f s"):format(p.seconds or 0) .. (p.runs_cached > 0 and (" (%d runs stored before)"):format(p.runs_cached) or "")
end

-- The final loss of every kept run (the runs the final mean is over).
local function final_losses(res)
  local out = {}
  for _, run in ipairs(res.runs) do
    if not run.diverged and #run.loss > 0 then out[#out + 1] = run.loss[#run.loss] end
  end
  return out
end

local function fmt_p(p)
  if p ~= p then return "n/a" end
  if p < 1e-6 then return "< 1e-6" end
  return ("= %.2g"):format(p)
end

-- One comparison: Welch's t-test of the final losses of `a` against `b`, and a
-- verdict in words. Lower loss is better.
local function compare(a_name, a, b_name, b)
  local w = lunet.stats.welch(final_losses(a), final_losses(b))
  local text = ("difference of final mean loss %s - %s = %s (95%% CI %s to %s; Welch's t = %s, df = %s, p %s; %d and %d runs)")
    :format(a_name, b_name, fmt(w.diff), fmt(w.ci_low), fmt(w.ci_high), fmt(w.t, "%.2f"), fmt(w.df, "%.1f"),
      fmt_p(w.p), w.n1, w.n2)
  local verdict
  if w.p ~= w.p then
    verdict = ("too few runs to test (%d and %d; at least 2 each)"):format(w.n1, w.n2)
  elseif w.p >= 0.05 then
    verdict = ("no difference shown at the 5%% level between %s and %s"):format(a_name, b_name)
  else
    local lower, higher = a_name, b_name
    if w.diff > 0 then lower, higher = b_name, a_name end
    local ma, mb = a:final(), b:final()
    local ratio = math.max(ma, mb) / math.max(1e-12, math.min(ma, mb))
    verdict = ("%s ends with a lower loss than %s (%.1f times lower, p %s)"):format(lower, higher, ratio, fmt_p(w.p))
  end
  return verdict, text, w
end

-- The figures' windows differ when --iterations1 is short: one window for all,
-- stated in the column header.
local window = 10
for _, f in ipairs(figures) do window = math.min(window, f.res.iterations) end
local LEVELS = { 2.0, 1.5, 1.0 }
local steps_per_epoch = (cfg.n + cfg.batch - 1) // cfg.batch

local lines = {
  "# Loss Values in Neural Networks: reproduction with lunet", "",
  ("lunet %s, %s, %d threads, %s. Data: the first %d MNIST training images; test: the 10000 test images."):format(
    lunet.version, fig2.provenance.cpu, cfg.threads, os.date("!%Y-%m-%d %H:%M UTC"), cfg.n),
  ("Network: PyTorch's MNIST-example CNN; NLL loss; SGD; batch %d; iterations are epochs (below); seed %d."):format(cfg.batch, cfg.seed),
  "Every run draws its initialisation, shuffling and dropout from its own seed derived from (seed, run).",
  "",
  "## Verdict",
  "",
}
local fig_verdict, fig_test = compare("Figure 3", fig3, "Figure 2", fig2)
lines[#lines + 1] = ("**Figure 3 (%s) against Figure 2 (%s), after %d epochs:** %s."):format(
  settings(cfg.lr3, cfg.momentum3), settings(cfg.lr, cfg.momentum), cfg.iterations, fig_verdict)
lines[#lines + 1] = ""
lines[#lines + 1] = "- " .. fig_test .. "."
lines[#lines + 1] = ""

-- the sweep: its best cell against the cell with the study's settings
local best, study
for _, c in ipairs(sweep.cells) do
  local m = c.result:final()
  if m == m and (not best or m < best.result:final()) then best = c end
  if c.params.lr == cfg.lr and c.params.momentum == cfg.momentum then study = c end
end
local sweep_verdict, sweep_test
if best and study and best ~= study then
  local best_name = "the best cell (" .. settings(best.params.lr, best.params.momentum) .. ")"
  local study_name = "the study's settings (" .. settings(cfg.lr, cfg.momentum) .. ")"
  sweep_verdict, sweep_test = compare(best_name, best.result, study_name, study.result)
elseif best and study then
  sweep_verdict = "the study's settings (" .. settings(cfg.lr, cfg.momentum) .. ") are the best cell of the sweep"
elseif best then
  sweep_verdict = ("the best cell is %s; the study's settings are not on the grid"):format(
    settings(best.params.lr, best.params.momentum))
else
  sweep_verdict = "every cell of the sweep diverged"
end
lines[#lines + 1] = ("**Sweep (%d runs x %d epochs per cell):** %s."):format(cfg.sweep_runs, cfg.sweep_iterations,
  sweep_verdict)
if sweep_test then
  lines[#lines + 1] = ""
  lines[#lines + 1] = "- " .. sweep_test .. "."
end
lines[#lines + 1] = ""
lines[#lines + 1] = "First epoch at which each mean curve falls below a loss level (\"-\": never within the run):"
lines[#lines + 1] = ""
local head, rule = { "| figure" }, { "|---" }
for _, level in ipairs(LEVELS) do
  head[#head + 1] = (" below %.1f"):format(level)
  rule[#rule + 1] = "---"
end
lines[#lines + 1] = table.concat(head, " |") .. " |"
lines[#lines + 1] = table.concat(rule, "|") .. "|"
for _, f in ipairs(figures) do
  local row = { "| " .. f.label }
  for _, level in ipairs(LEVELS) do
    local at = lunet.stats.first_below(f.res.mean, level)
    row[#row + 1] = " " .. (at and ("epoch " .. at) or "-")
  end
  lines[#lines + 1] = table.concat(row, " |") .. " |"
end
lines[#lines + 1] = ""
lines[#lines + 1] = "## Iterations are read as epochs"
lines[#lines + 1] = ""
lines[#lines + 1] = ("The study plots loss against \"iterations\" without saying what one is. Here an iteration is an epoch, "
  .. "one pass over the %d training images: with batch %d that is %d optimizer steps (%d full batches and a last partial "
  .. "one, which is kept), so %d iterations are %d steps. Read as single steps instead, Figure 1's %d iterations would be "
  .. "%.1f epochs, and at lr %g an epoch barely moves the loss: the mean training loss of the first epoch is %s here, "
  .. "next to ln 10 = 2.303 for a net that has learnt nothing. Each point of a curve is the mean over that epoch's "
  .. "batches of the training loss, averaged over the runs."):format(
  cfg.n, cfg.batch, steps_per_epoch, cfg.n // cfg.batch, cfg.iterations, cfg.iterations * steps_per_epoch,
  cfg.iterations1, cfg.iterations1 / steps_per_epoch, cfg.lr, fmt(fig2.mean[1], "%.3f"))
lines[#lines + 1] = ""
lines[#lines + 1] = "## Summary"
lines[#lines + 1] = ""
lines[#lines + 1] = ("| figure | runs | epochs | lr | momentum | final mean loss | std | 95%% CI | plateau (window %d epochs, tol 1e-3) | test accuracy | time |")
  :format(window)
lines[#lines + 1] = "|---|---|---|---|---|---|---|---|---|---|---|"
for _, f in ipairs(figures) do
  local r = f.res
  local m, sd, at = r:final()
  local acc, acc_sd = r:test_summary()
  local p = r:plateau { window = window, tol = 1e-3 }
  lines[#lines + 1] = ("| %s | %d%s | %d | %g | %g | %s | %s | [%s, %s] | %s | %s%% +- %s | %s |"):format(
    f.key, #r.runs, r.left_out > 0 and (" (" .. r.left_out .. " diverged)") or "", r.config.iterations,
    r.config.lr, r.config.momentum, fmt(m), fmt(sd), fmt(r.ci_low[at or 1]), fmt(r.ci_high[at or 1]),
    p and ("epoch " .. p) or "none", fmt(100 * acc, "%.2f"), fmt(100 * acc_sd, "%.2f"),
    time_of(r))
end
lines[#lines + 1] = ""
lines[#lines + 1] = "Bands in the figures: mean +- 1 std over the runs; the 95% CI column is that of the mean."
lines[#lines + 1] = ""
for _, f in ipairs(figures) do
  lines[#lines + 1] = "## " .. f.title
  lines[#lines + 1] = ""
  lines[#lines + 1] = ("![%s](%s.png)"):format(f.key, f.key)
  lines[#lines + 1] = ""
  lines[#lines + 1] = "```"
  lines[#lines + 1] = tostring(f.res)
  lines[#lines + 1] = "```"
  lines[#lines + 1] = ("Data: [%s.csv](%s.csv), [%s.json](%s.json), plot also as [SVG](%s.svg)."):format(
    f.key, f.key, f.key, f.key, f.key)
  lines[#lines + 1] = ""
end
lines[#lines + 1] = "## Figures 2 and 3 overlaid"
lines[#lines + 1] = ""
lines[#lines + 1] = "![overlay](overlay.png)"
lines[#lines + 1] = ""
lines[#lines + 1] = ("Figure 3 against Figure 2: %s; %s."):format(fig_verdict, fig_test)
lines[#lines + 1] = ""
lines[#lines + 1] = ("## Sweep: lr x momentum (%d runs x %d epochs per cell)"):format(cfg.sweep_runs, cfg.sweep_iterations)
lines[#lines + 1] = ""
lines[#lines + 1] = "![sweep](sweep.png)"
lines[#lines + 1] = ""
lines[#lines + 1] = "| lr | momentum | final mean loss | std | test accuracy |"
lines[#lines + 1] = "|---|---|---|---|---|"
for _, row in ipairs(sweep:rows()) do
  lines[#lines + 1] = ("| %g | %g | %s | %s | %s%% |"):format(row.lr, row.momentum, fmt(row.final_mean),
    fmt(row.final_std), fmt(100 * (row.test_accuracy or 0 / 0), "%.2f"))
end
local total = os.difftime(os.time(), t0)
lines[#lines + 1] = ""
lines[#lines + 1] = ("Total time: %d s (runs already in the run store %s/store are not recomputed; `--fresh` recomputes; "
  .. "`lunet store list --out %s` shows what is stored)."):format(total, cfg.out, cfg.out)
if #problems > 0 then
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Problems: " .. table.concat(problems, "; ")
end

local path = cfg.out .. "/report.md"
local tmp = path .. ".tmp"
local f = assert(io.open(tmp, "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
assert(os.rename(tmp, path))
for _, p in ipairs(problems) do io.stderr:write("seed_report: ", p, "\n") end
print(("report written to %s (total %d s)"):format(path, total))
