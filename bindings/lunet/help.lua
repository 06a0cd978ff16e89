--- lunet.help: documentation at the prompt, and printing for interactive use.
-- lunet.help() lists the API, one line per function; lunet.help(f), lunet.help("name")
-- or lunet.help(object) prints the documentation of a function or the methods of an
-- object. The text is read at run time from the `---` comments of the module's Lua
-- files (the files the module was loaded from), completed by the entries below for
-- the functions written in C.
-- This module also gives the REPL its `print` (plain tables shown inline); training
-- histories and evaluations have theirs in lunet.history.
local format = require("lunet.format")

local help = {}

local WIDTH = 100

-- ------------------------------------------------------------ sources

-- Each Lua file of the module: the tables its functions are defined on, and the
-- public name of each (`function Net:train` documents net:train).
local SOURCES = {
  { module = "lunet", names = { lunet = "lunet", Net = "net", Dataset = "dataset" }, marked = true },
  { module = "lunet.experiment", title = "experiments and sweeps", names = { M = "lunet", Sweep = "sweep" } },
  { module = "lunet.result", title = "results (lunet.Result)", names = { Result = "lunet.Result" },
    methods = { Result = "result" } },
  { module = "lunet.plot", title = 'plots (local plot = require("lunet.plot"))', names = { plot = "plot" },
    rename = { ["plot.results"] = "lunet.plot" } },
  { module = "lunet.stats", title = "statistics (lunet.stats)", names = { stats = "lunet.stats" } },
  { module = "lunet.store", title = "the run store (lunet.store)", names = { store = "lunet.store" } },
  { module = "lunet.progress", title = "progress display (lunet.Progress)", names = { Progress = "lunet.Progress" },
    methods = { Progress = "progress" } },
  { module = "lunet.help", title = "help and printing", names = { help = "lunet.help" },
    rename = { ["lunet.help.help"] = "lunet.help" }, private = { ["lunet.help.text"] = true,
      ["lunet.help.repl_print"] = true,
      ["lunet.help.entries"] = true } },
  { module = "lunet.history", title = "training histories and evaluations", names = { History = "history" },
    private = { ["history.new"] = true, ["history.evaluation"] = true } },
}

-- Entries for what has no Lua source to read: functions written in C (lunet.core)
-- and the constructors made by helper functions. {section, name, doc...}
local C_DOCS = {
  { "layers", "lunet.relu()", "ReLU: max(0, x), elementwise." },
  { "layers", "lunet.tanh()", "Hyperbolic tangent, elementwise." },
  { "layers", "lunet.sigmoid()", "Logistic sigmoid, elementwise." },
  { "layers", "lunet.flatten()", "C x H x W -> C*H*W per sample (before a linear layer)." },
  { "layers", "lunet.log_softmax()", "Log-probabilities over the last dimension (pair it with loss = \"nll\")." },
  { "layers", "lunet.batchnorm2d(features [, {eps = 1e-5, momentum = 0.1}])",
    "Batch normalisation over N, H, W for each of `features` channels (PyTorch's BatchNorm2d):",
    "batch statistics in training, running statistics in evaluation; learnable weight and bias." },
  { "layers", "lunet.batchnorm1d(features [, {eps = 1e-5, momentum = 0.1}])",
    "Batch normalisation of N x features inputs (PyTorch's BatchNorm1d)." },
  { "nets", "net:forward(x [, training = false [, seed = 0]]) -> output tensor",
    "x is one sample (e.g. 1x28x28) or a batch N x sample; training = true enables dropout and",
    "batchnorm batch statistics (dropout draws from seed). The output is N x output shape." },
  { "nets", "net:backward(dout) -> dx", "After a forward pass with the same batch: dout is d(loss)/d(output).",
    "Parameter gradients are then read with net:get(i, \"weight_grad\") or net:gradients()." },
  { "nets", "net:get(i, name) -> tensor", "A copy of layer i's \"weight\", \"bias\", \"running_mean\",",
    "\"running_var\", \"weight_grad\" or \"bias_grad\"." },
  { "nets", "net:set(i, name, tensor | list)", "Overwrites layer i's \"weight\", \"bias\", \"running_mean\" or",
    "\"running_var\" (same number of elements)." },
  { "nets", "net:clone() -> net", "A new net with the same layers and a copy of parameters and buffers." },
  { "nets", "net:init(seed)", "Re-draws every parameter as PyTorch's defaults from seed." },
  { "nets", "net:save(path) -> true | nil, message",
    "Writes the net (layers, parameters, batchnorm buffers) atomically, CRC-checked; lunet.load reads it." },
  { "nets", "net:free()", "Releases the engine memory now (also done by __gc and <close>)." },
  { "nets", "net:layer_count() -> n", "Number of layers." },
  { "nets", "net:layer(i) -> {kind, output, params, flops, ...}", "Layer i's spec, output shape (per sample),",
    "parameter count and FLOPs per sample." },
  { "nets", "net:input_shape() -> {C, H, W}", "The per-sample input shape." },
  { "nets", "net:output_shape() -> shape", "The per-sample output shape." },
  { "nets", "net:param_count() -> n", "Number of parameters (weights and biases)." },
  { "nets", "net:flops() -> forward, backward", "FLOPs per sample (a multiply-add counts 2)." },
  { "tensors", "tensor:shape() -> {d1, d2, ...}", "The shape as a list." },
  { "tensors", "tensor:numel() -> n", "Number of elements (also #t)." },
  { "tensors", "tensor:totable() -> {x1, x2, ...}", "All elements as a flat list, row-major." },
  { "tensors", "tensor:get(i) -> x", "Element i (flat, 1-based; also t[i])." },
  { "tensors", "tensor:set(i, x)", "Sets element i (flat, 1-based)." },
  { "tensors", "tensor:clone() -> tensor", "A copy." },
  { "tensors", "tensor:reshape(shape) -> tensor", "A copy with another shape of the same size." },
  { "tensors", "tensor:free()", "Releases the memory now (also done by __gc and <close>)." },
  { "optimizers", "optimizer:step(params, grads)",
    "Engine optimizer (lunet.optimizer): updates the params tensor in place from grads." },
  { "optimizers", "optimizer:reset()", "Clears the optimizer state (momentum, Adam moments, step count)." },
  { "optimizers", "optimizer:steps() -> n", "Steps taken so far." },
  { "datasets", "dataset:size() -> n", "Number of samples (also #ds)." },
  { "datasets", "dataset:shape() -> {C, H, W}", "The shape of one image." },
  { "datasets", "dataset:classes() -> k", "Number of classes (largest label + 1)." },
  { "datasets", "dataset:image(i) -> tensor", "Image i (1-based) as a C x H x W tensor (a copy, normalised)." },
  { "datasets", "dataset:label(i) -> label", "Label of sample i (1-based index; labels are 0-based classes)." },
  { "datasets", "dataset:class_counts() -> {n0, n1, ...}", "Samples per class; entry c + 1 counts class c." },
  { "datasets", "dataset:checksum() -> crc", "CRC-32 of images and labels (identifies the data in result caches)." },
  { "datasets", "dataset:memory() -> bytes, storage", "Memory held; storage \"bytes\" (IDX files: 1 byte per pixel) or \"float32\"." },
  { "datasets", "dataset:free()", "Releases the memory now (also done by __gc and <close>)." },
  { "other", "lunet.version", "The version string, e.g. \"0.1.0\"." },
  { "other", "lunet.engine_revision", "Bumped whenever the engine's numbers change (keys model files and caches)." },
  { "other", "lunet.cpu_count() -> n", "Number of online CPU cores (the default thread count of experiments)." },
  { "other", "lunet.idx_read(path) -> {type, dims, count} | nil, message",
    "Reads the header and size of an IDX file (.gz or raw), checking it." },
  { "other", "lunet.core", "The C module (lunet.core): engine objects without the Lua conveniences." },
}

-- ------------------------------------------------------------ parsing

local function readable_lines(path)
  local f = path and io.open(path, "r")
  if not f then return nil end
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

-- The file a module was loaded from: the source of one of its Lua functions (so the
-- docs match the code that runs), else where package.path finds it now.
local function module_file(modname)
  local last = modname:match("([%w_]+)$")
  local want = modname == "lunet" and "/init%.lua$" or ("/" .. last .. "%.lua$")
  local mod = package.loaded[modname]
  if type(mod) == "table" then
    for _, v in pairs(mod) do
      if type(v) == "function" then
        local info = debug.getinfo(v, "S")
        local src = info.source or ""
        if info.what == "Lua" and src:sub(1, 1) == "@" and ("/" .. src:sub(2)):match(want) then
          return src:sub(2)
        end
      end
    end
  end
  return package.searchpath(modname, package.path)
end

local function strip_comment(line)
  return (line:gsub("^%s*%-%-%-?%s?", ""))
end

local function is_doc_start(line) return line:match("^%s*%-%-%-") and not line:match("^%s*%-%-%-%-") end
local function is_comment(line) return line:match("^%s*%-%-") and not line:match("^%s*%-%-%-%-") end

-- Parses one file into entries {name, params, doc, file, line, section, short}.
local function parse_file(src, path, lines, add, module_docs)
  local section = src.title or src.module
  local i, first_block = 1, true
  while i <= #lines do
    local line = lines[i]
    local marker = src.marked and line:match("^%-%- %-%-%-+ (%a[%w ]*)$")
    if marker then
      section = marker
      i = i + 1
    elseif is_doc_start(line) then
      local doc = {}
      while i <= #lines and is_comment(lines[i]) do
        doc[#doc + 1] = strip_comment(lines[i])
        i = i + 1
      end
      local def = lines[i] or ""
      local tbl, sep, field, params = def:match("^%s*function%s+([%a_][%w_]*)([.:])([%w_.]+)%s*(%b())")
      if not tbl then
        tbl, field = def:match("^%s*([%a_][%w_]*)%.([%w_.]+)%s*=")
        sep = "."
      end
      local prefix = tbl and (sep == ":" and ((src.methods or {})[tbl] or (src.names[tbl] or ""):lower())
        or src.names[tbl])
      if prefix and prefix ~= "" then
        local name = prefix .. sep .. field
        name = (src.rename or {})[name] or name
        if params and tbl == "M" then params = params:gsub("^%(lunet,%s*", "("):gsub("^%(lunet%)", "()") end
        if not (src.private or {})[name] then
          add { name = name, params = params, doc = doc, file = path, line = i, section = section }
        end
      elseif first_block then
        module_docs[src.module] = doc
      end
      first_block = false
    else
      if not line:match("^%s*$") and not line:match("^%s*%-%-") then first_block = false end
      i = i + 1
    end
  end
end

local cache

local function short_of(name) return name:match("([%w_]+)$") or name end

local function load_docs()
  if cache then return cache end
  local docs = { list = {}, by_name = {}, by_loc = {}, modules = {}, sections = {} }
  local function add(e)
    e.short = short_of(e.name)
    if docs.by_name[e.name] then return end
    docs.list[#docs.list + 1] = e
    docs.by_name[e.name] = e
    if e.file then docs.by_loc[e.file .. ":" .. e.line] = e end
    if not docs.sections[e.section] then
      docs.sections[e.section] = true
      docs.sections[#docs.sections + 1] = e.section
    end
  end
  for _, src in ipairs(SOURCES) do
    if src.module ~= "lunet" then pcall(require, src.module) end
    local path = module_file(src.module)
    local lines = readable_lines(path)
    if lines then parse_file(src, path, lines, add, docs.modules) end
    if src.module == "lunet" then
      -- the C functions belong to the sections of the core module
      for _, d in ipairs(C_DOCS) do
        local sig = d[2]
        local name = sig:match("^[%a_][%w_.:]*")
        local doc = { sig }
        for k = 3, #d do doc[#doc + 1] = d[k] end
        add { name = name, doc = doc, section = d[1], c = true }
      end
    end
  end
  -- aliases: the same documentation under the name users call
  local plot = docs.by_name["lunet.plot"]
  if plot then
    docs.by_name["lunet.plot.results"], docs.by_name["plot.results"] = plot, plot
  end
  local load = docs.by_name["lunet.Result.load"]
  if load then
    local alias = {}
    for k, v in pairs(load) do alias[k] = v end
    alias.name, alias.section = "lunet.load_result", "experiments and sweeps"
    alias.doc = { "lunet.load_result(path) -> result | nil, message" }
    for k = 1, #load.doc do alias.doc[#alias.doc + 1] = load.doc[k] end
    alias.file = nil
    add(alias)
  end
  cache = docs
  return docs
end

-- ------------------------------------------------------------ formatting

local function is_signature(e)
  local first = e.doc[1] or ""
  local head, tail = first:match("^([%a_][%w_.:]*)(.*)$")
  return head ~= nil and short_of(head) == e.short and (tail:match("^[({]") or tail == "" or tail:match("^ %->")
    or tail:match("^ = ")) ~= nil, tail
end

-- The first sentence of doc lines from..: joined lines up to the first full stop.
local function sentence(doc, from)
  local parts = {}
  for k = from, #doc do
    local l = doc[k]:gsub("^%s+", ""):gsub("%s+$", "")
    if l == "" then break end
    parts[#parts + 1] = l
    if l:match("%.$") or l:match("%.%s+%u") then break end
  end
  local s = table.concat(parts, " ")
  return s:match("^(.-%.)%s+%u") or s
end

-- Splits `text` into lines of at most `width` characters at spaces; lines after the
-- first start with `indent`. A word longer than a line stays whole.
local function wrap(text, width, indent)
  local lines, line = {}, ""
  for word in text:gmatch("%S+") do
    local candidate = line == "" and word or (line .. " " .. word)
    if line ~= "" and utf8.len(candidate) > width then
      lines[#lines + 1] = line
      line = indent .. word
    else
      line = candidate
    end
  end
  if line ~= "" then lines[#lines + 1] = line end
  return lines
end

-- The API list's entry for e: its whole signature (joined over the doc lines it
-- spans) and, when that is short, the first sentence of its doc; whole words,
-- wrapped onto indented lines rather than cut.
local function summary(e)
  local sig, tail = is_signature(e)
  local line
  if sig then
    line = e.name .. tail
    local k = 2
    local function open(l) return select(2, l:gsub("[{(]", "")) - select(2, l:gsub("[})]", "")) end
    while open(line) > 0 and e.doc[k] do
      line = line .. " " .. e.doc[k]:gsub("^%s+", ""):gsub("%s+$", "")
      k = k + 1
    end
    if #line < 64 and e.doc[k] and e.doc[k]:match("%S") then
      line = line .. " \1" .. sentence(e.doc, k) -- \1: the two spaces before the sentence
    end
  else
    local first = sentence(e.doc, 1)
    line = e.name .. (e.params or "") .. (first ~= "" and (" \1" .. first) or "")
  end
  local text = table.concat(wrap(line, WIDTH - 3, "    "), "\n  ") -- listed with an indent of two
  return (text:gsub(" \1", "  "):gsub("\1", ""))
end

local function detail(e)
  local out = {}
  if not is_signature(e) then out[1] = e.name .. (e.params or "") end
  for _, l in ipairs(e.doc) do
    local head, tail = l:match("^([%a_][%w_.:]*)(.*)$")
    -- the signature line shows the public name (net:train, not Net:train or train)
    if #out == 0 and head and short_of(head) == e.short then l = e.name .. tail end
    out[#out + 1] = l
  end
  if e.file then
    out[#out + 1] = ("  (%s:%d)"):format(e.file, e.line)
  elseif e.c then
    out[#out + 1] = "  (implemented in C: lunet.core)"
  end
  return table.concat(out, "\n")
end

local function listing(docs, filter, header)
  local out = { header ~= "" and header or nil }
  for _, section in ipairs(docs.sections) do
    local lines = {}
    for _, e in ipairs(docs.list) do
      if e.section == section and (not filter or filter(e)) then lines[#lines + 1] = "  " .. summary(e) end
    end
    if #lines > 0 then
      out[#out + 1] = section .. ":"
      for _, l in ipairs(lines) do out[#out + 1] = l end
    end
  end
  return table.concat(out, "\n")
end

local function full_listing(lunet, docs)
  local version = lunet and rawget(lunet, "version") or "?"
  local head = ("lunet %s: CNN training in C, driven from Lua 5.4.\n"
    .. "lunet.help(\"name\") or lunet.help(f) documents one function, lunet.help(object) lists its methods.\n")
    :format(version)
  return listing(docs, nil, head)
end

-- ------------------------------------------------------------ lookup

-- Loads every name of lunet that loads on first use (lunet.Result, lunet.stats, ...),
-- so that the lookups below find them; one that cannot load (no lua-cjson) stays out.
local function load_lazy(lunet)
  if type(lunet) ~= "table" or type(rawget(lunet, "_lazy_names")) ~= "function" then return end
  for _, k in ipairs(lunet._lazy_names()) do pcall(function() return lunet[k] end) end
end

-- function value -> public name, from the tables users reach the API through.
local function identity_names(lunet)
  local names = {}
  local function add(f, name) if type(f) == "function" and names[f] == nil then names[f] = name end end
  if type(lunet) ~= "table" then return names end
  load_lazy(lunet)
  for k, v in pairs(lunet) do add(v, "lunet." .. tostring(k)) end
  for k, v in pairs(rawget(lunet, "models") or {}) do add(v, "lunet.models." .. k) end
  local core = rawget(lunet, "core")
  if core then
    for cls, prefix in pairs({ Net = "net:", Dataset = "dataset:", Tensor = "tensor:", Optimizer = "optimizer:" }) do
      for k, v in pairs(core[cls] and core[cls].methods or {}) do add(v, prefix .. k) end
    end
  end
  local docs = load_docs()
  for tname, mname in pairs({ Result = "result", Progress = "progress", stats = "stats" }) do
    for k, v in pairs(rawget(lunet, tname) or {}) do
      if docs.by_name[mname .. ":" .. k] then add(v, mname .. ":" .. k) else add(v, "lunet." .. tname .. "." .. k) end
    end
  end
  return names
end

local function entry_for_function(lunet, f)
  local docs = load_docs()
  local name = identity_names(lunet)[f]
  if name and docs.by_name[name] then return docs.by_name[name] end
  local info = debug.getinfo(f, "S")
  if info.what == "Lua" and info.source:sub(1, 1) == "@" then
    local e = docs.by_loc[info.source:sub(2) .. ":" .. info.linedefined]
    if e then return e end
  end
  return nil, name
end

local OBJECT_PREFIX = {
  ["lunet.Net"] = "net:", ["lunet.Dataset"] = "dataset:", ["lunet.Tensor"] = "tensor:",
  ["lunet.Optimizer"] = "optimizer:", ["lunet.Sweep"] = "sweep:", ["lunet.History"] = "history:",
}

local function prefix_listing(docs, prefix, header)
  return listing(docs, function(e) return e.name:sub(1, #prefix) == prefix end, header)
end

local function lookup_string(docs, s)
  s = s:gsub("^%s+", ""):gsub("%s+$", ""):gsub("%(%)$", "")
  if s == "" or s == "lunet" then return nil end
  local e = docs.by_name[s] or docs.by_name["lunet." .. s]
  if e then
    local also = {}
    for _, x in ipairs(docs.list) do
      if x.short == e.short and x ~= e then also[#also + 1] = x.name end
    end
    return detail(e) .. (#also > 0 and ("\nsee also: " .. table.concat(also, ", ")) or "")
  end
  for _, section in ipairs(docs.sections) do
    if section == s or section:match("^(%S+)") == s then
      return listing(docs, function(x) return x.section == section end, "")
    end
  end
  -- a module or class the docs refer to ("lunet.result", "result", "lunet.Result",
  -- "lunet.Progress"): its section
  for _, src in ipairs(SOURCES) do
    local short = src.module:match("([%w_]+)$")
    local hit = s == src.module or s:lower() == short or s:lower() == short .. "s"
    for _, public in pairs(src.names) do hit = hit or (public ~= "lunet" and public == s) end
    if hit and src.title then
      return listing(docs, function(x) return x.section == src.title end, "")
    end
  end
  -- "train", "Net:train", "net.train": match the last component, then the prefix
  local key = short_of(s)
  local qual = s:match("^(.*)[.:][%w_]+$")
  local found = {}
  for _, x in ipairs(docs.list) do
    if x.short == key then
      local xq = x.name:match("^(.*)[.:][%w_]+$") or ""
      if not qual or xq:lower():sub(-#qual) == qual:lower() then found[#found + 1] = detail(x) end
    end
  end
  if #found > 0 then return table.concat(found, "\n\n") end
  local near = {}
  for _, x in ipairs(docs.list) do
    if x.name:lower():find(key:lower(), 1, true) then near[#near + 1] = x.name end
  end
  if #near > 0 then
    return ("no documentation for '%s'; related: %s"):format(s, table.concat(near, ", "))
  end
  return ("no documentation for '%s' (lunet.help() lists the API)"):format(s)
end

--- help.entries() -> {list = {entry...}, sections = {...}, modules = {...}}: the parsed
-- documentation (each entry: name, doc lines, section, file and line, or c = true);
-- tools/doc.sh builds the LDoc reference from it.
function help.entries() return load_docs() end

--- help.text([what]) -> string: what lunet.help(what) prints.
function help.text(lunet, what)
  local docs = load_docs()
  load_lazy(lunet)
  local t = type(what)
  if what == nil or what == lunet then
    return full_listing(lunet, docs)
  elseif t == "string" then
    return lookup_string(docs, what) or full_listing(lunet, docs)
  elseif t == "function" then
    local e, name = entry_for_function(lunet, what)
    if e then return detail(e) end
    return ("no documentation for %s"):format(name or "this function")
  end
  local mt = getmetatable(what)
  if type(mt) == "table" then
    local mname = rawget(mt, "__name")
    if mname == "lunet.Layer" or mname == "lunet.OptimizerSpec" then
      local e = docs.by_name["lunet." .. tostring(what.kind)]
      if e then return detail(e) end
    end
    local prefix = OBJECT_PREFIX[mname]
    if not prefix and lunet then
      if mt == rawget(lunet, "Result") then prefix = "result:" end
      if mt == rawget(lunet, "Progress") then prefix = "progress:" end
    end
    if prefix then
      return prefix_listing(docs, prefix, ("%s methods (lunet.help(\"%sNAME\") for one):")
        :format(prefix:sub(1, -2), prefix))
    end
  end
  if t == "table" and lunet then
    if what == rawget(lunet, "models") then return prefix_listing(docs, "lunet.models.", "lunet.models:") end
    if what == rawget(lunet, "stats") then return lookup_string(docs, "lunet.stats") end
    if what == rawget(lunet, "Result") then return lookup_string(docs, "lunet.Result") end
    if what == rawget(lunet, "Progress") then return lookup_string(docs, "lunet.Progress") end
  end
  return ("no documentation for this %s (lunet.help() lists the API)"):format(t)
end

--- lunet.help([what])
-- Prints the API list, or the documentation of `what`: a function
-- (lunet.help(lunet.experiment)), a name (lunet.help("experiment"), "net:train",
-- "train", a section such as "layers"), or an object (a net, dataset, tensor, result,
-- sweep: its methods).
function help.help(lunet, what)
  io.stdout:write(help.text(lunet, what), "\n")
end

-- ------------------------------------------------------------ printing

local fmt_num = format.number

local function first_line(s) return (s:match("^[^\n]*")) end

-- A compact, one-line rendering of a value; plain tables inline.
local function repr(v, depth)
  local t = type(v)
  if t == "number" then return fmt_num(v) end
  if t == "string" then return depth > 0 and ("%q"):format(v) or v end
  if t ~= "table" then
    local s = tostring(v)
    return depth > 0 and first_line(s) or s
  end
  local mt = getmetatable(v)
  if mt and mt.__tostring then
    local s = tostring(v)
    return depth > 0 and first_line(s) or s
  end
  if depth >= 3 then return "{...}" end
  local n = #v
  local items = {}
  local max = 16
  if n > max then
    for i = 1, 10 do items[#items + 1] = repr(v[i], depth + 1) end
    items[#items + 1] = "..."
    for i = n - 1, n do items[#items + 1] = repr(v[i], depth + 1) end
  else
    for i = 1, n do items[#items + 1] = repr(v[i], depth + 1) end
  end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  for j, k in ipairs(keys) do
    if j > max then
      items[#items + 1] = ("... (%d more keys)"):format(#keys - max)
      break
    end
    local ks = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. repr(k, depth + 1) .. "]")
    items[#items + 1] = ks .. " = " .. repr(v[k], depth + 1)
  end
  local s = "{" .. table.concat(items, ", ") .. "}"
  if n > max then s = s .. (" (%d items)"):format(n) end
  return s
end
help.repr = function(v) return repr(v, 0) end

--- help.repl_print(print) -> a print that shows plain tables inline ({1, 28, 28},
-- {loss = 0.31, accuracy = 0.91}); the lunet REPL installs it as its `print`.
function help.repl_print(print)
  return function(...)
    local n = select("#", ...)
    -- h:plot() and res:plot() draw on stdout and return true; the session would
    -- print that true under the plot. lunet.plot marks a drawing made since the
    -- last print; a lone true right after one is not shown.
    local plot = package.loaded["lunet.plot"]
    local drawn = type(plot) == "table" and plot.drawn_on_stdout
    if drawn then plot.drawn_on_stdout = false end
    if drawn and n == 1 and (...) == true then return end
    local args = { ... }
    for i = 1, n do
      if type(args[i]) == "table" then args[i] = repr(args[i], 0) end
    end
    return print(table.unpack(args, 1, n))
  end
end

return help
