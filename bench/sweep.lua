-- bench/sweep.lua - `make bench` (after bench/bench.lua): what `bin/lunet sweep` costs (issue 15).
--
-- 1. Per-task overhead on the study's data: `bin/lunet sweep task` of a task whose runs
--    are already stored, so that it computes nothing: process start, loading MNIST (3000
--    training and 10000 test images), planning the 12 experiments of
--    `scripts/seed_report.lua --quick` and reading the store. Best of BENCH_REPEATS (5)
--    wall and CPU seconds; target under 0.3 s.
-- 2. BENCH_SLURM=1 (as root, with slurm-wlm and munge): 12 tasks of at least 30 s each
--    (BENCH_SWEEP_EPOCHS epochs of 2 runs on 3000 images; 2 threads each) through the
--    one-node Slurm of tools/cluster/slurm.sh (`bin/lunet sweep slurm --wait
--    --cpus-per-task NPROC`), against `bin/lunet run` of the same script; target within
--    1.3x. It takes about twice the script's time (12 minutes on 2 cores): opt-in.
-- Needs MNIST (MNIST_DIR); without it, it says so and skips.
local ROOT = arg[0]:match("^(.*)/bench/[^/]*$") or "."
if ROOT:sub(1, 1) ~= "/" then ROOT = require("lfs").currentdir() .. (ROOT == "." and "" or "/" .. ROOT) end
local LUNET = ROOT .. "/bin/lunet"
local repeats = tonumber(os.getenv("BENCH_REPEATS") or "") or 5

local cluster = require("lunet.cluster")
local sh = cluster.capture -- output, ok

-- wall, user + system seconds of a command (GNU time), or nil, its output
local function timed(cmd)
  local out, ok = sh("/usr/bin/time -f 'TIME %e %U %S' sh -c " .. cluster.quote(cmd))
  local e, u, s = out:match("TIME (%S+) (%S+) (%S+)%s*$")
  if not ok or not e then return nil, out end
  return tonumber(e), tonumber(u) + tonumber(s), out
end

local mnist = os.getenv("MNIST_DIR") or (ROOT .. "/data/mnist")
if not io.open(mnist .. "/train-images-idx3-ubyte.gz") then
  print("sweep bench: skipped, MNIST not found (set MNIST_DIR)")
  return
end
local work = os.tmpname()
os.remove(work)
os.execute("mkdir -p " .. work)

print("sweep bench: `bin/lunet sweep` on the study's data")
local study = ("%s/scripts/seed_report.lua --quick --out %s/out"):format(ROOT, work)
local task = ("cd %s && %s sweep task --out %s/out --index 3 %s >/dev/null 2>&1"):format(work, LUNET, work, study)
local _, plan_ok = sh(("cd %s && %s sweep plan --out %s/out %s >/dev/null 2>&1"):format(work, LUNET, work, study))
local first = plan_ok and timed(task)
if not first then
  print("sweep bench: planning or the first task failed")
else
  local walls, cpus = {}, {}
  for i = 1, repeats do walls[i], cpus[i] = timed(task) end
  -- the best of the repeats: other load on the machine only ever adds to a measurement
  local wall, cpu = math.min(table.unpack(walls)), math.min(table.unpack(cpus))
  print(("per-task overhead (a stored task of seed_report.lua --quick, 12 experiments): %.2f s wall, %.2f s CPU "
    .. "(best of %d; target < 0.3 s: %s)"):format(wall, cpu, repeats, wall < 0.3 and "met" or "NOT met"))
end

if os.getenv("BENCH_SLURM") == "1" then
  local epochs = tonumber(os.getenv("BENCH_SWEEP_EPOCHS") or "") or 8
  local script = work .. "/twelve.lua"
  local f = assert(io.open(script, "w"))
  f:write(([[
local lunet = require("lunet")
local data = lunet.mnist { split = "train", n = 3000 }
for i = 1, 12 do
  local res = lunet.experiment { name = "task" .. i, model = lunet.models.mnist_cnn, data = data, runs = 2,
    iterations = %d, seed = i, optimizer = { "sgd", lr = 0.01, momentum = 0.5 }, quiet = true, out = arg[1] }
  print(res)
end
]]):format(epochs))
  f:close()
  local nproc = sh("nproc"):match("%d+")
  local local_wall = timed(("cd %s && %s run %s local >/dev/null"):format(work, LUNET, script))
  local env = sh(("sh %s/tools/cluster/slurm.sh start 2>&1"):format(ROOT))
  local conf = env:match("SLURM_CONF=([^;\n]+)")
  local dir = env:match("LUNET_SLURM_DIR=([^;\n]+)")
  if not conf then
    print("sweep bench: the one-node Slurm did not start:\n" .. env)
  else
    local slurm_wall = timed(("cd %s && SLURM_CONF=%s %s sweep slurm --wait --cpus-per-task %s --out %s/out %s %s/out"
      .. " >/dev/null"):format(work, conf, LUNET, nproc, work, script, work))
    sh(("sh %s/tools/cluster/slurm.sh stop %s"):format(ROOT, dir))
    if local_wall and slurm_wall then
      print(("12 tasks of 2 runs x %d epochs: bin/lunet run %.1f s, sweep slurm (one node) %.1f s: %.2fx "
        .. "(target within 1.3x: %s)"):format(epochs, local_wall, slurm_wall, slurm_wall / local_wall,
        slurm_wall <= 1.3 * local_wall and "met" or "NOT met"))
    else
      print("sweep bench: a run failed")
    end
  end
end
os.execute("rm -rf " .. work)
