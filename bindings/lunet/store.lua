--- lunet.store: the run store. Every finished run of an experiment is a file of its
-- own, written the moment the run ends, and found again by its settings.
--
-- Layout (README, "Results on disk"):
--   <out>/store/<digest>/config.json              the key: the settings, as text, and a summary
--   <out>/store/<digest>/run-000017-i000100.json  run 17, computed for 100 iterations
--   <out>/store/<digest>/claim-000017-i000100     run 17 is being computed (host pid time)
--   <out>/store/<digest>/used-<name>              experiment <name> used this configuration
-- <digest> is FNV-1a (64 bits) of the key text. A record is JSON whose last member is
-- "crc32": zlib's CRC-32 of the record's text without that member (the bytes before
-- `,"crc32"` followed by `}`). Records are written to a temporary name unique per host
-- and process, fsynced, renamed into place, and the directory fsynced.
local core = require("lunet.core")
local check = require("lunet.check")
local lfs = require("lfs")
local fs = require("lunet.fs")
local Result = require("lunet.result")

local store = {}

local RECORD_FORMAT, CONFIG_FORMAT, VERSION = "lunet-run", "lunet-config", 1
-- Seconds between two heartbeats (touches) of the claims a process holds, and the age
-- of a claim of another host without a heartbeat after which it is taken over.
store.HEARTBEAT = 10
store.STALE = tonumber(os.getenv("LUNET_CLAIM_TIMEOUT") or "") or 120
-- The largest magnitude a loss can have: losses are means of float32 values.
local FLOAT_MAX = 3.4028234663852886e38

-- ------------------------------------------------------------------ keys

-- A canonical text form of a value: sorted keys, exact numbers (%a for floats), so
-- equal settings give equal text.
-- Settings are plain values (strings, numbers, booleans, tables of them); `where`
-- names the value for an error.
local function canonical(v, depth, where)
  local t = type(v)
  if t == "table" then
    if depth > 16 then error(("store.key: %s nests more than 16 deep (a table holding itself?)"):format(where), 0) end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do
      parts[#parts + 1] = tostring(k) .. "=" .. canonical(v[k], depth + 1, where .. "." .. tostring(k))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return ("%a"):format(v)
  elseif t ~= "string" and t ~= "boolean" then
    error(("store.key: %s must be a string, number, boolean or table of them, got %s"):format(where, t), 0)
  end
  return tostring(v)
end

-- FNV-1a, 64 bits (Lua integers wrap modulo 2^64), as 16 hex digits.
local function hash(s)
  local h = -3750763034362895579 -- 0xcbf29ce484222325
  for i = 1, #s do
    h = h ~ s:byte(i)
    h = h * 1099511628211
  end
  return ("%016x"):format(h)
end

--- store.hash(s) -> FNV-1a (64 bits) of the string, as 16 hex digits
function store.hash(s)
  check.arg_type("store.hash", 1, "s", s, "string")
  return hash(s)
end

--- store.key(settings) -> key text, digest. `settings` is everything that decides a
-- run's numbers (lunet.experiment builds it): not the experiment's name, not the
-- iterations (the first I iterations of a run do not depend on how many follow). The
-- text is canonical: sorted keys, floats exact (%a).
function store.key(settings)
  check.arg_type("store.key", 1, "settings", settings, "table")
  local ok, text = pcall(canonical, settings, 0, "settings")
  if not ok then error(text, 2) end
  return text, hash(text)
end

-- ----------------------------------------------------------------- helpers

local host, pid = core.hostname(), core.pid()
local counter = 0

local function warn(msg) io.stderr:write("lunet.store: ", msg, "\n") end

local read_file = fs.read

local function record_name(index, iterations) return ("run-%06d-i%06d.json"):format(index, iterations) end
local function claim_name(index, iterations) return ("claim-%06d-i%06d"):format(index, iterations) end

--- store.record_name(index, iterations) -> the file name of run `index`'s record of `iterations`
function store.record_name(index, iterations)
  check.positive_int("store.record_name", 1, "index", index)
  check.positive_int("store.record_name", 2, "iterations", iterations)
  return record_name(index, iterations)
end

local function is_finite(v) return type(v) == "number" and v == v and v > -math.huge and v < math.huge end

local function integer(v) return math.type(v) == "integer" and v or (type(v) == "number" and math.tointeger(v)) end

-- --------------------------------------------------------------- records

--- store.encode_record(rec) -> the text of a record (a table of plain values): exact
-- JSON plus its CRC-32 | nil, message
function store.encode_record(rec)
  check.arg_type("store.encode_record", 1, "rec", rec, "table")
  local body, err = Result.encode_json(rec)
  if not body then return nil, err end
  return body:sub(1, -2) .. (',"crc32":"%08x"}\n'):format(core.crc32(body))
end

--- store.decode_record(text) -> the table of a record's text | nil, why not (truncated,
-- checksum, JSON). The values are not checked here (Store:load does).
function store.decode_record(text)
  check.arg_type("store.decode_record", 1, "text", text, "string")
  local prefix, hex = text:match('^(.*),"crc32":"(%x%x%x%x%x%x%x%x)"}\n$')
  if not prefix then return nil, "truncated or not a run record (no checksum at its end)" end
  local body = prefix .. "}"
  if core.crc32(body) ~= tonumber(hex, 16) then
    return nil, ("checksum mismatch (crc32 %08x, stored %s)"):format(core.crc32(body), hex)
  end
  local doc, err = Result.decode_json(body)
  if type(doc) ~= "table" then return nil, "not JSON: " .. tostring(err) end
  return doc
end

local function show(v) return tostring(math.tointeger(v) or v) end

-- Checks a decoded record against what its place says it must be. nil or the reason.
local function invalid(rec, want)
  if rec.format ~= RECORD_FORMAT or integer(rec.version) ~= VERSION then return "not a lunet-run record of version 1" end
  if rec.key ~= want.key then return "it belongs to another configuration (its key differs)" end
  if integer(rec.index) ~= want.index then
    return ("it holds run %s, not run %d (a copy of another record?)"):format(show(rec.index), want.index)
  end
  local iterations = integer(rec.iterations)
  if iterations ~= want.iterations then
    return ("it holds %s iterations, its name says %d"):format(show(rec.iterations), want.iterations)
  end
  local seed = math.tointeger(tonumber(rec.seed or ""))
  if want.seed and seed ~= core.seed_derive(want.seed, want.index - 1) then
    return ("its seed %s is not run %d's seed"):format(tostring(rec.seed), want.index)
  end
  if type(rec.diverged) ~= "boolean" then return "'diverged' is not a boolean" end
  local loss = rec.loss
  if type(loss) ~= "table" then return "no loss series" end
  local n = #loss
  for k in pairs(loss) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return "the loss series is not a list" end
  end
  local stopped_at = rec.stopped_at ~= nil and integer(rec.stopped_at)
  if rec.stopped_at ~= nil and not (stopped_at and stopped_at >= 1 and stopped_at <= iterations) then
    return "'stopped_at' is not an iteration of the run"
  end
  if rec.diverged then
    if n < 1 or n > iterations then return ("a diverged run with %d losses for %d iterations"):format(n, iterations) end
    if is_finite(loss[n]) then return "marked diverged but its last loss is finite" end
  elseif stopped_at then -- early stopping ended it: one loss per iteration it ran
    if n ~= stopped_at then return ("%d losses for a run stopped after %d iterations"):format(n, stopped_at) end
  elseif n ~= iterations then
    return ("%d losses for %d iterations"):format(n, iterations)
  end
  if rec.val_iterations ~= nil then
    local vi, vl, va = rec.val_iterations, rec.val_loss, rec.val_accuracy
    if type(vi) ~= "table" or type(vl) ~= "table" or type(va) ~= "table" or #vl ~= #vi or #va ~= #vi then
      return "the validations are not three lists of one length"
    end
    for k = 1, #vi do
      local it = integer(vi[k])
      if not it or it < 1 or it > n or not is_finite(va[k]) or va[k] < 0 or va[k] > 1 then
        return "a validation is not {iteration in the run, accuracy in [0, 1]}"
      end
    end
  end
  for i = 1, rec.diverged and n - 1 or n do
    local v = loss[i]
    if not is_finite(v) then return ("loss %d is %s without the run being marked diverged"):format(i, tostring(v)) end
    if math.abs(v) > FLOAT_MAX then return ("loss %d is %s, beyond any float32 loss"):format(i, tostring(v)) end
  end
  if rec.tests ~= nil then
    if type(rec.tests) ~= "table" then return "'tests' is not a list" end
    for _, t in ipairs(rec.tests) do
      local it = type(t) == "table" and integer(t.iteration)
      if not it or it < 1 or it > n or not is_finite(t.loss) or not is_finite(t.accuracy)
        or t.accuracy < 0 or t.accuracy > 1 then
        return "a test entry is not {iteration in the run, finite loss, accuracy in [0, 1]}"
      end
    end
  end
  for _, k in ipairs({ "seconds", "samples" }) do
    if rec[k] ~= nil and not (is_finite(rec[k]) and rec[k] >= 0) then return ("'%s' is not a count"):format(k) end
  end
  if rec.step_loss ~= nil and type(rec.step_loss) ~= "table" then return "'step_loss' is not a list" end
  return nil
end

-- ------------------------------------------------------------------ Store

-- One configuration's directory, as a process uses it: its claims, the records it has
-- checked, the files it has warned about. Made by store.open; not exported as a class.
local Store = { __name = "lunet.Store" }
Store.__index = Store

local function write_config(dir, key, digest, settings, summary)
  local path = dir .. "/config.json"
  if lfs.attributes(path, "mode") == "file" then return true end
  local text, err = Result.encode_json { format = CONFIG_FORMAT, version = VERSION, digest = digest, key = key,
    settings = settings, summary = summary }
  if not text then return nil, "config.json: " .. tostring(err) end
  text = text .. "\n"
  local ok, cerr, why = core.create_excl(path, text)
  if not ok and why ~= "exists" then return nil, cerr end
  return core.fsync_dir(dir)
end

--- store.open(out, settings [, {summary =, seed =}]) -> Store | nil, message
-- Creates <out>/store/<digest>/ and its config.json when missing. `seed` is the base
-- seed, against which every record's seed is checked.
function store.open(out, settings, opts)
  local f = "store.open"
  check.arg_type(f, 1, "out", out, "string")
  if out == "" then error(f .. ": argument #1 (out) must be a directory name, got \"\"", 2) end
  check.arg_type(f, 2, "settings", settings, "table")
  opts = check.options(f, 3, opts, { summary = "string", seed = "integer" })
  local ok_key, key = pcall(canonical, settings, 0, "settings")
  if not ok_key then error(key, 2) end
  local digest = hash(key)
  local dir = out .. "/store/" .. digest
  local ok, err = fs.mkdir_p(dir)
  if ok then ok, err = write_config(dir, key, digest, settings, opts.summary) end
  if not ok then return nil, err end
  return setmetatable({ out = out, dir = dir, key = key, digest = digest, seed = opts.seed,
    claims = {}, warned = {}, checked = {}, last_beat = core.now() }, Store)
end

--- Marks that experiment `name` used this configuration (for list and prune).
function Store:mark(name)
  local path = self.dir .. "/used-" .. tostring(name):gsub("[^%w%-_.]", "_")
  if not core.touch(path) then core.create_excl(path, tostring(name) .. "\n") end
end

function Store:warn_once(path, why)
  if self.warned[path] then return end
  self.warned[path] = true
  warn(("ignoring %s: %s; its run is recomputed"):format(path, why))
end

--- The record files of run `index` (or of every run when index is nil):
-- {[index] = {{iterations =, path =}, ... longest first}}.
function Store:scan(index)
  local runs = {}
  for name in lfs.dir(self.dir) do
    local r, it = name:match("^run%-(%d+)%-i(%d+)%.json$")
    local tmp_host, tmp_pid = name:match("^%.tmp%-(.+)%-(%d+)%-%d+%-run%-")
    if tmp_host and tmp_host == host:gsub("[^%w%-.]", "_") and tonumber(tmp_pid) ~= pid
      and not core.pid_alive(math.tointeger(tonumber(tmp_pid)) or 0) then
      os.remove(self.dir .. "/" .. name) -- a write cut short by a kill on this host
    end
    if r then
      r, it = math.tointeger(tonumber(r)), math.tointeger(tonumber(it))
      local path = self.dir .. "/" .. name
      if not r or not it or name ~= record_name(r, it) or r < 1 or it < 1 then
        self:warn_once(path, "not a canonical record name")
      elseif index == nil or r == index then
        runs[r] = runs[r] or {}
        table.insert(runs[r], { iterations = it, path = path })
      end
    end
  end
  for _, list in pairs(runs) do table.sort(list, function(a, b) return a.iterations > b.iterations end) end
  return runs
end

--- Reads and checks one record file: the record, or nil (and a warning naming the
-- file, once) when it is damaged, inconsistent or not what its name says.
function Store:load(path, index, iterations)
  local mtime, size = core.mtime(path)
  if not mtime then return nil end -- gone meanwhile (replaced by a longer one, pruned)
  local known = self.checked[path]
  if known and known.mtime == mtime and known.size == size then return known.rec end
  local text = read_file(path)
  if not text then return nil end
  local rec, why = store.decode_record(text)
  if rec then why = invalid(rec, { key = self.key, index = index, iterations = iterations, seed = self.seed }) end
  if why then
    self:warn_once(path, why)
    rec = nil
  else
    rec.seed = math.tointeger(tonumber(rec.seed))
    rec.index, rec.iterations = integer(rec.index), integer(rec.iterations)
    for _, t in ipairs(rec.tests or {}) do t.iteration = integer(t.iteration) end
    rec.stopped_at = rec.stopped_at ~= nil and integer(rec.stopped_at) or nil
    for k, it in ipairs(rec.val_iterations or {}) do rec.val_iterations[k] = integer(it) end
    self.warned[path] = nil
  end
  self.checked[path] = { mtime = mtime, size = size, rec = rec }
  return rec
end

--- The first valid record of run `index`, longest first, for which accept(rec) gives a
-- value: that value, the record. `files` is a scan() entry (scanned when nil).
function Store:find(index, accept, files, since)
  files = files or self:scan(index)[index] or {}
  for _, file in ipairs(files) do
    local rec = self:load(file.path, index, file.iterations)
    if rec and (not since or (core.mtime(file.path) or 0) >= since) then
      local v = accept(rec)
      if v then return v, rec end
    end
  end
  return nil
end

--- Writes a record (index, iterations, seed, ... see experiment.lua) atomically and durably.
-- The seed is written as text (64 bits do not survive a JSON double); Store:load reads
-- it back as an integer, so a record in memory always holds an integer seed.
function Store:write(rec)
  rec.format, rec.version, rec.key = RECORD_FORMAT, VERSION, self.key
  if rec.seed ~= nil then rec.seed = tostring(rec.seed) end
  local text, err = store.encode_record(rec)
  if not text then return nil, err end
  local path = self.dir .. "/" .. record_name(rec.index, rec.iterations)
  counter = counter + 1
  local tmp = ("%s/.tmp-%s-%d-%d-%s"):format(self.dir, host:gsub("[^%w%-.]", "_"), pid, counter,
    record_name(rec.index, rec.iterations))
  local ok, werr = core.write_durable(path, text, tmp)
  if not ok then return nil, werr end
  self.checked[path] = nil
  return path
end

-- ----------------------------------------------------------------- claims

local function owner_line() return ("%s %d %.3f\n"):format(host, pid, core.now()) end

-- "live", "stale" or "free", and the claim file's text.
function Store:claim_state(index, iterations)
  local path = self.dir .. "/" .. claim_name(index, iterations)
  local text = read_file(path)
  if not text then return "free" end
  if self.claims[path] then return "live", text end
  local h, p = text:match("^(%S+) (%d+) ")
  local mtime = core.mtime(path)
  if not mtime then return "free" end
  p = math.tointeger(tonumber(p or ""))
  if h == host and p then
    -- on this host the process table answers; a stopped (SIGSTOP) owner is alive, but
    -- not for ever: after ten timeouts without a heartbeat the pid may well be another
    -- process's by now
    if p == pid or not core.pid_alive(p) or core.now() - mtime > 10 * store.STALE then return "stale", text end
    return "live", text
  end
  -- another host (or a claim still being written): only its heartbeat tells
  if core.now() - mtime > store.STALE then return "stale", text end
  return "live", text
end

--- Claims run `index` for `iterations` iterations: true when this process may
-- compute it, false when another live process has it. A stale claim (its owner died)
-- is taken over. When no claim file can be made at all (a read-only store), true.
function Store:claim(index, iterations)
  local path = self.dir .. "/" .. claim_name(index, iterations)
  for _ = 1, 2 do
    local ok, err, why = core.create_excl(path, owner_line())
    if ok then
      self.claims[path] = true
      return true
    end
    if why ~= "exists" then
      if not self.warned[path] then
        self.warned[path] = true
        warn(("cannot claim run %d (%s): computing it without a claim"):format(index, tostring(err)))
      end
      return true
    end
    local state, text = self:claim_state(index, iterations)
    if state == "live" then return false end
    if state == "stale" then
      -- remove it only if it is still the claim judged stale
      if read_file(path) == text then os.remove(path) end
    end
  end
  return false
end

function Store:release(index, iterations)
  local path = self.dir .. "/" .. claim_name(index, iterations)
  if self.claims[path] then
    os.remove(path)
    self.claims[path] = nil
  end
end

function Store:release_all()
  for path in pairs(self.claims) do os.remove(path) end
  self.claims = {}
end

--- Touches the claims held, at most every store.HEARTBEAT seconds.
function Store:heartbeat()
  local now = core.now()
  if now - self.last_beat < store.HEARTBEAT then return end
  self.last_beat = now
  for path in pairs(self.claims) do core.touch(path) end
end

-- ------------------------------------------------------------ management

-- The sorted names in dir; none when it does not exist (yet).
local function entries(dir) return fs.list_dir(dir) or {} end

-- The configurations under <out>/store: {dir, digest, config (or nil), names, ...}.
local function configurations(out)
  local list = {}
  for _, digest in ipairs(entries(out .. "/store")) do
    local dir = out .. "/store/" .. digest
    if lfs.attributes(dir, "mode") == "directory" then
      local c = { dir = dir, digest = digest, names = {}, runs = 0, records = 0, bytes = 0, iterations = 0,
        last = 0 }
      local text = read_file(dir .. "/config.json")
      local doc = text and Result.decode_json(text)
      if type(doc) == "table" and doc.format == CONFIG_FORMAT and type(doc.key) == "string"
        and hash(doc.key) == digest then
        c.config = doc
      end
      local seen = {}
      for _, name in ipairs(entries(dir)) do
        local path = dir .. "/" .. name
        local mtime, size = core.mtime(path)
        c.bytes = c.bytes + (size or 0)
        if mtime and mtime > c.last then c.last = mtime end
        local used = name:match("^used%-(.+)$")
        if used then c.names[#c.names + 1] = (read_file(path) or used):gsub("\n$", "") end
        local r, it = name:match("^run%-(%d+)%-i(%d+)%.json$")
        if r then
          c.records = c.records + 1
          if not seen[r] then seen[r], c.runs = true, c.runs + 1 end
          it = tonumber(it)
          if it > c.iterations then c.iterations = it end
        end
      end
      list[#list + 1] = c
    end
  end
  return list
end

local function check_out(f, out)
  if out ~= nil then check.arg_type(f, 1, "out", out, "string") end
  return out or "out"
end

--- store.list(out = "out") -> list of {digest, dir, names = {experiments}, summary, key
-- (the settings as text; nil when config.json is missing or damaged), runs, records,
-- iterations (longest), bytes, last (time of the newest file)}, sorted by digest
function store.list(out)
  out = check_out("store.list", out)
  local list = {}
  for _, c in ipairs(configurations(out)) do
    list[#list + 1] = { digest = c.digest, dir = c.dir, names = c.names, runs = c.runs, records = c.records,
      iterations = c.iterations, bytes = c.bytes, last = c.last,
      summary = c.config and c.config.summary or "(config.json missing or damaged)",
      key = c.config and c.config.key }
  end
  return list
end

--- store.verify(out = "out") -> {configurations =, records =, bad = {{path =, reason =}, ...}}
-- Checks every record's checksum and consistency, and every config.json.
function store.verify(out)
  out = check_out("store.verify", out)
  local report = { configurations = 0, records = 0, bad = {} }
  for _, c in ipairs(configurations(out)) do
    report.configurations = report.configurations + 1
    if not c.config then
      report.bad[#report.bad + 1] = { path = c.dir .. "/config.json", reason = "missing, damaged or of another digest" }
    else
      local settings = c.config.settings
      local s = setmetatable({ dir = c.dir, key = c.config.key, digest = c.digest, claims = {}, checked = {},
        warned = {}, seed = type(settings) == "table" and math.tointeger(settings.seed) or nil }, Store)
      s.warn_once = function(_, path, why) report.bad[#report.bad + 1] = { path = path, reason = why } end
      for index, files in pairs(s:scan()) do
        for _, file in ipairs(files) do
          report.records = report.records + 1
          s:load(file.path, index, file.iterations)
        end
      end
    end
  end
  table.sort(report.bad, function(a, b) return a.path < b.path end)
  return report
end

local function matches(name, pattern)
  local p = "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
  return name:match(p) ~= nil
end

--- store.prune(out = "out", {name =, older_than = seconds, dry_run}) -> list of removed dirs
-- Removes the configurations that only experiments named `name` used ("*" matches
-- any text), and/or whose newest file is older than `older_than` seconds. A
-- configuration that another experiment shares is kept.
function store.prune(out, opts)
  out = check_out("store.prune", out)
  opts = check.options("store.prune", 2, opts, { name = "string", older_than = "nonneg_number", dry_run = "boolean" })
  if opts.name == nil and opts.older_than == nil then
    error("store.prune: give option 'name' and/or option 'older_than'", 2)
  end
  local removed = {}
  local now = core.now()
  for _, c in ipairs(configurations(out)) do
    local ok = true
    if opts.name then
      ok = #c.names > 0
      for _, n in ipairs(c.names) do ok = ok and matches(n, opts.name) end
    end
    if ok and opts.older_than then ok = now - c.last > opts.older_than end
    if ok then
      removed[#removed + 1] = c.dir
      if not opts.dry_run then
        for _, name in ipairs(entries(c.dir)) do os.remove(c.dir .. "/" .. name) end
        lfs.rmdir(c.dir)
      end
    end
  end
  return removed
end

return store
