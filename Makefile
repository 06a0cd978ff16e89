# lunet - build, test, benchmark, install.  `make help` lists the targets.

CC       ?= cc
OPT      ?= -O3
CSTD      = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN      = -Wall -Wextra
LUA_INC  := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LIBS      = -lz -lm -pthread
PREFIX   ?= /usr/local
LUA      ?= lua5.4
BUSTED   ?= $(LUA) /usr/bin/busted
MNIST_DIR ?= $(CURDIR)/data/mnist
export MNIST_DIR

# SANITIZE=1: AddressSanitizer + UndefinedBehaviorSanitizer build, in its own tree.
ifeq ($(SANITIZE),1)
  OPT     = -O1
  SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  BUILD   = build/sanitize
else
  SANFLAGS =
  BUILD   = build/release
endif

CFLAGS_ALL = $(CSTD) $(OPT) -g $(WARN) -fPIC -pthread $(SANFLAGS) $(CFLAGS)

CORE_SRC  = $(wildcard core/*.c)
CORE_OBJ  = $(patsubst core/%.c,$(BUILD)/core/%.o,$(CORE_SRC))
CORE_HDR  = $(wildcard core/*.h)
STATIC    = $(BUILD)/liblunet.a
SHARED    = $(BUILD)/liblunet.so
MODULE    = $(BUILD)/lunet/core.so
C_TESTS   = $(patsubst spec/c/%.c,$(BUILD)/spec/%,$(wildcard spec/c/test_*.c))

.PHONY: all test test-cluster deps mnist bench report install uninstall clean help lint examples fuzz valgrind doc

# Everything make builds stays under $(BUILD): bin/lunet and the specs find lunet.core
# there (LUNET_BUILD names another build tree), `make install` takes it from there.
all: $(STATIC) $(SHARED) $(MODULE) $(C_TESTS)

help:
	@echo "make            build build/release/: liblunet.a, liblunet.so, the Lua module's lunet/core.so"
	@echo "make test       run every spec (busted); MNIST specs need MNIST_DIR"
	@echo "make test-cluster  Slurm and ssh recipes with real daemons (root; tools/cluster/)"
	@echo "make report     reproduce the study (scripts/seed_report.lua); QUICK=1 for a short one"
	@echo "make bench      speed against PyTorch (bench/)"
	@echo "make deps       install missing Debian packages"
	@echo "make mnist      download MNIST into data/mnist and verify checksums"
	@echo "make install PREFIX=/usr/local, make uninstall, make clean"
	@echo "make examples  build the C examples;  make lint, make doc (docs/api), make fuzz, make valgrind"

$(BUILD)/core/%.o: core/%.c $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(STATIC): $(CORE_OBJ)
	rm -f $@
	ar rcs $@ $^

$(SHARED): $(CORE_OBJ)
	$(CC) -shared $(SANFLAGS) -o $@.tmp $^ $(LIBS) && mv -f $@.tmp $@

# the binding: lua_module.c (the entry), lua_aux.c (the shared helper), one file per class;
# hidden symbols but luaopen_lunet_core, so the files' shared helpers (check_obj, pin ...)
# can neither clash with nor be interposed by a host program's names
MODULE_SRC = $(wildcard bindings/*.c)
$(MODULE): $(MODULE_SRC) $(wildcard bindings/*.h) core/lunet.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fvisibility=hidden $(LUA_INC) -shared -o $@.tmp $(MODULE_SRC) $(STATIC) $(LIBS) && mv -f $@.tmp $@

$(BUILD)/spec/%: spec/c/%.c spec/c/tap.h spec/c/fixture.h $(STATIC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATIC) $(LIBS)

# The last line of the test output is "N passed, N failed".
# With SANITIZE=1 the instrumented module needs the sanitizer runtimes in the (not
# instrumented) lua5.4 process; tools/sanitize.sh is the full ASan/UBSan/TSan run.
ifeq ($(SANITIZE),1)
  TEST_ENV = LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" ASAN_OPTIONS=detect_leaks=0
endif
# The specs find lunet through .busted (spec/support/paths.lua): bindings/ and $(LUNET_BUILD).
test: all examples
	LUNET_BUILD=$(BUILD) LUNET_C_TESTS=$(BUILD)/spec $(TEST_ENV) $(BUSTED) -o spec/support/summary_handler.lua --exclude-tags=cluster spec

# The cluster recipes with real daemons (Slurm, sshd + GNU parallel; spec/cluster_spec.lua,
# about 30 s, as root): tagged #cluster, so `make test` leaves them out.
test-cluster: all
	$(BUSTED) -o spec/support/summary_handler.lua --tags=cluster spec/cluster_spec.lua

deps:
	sh tools/deps.sh

mnist:
	sh tools/fetch_mnist.sh data/mnist

report: all
	bin/lunet report $(if $(QUICK),--quick,)

bench: all
	bin/lunet run bench/bench.lua
	bin/lunet run bench/sweep.lua

# ---- install: the Lua module where Lua 5.4 looks for it, the C library, header,
# pkg-config file and the `lunet` launcher.  DESTDIR is honoured for packaging.
LUA_LDIR ?= $(PREFIX)/share/lua/5.4
LUA_CDIR ?= $(PREFIX)/lib/lua/5.4
LUA_FILES = $(wildcard bindings/lunet/*.lua)
# The C library, its header and lunet.pc go under C_PREFIX (include/, lib/,
# lib/pkgconfig/); the rockspec keeps them inside the rock (LuaRocks would move a
# rock's lib/ into Lua's module directory).
C_PREFIX ?= $(PREFIX)
VERSION  := $(shell sed -n 's/^\#define LUNET_VERSION "\(.*\)"/\1/p' core/lunet.h)

install: all
	install -d $(DESTDIR)$(LUA_LDIR)/lunet $(DESTDIR)$(LUA_CDIR)/lunet $(DESTDIR)$(C_PREFIX)/include \
	  $(DESTDIR)$(C_PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(LUA_FILES) $(DESTDIR)$(LUA_LDIR)/lunet/
	install -m 755 $(MODULE) $(DESTDIR)$(LUA_CDIR)/lunet/core.so
	install -m 644 core/lunet.h $(DESTDIR)$(C_PREFIX)/include/lunet.h
	install -m 644 $(STATIC) $(DESTDIR)$(C_PREFIX)/lib/liblunet.a
	install -m 755 $(SHARED) $(DESTDIR)$(C_PREFIX)/lib/liblunet.so
	sed -e 's|@PREFIX@|$(C_PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	  tools/lunet.pc.in > $(DESTDIR)$(C_PREFIX)/lib/pkgconfig/lunet.pc
	if [ -f bin/lunet ]; then install -m 755 bin/lunet $(DESTDIR)$(PREFIX)/bin/lunet; fi
	install -d $(DESTDIR)$(PREFIX)/share/lunet/scripts
	$(if $(wildcard scripts/*.lua),install -m 644 $(wildcard scripts/*.lua) $(DESTDIR)$(PREFIX)/share/lunet/scripts/)

uninstall:
	rm -f $(addprefix $(DESTDIR)$(LUA_LDIR)/lunet/,$(notdir $(LUA_FILES)))
	rm -f $(DESTDIR)$(LUA_CDIR)/lunet/core.so $(DESTDIR)$(C_PREFIX)/include/lunet.h
	rm -f $(DESTDIR)$(C_PREFIX)/lib/liblunet.a $(DESTDIR)$(C_PREFIX)/lib/liblunet.so
	rm -f $(DESTDIR)$(C_PREFIX)/lib/pkgconfig/lunet.pc $(DESTDIR)$(PREFIX)/bin/lunet
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/lunet/scripts/,$(notdir $(wildcard scripts/*.lua)))
	-rmdir $(DESTDIR)$(PREFIX)/share/lunet/scripts $(DESTDIR)$(PREFIX)/share/lunet 2>/dev/null
	-rmdir $(DESTDIR)$(LUA_LDIR)/lunet $(DESTDIR)$(LUA_CDIR)/lunet 2>/dev/null

# ---- C examples (examples/*.c), linked against the static library
EXAMPLES = $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
examples: $(EXAMPLES)
$(BUILD)/examples/%: examples/%.c $(STATIC) core/lunet.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Icore -o $@ $< $(STATIC) $(LIBS)

# ---- checks beyond the specs (scripts in tools/ and fuzz/)
lint:
	sh tools/lint.sh
doc:
	sh tools/doc.sh
fuzz:
	sh fuzz/run.sh $(FUZZ_SECONDS)
valgrind: all
	sh tools/valgrind.sh

clean:
	rm -rf build
