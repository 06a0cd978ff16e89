--- lunet.format: how lunet writes numbers and layers as text, in one place.
-- print(net), print(layer), print(res), print(h), the progress line, result files and
-- plots all format through these functions, so one value reads the same everywhere.
-- Internal: the functions take what their callers have already checked.
local format = {}

-- ------------------------------------------------------------ numbers

-- The text of a number that is not finite, else nil. %g prints NaN as "nan" or
-- "-nan" depending on its sign bit; lunet always writes "nan".
local function special(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  return nil
end

-- format.real(v, fmt) -> "nan", "inf", "-inf", or v in fmt (integers too): CSV cells
-- ("%.9g"), plot data and labels.
function format.real(v, fmt)
  return special(v) or fmt:format(v)
end

-- format.number(v [, fmt = "%.6g"]) -> an integer as an integer, else format.real(v, fmt):
-- the numbers of print(res), print(h) and the REPL.
function format.number(v, fmt)
  if math.type(v) == "integer" then return tostring(v) end
  return format.real(v, fmt or "%.6g")
end

-- format.value(v) -> format.number(v) for a number, tostring(v) for anything else.
function format.value(v)
  if type(v) == "number" then return format.number(v) end
  return tostring(v)
end

-- 1.23M and 12.3k for large n, else nil.
local function scaled(n)
  if n >= 1e6 then return ("%.2fM"):format(n / 1e6) end
  if n >= 1e4 then return ("%.1fk"):format(n / 1e3) end
  return nil
end

-- format.count(n) -> "9876", "12.3k", "1.23M": a count (parameters).
function format.count(n)
  return scaled(n) or tostring(math.tointeger(n) or n)
end

-- format.rate(r) -> "850", "12.3k", "1.23M": a rate (samples per second); "?" for none
-- or NaN.
function format.rate(r)
  if type(r) ~= "number" or r ~= r then return "?" end
  return scaled(r) or ("%.0f"):format(r)
end

-- format.plural(3, "step") -> "3 steps", format.plural(1, "step") -> "1 step".
function format.plural(n, word)
  return ("%d %s%s"):format(n, word, n == 1 and "" or "s")
end

-- format.shape({1, 28, 28}) -> "1x28x28".
function format.shape(s)
  return table.concat(s, "x")
end

-- format.quoted(v) -> a string in quotes ("epochs"), anything else as tostring: the
-- value an option got, in an error message.
function format.quoted(v)
  return type(v) == "string" and ("%q"):format(v) or tostring(v)
end

-- ------------------------------------------------------------- layers

-- The fields of a layer spec that its text shows, in this order (the kind first,
-- bias last). format.model's strings are run store keys, so the order only grows: the
-- nine fields keys have always had, then every other constructor parameter the core
-- declares (core.layer_kinds), kinds in file-tag order (append-only), so that a new
-- kind's parameters append and every parameter that changes the numbers is in the key.
-- (Before, batchnorm's eps and momentum were left out: two nets differing only there
-- shared stored runs.)
local LAYER_FIELDS = { "in_channels", "out_channels", "in_features", "out_features", "features",
  "kernel", "stride", "padding", "p" }
do
  local seen = { bias = true } -- bias: shown last, and in keys as "nobias"
  for _, k in ipairs(LAYER_FIELDS) do seen[k] = true end
  local kinds = {}
  for _, kind in pairs(require("lunet.core").layer_kinds) do kinds[#kinds + 1] = kind end
  table.sort(kinds, function(a, b) return a.file_tag < b.file_tag end)
  for _, kind in ipairs(kinds) do
    for _, param in ipairs(kind.params) do
      if not seen[param.name] then
        seen[param.name] = true
        LAYER_FIELDS[#LAYER_FIELDS + 1] = param.name
      end
    end
  end
end

-- format.layer(l) -> "conv2d(in_channels=1, out_channels=10, kernel=5, stride=1, padding=0,
-- bias=true)": print(lunet.conv2d(1, 10, 5)).
function format.layer(l)
  local parts = {}
  for _, k in ipairs(LAYER_FIELDS) do
    if l[k] ~= nil then parts[#parts + 1] = k .. "=" .. tostring(l[k]) end
  end
  if l.bias ~= nil then parts[#parts + 1] = "bias=" .. tostring(l.bias) end
  return l.kind .. "(" .. table.concat(parts, ", ") .. ")"
end

-- format.layer_options(l) -> "1->10 k5", "320->50", "p=0.5", "k2", "no bias": the
-- options column of print(net), defaults left out (stride = 1 for conv2d, the kernel
-- for pooling; padding 0).
function format.layer_options(l)
  local o = {}
  if l.in_channels then o[#o + 1] = ("%d->%d"):format(l.in_channels, l.out_channels) end
  if l.in_features then o[#o + 1] = ("%d->%d"):format(l.in_features, l.out_features) end
  if l.features then o[#o + 1] = tostring(l.features) end
  if l.kernel then o[#o + 1] = "k" .. l.kernel end
  if l.stride and l.stride ~= (l.kind == "conv2d" and 1 or l.kernel) then o[#o + 1] = "s" .. l.stride end
  if l.padding and l.padding > 0 then o[#o + 1] = "p" .. l.padding end
  if l.p then o[#o + 1] = ("p=%g"):format(l.p) end
  if l.negative_slope then o[#o + 1] = ("slope=%g"):format(l.negative_slope) end
  if l.bias == false then o[#o + 1] = "no bias" end
  return table.concat(o, " ")
end

-- format.model(net) -> "conv2d(1,10,5,1,0) maxpool2d(2,2) relu ...": the net in one
-- line, every field's value in LAYER_FIELDS order. It is the `model` of an
-- experiment's config and so part of the run store's key: it must not change.
function format.model(net)
  local parts = {}
  for i = 1, net:layer_count() do
    local l = net:layer(i)
    local o = {}
    for _, k in ipairs(LAYER_FIELDS) do
      if l[k] ~= nil then o[#o + 1] = ("%s"):format(l[k]) end
    end
    if l.bias == false then o[#o + 1] = "nobias" end
    parts[#parts + 1] = l.kind .. (#o > 0 and ("(" .. table.concat(o, ",") .. ")") or "")
  end
  return table.concat(parts, " ")
end

return format
