--- lunet.config: what a training run is told, checked and completed in one place.
-- Optimizer specs (lunet.sgd{...}, lunet.adam{...}, lunet.adamw{...}, or the list form
-- {"sgd", lr = ...}), learning-rate schedules, early stopping, and the training config
-- that net:train and lunet.experiment share. An error names the public function the
-- user called (fname) and the option, and is raised at the user's line (check.raise):
-- no function here takes an error level.
local core = require("lunet.core")
local check = require("lunet.check")
local format = require("lunet.format")

local config = {}

local raise, quoted = check.raise, format.quoted

-- ------------------------------------------------------------ optimizers

local Optimizer = { __name = "lunet.OptimizerSpec" }
Optimizer.__index = Optimizer
Optimizer.__tostring = function(o)
  check.self("optimizer:__tostring", o, Optimizer, "optimizer spec")
  local parts = {}
  for _, k in ipairs({ "lr", "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps" }) do
    local v = o[k]
    if v ~= nil then
      if type(v) == "table" then v = "{" .. table.concat(v, ", ") .. "}" end
      parts[#parts + 1] = k .. "=" .. tostring(v)
    end
  end
  return o.kind .. "{" .. table.concat(parts, ", ") .. "}"
end

local optim_keys = {
  sgd = { lr = "positive_number", momentum = "nonneg_number", dampening = "number",
    nesterov = "boolean", weight_decay = "nonneg_number" },
  adam = { lr = "positive_number", betas = "table", eps = "positive_number",
    weight_decay = "nonneg_number" },
}
optim_keys.adamw = optim_keys.adam

local function constructor(kind)
  return function(opts)
    local f = "lunet." .. kind
    opts = check.options(f, 1, opts, optim_keys[kind])
    local o = { kind = kind }
    for k, v in pairs(opts) do o[k] = v end
    o.lr = o.lr or core.defaults.optimizers[kind].lr
    if kind == "sgd" then
      o.momentum = o.momentum or 0
    else
      if o.betas ~= nil then
        local b = o.betas
        if #b ~= 2 or type(b[1]) ~= "number" or type(b[2]) ~= "number"
          or b[1] < 0 or b[1] >= 1 or b[2] < 0 or b[2] >= 1 then
          error(f .. ": option 'betas' must be two numbers in [0, 1)", 2)
        end
      end
    end
    -- The engine checks combinations (nesterov needs momentum and no dampening).
    local ok, err = pcall(core.optimizer, o, 1)
    if not ok then error(f .. ": " .. tostring(err), 2) end
    return setmetatable(o, Optimizer)
  end
end
config.Optimizer = Optimizer

-- The constructors lunet.sgd, lunet.adam and lunet.adamw (called by the user: their
-- errors are raised at level 2).
config.sgd = constructor("sgd")
config.adam = constructor("adam")
config.adamw = constructor("adamw")

-- config.optimizer(o, fname) -> an optimizer spec, from a spec (lunet.sgd{...}) or the list
-- form {"sgd", lr = ...}; errors name fname's option 'optimizer'.
function config.optimizer(o, fname)
  if type(fname) ~= "string" then fname = "config.optimizer" end
  if getmetatable(o) == Optimizer then return o end
  if type(o) ~= "table" then
    raise(("%s: option 'optimizer' must be lunet.sgd{...} or {\"sgd\", lr = ...}, got %s")
      :format(fname, type(o)))
  end
  local kind = o[1] or o.kind
  if not optim_keys[kind] then
    raise(("%s: unknown optimizer '%s' (valid: adam, adamw, sgd)"):format(fname, tostring(kind)))
  end
  local opts = {}
  for k, v in pairs(o) do if k ~= 1 and k ~= "kind" then opts[k] = v end end
  local ok, spec = pcall(config[kind], opts)
  if not ok then raise((tostring(spec):gsub("^[^:]*:%d+: ", ""))) end
  return spec
end

-- ---------------------------------------------------------------- training

-- The options of net:train.
config.TRAIN_KEYS = { data = "any", loss = "string", optimizer = "table", batch = "positive_int",
  iterations = "positive_int", unit = "string", seed = "integer", shuffle = "boolean",
  progress = "any", quiet = "boolean", schedule = "table", validate = "any",
  validate_every = "positive_int", stop = "table", fresh = "boolean", checkpoint = "table",
  resume = "string", threads = "positive_int" }

-- Learning-rate schedules (torch.optim.lr_scheduler): their options and which are required.
local schedule_keys = {
  step = { keys = { step_size = "positive_int", gamma = "positive_number" }, required = { "step_size" } },
  multistep = { keys = { milestones = "table", gamma = "positive_number" }, required = { "milestones" } },
  exponential = { keys = { gamma = "positive_number" }, required = { "gamma" } },
  cosine = { keys = { t_max = "positive_int", eta_min = "nonneg_number" }, required = { "t_max" } },
}

-- config.schedule(s, fname) -> a schedule in canonical form {kind =, per =, ...} from {"step", step_size = 10, gamma = 0.5,
-- per = "epoch"|"step"} (or kind = "step"); PyTorch's defaults: gamma = 0.1, eta_min = 0.
function config.schedule(s, fname)
  if type(fname) ~= "string" then fname = "config.schedule" end
  if type(s) ~= "table" then
    raise(("%s: option 'schedule' must be a table such as {\"step\", step_size = 10}, got %s")
      :format(fname, type(s)))
  end
  local kind = s[1] or s.kind
  local def = schedule_keys[kind]
  if not def then
    raise(("%s: option 'schedule': unknown kind %s (valid: cosine, exponential, multistep, step)")
      :format(fname, quoted(kind)))
  end
  local spec = { per = "string" }
  for k, v in pairs(def.keys) do spec[k] = v end
  local opts = {}
  for k, v in pairs(s) do if k ~= 1 and k ~= "kind" then opts[k] = v end end
  local ok, checked = pcall(check.options, fname .. ": option 'schedule'", 1, opts, spec)
  if not ok then raise((tostring(checked):gsub("^[^:]*:%d+: ", ""):gsub(" argument #1", ""))) end
  for _, k in ipairs(def.required) do
    if checked[k] == nil then
      raise(("%s: option 'schedule': %s needs %s"):format(fname, kind, k))
    end
  end
  local per = checked.per or "epoch"
  if per ~= "epoch" and per ~= "step" then
    raise(("%s: option 'schedule': per must be \"epoch\" or \"step\" (got %s)"):format(fname, quoted(per)))
  end
  local out = { kind = kind, per = per }
  if kind == "step" or kind == "multistep" or kind == "exponential" then out.gamma = checked.gamma or 0.1 end
  if kind == "step" then out.step_size = checked.step_size end
  if kind == "cosine" then out.t_max, out.eta_min = checked.t_max, checked.eta_min or 0 end
  if kind == "multistep" then
    local m = {}
    for i, v in ipairs(checked.milestones) do
      if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) or v < 1 then
        raise(("%s: option 'schedule': milestones[%d] must be a positive integer, got %s"):format(fname, i,
          quoted(v)))
      end
      if i > 1 and v < m[i - 1] then
        raise(("%s: option 'schedule': milestones must be increasing"):format(fname))
      end
      m[i] = math.tointeger(v)
    end
    if #m ~= #checked.milestones or next(checked.milestones, #m > 0 and #m or nil) ~= nil then
      raise(("%s: option 'schedule': milestones must be a list of integers"):format(fname))
    end
    out.milestones = m
  end
  return out
end

-- Early stopping in canonical form {metric =, patience =, min_delta =}.
local function stop_spec(s, fname, has_validation)
  local ok, c = pcall(check.options, fname .. ": option 'stop'", 1, s,
    { metric = "string", patience = "nonneg_int", min_delta = "nonneg_number" })
  if not ok then raise((tostring(c):gsub("^[^:]*:%d+: ", ""):gsub(" argument #1", ""))) end
  local metric = c.metric or (has_validation and "val_loss" or "loss")
  if metric ~= "loss" and metric ~= "val_loss" then
    raise(("%s: option 'stop': metric must be \"val_loss\" or \"loss\" (got %s)"):format(fname, quoted(metric)))
  end
  if metric == "val_loss" and not has_validation then
    raise(("%s: option 'stop': metric \"val_loss\" needs option 'validate' (a dataset)"):format(fname))
  end
  return { metric = metric, patience = c.patience or 0, min_delta = c.min_delta or 0 }
end

local losses = { nll = true, cross_entropy = true, mse = true }

-- config.train(opts, f) -> the training config of net:train and lunet.experiment
-- (function f), checked and completed with the defaults: {loss, optimizer, batch,
-- iterations, unit, seed, shuffle, schedule, validate, validate_every, stop}.
function config.train(opts, f)
  if type(f) ~= "string" then f = "config.train" end
  if type(opts) ~= "table" then
    raise(("%s: argument #1 (options) must be a table, got %s"):format(f, type(opts)))
  end
  local cfg = {
    loss = opts.loss or "nll",
    optimizer = config.optimizer(opts.optimizer or config.sgd {}, f),
    batch = opts.batch or core.defaults.batch,
    iterations = opts.iterations or 1,
    unit = opts.unit or "epoch",
    seed = opts.seed or 1,
    shuffle = opts.shuffle ~= false,
  }
  if not losses[cfg.loss] then
    raise(("%s: option 'loss' must be \"nll\", \"cross_entropy\" or \"mse\" (got %s)"):format(f, quoted(cfg.loss)))
  end
  if cfg.unit ~= "epoch" and cfg.unit ~= "step" then
    raise(("%s: option 'unit' must be \"epoch\" or \"step\" (got %s)"):format(f, quoted(cfg.unit)))
  end
  if opts.schedule ~= nil then cfg.schedule = config.schedule(opts.schedule, f) end
  if opts.validate ~= nil then
    if getmetatable(opts.validate) ~= core.Dataset then
      raise(("%s: option 'validate' must be a dataset, got %s"):format(f, type(opts.validate)))
    end
    cfg.validate = opts.validate
    cfg.validate_every = opts.validate_every or 1
  elseif opts.validate_every ~= nil then
    raise(("%s: option 'validate_every' needs option 'validate' (a dataset)"):format(f))
  end
  if opts.stop ~= nil then cfg.stop = stop_spec(opts.stop, f, cfg.validate ~= nil) end
  return cfg
end

return config
