-- A script in two stages for the `bin/lunet sweep` specs: the second experiment's
-- learning rate depends on the first one's numbers, so it can be planned only once the
-- first one's runs are stored. usage: lunet run spec/support/staged_sweep.lua [OUT]
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local lunet = require("lunet")
local data = require("synthetic")(64, 4, 1)
local out = arg[1] or "out"
local base = { model = lunet.models.mnist_cnn, data = data, batch = 16, iterations = 2, runs = 2, seed = 5,
  threads = 1, quiet = true, out = out }
local function with(t) -- t (a fresh table) completed with the base options it does not set
  for k, v in pairs(base) do
    if t[k] == nil then t[k] = v end
  end
  return t
end
local first = lunet.experiment(with { name = "first", optimizer = { "sgd", lr = 0.01 } })
local lr = first:final() > 1 and 0.05 or 0.02 -- stage 2 needs stage 1's numbers
local second = lunet.experiment(with { name = "second", optimizer = { "sgd", lr = lr } })
print(first)
print(second)
assert(second:save(out .. "/second"))
