-- Fidelity (issue #5): lunet computes what PyTorch 1.13 computes.
--
-- Every case listed in spec/fixtures/index.json (written by tools/make_fixtures.py;
-- format in spec/fixtures/README.md) is one `it`, so a new fixture is covered without
-- touching this file. Each case loads the fixture's inputs and parameters through the
-- public API (lunet.sequential, net:set, lunet.loss, lunet.optimizer), runs lunet and
-- compares every result the fixture holds, printing one line of errors per case.
--
-- Metric, per compared tensor (spec/support/fixtures.lua has the details):
--     rel = max_i |lunet_i - torch_i| / max(max_i |torch_i|, 1e-12)
-- Tolerances: rel <= 1e-5 for forward outputs, loss values and batchnorm running
-- statistics; rel <= 1e-4 for input and parameter gradients, optimizer steps and the
-- net's parameters after 3 SGD steps. Outputs that are copies of input elements
-- (maxpool, relu, flatten, eval dropout) or one product of one (leaky_relu) must be
-- bitwise equal to the float32 value.
--
-- The cases containing a conv2d run a second time with the reference kernels
-- (net:use_reference_kernels), so both conv2d implementations are held to PyTorch.
--
-- The last block proves that the checks can fail: it perturbs each compared value of
-- one case per kind beyond its tolerance and expects exactly that comparison to fail.
local lunet = require("lunet")
local fx = require("fixtures")

local index = fx.index()

local function show(name, chk)
  io.write(("  [fixture] %-36s %s\n"):format(name, chk:summary()))
  io.flush()
end

local function assert_case(name, chk)
  local failures = chk:failures()
  assert(#chk.results > 0, name .. ": nothing was compared")
  if #failures > 0 then error(chk:failure_message(name), 0) end
end

describe("PyTorch fixtures", function()
  describe("index", function()
    it("is a lunet fixture index with cases", function()
      assert.are.equal("lunet-fixture-index", index.format)
      assert.are.equal(1, math.tointeger(index.version))
      assert.is_true(#index.cases > 0)
    end)

    it("lists every fixture file in spec/fixtures, and each file's header matches", function()
      local lfs = require("lfs")
      local listed = {}
      for _, c in ipairs(index.cases) do
        assert.is_nil(listed[c.file], "listed twice: " .. c.file)
        listed[c.file] = c
      end
      for file in lfs.dir(fx.dir) do
        if file:match("%.json$") and file ~= "index.json" then
          assert.is_not_nil(listed[file], file .. " is not in index.json")
        end
      end
      for _, c in ipairs(index.cases) do
        local case = fx.load(c.file)
        assert.are.equal("lunet-fixture", case.format, c.file)
        assert.are.equal(1, math.tointeger(case.version), c.file)
        assert.are.equal(c.name, case.name, c.file)
        assert.are.equal(c.kind, case.kind, c.file)
        assert.are.equal(index.torch_version, case.torch_version, c.file)
      end
    end)
  end)

  describe("cases", function()
    for _, c in ipairs(index.cases) do
      it(c.name .. " (" .. c.kind .. ")", function()
        local case = fx.load(c.file)
        local chk = fx.run(case)
        show(c.name, chk)
        assert_case(c.name, chk)
      end)
    end
  end)

  describe("cases with conv2d, reference kernels", function()
    for _, c in ipairs(index.cases) do
      if (c.kind == "layer" or c.kind == "net" or c.kind == "train") and fx.has_conv(fx.load(c.file)) then
        it(c.name .. " (reference kernels)", function()
          local case = fx.load(c.file)
          local chk = fx.run(case, { reference = true })
          show(c.name .. " [ref]", chk)
          assert_case(c.name .. " (reference kernels)", chk)
        end)
      end
    end
  end)

  describe("the study's model", function()
    it("lunet.models.mnist_cnn() has the fixture net's layers", function()
      local case = fx.load("net_forward_backward.json")
      local net = lunet.models.mnist_cnn()
      assert.are.equal(#case.layers, net:layer_count())
      for i, d in ipairs(case.layers) do
        local l = net:layer(i)
        for k, v in pairs(d) do
          local got = l[k]
          if type(v) == "number" and type(got) == "number" then
            assert.is_near(v, got, 1e-6, ("layer %d field %s"):format(i, k))
          else
            assert.are.equal(v, got, ("layer %d field %s"):format(i, k))
          end
        end
      end
      -- and the fixture's parameter keys are exactly its parametric layers
      local want = {}
      for _, p in ipairs(net:parameters()) do want[tostring(p.layer)] = true end
      for key in pairs(case.params) do assert.is_true(want[key], "fixture key " .. key) end
      for key in pairs(want) do assert.is_not_nil(case.params[key], "fixture lacks key " .. key) end
    end)

    it("lunet.models.mnist_cnn() with the fixture's parameters gives the fixture's output", function()
      local case = fx.load("net_forward_backward.json")
      local net = lunet.models.mnist_cnn()
      local chk = fx.checker()
      fx.set_net_params(net, case.params, chk)
      chk:tensor("output", net:forward(fx.tensor(case.input), false), case.output, fx.TOL_OUTPUT)
      show("mnist_cnn()", chk)
      assert_case("mnist_cnn()", chk)
    end)
  end)

  describe("the checks can fail", function()
    local tol = 1e-5
    local expected = { shape = { 2, 3 }, data = { 0.5, -2.0, 1.25, 3.0, -0.75, 0.125 } }

    it("compare passes within the tolerance and fails beyond it", function()
      local a = fx.deep_copy(expected.data)
      assert.is_true(fx.compare(a, expected, { tol = tol }).ok)
      a[2] = a[2] + 0.5 * tol * 3.0 -- half the tolerance (max |expected| is 3)
      assert.is_true(fx.compare(a, expected, { tol = tol }).ok)
      a[2] = expected.data[2] + 2 * tol * 3.0
      local r = fx.compare(a, expected, { tol = tol })
      assert.is_false(r.ok)
      assert.are.equal(2, r.worst)
      assert.is_near(2 * tol, r.rel, 1e-9)
    end)

    it("compare fails on NaN, infinity, length and shape mismatches", function()
      local a = fx.deep_copy(expected.data)
      a[4] = 0 / 0
      assert.is_false(fx.compare(a, expected, { tol = 1 }).ok)
      a[4] = math.huge
      assert.is_false(fx.compare(a, expected, { tol = 1 }).ok)
      assert.is_false(fx.compare({ 0.5, -2.0 }, expected, { tol = 1 }).ok)
      local t = lunet.tensor(expected.data, { 3, 2 })
      assert.is_false(fx.compare(t, expected, { tol = 1 }).ok)
      assert.is_true(fx.compare(lunet.tensor(expected.data, { 2, 3 }), expected, { tol = 0 }).ok)
      assert.is_false(fx.compare({}, { data = {}, shape = { 0 } }, { tol = 1 }).ok)
    end)

    it("exact compare rounds the fixture to float32 and catches one ulp", function()
      local v = 0.1 -- not a float32: the float32 value is what lunet holds
      local f = fx.f32(v)
      assert.are_not.equal(v, f)
      assert.is_true(fx.compare({ f }, { v }, { exact = true }).ok)
      local next_up = string.unpack("<f", string.pack("<I4", string.unpack("<I4", string.pack("<f", f)) + 1))
      assert.is_false(fx.compare({ next_up }, { v }, { exact = true }).ok)
    end)

    -- One case per fixture kind (and per layer flavour with extra checks): perturb each
    -- compared value in turn; exactly that comparison must fail.
    local mutation_cases = { "conv2d_k3_s2_p1", "maxpool2d_k3_s2", "relu", "leaky_relu_slope_0.2",
      "batchnorm2d_train",
      "batchnorm1d_eval", "loss_mse_onehot", "loss_cross_entropy", "optim_adamw",
      "net_forward_backward", "net_train_steps",
      "schedule_lrs", "train_schedule_cosine_per_step" }
    for _, name in ipairs(mutation_cases) do
      it("every comparison of " .. name .. " fails when its expected value is perturbed", function()
        local case = fx.load(name .. ".json")
        local clean = fx.run(case)
        assert_case(name, clean)
        local labels = clean:labels()
        assert.is_true(#labels >= 1)
        for _, label in ipairs(labels) do
          local chk = fx.run(case, { mutate = label })
          assert.is_true(chk.mutated, label .. " was not mutated")
          local failed = chk:failures()
          assert.are.equal(1, #failed, name .. ": perturbing " .. label .. " should fail exactly one check")
          assert.are.equal(label, failed[1].label)
        end
      end)
    end

    it("a fixture field the spec does not check fails the case", function()
      local case = fx.load("relu.json")
      case.new_field = { shape = { 1 }, data = { 1 } }
      local chk = fx.run(case)
      assert.are.equal(1, #chk:failures())
      assert.are.equal("field new_field", chk:failures()[1].label)
    end)

    it("a parametric layer the fixture does not set fails the case", function()
      local case = fx.load("net_forward_backward.json")
      case.params["9"] = nil
      local chk = fx.run(case)
      local labels = {}
      for _, r in ipairs(chk:failures()) do labels[r.label] = true end
      assert.is_true(labels.params)
    end)
  end)
end)
