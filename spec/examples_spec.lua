-- Runs every example in examples/ on small synthetic data (no MNIST needed) through the
-- `lunet` launcher, as a user would, and checks its output, its files and its errors
-- for bad input, so that no example rots. embed.c is built by `make examples`.
local lfs = require("lfs")
local lunet = require("lunet")
local util = require("util")
local shell_quote, read, write, temp_dir, rm_rf, run, explain =
  util.shell_quote, util.read, util.write, util.temp_dir, util.rm_rf, util.run, util.explain

local ROOT = lfs.currentdir()
local LUNET = ROOT .. "/bin/lunet"

-- Runs a shell command; returns {code =, out =, err =} (stdin from `input` or empty).

local function lunet_run(script, args, input)
  return run(("%s run %s %s"):format(shell_quote(LUNET), shell_quote(ROOT .. "/examples/" .. script), args or ""),
    input)
end

-- Runs an example that must stop with status 1 and say `message` (plain text) on stderr.
local function refused(script, args, message)
  local r = lunet_run(script, args)
  assert.equal(1, r.code, explain(r))
  assert.matches(message, r.err, 1, true)
  return r
end

-- The 3x5 font of the synthetic digits, drawn 4x: a PGM writer independent of the
-- examples' own code (examples/digits.lua), so the spec checks what users would give.
local FONT = {
  [3] = { "###", "..#", "###", "..#", "###" },
  [7] = { "###", "..#", ".#.", ".#.", ".#." },
  [0] = { "###", "#.#", "#.#", "#.#", "###" },
}

local function glyph_pixel(d, x, y) -- x, y in 28x28 space; true where the digit is
  local gx, gy = (x - 8) // 4, (y - 4) // 4
  return gx >= 0 and gx < 3 and gy >= 0 and gy < 5 and FONT[d][gy + 1]:sub(gx + 1, gx + 1) == "#"
end

-- Binary PGM, 28x28, light digit on black (as MNIST).
local function write_p5(path, d)
  local px = {}
  for y = 0, 27 do
    for x = 0, 27 do px[#px + 1] = string.char(glyph_pixel(d, x, y) and 230 or 10) end
  end
  write(path, "P5\n# a digit " .. d .. "\n28 28\n255\n" .. table.concat(px))
end

-- Text PGM, 56x56, dark digit on white paper: the example must resize and invert it.
local function write_p2(path, d)
  local rows = { "P2", "56 56", "255" }
  for y = 0, 55 do
    local row = {}
    for x = 0, 55 do row[#row + 1] = glyph_pixel(d, x // 2, y // 2) and "20" or "245" end
    rows[#rows + 1] = table.concat(row, " ")
  end
  write(path, table.concat(rows, "\n") .. "\n")
end

local tmp
setup(function() tmp = temp_dir() end)
teardown(function() if tmp then rm_rf(tmp) end end)

describe("examples/", function()
  it("has a usage comment at the top of every example, and a test here for each", function()
    local covered = { ["classify.lua"] = true, ["custom_net.lua"] = true, ["embed_app.lua"] = true,
      ["embed.c"] = true, ["sweep.lua"] = true, ["digits.lua"] = true, ["fashion.lua"] = true }
    local seen = 0
    for name in lfs.dir(ROOT .. "/examples") do
      if name:match("%.lua$") or name:match("%.c$") then
        seen = seen + 1
        assert.is_true(covered[name] ~= nil, "examples/" .. name .. " has no test in spec/examples_spec.lua")
        local head = (read(ROOT .. "/examples/" .. name) or ""):sub(1, 1200)
        assert.is_truthy(head:match("usage:") or name == "digits.lua",
          "examples/" .. name .. " lacks a usage comment at the top")
      end
    end
    assert.equal(7, seen)
  end)
end)

describe("examples/classify.lua", function()
  local r, model
  setup(function()
    write_p5(tmp .. "/three.pgm", 3)
    write_p2(tmp .. "/seven.pgm", 7)
    model = tmp .. "/models/classify.lnet" -- the example creates the directory
    r = lunet_run("classify.lua", ("--synthetic --n 2000 --epochs 3 --model %s %s %s"):format(
      shell_quote(model), shell_quote(tmp .. "/three.pgm"), shell_quote(tmp .. "/seven.pgm")))
  end)

  it("trains on synthetic digits, saves the model and classifies the images", function()
    assert.equal(0, r.code, explain(r))
    assert.matches("training the study's CNN on 2000 synthetic digits images, 3 epochs", r.out, 1, true)
    assert.matches("training history: 3 epochs", r.out, 1, true)
    assert.matches("evaluation: loss", r.out, 1, true)
    assert.matches("saved " .. model, r.out, 1, true)
    local d3, c3 = r.out:match("three%.pgm: digit (%d) %(confidence ([%d.]+)%%%)")
    local d7, c7 = r.out:match("seven%.pgm: digit (%d) %(confidence ([%d.]+)%%%)")
    assert.equal("3", d3, explain(r))
    assert.equal("7", d7, explain(r)) -- from a 56x56 text PGM, dark on light
    assert.is_true(tonumber(c3) > 50 and tonumber(c3) <= 100, c3)
    assert.is_true(tonumber(c7) > 50 and tonumber(c7) <= 100, c7)
  end)

  it("leaves a model that lunet.load reads", function()
    local net = assert(lunet.load(model))
    assert.same({ 1, 28, 28 }, net:input_shape())
    net:free()
  end)

  it("stops with a message and status 1 on a missing image, before training", function()
    local bad = lunet_run("classify.lua", "--synthetic " .. shell_quote(tmp .. "/three.pgm") .. " "
      .. shell_quote(tmp .. "/missing.pgm"))
    assert.equal(1, bad.code, explain(bad))
    assert.matches("classify: cannot open .*missing%.pgm", bad.err)
    assert.not_matches("training", bad.out)
  end)

  it("rejects a file that is not a PGM, no images, and unknown options", function()
    write(tmp .. "/note.txt", "hello\n")
    refused("classify.lua", "--synthetic " .. shell_quote(tmp .. "/note.txt"), "not a PGM image")
    write(tmp .. "/short.pgm", "P5\n28 28\n255\nabc")
    refused("classify.lua", "--synthetic " .. shell_quote(tmp .. "/short.pgm"), "truncated PGM")
    local bad = refused("classify.lua", "--synthetic", "no images given")
    assert.matches("usage:", bad.err, 1, true)
    refused("classify.lua", "--epochs zero x.pgm", "--epochs needs a positive integer")
    refused("classify.lua", "--colour x.pgm", "unknown option '--colour'")
  end)

  it("trains on MNIST when it is found", function()
    if not util.mnist_dir() then return pending(util.NO_MNIST) end
    local m = lunet_run("classify.lua", ("--n 500 --epochs 1 --model %s %s"):format(
      shell_quote(tmp .. "/mnist.lnet"), shell_quote(tmp .. "/three.pgm")))
    assert.equal(0, m.code, explain(m))
    assert.matches("on 500 MNIST images", m.out, 1, true)
    assert.matches("three%.pgm: digit %d %(confidence [%d.]+%%%)", m.out)
  end)
end)

describe("examples/embed_app.lua", function()
  local model
  setup(function()
    -- a small model, made here so that this test does not depend on classify's
    local digits = dofile(ROOT .. "/examples/digits.lua")
    local net = lunet.sequential { lunet.flatten(), lunet.linear(784, 10), lunet.log_softmax(), seed = 1 }
    net:train { data = digits.synthetic(500, 5), optimizer = lunet.sgd { lr = 0.05, momentum = 0.9 },
      iterations = 4, quiet = true }
    model = tmp .. "/embed.lnet"
    assert(net:save(model))
    write_p5(tmp .. "/zero.pgm", 0)
    write_p5(tmp .. "/three.pgm", 3)
    write_p2(tmp .. "/seven.pgm", 7)
  end)

  it("loads the model once and answers one line per request", function()
    local requests = table.concat({ tmp .. "/three.pgm", "", tmp .. "/seven.pgm", "  " .. tmp .. "/zero.pgm  " },
      "\n") .. "\n"
    local r = lunet_run("embed_app.lua", shell_quote(model), requests)
    assert.equal(0, r.code, explain(r))
    local lines = {}
    for line in r.out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(3, #lines, explain(r)) -- the empty line is not a request
    local expect = { "3", "7", "0" }
    for k, line in ipairs(lines) do
      local path, digit, conf = line:match("^([^\t]+)\t(%d)\t([%d.]+)$")
      assert.is_truthy(path, line)
      assert.equal(expect[k], digit, line)
      assert.is_true(tonumber(conf) > 0.3 and tonumber(conf) <= 1, line)
    end
    assert.matches("answered 3 requests, 0 failed", r.err, 1, true)
  end)

  it("answers a bad request with an error line and goes on (status 1 at the end)", function()
    write(tmp .. "/bad.pgm", "P6\n1 1\n255\n\0\0\0")
    local requests = table.concat({ tmp .. "/nope.pgm", tmp .. "/bad.pgm", tmp .. "/three.pgm" }, "\n")
    local r = lunet_run("embed_app.lua", shell_quote(model), requests)
    assert.equal(1, r.code, explain(r))
    local lines = {}
    for line in r.out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(3, #lines, explain(r))
    assert.matches("nope%.pgm\terror\tcannot open .*No such file", lines[1])
    assert.matches("bad%.pgm\terror\t.*not a PGM image", lines[2])
    assert.matches("three%.pgm\t3\t", lines[3])
    assert.matches("answered 3 requests, 2 failed", r.err, 1, true)
  end)

  it("stops with a message and status 1 when the model is missing or not given", function()
    local r = lunet_run("embed_app.lua", shell_quote(tmp .. "/none.lnet"), "x\n")
    assert.equal(1, r.code)
    assert.matches("embed_app: .*none%.lnet", r.err)
    assert.equal("", r.out)
    refused("embed_app.lua", "", "usage:")
  end)
end)

describe("examples/custom_net.lua", function()
  it("trains a batchnorm net with Adam, evaluates it, and saves and reloads it", function()
    local r = lunet_run("custom_net.lua", "--synthetic --n 300 --epochs 1 --save " .. shell_quote(tmp .. "/custom.lnet"))
    assert.equal(0, r.code, explain(r))
    assert.matches("batchnorm2d", r.out, 1, true)
    assert.matches("batchnorm1d", r.out, 1, true)
    assert.matches("with adam{lr=0.001", r.out, 1, true)
    assert.matches("training history: 1 epoch", r.out, 1, true)
    assert.matches("test:  loss [%d.]+, accuracy [%d.]+%%", r.out)
    assert.matches("running mean of channel", r.out, 1, true)
    assert.matches("loaded it back: same test loss", r.out, 1, true)
    assert.equal("file", lfs.attributes(tmp .. "/custom.lnet", "mode"))
  end)

  it("rejects bad arguments with status 1", function()
    refused("custom_net.lua", "--lr -1", "--lr needs a positive number")
    refused("custom_net.lua", "extra", "unknown argument 'extra'")
  end)
end)

describe("examples/sweep.lua", function()
  it("runs an lr x momentum grid and draws its heatmap", function()
    local out = tmp .. "/sweep"
    local r = lunet_run("sweep.lua", "--synthetic --lr 0.01,0.1 --momentum 0,0.9 --runs 2 --iterations 1 --n 128 "
      .. "--threads 2 --out " .. shell_quote(out))
    assert.equal(0, r.code, explain(r))
    assert.matches("sweep sweep_example: 4 cells over lr x momentum", r.out, 1, true)
    local cells = 0
    for _ in r.out:gmatch("lr=[%d.e-]+ momentum=[%d.]+%s+final [%d.]+ %+%- [%d.]+") do cells = cells + 1 end
    assert.equal(4, cells, explain(r))
    assert.matches("lowest final mean loss [%d.]+ at lr [%d.e-]+, momentum [%d.]+", r.out)
    local csv = assert(read(out .. "/sweep.csv"))
    assert.equal(5, select(2, csv:gsub("\n", "")))
    assert.matches("^lr,momentum,final_mean", csv)
    if require("lunet.plot").available() then
      assert.matches("sweep_example: final mean", r.out, 1, true) -- the terminal heatmap
      assert.equal("\137PNG\r\n\26\n", (read(out .. "/sweep.png") or ""):sub(1, 8))
    else
      assert.matches("no heatmap: gnuplot not found", r.err, 1, true)
    end
    -- again: every run comes from the cache
    local again = lunet_run("sweep.lua", "--synthetic --lr 0.01,0.1 --momentum 0,0.9 --runs 2 --iterations 1 "
      .. "--n 128 --out " .. shell_quote(out))
    assert.equal(0, again.code, explain(again))
    assert.equal(r.out:match("(sweep sweep_example.-)\n%s*\n"), again.out:match("(sweep sweep_example.-)\n%s*\n"))
  end)

  it("rejects a bad list with status 1", function()
    refused("sweep.lua", "--lr 0.1,fast",
      "--lr needs a comma-separated list of positive numbers, got '0.1,fast'")
  end)
end)

describe("examples/fashion.lua", function()
  local have = lunet.fashion_mnist { split = "test", n = 1 }
  it("runs Figures 2 and 3 on Fashion-MNIST with validation curves", function()
    if not have then return pending("Fashion-MNIST not installed (Debian dataset-fashion-mnist): skipped") end
    local out = tmp .. "/fashion"
    local r = lunet_run("fashion.lua", "--runs 2 --epochs 2 --n 128 --val 64 --threads 2 --out " .. shell_quote(out))
    assert.equal(0, r.code, explain(r))
    assert.matches("dataset fashion-mnist/train: 128 samples", r.out, 1, true)
    assert.matches("lunet result \"figure2\"", r.out, 1, true)
    assert.matches("lunet result \"figure3\"", r.out, 1, true)
    assert.matches("valid.:  loss [%d.]+, accuracy [%d.]+%% %(epoch 2, 2 runs%)", r.out)
    assert.matches("Figure 3: epoch 2: training loss [%d.]+, validation loss [%d.]+", r.out)
    local saved = assert(lunet.load_result(out .. "/figure2.json"))
    assert.equal(2, #saved.val_mean)
    assert.equal("fashion-mnist", saved.config.data.name)
    assert.equal("fashion-mnist", saved.config.validate.name)
    if require("lunet.plot").available() then
      assert.equal("\137PNG\r\n\26\n", (read(out .. "/fashion.png") or ""):sub(1, 8))
    end
  end)

  it("rejects a bad argument with status 1", function()
    refused("fashion.lua", "--epochs zero", "--epochs needs a positive integer")
    refused("fashion.lua", "--dir " .. shell_quote(tmp .. "/nowhere"),
      "(the Fashion-MNIST train files are not in " .. tmp .. "/nowhere)")
  end)
end)

describe("examples/embed.c", function()
  -- the variant `make test` built (build/release, or build/sanitize with SANITIZE=1)
  local build = (os.getenv("LUNET_C_TESTS") or "build/release/spec"):gsub("/spec$", "")
  local exe = build .. "/examples/embed"

  it("is built by `make examples`", function()
    local sanitize = build:match("sanitize$") and " SANITIZE=1" or ""
    local r = run("make -s examples" .. sanitize)
    assert.equal(0, r.code, explain(r))
    assert.equal("file", lfs.attributes(exe, "mode"), exe .. " missing")
  end)

  it("builds, trains, saves, reloads and predicts through the C API alone", function()
    local model = tmp .. "/embed_c.lnet"
    local r = run(shell_quote(ROOT .. "/" .. exe) .. " " .. shell_quote(model))
    assert.equal(0, r.code, explain(r))
    assert.matches("^lunet %d+%.%d+%.%d+ %(engine revision %d+%)", r.out)
    local losses = {}
    for l in r.out:gmatch("epoch %d+: loss ([%d.]+)") do losses[#losses + 1] = tonumber(l) end
    assert.equal(5, #losses)
    assert.is_true(losses[5] < losses[1], explain(r))
    assert.matches("saved and loaded " .. model, r.out, 1, true)
    local predicted = 0
    for label, pred in r.out:gmatch("label (%d), predicted (%d)") do
      assert.equal(label, pred)
      predicted = predicted + 1
    end
    assert.equal(4, predicted)
    assert.equal("file", lfs.attributes(model, "mode"))
    -- the file it wrote is a model Lua reads too
    local net = assert(lunet.load(model))
    assert.same({ 1, 8, 8 }, net:input_shape())
  end)

  it("prints the engine's message and exits 1 when a step fails", function()
    local r = run(shell_quote(ROOT .. "/" .. exe) .. " " .. shell_quote(tmp .. "/no/such/dir/m.lnet"))
    assert.equal(1, r.code, explain(r))
    assert.matches("embed: saving: .*no/such/dir/m%.lnet", r.err)
    r = run(shell_quote(ROOT .. "/" .. exe) .. " a b")
    assert.equal(1, r.code)
    assert.matches("usage:", r.err, 1, true)
  end)
end)
