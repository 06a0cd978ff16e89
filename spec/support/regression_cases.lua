-- The four small trainings whose per-step losses spec/regression_spec.lua holds to the
-- recorded bits: the study's net with SGD-momentum, the same with Adam on 2 threads, a
-- net through padding, stride, batchnorm, relu/tanh/sigmoid, avg/max pooling, dropout
-- and AdamW, and the study's net at batch 1 (recorded in session 10 when its conv2
-- weight gradient moved to the unfolded rows' side, from the transposed kernel's bits,
-- which it keeps). Synthetic data, so they run everywhere. The spec runs them in a child
-- process per instruction set (LUNET_ISA is read once, when the kernels are first
-- chosen); to re-record, print them with
--   LUNET_ISA=avx2 lua5.4 -e 'require("regression_cases").print()'
-- (with the specs' paths: spec/support/paths.lua's `paths.lua` instead of lua5.4).
local lunet = require("lunet")
local synthetic = require("synthetic")

local M = {}

local function custom()
  return lunet.sequential {
    lunet.conv2d(1, 8, 3, { padding = 1 }), lunet.batchnorm2d(8), lunet.relu(), lunet.avgpool2d(2),
    lunet.conv2d(8, 16, 3, { padding = 1, stride = 2 }), lunet.batchnorm2d(16), lunet.tanh(), lunet.maxpool2d(2),
    lunet.flatten(), lunet.linear(16 * 3 * 3, 32), lunet.sigmoid(), lunet.dropout(0.25),
    lunet.linear(32, 10), lunet.log_softmax(), input = { 1, 28, 28 }, seed = 11,
  }
end

local function study() return lunet.models.mnist_cnn { seed = 7 } end

M.CASES = {
  { "study sgd", study, function() return lunet.sgd { lr = 0.01, momentum = 0.9 } end, 1 },
  { "study adam 2 threads", study, function() return lunet.adam {} end, 2 },
  { "custom adamw", custom, function() return lunet.adamw { lr = 3e-3 } end, 1 },
  -- batch 1: the convolutions' weight gradients of a batch of one sample (conv2d.c's
  -- transposed kernel, or the same sums along the unfolded rows)
  { "study sgd batch 1", study, function() return lunet.sgd { lr = 0.01, momentum = 0.9 } end, 1, 1 },
}

-- The losses of case `c` (an entry of M.CASES), each as a %a string.
function M.losses(c)
  local h = c[2]():train { data = synthetic(256, 10, 5), loss = "nll", optimizer = c[3](), batch = c[5] or 32,
    iterations = 6, unit = "step", seed = 3, threads = c[4], quiet = true }
  local got = {}
  for i, v in ipairs(h.loss) do got[i] = ("%a"):format(v) end
  return got
end

-- Writes "isa <name>", then "<case>\t<loss>,<loss>,..." per case, to stdout.
function M.print()
  io.write("isa ", require("lunet.core").isa(), "\n")
  for _, c in ipairs(M.CASES) do io.write(c[1], "\t", table.concat(M.losses(c), ","), "\n") end
end

return M
