--- lunet.history: what net:train and net:evaluate return, as objects.
-- A training history (print(h), h:plot()), an evaluation (print(r)) and its confusion
-- matrix (print(r.confusion), r.confusion:plot()). net:train and net:evaluate give
-- their plain tables these metatables; the numbers stay plain fields.
local format = require("lunet.format")

local M = {}

-- The training history returned by net:train.
local History = { __name = "lunet.History" }
History.__index = History
M.History = History

local plural, fmt_rate, fmt_num = format.plural, format.rate, format.number

function History:__tostring()
  local loss = rawget(self, "loss") or {}
  local unit = rawget(self, "unit") or "iteration"
  local lines = { ("training history: %s, %s, %d samples in %.2f s (%s samples/s)"):format(
    plural(#loss, unit), plural(rawget(self, "steps") or 0, "step"), rawget(self, "samples") or 0,
    rawget(self, "seconds") or 0, fmt_rate(rawget(self, "samples_per_second"))) }
  if #loss > 0 then
    local spark = ""
    local ok, stats = pcall(require, "lunet.stats")
    if ok and #loss > 1 then spark = "  " .. stats.sparkline(loss, 60) end
    lines[#lines + 1] = ("  loss %s -> %s%s"):format(fmt_num(loss[1]), fmt_num(loss[#loss]), spark)
  end
  if rawget(self, "diverged") then lines[#lines + 1] = "  diverged: a NaN or Inf loss stopped the run" end
  local vl = rawget(self, "val_loss")
  if type(vl) == "table" and #vl > 0 then
    local va = rawget(self, "val_accuracy") or {}
    lines[#lines + 1] = ("  validation loss %s -> %s, accuracy %.2f%% (%s)"):format(fmt_num(vl[1]),
      fmt_num(vl[#vl]), 100 * (va[#va] or 0 / 0), plural(#vl, "validation"))
  end
  local stopped = rawget(self, "stopped_at")
  if stopped then lines[#lines + 1] = ("  early stopping: stopped after %s %d"):format(unit, stopped) end
  if rawget(self, "resumed_after") then
    lines[#lines + 1] = ("  resumed from a checkpoint after %s %d"):format(unit, self.resumed_after)
  end
  if rawget(self, "checkpoint_error") then
    lines[#lines + 1] = "  checkpoint failed, training stopped: " .. self.checkpoint_error
  end
  if rawget(self, "interrupted") then lines[#lines + 1] = "  interrupted: stopped early (Ctrl-C or progress)" end
  return table.concat(lines, "\n")
end

--- history:plot([opts])
-- Plots the loss per iteration of this training (net:train's result), and the
-- validation loss when it was validated, in the terminal or, with opts.file (.png, .svg,
-- .txt), to a file; opts as lunet.plot's.
function History:plot(opts)
  local Result = require("lunet.result")
  local unit = rawget(self, "unit") or "iteration"
  local res = Result.new { name = unit == "epoch" and "mean batch loss of each epoch" or "batch loss of each step",
    config = { unit = unit }, runs = { { loss = rawget(self, "loss") or {},
      val_iterations = rawget(self, "val_iterations"), val_loss = rawget(self, "val_loss"),
      val_accuracy = rawget(self, "val_accuracy"), stopped_at = rawget(self, "stopped_at") } } }
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.ylabel == nil then o.ylabel = "training loss" end
  return res:plot(o)
end

-- history.new(h, unit): gives net:train's result its methods and printed form.
function M.new(h, unit)
  if type(h) ~= "table" then return h end
  if rawget(h, "unit") == nil then h.unit = unit end
  return setmetatable(h, History)
end

-- The confusion matrix of net:evaluate: rows = true class, columns = predicted class,
-- both 1-based here for class 0, 1, ... (m[true + 1][predicted + 1]).
local Confusion = { __name = "lunet.Confusion" }
Confusion.__index = Confusion

function Confusion:__tostring()
  local k = #self
  local width = 4
  for i = 1, k do for j = 1, k do width = math.max(width, #tostring(self[i][j]) + 1) end end
  local cell = "%" .. width .. "s"
  local head = { ("%-10s"):format("true\\pred") }
  for j = 1, k do head[#head + 1] = cell:format(tostring(j - 1)) end
  head[#head + 1] = cell:format("n")
  local lines = { table.concat(head) }
  for i = 1, k do
    local row, n = { ("%-10s"):format(tostring(i - 1)) }, 0
    for j = 1, k do
      row[#row + 1] = cell:format(tostring(self[i][j]))
      n = n + self[i][j]
    end
    row[#row + 1] = cell:format(tostring(n))
    lines[#lines + 1] = table.concat(row)
  end
  return table.concat(lines, "\n")
end

--- confusion:plot([opts]): a heatmap of the counts (x = predicted class, y = true class)
-- in the terminal or, with opts.file (.png, .svg, .txt), to a file; opts as plot.heatmap's.
function Confusion:plot(opts)
  local cells = {}
  for i = 1, #self do
    for j = 1, #self do cells[#cells + 1] = { x = j - 1, y = i - 1, value = self[i][j] } end
  end
  local o = { title = "confusion matrix", xlabel = "predicted class", ylabel = "true class" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return require("lunet.plot").heatmap(cells, o)
end
M.Confusion = Confusion

local Evaluation = {
  __name = "lunet.Evaluation",
  __tostring = function(r)
    return ("evaluation: loss %s, accuracy %.2f%%"):format(fmt_num(r.loss), 100 * (r.accuracy or 0 / 0))
  end,
}
M.Evaluation = Evaluation

-- history.evaluation(r): the printed form of net:evaluate's {loss, accuracy, confusion}.
function M.evaluation(r)
  if type(r) ~= "table" then return r end
  if type(rawget(r, "confusion")) == "table" then setmetatable(r.confusion, Confusion) end
  return setmetatable(r, Evaluation)
end

return M
