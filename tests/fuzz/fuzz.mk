# tests/fuzz/fuzz.mk: `make fuzz` -- libFuzzer harnesses for the
# frame reader, the message decoder, the tracker's and the peer's receive
# paths.  The Makefile includes this file at its end, so B, CFLAGS_ALL,
# LDLIBS_ALL, TRACKER_LIBS, SHARED_SRC, TRACKER_SRC, PEER_SRC, HDRS and
# PYTHON come from there.
#
#   make fuzz                      build, run each harness FUZZ_SECONDS (60)
#   make fuzz FUZZ_SECONDS=600 FUZZ_ONLY="tracker peer"
#   make fuzz-build                only build $(B)/fuzz/fuzz_*
#   make deps-fuzz                 install clang + libclang-rt-14-dev if missing
#
# Crashes land in $(B)/fuzz/crashes/; the corpus grows in $(B)/fuzz/corpus/
# (the committed seeds in tests/fuzz/corpus/ are only read).

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 70000
FUZZ_ONLY    ?=
FUZZ_ARGS    ?=
FUZZ_B       := $(B)/fuzz
FUZZ_DEBS    := clang libclang-rt-14-dev
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS   = $(CFLAGS_ALL) -Itracker -Ipeer -Itests/fuzz -O1 -g $(FUZZ_SAN) \
                -fsanitize=fuzzer-no-link -DPARLEY_FUZZ
FUZZ_HDRS    := $(wildcard tests/fuzz/*.h)
FUZZ_NAMES   := frame msg tracker peer
FUZZ_BINS    := $(patsubst %,$(FUZZ_B)/fuzz_%,$(FUZZ_NAMES))

.PHONY: fuzz fuzz-build deps-fuzz

$(FUZZ_B)/obj/%.o: %.c $(HDRS) $(FUZZ_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

FUZZ_OBJ = $(patsubst %.c,$(FUZZ_B)/obj/%.o,$(1))
FUZZ_LINK = $(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ -o $@ $(LDLIBS_ALL)

$(FUZZ_B)/fuzz_frame: $(call FUZZ_OBJ,tests/fuzz/fuzz_frame.c $(SHARED_SRC))
	$(FUZZ_LINK)
$(FUZZ_B)/fuzz_msg: $(call FUZZ_OBJ,tests/fuzz/fuzz_msg.c $(SHARED_SRC))
	$(FUZZ_LINK)
# The tracker's real modules minus its main.
$(FUZZ_B)/fuzz_tracker: $(call FUZZ_OBJ,tests/fuzz/fuzz_tracker.c tests/fuzz/fuzz_io.c \
                          $(SHARED_SRC) $(filter-out tracker/main.c,$(TRACKER_SRC)))
	$(FUZZ_LINK) $(TRACKER_LIBS)
# The peer's real modules minus its main (the harness wires them as main.c
# does and sets ctx->on_quit).
$(FUZZ_B)/fuzz_peer: $(call FUZZ_OBJ,tests/fuzz/fuzz_peer.c tests/fuzz/fuzz_io.c \
                       $(SHARED_SRC) $(filter-out peer/main.c,$(PEER_SRC)))
	$(FUZZ_LINK) $(shell pkg-config --libs ncursesw 2>/dev/null)

# clang and its fuzzer runtime, installed only when a trial link fails.
deps-fuzz:
	@if ! printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' | \
	    $(FUZZ_CC) -x c - -fsanitize=fuzzer,address,undefined -o /dev/null >/dev/null 2>&1; then \
	  echo "make deps-fuzz: installing Debian packages: $(FUZZ_DEBS)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(FUZZ_DEBS) >/dev/null || \
	  { echo "make deps-fuzz: apt-get failed; install these packages by hand: $(FUZZ_DEBS)" >&2; exit 1; }; \
	fi

fuzz-build: $(FUZZ_BINS)

# Sub-make so a freshly installed clang is used.
fuzz: deps deps-fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@$(PYTHON) tests/fuzz/run_fuzz.py --bin-dir $(FUZZ_B) --seconds $(FUZZ_SECONDS) \
	  --max-len $(FUZZ_MAX_LEN) $(if $(FUZZ_ONLY),--only $(FUZZ_ONLY)) $(FUZZ_ARGS)
