-- Helpers shared by the specs: temporary directories, whole-file reads and writes,
-- and running shell commands with their output captured.
local lfs = require("lfs")
local luassert = require("luassert")

local util = {}

-- A command prefix that starts Lua (util.LUA) or any command (util.ENV .. " cmd") with the
-- module path the specs have: the source tree's lunet, this build's lunet.core, spec/support/.
util.ENV = require("paths").env
util.LUA = require("paths").lua

function util.shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The whole file, or nil when it cannot be opened.
util.read = require("lunet.fs").read

function util.write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- $MNIST_DIR when MNIST is readable there, else nil (the spec then calls
-- pending(util.NO_MNIST): specs that need real data skip elsewhere, visibly).
util.NO_MNIST = "MNIST not found: set MNIST_DIR"
function util.mnist_dir()
  local dir = os.getenv("MNIST_DIR")
  if dir and require("lunet").mnist { dir = dir, split = "test", n = 1 } then return dir end
  return nil
end

-- A new empty directory under /tmp.
function util.temp_dir()
  local base = os.tmpname()
  os.remove(base)
  assert(lfs.mkdir(base))
  return base
end

-- Removes a file or a directory tree (symbolic links are removed, not followed).
function util.rm_rf(path)
  local mode = lfs.symlinkattributes(path, "mode")
  if mode == "directory" then
    for e in lfs.dir(path) do
      if e ~= "." and e ~= ".." then util.rm_rf(path .. "/" .. e) end
    end
    lfs.rmdir(path)
  elseif mode then
    os.remove(path)
  end
end

-- The entries of a directory, sorted, without "." and "..".
function util.list_dir(path) return assert(require("lunet.fs").list_dir(path)) end

-- The run records in the run store under `out` (out/store/<digest>/run-*.json, every
-- configuration's; only those of `iterations` iterations when given), as sorted paths;
-- none while there is no store yet.
function util.store_records(out, iterations)
  local list, store = {}, out .. "/store"
  if lfs.attributes(store, "mode") ~= "directory" then return list end
  local pattern = "^run%-%d+%-i" .. (iterations and ("%06d"):format(iterations) or "%d+") .. "%.json$"
  for _, digest in ipairs(util.list_dir(store)) do
    local dir = store .. "/" .. digest
    if lfs.attributes(dir, "mode") == "directory" then
      for _, name in ipairs(util.list_dir(dir)) do
        if name:match(pattern) then list[#list + 1] = dir .. "/" .. name end
      end
    end
  end
  return list
end

-- Runs a shell command with `input` on stdin; returns {ok =, code =, out =, err =}.
function util.run(cmd, input)
  local out, err, inp = os.tmpname(), os.tmpname(), os.tmpname()
  util.write(inp, input or "")
  local ok, how, code = os.execute(("(%s) <%s >%s 2>%s"):format(cmd, inp, out, err))
  local r = { ok = ok, code = how == "exit" and code or 128 + code, out = util.read(out) or "",
    err = util.read(err) or "" }
  os.remove(out)
  os.remove(err)
  os.remove(inp)
  return r
end

-- Runs the Lua chunk `code` in a new lua5.4 process (util.LUA -e); returns as util.run.
function util.run_lua(code, input)
  return util.run(util.LUA .. " -e " .. util.shell_quote(code), input)
end

-- Are two lists of numbers the same doubles, bit for bit?
function util.same_bits(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if string.pack("<d", a[i]) ~= string.pack("<d", b[i]) then return false end
  end
  return true
end

-- The error f(...) raises, as text; fails the test when f does not raise.
function util.err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

-- An IDX header: type code and dimensions (big-endian, as in the files).
function util.idx_header(type_code, dims)
  local h = string.pack(">BBBB", 0, 0, type_code, #dims)
  for _, d in ipairs(dims) do h = h .. string.pack(">I4", d) end
  return h
end

-- Writes dir/train-images-idx3-ubyte.gz and dir/train-labels-idx1-ubyte.gz (gzip -n): n
-- 28x28 images of pseudo-random bytes from `seed` (they barely compress, so the gzip
-- stream runs through the file in step with the images) and labels i % 10. change(i,
-- byte) -> byte, if given, alters pixel i (0-based over all images) before compressing.
-- Returns the two paths.
function util.write_idx_gz(dir, n, seed, change)
  local x, bytes = seed, {}
  for i = 0, n * 784 - 1 do
    x = (x * 1103515245 + 12345) % 2147483648
    local b = (x >> 16) % 256
    bytes[#bytes + 1] = string.char(change and change(i, b) or b)
  end
  local labels = {}
  for i = 0, n - 1 do labels[#labels + 1] = string.char(i % 10) end
  local images_path, labels_path = dir .. "/train-images-idx3-ubyte", dir .. "/train-labels-idx1-ubyte"
  util.write(images_path, util.idx_header(8, { n, 28, 28 }) .. table.concat(bytes))
  util.write(labels_path, util.idx_header(8, { n }) .. table.concat(labels))
  assert(os.execute(("gzip -nf %s %s"):format(util.shell_quote(images_path), util.shell_quote(labels_path))))
  return images_path .. ".gz", labels_path .. ".gz"
end

-- Flips the bits of the byte at `pos` (1-based) of a file.
function util.flip_byte(path, pos)
  local bytes = util.read(path)
  util.write(path, bytes:sub(1, pos - 1) .. string.char(bytes:byte(pos) ~ 0xff) .. bytes:sub(pos + 1))
end

-- Asserts that `text` holds every string of `pieces`, each as plain text (not a pattern).
function util.assert_contains(text, pieces)
  for _, piece in ipairs(pieces) do luassert.matches(piece, text, 1, true) end
end

-- A command's result as text, for assertion messages.
function util.explain(r) return ("exit %s\n--- stdout:\n%s\n--- stderr:\n%s"):format(r.code, r.out, r.err) end

return util
