-- LuaRocks package of lunet, built with the project's Makefile:
--   luarocks --lua-version 5.4 make lunet-scm-1.rockspec
-- `make` builds the C engine and the module; `make install` puts the Lua files in
-- LUA_LDIR (the rock's $(LUADIR)), lunet.core in LUA_CDIR ($(LIBDIR)), the launcher
-- and the scripts under PREFIX (the rock's directory), and the header, C libraries
-- and lunet.pc under C_PREFIX (c/ in the rock's directory).
rockspec_format = "3.0"
package = "lunet"
version = "scm-1"
source = {
  url = "git+https://example.invalid/lunet.git",
}
description = {
  summary = "CNN training engine in C11, driven from Lua 5.4",
  detailed = [[
lunet trains convolutional networks (conv2d, pooling, batchnorm, dropout, linear; SGD,
Adam, AdamW with PyTorch's update rules) with every hot loop in C, and runs repeat-run
experiments on a thread pool with loss statistics, result files and gnuplot plots.]],
  license = "unspecified",
  labels = { "neural-networks", "cnn", "machine-learning" },
}
-- Only Lua itself: lunet also needs luafilesystem and lua-cjson, which Debian ships as
-- lua-filesystem and lua-cjson. LuaRocks cannot see Debian's packages, so listing the
-- two rocks here would make `luarocks make` fetch them (and fail offline) although Lua
-- finds them; without Debian's packages: luarocks install luafilesystem lua-cjson.
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  ZLIB = { header = "zlib.h", library = "z" },
}
build = {
  type = "make",
  build_variables = {
    CC = "$(CC)",
    CFLAGS = "-I$(ZLIB_INCDIR)",
    LUA_INC = "-I$(LUA_INCDIR)",
  },
  install_variables = {
    PREFIX = "$(PREFIX)",
    LUA_LDIR = "$(LUADIR)",
    LUA_CDIR = "$(LIBDIR)",
    -- the C library, lunet.h and lunet.pc: c/lib, c/include and c/lib/pkgconfig in the
    -- rock (`luarocks show --rock-dir lunet`), not in Lua's module directory
    C_PREFIX = "$(PREFIX)/c",
  },
}
