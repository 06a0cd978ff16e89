--- classify.lua: train a digit classifier briefly, save it, load it back and classify
-- PGM images given on the command line.
--
-- usage: lunet run examples/classify.lua [options] IMAGE.pgm...
--   --synthetic     train on generated digits (the default when MNIST is not found:
--                   lunet.mnist looks in $MNIST_DIR, then ./data/mnist)
--   --n N           training images (3000)
--   --epochs N      training epochs (3)
--   --seed N        seed of initialisation, shuffling and dropout (1)
--   --model FILE    where to save the trained model (out/classify.lnet)
-- Images: P5 or P2 PGM of any size (resized to 28x28; a dark digit on a light
-- background is inverted to MNIST's light on dark). Prints, per image:
--   IMAGE: digit D (confidence P%)
-- A missing or unreadable image is an error (exit status 1) before any training.
local lunet = require("lunet")
local cli = require("lunet.cli")
package.path = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local digits = require("digits")
local lfs = require("lfs")

local USAGE = "usage: lunet run examples/classify.lua [--synthetic] [--n N] [--epochs N] [--seed N]"
  .. " [--model FILE] IMAGE.pgm..."

local function fail(msg) cli.fail("classify", msg) end

-- ------------------------------------------------------------ arguments
local opts = cli.parse(arg, { program = "classify", usage = USAGE, rest = "images", options = {
  n = { "int", 3000, min = 1 }, epochs = { "int", 3, min = 1 }, seed = { "int", 1, min = 0 },
  model = { "string", "out/classify.lnet", what = "a file name" }, synthetic = { "flag" },
} })
local images = opts.images
if #images == 0 then fail("no images given\n" .. USAGE) end

-- Read every image first: a typo in a path should not cost a training run.
local inputs = {}
for k, path in ipairs(images) do
  local img, err = digits.read_pgm(path)
  if not img then fail(err) end
  inputs[k] = digits.to_tensor(img)
end

-- ------------------------------------------------------------ train and save
local train, test, source = digits.training_data { synthetic = opts.synthetic, n = opts.n, seed = opts.seed }
print(("training the study's CNN on %d %s images, %d epochs"):format(train:size(), source, opts.epochs))
local net = lunet.models.mnist_cnn { seed = opts.seed }
local history = net:train { data = train, loss = "nll", optimizer = lunet.sgd { lr = 0.01, momentum = 0.9 },
  batch = 64, iterations = opts.epochs, seed = opts.seed }
print(history)
print(net:evaluate(test))

local dir = opts.model:match("^(.*)/[^/]*$")
if dir and lfs.attributes(dir, "mode") == nil then
  local ok, err = lfs.mkdir(dir)
  if not ok then fail(("cannot create %s: %s"):format(dir, err)) end
end
local saved, err = net:save(opts.model)
if not saved then fail(err) end
net:free()
print("saved " .. opts.model)

-- ------------------------------------------------------------ load and classify
local model, lerr = lunet.load(opts.model)
if not model then fail(lerr) end
for k, x in ipairs(inputs) do
  local class, logp = model:predict(x)      -- logp: log-probabilities of the 10 digits
  print(("%s: digit %d (confidence %.1f%%)"):format(images[k], class, 100 * math.exp(logp[class + 1])))
end
