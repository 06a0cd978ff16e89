-- The vectorised kernels seen from Lua: the study's net trains like it does with the
-- plain reference kernels (net:use_reference_kernels), and training is reproducible
-- bit for bit. Kernel-by-kernel checks on many shapes and every ISA are in
-- spec/c/test_fast_kernels.c (run by c_spec.lua).
local lunet = require("lunet")
local lcg = require("lcg")

local function random_data(n, seed)
  local rnd, vals, labels = lcg(seed), {}, {}
  for i = 1, n * 784 do vals[i] = rnd() * 2 - 0.5 end
  for i = 1, n do labels[i] = math.floor(rnd() * 10) end
  return lunet.dataset(lunet.tensor(vals, { n, 1, 28, 28 }), labels)
end

local function train(net, data, batch)
  return net:train { data = data, batch = batch, iterations = 3, quiet = true,
    optimizer = lunet.sgd { lr = 0.01, momentum = 0.5 } }
end

-- Trains fast and ref (use_reference_kernels) alike: their epoch losses within 1e-4.
local function like_reference(fast, ref, data, batch)
  ref:use_reference_kernels(true)
  local hf, hr = train(fast, data, batch), train(ref, data, batch)
  assert.equal(3, #hf.loss)
  for i = 1, 3 do
    local tol = 1e-4 * math.abs(hr.loss[i])
    assert(math.abs(hf.loss[i] - hr.loss[i]) <= tol,
      ("epoch %d: fast %.9g, reference %.9g"):format(i, hf.loss[i], hr.loss[i]))
  end
end

describe("fast kernels", function()
  local data = random_data(45, 11)

  -- Trains make() for 2 epochs (`steps` steps of `batch`) on 1, 2 and 3 threads: the
  -- step losses, the parameters and the evaluation's loss bit for bit alike.
  local function same_on_threads(make, batch, optimizer, steps)
    local runs = {}
    for threads = 1, 3 do
      local net = make()
      local h = net:train { data = data, batch = batch, iterations = 2, quiet = true, threads = threads,
        optimizer = optimizer() }
      runs[threads] = { h = h, params = net:_params(), eval = net:evaluate(data, { threads = threads, batch = 20 }) }
    end
    for threads = 2, 3 do
      local a, b = runs[1], runs[threads]
      assert.equal(steps, #a.h.step_loss)
      for i = 1, #a.h.step_loss do assert.equal(a.h.step_loss[i], b.h.step_loss[i]) end
      for j = 1, #a.params do assert.equal(a.params[j], b.params[j]) end
      assert.equal(a.eval.loss, b.eval.loss)
    end
  end

  for _, batch in ipairs({ 1, 7, 45 }) do
    it(("train the study's net like the reference kernels (batch %d, 3 epochs)"):format(batch), function()
      like_reference(lunet.models.mnist_cnn { seed = 3 }, lunet.models.mnist_cnn { seed = 3 }, data, batch)
    end)
  end

  -- conv2's input gradient goes through conv_dx_listed (48 channels or more, a fused max
  -- pooling: only the places the pooling sent a gradient to); its 13x13 output leaves a
  -- row and a column outside the windows, and its dropout2d is fused too
  local function pooled_net()
    return lunet.sequential { lunet.conv2d(1, 8, 3), lunet.relu(), lunet.maxpool2d(2),
      lunet.conv2d(8, 48, 3, { padding = 1 }), lunet.dropout2d(0.25), lunet.maxpool2d(2), lunet.relu(),
      lunet.flatten(), lunet.linear(48 * 6 * 6, 10), lunet.log_softmax(), input = { 1, 28, 28 }, seed = 4 }
  end

  it("train a net whose input gradient skips what a max pooling left out like the reference kernels", function()
    like_reference(pooled_net(), pooled_net(), data, 9)
  end)

  it("give that net the reference kernels' gradients when an input is infinite (NaN where they have NaN)", function()
    local vals, d = {}, {}
    for i = 1, 6 * 784 do vals[i] = ((i * 7919) % 1000) / 1000 - 0.5 end
    vals[3 * 784 + 300] = math.huge -- sample 4: conv2's input is not finite there, x * 0 is NaN
    for i = 1, 60 do d[i] = ((i * 31) % 17) / 17 - 0.5 end
    local x, dout = lunet.tensor(vals, { 6, 1, 28, 28 }), lunet.tensor(d, { 6, 10 })
    local grads = {}
    for ref = 1, 2 do
      local net = pooled_net()
      net:use_reference_kernels(ref == 2)
      net:forward(x, true, 1)
      net:backward(dout)
      grads[ref] = net:_grads()
    end
    local nan = 0
    for j = 1, #grads[1] do
      local a, b = grads[1][j], grads[2][j]
      assert.equal(b ~= b, a ~= a, "NaN in one gradient only, at " .. j)
      if a ~= a then
        nan = nan + 1
      else
        assert(math.abs(a - b) <= 1e-4 * math.max(1, math.abs(b)), ("gradient %d: %.9g, reference %.9g"):format(j, a, b))
      end
    end
    assert(nan > 0 and nan < #grads[1], "expected some NaN gradients, got " .. nan)
  end)

  it("give that net bit-identical losses and parameters on 1, 2 and 3 threads", function()
    same_on_threads(pooled_net, 24, function() return lunet.sgd { lr = 0.05, momentum = 0.5 } end, 4)
  end)

  it("give bit-identical losses when training twice", function()
    local a = train(lunet.models.mnist_cnn { seed = 5 }, data, 16)
    local b = train(lunet.models.mnist_cnn { seed = 5 }, data, 16)
    for i = 1, #a.step_loss do assert.equal(a.step_loss[i], b.step_loss[i]) end
  end)

  it("give bit-identical losses, parameters and predictions on 1, 2 and 3 threads (net:train{threads})", function()
    local runs = {}
    for threads = 1, 3 do
      local net = lunet.models.mnist_cnn { seed = 9 }
      -- batches of 24 and 21: over 16384 input floats, so the gather is split too
      local h = net:train { data = data, batch = 24, iterations = 2, quiet = true, threads = threads,
        optimizer = lunet.adam { lr = 1e-3 } }
      runs[threads] = { h = h, params = net:_params(), eval = net:evaluate(data, { threads = threads, batch = 20 }) }
      runs[threads].class, runs[threads].out = net:predict(data:image(1), { threads = threads })
    end
    for threads = 2, 3 do
      local a, b = runs[1], runs[threads]
      assert.equal(#a.h.step_loss, #b.h.step_loss)
      assert.equal(4, #a.h.step_loss) -- 45 samples in batches of 24: 2 steps an epoch
      for i = 1, #a.h.step_loss do assert.equal(a.h.step_loss[i], b.h.step_loss[i]) end
      assert.equal(#a.params, #b.params)
      for j = 1, #a.params do assert.equal(a.params[j], b.params[j]) end
      assert.equal(a.eval.loss, b.eval.loss)
      assert.equal(a.eval.accuracy, b.eval.accuracy)
      assert.equal(a.class, b.class)
      for j = 1, #a.out do assert.equal(a.out[j], b.out[j]) end
    end
  end)

  -- the fast passes fold a pooling into the layer before it: batchnorm2d (with or
  -- without its fused activation) then 2x2 average pooling, an activation then 2x2 max
  -- pooling (a ReLU right after conv2d goes into conv2d instead, hence the dropout2d),
  -- conv2d then 2x2 max pooling (with a dropout2d between them too);
  -- each net trains like the separate reference layers
  local pooled = {
    { "batchnorm2d, avgpool", { lunet.batchnorm2d(4), lunet.avgpool2d(2) } },
    { "batchnorm2d, relu, avgpool", { lunet.batchnorm2d(4), lunet.relu(), lunet.avgpool2d(2) } },
    { "batchnorm2d, sigmoid, avgpool", { lunet.batchnorm2d(4), lunet.sigmoid(), lunet.avgpool2d(2) } },
    { "dropout2d, relu, maxpool", { lunet.dropout2d(0.25), lunet.relu(), lunet.maxpool2d(2) } },
    { "tanh, maxpool, relu", { lunet.tanh(), lunet.maxpool2d(2), lunet.relu() } },
    -- and conv2d takes in a 2x2 max pooling with the ReLUs around it
    { "relu, maxpool", { lunet.relu(), lunet.maxpool2d(2) } },
    { "maxpool, relu", { lunet.maxpool2d(2), lunet.relu() } },
    { "maxpool", { lunet.maxpool2d(2) } },
    { "dropout2d, maxpool, relu", { lunet.dropout2d(0.25), lunet.maxpool2d(2), lunet.relu() } },
  }
  for _, case in ipairs(pooled) do
    it(("train conv2d, %s like the reference kernels"):format(case[1]), function()
      local function mk()
        local layers = { lunet.conv2d(1, 4, 3, { padding = 1 }) }
        for _, l in ipairs(case[2]) do layers[#layers + 1] = l end
        for _, l in ipairs({ lunet.flatten(), lunet.linear(784, 10), lunet.log_softmax() }) do
          layers[#layers + 1] = l
        end
        layers.seed = 6
        return lunet.sequential(layers)
      end
      like_reference(mk(), mk(), data, 7)
    end)
  end

  -- strided convolutions (im2col rows: unfold_im2col, fold_im2col) and batchnorm1d on
  -- N x F (the bn_feat kernels), in one net
  local function strided_net()
    return lunet.sequential { lunet.conv2d(1, 6, 3, { stride = 2, padding = 1 }), lunet.relu(),
      lunet.conv2d(6, 12, 5, { stride = 3, padding = 2 }), lunet.flatten(), lunet.linear(12 * 5 * 5, 40),
      lunet.batchnorm1d(40), lunet.relu(), lunet.linear(40, 10), lunet.batchnorm1d(10), lunet.log_softmax(),
      input = { 1, 28, 28 }, seed = 8 }
  end

  it("train a net of strided convolutions and batchnorm1d like the reference kernels", function()
    like_reference(strided_net(), strided_net(), data, 9)
  end)

  it("give that net bit-identical losses, parameters and test loss on 1, 2 and 3 threads", function()
    same_on_threads(strided_net, 15, function() return lunet.adam { lr = 1e-3 } end, 6)
  end)

  it("take the forward's kernels in a backward after use_reference_kernels switched", function()
    -- the fast forward fuses the ReLUs after batchnorm and max pooling (their inputs are
    -- never written), so a backward through other kernels could read stale values
    local function mk()
      return lunet.sequential { input = { 1, 6, 6 }, lunet.conv2d(1, 2, 3, { padding = 1 }),
        lunet.batchnorm2d(2), lunet.relu(), lunet.maxpool2d(2), lunet.relu(), lunet.flatten(),
        lunet.linear(18, 3), lunet.log_softmax(), seed = 4 }
    end
    local rnd, xs, ds = lcg(21), {}, {}
    for i = 1, 4 * 36 do xs[i] = rnd() * 2 - 1 end
    for i = 1, 12 do ds[i] = rnd() - 0.5 end
    local x, dout = lunet.tensor(xs, { 4, 1, 6, 6 }), lunet.tensor(ds, { 4, 3 })
    local function grads(switch)
      local net = mk()
      net:forward(x, true)
      if switch then net:use_reference_kernels(true) end
      net:backward(dout)
      return net:_grads()
    end
    local fast, switched = grads(false), grads(true)
    assert.equal(#fast, #switched)
    for i = 1, #fast do assert.equal(fast[i], switched[i]) end
  end)

  it("reject a bad threads option with a message naming it", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local opt = lunet.sgd { lr = 0.01 }
    for _, bad in ipairs({ 0, -1, 1.5, "2" }) do
      local ok, err = pcall(net.train, net, { data = data, optimizer = opt, threads = bad, quiet = true })
      assert.is_false(ok)
      assert.matches("threads", err)
    end
    local ok, err = pcall(net.train, net, { data = data, optimizer = opt, threads = 257, quiet = true })
    assert.is_false(ok)
    assert.matches("option 'threads' must be at most 256", err, 1, true)
    ok, err = pcall(net.evaluate, net, data, { threads = 0 })
    assert.is_false(ok)
    assert.matches("threads", err)
  end)
end)
