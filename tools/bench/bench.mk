# tools/bench/bench.mk: `make bench` and what it needs.  The
# Makefile includes this file at its end, so B, CC, CFLAGS_ALL, LDLIBS_ALL,
# SHARED_SRC, PYTHON and the $(B)/obj/%.o rule come from there.
#
#   make deps-bench          install redis-server, ngircd, socat if missing
#   make bench               build, run every figure, print the table and
#                            rewrite the generated part of docs/BENCHMARKS.md
#   make bench BENCH_ARGS='--figures 1 --samples 7'   (see bench.py --help)
#   make bench-icount        instructions per request, tracker vs redis (callgrind)
#   make bench-icount ICOUNT_ARGS='--side loadgen'   the load generator's own

# fwd.c, streamer.c, chatrtt.c and verify.c are programs of their own
# (figure 4, 5 and 1 helpers).
BENCH_TOOLS := tools/bench/fwd.c tools/bench/streamer.c tools/bench/chatrtt.c tools/bench/verify.c
BENCH_SRC  := $(filter-out $(BENCH_TOOLS),$(wildcard tools/bench/*.c))
BENCH_HDRS := $(wildcard tools/bench/*.h)
BENCH_DEBS := redis-server ngircd socat
BENCH_DOC  ?= docs/BENCHMARKS.md
BENCH_ARGS ?=
ICOUNT_ARGS ?=

.PHONY: bench deps-bench

# The objects come from the Makefile's $(B)/obj/%.o rule; this adds the
# load generator's own headers to what they depend on.
$(patsubst %.c,$(B)/obj/%.o,$(BENCH_SRC)): $(BENCH_HDRS)

$(B)/loadgen: $(patsubst %.c,$(B)/obj/%.o,$(BENCH_SRC) $(SHARED_SRC))
	$(CC) $^ -o $@ $(LDLIBS_ALL)

$(B)/obj/tools/bench/streamer.o $(B)/obj/tools/bench/chatrtt.o: tools/bench/lineio.h

# The forwarder is plain epoll (no libraries).
$(B)/fwd: $(B)/obj/tools/bench/fwd.o
	$(CC) $^ -o $@

$(B)/streamer: $(B)/obj/tools/bench/streamer.o
	$(CC) $^ -o $@ -lpthread

# Figure 5's driver, reference ping and echo (no libraries).
$(B)/chatrtt: $(B)/obj/tools/bench/chatrtt.o
	$(CC) $^ -o $@

# Figure 1's yardstick: single-core crypto_sign_verify_detached calls per
# second (libsodium only).
$(B)/verify: $(B)/obj/tools/bench/verify.o
	$(CC) $^ -o $@ $(LDLIBS_ALL)

# Installs only what is missing, so a machine that has everything never
# touches apt.
deps-bench:
	@missing=""; \
	for c in redis-server ngircd socat taskset; do \
	  command -v $$c >/dev/null 2>&1 || [ -x /usr/sbin/$$c ] || missing=1; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps-bench: installing Debian packages: $(BENCH_DEBS) util-linux"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BENCH_DEBS) util-linux >/dev/null || \
	  { echo "make deps-bench: apt-get failed; install these packages by hand: $(BENCH_DEBS)" >&2; exit 1; }; \
	fi

# Sub-make so the pkg-config flags are read after deps installed them.
bench: deps deps-bench
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) $(B)/parley-tracker $(B)/parley $(B)/loadgen $(B)/fwd $(B)/streamer $(B)/chatrtt $(B)/verify
	@$(PYTHON) tools/bench/bench.py --build $(B) --doc '$(BENCH_DOC)' $(BENCH_ARGS)

.PHONY: bench-icount
# make bench-icount: user-space instructions per request, tracker vs
# redis-server, under valgrind's callgrind (stable on a noisy machine).
bench-icount: deps deps-bench
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) $(B)/parley-tracker $(B)/loadgen
	@$(PYTHON) tools/bench/icount.py --build $(B) $(ICOUNT_ARGS)

.PHONY: bench-dial
# make bench-dial: the connectivity matrix (path, success, /dial -> connected ms per pair of
# NAT router kinds) in a NAT lab (needs root); DIAL_ARGS="--runs 5 --pairs pp-drop:pp-drop"
bench-dial: deps
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) $(B)/parley-tracker $(B)/parley
	@$(PYTHON) tools/bench/dial.py --build $(B) $(DIAL_ARGS)
