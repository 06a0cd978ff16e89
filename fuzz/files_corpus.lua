-- fuzz/files_corpus.lua DIR - writes the seed corpus of fuzz/fuzz_files.c into DIR: a
-- checkpoint of the harness's net (flatten, linear 4->3, log_softmax on 1x2x2 inputs) with
-- SGD momentum and with Adam, a CSV file and a CIFAR-10 batch of two records.
-- Run by `sh fuzz/run.sh --corpus` (through bin/lunet; needs the built module: make).
local lunet = require("lunet")
local dir = assert(arg[1], "usage: bin/lunet run fuzz/files_corpus.lua DIR")

local function write(name, bytes)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(bytes)
  f:close()
end

local data = lunet.dataset(lunet.tensor({ 0, 0.25, 0.5, 0.75, 1, 0, 0.25, 0.5, 0.75, 1, 0, 0.25, 0.5, 0.75, 1, 0 },
  { 4, 1, 2, 2 }), { 0, 1, 2, 1 })
for _, o in ipairs({ { "sgd", lunet.sgd { lr = 0.1, momentum = 0.9 } }, { "adam", lunet.adam {} } }) do
  local net = lunet.sequential { lunet.flatten(), lunet.linear(4, 3), lunet.log_softmax(), input = { 1, 2, 2 } }
  net:train { data = data, optimizer = o[2], batch = 3, iterations = 2, quiet = true,
    checkpoint = { path = dir .. "/checkpoint_" .. o[1] } }
end
write("data.csv", "label,a,b,c,d\n1,0,255,3,4\n0,5,6,7,8\n2,9,10,11,12\n")
write("floats.csv", "h\n0.5,-1.25,2,3,4\r\n7,0.25,1e3,-2,0\r\n")
local records = {}
for r = 0, 1 do
  local px = {}
  for i = 0, 3071 do px[#px + 1] = string.char((i * 7 + r) % 256) end
  records[#records + 1] = string.char(r + 3) .. table.concat(px)
end
write("cifar.bin", table.concat(records))
