-- A small sweep for the `bin/lunet sweep` specs (spec/sweep_spec.lua, spec/cluster_spec.lua):
-- LR,LR,... (2 learning rates) x 2 momenta x RUNS (2) runs x ITERATIONS (2) epochs of N (64) synthetic
-- images, one thread; the sweep's CSV and each cell's CSV and JSON under OUT.
-- usage: lunet run spec/support/tiny_sweep.lua [OUT [ITERATIONS [LR,LR,... [RUNS [N]]]]]
-- With FAIL_TASK=i in the environment, Slurm array task i fails (before planning).
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local lunet = require("lunet")
if os.getenv("FAIL_TASK") and os.getenv("FAIL_TASK") == os.getenv("SLURM_ARRAY_TASK_ID") then
  error("failing on purpose in task " .. os.getenv("FAIL_TASK"))
end
local data = require("synthetic")(tonumber(arg[5] or "64"), 4, 1)
local out = arg[1] or "out"
local lrs = {}
for v in (arg[3] or "0.01,0.05"):gmatch("[^,]+") do lrs[#lrs + 1] = tonumber(v) end
local sw = lunet.sweep { name = "tiny", base = { model = lunet.models.mnist_cnn, data = data, batch = 16,
  iterations = tonumber(arg[2] or "2"), runs = tonumber(arg[4] or "2"), seed = 3, threads = 1, quiet = true, out = out,
  optimizer = { "sgd" } }, grid = { lr = lrs, momentum = { 0, 0.9 } } }
print(sw)
assert(sw:save(out .. "/tiny"))
for i, cell in ipairs(sw.cells) do assert(cell.result:save(("%s/cell%d"):format(out, i))) end
