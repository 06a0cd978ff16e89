-- The engine's numbers do not drift: the per-step losses of spec/support/regression_cases.lua's
-- four small trainings equal, bit for bit, the values recorded at engine revision 5 (the
-- conv2d weight gradient sums the batch in groups of samples and adds the groups'
-- gradients; revisions 3 and 4 summed it in other orders), for each instruction set this
-- machine can compute with. The bits depend on the ISA (README, "The ISA rule"), so each
-- ISA has its own record and runs in a child process with LUNET_ISA pinned; an ISA the
-- CPU lacks is reported as skipped, visibly. A change that alters the numbers on purpose
-- bumps LUNET_ENGINE_REVISION and re-records every ISA in the same commit (the command is
-- in regression_cases.lua).
local lunet = require("lunet")
local util = require("util")
local cases = require("regression_cases")

local RECORDED_REVISION = 5
local RECORDED = {
  avx512 = {
    ["study sgd"] = { 0x1.2b21273p+1, 0x1.2a4499ep+1, 0x1.23b79b6p+1, 0x1.2732ca9p+1, 0x1.25179c3p+1, 0x1.26a1964p+1 },
    ["study adam 2 threads"] = { 0x1.2b21273p+1, 0x1.2a80ec3p+1, 0x1.233e4a2p+1, 0x1.2598367p+1, 0x1.22e73ep+1, 0x1.233c1f4p+1 },
    ["custom adamw"] = { 0x1.33b9ac68p+1, 0x1.32ae0d2p+1, 0x1.31992be8p+1, 0x1.216df15p+1, 0x1.2377d0f8p+1, 0x1.1d29cc4p+1 },
    ["study sgd batch 1"] = { 0x1.1983cap+1, 0x1.0ff86ap+1, 0x1.2bdedep+1, 0x1.4d1564p+1, 0x1.2012cp+1, 0x1.3b1aa6p+1 },
  },
  avx2 = {
    ["study sgd"] = { 0x1.2b21274p+1, 0x1.2a4499fp+1, 0x1.23b79b6p+1, 0x1.2732ca9p+1, 0x1.25179c28p+1, 0x1.26a1963p+1 },
    ["study adam 2 threads"] = { 0x1.2b21274p+1, 0x1.2a80ec3p+1, 0x1.233e4a2p+1, 0x1.2598369p+1, 0x1.22e73dfp+1, 0x1.233c1f3p+1 },
    ["custom adamw"] = { 0x1.33b9ac58p+1, 0x1.32ae0d58p+1, 0x1.31992be8p+1, 0x1.216df11p+1, 0x1.2377d0f8p+1, 0x1.1d29cc58p+1 },
    ["study sgd batch 1"] = { 0x1.1983cap+1, 0x1.0ff86ap+1, 0x1.2bdedep+1, 0x1.4d1564p+1, 0x1.2012cp+1, 0x1.3b1aa6p+1 },
  },
  generic = {
    ["study sgd"] = { 0x1.2b21273p+1, 0x1.2a4499dp+1, 0x1.23b79b5p+1, 0x1.2732ca7p+1, 0x1.25179c68p+1, 0x1.26a1963p+1 },
    ["study adam 2 threads"] = { 0x1.2b21273p+1, 0x1.2a80ec3p+1, 0x1.233e4a1p+1, 0x1.2598368p+1, 0x1.22e73dd8p+1, 0x1.233c1f3p+1 },
    ["custom adamw"] = { 0x1.33b9ac6p+1, 0x1.32ae0d5p+1, 0x1.31992bdp+1, 0x1.216df138p+1, 0x1.2377d0e8p+1, 0x1.1d29cc68p+1 },
    ["study sgd batch 1"] = { 0x1.1983cap+1, 0x1.0ff86ap+1, 0x1.2bdedep+1, 0x1.4d1564p+1, 0x1.2012cp+1, 0x1.3b1aa6p+1 },
  },
}

-- Runs the cases with LUNET_ISA=isa in a child; returns the ISA it computed with and
-- {case = {loss as %a, ...}}.
local function run_on(isa)
  local r = util.run("LUNET_ISA=" .. isa .. " " .. util.LUA .. " -e 'require(\"regression_cases\").print()'")
  assert(r.ok, util.explain(r))
  local got_isa = r.out:match("^isa (%w+)\n")
  local got = {}
  for name, list in r.out:gmatch("\n([^\t\n]+)\t([^\n]*)") do
    got[name] = {}
    for v in list:gmatch("[^,]+") do got[name][#got[name] + 1] = v end
  end
  return got_isa, got
end

describe("the engine's numbers", function()
  it("are recorded for this engine revision", function()
    assert.are.equal(RECORDED_REVISION, lunet.engine_revision,
      "LUNET_ENGINE_REVISION changed: re-record spec/regression_spec.lua in the same commit")
  end)

  it("are recorded for every instruction set, and for every case", function()
    for _, isa in ipairs { "avx512", "avx2", "generic" } do
      for _, c in ipairs(cases.CASES) do
        assert.are.equal(6, #RECORDED[isa][c[1]], isa .. " " .. c[1])
      end
    end
  end)

  for _, isa in ipairs { "avx512", "avx2", "generic" } do
    describe("with " .. isa .. " kernels", function()
      local got_isa, got
      local function result()
        if not got_isa then got_isa, got = run_on(isa) end
        return got_isa, got
      end
      for _, c in ipairs(cases.CASES) do
        it("equal the recorded losses bit for bit: " .. c[1], function()
          local computed_with, losses = result()
          if computed_with ~= isa then
            return pending(("this CPU cannot compute with %s (it chose %s): %s skipped"):format(isa,
              tostring(computed_with), c[1]))
          end
          local want = {}
          for i, v in ipairs(RECORDED[isa][c[1]]) do want[i] = ("%a"):format(v) end
          assert.are.same(want, losses[c[1]])
        end)
      end
    end)
  end
end)
