# parley: build, test and run.  `make` builds build/parley-tracker (the
# tracker daemon) and build/parley (the chat client);
# `make test` installs what is missing, builds a normal and a sanitized
# (ASan+UBSan) tree, and runs every test against both.

CC      ?= cc
PYTHON  ?= /usr/bin/python3
PKGS    := libuv msgpack sqlite3 libsodium
# The tracker alone links ICU (its spoof checker: tracker/confusable.c)
# and libpq (the shared registry: tracker/registry_pg.c);
# the peer never does.
TRACKER_PKGS := icu-uc icu-i18n libpq
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
OPT     ?= -O2 -g
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) $(TRACKER_PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TRACKER_LIBS := $(shell pkg-config --libs $(TRACKER_PKGS) 2>/dev/null)
CFLAGS_ALL  = $(CSTD) $(WARN) $(OPT) $(PKG_CFLAGS) -Ishared $(EXTRA_CFLAGS)
LDLIBS_ALL  = $(PKG_LIBS) $(EXTRA_LDFLAGS)
SAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# Debian packages: build and test dependencies.
DEB_BUILD := build-essential pkg-config libuv1-dev libmsgpack-dev libsqlite3-dev libsodium-dev libncurses-dev libicu-dev libpq-dev
DEB_TEST  := python3 python3-msgpack tmux iproute2 iptables sqlite3 man-db groff-base mandoc systemd strace valgrind jq curl postgresql

SHARED_SRC  := $(wildcard shared/*.c)
TRACKER_SRC := $(wildcard tracker/*.c)
PEER_SRC    := $(wildcard peer/*.c peer/ui/*.c)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
HDRS        := $(wildcard shared/*.h tracker/*.h peer/*.h peer/ui/*.h tests/unit/*.h)

B  := build
BA := build/asan

.PHONY: all asan deps test run stop clean check-deps
all: $(B)/parley-tracker $(B)/parley

define objrules
# The front ends in peer/ui/ include the peer's headers by name.
$(1)/obj/peer/%.o: CFLAGS_ALL += -Ipeer
$(1)/obj/%.o: %.c $(HDRS)
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS_ALL) $(2) -c $$< -o $$@
$(1)/parley-tracker: $(patsubst %.c,$(1)/obj/%.o,$(TRACKER_SRC) $(SHARED_SRC))
	$$(CC) $(2) $$^ -o $$@ $$(LDLIBS_ALL) $$(TRACKER_LIBS)
$(1)/parley: $(patsubst %.c,$(1)/obj/%.o,$(PEER_SRC) $(SHARED_SRC))
	$$(CC) $(2) $$^ -o $$@ $$(LDLIBS_ALL) $$(shell pkg-config --libs ncursesw 2>/dev/null)
# Each unit test binary links the shared code and the tracker's modules
# (minus its main) so registry tests run against the real code; a
# test_peer_* binary links the peer's modules (minus its main) instead: the
# two programs' modules are never linked together.  Each test_peer_* also
# links tests/unit/peer_fixture.c (the fake tracker and the recorders; the
# wildcard test_*.c does not take it for a test).
$(1)/obj/tests/unit/test_peer_%.o: CFLAGS_ALL += -Ipeer
$(1)/obj/tests/unit/peer_fixture.o: CFLAGS_ALL += -Ipeer
$(1)/tests/unit/test_peer_%: $(1)/obj/tests/unit/test_peer_%.o $(1)/obj/tests/unit/peer_fixture.o $(patsubst %.c,$(1)/obj/%.o,$(SHARED_SRC) $(filter-out peer/main.c,$(PEER_SRC)))
	@mkdir -p $$(@D)
	$$(CC) $(2) $$^ -o $$@ $$(LDLIBS_ALL) $$(shell pkg-config --libs ncursesw 2>/dev/null)
$(1)/tests/unit/%: $(1)/obj/tests/unit/%.o $(patsubst %.c,$(1)/obj/%.o,$(SHARED_SRC) $(filter-out tracker/main.c,$(TRACKER_SRC)))
	@mkdir -p $$(@D)
	$$(CC) $(2) $$^ -o $$@ $$(LDLIBS_ALL) $$(TRACKER_LIBS)
endef

$(eval $(call objrules,$(B),))
$(eval $(call objrules,$(BA),$(SAN_FLAGS)))

UNIT_BINS      := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRC))
UNIT_BINS_ASAN := $(patsubst tests/unit/%.c,$(BA)/tests/unit/%,$(UNIT_SRC))

asan: $(BA)/parley-tracker $(BA)/parley

# Installs only what pkg-config or the PATH does not already find, so a
# machine that has everything never touches apt.
deps:
	@missing=""; \
	for p in $(PKGS) $(TRACKER_PKGS) ncursesw; do pkg-config --exists $$p || missing=1; done; \
	for c in tmux ip iptables sqlite3 man groff mandoc systemd-analyze strace setpriv valgrind jq curl $(PYTHON); do command -v $$c >/dev/null 2>&1 || missing=1; done; \
	$(PYTHON) -c 'import msgpack' >/dev/null 2>&1 || missing=1; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing=1; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing Debian packages: $(DEB_BUILD) $(DEB_TEST)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEB_BUILD) $(DEB_TEST) >/dev/null || \
	  { echo "make deps: apt-get failed; install these packages by hand: $(DEB_BUILD) $(DEB_TEST)" >&2; exit 1; }; \
	fi

# Sub-make so the pkg-config flags are read after deps installed them.
test: deps
	@$(MAKE) --no-print-directory all asan $(UNIT_BINS) $(UNIT_BINS_ASAN)
	@$(PYTHON) tests/run.py --build $(B) --build $(BA) $(TESTS)

# The demo tracker and echo peer stay up until the last `make run` of this
# tree quits (tools/run.sh counts them); `make stop` stops them now.
run: deps
	@$(MAKE) --no-print-directory all
	@tools/run.sh $(NAME)

stop:
	@tools/run.sh --stop

clean:
	rm -rf build

# Keep object files of unit tests (make would delete them as intermediates).
.SECONDARY:

# make bench, make deps-bench: tools/bench/bench.mk
include tools/bench/bench.mk

# make install, make uninstall: tools/install.mk
include tools/install.mk

# make deb, make deps-deb (make test runs deps-deb too): tools/deb.mk
include tools/deb.mk

# make fuzz: tests/fuzz/fuzz.mk
include tests/fuzz/fuzz.mk

# make memcheck: tools/memcheck.mk
include tools/memcheck.mk
