-- `make install` into a temporary prefix, then use lunet from there as a user would:
-- require it from Lua 5.4 (module on LUA_PATH / LUA_CPATH), start the installed
-- launcher, compile examples/embed.c against the installed header and library with
-- pkg-config; then `make uninstall` must leave no lunet file behind. Also checks the
-- rockspec builds with the same Makefile.
local lfs = require("lfs")
local util = require("util")
local shell_quote, read, write, temp_dir, rm_rf, run, explain =
  util.shell_quote, util.read, util.write, util.temp_dir, util.rm_rf, util.run, util.explain

local ROOT = lfs.currentdir()

-- Every file (not directory) under `dir`, relative to it, sorted.
local function files_under(dir, prefix, acc)
  acc = acc or {}
  for e in lfs.dir(dir) do
    if e ~= "." and e ~= ".." then
      local path, rel = dir .. "/" .. e, (prefix and prefix .. "/" or "") .. e
      if lfs.symlinkattributes(path, "mode") == "directory" then
        files_under(path, rel, acc)
      else
        acc[#acc + 1] = rel
      end
    end
  end
  table.sort(acc)
  return acc
end

local function make(args)
  -- the sanitizer build installs the sanitizer libraries; keep to the variant under test
  local sanitize = (os.getenv("LUNET_C_TESTS") or ""):match("sanitize") and " SANITIZE=1" or ""
  return run(("make -s -C %s %s%s"):format(shell_quote(ROOT), args, sanitize))
end

describe("make install", function()
  local prefix, work, env
  setup(function()
    prefix, work = temp_dir(), temp_dir()
    -- the installed module, Lua's default paths after it (lfs, cjson); run from `work`
    -- so that nothing of the source tree can be what is found
    env = ("cd %s && LUA_PATH=%s LUA_CPATH=%s "):format(shell_quote(work),
      shell_quote(prefix .. "/share/lua/5.4/?.lua;" .. prefix .. "/share/lua/5.4/?/init.lua;;"),
      shell_quote(prefix .. "/lib/lua/5.4/?.so;;"))
  end)
  teardown(function()
    if prefix then rm_rf(prefix) end
    if work then rm_rf(work) end
  end)

  it("installs the module, the launcher, the header, the libraries and lunet.pc", function()
    local r = make("install PREFIX=" .. shell_quote(prefix))
    assert.equal(0, r.code, explain(r))
    local files = {}
    for _, f in ipairs(files_under(prefix)) do files[f] = true end
    for _, f in ipairs({ "share/lua/5.4/lunet/init.lua", "share/lua/5.4/lunet/help.lua",
      "share/lua/5.4/lunet/experiment.lua", "lib/lua/5.4/lunet/core.so", "include/lunet.h",
      "lib/liblunet.a", "lib/liblunet.so", "lib/pkgconfig/lunet.pc", "bin/lunet" }) do
      assert.is_true(files[f] ~= nil, f .. " not installed")
    end
    assert.matches("^prefix=" .. prefix:gsub("%p", "%%%0") .. "\n", read(prefix .. "/lib/pkgconfig/lunet.pc"))
  end)

  it("gives a module that lua5.4 -e 'require\"lunet\"' loads from the prefix", function()
    local r = run(env .. "lua5.4 -e " .. shell_quote([[
      local lunet = require"lunet"
      print(lunet.version)
      print(package.searchpath("lunet", package.path))
      print(package.searchpath("lunet.core", package.cpath))
      local ds = lunet.dataset(lunet.tensor({ 0, 1, 1, 0 }, { 2, 1, 1, 2 }), { 0, 1 })
      local net = lunet.sequential { lunet.flatten(), lunet.linear(2, 2), lunet.log_softmax(), input = { 1, 1, 2 } }
      print(net:train { data = ds, iterations = 2, quiet = true }.iterations)
      lunet.help("net:train")]]))
    assert.equal(0, r.code, explain(r))
    local lines = {}
    for l in r.out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.matches("^%d+%.%d+%.%d+$", lines[1])
    assert.equal(prefix .. "/share/lua/5.4/lunet/init.lua", lines[2])
    assert.equal(prefix .. "/lib/lua/5.4/lunet/core.so", lines[3])
    assert.equal("2", lines[4])
    assert.matches("net:train{data, loss =", r.out, 1, true)  -- help reads the installed sources
    assert.matches(prefix .. "/share/lua/5.4/lunet/init.lua:", r.out, 1, true)
  end)

  it("installs a launcher that finds the module by itself", function()
    local lunet = require("lunet")
    local r = run(("cd %s && %s --version"):format(shell_quote(work), shell_quote(prefix .. "/bin/lunet")))
    assert.equal(0, r.code, explain(r))
    assert.equal(("lunet %s (engine revision %d, Lua 5.4)\n"):format(lunet.version, lunet.engine_revision), r.out)
    write(work .. "/where.lua", 'print(debug.getinfo(require("lunet").sequential, "S").source)\n')
    r = run(("cd %s && %s run where.lua"):format(shell_quote(work), shell_quote(prefix .. "/bin/lunet")))
    assert.equal("@" .. prefix .. "/share/lua/5.4/lunet/init.lua\n", r.out, explain(r))
    r = run(("cd %s && %s"):format(shell_quote(work), shell_quote(prefix .. "/bin/lunet")), "print(lunet.version)\n")
    assert.equal(0, r.code, explain(r))
    assert.matches("> print(lunet.version)\n" .. lunet.version .. "\n", r.out, 1, true)
  end)

  it("installs what `lunet report` runs", function()
    assert.equal("file", lfs.attributes(prefix .. "/share/lunet/scripts/seed_report.lua", "mode"))
    local r = run(("cd %s && %s report --help"):format(shell_quote(work), shell_quote(prefix .. "/bin/lunet")))
    assert.equal(0, r.code, explain(r))
    assert.matches("--runs N", r.out, 1, true)
  end)

  it("lets a C program build against it with pkg-config (examples/embed.c)", function()
    local pc = "PKG_CONFIG_PATH=" .. shell_quote(prefix .. "/lib/pkgconfig") .. " pkg-config "
    local flags = run(pc .. "--cflags --libs lunet")
    assert.equal(0, flags.code, explain(flags))
    assert.matches("-I" .. prefix .. "/include", flags.out, 1, true)
    assert.matches("-L" .. prefix .. "/lib -Wl,-rpath," .. prefix .. "/lib -llunet", flags.out, 1, true)
    -- a copy outside the source tree, so that only the installed lunet.h can be found
    write(work .. "/embed.c", assert(read(ROOT .. "/examples/embed.c")))
    -- (a sanitizer build installs an instrumented library: the program must be one too)
    local san = (os.getenv("LUNET_C_TESTS") or ""):match("sanitize") and " -fsanitize=address,undefined" or ""
    -- the README's line, nothing more: lunet.pc carries the rpath, so the program runs
    -- without LD_LIBRARY_PATH or ldconfig
    local cc = ("cd %s && cc -std=c11 -O1 -Wall -Wextra%s -o embed embed.c $(%s --cflags --libs lunet) -lm")
      :format(shell_quote(work), san, pc)
    local r = run(cc)
    assert.equal(0, r.code, explain(r))
    assert.equal("", r.err, explain(r)) -- no warnings
    r = run(("cd %s && env -u LD_LIBRARY_PATH ./embed model.lnet"):format(shell_quote(work)))
    assert.equal(0, r.code, explain(r))
    assert.matches("saved and loaded model.lnet", r.out, 1, true)
    local ldd = run("ldd " .. shell_quote(work .. "/embed"))
    assert.matches(prefix .. "/lib/liblunet.so", ldd.out, 1, true)
  end)

  it("is undone by make uninstall, which leaves no lunet file", function()
    local r = make("uninstall PREFIX=" .. shell_quote(prefix))
    assert.equal(0, r.code, explain(r))
    assert.same({}, files_under(prefix))
    local function no_lunet_dir(dir)
      for e in lfs.dir(dir) do
        if e ~= "." and e ~= ".." and lfs.attributes(dir .. "/" .. e, "mode") == "directory" then
          assert.is_nil(e:match("lunet"), dir .. "/" .. e .. " left behind")
          no_lunet_dir(dir .. "/" .. e)
        end
      end
    end
    no_lunet_dir(prefix)
  end)
end)

describe("make install DESTDIR=...", function()
  it("stages under DESTDIR with the final PREFIX in lunet.pc, and uninstalls from there", function()
    local dest = temp_dir()
    finally(function() rm_rf(dest) end)
    local r = make("install PREFIX=/opt/lunet DESTDIR=" .. shell_quote(dest))
    assert.equal(0, r.code, explain(r))
    assert.equal("file", lfs.attributes(dest .. "/opt/lunet/lib/lua/5.4/lunet/core.so", "mode"))
    assert.equal("file", lfs.attributes(dest .. "/opt/lunet/bin/lunet", "mode"))
    assert.matches("^prefix=/opt/lunet\n", read(dest .. "/opt/lunet/lib/pkgconfig/lunet.pc"))
    r = make("uninstall PREFIX=/opt/lunet DESTDIR=" .. shell_quote(dest))
    assert.equal(0, r.code, explain(r))
    assert.same({}, files_under(dest))
  end)
end)

describe("lunet-scm-1.rockspec", function()
  it("is a valid rockspec that builds with the Makefile", function()
    local env = {}
    local chunk = assert(loadfile(ROOT .. "/lunet-scm-1.rockspec", "t", env))
    chunk()
    assert.equal("lunet", env.package)
    assert.equal("scm-1", env.version)
    assert.equal("make", env.build.type)
    assert.equal("$(LUADIR)", env.build.install_variables.LUA_LDIR)
    assert.equal("$(LIBDIR)", env.build.install_variables.LUA_CDIR)
    assert.equal("$(PREFIX)", env.build.install_variables.PREFIX)
    local deps = table.concat(env.dependencies, " ")
    assert.matches("lua >= 5.4", deps, 1, true)
    -- every variable the rockspec sets is one the Makefile reads
    local makefile = read(ROOT .. "/Makefile")
    for _, vars in ipairs({ env.build.build_variables or {}, env.build.install_variables }) do
      for k in pairs(vars) do
        assert.matches("%$%(" .. k .. "%)", makefile, nil, k .. " is not used by the Makefile")
      end
    end
  end)

  it("installs through luarocks into a local tree, offline, next to Debian's Lua packages", function()
    if not run("command -v luarocks").ok then
      pending("luarocks not installed (Debian package luarocks)")
      return
    end
    -- a copy of the sources, so that this build cannot touch the tree under test
    local src, tree = temp_dir(), temp_dir()
    finally(function()
      rm_rf(src)
      rm_rf(tree)
    end)
    local r = run(("cd %s && tar cf - Makefile core/*.c core/*.h bindings/*.c bindings/*.h bindings/lunet/*.lua bin scripts "
      .. "tools/lunet.pc.in lunet-scm-1.rockspec | (cd %s && tar xf -)"):format(shell_quote(ROOT), shell_quote(src)))
    assert.equal(0, r.code, explain(r))
    -- as a user types it (no --deps-mode): nothing to download, lfs and cjson are
    -- Debian's; OPT=-O0 only to build quickly
    r = run(("cd %s && MAKEFLAGS=-j2 OPT=-O0 luarocks --lua-version 5.4 --tree %s make lunet-scm-1.rockspec")
      :format(shell_quote(src), shell_quote(tree)))
    assert.equal(0, r.code, explain(r))
    local q = run(("cd %s && LUA_PATH=%s LUA_CPATH=%s lua5.4 -e %s"):format(shell_quote(src),
      shell_quote(tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua;;"),
      shell_quote(tree .. "/lib/lua/5.4/?.so;;"),
      shell_quote('local l = require("lunet"); print(l.version, package.searchpath("lunet", package.path))')))
    assert.equal(0, q.code, explain(q))
    assert.matches("^%d+%.%d+%.%d+\t" .. tree:gsub("%p", "%%%0") .. "/share/lua/5.4/lunet/init.lua\n$", q.out)
    -- Lua's module directory holds the module only; the C part is a prefix of its own
    assert.same({ "lunet/core.so" }, files_under(tree .. "/lib/lua/5.4"))
    local rock = tree .. "/lib/luarocks/rocks-5.4/lunet/scm-1"
    for _, f in ipairs({ "c/lib/liblunet.so", "c/lib/liblunet.a", "c/lib/pkgconfig/lunet.pc", "c/include/lunet.h" }) do
      assert.equal("file", lfs.attributes(rock .. "/" .. f, "mode"), f)
    end
    assert.matches("^prefix=" .. rock:gsub("%p", "%%%0") .. "/c\n", read(rock .. "/c/lib/pkgconfig/lunet.pc"))
    -- the launcher, from a directory with no lunet in it, without `luarocks path`:
    -- LuaRocks' wrapper in TREE/bin, and the rock's own copy run directly
    for _, launcher in ipairs({ tree .. "/bin/lunet", rock .. "/bin/lunet" }) do
      q = run(("cd %s && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 %s --version")
        :format(shell_quote(tree), shell_quote(launcher)))
      assert.equal(0, q.code, explain(q))
      assert.matches("^lunet %d+%.%d+%.%d+ ", q.out)
      q = run(("cd %s && %s"):format(shell_quote(tree), shell_quote(launcher)), "print(lunet.version)\n")
      assert.equal(0, q.code, explain(q))
      assert.matches("> print%(lunet%.version%)\n%d+%.%d+%.%d+\n", q.out)
    end
    q = run(shell_quote(tree .. "/bin/lunet") .. " report --help")
    assert.equal(0, q.code, explain(q))
    assert.matches("--runs N", q.out, 1, true)
  end)
end)
