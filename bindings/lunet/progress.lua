-- lunet.progress: a one-line progress display for long experiments.
--
-- Three modes. "tty": the line is redrawn in place with "\r" and the ANSI "erase to
-- end of line" sequence, at most ten times a second (a terminal). "plain": a whole
-- line, no control characters, at most every 10 s (a log file or a pipe, e.g.
-- `make report | tee log`). "off": nothing. Progress.mode picks one from the
-- caller's quiet flag, whether stderr is a terminal (the caller has isatty) and
-- the LUNET_PROGRESS environment variable.

local check = require("lunet.check")
local format = require("lunet.format")

local Progress = {}
Progress.__index = Progress

local NEW_KEYS = { total_runs = "nonneg_int", total_iterations = "nonneg_int", stream = "any",
  enabled = "boolean", now = "function", mode = "string", interval = "positive_number", unit = "string",
  label = "string" }
local MODES = { tty = true, plain = true, off = true }
-- loss and samples_per_second may be NaN (a diverged run): the line shows it as such.
local UPDATE_KEYS = { runs_done = "nonneg_int", iterations_done = "nonneg_number", loss = "any_number",
  samples_per_second = "any_number", seconds = "nonneg_number" }

-- At most 10 redraws per second: fast enough to look live, slow enough that
-- a training loop calling update every iteration does not spend its time
-- writing to the terminal.
local MIN_INTERVAL = 0.1

-- A plain line (a log file) at most this often, in seconds: a seven-minute report
-- gives some forty lines per experiment, enough to see it move.
local PLAIN_INTERVAL = 10

local CLEAR_EOL = "\27[K"

--- Progress.mode(quiet, is_tty) -> "tty" | "plain" | "off": the display mode for
-- stderr. quiet = true gives "off"; else LUNET_PROGRESS (tty, plain or off) when
-- set; else "tty" on a terminal and "plain" otherwise.
function Progress.mode(quiet, is_tty)
  if quiet then return "off" end
  local env = os.getenv("LUNET_PROGRESS")
  if env and MODES[env] then return env end
  return is_tty and "tty" or "plain"
end

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

--- Create a progress display.
-- opts: total_runs, total_iterations (iterations of ONE run), stream
-- (default io.stderr), mode ("tty", the default: redrawn in place; "plain":
-- whole lines, no control characters, at most every `interval` seconds,
-- default 10; "off": nothing; see Progress.mode), enabled (false = mode
-- "off"), unit (e.g. "epoch": a single training, shown as "epoch 3/10"),
-- label (put before plain lines, e.g. the experiment's name), now
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
  if opts.mode ~= nil and not MODES[opts.mode] then
    error(("Progress.new: option 'mode' must be \"tty\", \"plain\" or \"off\", got %q"):format(opts.mode), 2)
  end
  local self = setmetatable({}, Progress)
  self.total_runs = opts.total_runs
  self.total_iterations = opts.total_iterations
  self.stream = opts.stream or io.stderr
  self.mode = opts.enabled == false and "off" or opts.mode or "tty"
  self.enabled = self.mode ~= "off"
  self.interval = opts.interval or (self.mode == "plain" and PLAIN_INTERVAL or MIN_INTERVAL)
  self.unit = opts.unit
  self.label = opts.label
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
  -- a single training (unit given) is one run
  local runs = self.total_runs or (self.unit and 1)
  if st.iterations_done and self.total_iterations and runs and self.total_iterations * runs > 0 then
    f = st.iterations_done / (self.total_iterations * runs)
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
  if self.unit and not self.total_runs then
    parts[#parts + 1] = string.format("%s %d/%s", self.unit, math.floor(st.iterations_done or 0),
      self.total_iterations and tostring(self.total_iterations) or "?")
  elseif self.total_runs then
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
    parts[#parts + 1] = format.rate(st.samples_per_second) .. " samples/s"
  end
  if type(st.seconds) == "number" and f and f > 0 then
    parts[#parts + 1] = "ETA " .. Progress.format_duration(st.seconds * (1 - f) / f)
  end
  return table.concat(parts, "  ")
end

--- Record new progress and redraw the line unless the last redraw was less
-- than 0.1 s ago (10 s in plain mode). Fields not given keep their previous values.
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
  if self.mode == "plain" and not self.last_draw then
    -- a log gets its first line after `interval` seconds: short runs stay silent
    self.last_draw = t
    return false
  end
  if self.last_draw and t - self.last_draw < self.interval and t >= self.last_draw then
    return false
  end
  self.last_draw = t
  if self.mode == "plain" then
    self.stream:write(self:plain_line(), "\n")
  else
    self.stream:write("\r", self:line(), CLEAR_EOL)
  end
  self.stream:flush()
  self.drawn = true
  return true
end

--- End the display: print `message` (default: the current status line) on
-- the progress line and move to a new line. In plain mode without a message,
-- only when a line was written before.
function Progress:finish(message)
  check.self("progress:finish", self, Progress, "progress display")
  check.optional("string", "progress:finish", 1, "message", message)
  if not self.enabled then
    return
  end
  if self.mode == "plain" then
    if message or self.drawn then self.stream:write(message or self:plain_line(), "\n") end
  else
    self.stream:write("\r", message or self:line(), CLEAR_EOL, "\n")
  end
  self.stream:flush()
end

-- The line as written in plain mode: the label first, so that a log read later
-- says which experiment it was.
function Progress:plain_line()
  check.self("progress:plain_line", self, Progress, "progress display")
  local line = self:line()
  if self.label then line = self.label .. ": " .. line end
  return line
end

return Progress
