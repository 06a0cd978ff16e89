#!/usr/bin/env lua5.4
--- compare_pytorch.lua: lunet's loss curves against PyTorch's on the study's settings.
--
-- Runs the study's Figure 1 (lr 1e-4, momentum 0.9, 50 epochs) and Figure 3 (lr 1e-3,
-- momentum 0.4, 100 epochs) configurations in both engines on the same first 3000
-- MNIST images, 20 runs each with each engine's own seeds, and writes per figure an
-- overlay of both mean curves with their 95% CI bands, a per-iteration table, and a
-- summary: the share of iterations where each mean lies inside the other's 95% CI,
-- and the difference of the final mean test accuracies.
--
-- --shared-init adds a paired comparison: lunet run r starts from the initial weights
-- of PyTorch run r (tools/compare/compare_pytorch.py --dump-init) and trains with its own
-- shuffling and dropout. The spread between runs that comes from the initialisation
-- is then shared by both engines, so what remains of the difference is the training
-- itself; per iteration the 95% CI of the paired difference (lunet - PyTorch) is
-- reported too.
-- Needs Debian's python3-torch (development only): tools/compare/compare_pytorch.py.
-- Usage: bin/lunet run tools/compare/compare_pytorch.lua [--runs N] [--n N] [--threads N] [--seed N] [--out DIR]
--        [--quick] [--fresh] [--shared-init]
local lunet = require("lunet")
local common = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/compare_common.lua")
local lfs = require("lfs")

-- out: one folder per replicate, docs/compare/seed<SEED> unless --out says otherwise
local opts = { runs = 20, n = 3000, threads = lunet.cpu_count(), out = false, fresh = false, quick = false,
  seed = 1, shared_init = false }
local i = 1
while i <= #arg do
  local a = arg[i]
  local key = a:match("^%-%-([%w_%-]+)$")
  key = key and key:gsub("%-", "_")
  if key == "quick" or key == "fresh" or key == "shared_init" then
    opts[key] = true
  elseif key and opts[key] ~= nil then
    opts[key] = type(opts[key]) == "number" and math.tointeger(tonumber(arg[i + 1])) or arg[i + 1]
    if opts[key] == nil then error("option --" .. key .. " needs a value") end
    i = i + 1
  else
    io.stderr:write("usage: bin/lunet run tools/compare/compare_pytorch.lua [--runs N] [--n N] [--threads N] [--seed N] [--out DIR] [--quick] [--fresh] [--shared-init]\n")
    os.exit(2)
  end
  i = i + 1
end

opts.out = opts.out or ("docs/compare/seed%d"):format(opts.seed)

local python = "/usr/bin/python3"
if not os.execute(python .. " -c 'import torch' 2>/dev/null") then
  io.stderr:write("compare_pytorch: needs PyTorch for " .. python .. " (Debian package python3-torch)\n")
  os.exit(1)
end
local mnist_dir = os.getenv("MNIST_DIR") or "data/mnist"
local train = assert(lunet.mnist { split = "train", n = opts.n })
local test = assert(lunet.mnist { split = "test" })

local figures = common.figures()
if opts.quick then
  opts.runs = 4
  figures[1].iterations, figures[2].iterations = 5, 10
  opts.out = opts.out .. "-quick"
end
lfs.mkdir(opts.out:match("^(.*)/[^/]*$") or ".")
lfs.mkdir(opts.out)

local function fmt(v, f) return v == v and (f or "%.4f"):format(v) or "n/a" end

local md = {
  ("# lunet against PyTorch on the study's settings, seed %d"):format(opts.seed), "",
  ("First %d MNIST training images, the PyTorch MNIST-example CNN, NLL loss, SGD, batch 64, %d runs per engine"
    .. " (each engine with its own seeds); test accuracy on the 10000 test images."):format(opts.n, opts.runs),
  "PyTorch: tools/compare/compare_pytorch.py (torch.manual_seed per run, DataLoader-style shuffling per epoch).", "",
  "| figure | lr | momentum | epochs | lunet final loss | PyTorch final loss | iterations where each mean is inside the other's 95% CI | lunet test accuracy | PyTorch test accuracy | difference |",
  "|---|---|---|---|---|---|---|---|---|---|",
}
local details = {}
local all_ok = true

-- Iterations where each mean lies inside the other's 95% CI, and the per-iteration
-- table rows. With `paired`, also the 95% CI of the mean paired difference a - b
-- (run r of a against run r of b) and whether it contains 0.
local function compare(a, b, iterations, paired)
  local inside, covers_zero = 0, 0
  local header = "iteration,lunet_mean,lunet_ci_low,lunet_ci_high,pytorch_mean,pytorch_ci_low,pytorch_ci_high,both_inside"
  if paired then header = header .. ",paired_diff_mean,paired_diff_ci_low,paired_diff_ci_high" end
  local rows = { header }
  for it = 1, iterations do
    local both = common.both_inside(a, b, it)
    if both then inside = inside + 1 end
    local row = ("%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%s"):format(it, a.mean[it], a.ci_low[it], a.ci_high[it],
      b.mean[it], b.ci_low[it], b.ci_high[it], both and "yes" or "no")
    if paired then
      local diffs = {}
      for r = 1, math.min(#a.runs, #b.runs) do
        local x, y = a.runs[r].loss[it], b.runs[r].loss[it]
        if x and y then diffs[#diffs + 1] = x - y end
      end
      local low, high = lunet.stats.ci95(diffs)
      if low <= 0 and high >= 0 then covers_zero = covers_zero + 1 end
      row = row .. (",%.6f,%.6f,%.6f"):format(lunet.stats.mean(diffs), low, high)
    end
    rows[#rows + 1] = row
  end
  return inside, rows, covers_zero
end

local function write_csv(path, rows)
  local tmp = path .. ".tmp"
  local csv = assert(io.open(tmp, "w"))
  csv:write(table.concat(rows, "\n"), "\n")
  csv:close()
  assert(os.rename(tmp, path))
end

-- lunet runs that start from PyTorch's initial weights, one per PyTorch run: the
-- weights come from tools/compare/compare_pytorch.py --dump-init (cached beside the
-- PyTorch result), shuffling and dropout are lunet's own (seed = PyTorch's run seed).
local function shared_init_runs(f)
  local init_path = ("out/compare-init-%s-seed%d-runs%d.json"):format(f.key, opts.seed, opts.runs)
  if opts.fresh or not lfs.attributes(init_path) then
    local cmd = ("%s tools/compare/compare_pytorch.py --mnist-dir %q --runs %d --seed %d --dump-init %q")
      :format(python, mnist_dir, opts.runs, opts.seed, init_path)
    io.stderr:write(cmd, "\n")
    assert(os.execute(cmd), "the PyTorch side failed")
  end
  local fh = assert(io.open(init_path))
  local init = require("cjson").decode(fh:read("a"))
  fh:close()
  local res_path = ("out/compare-shared-%s-seed%d-runs%d-it%d.json"):format(f.key, opts.seed, opts.runs,
    f.iterations)
  local cached = not opts.fresh and lunet.load_result(res_path)
  if cached then return cached end
  local runs = {}
  local t0 = os.time()
  for r, start in ipairs(init.runs) do
    local net = lunet.models.mnist_cnn()
    for layer, params in pairs(start.params) do
      for name, t in pairs(params) do
        net:set(math.tointeger(tonumber(layer)), name, lunet.tensor(t.data, t.shape))
      end
    end
    local h = net:train { data = train, loss = "nll", optimizer = lunet.sgd { lr = f.lr, momentum = f.momentum },
      batch = 64, iterations = f.iterations, seed = start.seed, quiet = true }
    local ev = net:evaluate(test)
    local loss = {}
    for k = 1, #h.loss do loss[k] = h.loss[k] end
    runs[r] = { index = r, seed = start.seed, loss = loss, diverged = h.diverged or false,
      test_loss = ev.loss, test_accuracy = ev.accuracy }
    net:free()
    io.stderr:write(("\r%s shared-init: run %d/%d"):format(f.key, r, #init.runs))
  end
  io.stderr:write("\n")
  local res = lunet.Result.new { name = "lunet from PyTorch's initial weights",
    config = { lr = f.lr, momentum = f.momentum, iterations = f.iterations, runs = opts.runs, n = opts.n,
      seed = opts.seed, init = "pytorch" },
    provenance = { seconds = os.time() - t0, threads = 1 }, runs = runs }
  assert(res:save(res_path:gsub("%.json$", "")))
  return res
end

local shared_md = {}
for _, f in ipairs(figures) do
  local res = lunet.experiment { name = "compare-" .. f.key, model = lunet.models.mnist_cnn, data = train,
    test = test, loss = "nll", optimizer = lunet.sgd { lr = f.lr, momentum = f.momentum }, batch = 64,
    iterations = f.iterations, runs = opts.runs, seed = opts.seed, threads = opts.threads, out = "out",
    fresh = opts.fresh }
  local pt_path = ("%s/%s-pytorch.json"):format(opts.out, f.key)
  local pt = not opts.fresh and lunet.load_result(pt_path)
  if not pt or pt.config.runs ~= opts.runs or pt.config.iterations ~= f.iterations or pt.config.n ~= opts.n
    or pt.config.seed ~= opts.seed then
    local cmd = ("%s tools/compare/compare_pytorch.py --mnist-dir %q --n %d --runs %d --iterations %d --lr %g --momentum %g --threads %d --seed %d --name %q --out %q")
      :format(python, mnist_dir, opts.n, opts.runs, f.iterations, f.lr, f.momentum, opts.threads, opts.seed,
        "pytorch " .. f.key, pt_path)
    io.stderr:write(cmd, "\n")
    assert(os.execute(cmd), "the PyTorch side failed")
    pt = assert(lunet.load_result(pt_path))
  end
  res.name = "lunet"
  pt.name = "PyTorch"
  local inside, rows = compare(res, pt, f.iterations, false)
  local _, diff = common.criterion(res, pt, f.iterations)
  write_csv(("%s/%s.csv"):format(opts.out, f.key), rows)
  for _, ext in ipairs({ "png", "svg" }) do
    assert(lunet.plot({ res, pt }, { file = ("%s/%s.%s"):format(opts.out, f.key, ext), band = "ci",
      labels = { "lunet", "PyTorch 1.13" },
      title = ("%s: lr %g, momentum %g; mean NLL loss and 95%% CI over %d runs"):format(f.key, f.lr, f.momentum, opts.runs) }))
  end
  local share = inside / f.iterations
  local acc_l, acc_p = res:test_summary(), pt:test_summary()
  local ok = common.met(inside, f.iterations, diff)
  all_ok = all_ok and ok
  md[#md + 1] = ("| %s | %g | %g | %d | %s | %s | %d of %d (%.0f%%) | %s%% | %s%% | %+.2f pp |"):format(f.key, f.lr,
    f.momentum, f.iterations, fmt((res:final())), fmt((pt:final())), inside, f.iterations, 100 * share,
    fmt(100 * acc_l, "%.2f"), fmt(100 * acc_p, "%.2f"), diff)
  local lunet_time = (res.provenance.runs_computed or 0) > 0
    and ("%.0f s on %d thread(s)"):format(res.provenance.seconds or 0, res.provenance.threads or opts.threads)
    or "from the cache"
  details[#details + 1] = ("## %s\n\n![%s](%s.png)\n\nPer-iteration table: [%s.csv](%s.csv). lunet: %s, PyTorch: %.0f s on %d thread(s).\n")
    :format(f.key, f.key, f.key, f.key, f.key, lunet_time, pt.provenance.seconds or 0, pt.provenance.threads or 0)
  io.stderr:write(("%s: %d/%d iterations inside both bands; test accuracy lunet %.2f%%, PyTorch %.2f%%\n")
    :format(f.key, inside, f.iterations, 100 * acc_l, 100 * acc_p))

  if opts.shared_init then
    local sh = shared_init_runs(f)
    sh.name = "lunet (PyTorch's initial weights)"
    local s_inside, s_rows, zero = compare(sh, pt, f.iterations, true)
    write_csv(("%s/%s-shared-init.csv"):format(opts.out, f.key), s_rows)
    for _, ext in ipairs({ "png", "svg" }) do
      assert(lunet.plot({ sh, pt }, { file = ("%s/%s-shared-init.%s"):format(opts.out, f.key, ext), band = "ci",
        labels = { "lunet from PyTorch's initial weights", "PyTorch 1.13" },
        title = ("%s, shared initial weights: mean NLL loss and 95%% CI over %d runs"):format(f.key, opts.runs) }))
    end
    local acc_s = sh:test_summary()
    local _, s_diff = common.criterion(sh, pt, f.iterations)
    local s_ok = common.met(s_inside, f.iterations, s_diff)
    shared_md[#shared_md + 1] = ("| %s | %s | %s | %d of %d (%.0f%%) | %d of %d | %s%% | %s%% | %+.2f pp | %s |")
      :format(f.key, fmt((sh:final())), fmt((pt:final())), s_inside, f.iterations, 100 * s_inside / f.iterations,
        zero, f.iterations, fmt(100 * acc_s, "%.2f"), fmt(100 * acc_p, "%.2f"), s_diff, s_ok and "met" or "NOT met")
    io.stderr:write(("%s shared-init: %d/%d inside both bands, paired CI covers 0 at %d/%d; test accuracy %.2f%% vs %.2f%%\n")
      :format(f.key, s_inside, f.iterations, zero, f.iterations, 100 * acc_s, 100 * acc_p))
  end
end
md[#md + 1] = ""
md[#md + 1] = ("Acceptance (>= 95%% of iterations inside both bands, test accuracies within 0.5 pp): %s."):format(
  all_ok and "met" or "NOT met")
md[#md + 1] = ""
if #shared_md > 0 then
  md[#md + 1] = "## Paired: lunet from PyTorch's initial weights"
  md[#md + 1] = ""
  md[#md + 1] = ("lunet run r starts from the initial weights of PyTorch run r (same seeds as above) and trains"
    .. " with its own shuffling and dropout, so the spread that comes from the initialisation is shared and the"
    .. " comparison sees the training itself. Paired column: iterations where the 95%% CI of the mean of the %d"
    .. " per-run differences (lunet - PyTorch) contains 0. Tables: *-shared-init.csv, plots *-shared-init.png.")
    :format(opts.runs)
  md[#md + 1] = ""
  md[#md + 1] = "| figure | lunet final loss | PyTorch final loss | iterations inside both 95% CIs | paired difference CI contains 0 | lunet test accuracy | PyTorch test accuracy | difference | acceptance |"
  md[#md + 1] = "|---|---|---|---|---|---|---|---|---|"
  for _, row in ipairs(shared_md) do md[#md + 1] = row end
  md[#md + 1] = ""
end
for _, d in ipairs(details) do md[#md + 1] = d end
-- Notes written by hand beside the replicates' folders (replicates, pooled runs) survive a rerun.
if lfs.attributes((opts.out:match("^(.*)/[^/]*$") or ".") .. "/replicates.md") then
  md[#md + 1] = "Replicates with other seeds, the runs pooled, and a note on the criterion: [replicates.md](../replicates.md)."
end
local path = opts.out .. "/README.md"
local fh = assert(io.open(path .. ".tmp", "w"))
fh:write(table.concat(md, "\n"), "\n")
fh:close()
assert(os.rename(path .. ".tmp", path))
print("comparison written to " .. path)
