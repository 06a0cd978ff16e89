-- Checkpoints: net:train{checkpoint = {path, every}} writes the net and the training
-- state atomically; net:train{resume = path} finishes the call bit-identically to a run
-- that was never stopped, also after the process that wrote it died in the middle.
local lunet = require("lunet")
local util = require("util")
local synthetic = require("synthetic")

local same_bits = require("util").same_bits

local function slice(t, i, j) return table.move(t, i, j, 1, {}) end

describe("checkpoints", function()
  local dir = util.temp_dir()
  teardown(function() util.rm_rf(dir) end)
  local data = synthetic(64, 4, 3)
  local val = synthetic(24, 4, 9)
  -- everything that has state: momentum, dropout, shuffling, a schedule per step,
  -- validation and early stopping
  local function opts(extra)
    local o = { data = data, validate = val, optimizer = lunet.sgd { lr = 0.05, momentum = 0.9 }, batch = 24,
      iterations = 5, seed = 3, quiet = true, schedule = { "cosine", t_max = 12, per = "step" },
      stop = { patience = 50 } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  it("resume after a process died at iteration 3 of 5 = the uninterrupted run, bit for bit", function()
    local whole_net = lunet.models.mnist_cnn { seed = 2 }
    local whole = whole_net:train(opts())
    local ckpt = dir .. "/run.ckpt"
    local script = dir .. "/die.lua"
    util.write(script, ([[
local lunet = require("lunet")
local synthetic = require("synthetic")
local net = lunet.models.mnist_cnn { seed = 2 }
net:train { data = synthetic(64, 4, 3), validate = synthetic(24, 4, 9),
  optimizer = lunet.sgd { lr = 0.05, momentum = 0.9 }, batch = 24, iterations = 5, seed = 3, quiet = true,
  schedule = { "cosine", t_max = 12, per = "step" }, stop = { patience = 50 },
  checkpoint = { path = %q, every = 1 },
  progress = function(p) if p.iteration == 3 then os.exit(7, false) end end }
]]):format(ckpt))
    local ok, how, code = os.execute(util.LUA .. " " .. util.shell_quote(script))
    assert.is_nil(ok)
    assert.equal("exit", how)
    assert.equal(7, code)
    -- only the checkpoint is there: no temporary file was left behind
    local names = {}
    for name in require("lfs").dir(dir) do if name:match("^run") then names[#names + 1] = name end end
    assert.same({ "run.ckpt" }, names)

    local net = lunet.models.mnist_cnn { seed = 99 } -- other parameters: the checkpoint's replace them
    local rest = assert(net:train(opts { resume = ckpt }))
    assert.equal(3, rest.resumed_after)
    assert.equal(2, #rest.loss)
    assert.is_true(same_bits(slice(whole.loss, 4, 5), rest.loss))
    assert.is_true(same_bits(slice(whole.lr, 4, 5), rest.lr))
    assert.same({ 4, 5 }, rest.val_iterations)
    assert.is_true(same_bits(slice(whole.val_loss, 4, 5), rest.val_loss))
    assert.is_true(same_bits(whole_net:_params():totable(), net:_params():totable()))
    -- and the net goes on as the uninterrupted one would
    local a = whole_net:train(opts { iterations = 1 })
    local b = net:train(opts { iterations = 1 })
    assert.is_true(same_bits(a.step_loss, b.step_loss))
  end)

  it("every = 2 writes after iterations 2, 4 and the last; the file is a checkpoint of the latest", function()
    local ckpt = dir .. "/every.ckpt"
    local net = lunet.models.mnist_cnn { seed = 2 }
    local h = net:train(opts { checkpoint = { path = ckpt, every = 2 } })
    assert.is_nil(h.checkpoint_error)
    -- the last write was after iteration 5: nothing is left to resume
    local again = lunet.models.mnist_cnn { seed = 2 }
    local r, msg = pcall(again.train, again, opts { resume = ckpt })
    assert.is_false(r)
    assert.matches("resume: the checkpoint has done 5 of the 5 iterations already", tostring(msg), 1, true)
    -- a longer call resumes it: 5 of 7 done
    local more = assert(again:train(opts { resume = ckpt, iterations = 7 }))
    assert.equal(2, #more.loss)
    -- stopped after iteration 3 (a progress function returning true): the file holds 2
    local stopped = lunet.models.mnist_cnn { seed = 2 }
    h = stopped:train(opts { checkpoint = { path = ckpt, every = 2 },
      progress = function(p) return p.iteration == 3 end })
    assert.equal(3, #h.loss)
    local rest = assert(lunet.models.mnist_cnn { seed = 2 }:train(opts { resume = ckpt }))
    assert.equal(2, rest.resumed_after)
    assert.is_true(same_bits(slice(h.loss, 3, 3), slice(rest.loss, 1, 1)))
  end)

  it("a bad or foreign checkpoint gives nil and a message naming the file; nothing changes", function()
    local net = lunet.models.mnist_cnn { seed = 2 }
    local before = net:_params():totable()
    local h, msg = net:train(opts { resume = dir .. "/missing.ckpt" })
    assert.is_nil(h)
    assert.matches(dir .. "/missing.ckpt: cannot open", msg, 1, true)
    local ckpt = dir .. "/good.ckpt"
    lunet.models.mnist_cnn { seed = 2 }:train(opts { iterations = 2, checkpoint = { path = ckpt } })
    local bytes = util.read(ckpt)
    util.write(dir .. "/flipped.ckpt", bytes:sub(1, 100) .. string.char((bytes:byte(101) + 1) % 256) .. bytes:sub(102))
    h, msg = net:train(opts { resume = dir .. "/flipped.ckpt" })
    assert.is_nil(h)
    assert.matches("flipped.ckpt: checksum mismatch", msg, 1, true)
    util.write(dir .. "/short.ckpt", bytes:sub(1, #bytes - 10))
    h, msg = net:train(opts { resume = dir .. "/short.ckpt" })
    assert.is_nil(h)
    assert.matches("short.ckpt", msg, 1, true)
    local model = dir .. "/model.lunet"
    assert(net:save(model))
    h, msg = net:train(opts { resume = model })
    assert.is_nil(h)
    assert.matches("model.lunet: not a lunet checkpoint", msg, 1, true)
    local other = lunet.sequential { lunet.flatten(), lunet.linear(784, 10), lunet.log_softmax() }
    h, msg = other:train(opts { resume = ckpt })
    assert.is_nil(h)
    assert.matches("other layers than this net", msg, 1, true)
    assert.is_true(same_bits(before, net:_params():totable()))
    -- a checkpoint of another seed or optimizer is an error, not a silent restart
    local ok, e = pcall(net.train, net, opts { resume = ckpt, seed = 4 })
    assert.is_false(ok)
    assert.matches("written with seed 3, not 4", tostring(e), 1, true)
    ok, e = pcall(net.train, net, opts { resume = ckpt, optimizer = lunet.adam {} })
    assert.is_false(ok)
    assert.matches("the state of sgd, not of adam", tostring(e), 1, true)
    -- and the net kept its own parameters and its own training state
    assert.is_true(same_bits(before, net:_params():totable()))
    local own = lunet.models.mnist_cnn { seed = 2 }
    assert.is_true(same_bits(net:train(opts { iterations = 1 }).step_loss, own:train(opts { iterations = 1 }).step_loss))
  end)

  it("the validation set is in use while training: freeing it in the callback is refused", function()
    local v = synthetic(24, 4, 9)
    local net = lunet.models.mnist_cnn { seed = 2 }
    local ok, e = pcall(net.train, net, { data = data, validate = v, batch = 24, iterations = 2, quiet = true,
      progress = function() v:free() end })
    assert.is_false(ok)
    assert.matches("dataset is in use by net:train", tostring(e), 1, true)
    assert.equal(24, #v) -- still there
    -- and a callback that drops the checkpoint option cannot take the path away
    local o = { data = data, batch = 24, iterations = 2, quiet = true, checkpoint = { path = dir .. "/cb.ckpt" } }
    o.progress = function() o.checkpoint.path = nil; collectgarbage() end
    local h = net:train(o)
    assert.equal(2, #h.loss)
    assert.is_nil(h.checkpoint_error)
  end)

  it("a checkpoint that cannot be written stops the run and keeps what was done", function()
    local net = lunet.models.mnist_cnn { seed = 2 }
    local h = net:train(opts { checkpoint = { path = dir .. "/no/such/dir/x.ckpt", every = 2 } })
    assert.equal(2, #h.loss)
    assert.is_true(h.interrupted)
    assert.matches("x.ckpt: cannot create a temporary file", h.checkpoint_error, 1, true)
    local ok, e = pcall(net.train, net, opts { checkpoint = { every = 2 } })
    assert.is_false(ok)
    assert.matches("option 'checkpoint' needs a path", tostring(e), 1, true)
  end)
end)
