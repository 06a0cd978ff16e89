-- LuaRocks package of lunet, built with the project's Makefile:
--   luarocks --lua-version 5.4 make lunet-scm-1.rockspec
-- `make` builds the C engine and the module; `make install` puts the Lua files in
-- LUA_LDIR (the rock's $(LUADIR)), lunet.core in LUA_CDIR ($(LIBDIR)) and the launcher,
-- header, C libraries and lunet.pc under PREFIX (the rock's directory).
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
dependencies = {
  "lua >= 5.4, < 5.5",
  "luafilesystem",
  "lua-cjson",
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
  },
}
