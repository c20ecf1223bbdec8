/* ui_line: the line-mode input.  Reads commands from stdin, which may be a
 * terminal, a pipe or a regular file, one line at a time.  Line mode's
 * output (one event per line on stdout, TEAM.md lists the formats) is the
 * ev_frontend in ui_line_events.c; a JSON front end can reuse this reader. */
#ifndef PARLEY_UI_LINE_H
#define PARLEY_UI_LINE_H

#include "peer.h"

#include <stddef.h>
#include <uv.h>

typedef struct ui ui;

/* One input line without its newline (and without a trailing CR),
 * NUL-terminated; valid only during the call.  The callback may call
 * ui_close. */
typedef void (*ui_line_cb)(void *data, const char *line, size_t len);
/* End of input: status 0 for EOF, else the read error.  Fires once. */
typedef void (*ui_eof_cb)(void *data, int status);

#define UI_LINE_MAX 16384 /* longer lines are reported and skipped */

/* Starts reading stdin on ctx->loop; the callbacks get ctx as data.  An
 * over-long line is reported with ev_error and skipped.  0 with *out set,
 * or a uv error.  Callbacks fire from the loop only. */
int ui_open(peer_ctx *ctx, ui_line_cb on_line, ui_eof_cb on_eof, ui **out);

/* Stops reading; u is freed once its handle (or pending file read) is
 * done.  No callbacks fire after this.  NULL is a no-op. */
void ui_close(ui *u);

#endif
