-- Helpers for spec/fixtures_spec.lua: load the PyTorch reference fixtures
-- (spec/fixtures/*.json, format in spec/fixtures/README.md), run each case through
-- lunet's public Lua API and compare.
--
-- Error metric (one number per compared tensor):
--
--     rel(a, b) = max_i |a_i - b_i| / max(max_i |b_i|, FLOOR)      FLOOR = 1e-12
--
-- where b is the fixture (PyTorch) and a is lunet. It is the worst element error
-- scaled by the tensor's magnitude, so it means "relative error" for the tensor as a
-- whole and does not blow up on single elements near 0 (gradients have many). A NaN
-- or infinity anywhere in a, a length or shape mismatch, all count as failures
-- (rel = inf). Scalars (loss values) use the same formula with one element, i.e.
-- |a - b| / max(|b|, FLOOR).
--
-- "Exact" comparisons (maxpool/relu/flatten/dropout outputs, where lunet must copy an
-- input element) round the fixture number to float32 first, as the README says, and
-- count the elements that differ.
--
-- Tolerances (issue #5): 1e-5 on forward outputs, loss values and running statistics;
-- 1e-4 on gradients, optimizer steps and parameters after training steps.
local cjson = require("cjson")
local lunet = require("lunet")

local M = {}

M.dir = "spec/fixtures"
M.FLOOR = 1e-12
M.TOL_OUTPUT = 1e-5
M.TOL_GRAD = 1e-4
-- net_train_steps also compares the update alone, final - initial parameters, which
-- is what the gradients and SGD decide. It is ~100x smaller than the parameters, so
-- the 1e-4 check on the final parameters barely sees a 1% error in it; this one does.
-- Its resolution is ulp(param) / |update| (float32 parameters), hence 1e-3.
M.TOL_UPDATE = 1e-3

-- ---------------------------------------------------------------- loading

local function read_all(path)
  local f, err = io.open(path, "rb")
  if not f then error("cannot open fixture " .. path .. ": " .. tostring(err), 2) end
  local s = f:read("a")
  f:close()
  return s
end

function M.load_json(path) return cjson.decode(read_all(path)) end

function M.index() return M.load_json(M.dir .. "/index.json") end

function M.load(file) return M.load_json(M.dir .. "/" .. file) end

--- The float32 value of a number (round to nearest even, as (float)x in C).
function M.f32(v) return (string.unpack("<f", string.pack("<f", v))) end

local function ints(list)
  local out = {}
  for i, v in ipairs(list) do
    out[i] = math.tointeger(v) or error(("not an integer: %s"):format(tostring(v)), 2)
  end
  return out
end
M.ints = ints

--- A lunet tensor from a fixture tensor {shape, data}.
function M.tensor(t) return lunet.tensor(t.data, ints(t.shape)) end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = deep_copy(x) end
  return c
end
M.deep_copy = deep_copy

-- ------------------------------------------------------------- comparison

local function is_tensor(v) return getmetatable(v) == getmetatable(lunet.tensor({ 1 }, { 1 })) end

--- Flat data and shape (or nil) of a lunet tensor, a fixture tensor or a flat list.
local function unpack_value(v)
  if is_tensor(v) then return v:totable(), v:shape() end
  if type(v) == "table" and v.data then return v.data, ints(v.shape) end
  if type(v) == "table" then return v, nil end
  return { v }, nil
end

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function fmt_shape(s) return s and table.concat(s, "x") or "?" end

--- Compares actual a with expected b. Returns a result table:
--   {ok, rel, max_abs, max_ref, worst (1-based flat index), n, msg}
-- opts.tol (relative, see the metric above), opts.exact (bitwise float32 equality).
function M.compare(a, b, opts)
  opts = opts or {}
  local ad, ashape = unpack_value(a)
  local bd, bshape = unpack_value(b)
  local r = { n = #bd, rel = math.huge, max_abs = math.huge, max_ref = 0, worst = 0,
    mismatches = 0, exact = opts.exact or false, tol = opts.tol }
  if ashape and bshape and not same_shape(ashape, bshape) then
    r.ok = false
    r.msg = ("shape %s, expected %s"):format(fmt_shape(ashape), fmt_shape(bshape))
    return r
  end
  if #ad ~= #bd then
    r.ok = false
    r.msg = ("%d elements, expected %d"):format(#ad, #bd)
    return r
  end
  local max_abs, max_ref, worst, bad = 0, 0, 0, 0
  for i = 1, #bd do
    -- the fixture number stands for its float32 value (README); compare with that
    local x, y = ad[i], M.f32(bd[i])
    local d = math.abs(x - y)
    if d ~= d or d == math.huge then d = math.huge end -- NaN or inf in lunet's value
    if d > max_abs or worst == 0 then max_abs, worst = d, i end
    local ay = math.abs(y)
    if ay > max_ref then max_ref = ay end
    if opts.exact and x ~= y then bad = bad + 1 end
  end
  r.max_abs, r.max_ref, r.worst, r.mismatches = max_abs, max_ref, worst, bad
  r.rel = max_abs / math.max(max_ref, M.FLOOR)
  if r.rel ~= r.rel then r.rel = math.huge end
  if opts.exact then
    r.ok = bad == 0 and #bd > 0
    if not r.ok then
      r.msg = ("%d of %d elements differ from the float32 fixture value; worst [%d] %.9g vs %.9g")
        :format(bad, #bd, worst, ad[worst] or 0 / 0, bd[worst] or 0 / 0)
    end
  else
    r.ok = #bd > 0 and r.rel <= opts.tol
    if not r.ok then
      r.msg = ("rel %.3g > %.0e (max |diff| %.3g at [%d]: %.9g vs %.9g; max |expected| %.3g)")
        :format(r.rel, opts.tol, max_abs, worst, ad[worst] or 0 / 0, bd[worst] or 0 / 0, max_ref)
    end
  end
  if #bd == 0 then r.msg = "nothing to compare" end
  return r
end

-- A Checker collects the comparisons of one case, by label.
local Checker = {}
Checker.__index = Checker

--- new_checker{mutate = label}: if mutate names a label, the expected value of that
-- comparison is perturbed beyond its tolerance first (to prove the check can fail).
function M.checker(opts)
  -- (rates: Checker:rates below compares doubles, not float32 values)
  return setmetatable({ results = {}, mutate = opts and opts.mutate, mutated = false }, Checker)
end

-- A copy of expected b, changed by far more than tol at its largest element.
local function perturb(b, tol, exact)
  if type(b) == "number" then
    return b + math.max(math.abs(b), 1) * tol * 10
  end
  local c = deep_copy(b)
  local d = c.data or c
  local k, m = 1, -1
  for i, v in ipairs(d) do if math.abs(v) > m then k, m = i, math.abs(v) end end
  local step = math.max(m, 1e-6) * (exact and 1e-3 or tol * 10)
  d[k] = d[k] + step
  return c
end

function Checker:tensor(label, a, b, tol, opts)
  local exact = opts and opts.exact
  if self.mutate == label then b = perturb(b, tol or 1e-6, exact); self.mutated = true end
  local r = M.compare(a, b, { tol = tol, exact = exact })
  r.label = label
  self.results[#self.results + 1] = r
  return r
end

--- Learning rates: doubles (not float32, see the README), each element to a relative tol.
function Checker:rates(label, a, b, tol)
  if self.mutate == label then
    b = deep_copy(b)
    b[#b] = b[#b] * (1 + tol * 10)
    self.mutated = true
  end
  local r = { label = label, tol = tol, n = #b, rel = 0, worst = 0 }
  if #a ~= #b or #b == 0 then
    r.ok, r.rel, r.msg = false, math.huge, ("%d rates, expected %d"):format(#a, #b)
  else
    for i = 1, #b do
      local rel = math.abs(a[i] - b[i]) / math.max(math.abs(b[i]), M.FLOOR)
      if rel ~= rel then rel = math.huge end
      if rel > r.rel or r.worst == 0 then r.rel, r.worst = rel, i end
    end
    r.ok = r.rel <= tol
    if not r.ok then
      r.msg = ("rel %.3g > %.0e at [%d]: %.17g vs %.17g"):format(r.rel, tol, r.worst, a[r.worst], b[r.worst])
    end
  end
  self.results[#self.results + 1] = r
  return r
end

function Checker:exact(label, a, b) return self:tensor(label, a, b, nil, { exact = true }) end

function Checker:scalar(label, a, b, tol)
  if self.mutate == label then b = perturb(b, tol); self.mutated = true end
  local r = M.compare({ a }, { b }, { tol = tol })
  r.label = label
  self.results[#self.results + 1] = r
  return r
end

--- A failure not tied to one comparison (e.g. a fixture field the spec ignores).
function Checker:fail(label, msg)
  self.results[#self.results + 1] = { label = label, ok = false, msg = msg, rel = math.huge }
end

function Checker:labels()
  local out = {}
  for _, r in ipairs(self.results) do out[#out + 1] = r.label end
  return out
end

function Checker:failures()
  local out = {}
  for _, r in ipairs(self.results) do if not r.ok then out[#out + 1] = r end end
  return out
end

--- One line per comparison: label, error and tolerance.
function Checker:summary()
  local parts = {}
  for _, r in ipairs(self.results) do
    local s
    if r.exact then
      s = ("%s %s (rel %.2g)"):format(r.label, r.mismatches == 0 and r.ok and "exact" or
        ("%d differ"):format(r.mismatches or -1), r.rel)
    elseif r.tol then
      s = ("%s %.2e"):format(r.label, r.rel)
    else
      s = r.label .. " ERROR"
    end
    if not r.ok then s = s .. " FAIL" end
    parts[#parts + 1] = s
  end
  return table.concat(parts, ", ")
end

function Checker:failure_message(name)
  local lines = { ("%s: %d comparison(s) failed"):format(name, #self:failures()) }
  for _, r in ipairs(self:failures()) do
    lines[#lines + 1] = ("  %s: %s"):format(r.label, r.msg or "failed")
  end
  return table.concat(lines, "\n")
end

-- ------------------------------------------------------------------ layers

local function opt_int(v) return v ~= nil and math.tointeger(v) or nil end

--- A lunet layer from a fixture layer dict (README: "Layer dicts").
function M.layer(d)
  local k = d.kind
  if k == "conv2d" then
    return lunet.conv2d(opt_int(d.in_channels), opt_int(d.out_channels), opt_int(d.kernel),
      { stride = opt_int(d.stride), padding = opt_int(d.padding), bias = d.bias })
  elseif k == "maxpool2d" or k == "avgpool2d" then
    return lunet[k](opt_int(d.kernel), opt_int(d.stride))
  elseif k == "relu" or k == "tanh" or k == "sigmoid" or k == "flatten" or k == "log_softmax" then
    return lunet[k]()
  elseif k == "linear" then
    return lunet.linear(opt_int(d.in_features), opt_int(d.out_features), { bias = d.bias })
  elseif k == "leaky_relu" then
    return lunet.leaky_relu(d.negative_slope)
  elseif k == "dropout" or k == "dropout2d" then
    return lunet[k](d.p)
  elseif k == "batchnorm2d" or k == "batchnorm1d" then
    return lunet[k](opt_int(d.features), { eps = d.eps, momentum = d.momentum })
  end
  error("fixture layer kind '" .. tostring(k) .. "' has no lunet constructor in spec/support/fixtures.lua")
end

-- Fields of each kind that the runners below read or compare. A fixture field not
-- listed here fails the case, so new generator output cannot be silently ignored.
local HEADER = { format = true, version = true, name = true, kind = true, torch_version = true,
  seed = true }
local KNOWN = {
  layer = { layer = true, training = true, input = true, params = true, output = true,
    grad_output = true, grad_input = true, grads = true, params_after = true },
  loss = { loss = true, reduction = true, input = true, labels = true, target = true,
    target_from_labels = true, value = true, grad_input = true },
  optim = { optimizer = true, options = true, initial = true, grads = true, steps = true },
  net = { training = true, layers = true, params = true, input = true, labels = true, output = true,
    loss_kind = true, loss = true, grads = true, grad_input = true, optimizer = true, options = true,
    steps = true, losses = true, loss_after = true, final_params = true },
  schedule = { schedules = true },
  train = { layers = true, params = true, input = true, labels = true, loss_kind = true, optimizer = true,
    options = true, batch = true, unit = true, iterations = true, schedule = true, step_losses = true,
    step_lrs = true, final_params = true },
}

local function check_fields(chk, case)
  local known = KNOWN[case.kind]
  if not known then chk:fail("kind", "unknown fixture kind '" .. tostring(case.kind) .. "'"); return end
  local keys = {}
  for k in pairs(case) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    if not HEADER[k] and not known[k] then
      chk:fail("field " .. k, "fixture field '" .. k .. "' is not checked by the spec")
    end
  end
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- Ops whose outputs (and input gradients) are copies of input elements.
local EXACT_OUTPUT = { maxpool2d = true, relu = true, flatten = true, dropout = true, dropout2d = true,
  leaky_relu = true }
local EXACT_GRAD = { relu = true, flatten = true, dropout = true, dropout2d = true, leaky_relu = true }

local function per_sample(shape)
  local s = {}
  for i = 2, #shape do s[#s + 1] = math.tointeger(shape[i]) end
  return s
end

--- Runs a layer case; opts.reference uses lunet's reference kernels.
function M.run_layer(case, chk, opts)
  local d = case.layer
  local net = lunet.sequential { M.layer(d), input = per_sample(case.input.shape) }
  if opts and opts.reference then net:use_reference_kernels(true) end
  -- Every parameter lunet has must come from the fixture, or the comparison would
  -- run against lunet's own initialisation.
  for _, p in ipairs(net:parameters()) do
    if not (case.params and case.params[p.name]) then
      chk:fail("params", "lunet's layer has a " .. p.name .. " that the fixture does not set")
    end
  end
  for _, name in ipairs(sorted_keys(case.params)) do net:set(1, name, M.tensor(case.params[name])) end
  local y = net:forward(M.tensor(case.input), case.training, 1)
  if EXACT_OUTPUT[d.kind] then
    chk:exact("output", y, case.output)
  else
    chk:tensor("output", y, case.output, M.TOL_OUTPUT)
  end
  local dx = net:backward(M.tensor(case.grad_output))
  if EXACT_GRAD[d.kind] then
    chk:exact("grad_input", dx, case.grad_input)
  else
    chk:tensor("grad_input", dx, case.grad_input, M.TOL_GRAD)
  end
  local grads = net:gradients()
  local have = {}
  for _, g in ipairs(grads) do have[g.name] = g.tensor end
  for _, name in ipairs(sorted_keys(case.grads)) do
    if have[name] then
      chk:tensor(name .. "_grad", have[name], case.grads[name], M.TOL_GRAD)
    else
      chk:fail(name .. "_grad", "lunet has no " .. name .. " gradient")
    end
  end
  for _, g in ipairs(grads) do
    if not (case.grads and case.grads[g.name]) then
      chk:fail(g.name .. "_grad", "the fixture has no " .. g.name .. " gradient to compare with")
    end
  end
  for _, name in ipairs(sorted_keys(case.params_after)) do
    chk:tensor(name .. "_after", net:get(1, name), case.params_after[name], M.TOL_OUTPUT)
  end
  if d.kind:match("^batchnorm") and case.training and not case.params_after then
    chk:fail("params_after", "batchnorm training case without params_after")
  end
  -- Eval-mode batchnorm must leave the running statistics alone.
  if d.kind:match("^batchnorm") and not case.training then
    for _, name in ipairs({ "running_mean", "running_var" }) do
      chk:exact(name .. "_unchanged", net:get(1, name), case.params[name])
    end
  end
  return net
end

-- ------------------------------------------------------------------- losses

function M.run_loss(case, chk)
  if case.reduction ~= "mean" then chk:fail("reduction", "unsupported reduction " .. tostring(case.reduction)) end
  local pred = M.tensor(case.input)
  local value, grad
  if case.loss == "mse" and not case.target_from_labels then
    value, grad = lunet.loss("mse", pred, M.tensor(case.target))
  else
    value, grad = lunet.loss(case.loss, pred, ints(case.labels))
  end
  chk:scalar("value", value, case.value, M.TOL_OUTPUT)
  chk:tensor("grad_input", grad, case.grad_input, M.TOL_GRAD)
  -- With target_from_labels the fixture's target must be the one-hot of the labels,
  -- or the label path above would not test what torch computed.
  if case.target_from_labels then
    local onehot = {}
    local classes = math.tointeger(case.input.shape[2])
    for i, l in ipairs(ints(case.labels)) do
      for c = 1, classes do onehot[(i - 1) * classes + c] = (c - 1 == l) and 1 or 0 end
    end
    chk:exact("target_is_onehot", onehot, case.target)
  end
end

-- --------------------------------------------------------------- optimizers

--- A lunet optimizer spec from a fixture's optimizer name and options.
function M.optim_spec(kind, o)
  if kind == "sgd" then
    return lunet.sgd { lr = o.lr, momentum = o.momentum, dampening = o.dampening,
      nesterov = o.nesterov, weight_decay = o.weight_decay }
  elseif kind == "adam" or kind == "adamw" then
    if o.amsgrad then error("amsgrad is not supported by lunet") end
    return lunet[kind] { lr = o.lr, betas = o.betas and { o.betas[1], o.betas[2] }, eps = o.eps,
      weight_decay = o.weight_decay }
  end
  error("unknown optimizer '" .. tostring(kind) .. "'")
end

function M.run_optim(case, chk)
  local n = #case.initial
  local opt = lunet.optimizer(M.optim_spec(case.optimizer, case.options), n)
  local p = lunet.tensor(case.initial)
  if #case.grads ~= #case.steps then chk:fail("steps", "grads and steps differ in length") end
  for k, g in ipairs(case.grads) do
    opt:step(p, lunet.tensor(g))
    chk:tensor(("step%d"):format(k), p, case.steps[k], M.TOL_GRAD)
  end
end

-- ---------------------------------------------------------------------- net

local PARAM_NAMES = { "weight", "bias" }

--- The net of a net case, with the fixture's parameters set. Fails the case if lunet
-- has a parameter the fixture does not give (it would keep lunet's init).
function M.build_net(case, chk, params, opts)
  local layers = {}
  for i, d in ipairs(case.layers) do layers[i] = M.layer(d) end
  layers.input = per_sample(case.input.shape)
  local net = lunet.sequential(layers)
  if opts and opts.reference then net:use_reference_kernels(true) end
  M.set_net_params(net, params, chk)
  return net
end

function M.set_net_params(net, params, chk)
  for _, p in ipairs(net:parameters()) do
    local src = params[tostring(p.layer)]
    if not (src and src[p.name]) then
      chk:fail("params", ("the fixture has no %s for layer %d"):format(p.name, p.layer))
    else
      net:set(p.layer, p.name, M.tensor(src[p.name]))
    end
  end
  for _, key in ipairs(sorted_keys(params)) do
    local i = math.tointeger(tonumber(key))
    for _, name in ipairs(sorted_keys(params[key])) do
      local ok, err = pcall(net.get, net, i, name)
      if not ok then chk:fail("params", ("fixture params[%q].%s: %s"):format(key, name, err)) end
    end
  end
end

-- The values of the tensors of `entries` (net:gradients() or net:parameters()) in their
-- order, one flat list.
local function flat_values(entries)
  local flat = {}
  for _, e in ipairs(entries) do
    for _, v in ipairs(e.tensor:totable()) do flat[#flat + 1] = v end
  end
  return flat
end

--- The flat gradient in the order of net:_params(): layer order, weight then bias.
function M.flat_grads(net) return lunet.tensor(flat_values(net:gradients())) end

--- The flat parameters built the same way, to check the layout assumption.
function M.flat_params(net) return flat_values(net:parameters()) end

--- dL/dout of the NLL mean: -1/N at each label.
function M.nll_dout(labels, classes)
  local n = #labels
  local d = {}
  for i = 1, n * classes do d[i] = 0 end
  for i, l in ipairs(labels) do d[(i - 1) * classes + l + 1] = -1 / n end
  return lunet.tensor(d, { n, classes })
end

local function compare_net_params(chk, net, expected, suffix, tol)
  for _, key in ipairs(sorted_keys(expected)) do
    local i = math.tointeger(tonumber(key))
    for _, name in ipairs(PARAM_NAMES) do
      if expected[key][name] then
        chk:tensor(("%s%s_%s"):format(key, name == "weight" and "w" or "b", suffix),
          net:get(i, name .. (suffix == "grad" and "_grad" or "")), expected[key][name], tol)
      end
    end
  end
end

function M.run_net(case, chk, opts)
  if case.training ~= false then chk:fail("training", "net cases are expected in eval mode") end
  if case.loss_kind ~= "nll" then chk:fail("loss_kind", "unsupported loss " .. tostring(case.loss_kind)) end
  local labels = ints(case.labels)
  local x = M.tensor(case.input)
  if case.optimizer then return M.run_net_train(case, chk, opts, labels, x) end
  local net = M.build_net(case, chk, case.params, opts)
  local y = net:forward(x, false, 1)
  chk:tensor("output", y, case.output, M.TOL_OUTPUT)
  local value = lunet.loss("nll", y, labels)
  chk:scalar("loss", value, case.loss, M.TOL_OUTPUT)
  local classes = y:shape()[2]
  local dx = net:backward(M.nll_dout(labels, classes))
  compare_net_params(chk, net, case.grads, "grad", M.TOL_GRAD)
  chk:tensor("grad_input", dx, case.grad_input, M.TOL_GRAD)
  -- every lunet gradient must have been compared
  for _, g in ipairs(net:gradients()) do
    if not (case.grads[tostring(g.layer)] and case.grads[tostring(g.layer)][g.name]) then
      chk:fail("grads", ("no fixture gradient for layer %d %s"):format(g.layer, g.name))
    end
  end
end

function M.run_net_train(case, chk, opts, labels, x)
  local net = M.build_net(case, chk, case.params, opts)
  -- The flat layout the optimizer sees must be parameters() in order.
  chk:exact("flat_layout", net:_params(), M.flat_params(net))
  local n = net:param_count()
  local opt = lunet.optimizer(M.optim_spec(case.optimizer, case.options), n)
  local steps = math.tointeger(case.steps)
  if #case.losses ~= steps then chk:fail("losses", "losses and steps differ in length") end
  for k = 1, steps do
    local y = net:forward(x, false, 1)
    local value, dout = lunet.loss("nll", y, labels)
    chk:scalar(("loss%d"):format(k), value, case.losses[k], M.TOL_OUTPUT)
    net:backward(dout)
    local p = net:_params()
    opt:step(p, M.flat_grads(net))
    net:_set_params(p)
  end
  local y = net:forward(x, false, 1)
  chk:scalar("loss_after", (lunet.loss("nll", y, labels)), case.loss_after, M.TOL_OUTPUT)
  compare_net_params(chk, net, case.final_params, "final", M.TOL_GRAD)
  -- The same on the update alone (final - initial), which is what the optimizer
  -- and the gradients decide; it is far smaller than the parameters.
  for _, key in ipairs(sorted_keys(case.final_params)) do
    local i = math.tointeger(tonumber(key))
    for _, name in ipairs(PARAM_NAMES) do
      local e0, e1 = case.params[key][name].data, case.final_params[key][name].data
      local a1 = net:get(i, name):totable()
      local da, db = {}, {}
      for j = 1, #e1 do
        da[j] = a1[j] - M.f32(e0[j])
        db[j] = M.f32(e1[j]) - M.f32(e0[j])
      end
      chk:tensor(("%s%s_update"):format(key, name == "weight" and "w" or "b"), da, db, M.TOL_UPDATE)
    end
  end
end

-- -------------------------------------------------------------- schedules

M.TOL_RATE = 1e-7

local function schedule_label(s)
  local parts = { s.kind }
  for _, k in ipairs({ "step_size", "gamma", "t_max", "eta_min" }) do
    if s[k] then parts[#parts + 1] = ("%s=%s"):format(k, math.tointeger(s[k]) or s[k]) end
  end
  if s.milestones then parts[#parts + 1] = "milestones=" .. table.concat(ints(s.milestones), ",") end
  return table.concat(parts, " ")
end

--- The schedule of a fixture as lunet's option: {"cosine", t_max = 5, ...}.
local function schedule_option(s)
  local o = { s.kind }
  for k, v in pairs(s) do
    if k ~= "kind" then o[k] = type(v) == "table" and ints(v) or (math.tointeger(v) or v) end
  end
  if s.kind == "cosine" or s.kind == "step" then
    o.t_max, o.step_size = opt_int(s.t_max), opt_int(s.step_size)
  end
  return o
end

function M.run_schedule(case, chk)
  for _, c in ipairs(case.schedules) do
    local rates = {}
    for t = 0, #c.lrs - 1 do rates[#rates + 1] = lunet.schedule_lr(schedule_option(c.schedule), c.lr, t) end
    chk:rates(schedule_label(c.schedule), rates, c.lrs, M.TOL_RATE)
  end
end

--- net:train with a schedule over the fixture's 8 samples, batch 4, no shuffling.
function M.run_train(case, chk, opts)
  if case.loss_kind ~= "nll" then chk:fail("loss_kind", "unsupported loss " .. tostring(case.loss_kind)) end
  local net = M.build_net(case, chk, case.params, opts)
  local data = lunet.dataset(M.tensor(case.input), ints(case.labels))
  local h = net:train { data = data, optimizer = M.optim_spec(case.optimizer, case.options),
    batch = math.tointeger(case.batch), unit = case.unit, iterations = math.tointeger(case.iterations),
    shuffle = false, schedule = schedule_option(case.schedule), quiet = true }
  -- h.lr holds the rate of each iteration's first step; per step, the rates are the
  -- schedule's at the step (or epoch) count
  -- (per epoch: both steps of an epoch use its rate)
  local rates, per_epoch = {}, case.unit == "epoch"
  for k = 1, #case.step_lrs do rates[k] = h.lr[per_epoch and (k + 1) // 2 or k] end
  chk:rates("rates", rates, case.step_lrs, M.TOL_RATE)
  for k = 1, #case.step_losses do
    chk:scalar(("loss%d"):format(k), h.step_loss[k] or 0 / 0, case.step_losses[k], M.TOL_OUTPUT)
  end
  if #h.step_loss ~= #case.step_losses then
    chk:fail("step_losses", ("%d steps, expected %d"):format(#h.step_loss, #case.step_losses))
  end
  compare_net_params(chk, net, case.final_params, "final", M.TOL_GRAD)
end

-- ------------------------------------------------------------------- driver

local RUNNERS = { layer = M.run_layer, loss = M.run_loss, optim = M.run_optim, net = M.run_net,
  schedule = M.run_schedule, train = M.run_train }

--- Runs one case. Returns the checker (see Checker:failures/summary).
function M.run(case, opts)
  local chk = M.checker(opts)
  check_fields(chk, case)
  local run = RUNNERS[case.kind]
  if run then run(case, chk, opts) end
  return chk
end

--- Does a case use a layer kind that has reference kernels (conv2d)?
function M.has_conv(case)
  if case.kind == "layer" then return case.layer.kind == "conv2d" end
  if case.kind == "net" or case.kind == "train" then
    for _, d in ipairs(case.layers) do if d.kind == "conv2d" then return true end end
  end
  return false
end

return M
