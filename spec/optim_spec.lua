-- Each optimizer's step on known numbers equals PyTorch's formula, computed by hand.
local lunet = require("lunet")
local err_of = require("util").err_of

-- Steps an optimizer of `spec` over parameters p0 with one gradient per step; the
-- parameters after step k must be near want[k] (relative 1e-6, absolute below 1).
local function steps(spec, p0, grads, want)
  local p = lunet.tensor(p0, { #p0 })
  local opt = lunet.optimizer(spec, #p0)
  for k, g in ipairs(grads) do
    opt:step(p, lunet.tensor(g, { #g }))
    local got = p:totable()
    for i = 1, #want[k] do
      assert.near(want[k][i], got[i], 1e-6 * math.max(1, math.abs(want[k][i])))
    end
  end
end

describe("SGD", function()
  it("plain: p -= lr * g", function()
    steps(lunet.sgd { lr = 0.1 }, { 1, -2 }, { { 0.5, 1 }, { 0.5, 1 } }, { { 0.95, -2.1 }, { 0.90, -2.2 } })
  end)
  it("momentum: the first step copies the gradient into the buffer", function()
    -- buf1 = g1 = 1; p = 1 - 0.1*1 = 0.9; buf2 = 0.9*1 + 2 = 2.9; p = 0.9 - 0.29 = 0.61
    steps(lunet.sgd { lr = 0.1, momentum = 0.9 }, { 1 }, { { 1 }, { 2 } }, { { 0.9 }, { 0.61 } })
  end)
  it("dampening applies from the second step", function()
    -- buf1 = 1 (no dampening on the first step); buf2 = 0.9*1 + (1-0.5)*2 = 1.9
    steps(lunet.sgd { lr = 0.1, momentum = 0.9, dampening = 0.5 }, { 1 }, { { 1 }, { 2 } },
      { { 0.9 }, { 0.9 - 0.19 } })
  end)
  it("nesterov: g + momentum * buf", function()
    -- step1: buf = 1, g' = 1 + 0.9 = 1.9 -> p = 1 - 0.19 = 0.81
    -- step2: buf = 0.9 + 2 = 2.9, g' = 2 + 2.61 = 4.61 -> p = 0.81 - 0.461 = 0.349
    steps(lunet.sgd { lr = 0.1, momentum = 0.9, nesterov = true }, { 1 }, { { 1 }, { 2 } },
      { { 0.81 }, { 0.349 } })
  end)
  it("weight decay adds wd * p to the gradient", function()
    -- g = 1 + 0.1*2 = 1.2 -> p = 2 - 0.5*1.2 = 1.4
    steps(lunet.sgd { lr = 0.5, weight_decay = 0.1 }, { 2 }, { { 1 } }, { { 1.4 } })
  end)
end)

describe("Adam", function()
  it("bias-corrected first and second moments", function()
    local lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    local p, m, v = 1.0, 0, 0
    local expected = {}
    for t, g in ipairs({ 0.5, -1.0 }) do
      m = b1 * m + (1 - b1) * g
      v = b2 * v + (1 - b2) * g * g
      local denom = math.sqrt(v) / math.sqrt(1 - b2 ^ t) + eps
      p = p - lr / (1 - b1 ^ t) * m / denom
      expected[t] = p
    end
    -- by hand: step 1 moves by lr * sign(g) exactly (m_hat / sqrt(v_hat) = 1)
    assert.near(0.99, expected[1], 1e-7)
    steps(lunet.adam { lr = lr }, { 1.0 }, { { 0.5 }, { -1.0 } }, { { expected[1] }, { expected[2] } })
  end)
  it("weight decay enters the gradient (L2), AdamW decays the weight instead", function()
    -- g = 0 + 0.5*2 = 1: the first Adam step moves by lr
    steps(lunet.adam { lr = 0.1, weight_decay = 0.5 }, { 2.0 }, { { 0.0 } }, { { 1.9 } })
    -- p = 2*(1 - 0.1*0.5) = 1.9, then the Adam step of g = 1 moves by 0.1 -> 1.8
    steps(lunet.adamw { lr = 0.1, weight_decay = 0.5 }, { 2.0 }, { { 1.0 } }, { { 1.8 } })
  end)
end)

describe("optimizer arguments", function()
  it("reject bad values with the field named", function()
    assert.matches("lr", err_of(lunet.sgd, { lr = -1 }))
    assert.matches("nesterov", err_of(lunet.sgd, { lr = 0.1, nesterov = true }))
    assert.matches("betas", err_of(lunet.adam, { betas = { 0.9, 1.5 } }))
    local err = err_of(lunet.sgd, { lerning_rate = 0.1 })
    assert.matches("unknown option 'lerning_rate'", err, 1, true)
    assert.matches("valid: dampening, lr, momentum, nesterov, weight_decay", err, 1, true)
  end)
  it("step checks tensor sizes", function()
    local opt = lunet.optimizer(lunet.sgd { lr = 0.1 }, 3)
    assert.matches("3 parameters", err_of(opt.step, opt, lunet.tensor({ 1, 2 }, { 2 }), lunet.tensor({ 1, 2 }, { 2 })))
  end)
end)
