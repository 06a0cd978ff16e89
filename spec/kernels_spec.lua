-- The vectorised kernels seen from Lua: the study's net trains like it does with the
-- plain reference kernels (net:use_reference_kernels), and training is reproducible
-- bit for bit. Kernel-by-kernel checks on many shapes and every ISA are in
-- spec/c/test_fast_kernels.c (run by c_spec.lua).
local lunet = require("lunet")

local function random_data(n, seed)
  local s, vals, labels = seed, {}, {}
  local function rnd()
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  end
  for i = 1, n * 784 do vals[i] = rnd() * 2 - 0.5 end
  for i = 1, n do labels[i] = math.floor(rnd() * 10) end
  return lunet.dataset(lunet.tensor(vals, { n, 1, 28, 28 }), labels)
end

local function train(net, data, batch)
  return net:train { data = data, batch = batch, iterations = 3, quiet = true,
    optimizer = lunet.sgd { lr = 0.01, momentum = 0.5 } }
end

describe("fast kernels", function()
  local data = random_data(45, 11)

  for _, batch in ipairs({ 1, 7, 45 }) do
    it(("train the study's net like the reference kernels (batch %d, 3 epochs)"):format(batch), function()
      local fast = lunet.models.mnist_cnn { seed = 3 }
      local ref = lunet.models.mnist_cnn { seed = 3 }
      ref:use_reference_kernels(true)
      local hf, hr = train(fast, data, batch), train(ref, data, batch)
      assert.equal(3, #hf.loss)
      for i = 1, 3 do
        local tol = 1e-4 * math.abs(hr.loss[i])
        assert(math.abs(hf.loss[i] - hr.loss[i]) <= tol,
          ("epoch %d: fast %.9g, reference %.9g"):format(i, hf.loss[i], hr.loss[i]))
      end
    end)
  end

  it("give bit-identical losses when training twice", function()
    local a = train(lunet.models.mnist_cnn { seed = 5 }, data, 16)
    local b = train(lunet.models.mnist_cnn { seed = 5 }, data, 16)
    for i = 1, #a.step_loss do assert.equal(a.step_loss[i], b.step_loss[i]) end
  end)
end)
