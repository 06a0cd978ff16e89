-- lunet.cli: the command-line options of scripts and examples. Values and messages
-- through cli.check; --help, the exit status and stderr through a real lua5.4 child.
local cli = require("lunet.cli")
local util = require("util")

local SPEC = {
  program = "demo", usage = "usage: demo [--runs N] [--lr LIST] [--out DIR] FILE...", rest = "files",
  options = {
    runs = { "int", 3, min = 1 }, seed = { "int", 1, min = 0 }, offset = { "int", -2 },
    lr = { "numbers", { 0.01 }, positive = true }, momentum = { "number", 0.9, min = 0 },
    out = { "string", "out/demo", what = "a directory" }, synthetic = { "flag" },
    sweep_runs = { "int", 2, min = 1, max = 10 },
  },
}

local function check(...) return cli.check({ ... }, SPEC) end

describe("lunet.cli", function()
  it("gives the defaults, each table a copy of its own", function()
    local a = check()
    assert.same({ runs = 3, seed = 1, offset = -2, lr = { 0.01 }, momentum = 0.9, out = "out/demo",
      synthetic = false, sweep_runs = 2, files = {} }, a)
    a.lr[1] = 5
    assert.are.equal(0.01, check().lr[1])
  end)

  it("reads --name value, --name=value, flags, dashed names and the other arguments", function()
    local o, given = check("--runs", "5", "--lr=0.1,0.02", "a.pgm", "--synthetic", "--sweep-runs", "4",
      "--seed", "0", "--offset", "-7", "b.pgm")
    assert.same({ runs = 5, seed = 0, offset = -7, lr = { 0.1, 0.02 }, momentum = 0.9, out = "out/demo",
      synthetic = true, sweep_runs = 4, files = { "a.pgm", "b.pgm" } }, o)
    assert.same({ runs = true, lr = true, synthetic = true, sweep_runs = true, seed = true, offset = true }, given)
    assert.are.equal("integer", math.type(o.runs))
  end)

  it("names the option and what it needs", function()
    local cases = {
      { { "--runs", "0" }, "--runs needs a positive integer, got '0'" },
      { { "--runs", "2.5" }, "--runs needs a positive integer, got '2.5'" },
      { { "--runs" }, "--runs needs a positive integer" },
      { { "--seed", "x" }, "--seed needs a non-negative integer, got 'x'" },
      { { "--offset", "nan" }, "--offset needs an integer, got 'nan'" },
      { { "--sweep-runs", "11" }, "--sweep-runs needs a positive integer <= 10, got '11'" },
      { { "--lr", "0.1,-1" }, "--lr needs a comma-separated list of positive numbers, got '0.1,-1'" },
      { { "--lr", "," }, "--lr needs a comma-separated list of positive numbers, got ','" },
      { { "--momentum", "-0.5" }, "--momentum needs a non-negative number, got '-0.5'" },
      { { "--out" }, "--out needs a directory" },
      { { "--out=" }, "--out needs a directory, got ''" },
      { { "--colour", "red" }, "unknown option '--colour'" },
      { { "--synthetic=yes" }, "--synthetic takes no value" },
      { { "-x" }, "unknown argument '-x'" },
    }
    for _, c in ipairs(cases) do
      local o, err = cli.check(c[1], SPEC)
      assert.is_nil(o, table.concat(c[1], " "))
      assert.are.equal(c[2], err)
    end
    local no_rest = { options = { runs = { "int", 1 } } }
    assert.same({ nil, "unknown argument 'extra'" }, { cli.check({ "extra" }, no_rest) })
  end)

  it("refuses a spec it cannot follow", function()
    local ok, err = pcall(cli.check, {}, { options = { runs = { "integer", 1 } } })
    assert.is_false(ok)
    assert.matches("option 'runs' must be {kind, default}", err, 1, true)
    ok, err = pcall(cli.check, {}, nil)
    assert.is_false(ok)
    assert.matches("argument #2 must be a table with an 'options' table", err, 1, true)
  end)

  describe("in a script", function()
    local dir, script
    setup(function()
      dir = util.temp_dir()
      script = dir .. "/demo.lua"
      util.write(script, ([[
local cli = require("lunet.cli")
local o = cli.parse(arg, { program = "demo", usage = "usage: demo [--runs N]", status = 3,
  options = { runs = { "int", 2, min = 1 } } })
if o.runs == 13 then cli.fail("demo", "13 runs are unlucky") end
print("runs=" .. o.runs)
]]))
    end)
    teardown(function() util.rm_rf(dir) end)

    it("runs with the values, prints the usage for --help, and exits with the status on a bad one", function()
      local r = util.run(util.LUA .. " " .. script .. " --runs 7")
      assert.are.equal(0, r.code, util.explain(r))
      assert.are.equal("runs=7\n", r.out)
      r = util.run(util.LUA .. " " .. script .. " --help")
      assert.are.equal(0, r.code, util.explain(r))
      assert.are.equal("usage: demo [--runs N]\n", r.out)
      r = util.run(util.LUA .. " " .. script .. " --runs none")
      assert.are.equal(3, r.code, util.explain(r))
      assert.are.equal("", r.out)
      assert.are.equal("demo: --runs needs a positive integer, got 'none'\nusage: demo [--runs N]\n", r.err)
    end)

    it("ends on the script's own error with cli.fail: the message on stderr, status 1", function()
      local r = util.run(util.LUA .. " " .. script .. " --runs 13")
      assert.are.equal(1, r.code, util.explain(r))
      assert.are.equal("", r.out)
      assert.are.equal("demo: 13 runs are unlucky\n", r.err)
    end)
  end)
end)
