--- digits.lua: helpers shared by the examples (not an example itself).
--   local digits = require("digits")   -- after adding the examples directory to package.path
--   digits.read_pgm(path) -> image | nil, message    (P5 binary or P2 text PGM, any size)
--   digits.to_tensor(image [, height, width]) -> 1 x H x W tensor, normalised like MNIST
--   digits.synthetic(n, seed) -> dataset of generated 28x28 digits 0-9 (no files needed)
--   digits.training_data{synthetic = bool, n = N, seed = S} -> train, test, description
local lunet = require("lunet")

local digits = {}

-- torchvision's MNIST normalisation, which lunet.mnist applies too: a net trained on
-- either source expects inputs scaled like this.
local MEAN, STD = 0.1307, 0.3081

-- ------------------------------------------------------------------ PGM files

--- Reads a PGM image (P5 binary or P2 text, 8 or 16 bits). Returns
-- {width =, height =, pixels = {row-major values in [0, 1]}} or nil, message.
function digits.read_pgm(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, "cannot open " .. tostring(err) end
  local data = f:read("a")
  f:close()
  local magic = data:sub(1, 2)
  if magic ~= "P5" and magic ~= "P2" then
    return nil, path .. ": not a PGM image (the file must start with P5 or P2)"
  end
  local pos, fields = 3, {}
  while #fields < 3 do
    local _, e = data:find("^%s+", pos)
    if e then pos = e + 1 end
    if data:sub(pos, pos) == "#" then
      pos = (data:find("\n", pos, true) or #data) + 1
    else
      local num = data:match("^%d+", pos)
      if not num then return nil, path .. ": malformed PGM header" end
      fields[#fields + 1] = tonumber(num)
      pos = pos + #num
    end
  end
  local w, h, maxval = fields[1], fields[2], fields[3]
  if w < 1 or h < 1 or w * h > 1 << 24 then
    return nil, ("%s: bad PGM size %dx%d"):format(path, w, h)
  end
  if maxval < 1 or maxval > 65535 then return nil, ("%s: bad PGM maxval %d"):format(path, maxval) end
  pos = pos + 1 -- the single whitespace after maxval
  local pixels = {}
  if magic == "P5" then
    local bytes = maxval < 256 and 1 or 2
    if #data - pos + 1 < w * h * bytes then
      return nil, ("%s: truncated PGM (%d of %d pixel bytes)"):format(path, math.max(0, #data - pos + 1), w * h * bytes)
    end
    local fmt = bytes == 1 and "B" or ">I2"
    for i = 1, w * h do
      local v = string.unpack(fmt, data, pos + (i - 1) * bytes)
      pixels[i] = v / maxval
    end
  else
    for num in data:sub(pos):gmatch("%d+") do
      pixels[#pixels + 1] = tonumber(num) / maxval
      if #pixels == w * h then break end
    end
    if #pixels < w * h then
      return nil, ("%s: truncated PGM (%d of %d pixels)"):format(path, #pixels, w * h)
    end
  end
  return { width = w, height = h, pixels = pixels }
end

--- A 1 x height x width tensor (28x28 by default) from an image: resized by averaging
-- boxes of pixels, inverted when the background is light (MNIST digits are light on
-- dark), normalised like MNIST.
function digits.to_tensor(img, height, width)
  height, width = height or 28, width or 28
  local w, h, p = img.width, img.height, img.pixels
  -- the border's mean tells a dark digit on white paper from MNIST's light on black
  local border, count = 0, 0
  for x = 1, w do
    border = border + p[x] + p[(h - 1) * w + x]
    count = count + 2
  end
  for y = 1, h do
    border = border + p[(y - 1) * w + 1] + p[(y - 1) * w + w]
    count = count + 2
  end
  local invert = border / count > 0.5
  local out = {}
  for oy = 0, height - 1 do
    local y0 = oy * h // height
    local y1 = math.max(y0 + 1, (oy + 1) * h // height)
    for ox = 0, width - 1 do
      local x0 = ox * w // width
      local x1 = math.max(x0 + 1, (ox + 1) * w // width)
      local sum = 0
      for y = y0, y1 - 1 do
        for x = x0, x1 - 1 do sum = sum + p[y * w + x + 1] end
      end
      local v = sum / ((y1 - y0) * (x1 - x0))
      if invert then v = 1 - v end
      out[#out + 1] = (v - MEAN) / STD
    end
  end
  return lunet.tensor(out, { 1, height, width })
end

-- ------------------------------------------------------- synthetic digits

-- A 3x5 pixel font: each digit is 5 rows of 3 columns.
digits.FONT = {
  [0] = { "###", "#.#", "#.#", "#.#", "###" },
  [1] = { ".#.", "##.", ".#.", ".#.", "###" },
  [2] = { "###", "..#", "###", "#..", "###" },
  [3] = { "###", "..#", "###", "..#", "###" },
  [4] = { "#.#", "#.#", "###", "..#", "..#" },
  [5] = { "###", "#..", "###", "..#", "###" },
  [6] = { "###", "#..", "###", "#.#", "###" },
  [7] = { "###", "..#", ".#.", ".#.", ".#." },
  [8] = { "###", "#.#", "###", "#.#", "###" },
  [9] = { "###", "#.#", "###", "..#", "###" },
}

--- The 28x28 pixels (values in [0, 1], row-major) of digit d drawn with the font at
-- 4x scale, shifted by (dx, dy) from the centre, with noise drawn from rand().
function digits.render(d, dx, dy, rand)
  local glyph = digits.FONT[d]
  local px = {}
  for y = 0, 27 do
    for x = 0, 27 do
      local gx, gy = (x - 8 - dx) // 4, (y - 4 - dy) // 4
      local on = gx >= 0 and gx < 3 and gy >= 0 and gy < 5 and glyph[gy + 1]:sub(gx + 1, gx + 1) == "#"
      px[#px + 1] = (on and 0.8 or 0) + (rand and rand() * 0.2 or 0)
    end
  end
  return px
end

--- n generated digits (labels cycle 0-9), each shifted by up to 2 pixels, with noise;
-- normalised like MNIST. A stand-in for MNIST when its files are not at hand.
function digits.synthetic(n, seed)
  local s = seed or 1
  local function rand()
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  end
  local data, labels = {}, {}
  for i = 1, n do
    local d = (i - 1) % 10
    labels[i] = d
    local dx, dy = math.floor(rand() * 5) - 2, math.floor(rand() * 5) - 2
    for _, v in ipairs(digits.render(d, dx, dy, rand)) do data[#data + 1] = (v - MEAN) / STD end
  end
  return lunet.dataset(lunet.tensor(data, { n, 1, 28, 28 }), labels, { name = "synthetic digits" })
end

--- Training and test data: MNIST's first n images (and 1000 test images) unless
-- opts.synthetic is set or MNIST is not found, else generated digits.
-- Returns train, test, and a description of the source.
function digits.training_data(opts)
  local n = opts.n or 3000
  if not opts.synthetic then
    local train, err = lunet.mnist { split = "train", n = n }
    if train then
      return train, assert(lunet.mnist { split = "test", n = 1000 }), "MNIST"
    end
    io.stderr:write(("note: %s\n      training on synthetic digits instead (--synthetic)\n"):format(err))
  end
  return digits.synthetic(n, opts.seed or 1), digits.synthetic(500, (opts.seed or 1) + 1000),
    "synthetic digits"
end

--- The directory of the running script (for files next to it), from arg[0].
function digits.script_dir()
  return (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
end

return digits
