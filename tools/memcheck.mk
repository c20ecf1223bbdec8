# tools/memcheck.mk: `make memcheck` -- valgrind memcheck on a
# short end-to-end scenario (tools/memcheck.sh: a tracker and two peers
# chatting in line mode, then a clean shutdown).  Fails on any memcheck
# error or definite leak.  The Makefile includes this file, so B and deps
# come from there.  `make test` runs the same script through
# tests/integration/test_memcheck.py (normal build only).
#
#   make memcheck                  build $(B)/parley-tracker and $(B)/parley, run it
#   make memcheck MEMCHECK_MESSAGES=20

MEMCHECK_MESSAGES ?= 3

.PHONY: memcheck

memcheck: deps
	@$(MAKE) --no-print-directory $(B)/parley-tracker $(B)/parley
	@MEMCHECK_MESSAGES=$(MEMCHECK_MESSAGES) tools/memcheck.sh $(B)
