--- fashion.lua: the study's Figure 2 and Figure 3 settings on Fashion-MNIST instead of MNIST,
-- with validation curves: does "where the loss levels off" hold on another dataset, and
-- where does the validation loss part from the training loss?
--
-- The study's net (lunet.models.mnist_cnn), the first N training images, NLL loss, batch
-- 64, SGD: Figure 2 with lr 1e-4, momentum 0.9; Figure 3 with lr 1e-3, momentum 0.4 (the
-- study runs 20 runs x 100 epochs of each; the defaults here are small enough for about a
-- minute on two cores). Every epoch each run is validated on the first V test images.
-- Prints both results and writes OUT/fashion.png (training and validation mean curves with
-- their std bands, both figures) and OUT/figure2.csv/.json, OUT/figure3.csv/.json.
--
-- usage: lunet run examples/fashion.lua [options]
--   --runs N        runs per figure (4; the study: 20)
--   --epochs N      epochs per run (10; the study: 100)
--   --n N           training images, the first N of Fashion-MNIST's training set (3000)
--   --val N         validation images, the first N of its test set (1000)
--   --dir DIR       where the Fashion-MNIST files are (/usr/share/datasets/fashion-mnist)
--   --out DIR       output directory, also for the run store (out/fashion)
--   --threads N     worker threads (all cores)
-- Run it again and the stored runs are reused; a run with more epochs reuses the shorter ones' start.
local lunet = require("lunet")
local cli = require("lunet.cli")

local USAGE = "usage: lunet run examples/fashion.lua [--runs N] [--epochs N] [--n N] [--val N] [--dir DIR]"
  .. " [--out DIR] [--threads N]"

local function fail(msg) cli.fail("fashion", msg) end

local opts = cli.parse(arg, { program = "fashion", usage = USAGE, options = {
  runs = { "int", 4, min = 1 }, epochs = { "int", 10, min = 1 }, n = { "int", 3000, min = 1 },
  val = { "int", 1000, min = 1 }, threads = { "int", 0, min = 0 },
  out = { "string", "out/fashion", what = "a directory" }, dir = { "string", nil, what = "a directory" },
} })

local train, err = lunet.fashion_mnist { dir = opts.dir, split = "train", n = opts.n }
if not train then fail(err) end
local val
val, err = lunet.fashion_mnist { dir = opts.dir, split = "test", n = opts.val }
if not val then fail(err) end
print(train)
print(("validation: the first %d test images; %d runs x %d epochs per figure"):format(#val, opts.runs,
  opts.epochs))

local function figure(name, lr, momentum)
  local res = lunet.experiment {
    name = name, model = lunet.models.mnist_cnn, data = train, validate = val,
    loss = "nll", optimizer = { "sgd", lr = lr, momentum = momentum }, batch = 64,
    iterations = opts.epochs, runs = opts.runs, seed = 1, threads = opts.threads, out = opts.out,
  }
  print(res)
  local ok, serr = res:save(opts.out .. "/" .. name)
  if not ok then fail(serr) end
  return res
end

local fig2 = figure("figure2", 1e-4, 0.9)
local fig3 = figure("figure3", 1e-3, 0.4)

-- Where the curves part: the first epoch after which the mean validation loss rises.
for _, r in ipairs({ { "Figure 2", fig2 }, { "Figure 3", fig3 } }) do
  local res, first_rise = r[2], nil
  for k = 2, #res.val_mean do
    if not first_rise and res.val_mean[k] > res.val_mean[k - 1] then first_rise = res.val_iterations[k] end
  end
  local k = #res.val_mean
  print(("%s: epoch %d: training loss %.4f, validation loss %.4f (accuracy %.2f%%); validation loss %s")
    :format(r[1], res.val_iterations[k], res.mean[res.val_iterations[k]], res.val_mean[k],
      100 * res.val_accuracy_mean[k], first_rise and ("first rises after epoch " .. first_rise)
      or "falls every epoch"))
end

local labels = { "Figure 2: lr 1e-4, momentum 0.9", "Figure 3: lr 1e-3, momentum 0.4" }
local title = ("Fashion-MNIST, first %d images: mean of %d runs (training solid, validation dashed)")
  :format(#train, opts.runs)
local ok, perr = lunet.plot({ fig2, fig3 }, { file = opts.out .. "/fashion.png", labels = labels, title = title,
  xlabel = "epoch" })
if ok then
  print("wrote " .. opts.out .. "/fashion.png")
else
  io.stderr:write("fashion: no plot: ", tostring(perr), "\n")
end
