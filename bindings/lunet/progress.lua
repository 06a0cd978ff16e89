-- lunet.progress: a one-line progress display for long experiments.
--
-- The line is redrawn in place with "\r" and the ANSI "erase to end of line"
-- sequence, so it only makes sense on a terminal; whether the stream is one
-- is decided by the caller (which has isatty) and passed in as `enabled`.

local check = require("lunet.check")

local Progress = {}
Progress.__index = Progress

local NEW_KEYS = { total_runs = "nonneg_int", total_iterations = "nonneg_int", stream = "any",
  enabled = "boolean", now = "function" }
-- loss and samples_per_second may be NaN (a diverged run): the line shows it as such.
local UPDATE_KEYS = { runs_done = "nonneg_int", iterations_done = "nonneg_number", loss = "any_number",
  samples_per_second = "any_number", seconds = "nonneg_number" }

-- At most 10 redraws per second: fast enough to look live, slow enough that
-- a training loop calling update every iteration does not spend its time
-- writing to the terminal.
local MIN_INTERVAL = 0.1

local CLEAR_EOL = "\27[K"

--- Format a duration in seconds as 42s, 1m05s or 2h03m09s.
function Progress.format_duration(seconds)
  check.arg("any_number", "Progress.format_duration", 1, "seconds", seconds)
  if seconds ~= seconds or seconds < 0 or seconds == math.huge then
    return "?"
  end
  local s = math.floor(seconds + 0.5)
  if math.type(s) ~= "integer" then
    return "?" -- more than 2^63 s (the age of the universe is 2^59 s): as good as infinite
  end
  if s < 60 then
    return string.format("%ds", s)
  elseif s < 3600 then
    return string.format("%dm%02ds", s // 60, s % 60)
  end
  return string.format("%dh%02dm%02ds", s // 3600, (s % 3600) // 60, s % 60)
end

local function format_rate(r)
  if r >= 1e6 then
    return string.format("%.2fM", r / 1e6)
  elseif r >= 1e4 then
    return string.format("%.1fk", r / 1e3)
  end
  return string.format("%.0f", r)
end

--- Create a progress display.
-- opts: total_runs, total_iterations (iterations of ONE run), stream
-- (default io.stderr), enabled (default true; false = print nothing), now
-- (optional clock function returning seconds, used for throttling when
-- update is not given `seconds`; default os.time, which is coarse but
-- wall-clock - os.clock would measure CPU time of all threads instead).
function Progress.new(opts)
  opts = check.options("Progress.new", 1, opts, NEW_KEYS)
  local stream = opts.stream
  if stream ~= nil then
    local ok, write, flush = pcall(function() return stream.write, stream.flush end)
    if not ok or type(write) ~= "function" or type(flush) ~= "function" then
      error("Progress.new: option 'stream' must be a file (or an object with write and flush methods), got "
        .. type(stream), 2)
    end
  end
  local self = setmetatable({}, Progress)
  self.total_runs = opts.total_runs
  self.total_iterations = opts.total_iterations
  self.stream = opts.stream or io.stderr
  self.enabled = opts.enabled ~= false
  self.now = opts.now or os.time
  self.state = {}
  self.last_draw = nil
  self.drawn = false
  return self
end

--- Fraction of the experiment done, in [0, 1], or nil if unknown.
-- iterations_done counts iterations over all runs together (finished runs
-- included), so the whole experiment is total_runs * total_iterations.
function Progress:fraction()
  check.self("progress:fraction", self, Progress, "progress display")
  local st = self.state
  local f
  if st.iterations_done and self.total_iterations and self.total_runs
      and self.total_iterations * self.total_runs > 0 then
    f = st.iterations_done / (self.total_iterations * self.total_runs)
  elseif st.runs_done and self.total_runs and self.total_runs > 0 then
    f = st.runs_done / self.total_runs
  end
  if f then
    f = math.max(0, math.min(1, f))
  end
  return f
end

--- The status line for the current state (without control characters).
function Progress:line()
  check.self("progress:line", self, Progress, "progress display")
  local st = self.state
  local parts = {}
  if self.total_runs then
    parts[#parts + 1] = string.format("runs %d/%d", st.runs_done or 0, self.total_runs)
  elseif st.runs_done then
    parts[#parts + 1] = string.format("runs %d", st.runs_done)
  end
  local f = self:fraction()
  if f then
    parts[#parts + 1] = string.format("%3d%%", math.floor(f * 100))
  end
  if type(st.loss) == "number" then
    parts[#parts + 1] = string.format("loss %.4g", st.loss)
  end
  if type(st.samples_per_second) == "number" and st.samples_per_second == st.samples_per_second then
    parts[#parts + 1] = format_rate(st.samples_per_second) .. " samples/s"
  end
  if type(st.seconds) == "number" and f and f > 0 then
    parts[#parts + 1] = "ETA " .. Progress.format_duration(st.seconds * (1 - f) / f)
  end
  return table.concat(parts, "  ")
end

--- Record new progress and redraw the line unless the last redraw was less
-- than 0.1 s ago. Fields not given keep their previous values.
-- fields: runs_done, iterations_done, loss (latest mean loss),
-- samples_per_second, seconds (elapsed since the start; also the clock for
-- throttling when given). Returns true when the line was redrawn.
function Progress:update(fields)
  check.self("progress:update", self, Progress, "progress display")
  fields = check.options("progress:update", 1, fields, UPDATE_KEYS)
  for k, v in pairs(fields) do
    self.state[k] = v
  end
  if not self.enabled then
    return false
  end
  local t = fields.seconds or self.now()
  if self.last_draw and t - self.last_draw < MIN_INTERVAL and t >= self.last_draw then
    return false
  end
  self.last_draw = t
  self.stream:write("\r", self:line(), CLEAR_EOL)
  self.stream:flush()
  self.drawn = true
  return true
end

--- End the display: print `message` (default: the current status line) on
-- the progress line and move to a new line.
function Progress:finish(message)
  check.self("progress:finish", self, Progress, "progress display")
  check.optional("string", "progress:finish", 1, "message", message)
  if not self.enabled then
    return
  end
  self.stream:write("\r", message or self:line(), CLEAR_EOL, "\n")
  self.stream:flush()
end

return Progress
