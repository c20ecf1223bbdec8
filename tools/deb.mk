# tools/deb.mk: `make deb`, the Debian packages, and what it needs.  The
# Makefile includes this file at its end (deps and test come from there).
#
#   make deps-deb    install debhelper, lintian and bash-completion if missing
#                    (after `make deps`, never at the same time: one apt-get
#                    at once); `make deps` alone never installs them
#   make deb         build-deps and deb tools, then the packages, then lintian
#   make deb-build   the packages and lintian only (tests/integration/test_deb.py)
#
# The packages (debian/control) are parley (the peer, its man page and bash
# completion, the jq bot example) and parley-tracker (the tracker, its man
# page and completion, the systemd unit, enabled and started on install).
# They end up in $(DEB_DIR):
#
#   parley_VERSION_ARCH.deb, parley-tracker_VERSION_ARCH.deb
#   parley_VERSION_ARCH.changes, parley_VERSION_ARCH.buildinfo, lintian.txt
#   with DEB_DBGSYM=1 also parley-dbgsym_..., parley-tracker-dbgsym_...deb
#
# so `sudo apt install ./build/deb/parley*.deb` installs both.  VERSION is
# the newest entry of debian/changelog (test_deb checks it against
# shared/version.h).  DEB_BUILD_OPTIONS is passed on (nocheck, noopt...).
#
# dpkg-buildpackage writes its results to the parent of the tree it builds,
# and `debian/rules clean` runs first; so that neither the parent of this
# tree nor build/ is touched, the build runs in a fresh copy of the sources
# (the files git tracks plus the untracked ones it does not ignore, as they
# are in the working tree) at $(DEB_DIR)/work/parley-UPSTREAM, and the
# results are moved up to $(DEB_DIR).  The copy is removed after a good build
# and kept after a failed one.  The packages are rebuilt only when a source
# file is newer than the last good build.
#
# lintian runs on the .changes (both packages and the build info) and any
# error or warning fails the build; its full output, info tags included, is
# kept in $(DEB_DIR)/lintian.txt.  Overrides, each with its reason:
# debian/*.lintian-overrides.
#
# `make test` runs deps-deb and deb-build too (below), so that test_deb runs
# for real on CI, which runs `make test` as root; without the tools test_deb
# skips.

DEB_DIR   ?= build/deb
DEB_TOOLS := dpkg-dev debhelper lintian bash-completion
DEB_ENV   := env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL -u PREFIX -u DESTDIR \
             -u BINDIR -u MANDIR -u MAN1DIR -u UNITDIR -u COMPLETIONSDIR -u DATADIR -u INSTALL \
             LC_ALL=C.UTF-8
# No -dbgsym packages unless DEB_DBGSYM=1: they too would be named
# parley*.deb and `apt install ./build/deb/parley*.deb` would take them.
DEB_DBGSYM ?=
DEB_OPTIONS = $(strip $(DEB_BUILD_OPTIONS) $(if $(DEB_DBGSYM),,noautodbgsym))

.PHONY: deb deb-build deps-deb

# Order-only on deps: under make -j the two would otherwise run apt-get at
# the same time and one would fail on the dpkg lock.
deps-deb: | deps
	@missing=""; \
	for c in dpkg-buildpackage dpkg-parsechangelog dh lintian; do \
	  command -v $$c >/dev/null 2>&1 || missing=1; \
	done; \
	[ -f /usr/share/bash-completion/bash_completion ] || missing=1; \
	if [ -n "$$missing" ]; then \
	  echo "make deps-deb: installing Debian packages: $(DEB_TOOLS)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEB_TOOLS) >/dev/null || \
	  { echo "make deps-deb: apt-get failed; install these packages by hand: $(DEB_TOOLS)" >&2; exit 1; }; \
	fi

# make test: the tools, then the packages built before the tests start (so
# test_deb does not spend its time limit building them); a failed build
# does not stop the other tests: test_deb runs deb-build again and fails
# with its output.
test: deps-deb test-deb-build
.PHONY: test-deb-build
test-deb-build: deps-deb
	@mkdir -p $(DEB_DIR) && echo "make test: building the packages (make deb-build; log in $(DEB_DIR)/build.log)" && \
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) deb-build >$(DEB_DIR)/build.log 2>&1 || \
	  echo "make test: make deb-build failed (see $(DEB_DIR)/build.log); test_deb will report it"

# Sub-make: the version and the source list are read only when building.
deb: deps deps-deb
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) deb-build

ifneq ($(filter deb-build $(DEB_DIR)/.built,$(MAKECMDGOALS)),)
DEB_VERSION  := $(shell dpkg-parsechangelog -l debian/changelog -S Version)
DEB_UPSTREAM := $(shell echo '$(DEB_VERSION)' | sed 's/-[^-]*$$//')
DEB_ARCH     := $(shell dpkg-architecture -q DEB_HOST_ARCH)
ifeq ($(DEB_VERSION),)
$(error make deb: no version in debian/changelog (is dpkg-dev installed? make deps-deb))
endif
DEB_CHANGES  := $(DEB_DIR)/parley_$(DEB_VERSION)_$(DEB_ARCH).changes
DEB_WORK     := $(DEB_DIR)/work
DEB_TREE     := $(DEB_WORK)/parley-$(DEB_UPSTREAM)
# The files of the source copy: in a git checkout those git tracks plus the
# untracked ones it does not ignore (deleted ones left out), else every file
# but build/ and .git.  A change under tests/ does not change the packages,
# so it does not make them again.
DEB_LIST_CMD := { git ls-files -z -co --exclude-standard 2>/dev/null || \
                  find . -path ./build -prune -o -path ./.git -prune -o \( -type f -o -type l \) -printf '%P\0'; }
DEB_SOURCES  := $(filter-out tests/%,$(wildcard $(shell $(DEB_LIST_CMD) | tr '\0' '\n')))

deb-build: $(DEB_DIR)/.built
	@echo "make deb: $(DEB_DIR): $$(cd $(DEB_DIR) && ls *.deb | tr '\n' ' ')"

$(DEB_DIR)/.built: $(DEB_SOURCES)
	rm -rf $(DEB_WORK)
	mkdir -p $(DEB_TREE)
	$(DEB_LIST_CMD) | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C $(DEB_TREE)
	cd $(DEB_TREE) && $(DEB_ENV) DEB_BUILD_OPTIONS='$(DEB_OPTIONS)' dpkg-buildpackage -us -uc -b -Jauto
	rm -f $(DEB_DIR)/*.deb $(DEB_DIR)/*.changes $(DEB_DIR)/*.buildinfo \
	  $(DEB_DIR)/lintian.txt $@
	mv $(DEB_WORK)/*.deb $(DEB_WORK)/*.changes $(DEB_WORK)/*.buildinfo $(DEB_DIR)/
	@echo "lintian $(DEB_CHANGES)"
	@$(DEB_ENV) lintian --display-info --fail-on error,warning $(DEB_CHANGES) \
	  > $(DEB_DIR)/lintian.txt 2>&1; status=$$?; cat $(DEB_DIR)/lintian.txt; \
	if [ $$status -ne 0 ]; then \
	  echo "make deb: lintian found errors or warnings (above; $(DEB_DIR)/lintian.txt)" >&2; exit 1; fi
	rm -rf $(DEB_WORK)
	touch $@
endif
