-- Every layer's backward (input and parameter gradients) and every loss's gradient
-- against central finite differences.
local lunet = require("lunet")
local gc = require("gradcheck")

local function net_of(layers, input)
  layers.input = input
  layers.seed = 5
  return lunet.sequential(layers)
end

local cases = {
  { "conv2d k3 s2 p1", { lunet.conv2d(2, 3, 3, { stride = 2, padding = 1 }) }, { 2, 7, 7 } },
  { "conv2d k5 no bias", { lunet.conv2d(2, 4, 5, { bias = false }) }, { 2, 8, 8 } },
  { "conv2d k1 s1 p2", { lunet.conv2d(3, 2, 1, { padding = 2 }) }, { 3, 4, 5 } },
  { "maxpool2d k2", { lunet.maxpool2d(2) }, { 2, 6, 6 } },
  { "maxpool2d k3 s2 odd", { lunet.maxpool2d(3, 2) }, { 2, 7, 7 } },
  { "avgpool2d k2", { lunet.avgpool2d(2) }, { 2, 6, 6 } },
  { "avgpool2d k3 s2", { lunet.avgpool2d(3, 2) }, { 1, 7, 7 } },
  { "relu", { lunet.relu() }, { 3, 4, 4 } },
  { "tanh", { lunet.tanh() }, { 20 } },
  { "sigmoid", { lunet.sigmoid() }, { 20 } },
  { "linear", { lunet.linear(6, 4) }, { 6 } },
  { "linear no bias", { lunet.linear(6, 4, { bias = false }) }, { 6 } },
  { "flatten + linear", { lunet.flatten(), lunet.linear(18, 3) }, { 2, 3, 3 } },
  { "log_softmax", { lunet.log_softmax() }, { 10 } },
  { "dropout (training)", { lunet.dropout(0.4) }, { 30 }, { training = true } },
  { "dropout2d (training)", { lunet.dropout2d(0.5) }, { 6, 3, 3 }, { training = true } },
  { "dropout (eval)", { lunet.dropout(0.4) }, { 30 } },
  { "batchnorm2d (training)", { lunet.batchnorm2d(3) }, { 3, 4, 4 }, { training = true, eps = 1e-2, atol = 5e-3 } },
  { "batchnorm2d (eval)", { lunet.batchnorm2d(3) }, { 3, 4, 4 } },
  { "batchnorm1d (training)", { lunet.batchnorm1d(5) }, { 5 }, { training = true, eps = 1e-2, atol = 5e-3 } },
  { "batchnorm1d (eval)", { lunet.batchnorm1d(5) }, { 5 } },
  { "the study's net (eval)", "mnist_cnn", { 1, 28, 28 }, { samples = 25, rtol = 5e-2 } },
  { "the study's net (training, dropout)", "mnist_cnn", { 1, 28, 28 }, { samples = 25, training = true, rtol = 5e-2 } },
}

describe("finite-difference gradient check", function()
  for _, c in ipairs(cases) do
    local name, layers, input, opts = c[1], c[2], c[3], c[4] or {}
    it(name, function()
      local net = layers == "mnist_cnn" and lunet.models.mnist_cnn { seed = 2 } or net_of(layers, input)
      local shape = { 3 }
      for _, d in ipairs(input) do shape[#shape + 1] = d end
      local ok, msg = gc.check_net(net, shape, opts)
      assert(ok, msg)
    end)
  end

  it("catches a wrong gradient (the checker can fail)", function()
    local ok = gc.compare({ 1.0, 2.0, 3.3 }, { 1.0, 2.0, 3.0 }, 2e-2, 2e-3)
    assert.is_false(ok)
    assert.is_true((gc.compare({ 1.0, 2.0, 3.0 }, { 1.0, 2.0, 3.0 }, 2e-2, 2e-3)))
  end)
end)

describe("loss gradients", function()
  local rand = gc.rng(11)
  local function check_loss(kind, target_fn)
    local pred, data = gc.random_tensor({ 4, 5 }, rand, 2)
    local target = target_fn(pred)
    local _, grad = lunet.loss(kind, pred, target)
    grad = grad:totable()
    local numeric, eps = {}, 1e-2
    for i = 1, #data do
      local v = data[i]
      pred:set(i, v + eps); local lp = lunet.loss(kind, pred, target)
      pred:set(i, v - eps); local lm = lunet.loss(kind, pred, target)
      pred:set(i, v)
      numeric[i] = (lp - lm) / (2 * eps)
    end
    local ok, msg = gc.compare(grad, numeric, 2e-2, 1e-3)
    assert(ok, msg)
  end
  local labels = function() return { 0, 3, 4, 1 } end
  it("nll", function() check_loss("nll", labels) end)
  it("cross_entropy", function() check_loss("cross_entropy", labels) end)
  it("mse against labels (one-hot)", function() check_loss("mse", labels) end)
  it("mse against a target tensor", function()
    check_loss("mse", function() return (gc.random_tensor({ 4, 5 }, rand)) end)
  end)
  it("nll value is the mean negative log-probability of the labels", function()
    local pred = lunet.tensor({ -1, -2, -0.5, -3 }, { 2, 2 })
    local v, g = lunet.loss("nll", pred, { 1, 0 })
    assert.near((2 + 0.5) / 2, v, 1e-6)
    assert.same({ 0, -0.5, -0.5, 0 }, g:totable())
  end)
  it("rejects a label out of range, naming it", function()
    local pred = lunet.tensor({ 0, 0, 0, 0 }, { 2, 2 })
    assert.has_error(function() lunet.loss("nll", pred, { 0, 2 }) end)
    local ok, err = pcall(lunet.loss, "nll", pred, { 0, 2 })
    assert.is_false(ok)
    assert.matches("label", err)
    assert.matches("2", err)
  end)
end)
