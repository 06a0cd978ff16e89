--- sweep.lua: a learning rate x momentum grid with lunet.sweep: every cell is an
-- experiment of several runs; prints the table and a heatmap of the final mean loss in
-- the terminal, and writes OUT/sweep.csv and OUT/sweep.png.
--
-- usage: lunet run examples/sweep.lua [options]
--   --lr LIST         learning rates, comma-separated (1e-3,1e-2,1e-1)
--   --momentum LIST   momentum values (0,0.5,0.9)
--   --runs N          runs per cell (3)
--   --iterations N    epochs per run (3)
--   --n N             training images (1000)
--   --synthetic       generated digits instead of MNIST (the default when MNIST is not found)
--   --out DIR         output directory, also for the run store (out/sweep_example)
--   --threads N       worker threads (all cores)
-- Run it again and the stored runs are reused; `bin/lunet store prune --out OUT --name 'sweep_example*'` removes them.
local lunet = require("lunet")
local cli = require("lunet.cli")
package.path = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local digits = require("digits")

local USAGE = "usage: lunet run examples/sweep.lua [--lr LIST] [--momentum LIST] [--runs N]"
  .. " [--iterations N] [--n N] [--synthetic] [--out DIR] [--threads N]"

local function fail(msg) cli.fail("sweep", msg) end

local opts = cli.parse(arg, { program = "sweep", usage = USAGE, options = {
  lr = { "numbers", { 1e-3, 1e-2, 1e-1 }, positive = true }, momentum = { "numbers", { 0, 0.5, 0.9 }, min = 0 },
  runs = { "int", 3, min = 1 }, iterations = { "int", 3, min = 1 }, n = { "int", 1000, min = 1 },
  threads = { "int", 0, min = 0 }, out = { "string", "out/sweep_example", what = "a directory" },
  synthetic = { "flag" },
} })

local train, _, source = digits.training_data { synthetic = opts.synthetic, n = opts.n }
print(("sweep over lr {%s} x momentum {%s}: %d runs x %d epochs each, %d %s images"):format(
  table.concat(opts.lr, ", "), table.concat(opts.momentum, ", "), opts.runs, opts.iterations,
  train:size(), source))

local sweep = lunet.sweep {
  name = "sweep_example",
  base = {
    model = lunet.models.mnist_cnn, data = train, loss = "nll", optimizer = { "sgd" },
    batch = 64, iterations = opts.iterations, runs = opts.runs, seed = 1, threads = opts.threads,
    out = opts.out,
  },
  grid = { lr = opts.lr, momentum = opts.momentum },
}
print(sweep)

local ok, err = sweep:save(opts.out .. "/sweep")
if not ok then fail(err) end
-- The heatmap, in the terminal and as an image (gnuplot; without it, say so and go on:
-- the CSV has the numbers).
local shown, perr = sweep:heatmap { metric = "final_mean" }
if shown then
  ok, perr = sweep:heatmap { file = opts.out .. "/sweep.png", metric = "final_mean" }
end
if not ok or not shown then io.stderr:write("sweep: no heatmap: ", tostring(perr), "\n") end
print(("wrote %s/sweep.csv%s"):format(opts.out, shown and ok and (" and " .. opts.out .. "/sweep.png") or ""))

-- The best cell by final mean loss.
local best
for _, row in ipairs(sweep:rows()) do
  if row.final_mean == row.final_mean and (not best or row.final_mean < best.final_mean) then best = row end
end
if best then
  print(("lowest final mean loss %.4f at lr %g, momentum %g"):format(best.final_mean, best.lr, best.momentum))
end
