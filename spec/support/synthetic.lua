-- A small learnable dataset that needs no files: class c lights up a bright
-- 7x7 square at a position determined by c, plus noise.
local lunet = require("lunet")
-- lcg.lua beside this file: child processes dofile() this one without spec/support on
-- their module path
local lcg = dofile((debug.getinfo(1, "S").source:match("^@(.*)/") or ".") .. "/lcg.lua")

return function(n, classes, seed)
  classes = classes or 4
  local rand = lcg(seed or 1)
  local data, labels = {}, {}
  for i = 1, n do
    local c = (i - 1) % classes
    labels[i] = c
    local oy, ox = 3 + 14 * (c // 2 % 2), 3 + 14 * (c % 2)
    for y = 0, 27 do
      for x = 0, 27 do
        local v = rand() * 0.3
        if y >= oy and y < oy + 7 and x >= ox and x < ox + 7 then v = v + 1 end
        data[#data + 1] = v
      end
    end
  end
  return lunet.dataset(lunet.tensor(data, { n, 1, 28, 28 }), labels, { name = "synthetic" })
end
