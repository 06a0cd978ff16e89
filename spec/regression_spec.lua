-- The engine's numbers do not drift: per-step losses of three small trainings (the study's
-- net with SGD-momentum, the same with Adam on 2 threads, and a net through padding, stride,
-- batchnorm, relu/tanh/sigmoid, avg/max pooling, dropout and AdamW) equal, bit for bit,
-- the values recorded at engine revision 5 (the conv2d weight gradient sums the batch in
-- groups of samples and adds the groups' gradients; revisions 3 and 4 summed it in other
-- orders). Synthetic data, so the check runs everywhere. A change that alters the numbers
-- on purpose bumps LUNET_ENGINE_REVISION and re-records these in the same commit (run this
-- file's cases with the new engine and print each loss with %a).
local lunet = require("lunet")
local synthetic = require("synthetic")

local RECORDED_REVISION = 5
local RECORDED = {
  ["study sgd"] = { 0x1.2b21274p+1, 0x1.2a4499fp+1, 0x1.23b79b6p+1, 0x1.2732ca9p+1, 0x1.25179c28p+1, 0x1.26a1963p+1 },
  ["study adam 2 threads"] = { 0x1.2b21274p+1, 0x1.2a80ec3p+1, 0x1.233e4a2p+1, 0x1.2598369p+1, 0x1.22e73dfp+1, 0x1.233c1f3p+1 },
  ["custom adamw"] = { 0x1.33b9ac58p+1, 0x1.32ae0d58p+1, 0x1.31992be8p+1, 0x1.216df11p+1, 0x1.2377d0f8p+1, 0x1.1d29cc58p+1 },
}

local function custom()
  return lunet.sequential {
    lunet.conv2d(1, 8, 3, { padding = 1 }), lunet.batchnorm2d(8), lunet.relu(), lunet.avgpool2d(2),
    lunet.conv2d(8, 16, 3, { padding = 1, stride = 2 }), lunet.batchnorm2d(16), lunet.tanh(), lunet.maxpool2d(2),
    lunet.flatten(), lunet.linear(16 * 3 * 3, 32), lunet.sigmoid(), lunet.dropout(0.25),
    lunet.linear(32, 10), lunet.log_softmax(), input = { 1, 28, 28 }, seed = 11,
  }
end

local function study() return lunet.models.mnist_cnn { seed = 7 } end

local CASES = {
  { "study sgd", study, function() return lunet.sgd { lr = 0.01, momentum = 0.9 } end, 1 },
  { "study adam 2 threads", study, function() return lunet.adam {} end, 2 },
  { "custom adamw", custom, function() return lunet.adamw { lr = 3e-3 } end, 1 },
}

describe("the engine's numbers", function()
  it("are recorded for this engine revision", function()
    assert.are.equal(RECORDED_REVISION, lunet.engine_revision,
      "LUNET_ENGINE_REVISION changed: re-record spec/regression_spec.lua in the same commit")
  end)

  local data = synthetic(256, 10, 5)
  for _, c in ipairs(CASES) do
    it("equal the recorded losses bit for bit: " .. c[1], function()
      local h = c[2]():train { data = data, loss = "nll", optimizer = c[3](), batch = 32, iterations = 6,
        unit = "step", seed = 3, threads = c[4], quiet = true }
      local got, want = {}, {}
      for i, v in ipairs(h.loss) do got[i] = ("%a"):format(v) end
      for i, v in ipairs(RECORDED[c[1]]) do want[i] = ("%a"):format(v) end
      assert.are.same(want, got)
    end)
  end
end)
