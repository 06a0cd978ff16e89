-- Drives the C-level test programs (spec/c/test_*.c, built by `make` into
-- build/<variant>/spec/): every "ok N - ..." / "not ok N - ..." line they print
-- becomes one test here, so a failing C check is named in the test output.
local lfs = require("lfs")

local dir = os.getenv("LUNET_C_TESTS") or "build/release/spec"

local programs = {}
for name in lfs.dir("spec/c") do
  local base = name:match("^(test_[%w_]+)%.c$")
  if base then programs[#programs + 1] = base end
end
table.sort(programs)

describe("C tests", function()
  it("are all built", function()
    for _, p in ipairs(programs) do
      assert.equal("file", lfs.attributes(dir .. "/" .. p, "mode"), dir .. "/" .. p .. " missing: run make")
    end
  end)

  for _, prog in ipairs(programs) do
    describe(prog, function()
      local path = dir .. "/" .. prog
      if lfs.attributes(path, "mode") ~= "file" then return end
      local pipe = io.popen(path .. " 2>&1")
      local output = pipe:read("a")
      local ok, how, code = pipe:close()
      local checks = 0
      for line in output:gmatch("[^\n]+") do
        local bad, n, desc = line:match("^(n?o?t? ?)ok (%d+) %- (.*)$")
        if n then
          checks = checks + 1
          it(("#%s %s"):format(n, desc:gsub(":.*", "")), function()
            assert(bad == "", line)
          end)
        elseif line:match("^# skip") then
          it(line, function() pending(line) end)
        end
      end
      it("exits with status 0 after " .. checks .. " checks", function()
        assert(checks > 0, "no checks found in the output of " .. prog .. ":\n" .. output)
        assert(ok, ("%s exited with %s %s:\n%s"):format(prog, tostring(how), tostring(code),
          output:sub(-2000)))
      end)
    end)
  end
end)
