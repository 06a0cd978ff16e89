--- embed_app.lua: lunet inside an application. The model is loaded once; then each
-- line read from standard input is a request (the path of a PGM image) and gets one
-- answer line on standard output, flushed at once, so another program can drive it
-- through a pipe.
--
-- usage: lunet run examples/embed_app.lua MODEL < requests
--   MODEL     a model saved by net:save (e.g. by examples/classify.lua)
--   requests  one PGM path per line; empty lines are skipped
-- answers:  PATH<TAB>DIGIT<TAB>CONFIDENCE     (confidence in [0, 1])
--           PATH<TAB>error<TAB>MESSAGE        (the app goes on with the next request)
-- Exit status: 0 when every request was answered, 1 if some failed or the model
-- cannot be loaded (a message on standard error).
--
--   printf 'a.pgm\nb.pgm\n' | lunet run examples/embed_app.lua out/classify.lnet
local lunet = require("lunet")
package.path = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local digits = require("digits")

local model_path = arg[1]
local USAGE = "usage: lunet run examples/embed_app.lua MODEL < requests"
if model_path == "-h" or model_path == "--help" then
  print(USAGE)
  os.exit(0)
elseif model_path == nil or arg[2] ~= nil then
  io.stderr:write(USAGE, "\n")
  os.exit(1)
end

-- Load once: this is the expensive part an app must not repeat per request.
local net, err = lunet.load(model_path)
if not net then
  io.stderr:write("embed_app: ", err, "\n")
  os.exit(1)
end
local shape = net:input_shape()
if shape[1] ~= 1 or #shape ~= 3 then
  io.stderr:write(("embed_app: %s expects %s inputs; this app handles grey images (1xHxW)\n")
    :format(model_path, table.concat(shape, "x")))
  os.exit(1)
end

-- One request -> class, confidence; errors are values, so one bad request cannot
-- stop the app.
local function answer(path)
  local img, rerr = digits.read_pgm(path)
  if not img then return nil, rerr end
  local ok, class, logp = pcall(net.predict, net, digits.to_tensor(img, shape[2], shape[3]))
  if not ok then return nil, tostring(class) end
  return class, math.exp(logp[class + 1])
end

io.stdout:setvbuf("line")
local served, failed = 0, 0
for line in io.lines() do
  local path = line:match("^%s*(.-)%s*$")
  if path ~= "" then
    served = served + 1
    local class, conf = answer(path)
    if class then
      io.stdout:write(("%s\t%d\t%.4f\n"):format(path, class, conf))
    else
      failed = failed + 1
      io.stdout:write(("%s\terror\t%s\n"):format(path, (conf:gsub("[\t\n]", " "))))
    end
  end
end
net:free()
io.stderr:write(("embed_app: answered %d requests, %d failed\n"):format(served, failed))
os.exit(failed == 0 and 0 or 1)
