-- scripts/seed_report.lua answers the study's question: a small real run (MNIST,
-- 256 images, 3 runs of 3 epochs) whose report must hold the verdict, the test
-- behind it (recomputed here from the saved runs), the threshold table, the
-- epochs paragraph and labelled figures.
local lunet = require("lunet")
local util = require("util")

describe("the study report (scripts/seed_report.lua)", function()
  if not util.mnist_dir() then
    it("needs MNIST_DIR", function() pending(util.NO_MNIST .. ": the report spec is skipped") end)
    return
  end
  local out, report
  setup(function()
    out = util.temp_dir()
    local r = util.run(("LUNET_PROGRESS=off bin/lunet report --runs 3 --iterations1 2 --iterations 3 "
      .. "--n 256 --sweep-runs 2 --sweep-iterations 2 --threads 2 --out %s"):format(util.shell_quote(out)))
    assert.are.equal(0, r.code, util.explain(r))
    report = assert(util.read(out .. "/report.md"))
  end)
  teardown(function() if out then util.rm_rf(out) end end)

  it("opens with a verdict backed by Welch's t-test over the runs", function()
    local verdict = report:match("## Verdict\n\n(%*%*Figure 3 [^\n]+)")
    assert.is_string(verdict, report)
    assert.matches("^%*%*Figure 3 %(lr 0.001, momentum 0.4%) against Figure 2 %(lr 0.0001, momentum 0.9%), after 3 "
      .. "epochs:%*%* ", verdict)
    -- the numbers are those of the saved runs
    local fig2 = assert(lunet.load_result(out .. "/figure2.json"))
    local fig3 = assert(lunet.load_result(out .. "/figure3.json"))
    local function finals(res)
      local t = {}
      for _, run in ipairs(res.runs) do t[#t + 1] = run.loss[#run.loss] end
      return t
    end
    local w = lunet.stats.welch(finals(fig3), finals(fig2))
    local line = ("difference of final mean loss Figure 3 - Figure 2 = %.4f (95%% CI %.4f to %.4f; Welch's t = %.2f, "
      .. "df = %.1f, p "):format(w.diff, w.ci_low, w.ci_high, w.t, w.df)
    assert.matches(line, report, 1, true)
    assert.matches("3 and 3 runs)", report, 1, true)
    if w.p < 0.05 then
      assert.matches(w.diff < 0 and "Figure 3 ends with a lower loss than Figure 2" or
        "Figure 2 ends with a lower loss than Figure 3", verdict, 1, true)
    else
      assert.matches("no difference shown at the 5% level", verdict, 1, true)
    end
    assert.matches("**Sweep (2 runs x 2 epochs per cell):** ", report, 1, true)
  end)

  it("gives the first epoch below 2.0, 1.5 and 1.0 for each figure", function()
    assert.matches("| figure | below 2.0 | below 1.5 | below 1.0 |", report, 1, true)
    local fig3 = assert(lunet.load_result(out .. "/figure3.json"))
    local row = { "| Figure 3 (lr 0.001, momentum 0.4)" }
    for _, level in ipairs({ 2.0, 1.5, 1.0 }) do
      local at = lunet.stats.first_below(fig3.mean, level)
      row[#row + 1] = at and ("epoch " .. at) or "-"
    end
    assert.matches(table.concat(row, " | ") .. " |", report, 1, true)
  end)

  it("explains iterations as epochs and states the plateau window it used", function()
    assert.matches("with batch 64 that is 4 optimizer steps", report, 1, true) -- 256 images
    assert.matches("plateau (window 2 epochs, tol 1e-3)", report, 1, true)
    assert.matches("plateau: n/a (fewer iterations than the window of 10)", report, 1, true)
  end)

  it("labels its figures: epochs, the loss, the band, the figure names", function()
    local svg = assert(util.read(out .. "/overlay.svg"))
    for _, text in ipairs({ "epoch", "training loss (NLL)", "Figure 2 (lr 0.0001, momentum 0.9): mean",
      "Figure 3 (lr 0.001, momentum 0.4): mean", "mean +- 1 std over 3 runs" }) do
      assert.matches("<text>" .. text .. "</text>", svg, 1, true)
    end
    assert.is_nil(svg:find("<text>figure%d"))
    svg = assert(util.read(out .. "/figure1.svg"))
    assert.matches("<text>Figure 1 (lr 0.0001, momentum 0.9): mean</text>", svg, 1, true)
    assert.is_nil(svg:find("<text>1.5</text>", 1, true)) -- whole epochs only
  end)
end)
