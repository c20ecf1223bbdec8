/* tui: the terminal UI (--ui tui, the default when stdin and stdout are
 * terminals): a users panel, a conversation pane per peer, a status bar and
 * an input line, drawn with ncursesw on the peer's one libuv loop.  It is
 * an ev_frontend (events.h); input runs the same commands as line mode
 * (command.c). */
#ifndef PARLEY_UI_TUI_H
#define PARLEY_UI_TUI_H

#include "peer.h"

#include <stddef.h>

/* 1 when stdin and stdout are both terminals. */
int tui_possible(void);

/* Takes over the terminal and becomes the active front end.  While it runs,
 * stderr (the log) goes to HOME/peer.log (home: the --home directory).
 * The terminal is given back by ev_close_frontend (peer_quit does it), and
 * the tui frees itself once its handles are closed.  0, or a negative
 * error with a message for the user in err (the terminal is then left as
 * it was). */
int tui_open(peer_ctx *ctx, const char *home, char *err, size_t errlen);

/* HOME/parley.conf's tracker setting ("" when it has none), read before
 * the tracker is dialed, in every mode; the whole file is checked, so a
 * bad line stops the peer here with PATH line N: ... in err.  0 or a
 * negative error. */
int tui_conf_tracker(const char *home, char *out, size_t outlen, char *err, size_t errlen);

#endif
