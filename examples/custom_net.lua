--- custom_net.lua: a network of your own design: padded 3x3 convolutions with batch
-- normalisation, trained with Adam; compare training and evaluation mode, look at the
-- batchnorm state, and check that a saved model keeps it.
--
-- usage: lunet run examples/custom_net.lua [--synthetic] [--n N] [--epochs N] [--lr X]
--          [--save FILE]
--   --synthetic   train on generated digits (the default when MNIST is not found)
--   --n N         training images (3000)
--   --epochs N    training epochs (2)
--   --lr X        Adam's learning rate (1e-3)
--   --save FILE   also save the model, load it back and check it gives the same results
local lunet = require("lunet")
local cli = require("lunet.cli")
package.path = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local digits = require("digits")

local USAGE = "usage: lunet run examples/custom_net.lua [--synthetic] [--n N] [--epochs N] [--lr X] [--save FILE]"

local function fail(msg) cli.fail("custom_net", msg) end

local opts = cli.parse(arg, { program = "custom_net", usage = USAGE, options = {
  n = { "int", 3000, min = 1 }, epochs = { "int", 2, min = 1 }, lr = { "number", 1e-3, positive = true },
  save = { "string", nil, what = "a file name" }, synthetic = { "flag" },
} })

local train, test, source = digits.training_data { synthetic = opts.synthetic, n = opts.n }

-- 28x28 -> 16x14x14 -> 32x7x7 -> 64 -> 10. Padding 1 keeps a 3x3 convolution's size;
-- batchnorm follows each convolution and the hidden linear layer.
local net = lunet.sequential {
  lunet.conv2d(1, 16, 3, { padding = 1, bias = false }), lunet.batchnorm2d(16), lunet.relu(),
  lunet.maxpool2d(2),
  lunet.conv2d(16, 32, 3, { padding = 1, bias = false }), lunet.batchnorm2d(32), lunet.relu(),
  lunet.maxpool2d(2),
  lunet.flatten(),
  lunet.linear(32 * 7 * 7, 64), lunet.batchnorm1d(64), lunet.relu(), lunet.dropout(0.25),
  lunet.linear(64, 10), lunet.log_softmax(),
  input = { 1, 28, 28 }, seed = 7,
}
print(net)

local optimizer = lunet.adam { lr = opts.lr }
print(("\ntraining on %d %s images with %s"):format(train:size(), source, tostring(optimizer)))
local history = net:train { data = train, loss = "nll", optimizer = optimizer, batch = 32,
  iterations = opts.epochs, seed = 3 }
print(history)

-- Batchnorm uses batch statistics while training and its running averages when
-- evaluating: evaluate() is in eval mode.
local on_train, on_test = net:evaluate(train), net:evaluate(test)
print(("train: loss %.4f, accuracy %.2f%%"):format(on_train.loss, 100 * on_train.accuracy))
print(("test:  loss %.4f, accuracy %.2f%%"):format(on_test.loss, 100 * on_test.accuracy))

local mean = net:get(2, "running_mean")
print(("first batchnorm: running mean of channel 1..3 = %.4f %.4f %.4f"):format(mean[1], mean[2], mean[3]))

if opts.save then
  local ok, err = net:save(opts.save)
  if not ok then fail(err) end
  local back, lerr = lunet.load(opts.save)
  if not back then fail(lerr) end
  local again = back:evaluate(test)
  if again.loss ~= on_test.loss then
    fail(("the loaded model differs: test loss %.6f, before saving %.6f"):format(again.loss, on_test.loss))
  end
  print(("saved %s and loaded it back: same test loss (%.4f), batchnorm state included"):format(opts.save, again.loss))
end
