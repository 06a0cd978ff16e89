-- lunet.format: the one place numbers and layers become text. The texts below are the
-- ones the copies it replaced wrote (print(net), print(layer), print(res), the progress
-- line, result CSV, plot labels, an experiment's model key).
local lunet = require("lunet")
local format = require("lunet.format")

describe("lunet.format", function()
  it("writes non-finite numbers the same whatever NaN's sign bit", function()
    local nan, neg_nan = 0 / 0, -(0 / 0)
    for _, fmt in ipairs({ "%.9g", "%.3g", "%.6g" }) do
      assert.equal("nan", format.real(nan, fmt))
      assert.equal("nan", format.real(neg_nan, fmt))
      assert.equal("inf", format.real(math.huge, fmt))
      assert.equal("-inf", format.real(-math.huge, fmt))
    end
    assert.equal("nan", format.number(neg_nan))
    assert.equal("-inf", format.value(-math.huge))
  end)

  it("keeps integers whole in print(res) and the REPL, not in CSV cells", function()
    assert.equal("1234567890", format.number(1234567890))
    assert.equal("1.23456789e+09", format.real(1234567890, "%.9g"))
    assert.equal("0.333333", format.number(1 / 3))
    assert.equal("0.333", format.number(1 / 3, "%.3g"))
    assert.equal("2.50", format.number(2.5, "%.2f"))
    assert.equal("sgd", format.value("sgd"))
    assert.equal("true", format.value(true))
  end)

  it("scales counts and rates", function()
    assert.same({ "9999", "10.0k", "999.9k", "1.00M", "5000", "12.5" },
      { format.count(9999), format.count(10000), format.count(999940), format.count(1e6), format.count(5000.0),
        format.count(12.5) })
    assert.same({ "850", "12.3k", "2.50M", "?", "?" },
      { format.rate(849.6), format.rate(12345), format.rate(2.5e6), format.rate(0 / 0), format.rate(nil) })
    assert.same({ "1 step", "0 steps", "3 epochs" },
      { format.plural(1, "step"), format.plural(0, "step"), format.plural(3, "epoch") })
    assert.equal("1x28x28", format.shape({ 1, 28, 28 }))
    assert.same({ '"epochs"', "3", "nil" }, { format.quoted("epochs"), format.quoted(3), format.quoted(nil) })
  end)

  it("writes layers three ways: print(layer), print(net)'s options, the model key", function()
    local conv = lunet.conv2d(1, 2, 3, { stride = 2, padding = 1, bias = false })
    assert.equal("conv2d(in_channels=1, out_channels=2, kernel=3, stride=2, padding=1, bias=false)", tostring(conv))
    assert.equal("conv2d(in_channels=1, out_channels=2, kernel=3, stride=2, padding=1, bias=false)", format.layer(conv))
    assert.equal("dropout(p=0.25)", tostring(lunet.dropout(0.25)))
    assert.equal("relu()", tostring(lunet.relu()))
    assert.equal("1->2 k3 s2 p1 no bias", format.layer_options(conv))
    assert.equal("k2", format.layer_options(lunet.maxpool2d(2)))
    assert.equal("k2 s1", format.layer_options(lunet.avgpool2d(2, 1)))
    assert.equal("1->2 k5", format.layer_options(lunet.conv2d(1, 2, 5)))
    -- the run store's key holds this text: a change would orphan every stored run
    assert.equal("conv2d(1,10,5,1,0) maxpool2d(2,2) relu conv2d(10,20,5,1,0) dropout2d(0.5) maxpool2d(2,2) relu "
      .. "flatten linear(320,50) relu dropout(0.5) linear(50,10) log_softmax", format.model(lunet.models.mnist_cnn()))
    local net = lunet.sequential { conv, lunet.batchnorm2d(2), lunet.avgpool2d(2, 1), lunet.flatten(),
      lunet.linear(338, 3, { bias = false }), input = { 1, 28, 28 } }
    -- batchnorm's eps and momentum (float32 values as the engine holds them) are in the key too
    assert.equal("conv2d(1,2,3,2,1,nobias) batchnorm2d(2,9.9999997473788e-06,0.10000000149012) avgpool2d(2,1)"
      .. " flatten linear(338,3,nobias)", format.model(net))
    assert.equal(table.concat({
      "net: 5 layers, input 1x28x28",
      "  #   layer        options        output       params    MFLOP",
      "  1   conv2d       1->2 k3 s2 p1 no bias 2x14x14          18    0.007",
      "  2   batchnorm2d  2              2x14x14           4        -",
      "  3   avgpool2d    k2 s1          2x13x13           -        -",
      "  4   flatten                     338               -        -",
      "  5   linear       338->3 no bias 3              1014    0.002",
      "  parameters 1036; per sample 0.009 MFLOP forward, 0.011 backward" }, "\n"), tostring(net))
  end)
end)
