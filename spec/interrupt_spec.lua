-- Ctrl-C (SIGINT) during net:train: training stops at the next step. In the
-- interactive session (bin/lunet) it returns what was done (h.interrupted = true, the
-- finished iterations) and the session keeps working: code after the call runs, and a
-- second net:train trains normally, from where the first one stopped. In a script the
-- process ends with 130 after one line on stderr, and the code after the call does not
-- run. (Experiments:
-- spec/experiment_spec.lua and spec/store_spec.lua.)
local util = require("util")

describe("Ctrl-C during net:train", function()
  local dir = util.temp_dir()
  teardown(function() util.rm_rf(dir) end)

  -- Trains on, until SIGINT, as `how` runs it: "session" (bin/lunet) or "script".
  local function interrupted_run(how)
    local script = dir .. "/train.lua"
    local f = assert(io.open(script, "w"))
    -- globals, no `local`: the session runs the file line by line
    f:write([[
io.stdout:setvbuf("no")
data = require("synthetic")(256, 4, 1)
net = lunet.models.mnist_cnn()
print("START")
-- 32 steps per epoch; 100000 epochs would take hours: only Ctrl-C ends this
h = net:train { data = data, batch = 8, iterations = 100000, quiet = true, progress = function(p) print("EPOCH " .. p.iteration) end }
finite = true
for _, v in ipairs(h.loss) do finite = finite and v == v and v < math.huge end
for _, v in ipairs(h.step_loss) do finite = finite and v == v and v < math.huge end
print(("TRAINED interrupted=%s diverged=%s iterations=%d losses=%d steps=%d step_losses=%d finite=%s"):format(tostring(h.interrupted), tostring(h.diverged), h.iterations, #h.loss, h.steps, #h.step_loss, tostring(finite)))
print("AFTER " .. table.concat({ 1, 2, 3 }, "+"))
h2 = net:train { data = data, batch = 8, iterations = 2, quiet = true }
print(("SECOND interrupted=%s iterations=%d steps=%d"):format(tostring(h2.interrupted), h2.iterations, h2.steps))
r = net:evaluate(data)
print(("EVALUATED accuracy=%.3f"):format(r.accuracy))
]])
    f:close()
    local out, err = dir .. "/out", dir .. "/err"
    -- start it, wait until the first epoch is done (slow under valgrind), let it train
    -- a little longer, then send SIGINT as a terminal's Ctrl-C would. $! must be the
    -- Lua process itself (bin/lunet execs the session; no timeout in between).
    local start = how == "session" and ("exec env %s bin/lunet < %s"):format(util.ENV, script)
      or ("exec %s -e 'lunet = require(\"lunet\")' %s"):format(util.LUA, script)
    local cmd = ([[
%s > %s 2> %s &
pid=$!
i=0
while [ $i -lt 1200 ] && ! grep -q "EPOCH 1" %s 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
kill -INT $pid
wait $pid
echo "exit $?" >> %s
]]):format(start, out, err, out, out)
    os.execute(cmd)
    local o, e = util.read(out) or "", util.read(err) or ""
    return o, e, "\nstdout:\n" .. o .. "\nstderr:\n" .. e
  end

  it("stops at the next step in the session, keeps the finished epochs, and the session goes on", function()
    local o, _, diag = interrupted_run("session")
    assert.matches("START", o, 1, true)
    local interrupted, diverged, iterations, losses, steps, step_losses, finite =
      o:match("TRAINED interrupted=(%w+) diverged=(%w+) iterations=(%d+) losses=(%d+) steps=(%d+) " ..
        "step_losses=(%d+) finite=(%w+)")
    assert.equal("true", interrupted, "training did not report the interruption" .. diag)
    assert.equal("false", diverged, diag)
    iterations, losses, steps, step_losses = tonumber(iterations), tonumber(losses), tonumber(steps),
      tonumber(step_losses)
    assert.is_true(iterations >= 1, "no epoch finished in a second" .. diag)
    assert.is_true(iterations < 100000, diag)
    assert.equal(iterations, losses, "one loss per finished epoch" .. diag)
    assert.equal(steps, step_losses, "one loss per step taken" .. diag)
    -- the epoch in progress is not counted, its steps are; at most one partial epoch
    assert.is_true(steps >= iterations * 32 and steps < (iterations + 1) * 32, diag)
    assert.equal("true", finite, diag)
    assert.matches("AFTER 1+2+3", o, 1, true) -- the session kept going
    -- the second call goes on where the first stopped (continuing in memory): its first
    -- epoch is the rest of the interrupted one
    local partial = steps - iterations * 32
    assert.matches(("SECOND interrupted=false iterations=2 steps=%d"):format(64 - partial), o, 1, true)
    assert.matches("EVALUATED accuracy=", o, 1, true)
    assert.matches("exit 0", o, 1, true)
  end)

  it("ends a script with 130 and one line on stderr; the code after net:train does not run", function()
    local o, e, diag = interrupted_run("script")
    assert.matches("START", o, 1, true) -- (under a sanitizer the signal may come before the first epoch)
    assert.is_nil(o:find("TRAINED", 1, true), diag)
    assert.is_nil(o:find("AFTER", 1, true), diag)
    assert.matches("exit 130", o, 1, true)
    local _, lines = e:gsub("net:train: interrupted by signal 2 after %d+ of 100000 iterations[^\n]*exiting with 130\n", "")
    assert.equal(1, lines, diag)
  end)
end)
