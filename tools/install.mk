# tools/install.mk: `make install` and `make uninstall`.  The Makefile
# includes this file, so B (the build directory holding parley-tracker and
# parley) and its build rules come from there.
#
#   make install   [PREFIX=/usr/local] [DESTDIR=]   build if needed, then install
#   make uninstall [PREFIX=/usr/local] [DESTDIR=]   remove what install put there
#
# What goes where (DESTDIR is prepended to every path, for packaging and tests):
#
#   $(BINDIR)/parley-tracker, parley           0755   BINDIR  = PREFIX/bin
#   $(MAN1DIR)/parley-tracker.1, parley.1      0644   MAN1DIR = PREFIX/share/man/man1
#   $(UNITDIR)/parley-tracker.service          0644   UNITDIR = PREFIX/lib/systemd/system
#   $(COMPLETIONSDIR)/parley-tracker, parley   0644   COMPLETIONSDIR =
#                                                       PREFIX/share/bash-completion/completions
#   $(DATADIR)/examples/parley-bot.sh          0755   the --ui json bot of README.md
#   $(DATADIR)/install-manifest                0644   DATADIR = PREFIX/share/parley
#
# The unit goes under PREFIX/lib/systemd/system because systemd searches both
# /usr/local/lib/systemd/system and /usr/lib/systemd/system, so the default
# and PREFIX=/usr both work; /etc/systemd/system is left to the administrator.
# With any other PREFIX (/opt/parley) pass UNITDIR=/etc/systemd/system, or link
# the unit with `systemctl link`.  The installed unit's ExecStart names
# $(BINDIR)/parley-tracker.  (debian/rules passes UNITDIR=/lib/systemd/system,
# where Debian 12 keeps the units of its packages.)
#
# bash-completion loads a command's completion on first use from
# bash-completion/completions under each directory of XDG_DATA_DIRS (by
# default /usr/local/share and /usr/share), so the default PREFIX and
# PREFIX=/usr both work; with another PREFIX source the two files from
# ~/.bashrc or pass COMPLETIONSDIR=/usr/share/bash-completion/completions.
#
# install writes the manifest last: the absolute paths (without DESTDIR) of
# the files it installed, one per line.  uninstall removes exactly the files
# listed there (each must be one of the names install writes, so an edited
# manifest cannot remove anything else), then the manifest and DATADIR if
# empty.  Directories such as BINDIR are shared with other software and stay.
# Without a manifest it removes the same list computed from the variables.

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
MAN1DIR ?= $(MANDIR)/man1
UNITDIR ?= $(PREFIX)/lib/systemd/system
COMPLETIONSDIR ?= $(PREFIX)/share/bash-completion/completions
DATADIR ?= $(PREFIX)/share/parley
INSTALL ?= install

INSTALL_UNIT     := parley-tracker.service
INSTALL_MANIFEST  = $(DATADIR)/install-manifest
INSTALL_LIST      = $(BINDIR)/parley-tracker $(BINDIR)/parley \
                    $(MAN1DIR)/parley-tracker.1 $(MAN1DIR)/parley.1 \
                    $(UNITDIR)/$(INSTALL_UNIT) \
                    $(COMPLETIONSDIR)/parley-tracker $(COMPLETIONSDIR)/parley \
                    $(DATADIR)/examples/parley-bot.sh

.PHONY: install uninstall

# The unit in contrib/ names /usr/local/bin/parley-tracker (right for the
# default PREFIX); the copy installed names $(BINDIR)/parley-tracker.  The
# umask keeps the directories install creates readable whatever the caller's
# umask is; the files get explicit modes.
install: $(B)/parley-tracker $(B)/parley
	@case "$(PREFIX)$(BINDIR)$(MAN1DIR)$(UNITDIR)$(COMPLETIONSDIR)$(DATADIR)" in *' '*) \
	  echo "make install: paths with spaces are not supported: PREFIX=$(PREFIX)" >&2; exit 2;; esac
	umask 022 && $(INSTALL) -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(MAN1DIR)" \
	  "$(DESTDIR)$(UNITDIR)" "$(DESTDIR)$(COMPLETIONSDIR)" "$(DESTDIR)$(DATADIR)/examples"
	$(INSTALL) -m 0755 $(B)/parley-tracker "$(DESTDIR)$(BINDIR)/parley-tracker"
	$(INSTALL) -m 0755 $(B)/parley "$(DESTDIR)$(BINDIR)/parley"
	$(INSTALL) -m 0644 docs/man/parley-tracker.1 "$(DESTDIR)$(MAN1DIR)/parley-tracker.1"
	$(INSTALL) -m 0644 docs/man/parley.1 "$(DESTDIR)$(MAN1DIR)/parley.1"
	$(INSTALL) -m 0644 contrib/bash-completion/parley-tracker "$(DESTDIR)$(COMPLETIONSDIR)/parley-tracker"
	$(INSTALL) -m 0644 contrib/bash-completion/parley "$(DESTDIR)$(COMPLETIONSDIR)/parley"
	$(INSTALL) -m 0755 contrib/parley-bot.sh "$(DESTDIR)$(DATADIR)/examples/parley-bot.sh"
	sed 's|/usr/local/bin/parley-tracker|$(BINDIR)/parley-tracker|g' contrib/$(INSTALL_UNIT) \
	  > "$(DESTDIR)$(UNITDIR)/$(INSTALL_UNIT).tmp"
	grep -q '^ExecStart=$(BINDIR)/parley-tracker ' "$(DESTDIR)$(UNITDIR)/$(INSTALL_UNIT).tmp" || \
	  { echo "make install: contrib/$(INSTALL_UNIT) has no 'ExecStart=/usr/local/bin/parley-tracker ' line to point at $(BINDIR)/parley-tracker" >&2; \
	    rm -f "$(DESTDIR)$(UNITDIR)/$(INSTALL_UNIT).tmp"; exit 1; }
	chmod 0644 "$(DESTDIR)$(UNITDIR)/$(INSTALL_UNIT).tmp"
	mv -f "$(DESTDIR)$(UNITDIR)/$(INSTALL_UNIT).tmp" "$(DESTDIR)$(UNITDIR)/$(INSTALL_UNIT)"
	printf '%s\n' $(INSTALL_LIST) > "$(DESTDIR)$(INSTALL_MANIFEST).tmp"
	chmod 0644 "$(DESTDIR)$(INSTALL_MANIFEST).tmp"
	mv -f "$(DESTDIR)$(INSTALL_MANIFEST).tmp" "$(DESTDIR)$(INSTALL_MANIFEST)"
	@if [ -z "$(DESTDIR)" ]; then \
	  echo "installed; to run the tracker as a service: systemctl daemon-reload && systemctl enable --now $(INSTALL_UNIT)"; \
	fi

# Only basenames install writes are accepted from the manifest (the two
# completions are named like the programs), never a path with ".." nor a
# directory (DATADIR itself ends in /parley): a damaged or edited manifest
# cannot make this remove anything install did not put there.
uninstall:
	@manifest="$(DESTDIR)$(INSTALL_MANIFEST)"; \
	if [ -f "$$manifest" ]; then \
	  list=$$(cat "$$manifest") || exit 1; \
	else \
	  echo "make uninstall: no $$manifest; removing the files install would have put under PREFIX=$(PREFIX)"; \
	  list="$(INSTALL_LIST)"; \
	fi; \
	status=0; \
	for f in $$list; do \
	  case "$$f" in \
	    *..*|[!/]*) echo "make uninstall: refusing manifest entry $$f (not an absolute path without ..)" >&2; status=1; continue;; \
	    */parley-tracker|*/parley|*/parley-tracker.1|*/parley.1|*/$(INSTALL_UNIT)|*/examples/parley-bot.sh) ;; \
	    *) echo "make uninstall: refusing manifest entry $$f (not a file make install writes)" >&2; status=1; continue;; \
	  esac; \
	  if [ -d "$(DESTDIR)$$f" ] && [ ! -L "$(DESTDIR)$$f" ]; then \
	    echo "make uninstall: refusing manifest entry $$f (a directory)" >&2; status=1; \
	  elif [ -e "$(DESTDIR)$$f" ] || [ -L "$(DESTDIR)$$f" ]; then \
	    echo "rm -f $(DESTDIR)$$f"; rm -f "$(DESTDIR)$$f" || status=1; \
	  else \
	    echo "make uninstall: $(DESTDIR)$$f is already gone"; \
	  fi; \
	done; \
	if [ $$status -ne 0 ]; then \
	  echo "make uninstall: some files were not removed; $$manifest kept" >&2; exit 1; \
	fi; \
	rm -f "$$manifest" && { rmdir "$(DESTDIR)$(DATADIR)/examples" "$(DESTDIR)$(DATADIR)" 2>/dev/null || true; }
