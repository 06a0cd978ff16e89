-- Finite-difference gradient checking through the public Lua API.
-- The scalar checked is L = sum_i y_i * r_i for a fixed random r, so dL/dy = r and
-- one backward pass gives every analytic gradient at once.
local lunet = require("lunet")
local lcg = require("lcg")

local M = {}

-- A deterministic generator (spec/support/lcg.lua), seed 12345 unless given.
function M.rng(seed) return lcg(seed or 12345) end

function M.random_tensor(shape, rand, scale)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  local data = {}
  for i = 1, n do data[i] = (rand() * 2 - 1) * (scale or 1) end
  return lunet.tensor(data, shape), data
end

local function dot(y, r)
  local s = 0
  for i = 1, #r do s = s + y[i] * r[i] end
  return s
end

-- Compares an analytic gradient with a numeric one; returns ok, worst description.
-- Elements listed in `kinks` (numeric estimates that disagree between two step
-- sizes: a ReLU or max-pool switch lies within the step) are not compared.
function M.compare(analytic, numeric, rtol, atol, kinks)
  local worst, where = 0, nil
  for i, a in pairs(numeric) do
    if kinks and kinks[i] then goto continue end
    local g = analytic[i]
    local err = math.abs(g - a) - (rtol * math.max(math.abs(g), math.abs(a)) + atol)
    if err > worst or g ~= g then worst, where = err, i end
    ::continue::
  end
  if where then
    return false, ("element %d: analytic %.6g, numeric %.6g"):format(where, analytic[where], numeric[where])
  end
  return true
end

-- Checks d(L)/d(input) and d(L)/d(every parameter) of `net` at x.
-- opts: training (bool), seed, eps, samples (max elements checked per tensor), rtol, atol.
function M.check_net(net, x_shape, opts)
  opts = opts or {}
  local rand = M.rng(opts.seed_data or 7)
  local eps, rtol, atol = opts.eps or 1e-3, opts.rtol or 2e-2, opts.atol or 3e-3
  local training, seed = opts.training or false, opts.seed or 3
  local x, xdata = M.random_tensor(x_shape, rand, opts.scale)
  local y = net:forward(x, training, seed)
  local r = {}
  for i = 1, y:numel() do r[i] = rand() * 2 - 1 end
  local dx = net:backward(lunet.tensor(r, y:shape())):totable()
  local analytic_params = {}
  for _, p in ipairs(net:parameters()) do
    analytic_params[#analytic_params + 1] = { p = p, grad = net:get(p.layer, p.name .. "_grad"):totable() }
  end

  local function loss_at() return dot(net:forward(x, training, seed):totable(), r) end
  local function pick(n)
    local idx, limit = {}, opts.samples or 60
    if n <= limit then for i = 1, n do idx[#idx + 1] = i end
    else for _ = 1, limit do idx[#idx + 1] = 1 + math.floor(rand() * n) end end
    return idx
  end

  -- One-sided differences on both sides: where they disagree, a ReLU or max-pool
  -- switch lies within the step, and that element says nothing about the backward.
  local checked, skipped = 0, 0
  local function numeric_at(set, v)
    local l0 = loss_at()
    set(v + eps); local lp = loss_at()
    set(v - eps); local lm = loss_at()
    set(v)
    local central = (lp - lm) / (2 * eps)
    local forward, backward = (lp - l0) / eps, (l0 - lm) / eps
    checked = checked + 1
    local smooth = math.abs(forward - backward) <= rtol * math.abs(central) + atol
    if not smooth then skipped = skipped + 1 end
    return central, not smooth
  end

  local failures = {}
  local numeric, kinks = {}, {}
  for _, i in ipairs(pick(#xdata)) do
    numeric[i], kinks[i] = numeric_at(function(v) x:set(i, v) end, xdata[i])
  end
  local ok, msg = M.compare(dx, numeric, rtol, atol, kinks)
  if not ok then failures[#failures + 1] = "input: " .. msg end

  for _, ap in ipairs(analytic_params) do
    local p = ap.p
    local t = net:get(p.layer, p.name)
    local num, pk = {}, {}
    for _, i in ipairs(pick(t:numel())) do
      num[i], pk[i] = numeric_at(function(v) t:set(i, v); net:set(p.layer, p.name, t) end, t[i])
    end
    local pok, pmsg = M.compare(ap.grad, num, rtol, atol, pk)
    if not pok then failures[#failures + 1] = ("layer %d %s: %s"):format(p.layer, p.name, pmsg) end
  end
  if skipped > checked / 4 then
    failures[#failures + 1] = ("%d of %d elements sit on kinks: the check says too little"):format(skipped, checked)
  end
  return #failures == 0, table.concat(failures, "; "), skipped
end

return M
