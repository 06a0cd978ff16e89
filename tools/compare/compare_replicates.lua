#!/usr/bin/env lua5.4
--- compare_replicates.lua: what the criterion of tools/compare/compare_pytorch.lua gives when an
-- engine is compared with itself, and when the replicates are pooled.
--
-- Reads two finished comparisons (defaults: docs/compare/seed1 and docs/compare/seed2; lunet's runs come from its result cache in out/, so run compare_pytorch.lua for
-- both seeds first) and prints, per figure:
--   PyTorch seed 1 against PyTorch seed 2, lunet seed 1 against lunet seed 2 (each engine
--   with itself: any failure of the criterion there is sampling noise by construction);
--   lunet against PyTorch with both seeds' runs pooled (40 runs per engine).
-- Criterion: share of iterations where each mean lies inside the other's 95% CI, and the
-- difference of the final mean test accuracies.
-- Usage: bin/lunet run tools/compare/compare_replicates.lua [--a DIR] [--b DIR] [--runs N] [--n N]
local lunet = require("lunet")
local common = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/compare_common.lua")

local opts = { a = "docs/compare/seed1", b = "docs/compare/seed2", runs = 20, n = 3000 }
local i = 1
while i <= #arg do
  local key = arg[i]:match("^%-%-(%w+)$")
  if not key or opts[key] == nil or arg[i + 1] == nil then
    io.stderr:write("usage: bin/lunet run tools/compare/compare_replicates.lua [--a DIR] [--b DIR] [--runs N] [--n N]\n")
    os.exit(2)
  end
  opts[key] = type(opts[key]) == "number" and math.tointeger(tonumber(arg[i + 1])) or arg[i + 1]
  if opts[key] == nil then error("option --" .. key .. " needs an integer") end
  i = i + 2
end

local figures = common.figures()
local dirs = { opts.a, opts.b }

local function pooled(results, name)
  local runs = {}
  for _, res in ipairs(results) do
    for _, run in ipairs(res.runs) do runs[#runs + 1] = run end
  end
  return lunet.Result.new { name = name, runs = runs }
end

local train = assert(lunet.mnist { split = "train", n = opts.n })
local test = assert(lunet.mnist { split = "test" })
print("| figure | compared | iterations inside both 95% CIs | test accuracy difference |")
print("|---|---|---|---|")
for _, f in ipairs(figures) do
  local pt, ln = {}, {}
  for k, dir in ipairs(dirs) do
    pt[k] = assert(lunet.load_result(("%s/%s-pytorch.json"):format(dir, f.key)))
    local seed = pt[k].config.seed
    ln[k] = lunet.experiment { name = "compare-" .. f.key, model = lunet.models.mnist_cnn, data = train,
      test = test, loss = "nll", optimizer = lunet.sgd { lr = f.lr, momentum = f.momentum }, batch = 64,
      iterations = f.iterations, runs = opts.runs, seed = seed, out = "out", quiet = true }
  end
  local rows = {
    { ("PyTorch seed %d vs PyTorch seed %d"):format(pt[1].config.seed, pt[2].config.seed), pt[1], pt[2] },
    { ("lunet seed %d vs lunet seed %d"):format(pt[1].config.seed, pt[2].config.seed), ln[1], ln[2] },
    { ("lunet vs PyTorch, both seeds pooled (%d runs each)"):format(#ln[1].runs + #ln[2].runs),
      pooled(ln, "lunet"), pooled(pt, "PyTorch") },
  }
  for _, row in ipairs(rows) do
    local inside, diff = common.criterion(row[2], row[3], f.iterations)
    print(("| %s | %s | %d of %d (%.0f%%) | %+.2f pp |"):format(f.key, row[1], inside, f.iterations,
      100 * inside / f.iterations, diff))
  end
end
