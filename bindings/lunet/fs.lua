--- lunet.fs: the file-system chores of the Lua side, through LuaFileSystem:
-- creating directories and writing files atomically, so that results already
-- computed are never left half-written.
local lfs = require("lfs")

local fs = {}

--- Creates `dir` and its missing parents (like mkdir -p). Returns true or nil, message.
function fs.mkdir_p(dir)
  if dir == "" or dir == "." or dir == "/" then return true end
  local mode = lfs.attributes(dir, "mode")
  if mode == "directory" then return true end
  if mode then return nil, dir .. ": exists and is not a directory" end
  local parent = dir:match("^(.*)/[^/]+/?$")
  if parent and parent ~= "" then
    local ok, err = fs.mkdir_p(parent)
    if not ok then return nil, err end
  end
  local ok, err = lfs.mkdir(dir)
  -- another process may have created it between the check and mkdir
  if not ok and lfs.attributes(dir, "mode") ~= "directory" then
    return nil, dir .. ": " .. tostring(err)
  end
  return true
end

--- Whether `path` is a directory.
function fs.is_dir(path) return lfs.attributes(path, "mode") == "directory" end

--- The names in directory `dir`, sorted, without "." and "..", or nil, message when
-- `dir` is not a directory.
function fs.list_dir(dir)
  if not fs.is_dir(dir) then return nil, dir .. ": not a directory" end
  local names = {}
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

--- The whole content of a file, or nil when it cannot be opened.
function fs.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- The directory part of a path ("." when there is none).
function fs.parent_dir(path) return path:match("^(.*)/[^/]*$") or "." end

local counter = 0
--- A suffix that keeps concurrent writers (threads of a program, or several processes
-- saving into one directory) from sharing a temporary file. It does not touch
-- math.random, whose state belongs to the user.
function fs.temp_suffix()
  counter = counter + 1
  local address = tostring({}):match("0x(%x+)") or "0"
  return ("%x-%x-%s-%x"):format(os.time(), math.floor(os.clock() * 1e6), address, counter)
end

--- Writes `content` to `path` atomically: a reader sees the old file or the complete
-- new one, never a partial write. Creates parent directories. true or nil, message.
function fs.write_atomic(path, content)
  local ok, err = fs.mkdir_p(fs.parent_dir(path))
  if not ok then return nil, err end
  local tmp = path .. ".tmp-" .. fs.temp_suffix()
  local f, ferr = io.open(tmp, "wb")
  if not f then return nil, ferr end
  local wok, werr = f:write(content)
  local cok, cerr = f:close()
  if not wok or not cok then
    os.remove(tmp)
    return nil, tmp .. ": " .. tostring(werr or cerr)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    return nil, rerr
  end
  return true
end

return fs
