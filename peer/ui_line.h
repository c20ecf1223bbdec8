/* ui_line: the line-mode user interface.  Reads commands from stdin, which
 * may be a terminal, a pipe or a regular file, one line at a time, and
 * writes events to stdout, one line each, flushed at once (TEAM.md lists
 * the formats).  The terminal UI of a later issue will offer the same
 * ui_event entry point. */
#ifndef PARLEY_UI_LINE_H
#define PARLEY_UI_LINE_H

#include "log.h"

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

/* Starts reading stdin.  0 with *out set, or a uv error.  Callbacks fire
 * from the loop only. */
int ui_open(uv_loop_t *loop, const logger *lg, ui_line_cb on_line, ui_eof_cb on_eof, void *data,
            ui **out);

/* Prints one event line (printf format, no newline) on stdout and flushes.
 * u may be NULL (before ui_open or after ui_close). */
void ui_event(ui *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Stops reading; u is freed once its handle (or pending file read) is
 * done.  No callbacks fire after this.  NULL is a no-op. */
void ui_close(ui *u);

#endif
