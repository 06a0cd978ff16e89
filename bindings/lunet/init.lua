--- lunet: CNN training in C, driven from Lua 5.4.
-- The C engine lives in lunet.core; this file builds the public API on top of it:
-- layer constructors, nets, datasets, optimizers, training and evaluation.
-- The other modules, one job each (names marked * load on first use, each from its own):
--   lunet.config      optimizer specs, schedules, early stopping, the training config
--   lunet.history     what net:train and net:evaluate return (print, plot)
--   lunet.format      numbers, rates and layers as text, for every printed form
--   lunet.check       argument and option checks; errors at the user's line
--   lunet.help        lunet.help() and the REPL's print
--   lunet.experiment  *lunet.experiment, *lunet.sweep: repeat-run experiments
--   lunet.result      *lunet.Result, *lunet.load_result: an experiment's outcome and files
--   lunet.stats       *lunet.stats: means, spreads, confidence bands, plateaus
--   lunet.plot        *lunet.plot: gnuplot curves and heatmaps
--   lunet.progress    *lunet.Progress: the progress line
--   lunet.store       *lunet.store: the run store
--   lunet.plan, lunet.cluster: `bin/lunet sweep`; lunet.fs: directories, atomic writes;
--   lunet.cli: a script's command-line options
local core = require("lunet.core")
local check = require("lunet.check")
local format = require("lunet.format")
local config = require("lunet.config")

local lunet = {
  version = core.version,
  engine_revision = core.engine_revision,
  core = core,
}

local Net = core.Net.methods
local Dataset = core.Dataset.methods

-- ----------------------------------------------------------------- layers

local function layer_meta_tostring(l)
  if type(l) ~= "table" or type(l.kind) ~= "string" then
    error("layer:__tostring: argument #1 must be a layer spec, got " .. type(l), 2)
  end
  return format.layer(l)
end
local Layer = { __tostring = layer_meta_tostring, __name = "lunet.Layer" }

local function layer(t) return setmetatable(t, Layer) end

--- conv2d(in_channels, out_channels, kernel [, {stride=1, padding=0, bias=true}])
function lunet.conv2d(in_channels, out_channels, kernel, opts)
  local f = "lunet.conv2d"
  check.positive_int(f, 1, "in_channels", in_channels)
  check.positive_int(f, 2, "out_channels", out_channels)
  check.positive_int(f, 3, "kernel", kernel)
  opts = check.options(f, 4, opts, { stride = "positive_int", padding = "nonneg_int", bias = "boolean" })
  return layer { kind = "conv2d", in_channels = in_channels, out_channels = out_channels,
    kernel = kernel, stride = opts.stride or 1, padding = opts.padding or 0,
    bias = opts.bias ~= false }
end

local function pool(kind)
  return function(kernel, stride)
    local f = "lunet." .. kind
    check.positive_int(f, 1, "kernel", kernel)
    if stride ~= nil then check.positive_int(f, 2, "stride", stride) end
    return layer { kind = kind, kernel = kernel, stride = stride or kernel }
  end
end
--- maxpool2d(kernel [, stride = kernel])
lunet.maxpool2d = pool("maxpool2d")
--- avgpool2d(kernel [, stride = kernel])
lunet.avgpool2d = pool("avgpool2d")

--- linear(in_features, out_features [, {bias=true}])
function lunet.linear(in_features, out_features, opts)
  local f = "lunet.linear"
  check.positive_int(f, 1, "in_features", in_features)
  check.positive_int(f, 2, "out_features", out_features)
  opts = check.options(f, 3, opts, { bias = "boolean" })
  return layer { kind = "linear", in_features = in_features, out_features = out_features,
    bias = opts.bias ~= false }
end

local function simple(kind)
  return function(...)
    if select("#", ...) > 0 then
      error(("lunet.%s: takes no arguments"):format(kind), 2)
    end
    return layer { kind = kind }
  end
end
lunet.relu = simple("relu")
lunet.tanh = simple("tanh")
lunet.sigmoid = simple("sigmoid")
lunet.flatten = simple("flatten")
lunet.log_softmax = simple("log_softmax")

local function dropout(kind)
  return function(p)
    local f = "lunet." .. kind
    if p == nil then p = 0.5 end
    check.number_in(f, 1, "p", p, 0, 1)
    return layer { kind = kind, p = p }
  end
end
--- dropout(p = 0.5): zeroes elements with probability p in training
lunet.dropout = dropout("dropout")
--- dropout2d(p = 0.5): zeroes whole channels with probability p in training
lunet.dropout2d = dropout("dropout2d")

--- leaky_relu(negative_slope = 0.01): x where x > 0, negative_slope * x elsewhere (PyTorch's
-- LeakyReLU; the default is the engine's)
function lunet.leaky_relu(negative_slope)
  check.optional("number", "lunet.leaky_relu", 1, "negative_slope", negative_slope)
  return layer { kind = "leaky_relu", negative_slope = negative_slope }
end

local function batchnorm(kind)
  return function(features, opts)
    local f = "lunet." .. kind
    check.positive_int(f, 1, "features", features)
    opts = check.options(f, 2, opts, { eps = "positive_number", momentum = "unit_number" })
    return layer { kind = kind, features = features, eps = opts.eps or 1e-5,
      momentum = opts.momentum or 0.1 }
  end
end
lunet.batchnorm2d = batchnorm("batchnorm2d")
lunet.batchnorm1d = batchnorm("batchnorm1d")

-- ------------------------------------------------------------------- nets

--- sequential{layer, layer, ..., input = {1, 28, 28}, seed = 0}
-- Builds a net, inferring every layer's shape; parameters start as PyTorch's defaults
-- drawn from `seed`. A shape mismatch is an error naming the layer and both shapes.
function lunet.sequential(t)
  local f = "lunet.sequential"
  check.arg_type(f, 1, "layers", t, "table")
  local layers = {}
  for k, v in pairs(t) do
    if math.type(k) == "integer" then
      if getmetatable(v) ~= Layer then
        error(("%s: element %d is not a layer (got %s; use lunet.conv2d(...) etc.)")
          :format(f, k, type(v)), 2)
      end
    elseif k ~= "input" and k ~= "seed" then
      error(("%s: unknown option '%s' (valid: input, seed, and the layers as list items)")
        :format(f, tostring(k)), 2)
    end
  end
  for i = 1, #t do layers[i] = t[i] end
  if #layers == 0 then error(f .. ": needs at least one layer", 2) end
  local input = t.input or { 1, 28, 28 }
  check.arg_type(f, 1, "input", input, "table")
  local seed = t.seed or 0
  check.integer(f, 1, "seed", seed)
  local ok, net = pcall(core.net, layers, input, seed)
  if not ok then error(f .. ": " .. tostring(net):gsub("^.-lunet%.core%.?%w*: ", ""), 2) end
  return net
end

--- A copy of every parameter tensor: list of {layer = i, name = "weight"|"bias", tensor = t}.
function Net:parameters()
  check.self("net:parameters", self, core.Net, "net")
  local list = {}
  for i = 1, self:layer_count() do
    for _, name in ipairs({ "weight", "bias" }) do
      local ok, t = pcall(self.get, self, i, name)
      if ok then list[#list + 1] = { layer = i, name = name, tensor = t } end
    end
  end
  return list
end

--- The gradient of the last backward pass, like Net:parameters().
function Net:gradients()
  check.self("net:gradients", self, core.Net, "net")
  local list = {}
  for _, p in ipairs(self:parameters()) do
    list[#list + 1] = { layer = p.layer, name = p.name, tensor = self:get(p.layer, p.name .. "_grad") }
  end
  return list
end

--- Sets parameters from a list like Net:parameters() returns.
function Net:set_parameters(list)
  check.self("net:set_parameters", self, core.Net, "net")
  check.arg_type("net:set_parameters", 1, "list", list, "table")
  for i, p in ipairs(list) do
    if type(p) ~= "table" then
      error(("net:set_parameters: list[%d] must be a table {layer =, name =, tensor =}, got %s")
        :format(i, type(p)), 2)
    end
    self:set(p.layer, p.name, p.tensor)
  end
end

local net_meta = core.Net

net_meta.__tostring = function(self)
  check.self("net:__tostring", self, core.Net, "net")
  local ok, count = pcall(self.layer_count, self)
  if not ok then return "net (freed)" end
  local lines = { ("net: %d layers, input %s"):format(count, format.shape(self:input_shape())) }
  lines[#lines + 1] = ("  %-3s %-12s %-14s %-10s %8s %8s"):format("#", "layer", "options", "output",
    "params", "MFLOP")
  for i = 1, count do
    local l = self:layer(i)
    lines[#lines + 1] = ("  %-3d %-12s %-14s %-10s %8s %8s"):format(i, l.kind, format.layer_options(l),
      format.shape(l.output), l.params > 0 and format.count(l.params) or "-",
      l.flops > 0 and ("%.3f"):format(l.flops / 1e6) or "-")
  end
  local fwd, bwd = self:flops()
  lines[#lines + 1] = ("  parameters %s; per sample %.3f MFLOP forward, %.3f backward"):format(
    format.count(self:param_count()), fwd / 1e6, bwd / 1e6)
  return table.concat(lines, "\n")
end

-- ------------------------------------------------------------ optimizers

--- sgd{lr = 0.01, momentum = 0, dampening = 0, nesterov = false, weight_decay = 0}
lunet.sgd = config.sgd
--- adam{lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0}
lunet.adam = config.adam
--- adamw{lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0.01}
lunet.adamw = config.adamw

--- An engine-side optimizer over n parameters: opt:step(params_tensor, grads_tensor).
function lunet.optimizer(spec, n)
  spec = config.optimizer(spec, "lunet.optimizer")
  check.positive_int("lunet.optimizer", 2, "n", n)
  return core.optimizer(spec, n)
end

-- ----------------------------------------------------------------- tensors

-- Calls a lunet.core function for the public function `fname`, whose arguments
-- the C function takes in another order or under another name: an argument error
-- ("bad argument #2 to 'dataset_from' (...)") is raised again in the caller's
-- terms ("lunet.dataset: argument #2 (labels): ..."). args maps the C argument
-- index to {index, name} of the public one.
local function call_core(fname, args, fn, ...)
  local result = table.pack(pcall(fn, ...))
  if result[1] then return table.unpack(result, 2, result.n) end
  local msg = tostring(result[2]):gsub("^[^:]*:%d+: ", "")
  local n, detail = msg:match("^bad argument #(%d+) to '[^']*' %((.*)%)$")
  local a = n and args[tonumber(n)]
  if a then
    msg = ("%s: argument #%d (%s): %s"):format(fname, a[1], a[2], detail)
  elseif not msg:find("^" .. fname:gsub("%p", "%%%0")) then
    msg = fname .. ": " .. msg
  end
  error(msg, 3)
end

--- zeros(shape) -> a tensor of zeros, e.g. lunet.zeros{1, 28, 28}
function lunet.zeros(shape)
  check.arg_type("lunet.zeros", 1, "shape", shape, "table")
  return call_core("lunet.zeros", { { 1, "shape" } }, core.tensor, shape)
end

--- tensor(data, shape) -> from a flat list of numbers (row-major); tensor(data) -> a vector.
-- For zeros use lunet.zeros(shape).
function lunet.tensor(a, b)
  if b == nil and type(a) == "table" and type(a[1]) == "number" and a.shape == nil then
    -- a flat list of numbers and no shape: a vector
    return call_core("lunet.tensor", { { 1, "shape" }, { 1, "data" } }, core.tensor, { #a }, a)
  end
  if b == nil then
    error("lunet.tensor: argument #2 (shape) is required unless argument #1 is a list of numbers (lunet.zeros(shape) makes zeros)", 2)
  end
  return call_core("lunet.tensor", { { 2, "shape" }, { 1, "data" } }, core.tensor, b, a)
end

--- loss(kind, pred, labels | targets) -> value, gradient tensor
-- kind: "nll" (pred are log-probabilities), "cross_entropy" (raw scores), "mse".
function lunet.loss(kind, pred, labels)
  local args = { { 1, "kind" }, { 2, "pred" }, { 3, "labels" }, { 3, "targets" } }
  if getmetatable(labels) == core.Tensor then return call_core("lunet.loss", args, core.loss, kind, pred, nil, labels) end
  return call_core("lunet.loss", args, core.loss, kind, pred, labels)
end

-- ---------------------------------------------------------------- datasets

local lfs = require("lfs")

local quoted = format.quoted

local function exists(path) return lfs.attributes(path, "mode") == "file" end

-- The last loader failure of this process, {loader =, message =}. Loaders return
-- nil, message (scripts test it); a script that does not is told the cause when
-- it passes the nil on: net:train and lunet.experiment name this failure when
-- their data is nil (lunet._data_error).
local last_failure

-- Records a loader's failure and returns nil, message. In the interactive session
-- (bin/lunet sets lunet.interactive) the message is also written to stderr, since
-- `ds = lunet.mnist{...}` shows nothing there.
local function loader_failed(loader, message)
  last_failure = { loader = loader, message = message }
  if rawget(lunet, "interactive") then io.stderr:write(loader, ": ", message, "\n") end
  return nil, loader .. ": " .. message
end

-- The error message for a data option (data, test, validate) of function f that is
-- not a dataset; when it is nil, the last loader failure is the likely cause.
function lunet._data_error(f, option, value)
  check.arg_type("lunet._data_error", 1, "f", f, "string")
  check.arg_type("lunet._data_error", 2, "option", option, "string")
  if value == nil and last_failure then
    return ("%s: option '%s' is nil; %s returned nil before: %s"):format(f, option, last_failure.loader,
      last_failure.message)
  end
  return ("%s: option '%s' must be a dataset (lunet.mnist{...} or lunet.dataset(...)), got %s"):format(f, option,
    type(value))
end

-- Checks the dataset options of f (data required; test and validate optional):
-- raises at the user's line (check.raise) for a non-dataset. With `takes_test`, a nil
-- test after a loader failed gets a warning on stderr (once): `test =
-- lunet.mnist{...}` that returned nil would otherwise silently mean "no test set".
function lunet._check_datasets(f, opts, takes_test)
  check.arg_type("lunet._check_datasets", 1, "f", f, "string")
  check.arg_type("lunet._check_datasets", 2, "opts", opts, "table")
  if getmetatable(opts.data) ~= core.Dataset then check.raise(lunet._data_error(f, "data", opts.data)) end
  for _, k in ipairs({ "test", "validate" }) do
    local v = opts[k]
    if v ~= nil and getmetatable(v) ~= core.Dataset then check.raise(lunet._data_error(f, k, v)) end
  end
  if takes_test and opts.test == nil and last_failure and not last_failure.warned then
    last_failure.warned = true
    io.stderr:write(("%s: no test set (option 'test' is nil); note that %s returned nil before: %s\n")
      :format(f, last_failure.loader, last_failure.message))
  end
end

local GET_MNIST = "get the files with `make mnist` (downloads into data/mnist) or set MNIST_DIR to their directory"

-- The options every loader shares: how many samples and how to normalise them.
local norm_keys = { n = "positive_int", mean = "any", std = "any", normalize = "any" }

local function loader_keys(extra)
  local keys = {}
  for k, v in pairs(norm_keys) do keys[k] = v end
  for k, v in pairs(extra) do keys[k] = v end
  return keys
end

-- Checks mean/std (a number or a per-channel list of numbers) and normalize ("auto" or
-- false); returns the table the engine reads, with the preset's values where none given.
local function norm_options(f, opts, preset_mean, preset_std)
  for _, k in ipairs({ "mean", "std" }) do
    local v = opts[k]
    local ok = v == nil or (type(v) == "number" and v == v and math.abs(v) ~= math.huge)
    if type(v) == "table" then
      ok = #v >= 1
      for i = 1, #v do
        if type(v[i]) ~= "number" or v[i] ~= v[i] or math.abs(v[i]) == math.huge then ok = false end
      end
    end
    if not ok then
      error(("%s: option '%s' must be a finite number or a list of them (one per channel), got %s")
        :format(f, k, type(v) == "table" and "a table that is not such a list" or tostring(v)), 3)
    end
  end
  local nz = opts.normalize
  if nz ~= nil and nz ~= "auto" and nz ~= false then
    error(("%s: option 'normalize' must be \"auto\" or false, got %s"):format(f, quoted(nz)), 3)
  end
  if (opts.mean == nil) ~= (opts.std == nil) then
    error(("%s: options 'mean' and 'std' go together (give both or neither)"):format(f), 3)
  end
  if nz ~= nil and opts.mean ~= nil then
    error(("%s: option 'normalize' = %s takes no mean or std"):format(f, quoted(nz)), 3)
  end
  if opts.mean ~= nil then return { mean = opts.mean, std = opts.std } end
  if nz == nil and preset_mean ~= nil then return { mean = preset_mean, std = preset_std } end
  return { normalize = nz == nil and "auto" or nz }
end

-- One value for every channel is written as a number, else a list.
local function stat(list) return #list > 1 and list or list[1] end

local function record(ds, mean, std, info)
  info.mean, info.std = stat(mean), stat(std)
  ds:_info(info)
  return ds
end

-- How the IDX loaders check a gzipped file of which they keep the first n items: whole,
-- except in a `sweep task` (lunet.plan.data_check says why that is safe there).
local function idx_check()
  local planning = package.loaded["lunet.plan"]
  return planning and planning.mode and planning.data_check or "whole"
end

--- idx{images = path, labels = path, n = all, mean =, std =, normalize = "auto"|false,
---     name = "idx"} -> dataset | nil, message
-- Any pair of IDX files (uint8 or float32 images, uint8 labels; gzip or raw). Bytes are
-- scaled to [0, 1], then (x - mean) / std; mean and std are numbers or per-channel lists.
-- Without them, normalize = "auto" (the default) uses the loaded samples' own per-channel
-- mean and std; normalize = false keeps x. The values used are in ds:info().mean/.std.
function lunet.idx(opts)
  local f = "lunet.idx"
  opts = check.options(f, 1, opts, loader_keys { images = "string", labels = "string", name = "string" })
  if not opts.images or not opts.labels then
    error(f .. ": options 'images' and 'labels' (paths of the two IDX files) are required", 2)
  end
  local norm = norm_options(f, opts)
  local ds, mean, std = core.dataset_idx(opts.images, opts.labels, opts.n or 0, norm, idx_check())
  if not ds then return loader_failed(f, mean) end
  return record(ds, mean, std, { name = opts.name or "idx", source = opts.images, first = opts.n })
end

local idx_files = {
  train = { "train-images-idx3-ubyte", "train-labels-idx1-ubyte" },
  test = { "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" },
}

local function find_file(dir, base)
  for _, name in ipairs({ base .. ".gz", base }) do
    local path = dir .. "/" .. name
    if exists(path) then return path end
  end
  return nil
end


-- The options of a loader of a set with a train and a test split in one dir; returns
-- them checked, the split and its file names (from files[split]).
local function split_options(f, opts, files)
  opts = check.options(f, 1, opts, loader_keys { dir = "string", split = "string" })
  local split = opts.split or "train"
  if not files[split] then
    error(("%s: option 'split' must be \"train\" or \"test\" (got %s)"):format(f, quoted(split)), 3)
  end
  return opts, split, files[split]
end

-- A preset of lunet.idx for a set laid out like MNIST (train-/t10k- files in one dir).
local function idx_preset(p)
  return function(opts)
    local f = p.fname
    local split, names
    opts, split, names = split_options(f, opts, idx_files)
    local norm = norm_options(f, opts, p.mean, p.std)
    local dir = opts.dir or (p.env and os.getenv(p.env) ~= "" and os.getenv(p.env)) or p.default_dir
    local images, labels = find_file(dir, names[1]), find_file(dir, names[2])
    if not images or not labels then
      return loader_failed(f, ("cannot open %s/%s.gz (the %s %s files are not in %s); %s")
        :format(dir, images and names[2] or names[1], p.title, split, dir, p.hint))
    end
    local ds, mean, std = core.dataset_idx(images, labels, opts.n or 0, norm, idx_check())
    if not ds then return loader_failed(f, tostring(mean) .. "; " .. p.hint) end
    return record(ds, mean, std, { name = p.name, split = split, source = dir, first = opts.n })
  end
end

--- mnist{dir = $MNIST_DIR or ./data/mnist, split = "train"|"test", n = all,
---       mean = 0.1307, std = 0.3081, normalize = none} -> dataset | nil, message
-- A preset of lunet.idx (same options); normalize = "auto" computes mean and std instead,
-- normalize = false keeps x / 255.
lunet.mnist = idx_preset {
  fname = "lunet.mnist", name = "mnist", title = "MNIST",
  mean = core.defaults.mnist.mean, std = core.defaults.mnist.std,
  env = "MNIST_DIR", default_dir = "data/mnist",
  hint = GET_MNIST,
}

--- fashion_mnist{dir = /usr/share/datasets/fashion-mnist, split = "train"|"test", n = all,
---               mean = 0.2860, std = 0.3530, normalize = none} -> dataset | nil, message
-- Fashion-MNIST (Debian's dataset-fashion-mnist), 10 kinds of clothing in MNIST's format;
-- its own normalisation (its training set's mean and std). Named "fashion-mnist".
lunet.fashion_mnist = idx_preset {
  fname = "lunet.fashion_mnist", name = "fashion-mnist", title = "Fashion-MNIST", mean = 0.2860,
  std = 0.3530,
  default_dir = "/usr/share/datasets/fashion-mnist",
  hint = "install the Debian package dataset-fashion-mnist (make deps) or give dir",
}

--- csv{path =, label_column = 1, shape = {1, 28, 28}, header = true, n = all, mean =, std =,
---     normalize = "auto"|false, name = "csv"} -> dataset | nil, message
-- One sample per line: a label column and C*H*W values (the digit-recognizer layout:
-- label,pixel0,...,pixel783). If every value is an integer in [0, 255] they are pixel
-- bytes, scaled to [0, 1] as lunet.idx does; otherwise numbers used as they are. Then
-- normalised as lunet.idx. Errors name the line and column.
function lunet.csv(opts)
  local f = "lunet.csv"
  opts = check.options(f, 1, opts, loader_keys { path = "string", label_column = "positive_int",
    shape = "table", header = "boolean", name = "string" })
  if not opts.path then error(f .. ": option 'path' is required", 2) end
  local shape = opts.shape or { 1, 28, 28 }
  if #shape ~= 3 or math.type(shape[1]) ~= "integer" or math.type(shape[2]) ~= "integer"
    or math.type(shape[3]) ~= "integer" or shape[1] < 1 or shape[2] < 1 or shape[3] < 1 then
    error(f .. ": option 'shape' must be {C, H, W} of positive integers", 2)
  end
  if opts.label_column and opts.label_column > shape[1] * shape[2] * shape[3] + 1 then
    error(("%s: option 'label_column' (%d) is beyond the %d columns of shape %s"):format(f, opts.label_column,
      shape[1] * shape[2] * shape[3] + 1, format.shape(shape)), 2)
  end
  local norm = norm_options(f, opts)
  norm.label_column, norm.shape, norm.header, norm.n = opts.label_column, shape, opts.header, opts.n
  local ds, mean, std = core.dataset_csv(opts.path, norm)
  if not ds then return loader_failed(f, mean) end
  return record(ds, mean, std, { name = opts.name or "csv", source = opts.path, first = opts.n })
end

local cifar_files = {
  train = { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin" },
  test = { "test_batch.bin" },
}

--- cifar10{dir = "data/cifar-10-batches-bin", split = "train"|"test", n = all,
---         mean = {0.4914, 0.4822, 0.4465}, std = {0.2470, 0.2435, 0.2616}, normalize = none}
---         -> dataset | nil, message
-- CIFAR-10's binary batches (data_batch_1.bin .. 5, test_batch.bin; .gz too): 3x32x32
-- images, normalised per channel (the training set's mean and std by default).
function lunet.cifar10(opts)
  local f = "lunet.cifar10"
  local split, names
  opts, split, names = split_options(f, opts, cifar_files)
  local norm = norm_options(f, opts, { 0.4914, 0.4822, 0.4465 }, { 0.2470, 0.2435, 0.2616 })
  local dir = opts.dir or "data/cifar-10-batches-bin"
  local paths = {}
  for i, name in ipairs(names) do
    paths[i] = find_file(dir, name)
    if not paths[i] then
      return loader_failed(f, ("cannot open %s/%s (the CIFAR-10 %s batches, binary version, are not in %s: %s)")
        :format(dir, name, split, dir, table.concat(names, ", ")))
    end
  end
  local ds, mean, std = core.dataset_cifar(paths, opts.n or 0, norm)
  if not ds then return loader_failed(f, mean) end
  return record(ds, mean, std, { name = "cifar10", split = split, source = dir, first = opts.n })
end

--- dataset(images_tensor, labels) : N x H x W or N x C x H x W images, labels 0-based
function lunet.dataset(images, labels, info)
  local ds = call_core("lunet.dataset", { { 1, "images" }, { 2, "labels" } }, core.dataset_from, images, labels)
  ds:_info(info or { name = "custom" })
  return ds
end

--- ds:info() -> what the dataset is: {name =, split =, source =, first =, subset =, mean =,
-- std =} (mean and std: the normalisation used, a number or a per-channel list), a copy.
function Dataset:info()
  check.self("dataset:info", self, core.Dataset, "dataset")
  local function copy(v)
    if type(v) ~= "table" then return v end
    local c = {}
    for k, x in pairs(v) do c[k] = copy(x) end
    return c
  end
  return copy(self:_info() or {})
end

--- ds:subset{n = , mode = "first"|"random", seed = 1, stratified = false}
function Dataset:subset(opts)
  local f = "dataset:subset"
  check.self(f, self, core.Dataset, "dataset")
  opts = check.options(f, 1, opts, { n = "positive_int", mode = "string", seed = "integer",
    stratified = "boolean" })
  if not opts.n then error(f .. ": option 'n' is required", 2) end
  local mode = opts.mode or "first"
  if mode ~= "first" and mode ~= "random" then
    error(("%s: option 'mode' must be \"first\" or \"random\" (got %q)"):format(f, mode), 2)
  end
  if opts.stratified and mode ~= "random" then
    error(f .. ": option 'stratified' needs mode = \"random\"", 2)
  end
  if opts.n > self:size() then
    error(("%s: option 'n' (%d) is larger than the dataset (%d samples)"):format(f, opts.n, self:size()), 2)
  end
  local sub = self:_subset(opts.n, mode == "random", opts.stratified or false, opts.seed or 1)
  local info = {}
  for k, v in pairs(self:_info() or {}) do info[k] = v end
  info.subset = { n = opts.n, mode = mode, seed = opts.seed, stratified = opts.stratified }
  sub:_info(info)
  return sub
end

core.Dataset.__tostring = function(self)
  check.self("dataset:__tostring", self, core.Dataset, "dataset")
  local ok, n = pcall(self.size, self)
  if not ok then return "dataset (freed)" end
  local info = self:_info() or {}
  local name = (info.name or "dataset") .. (info.split and ("/" .. info.split) or "")
  if info.subset then name = name .. (" (%s %d)"):format(info.subset.mode, info.subset.n) end
  local counts = {}
  for c, k in ipairs(self:class_counts()) do counts[#counts + 1] = ("%d:%d"):format(c - 1, k) end
  local bytes, storage = self:memory()
  return ("dataset %s: %d samples of %s, %d classes, %.1f MB (%s)\n  per class %s"):format(name, n,
    format.shape(self:shape()), self:classes(), bytes / 1e6, storage, table.concat(counts, " "))
end

-- ---------------------------------------------------------------- training

-- The threads a call of net:train/evaluate/predict uses (default 1): every pass is
-- split over them and the results are bit for bit those of one thread.
local function use_threads(net, f, threads, level)
  threads = threads or 1
  if threads > core.defaults.max_threads then
    error(("%s: option 'threads' must be at most %d (got %d)"):format(f, core.defaults.max_threads, threads),
      level + 1)
  end
  net:_threads(threads)
end

--- The learning rate of a schedule at scheduler time t (finished epochs or steps).
function lunet.schedule_lr(schedule, lr, t)
  local s = config.schedule(schedule, "lunet.schedule_lr")
  check.arg("positive_number", "lunet.schedule_lr", 2, "lr", lr)
  check.arg("nonneg_int", "lunet.schedule_lr", 3, "t", t)
  return core.schedule_lr(s, lr, math.tointeger(t))
end

-- The progress callback of net:train: the user's function (its counts given as
-- integers), or a display on stderr (lunet.progress: redrawn on a terminal, a plain
-- line every 10 s in a log, nothing with quiet = true; LUNET_PROGRESS overrides).
local TRAIN_COUNTS = { "iteration", "iterations", "step", "samples" }
local function train_progress(opts, cfg)
  local progress = opts.progress
  if type(progress) == "function" then
    return function(p)
      for _, k in ipairs(TRAIN_COUNTS) do p[k] = math.tointeger(p[k]) or p[k] end
      return progress(p)
    end
  end
  if progress == false then return nil end
  local mode = require("lunet.progress").mode(opts.quiet and progress ~= true, core.isatty(2))
  if mode == "off" then return nil end
  local display = require("lunet.progress").new { unit = cfg.unit, total_iterations = cfg.iterations, mode = mode }
  return function(p)
    display:update { iterations_done = math.tointeger(p.iteration) or 0, loss = p.loss, seconds = p.seconds,
      samples_per_second = p.seconds > 0 and p.samples / p.seconds or nil }
  end, display
end

--- net:train{data, loss = "nll", optimizer = lunet.sgd{} (lr 0.01), batch = 64, iterations = 1,
---           unit = "epoch"|"step", seed = 1, shuffle = true, progress = a display on stderr,
---           quiet = false, fresh = false, schedule = none, validate = none, validate_every = 1,
---           stop = none, checkpoint = none, resume = none,
---           threads = 1} -> history | nil, message
-- progress: a function called after every iteration with {iteration, iterations, step,
-- samples, loss, seconds} (counts are integers), or true / false to force the display
-- on stderr on or off; by default it is redrawn on a terminal and written as a plain
-- line every 10 s otherwise (LUNET_PROGRESS=tty|plain|off overrides; quiet = true
-- silences it).
-- Returns the history: loss[i] per iteration, step_loss, lr[i] (the rate of the iteration's
-- first step), seconds, cpu_seconds (the process's CPU time over the same span: all its
-- threads'), samples_per_second, diverged, interrupted (Ctrl-C stops at the next
-- step and keeps what was done).
-- threads = N splits every step over N threads; the results are the same bit for bit.
-- A progress function that returns true stops training (interrupted = true); an error
-- in it stops training and is raised again by net:train, with its traceback; it
-- cannot yield. While training, the net and the data are in use: :free() of either
-- raises "net is in use by net:train" (the validation set's too).
-- Continuing: a net keeps its optimizer state (momentum, Adam's moments and step count),
-- its random streams, its step and epoch counters and its place in the epoch between
-- calls, so train{iterations = 2} twice is bit-identical to train{iterations = 4} once.
-- Hyperparameters given in a later call (a lower lr) apply from its first step.
-- fresh = true, another optimizer kind (or SGD with/without momentum), another seed or
-- net:init() start over: new optimizer state, streams drawn from the seed, counters at 0.
-- schedule (torch.optim.lr_scheduler's rates; lr is the base rate; t counts finished
-- epochs, or optimizer steps with per = "step"; a continued run goes on counting):
--   {"step", step_size = k, gamma = 0.1}         lr * gamma^floor(t / k)
--   {"multistep", milestones = {a, b}, gamma = 0.1}  lr * gamma^(milestones passed)
--   {"exponential", gamma = g}                   lr * g^t
--   {"cosine", t_max = T, eta_min = 0}           eta_min + (lr - eta_min)(1 + cos(pi t/T))/2
--   each with per = "epoch" (default) or "step"; lunet.schedule_lr(s, lr, t) gives a rate.
-- validate = dataset: evaluated (eval mode, batches of `batch`) every validate_every
-- iterations and after the last: h.val_iterations, h.val_loss, h.val_accuracy (one entry
-- per validation).
-- stop = {metric, patience = 0, min_delta = 0}: early stopping as Keras' EarlyStopping /
-- Lightning's: metric "val_loss" (the default with validate) or "loss" (without); a check
-- improves when value < best - min_delta (the first always does); after `patience` checks
-- in a row without improvement training stops and h.stopped_at is the iteration it
-- stopped after.
-- checkpoint = {path, every = k}: after every k-th iteration, the last and an early stop,
-- the net and its training state (optimizer, streams, counters, early stopping) are
-- written atomically to path (lunet.load cannot read it; net:train{resume} can). A write
-- that fails stops the run (h.checkpoint_error, h.interrupted) and keeps what was done.
-- resume = path: the net takes the checkpoint's parameters and state and finishes the
-- call that wrote it (the same options: iterations is that call's total); the result is
-- bit-identical to a run that never stopped. h.resumed_after = the iterations done before.
function Net:train(opts)
  local f = "net:train"
  check.self(f, self, core.Net, "net")
  opts = check.options(f, 1, opts, config.TRAIN_KEYS)
  lunet._check_datasets(f, opts)
  local cfg = config.train(opts, f)
  cfg.fresh = opts.fresh
  if opts.checkpoint ~= nil then
    local ok, c = pcall(check.options, f .. ": option 'checkpoint'", 1, opts.checkpoint,
      { path = "string", every = "positive_int" })
    if not ok then error((tostring(c):gsub("^[^:]*:%d+: ", ""):gsub(" argument #1", "")), 2) end
    if not c.path then error(f .. ": option 'checkpoint' needs a path", 2) end
    cfg.checkpoint = { path = c.path, every = c.every or 1 }
  end
  if opts.resume ~= nil and opts.fresh then error(f .. ": options 'resume' and 'fresh' exclude each other", 2) end
  cfg.resume = opts.resume
  use_threads(self, f, opts.threads, 2)
  local fn, display = train_progress(opts, cfg)
  local h, msg = self:_train(opts.data, cfg, fn)
  if not h then
    if display then display:finish() end
    return nil, f .. ": " .. msg
  end
  if display then
    local note = h.checkpoint_error and ("checkpoint failed, training stopped: " .. h.checkpoint_error)
      or h.interrupted and ("interrupted: kept %d iterations"):format(h.iterations) or nil
    display:finish(note)
  end
  local sig = h.interrupted and core.interrupt_signal() or 0
  if sig ~= 0 and (sig ~= 2 or not rawget(lunet, "interactive")) then
    -- a script (or SIGTERM/SIGHUP anywhere) ends here, with 128 + signal; pcall cannot catch it
    io.stderr:write(("\nnet:train: interrupted by signal %d after %d of %d iterations; the net is not saved "
      .. "(net:save keeps one); exiting with %d\n"):format(sig, h.iterations, cfg.iterations, 128 + sig))
    os.exit(128 + sig, true)
  end
  return require("lunet.history").new(h, cfg.unit) -- adds h.unit, print(h) and h:plot()
end

--- net:evaluate(data [, {loss = "nll", batch = 1000, threads = 1}]) -> {loss =, accuracy =, confusion =}
-- confusion[t + 1][p + 1]: how many samples of true class t the net called p (k x k, k =
-- the net's outputs; rows sum to the class counts). print(r.confusion) shows a table;
-- r.confusion:plot{file = "confusion.png"} draws it as a heatmap. `batch` is the
-- loss's averaging unit; the passes forward 64 samples at a time whatever it is (the
-- same bits), so a large batch takes no more memory.
function Net:evaluate(data, opts)
  local f = "net:evaluate"
  check.self(f, self, core.Net, "net")
  if getmetatable(data) ~= core.Dataset then
    error((lunet._data_error(f, "data", data):gsub("option 'data'", "argument #1 (data)")), 2)
  end
  opts = check.options(f, 2, opts, { loss = "string", batch = "positive_int", threads = "positive_int" })
  use_threads(self, f, opts.threads, 2)
  local loss, acc, confusion = self:_evaluate(data, opts.loss or "nll", opts.batch or core.defaults.eval_batch)
  return require("lunet.history").evaluation({ loss = loss, accuracy = acc, confusion = confusion }) -- print(r) reads well
end

--- net:predict(x [, {threads = 1}]) -> class (0-based label), output tensor
-- (log-probabilities for the study's net). x is one sample (e.g. 1x28x28) or a batch;
-- for a batch, returns a list of classes and the batch output: net:forward(x)'s eval
-- output bit for bit, forwarded 64 samples at a time (10000 images take no more memory
-- than 64), and not one net:backward can go back through.
function Net:predict(x, opts)
  check.self("net:predict", self, core.Net, "net")
  if getmetatable(x) ~= core.Tensor then
    error("net:predict: argument #1 (x) must be a tensor, got " .. type(x), 2)
  end
  opts = check.options("net:predict", 2, opts, { threads = "positive_int" })
  use_threads(self, "net:predict", opts.threads, 2)
  local y = self:_predict(x)
  local shape = y:shape()
  local n, k = shape[1], shape[2]
  local classes = {}
  for i = 1, n do
    local best, bv = 0, -math.huge
    for c = 1, k do
      local v = y[(i - 1) * k + c]
      if v > bv then best, bv = c - 1, v end
    end
    classes[i] = best
  end
  if n == 1 then return classes[1], y:reshape({ k }) end
  return classes, y
end

--- lunet.load(path) -> net | nil, message
lunet.load = core.load

-- ------------------------------------------------------------------ models

lunet.models = {}

--- The CNN of PyTorch's MNIST example, used by the study "Loss Values in Neural Networks".
function lunet.models.mnist_cnn(opts)
  opts = check.options("lunet.models.mnist_cnn", 1, opts, { seed = "integer" })
  return lunet.sequential {
    lunet.conv2d(1, 10, 5), lunet.maxpool2d(2), lunet.relu(),
    lunet.conv2d(10, 20, 5), lunet.dropout2d(0.5), lunet.maxpool2d(2), lunet.relu(),
    lunet.flatten(), lunet.linear(320, 50), lunet.relu(), lunet.dropout(0.5),
    lunet.linear(50, 10), lunet.log_softmax(),
    seed = opts.seed,
  }
end

lunet.cpu_count = core.cpu_count
lunet.idx_read = core.idx_read

-- lunet.help([what]): the API list, or the doc of a function, name or object (lunet/help.lua).
function lunet.help(what) return require("lunet.help").help(lunet, what) end

-- Experiments, results, statistics and plots load on first use (as Penlight's `pl`
-- loads `pl.*`), so that `require("lunet")` stays cheap and works without lua-cjson or
-- gnuplot for engine-only use. Each name comes from its own module and loads only
-- that module and what it requires: lunet.stats needs no cjson, lunet.Result does.
-- lunet.NAME(opts) for lunet.experiment's NAME(lunet, opts): not a tail call, so that
-- the errors it raises at level 3 land on the caller's line.
local function experiment_part(name)
  return function()
    local M = require("lunet.experiment")
    return function(opts)
      local r = M[name](lunet, opts)
      return r
    end
  end
end

local LAZY = {
  experiment = experiment_part("experiment"),
  sweep = experiment_part("sweep"),
  plot = function()
    local plot = require("lunet.plot")
    return function(results, opts) return plot.results(results, opts) end
  end,
  load_result = function() return require("lunet.result").load end,
  Result = function() return require("lunet.result") end,
  stats = function() return require("lunet.stats") end,
  Progress = function() return require("lunet.progress") end,
  store = function() return require("lunet.store") end,
}

-- The names lunet loads on first use, sorted (lunet.help and the specs load them all).
function lunet._lazy_names()
  local names = {}
  for k in pairs(LAZY) do names[#names + 1] = k end
  table.sort(names)
  return names
end

setmetatable(lunet, {
  __tostring = function() return ("lunet %s: lunet.help() lists the API"):format(core.version) end,
  __index = function(t, k)
    local load = LAZY[k]
    if not load then return nil end
    local ok, value = pcall(load)
    if not ok then
      error(("lunet.%s failed to load: %s"):format(k, tostring(value)), 2)
    end
    rawset(t, k, value)
    return value
  end,
})

return lunet
