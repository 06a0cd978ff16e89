-- bench/bench.lua - `make bench`: lunet's training speed on the study's CNN, against
-- PyTorch on the same machine in the same run. See bench/README.md.
--
-- For batch 1, 16, 64 and 3000 (the full set), on 1 and 2 threads, it prints training
-- samples/s (median of BENCH_REPEATS measurements of several epochs each), GFLOP/s
-- (2.595 MFLOP per training sample), the percentage of the FP32 peak measured just
-- before by bench/fma_probe.c, PyTorch's samples/s (measured interleaved with lunet's,
-- when /usr/bin/python3 has torch) and the lunet/PyTorch ratio.
--
-- lunet on 2 threads = two training runs at once (ln_runs, one run per thread, as the
-- study runs its 60 runs); PyTorch on 2 threads = one run with torch.set_num_threads(2).
--
-- Then, at batch 64, one run each (lunet: net:train{threads = N}, threads inside the
-- run; PyTorch: set_num_threads(N)): the study's net, the same layout with tanh before
-- pooling, the custom net, the CIFAR-shaped net and the Fashion-MNIST reference net
-- (issue 19), with the single-run 2-thread scaling, and net:predict's latency for one
-- image. Every percentage is of the FP32 FMA peak printed next to it (measured per core
-- by bench/fma_probe.c, times the threads). It says which BLAS PyTorch runs on and warns
-- when that is the reference BLAS (slow for the large linear layers: the comparison is
-- only fair with OpenBLAS, Debian's libopenblas0-pthread).
--
-- Environment: MNIST_DIR (3000 real images; random ones otherwise), BENCH_REPEATS (5),
-- BENCH_BATCHES ("1,16,64,3000"), BENCH_THREADS ("1,2"), BENCH_TORCH=0 to skip PyTorch,
-- BENCH_TORCH_MAX_SECONDS (8: a PyTorch measurement stops there, mid-epoch if need be),
-- PYTHON (/usr/bin/python3), CC (cc), BENCH_STUDY=0 to skip timing the whole study
-- (scripts/seed_report.lua --fresh, about 4 minutes on 2 cores: wall time and peak RSS),
-- BENCH_NETS=0 to skip the other nets, BENCH_NET_REPEATS (3) for them.
local lunet = require("lunet")
local core = lunet.core

local MFLOP_PER_SAMPLE = 2.595
local STUDY_TFLOP = 35.3 + 0.84 -- the fresh study's work: training and test evaluation
local N = 3000
local repeats = tonumber(os.getenv("BENCH_REPEATS") or "") or 5
local python = os.getenv("PYTHON") or "/usr/bin/python3"

local function list(s, default)
  local t = {}
  for v in (s or default):gmatch("%d+") do t[#t + 1] = tonumber(v) end
  return t
end
local batches = list(os.getenv("BENCH_BATCHES"), "1,16,64,3000")
local thread_counts = list(os.getenv("BENCH_THREADS"), "1,2")

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

-- ------------------------------------------------------------ probes

-- The output of bench/<name>.c, built once into build/bench (extra: cc flags), or nil
-- when it cannot be built; build_only: whether it could be, without running it.
local probes_built = {}
local function run_probe(name, extra, build_only)
  if probes_built[name] == nil then
    os.execute("mkdir -p build/bench")
    local cc = os.getenv("CC") or "cc"
    local _, ok = sh(("%s -O2 %s-o build/bench/%s bench/%s.c 2>&1"):format(cc, extra or "", name, name))
    probes_built[name] = ok and true or false
  end
  if not probes_built[name] or build_only then return probes_built[name] or nil end
  return sh("build/bench/" .. name)
end

-- ------------------------------------------------------------- FMA peak

local function fma_peak()
  if not run_probe("fma_probe", nil, true) then return nil, "cannot compile bench/fma_probe.c" end
  local best = {}
  for _ = 1, 3 do -- best of 3: the probe runs a few hundred ms
    local out = run_probe("fma_probe")
    for k, v in out:gmatch("(%a+) ([%d.]+)") do
      v = tonumber(v)
      if not best[k] or v > best[k] then best[k] = v end
    end
  end
  return best
end

-- ------------------------------------------------- cores' distance, memory

-- The round trip of a cache line between two threads (bench/core_link.c), in ns, or nil:
-- about 100 where the cores share an L3, 400 where the development VM's two vCPUs sit
-- on two dies, where a single run of the study on 2 threads is about 9% slower (bench/README.md).
local function core_link()
  local out = run_probe("core_link", "-pthread ")
  return out and tonumber(out:match("round_trip_ns ([%d.]+)"))
end

-- One core's read bandwidth now (bench/mem_probe.c), GB/s: an 8 MiB buffer (the nets'
-- working sets, in the last-level cache when the host leaves it to us) and DRAM; nil
-- when it cannot be built. The development VM's host has slow phases lasting minutes
-- in which the layers that wait on memory lose most (bench/README.md, session 19).
local function mem_probe()
  local out = run_probe("mem_probe")
  if not out then return nil end
  return tonumber(out:match("l3_gbs ([%d.]+)")), tonumber(out:match("dram_gbs ([%d.]+)"))
end

local function mem_line()
  local l3, dram = mem_probe()
  return l3 and ("%.0f GB/s from an 8 MiB buffer, %.0f from DRAM"):format(l3, dram or 0) or "-"
end

-- ------------------------------------------------------------------ data

local function load_data()
  local dir = os.getenv("MNIST_DIR")
  if dir and dir ~= "" then
    local ds = lunet.mnist { n = N }
    if ds then return ds, "MNIST (first 3000 training images)" end
  end
  local rng, vals, labels = 12345, {}, {}
  local function rnd() -- a small LCG: the same images every run
    rng = (rng * 1103515245 + 12345) % 2147483648
    return rng / 2147483648
  end
  for i = 1, N * 784 do vals[i] = rnd() * 2 - 0.5 end
  for i = 1, N do labels[i] = math.floor(rnd() * 10) end
  return lunet.dataset(lunet.tensor(vals, { N, 1, 28, 28 }), labels, { name = "random" }),
    "random images (MNIST_DIR unset)"
end

-- ----------------------------------------------------------------- lunet

local function epochs_for(batch) return batch == 1 and 2 or 3 end

local function lunet_measure(data, batch, threads)
  local opts = { data = data, batch = batch, iterations = epochs_for(batch),
    optimizer = lunet.sgd { lr = 0.01, momentum = 0.5 }, quiet = true }
  if threads == 1 then
    local net = lunet.models.mnist_cnn { seed = 1 }
    return net:train(opts).samples_per_second
  end
  -- `threads` runs at once, one per thread: total samples over the longest run's time
  local cfg = require("lunet.config").train(opts, "bench")
  local runs = core.runs { net = lunet.models.mnist_cnn { seed = 1 }, data = data, train = cfg,
    runs = threads, threads = threads }
  local samples, seconds = 0, 0
  for _, r in ipairs(runs) do
    samples = samples + r.samples
    seconds = math.max(seconds, r.seconds)
  end
  return samples / seconds
end

-- --------------------------------------------------------------- PyTorch

local torch = {}
-- seconds after which a PyTorch measurement stops (mid-epoch), so that a busy machine
-- cannot stall the bench; quiet, every measurement finishes its epochs well before
local torch_cap = tonumber(os.getenv("BENCH_TORCH_MAX_SECONDS") or "") or 8

function torch.start()
  if os.getenv("BENCH_TORCH") == "0" then return nil, "skipped (BENCH_TORCH=0)" end
  local _, ok = sh(python .. ' -c "import torch" 2>/dev/null')
  if not ok then return nil, python .. " cannot import torch" end
  local fifo = os.tmpname()
  os.remove(fifo)
  if not os.execute("mkfifo " .. fifo) then return nil, "mkfifo failed" end
  -- the server's answers come back through the FIFO; requests go to its stdin
  local w = io.popen(python .. " bench/torch_bench.py --serve > " .. fifo, "w")
  local r = io.open(fifo, "r")
  os.remove(fifo)
  local hello = r and r:read("l")
  if not hello or not hello:match("^ready") then return nil, "torch_bench.py did not start" end
  torch.w, torch.r = w, r
  return hello:gsub("^ready ", "")
end

function torch.measure(batch, threads, net, epochs)
  torch.w:write(("%s %d %d %d %g\n"):format(net or "study", batch, threads, epochs or epochs_for(batch), torch_cap))
  torch.w:flush()
  local line = torch.r:read("l")
  return tonumber(line), line
end

function torch.stop()
  if not torch.w then return end
  torch.w:write("quit\n")
  torch.w:close()
  torch.r:close()
end

-- ------------------------------------------------------------------ main

local function fmt(v, f) return v and (f):format(v) or "-" end

local function loadavg()
  local f = io.open("/proc/loadavg")
  local l = f and f:read("l") or "?"
  if f then f:close() end
  return l:match("^(%S+ %S+ %S+)") or l
end

local t_start = os.time()
print("lunet " .. lunet.version .. " benchmark: the study's CNN (2.595 MFLOP per training sample)")
print(("load average at start: %s (other work on the machine skews wall-clock figures)"):format(loadavg()))
print(("cpu: %s, %d cores, LUNET_ISA=%s"):format(
  (sh("grep -m1 'model name' /proc/cpuinfo"):gsub(".*: ", ""):gsub("\n", "")), lunet.cpu_count(),
  os.getenv("LUNET_ISA") or "auto"))
local peak, perr = fma_peak()
local per_core = peak and peak.peak
print(peak and ("FP32 peak per core (bench/fma_probe.c): %.1f GFLOP/s (zmm %.1f, ymm %.1f)")
  :format(peak.peak, peak.zmm or 0, peak.ymm or 0) or ("FP32 peak: " .. perr))
do
  local link = core_link()
  print(("cores' cache-line round trip (bench/core_link.c): %s"):format(link and ("%.0f ns"):format(link) or "-"))
  print(("one core's read bandwidth (bench/mem_probe.c): %s"):format(mem_line()))
end
local data, source = load_data()
print("data: " .. source)
local tinfo, terr = torch.start()
print("pytorch: " .. (tinfo or terr))
if tinfo then
  local alt = sh("update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | sed -n 's/^Value: //p'")
  print("libblas.so.3 alternative: " .. (alt:gsub("\n", "") ~= "" and alt:gsub("\n", "") or "unknown"))
  if tinfo:match("/blas/libblas") or not tinfo:match("openblas") then
    print("WARNING: PyTorch runs on the reference BLAS, up to 4x slower on nets with a large linear layer: " ..
      "the ratios below flatter lunet (install libopenblas0-pthread)")
  end
end
print(("median of %d measurements; lunet and PyTorch alternate"):format(repeats))
print()
print(("%-6s %-7s | %10s %8s %13s | %10s %8s | %7s"):format("batch", "threads", "lunet/s",
  "GFLOP/s", "% of peak", "torch/s", "GFLOP/s", "ratio"))
print(("-"):rep(86))

local results = {}
for _, b in ipairs(batches) do
  for _, t in ipairs(thread_counts) do
    local ls, ts = {}, {}
    for _ = 1, repeats do
      ls[#ls + 1] = lunet_measure(data, b, t)
      if tinfo then
        local v = torch.measure(b, t)
        if v then ts[#ts + 1] = v end
      end
    end
    local l, p = median(ls), median(ts)
    local gf = l * MFLOP_PER_SAMPLE / 1000
    local pct = per_core and 100 * gf / (per_core * t)
    results[b .. "/" .. t] = { lunet = l, torch = p, pct = pct }
    print(("%-6d %-7d | %10.0f %8.1f %13s | %10s %8s | %7s"):format(b, t, l, gf,
      pct and ("%.1f%% of %.0f"):format(pct, per_core * t) or "-",
      fmt(p, "%.0f"), fmt(p and p * MFLOP_PER_SAMPLE / 1000, "%.1f"), fmt(p and l / p, "%.2fx")))
    io.stdout:flush()
  end
end
print()
local function target(key, ratio, pct)
  local r = results[key]
  if not r then return end
  local b, t = key:match("(%d+)/(%d+)")
  local parts, pass = {}, true
  if r.torch then
    parts[#parts + 1] = ("%.2fx PyTorch (target >= %gx)"):format(r.lunet / r.torch, ratio)
    pass = pass and r.lunet / r.torch >= ratio
  else
    parts[#parts + 1] = "no PyTorch figure"
  end
  if pct and r.pct then
    parts[#parts + 1] = ("%.1f%% of the %.1f GFLOP/s peak (target >= %d%%)"):format(r.pct,
      per_core * tonumber(key:match("/(%d+)")), pct)
    pass = pass and r.pct >= pct
  end
  print(("target batch %s, %s thread%s: %s -> %s"):format(b, t, t == "1" and "" or "s",
    table.concat(parts, ", "), r.torch and (pass and "met" or "NOT met") or "unchecked"))
end
target("64/1", 3, 75) -- issue 19: >= 75% of the peak at batch 64
target("64/2", 3)
target("1/1", 10, 50)

if os.getenv("BENCH_NETS") ~= "0" then
  require("bench.nets").run { lunet = lunet, data = data, torch = tinfo and torch, per_core = per_core,
    median = median, loadavg = loadavg, core_link = core_link, mem_line = mem_line }
end
torch.stop()

if os.getenv("BENCH_STUDY") ~= "0" then
  print()
  print("study (scripts/seed_report.lua --fresh: 60 runs, 3 figures, sweep, plots), wall time and peak RSS:")
  local out = sh("/usr/bin/time -f 'study: %e s, peak RSS %M KiB' bin/lunet report --fresh " ..
    "--out build/bench/report 2>&1 | tail -3")
  io.write(out)
  local seconds, kib = out:match("study: ([%d.]+) s, peak RSS (%d+) KiB")
  seconds, kib = tonumber(seconds), tonumber(kib)
  if seconds and kib then
    -- issue 19: within 1.4x of the FLOP bound, 35.3 TFLOP of training and 0.84 of test
    -- evaluation (bench/README.md) at the FMA peak of 2 cores; 300 s without a peak
    local bound = per_core and STUDY_TFLOP * 1e3 / (2 * per_core)
    local limit = bound and 1.4 * bound or 300
    local ok = seconds <= limit and kib <= 64 * 1024
    print(("target study: %.0f s (target <= %.0f s%s), peak RSS %.1f MiB (target <= 64 MiB) -> %s"):format(seconds,
      limit, bound and (": 1.4x the %.0f s FLOP bound at 2 x %.1f GFLOP/s"):format(bound, per_core) or "",
      kib / 1024, ok and "met" or "NOT met"))
  else
    print("target study: could not be measured (see the output above)")
  end
  -- the run store's share: time spent claiming and writing records, from the figures'
  -- provenance (the sweep's cells are the same kind of runs)
  local stored, runs = 0, 0
  for _, fig in ipairs({ "figure1", "figure2", "figure3" }) do
    local res = lunet.load_result("build/bench/report/" .. fig .. ".json")
    if res and res.provenance.store_seconds then
      stored = stored + res.provenance.store_seconds
      runs = runs + res.provenance.runs_computed
    end
  end
  if seconds and runs > 0 then
    print(("run store: %.3f s claiming and writing %d records (%.3f%% of the study; target < 1%%)"):format(stored,
      runs, 100 * stored / seconds))
  end
end
print(("\nbench took %d s; load average at end: %s"):format(os.time() - t_start, loadavg()))
