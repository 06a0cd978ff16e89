#!/usr/bin/env lua5.4
--- compare_pytorch.lua: lunet's loss curves against PyTorch's on the study's settings.
--
-- Runs the study's Figure 1 (lr 1e-4, momentum 0.9, 50 epochs) and Figure 3 (lr 1e-3,
-- momentum 0.4, 100 epochs) configurations in both engines on the same first 3000
-- MNIST images, 20 runs each with each engine's own seeds, and writes per figure an
-- overlay of both mean curves with their 95% CI bands, a per-iteration table, and a
-- summary: the share of iterations where each mean lies inside the other's 95% CI,
-- and the difference of the final mean test accuracies.
-- Needs Debian's python3-torch (development only): tools/compare_pytorch.py.
-- Usage: lua5.4 scripts/compare_pytorch.lua [--runs N] [--n N] [--threads N] [--out DIR] [--quick] [--fresh]
local lunet = require("lunet")
local lfs = require("lfs")

local opts = { runs = 20, n = 3000, threads = lunet.cpu_count(), out = "docs/compare", fresh = false, quick = false,
  seed = 1 }
local i = 1
while i <= #arg do
  local a = arg[i]
  local key = a:match("^%-%-([%w_]+)$")
  if key == "quick" or key == "fresh" then
    opts[key] = true
  elseif key and opts[key] ~= nil then
    opts[key] = type(opts[key]) == "number" and math.tointeger(tonumber(arg[i + 1])) or arg[i + 1]
    if opts[key] == nil then error("option --" .. key .. " needs a value") end
    i = i + 1
  else
    io.stderr:write("usage: lua5.4 scripts/compare_pytorch.lua [--runs N] [--n N] [--threads N] [--seed N] [--out DIR] [--quick] [--fresh]\n")
    os.exit(2)
  end
  i = i + 1
end

local python = "/usr/bin/python3"
if not os.execute(python .. " -c 'import torch' 2>/dev/null") then
  io.stderr:write("compare_pytorch: needs PyTorch for " .. python .. " (Debian package python3-torch)\n")
  os.exit(1)
end
local mnist_dir = os.getenv("MNIST_DIR") or "data/mnist"
local train = assert(lunet.mnist { split = "train", n = opts.n })
local test = assert(lunet.mnist { split = "test" })

local figures = {
  { key = "figure1", lr = 1e-4, momentum = 0.9, iterations = 50 },
  { key = "figure3", lr = 1e-3, momentum = 0.4, iterations = 100 },
}
if opts.quick then
  opts.runs = 4
  figures[1].iterations, figures[2].iterations = 5, 10
  opts.out = opts.out .. "-quick"
end
lfs.mkdir(opts.out:match("^(.*)/[^/]*$") or ".")
lfs.mkdir(opts.out)

local function fmt(v, f) return v == v and (f or "%.4f"):format(v) or "n/a" end

local md = {
  "# lunet against PyTorch on the study's settings", "",
  ("First %d MNIST training images, the PyTorch MNIST-example CNN, NLL loss, SGD, batch 64, %d runs per engine"
    .. " (each engine with its own seeds); test accuracy on the 10000 test images."):format(opts.n, opts.runs),
  "PyTorch: tools/compare_pytorch.py (torch.manual_seed per run, DataLoader-style shuffling per epoch).", "",
  "| figure | lr | momentum | epochs | lunet final loss | PyTorch final loss | iterations where each mean is inside the other's 95% CI | lunet test accuracy | PyTorch test accuracy | difference |",
  "|---|---|---|---|---|---|---|---|---|---|",
}
local details = {}
local all_ok = true
for _, f in ipairs(figures) do
  local res = lunet.experiment { name = "compare-" .. f.key, model = lunet.models.mnist_cnn, data = train,
    test = test, loss = "nll", optimizer = lunet.sgd { lr = f.lr, momentum = f.momentum }, batch = 64,
    iterations = f.iterations, runs = opts.runs, seed = opts.seed, threads = opts.threads, out = "out",
    fresh = opts.fresh }
  local pt_path = ("%s/%s-pytorch.json"):format(opts.out, f.key)
  local pt = not opts.fresh and lunet.load_result(pt_path)
  if not pt or pt.config.runs ~= opts.runs or pt.config.iterations ~= f.iterations or pt.config.n ~= opts.n
    or pt.config.seed ~= opts.seed then
    local cmd = ("%s tools/compare_pytorch.py --mnist-dir %q --n %d --runs %d --iterations %d --lr %g --momentum %g --threads %d --seed %d --name %q --out %q")
      :format(python, mnist_dir, opts.n, opts.runs, f.iterations, f.lr, f.momentum, opts.threads, opts.seed,
        "pytorch " .. f.key, pt_path)
    io.stderr:write(cmd, "\n")
    assert(os.execute(cmd), "the PyTorch side failed")
    pt = assert(lunet.load_result(pt_path))
  end
  res.name = "lunet"
  pt.name = "PyTorch"
  local inside, rows = 0, { "iteration,lunet_mean,lunet_ci_low,lunet_ci_high,pytorch_mean,pytorch_ci_low,pytorch_ci_high,both_inside" }
  for it = 1, f.iterations do
    local a_in_b = res.mean[it] >= pt.ci_low[it] and res.mean[it] <= pt.ci_high[it]
    local b_in_a = pt.mean[it] >= res.ci_low[it] and pt.mean[it] <= res.ci_high[it]
    local both = a_in_b and b_in_a
    if both then inside = inside + 1 end
    rows[#rows + 1] = ("%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%s"):format(it, res.mean[it], res.ci_low[it],
      res.ci_high[it], pt.mean[it], pt.ci_low[it], pt.ci_high[it], both and "yes" or "no")
  end
  local csv = assert(io.open(("%s/%s.csv"):format(opts.out, f.key), "w"))
  csv:write(table.concat(rows, "\n"), "\n")
  csv:close()
  for _, ext in ipairs({ "png", "svg" }) do
    assert(lunet.plot({ res, pt }, { file = ("%s/%s.%s"):format(opts.out, f.key, ext), band = "ci",
      labels = { "lunet", "PyTorch 1.13" },
      title = ("%s: lr %g, momentum %g; mean NLL loss and 95%% CI over %d runs"):format(f.key, f.lr, f.momentum, opts.runs) }))
  end
  local share = inside / f.iterations
  local acc_l, acc_p = res:test_summary(), pt:test_summary()
  local diff = 100 * (acc_l - acc_p)
  local ok = share >= 0.95 and math.abs(diff) <= 0.5
  all_ok = all_ok and ok
  md[#md + 1] = ("| %s | %g | %g | %d | %s | %s | %d of %d (%.0f%%) | %s%% | %s%% | %+.2f pp |"):format(f.key, f.lr,
    f.momentum, f.iterations, fmt((res:final())), fmt((pt:final())), inside, f.iterations, 100 * share,
    fmt(100 * acc_l, "%.2f"), fmt(100 * acc_p, "%.2f"), diff)
  details[#details + 1] = ("## %s\n\n![%s](%s.png)\n\nPer-iteration table: [%s.csv](%s.csv). lunet: %.0f s, PyTorch: %.0f s (%d threads).\n")
    :format(f.key, f.key, f.key, f.key, f.key, res.provenance.seconds or 0, pt.provenance.seconds or 0, opts.threads)
  io.stderr:write(("%s: %d/%d iterations inside both bands; test accuracy lunet %.2f%%, PyTorch %.2f%%\n")
    :format(f.key, inside, f.iterations, 100 * acc_l, 100 * acc_p))
end
md[#md + 1] = ""
md[#md + 1] = ("Acceptance (>= 95%% of iterations inside both bands, test accuracies within 0.5 pp): %s."):format(
  all_ok and "met" or "NOT met")
md[#md + 1] = ""
for _, d in ipairs(details) do md[#md + 1] = d end
local path = opts.out .. "/README.md"
local f = assert(io.open(path .. ".tmp", "w"))
f:write(table.concat(md, "\n"), "\n")
f:close()
assert(os.rename(path .. ".tmp", path))
print("comparison written to " .. path)
