--- compare_common.lua: what tools/compare/compare_pytorch.lua and tools/compare/compare_replicates.lua
-- share: the study's two settings they compare, and the criterion of issue 5.
local M = {}

--- The study's Figure 1 and Figure 3 settings.
function M.figures()
  return {
    { key = "figure1", lr = 1e-4, momentum = 0.9, iterations = 50 },
    { key = "figure3", lr = 1e-3, momentum = 0.4, iterations = 100 },
  }
end

--- At iteration it, does each mean lie inside the other's 95% CI?
function M.both_inside(a, b, it)
  return a.mean[it] >= b.ci_low[it] and a.mean[it] <= b.ci_high[it]
    and b.mean[it] >= a.ci_low[it] and b.mean[it] <= a.ci_high[it]
end

--- The criterion for two results: iterations (of the first `iterations`) where each
-- mean lies inside the other's 95% CI, and the difference of the final mean test
-- accuracies in percentage points (a - b).
function M.criterion(a, b, iterations)
  local inside = 0
  for it = 1, iterations do
    if M.both_inside(a, b, it) then inside = inside + 1 end
  end
  return inside, 100 * (a:test_summary() - b:test_summary())
end

--- Met: >= 95% of iterations inside both bands and accuracies within 0.5 pp.
function M.met(inside, iterations, diff) return inside / iterations >= 0.95 and math.abs(diff) <= 0.5 end

return M
