-- The dataset loaders (lunet.idx, lunet.csv, lunet.cifar10 and the presets mnist and
-- fashion_mnist) on files the spec writes: values, normalisation (given, per channel,
-- auto, none), and every malformed file giving nil and a message that names the place.
local lunet = require("lunet")
local util = require("util")

local dir = util.temp_dir()

local function write(name, bytes)
  local path = dir .. "/" .. name
  util.write(path, bytes)
  return path
end

local function gzip(path)
  assert(os.execute("gzip -kf " .. util.shell_quote(path)))
  return path .. ".gz"
end

local header = require("util").idx_header

local function byte_idx(dims, fn)
  local n = 1
  for _, d in ipairs(dims) do n = n * d end
  local b = {}
  for i = 0, n - 1 do b[#b + 1] = string.char(fn(i) % 256) end
  return header(8, dims) .. table.concat(b)
end

local function float_idx(dims, values)
  local b = {}
  for i, v in ipairs(values) do b[i] = string.pack(">f", v) end
  return header(0x0D, dims) .. table.concat(b)
end

local function label_idx(list)
  local b = {}
  for i, l in ipairs(list) do b[i] = string.char(l) end
  return header(8, { #list }) .. table.concat(b)
end

local f32 = function(v) return (string.unpack("<f", string.pack("<f", v))) end
-- the engine's formula, in float: ((float)x / 255 - mean) / std
local function byte_value(x, mean, std) return f32(f32(f32(f32(x) / 255) - f32(mean)) / f32(std)) end

local function values(ds)
  local out = {}
  for i = 1, #ds do
    for _, v in ipairs(ds:image(i):totable()) do out[#out + 1] = v end
  end
  return out
end

teardown(function() util.rm_rf(dir) end)

describe("lunet.idx", function()
  local img = write("img.idx", byte_idx({ 3, 2, 2 }, function(i) return i * 20 end))
  local lab = write("lab.idx", label_idx({ 2, 0, 1 }))

  it("reads uint8 IDX, raw or gzipped, with a given mean and std", function()
    local ds = assert(lunet.idx { images = img, labels = lab, mean = 0.5, std = 0.25, name = "tiny" })
    assert.equal(3, #ds)
    assert.same({ 1, 2, 2 }, ds:shape())
    local v = values(ds)
    for i = 1, 12 do assert.equal(byte_value((i - 1) * 20, 0.5, 0.25), v[i]) end
    assert.same({ 2, 0, 1 }, { ds:label(1), ds:label(2), ds:label(3) })
    assert.equal("tiny", ds:info().name)
    assert.equal(0.5, ds:info().mean)
    local gz = assert(lunet.idx { images = gzip(img), labels = gzip(lab), mean = 0.5, std = 0.25 })
    assert.same(v, values(gz))
    assert.equal(ds:checksum(), gz:checksum())
    local two = assert(lunet.idx { images = img, labels = lab, n = 2, mean = 0.5, std = 0.25 })
    assert.equal(2, #two)
  end)

  it("normalize = \"auto\" uses the samples' mean and std; false keeps x / 255", function()
    local auto = assert(lunet.idx { images = img, labels = lab })
    local mean, sq = 0, 0
    for i = 0, 11 do mean = mean + i * 20 / 255 / 12 end
    for i = 0, 11 do sq = sq + (i * 20 / 255 - mean) ^ 2 / 12 end
    assert.near(mean, auto:info().mean, 1e-12)
    assert.near(math.sqrt(sq), auto:info().std, 1e-12)
    local v, s = values(auto), 0
    for i = 1, 12 do s = s + v[i] end
    assert.near(0, s / 12, 1e-6)
    local raw = assert(lunet.idx { images = img, labels = lab, normalize = false })
    assert.equal(f32(220 / 255), values(raw)[12])
    assert.equal(0, raw:info().mean)
  end)

  it("reads float32 IDX and per-channel statistics for N x C x H x W", function()
    local fl = write("float.idx", float_idx({ 2, 3, 1, 1 }, { 1, 2, 3, 4, 5, 6 }))
    local l2 = write("l2.idx", label_idx({ 0, 1 }))
    local ds = assert(lunet.idx { images = fl, labels = l2, mean = { 1, 2, 3 }, std = { 1, 2, 4 } })
    assert.same({ 3, 1, 1 }, ds:shape())
    assert.same({ 0, 0, 0, 3, 1.5, 0.75 }, values(ds))
    local _, mem = ds:memory()
    assert.equal("float32", mem)
    local auto = assert(lunet.idx { images = fl, labels = l2 })
    assert.same({ 2.5, 3.5, 4.5 }, auto:info().mean)
    assert.same({ 1.5, 1.5, 1.5 }, auto:info().std)
    -- per channel with bytes: three tables, one per channel
    local rgb = write("rgb.idx", byte_idx({ 1, 3, 1, 2 }, function() return 255 end))
    local l1 = write("l1.idx", label_idx({ 0 }))
    local c = assert(lunet.idx { images = rgb, labels = l1, mean = { 0, 0.5, 1 }, std = { 1, 0.5, 2 } })
    assert.same({ 1, 1, 1, 1, 0, 0 }, values(c))
    local _, bytes = c:memory()
    assert.equal("bytes", bytes)
  end)

  it("missing and malformed files give nil and a message naming the file", function()
    local function fails(opts, pattern)
      local ds, msg = lunet.idx(opts)
      assert.is_nil(ds)
      assert.matches(pattern, msg, 1, true)
    end
    fails({ images = dir .. "/none.idx", labels = lab }, dir .. "/none.idx")
    local short = write("short.idx", byte_idx({ 3, 2, 2 }, function(i) return i end):sub(1, -3))
    fails({ images = short, labels = lab }, short)
    local lab2 = write("lab2.idx", label_idx({ 0, 1 }))
    fails({ images = img, labels = lab2 }, "holds 3 images but " .. lab2 .. " holds 2 labels")
    local ints = write("int.idx", header(0x0C, { 1, 1, 1 }) .. string.pack(">i4", 7))
    fails({ images = ints, labels = write("l.idx", label_idx({ 0 })) }, "found type 0x0C")
    local nan = write("nan.idx", float_idx({ 1, 1, 1 }, { 0 / 0 }))
    fails({ images = nan, labels = write("l1b.idx", label_idx({ 0 })) }, "not finite")
    fails({ images = img, labels = lab, n = 4, mean = 0, std = 1 }, "limit 4 is more than the 3 samples")
    fails({ images = img, labels = lab, mean = { 0, 1 }, std = { 1, 1 } }, "1 value or one per channel (1), got 2")
  end)

  it("option tables stay strict", function()
    local function err(opts)
      local ok, e = pcall(lunet.idx, opts)
      assert.is_false(ok)
      return tostring(e)
    end
    assert.matches("unknown option 'image'", err { image = img, labels = lab }, 1, true)
    assert.matches("'images' and 'labels'", err { images = img }, 1, true)
    assert.matches("'mean' and 'std' go together", err { images = img, labels = lab, mean = 0.1 }, 1, true)
    assert.matches("'normalize' must be \"auto\" or false", err { images = img, labels = lab, normalize = true }, 1, true)
    assert.matches("takes no mean or std", err { images = img, labels = lab, normalize = false, mean = 0, std = 1 }, 1, true)
    assert.matches("option 'std' must be a finite number or a list", err { images = img, labels = lab, mean = 0, std = "x" }, 1, true)
  end)
end)

describe("lunet.csv", function()
  local rows = { "label,p0,p1,p2,p3", "3,0,255,51,102", "1, 10 ,20,30,40", "", "0,1,2,3,4" }
  local path = write("digits.csv", table.concat(rows, "\n") .. "\n")

  it("reads the digit-recognizer layout (a header, the label first, pixel bytes)", function()
    local ds = assert(lunet.csv { path = path, shape = { 1, 2, 2 }, mean = 0, std = 1 })
    assert.equal(3, #ds)
    assert.same({ 3, 1, 0 }, { ds:label(1), ds:label(2), ds:label(3) })
    assert.same({ 0, 1, f32(0.2), f32(0.4) }, ds:image(1):totable())
    local _, storage = ds:memory()
    assert.equal("bytes", storage)
    assert.equal(4, ds:classes())
    local gz = assert(lunet.csv { path = gzip(path), shape = { 1, 2, 2 }, mean = 0, std = 1, n = 2 })
    assert.equal(2, #gz)
    assert.same(ds:image(2):totable(), gz:image(2):totable())
  end)

  it("float values, another label column, no header, CRLF line ends", function()
    local p = write("floats.csv", "0.5,-1.25,2\r\n1.5,0.25,7\r\n")
    local ds = assert(lunet.csv { path = p, shape = { 1, 1, 2 }, label_column = 3, header = false,
      normalize = false })
    assert.same({ 2, 7 }, { ds:label(1), ds:label(2) })
    assert.same({ 0.5, -1.25 }, ds:image(1):totable())
    assert.equal("float32", select(2, ds:memory()))
  end)

  it("errors name the file, the line and the column", function()
    local function fails(text, pattern, opts)
      local p = write("bad.csv", text)
      local o = { path = p, shape = { 1, 2, 2 }, mean = 0, std = 1 }
      for k, v in pairs(opts or {}) do o[k] = v end
      local ds, msg = lunet.csv(o)
      assert.is_nil(ds)
      assert.matches(p, msg, 1, true)
      assert.matches(pattern, msg, 1, true)
    end
    fails("h\n1,2,3,4,5\n2,3,4\n", "line 3: 3 columns, expected 5")
    fails("h\n1,2,3,4,5,6\n", "line 2: more than 5 columns")
    fails("h\n1,2,x3,4,5\n", "line 2, column 3: \"x3\" is not a finite number")
    fails("h\n1,2,3,4,5\n-1,2,3,4,5\n", "line 3, column 1: label -1 is not an integer")
    fails("h\n1.5,2,3,4,5\n", "line 2, column 1: label 1.5 is not an integer")
    fails("h\n1,2,3,4,nan\n", "line 2, column 5")
    fails("h\n", "no data lines after the header")
    fails("h\n1,2,3,4,5\n", "n = 2 is more than the 1 samples", { n = 2 })
    local ds, msg = lunet.csv { path = dir .. "/missing.csv", shape = { 1, 2, 2 } }
    assert.is_nil(ds)
    assert.matches(dir .. "/missing.csv: cannot open", msg, 1, true)
    local ok, e = pcall(lunet.csv, { path = path, shape = { 1, 2 } })
    assert.is_false(ok)
    assert.matches("option 'shape' must be {C, H, W}", tostring(e), 1, true)
    ok, e = pcall(lunet.csv, { path = path, shape = { 1, 2, 2 }, label_column = 6 })
    assert.is_false(ok)
    assert.matches("'label_column' (6) is beyond the 5 columns", tostring(e), 1, true)
  end)
end)

describe("lunet.cifar10", function()
  local cdir = dir .. "/cifar"
  require("lfs").mkdir(cdir)
  -- record r: label r % 10, red plane r, green 128, blue 255 - r
  local function records(first, n, label_of)
    local out = {}
    for r = first, first + n - 1 do
      out[#out + 1] = string.char(label_of and label_of(r) or r % 10) .. string.rep(string.char(r % 256), 1024)
        .. string.rep(string.char(128), 1024) .. string.rep(string.char((255 - r) % 256), 1024)
    end
    return table.concat(out)
  end
  for b = 1, 5 do util.write(("%s/data_batch_%d.bin"):format(cdir, b), records(b * 10, 2)) end
  util.write(cdir .. "/test_batch.bin", records(100, 3))

  it("reads the five training batches in order, normalised per channel", function()
    local ds = assert(lunet.cifar10 { dir = cdir })
    assert.equal(10, #ds)
    assert.same({ 3, 32, 32 }, ds:shape())
    assert.same({ 0, 1, 0, 1 }, { ds:label(1), ds:label(2), ds:label(3), ds:label(4) })
    local m, s = { 0.4914, 0.4822, 0.4465 }, { 0.2470, 0.2435, 0.2616 }
    local x = ds:image(2):totable() -- record 11
    assert.equal(byte_value(11, m[1], s[1]), x[1])
    assert.equal(byte_value(128, m[2], s[2]), x[1025])
    assert.equal(byte_value(244, m[3], s[3]), x[3072])
    assert.same(m, ds:info().mean)
    assert.equal("cifar10", ds:info().name)
    local test = assert(lunet.cifar10 { dir = cdir, split = "test", n = 2 })
    assert.equal(2, #test)
    assert.equal(0, test:label(1))
    local auto = assert(lunet.cifar10 { dir = cdir, split = "test", normalize = "auto" })
    assert.near(128 / 255, auto:info().mean[2], 1e-12)
    assert.equal(1, auto:info().std[2]) -- a constant channel: nothing to scale
  end)

  it("truncated records, bad labels and missing batches name the file and record", function()
    local bad = dir .. "/cifar_bad"
    require("lfs").mkdir(bad)
    util.write(bad .. "/test_batch.bin", records(0, 2) .. "\1\2\3")
    local ds, msg = lunet.cifar10 { dir = bad, split = "test" }
    assert.is_nil(ds)
    assert.matches(bad .. "/test_batch.bin: record 3 is truncated: 3 of 3073 bytes", msg, 1, true)
    util.write(bad .. "/test_batch.bin", records(0, 2, function(r) return r == 1 and 10 or 0 end))
    ds, msg = lunet.cifar10 { dir = bad, split = "test" }
    assert.is_nil(ds)
    assert.matches("test_batch.bin: record 2: label 10 is not a CIFAR-10 class", msg, 1, true)
    ds, msg = lunet.cifar10 { dir = bad }
    assert.is_nil(ds)
    assert.matches("cannot open " .. bad .. "/data_batch_1.bin (the CIFAR-10 train batches", msg, 1, true)
    local ok, e = pcall(lunet.cifar10, { dir = bad, split = "valid" })
    assert.is_false(ok)
    assert.matches("option 'split' must be \"train\" or \"test\"", tostring(e), 1, true)
  end)
end)

describe("lunet.fashion_mnist", function()
  local fdir = "/usr/share/datasets/fashion-mnist"
  local probe = lunet.fashion_mnist { split = "test", n = 100 }
  if not probe then
    it("needs the Debian package dataset-fashion-mnist", function()
      pending("Fashion-MNIST not in " .. fdir .. ": its specs are skipped")
    end)
    return
  end

  it("reads the test split from " .. fdir .. " with its own normalisation and name", function()
    local test = assert(lunet.fashion_mnist { split = "test" })
    assert.equal(10000, #test)
    assert.equal(10, test:classes())
    local info = test:info()
    assert.equal("fashion-mnist", info.name)
    assert.equal(0.2860, info.mean)
    assert.equal(0.3530, info.std)
    assert.matches("^dataset fashion%-mnist/test: 10000 samples", tostring(test))
    -- the values are those of lunet.idx on the same files with the same statistics
    local same = assert(lunet.idx { images = fdir .. "/t10k-images-idx3-ubyte.gz",
      labels = fdir .. "/t10k-labels-idx1-ubyte.gz", mean = 0.2860, std = 0.3530, n = 100 })
    assert.equal(same:checksum(), probe:checksum())
    for c = 1, 10 do assert.equal(1000, test:class_counts()[c]) end
  end)
end)

describe("lunet.mnist is a preset of lunet.idx", function()
  it("the same values as lunet.idx with MNIST's statistics", function()
    local mdir = dir .. "/mnist"
    require("lfs").mkdir(mdir)
    util.write(mdir .. "/t10k-images-idx3-ubyte", byte_idx({ 2, 2, 2 }, function(i) return i * 30 end))
    util.write(mdir .. "/t10k-labels-idx1-ubyte", label_idx({ 1, 0 }))
    local m = assert(lunet.mnist { dir = mdir, split = "test" })
    local i = assert(lunet.idx { images = mdir .. "/t10k-images-idx3-ubyte",
      labels = mdir .. "/t10k-labels-idx1-ubyte", mean = 0.1307, std = 0.3081 })
    assert.same(values(i), values(m))
    assert.equal("mnist", m:info().name)
    for k = 0, 7 do assert.equal(byte_value(k * 30, 0.1307, 0.3081), values(m)[k + 1]) end
  end)
end)
