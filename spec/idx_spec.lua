-- The IDX reader and MNIST loading, on files the spec writes itself.
local lunet = require("lunet")
local lfs = require("lfs")
local util = require("util")
local remove_tree = util.rm_rf

local dir = os.tmpname()
os.remove(dir)
assert(lfs.mkdir(dir))

local function write(name, bytes)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

local header = require("util").idx_header

local function images(n, h, w, fn)
  local bytes = {}
  for i = 0, n * h * w - 1 do bytes[#bytes + 1] = string.char(fn(i) % 256) end
  return header(8, { n, h, w }) .. table.concat(bytes)
end

local function labels(list)
  local b = {}
  for _, l in ipairs(list) do b[#b + 1] = string.char(l) end
  return header(8, { #list }) .. table.concat(b)
end

describe("IDX", function()
teardown(function() remove_tree(dir) end)

describe("IDX reader", function()

  it("reads a valid raw file", function()
    local path = write("ok.idx", images(2, 2, 3, function(i) return i * 10 end))
    local t = assert(lunet.idx_read(path))
    assert.equal(8, t.type)
    assert.same({ 2, 2, 3 }, t.dims)
    assert.equal(12, t.count)
    assert.same({ 0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110 }, t.data)
  end)

  it("reads the same file gzipped", function()
    local path = write("gz.idx", images(2, 2, 3, function(i) return i * 10 end))
    assert(os.execute("gzip -f " .. path))
    local t = assert(lunet.idx_read(path .. ".gz"))
    assert.same({ 2, 2, 3 }, t.dims)
    assert.equal(110, t.data[12])
  end)

  local bad = {
    { "wrong magic", "\1\0\8\1" .. string.pack(">I4", 1) .. "x", "magic" },
    { "bad type code", header(7, { 1 }) .. "x", "type" },
    { "truncated data", header(8, { 10 }) .. "abc", "truncated" },
    { "dimension overflow", header(8, { 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF }), "overflow" },
    { "empty file", "", "" },
    { "zero items", header(8, { 0 }), "no items" },
    { "trailing bytes", header(8, { 1 }) .. "ab", "trailing" },
  }
  for _, case in ipairs(bad) do
    it("rejects: " .. case[1], function()
      local path = write(case[1]:gsub(" ", "_") .. ".idx", case[2])
      local t, err = lunet.idx_read(path)
      assert.is_nil(t)
      assert.is_string(err)
      assert.matches(path, err, 1, true) -- names the file
      assert.matches(case[3], err, 1, true)
    end)
  end

  it("a missing file returns nil and a message naming it", function()
    local t, err = lunet.idx_read(dir .. "/nope.idx")
    assert.is_nil(t)
    assert.matches("nope.idx", err, 1, true)
  end)
end)

describe("datasets from IDX files", function()
  local sub = dir .. "/mn"
  lfs.mkdir(sub)
  write("mn/train-images-idx3-ubyte", images(6, 28, 28, function(i) return i end))
  write("mn/train-labels-idx1-ubyte", labels({ 3, 1, 4, 1, 5, 9 }))

  it("loads, normalises like torchvision and keeps labels", function()
    local ds = assert(lunet.mnist { dir = sub })
    assert.equal(6, #ds)
    assert.same({ 1, 28, 28 }, ds:shape())
    assert.equal(10, ds:classes())
    assert.equal(9, ds:label(6))
    local img = ds:image(1)
    assert.near((0 / 255 - 0.1307) / 0.3081, img[1], 1e-6)
    assert.near((5 / 255 - 0.1307) / 0.3081, img[6], 1e-6)
    local first = assert(lunet.mnist { dir = sub, n = 4 })
    assert.equal(4, #first)
    assert.matches("4 samples", tostring(first))
  end)

  it("a gzipped file read for its first n items keeps those and still checks the rest", function()
    local gz = dir .. "/gz"
    lfs.mkdir(gz)
    local imgs = images(6, 28, 28, function(i) return i * 7 end)
    write("gz/train-images-idx3-ubyte", imgs)
    write("gz/train-labels-idx1-ubyte", labels({ 3, 1, 4, 1, 5, 9 }))
    assert(os.execute("gzip -f " .. gz .. "/train-images-idx3-ubyte " .. gz .. "/train-labels-idx1-ubyte"))
    local all = assert(lunet.mnist { dir = gz })
    local first = assert(lunet.mnist { dir = gz, n = 2 })
    assert.equal(2, #first)
    assert.equal(1, first:label(2))
    assert.same(all:image(2):totable(), first:image(2):totable())
    -- a file cut short after the kept items is still reported
    write("gz/train-images-idx3-ubyte", imgs:sub(1, #imgs - 100))
    assert(os.execute("gzip -f " .. gz .. "/train-images-idx3-ubyte"))
    local ds, err = lunet.mnist { dir = gz, n = 2 }
    assert.is_nil(ds)
    assert.matches("truncated", err, 1, true)
  end)

  it("with check \"kept\" (sweep tasks) stops decoding after the kept items, yet reports a cut file", function()
    local core = require("lunet.core")
    local kd = dir .. "/kept"
    lfs.mkdir(kd)
    -- 200 images of random bytes: 157 KB, gzip barely shrinks them, so the stream's end
    -- lies far past the first decoded block of the kept 8 images
    local images_gz, labels_gz = util.write_idx_gz(kd, 200, 11)
    local whole = assert(core.dataset_idx(images_gz, labels_gz, 8, {}))
    local kept = assert(core.dataset_idx(images_gz, labels_gz, 8, {}, "kept"))
    assert.are.equal(whole:checksum(), kept:checksum())
    assert.are.same(whole:image(8):totable(), kept:image(8):totable())
    -- damage near the end of the stream (the trailer intact): a whole read finds it, a
    -- read of the first 8 items never decodes it
    local size = lfs.attributes(images_gz, "size")
    util.flip_byte(images_gz, size - 2000)
    local ds, err = core.dataset_idx(images_gz, labels_gz, 8, {})
    assert.is_nil(ds)
    assert.matches("corrupt gzip data", err, 1, true)
    kept = assert(core.dataset_idx(images_gz, labels_gz, 8, {}, "kept"))
    assert.are.equal(whole:checksum(), kept:checksum())
    -- a cut file: its last 4 bytes are not the trailer's size, so it is decoded whole
    util.write(images_gz, util.read(images_gz):sub(1, size - 3000))
    ds, err = core.dataset_idx(images_gz, labels_gz, 8, {}, "kept")
    assert.is_nil(ds)
    assert.matches("truncated", err, 1, true)
    assert.matches("bad argument #5 to 'lunet.core.dataset_idx' (check must be \"whole\" or \"kept\", got \"some\")",
      util.err_of(core.dataset_idx, images_gz, labels_gz, 8, {}, "some"), 1, true)
  end)

  it("keeps the file's bytes, yet reads, checksums and trains exactly like the same samples as floats", function()
    local ds = assert(lunet.mnist { dir = sub })
    local values, labs = {}, {}
    for i = 1, #ds do
      for _, x in ipairs(ds:image(i):totable()) do values[#values + 1] = x end
      labs[i] = ds:label(i)
    end
    local floats = lunet.dataset(lunet.tensor(values, { #ds, 1, 28, 28 }), labs)
    assert.equal(floats:checksum(), ds:checksum())
    assert.equal(floats:subset { n = 3, mode = "random", seed = 2 }:checksum(),
      ds:subset { n = 3, mode = "random", seed = 2 }:checksum())
    local function losses(data)
      local net = lunet.sequential { lunet.conv2d(1, 2, 5), lunet.maxpool2d(4), lunet.relu(), lunet.flatten(),
        lunet.linear(72, 10), lunet.log_softmax(), input = { 1, 28, 28 }, seed = 3 }
      local h = net:train { data = data, loss = "nll", optimizer = lunet.sgd { lr = 0.1, momentum = 0.5 },
        batch = 4, iterations = 3, seed = 5, quiet = true }
      local ev = net:evaluate(data)
      return { h.loss[1], h.loss[2], h.loss[3], ev.loss, ev.accuracy }
    end
    local a, b = losses(ds), losses(floats)
    assert.same(b, a) -- bit for bit: the byte table holds the float storage's values
    assert.is_true(a[1] ~= a[3])
  end)

  it("subsets: first n, random with a seed, stratified", function()
    local ds = assert(lunet.mnist { dir = sub })
    local a = ds:subset { n = 3, mode = "random", seed = 7 }
    local b = ds:subset { n = 3, mode = "random", seed = 7 }
    assert.equal(3, #a)
    for i = 1, 3 do assert.equal(a:label(i), b:label(i)) end
    assert.equal(4, ds:subset { n = 3 }:label(3))
    local s = ds:subset { n = 2, mode = "random", seed = 1, stratified = true }
    assert.equal(2, #s)
    assert.has_error(function() ds:subset { n = 7 } end)
    assert.has_error(function() ds:subset { n = 2, mode = "sorted" } end)
  end)

  it("image and label counts must agree", function()
    write("mn/t10k-images-idx3-ubyte", images(3, 28, 28, function(i) return i end))
    write("mn/t10k-labels-idx1-ubyte", labels({ 1, 2 }))
    local ds, err = lunet.mnist { dir = sub, split = "test" }
    assert.is_nil(ds)
    assert.matches("3", err)
    assert.matches("2", err)
  end)

  it("a missing directory returns nil and says how to get the data", function()
    local ds, err = lunet.mnist { dir = dir .. "/none" }
    assert.is_nil(ds)
    assert.matches("make mnist", err, 1, true)
  end)
end)
end)
