-- Training end to end: the loss falls, runs are reproducible bit for bit, and the
-- history says what happened.
local lunet = require("lunet")
local synthetic = require("synthetic")

local same_bits = require("util").same_bits

describe("training on synthetic data", function()
  local data = synthetic(96, 4, 3)

  it("lowers the loss and learns the classes", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local h = net:train { data = data, optimizer = lunet.sgd { lr = 0.05, momentum = 0.5 }, batch = 16,
      iterations = 8, seed = 1, quiet = true }
    assert.equal(8, #h.loss)
    assert.equal(8 * 6, #h.step_loss)
    assert.is_true(h.loss[8] < h.loss[1] * 0.7, ("loss %g -> %g"):format(h.loss[1], h.loss[8]))
    assert.is_true(net:evaluate(data).accuracy > 0.9)
    assert.is_false(h.diverged)
    assert.is_true(h.samples_per_second > 0)
    assert.equal(8 * 96, h.samples)
  end)

  it("history.cpu_seconds is the process's CPU time over the training, every thread's", function()
    for _, threads in ipairs({ 1, 2 }) do
      local net = lunet.models.mnist_cnn { seed = 1 }
      local c0 = os.clock()
      local h = net:train { data = data, batch = 16, iterations = 40, quiet = true, threads = threads }
      -- the process's CPU time around the call, which also counts the buffers' allocation
      -- and the workers' start before the span
      local around = os.clock() - c0
      assert.is_true(h.cpu_seconds > 0 and h.cpu_seconds <= around,
        ("%d threads: cpu %g, os.clock around %g"):format(threads, h.cpu_seconds, around))
      if threads == 1 then -- one thread cannot use more CPU than wall-clock time
        assert.is_true(h.cpu_seconds <= h.seconds * 1.02 + 0.002,
          ("cpu %g, wall %g"):format(h.cpu_seconds, h.seconds))
      else
        -- nearly all of the process's time: the caller's share alone would be about half
        -- of it. (More CPU than wall-clock time would show the workers' time only while
        -- no other load keeps the second thread off its CPU.)
        assert.is_true(h.cpu_seconds >= 0.75 * around,
          ("cpu %g, os.clock around %g, wall %g"):format(h.cpu_seconds, around, h.seconds))
      end
    end
  end)

  it("epoch loss is the sample-weighted mean of its steps (last batch partial)", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local h = net:train { data = data, batch = 40, iterations = 1, quiet = true }
    assert.equal(3, #h.step_loss) -- 40 + 40 + 16
    local expected = (h.step_loss[1] * 40 + h.step_loss[2] * 40 + h.step_loss[3] * 16) / 96
    assert.near(expected, h.loss[1], 1e-6)
  end)

  it("unit = step counts optimizer steps", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local h = net:train { data = data, batch = 32, iterations = 5, unit = "step", quiet = true }
    assert.equal(5, #h.loss)
    assert.equal(5, #h.step_loss)
    assert.near(h.step_loss[5], h.loss[5], 1e-6)
    assert.equal(160, h.samples)
  end)

  it("the same seed gives the same bits; another seed does not", function()
    local function run(seed)
      local net = lunet.models.mnist_cnn { seed = 4 }
      return net:train { data = data, optimizer = lunet.sgd { lr = 0.01, momentum = 0.5 }, batch = 16,
        iterations = 2, seed = seed, quiet = true }.step_loss
    end
    assert.is_true(same_bits(run(5), run(5)))
    assert.is_false(same_bits(run(5), run(6)))
  end)

  it("a huge learning rate diverges and says so", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local h = net:train { data = data, optimizer = lunet.sgd { lr = 1e10, momentum = 0.9 }, batch = 16,
      iterations = 20, quiet = true }
    assert.is_true(h.diverged)
    assert.is_true(#h.loss < 20)
    local last = h.loss[#h.loss]
    assert.is_true(last ~= last or last == math.huge, tostring(last))
  end)

  it("a progress function is called every iteration and can stop training", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local calls = {}
    local h = net:train { data = data, batch = 32, iterations = 5, progress = function(p)
      calls[#calls + 1] = p.iteration
      return p.iteration == 2
    end }
    assert.same({ 1, 2 }, calls)
    assert.equal(2, #h.loss)
    assert.is_true(h.interrupted)
  end)

  it("predict returns the class and log-probabilities of one image", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local class, logp = net:predict(data:image(1))
    assert.is_true(class >= 0 and class <= 9)
    assert.same({ 10 }, logp:shape())
    local s = 0
    for i = 1, 10 do s = s + math.exp(logp[i]) end
    assert.near(1, s, 1e-5)
  end)

  it("predict of a batch gives net:forward's eval outputs bit for bit (forwarded 64 at a time) and each row's class", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local n = 150 -- chunks of 64, 64 and 22
    local values = {}
    for i = 1, n do
      local img = data:image((i - 1) % data:size() + 1)
      for j = 1, 784 do values[(i - 1) * 784 + j] = img[j] end
    end
    local x = lunet.tensor(values, { n, 1, 28, 28 })
    local classes, y = net:predict(x)
    local ref = net:forward(x)
    assert.same({ n, 10 }, y:shape())
    assert.equal(n, #classes)
    for i = 1, n * 10 do
      if string.pack("f", y[i]) ~= string.pack("f", ref[i]) then
        error(("output %d: predict %a, forward %a"):format(i, y[i], ref[i]))
      end
    end
    for i = 1, n do
      local best = 0
      for c = 1, 9 do
        if ref[(i - 1) * 10 + c + 1] > ref[(i - 1) * 10 + best + 1] then best = c end
      end
      assert.equal(best, classes[i])
    end
    -- predict's passes are not the caller's to go back through
    net:predict(x)
    assert.has_error(function() net:backward(lunet.zeros { n, 10 }) end, "backward: call net:forward first")
  end)
end)

describe("continuing in memory", function()
  local data = synthetic(96, 4, 3)
  local sgd = lunet.sgd { lr = 0.05, momentum = 0.5 }

  -- Trains a fresh net with calls of the given iteration counts; returns the iteration
  -- and step losses of all calls in order, and the net.
  local function train_in(calls, opts)
    local net = lunet.models.mnist_cnn { seed = 1 }
    local loss, steps = {}, {}
    for _, k in ipairs(calls) do
      local o = { data = data, optimizer = sgd, batch = 40, iterations = k, quiet = true }
      for key, v in pairs(opts or {}) do o[key] = v end
      local h = net:train(o)
      table.move(h.loss, 1, #h.loss, #loss + 1, loss)
      table.move(h.step_loss, 1, #h.step_loss, #steps + 1, steps)
    end
    return loss, steps, net
  end

  it("train{iterations = 2} twice is bit-identical to train{iterations = 4} once", function()
    local once, once_steps, net1 = train_in({ 4 })
    local twice, twice_steps, net2 = train_in({ 2, 2 })
    assert.equal(4, #twice)
    assert.is_true(same_bits(once, twice))
    assert.is_true(same_bits(once_steps, twice_steps))
    assert.is_true(same_bits(net1:_params():totable(), net2:_params():totable()))
  end)

  it("unit = step continues in the middle of an epoch (2 + 3 steps = 5 steps)", function()
    local once = train_in({ 5 }, { unit = "step" })
    local parts = train_in({ 2, 3 }, { unit = "step" })
    assert.is_true(same_bits(once, parts))
    -- an epoch call after 2 steps finishes the epoch those steps began (1 step of 16 left)
    local _, steps = train_in({ 2, 1 }, { unit = "step" })
    local _, mixed = (function()
      local net = lunet.models.mnist_cnn { seed = 1 }
      local s = {}
      for _, o in ipairs({ { unit = "step", iterations = 2 }, { unit = "epoch", iterations = 1 } }) do
        local h = net:train { data = data, optimizer = sgd, batch = 40, iterations = o.iterations,
          unit = o.unit, quiet = true }
        table.move(h.step_loss, 1, #h.step_loss, #s + 1, s)
      end
      return nil, s
    end)()
    assert.is_true(same_bits(steps, mixed))
  end)

  it("fresh = true, another optimizer kind or another seed start over", function()
    local once = train_in({ 2 })
    local again = train_in({ 2, 2 }, { fresh = true })
    local first_two = { once[1], once[2] }
    assert.is_false(same_bits(first_two, { again[3], again[4] })) -- the net has learnt
    -- starting over = the same as a new net from the trained parameters, new streams
    local net = lunet.models.mnist_cnn { seed = 1 }
    net:train { data = data, optimizer = sgd, batch = 40, iterations = 2, quiet = true }
    local copy = net:clone()
    local a = net:train { data = data, optimizer = sgd, batch = 40, iterations = 2, fresh = true, quiet = true }
    local b = copy:train { data = data, optimizer = sgd, batch = 40, iterations = 2, quiet = true }
    assert.is_true(same_bits(a.loss, b.loss))
    local adam_after = net:clone()
    local c = net:train { data = data, optimizer = lunet.adam {}, batch = 40, iterations = 1, quiet = true }
    local d = adam_after:train { data = data, optimizer = lunet.adam {}, batch = 40, iterations = 1, quiet = true }
    assert.is_true(same_bits(c.loss, d.loss))
    -- the same optimizer kind with another seed: starts over (streams from the new seed)
    local seed_after = net:clone()
    local e = net:train { data = data, optimizer = lunet.adam {}, batch = 40, iterations = 1, seed = 7, quiet = true }
    local f = seed_after:train { data = data, optimizer = lunet.adam {}, batch = 40, iterations = 1, seed = 7,
      quiet = true }
    assert.is_true(same_bits(e.loss, f.loss))
    -- SGD with momentum after SGD without: starts over (no momentum buffer to continue)
    local plain = lunet.sgd { lr = 0.05 }
    net:train { data = data, optimizer = plain, batch = 40, iterations = 1, seed = 7, quiet = true }
    local momentum_after = net:clone()
    local g = net:train { data = data, optimizer = sgd, batch = 40, iterations = 1, seed = 7, quiet = true }
    local k = momentum_after:train { data = data, optimizer = sgd, batch = 40, iterations = 1, seed = 7, quiet = true }
    assert.is_true(same_bits(g.loss, k.loss))
  end)

  it("a lower lr in the second call applies from its first step", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    net:train { data = data, optimizer = sgd, batch = 40, iterations = 1, quiet = true }
    local before = net:_params():totable()
    local h = net:train { data = data, optimizer = lunet.sgd { lr = 1e-30, momentum = 0.5 }, batch = 40,
      iterations = 1, quiet = true }
    assert.equal(1e-30, h.lr[1])
    local after = net:_params():totable()
    -- the momentum buffer is kept, but the step uses the new rate: nothing moves
    local moved = 0
    for i = 1, #before do if math.abs(after[i] - before[i]) > 1e-20 then moved = moved + 1 end end
    assert.equal(0, moved)
  end)
end)

describe("learning-rate schedules", function()
  local data = synthetic(96, 4, 3)
  local sgd = lunet.sgd { lr = 0.1, momentum = 0.5 }

  it("h.lr records the rate of each iteration: per epoch and per step", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local h = net:train { data = data, optimizer = sgd, batch = 40, iterations = 5, quiet = true,
      schedule = { "step", step_size = 2, gamma = 0.5 } }
    assert.same({ 0.1, 0.1, 0.05, 0.05, 0.025 }, h.lr)
    -- per step: 3 steps an epoch, so epoch i starts at step 3(i - 1)
    h = net:train { data = data, optimizer = sgd, batch = 40, iterations = 3, quiet = true, fresh = true,
      schedule = { "exponential", gamma = 0.9, per = "step" } }
    for i = 1, 3 do assert.near(0.1 * 0.9 ^ (3 * (i - 1)), h.lr[i], 1e-15) end
    h = net:train { data = data, optimizer = sgd, batch = 40, iterations = 3, quiet = true, fresh = true,
      schedule = { "cosine", t_max = 2, eta_min = 0.01 } }
    assert.near(0.1, h.lr[1], 1e-15)
    assert.near(0.055, h.lr[2], 1e-15)
    assert.near(0.01, h.lr[3], 1e-15)
    h = net:train { data = data, optimizer = sgd, batch = 40, iterations = 4, quiet = true, fresh = true,
      schedule = { "multistep", milestones = { 1, 3 }, gamma = 0.1 } }
    assert.near(0.1, h.lr[1], 1e-15)
    assert.near(0.01, h.lr[2], 1e-15)
    assert.near(0.01, h.lr[3], 1e-15)
    assert.near(0.001, h.lr[4], 1e-15)
  end)

  it("a schedule continues across calls bit for bit (2 + 2 epochs = 4)", function()
    local function run(calls)
      local net = lunet.models.mnist_cnn { seed = 2 }
      local out = {}
      for _, k in ipairs(calls) do
        local h = net:train { data = data, optimizer = sgd, batch = 40, iterations = k, quiet = true,
          schedule = { "cosine", t_max = 4, per = "step" } }
        table.move(h.step_loss, 1, #h.step_loss, #out + 1, out)
      end
      return out
    end
    assert.is_true(same_bits(run({ 4 }), run({ 2, 2 })))
  end)

  it("bad schedules are errors naming the option", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local function err(schedule)
      local ok, e = pcall(net.train, net, { data = data, iterations = 1, quiet = true, schedule = schedule })
      assert.is_false(ok)
      return tostring(e)
    end
    assert.matches("cosine needs t_max", err({ "cosine" }), 1, true)
    assert.matches("unknown kind \"linear\"", err({ "linear" }), 1, true)
    assert.matches("step needs step_size", err({ "step", gamma = 0.5 }), 1, true)
    assert.matches("per must be", err({ "exponential", gamma = 0.5, per = "batch" }), 1, true)
    assert.matches("unknown option 'tmax'", err({ "cosine", tmax = 3 }), 1, true)
    assert.matches("milestones must be increasing", err({ "multistep", milestones = { 3, 2 } }), 1, true)
    assert.matches("option 'schedule' must be a table", tostring(select(2, pcall(lunet.schedule_lr, 3, 0.1, 0))), 1, true)
  end)
end)

describe("validation, early stopping, confusion matrix", function()
  local data = synthetic(96, 4, 3)
  local val = synthetic(40, 4, 9)
  local sgd = lunet.sgd { lr = 0.05, momentum = 0.5 }

  it("validate_every = 2 over 5 epochs validates after 2, 4 and the last; the values are net:evaluate's", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local h = net:train { data = data, validate = val, validate_every = 2, optimizer = sgd, batch = 16,
      iterations = 5, quiet = true }
    assert.same({ 2, 4, 5 }, h.val_iterations)
    assert.equal(3, #h.val_loss)
    assert.equal(3, #h.val_accuracy)
    local r = net:evaluate(val, { batch = 16 })
    assert.equal(r.loss, h.val_loss[3])
    assert.equal(r.accuracy, h.val_accuracy[3])
    assert.is_true(h.val_loss[3] < h.val_loss[1])
    -- validation does not change training: the same losses as without it
    local plain = lunet.models.mnist_cnn { seed = 1 }:train { data = data, optimizer = sgd, batch = 16,
      iterations = 5, quiet = true }
    assert.is_true(same_bits(plain.step_loss, h.step_loss))
    assert.is_nil(plain.val_loss)
  end)

  -- Keras' EarlyStopping and Lightning's: the first check always improves (best starts at
  -- +inf); after `patience` checks in a row that do not beat best - min_delta, stop.
  local function keras_stop(values, patience, min_delta)
    local best, wait = math.huge, 0
    for i, v in ipairs(values) do
      if v < best - min_delta then
        best, wait = v, 0
      else
        wait = wait + 1
        if wait >= patience then return i end
      end
    end
    return nil
  end

  it("patience counts checks without improvement as Keras and Lightning do", function()
    -- lr 1e-30 moves no parameter: the validation loss is the same every epoch, so
    -- epoch 1 improves (on +inf) and epochs 2, 3, ... do not
    local frozen = lunet.sgd { lr = 1e-30 }
    for _, patience in ipairs({ 0, 1, 2, 4 }) do
      local net = lunet.models.mnist_cnn { seed = 1 }
      local h = net:train { data = data, validate = val, optimizer = frozen, batch = 32, iterations = 10,
        quiet = true, stop = { metric = "val_loss", patience = patience } }
      -- patience 0 and 1 both stop at the first check that does not improve
      assert.equal(math.max(patience, 1) + 1, h.stopped_at, "patience " .. patience)
      assert.equal(h.stopped_at, #h.loss)
      assert.equal(h.stopped_at, keras_stop(h.val_loss, patience, 0))
    end
    -- min_delta: improvements smaller than it do not count
    local net = lunet.models.mnist_cnn { seed = 1 }
    local h = net:train { data = data, optimizer = sgd, batch = 16, iterations = 10, quiet = true,
      stop = { metric = "loss", patience = 3, min_delta = 0.2 } }
    assert.equal(keras_stop(h.loss, 3, 0.2), h.stopped_at)
    assert.is_true(h.stopped_at < 10)
    -- and a run that keeps improving is not stopped
    net = lunet.models.mnist_cnn { seed = 1 }
    h = net:train { data = data, optimizer = sgd, batch = 16, iterations = 4, quiet = true,
      stop = { metric = "loss", patience = 1 } }
    assert.is_nil(keras_stop(h.loss, 1, 0))
    assert.is_nil(h.stopped_at)
    assert.equal(4, #h.loss)
  end)

  it("stop needs a validation set for val_loss; bad values are errors naming the option", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    local function err(o)
      o.data, o.quiet = data, true
      local ok, e = pcall(net.train, net, o)
      assert.is_false(ok)
      return tostring(e)
    end
    assert.matches("metric \"val_loss\" needs option 'validate'", err { stop = { metric = "val_loss", patience = 1 } }, 1, true)
    assert.matches("option 'stop': metric must be", err { validate = val, stop = { metric = "acc" } }, 1, true)
    assert.matches("option 'patience' must be an integer >= 0", err { validate = val, stop = { patience = -1 } }, 1, true)
    assert.matches("option 'validate' must be a dataset", err { validate = {} }, 1, true)
    assert.matches("'validate_every' needs option 'validate'", err { validate_every = 2 }, 1, true)
    local wide = lunet.dataset(lunet.zeros { 2, 1, 8, 8 }, { 0, 1 })
    assert.matches("validate: data: samples are 1x8x8", err { validate = wide }, 1, true)
  end)

  it("the confusion matrix: k x k, rows = true class, rows sum to the class counts", function()
    local net = lunet.models.mnist_cnn { seed = 1 }
    net:train { data = data, optimizer = sgd, batch = 16, iterations = 3, quiet = true }
    local r = net:evaluate(val)
    local m = r.confusion
    assert.equal(10, #m)
    local counts = val:class_counts()
    local diagonal, total = 0, 0
    for i = 1, 10 do
      assert.equal(10, #m[i])
      local row = 0
      for j = 1, 10 do row = row + m[i][j] end
      assert.equal(counts[i] or 0, row, "row " .. i)
      diagonal, total = diagonal + m[i][i], total + row
    end
    assert.equal(#val, total)
    assert.near(r.accuracy, diagonal / total, 1e-12)
    local text = tostring(m)
    assert.matches("^true\\pred +0 +1", text)
    local lines = select(2, text:gsub("\n", "")) + 1
    assert.equal(11, lines) -- a header and a row per true class
    local plot = require("lunet.plot")
    if plot.available() then
      local drawn = assert(m:plot { output = "string", width = 70, height = 24 })
      assert.matches("confusion matrix", drawn, 1, true)
      assert.matches("predicted class", drawn, 1, true)
    end
  end)
end)

describe("training on real MNIST", function()
  local dir = os.getenv("MNIST_DIR")
  local train = dir and lunet.mnist { dir = dir, split = "train", n = 3000 }
  if not train then
    it("needs MNIST_DIR", function() pending("MNIST_DIR not set or MNIST missing: real-data specs skipped") end)
    return
  end

  it("the study's net, first 3000 images, lr 0.01, momentum 0.5, batch 64, 3 epochs: loss falls every epoch; same seed, same bits", function()
    local function run()
      local net = lunet.models.mnist_cnn()
      return net:train { data = train, loss = "nll", optimizer = lunet.sgd { lr = 0.01, momentum = 0.5 },
        batch = 64, iterations = 3, unit = "epoch", seed = 1, quiet = true }, net
    end
    local h, net = run()
    io.write(("\n  epoch losses %.4f %.4f %.4f, %.0f samples/s\n"):format(h.loss[1], h.loss[2], h.loss[3],
      h.samples_per_second))
    assert.equal(3, #h.loss)
    assert.is_true(h.loss[2] < h.loss[1] and h.loss[3] < h.loss[2])
    assert.is_true(h.loss[3] < h.loss[1])
    assert.equal(3 * 47, #h.step_loss)
    local h2 = run()
    assert.is_true(same_bits(h.loss, h2.loss))
    assert.is_true(same_bits(h.step_loss, h2.step_loss))
    local test = assert(lunet.mnist { dir = dir, split = "test" })
    assert.equal(10000, #test)
    local r = net:evaluate(test)
    assert.is_true(r.accuracy > 0.5, "accuracy " .. r.accuracy)
  end)
end)
