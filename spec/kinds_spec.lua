-- Layer kinds come from one table in core (core/layer.c): the binding lists them in
-- lunet.core.layer_kinds, parses layer tables by their parameters and prints a layer's
-- fields from them. These checks hold for every kind, so a new kind is covered here
-- without touching this file.
local lunet = require("lunet")
local core = lunet.core

local SHAPE_FIELDS = { kind = true, input = true, output = true, params = true, flops = true }

-- Every layer of `net`: net:layer(i)'s fields beyond the shape ones are exactly the
-- kind's constructor parameters.
local function assert_fields_are_params(net)
  for i = 1, net:layer_count() do
    local l = net:layer(i)
    local kind = core.layer_kinds[l.kind]
    assert.is_table(kind, "layer " .. i .. " has a kind core does not list: " .. tostring(l.kind))
    local want = {}
    for _, p in ipairs(kind.params) do
      want[p.name] = true
      assert.is_not_nil(l[p.name], ("layer %d (%s) lacks %s"):format(i, l.kind, p.name))
    end
    for k in pairs(l) do
      assert.is_true(SHAPE_FIELDS[k] or want[k], ("layer %d (%s): field %s"):format(i, l.kind, k))
    end
  end
end

describe("layer kinds from core", function()
  it("every kind has a lunet constructor, a distinct file tag and typed parameters", function()
    local tags, count = {}, 0
    for name, kind in pairs(core.layer_kinds) do
      count = count + 1
      assert.is_function(lunet[name], "lunet." .. name)
      assert.is_nil(tags[kind.file_tag], "file tag used twice: " .. tostring(kind.file_tag))
      tags[kind.file_tag] = name
      for _, p in ipairs(kind.params) do
        assert.is_true(p.type == "int" or p.type == "float" or p.type == "bool", name .. "." .. p.name)
        assert.are.equal(not p.required, p.default ~= nil, name .. "." .. p.name)
      end
    end
    assert.is_true(count >= 14)
    assert.are.equal("leaky_relu", tags[13])
  end)

  it("net:layer() reports exactly each kind's parameters", function()
    assert_fields_are_params(lunet.models.mnist_cnn())
    assert_fields_are_params(lunet.sequential {
      lunet.conv2d(1, 2, 3, { padding = 1 }), lunet.batchnorm2d(2), lunet.avgpool2d(2),
      lunet.tanh(), lunet.sigmoid(), lunet.flatten(), lunet.batchnorm1d(18),
      lunet.leaky_relu(0.2), lunet.linear(18, 4), lunet.log_softmax(), input = { 1, 6, 6 } })
  end)

  it("an absent parameter takes core's default, as the constructor documents", function()
    local net = lunet.sequential { lunet.leaky_relu(), lunet.dropout(), input = { 3 } }
    assert.is_near(0.01, net:layer(1).negative_slope, 1e-9)
    assert.are.equal(0.01, core.layer_kinds.leaky_relu.params[1].default)
    assert.are.equal(0.5, net:layer(2).p)
    local pool = lunet.sequential { lunet.maxpool2d(2), input = { 1, 4, 4 } }
    assert.are.equal(2, pool:layer(1).stride) -- stride 0 (absent) is the kernel, as PyTorch
  end)

  it("leaky_relu computes x where x > 0 and negative_slope * x elsewhere, both ways", function()
    local net = lunet.sequential { lunet.leaky_relu(0.25), input = { 4 } }
    local y = net:forward(lunet.tensor({ -2, 3, -0.5, 1 }, { 1, 4 }), true)
    assert.are.same({ -0.5, 3, -0.125, 1 }, y:totable())
    local dx = net:backward(lunet.tensor({ 1, 1, 4, 2 }, { 1, 4 }))
    assert.are.same({ 0.25, 1, 1, 2 }, dx:totable())
  end)

  it("a float parameter is part of the model's text (the run store's key)", function()
    local format = require("lunet.format")
    local a = lunet.sequential { lunet.leaky_relu(0.2), input = { 3 } }
    local b = lunet.sequential { lunet.leaky_relu(0.3), input = { 3 } }
    assert.are_not.equal(format.model(a), format.model(b))
    assert.are.equal("relu", format.model(lunet.sequential { lunet.relu(), input = { 3 } }))
  end)

  it("a kind's fewest training samples are enforced, naming the layer (batchnorm1d: 2)", function()
    local net = lunet.sequential { lunet.linear(3, 2), lunet.batchnorm1d(2), input = { 3 } }
    local ok, err = pcall(net.forward, net, lunet.tensor({ 1, 2, 3 }, { 1, 3 }), true)
    assert.is_false(ok)
    assert.matches("layer 2 (batchnorm1d): training needs at least 2 samples", err, 1, true)
    assert.are.equal(2, net:forward(lunet.tensor({ 1, 2, 3, 4, 5, 6 }, { 2, 3 }), true):shape()[1])
    assert.are.equal(1, net:forward(lunet.tensor({ 1, 2, 3 }, { 1, 3 }), false):shape()[1])
  end)

  it("an unknown kind is refused, naming it", function()
    local ok, err = pcall(core.net, { { kind = "gelu" } }, { 4 }, 0)
    assert.is_false(ok)
    assert.matches("unknown kind 'gelu'", err, 1, true)
  end)
end)
