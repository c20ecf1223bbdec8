/* line_input: the stdin reader of line mode and --ui json.  Reads commands
 * from stdin, which may be a terminal, a pipe or a regular file, one line
 * at a time, and hands each line to main.c, which runs it as a command.
 * What those modes print is their ev_frontend (line.c, json.c); this
 * reader prints nothing but the error for an over-long line. */
#ifndef PARLEY_UI_LINE_INPUT_H
#define PARLEY_UI_LINE_INPUT_H

#include "peer.h"

#include <stddef.h>
#include <uv.h>

typedef struct line_in line_in;

/* One input line without its newline (and without a trailing CR),
 * NUL-terminated; valid only during the call.  The callback may call
 * line_in_close. */
typedef void (*line_in_cb)(void *data, const char *line, size_t len);
/* End of input: status 0 for EOF, else the read error.  Fires once. */
typedef void (*line_in_eof_cb)(void *data, int status);

#define LINE_IN_MAX 16384 /* longer lines are reported and skipped */

/* Starts reading stdin on ctx->loop; the callbacks get ctx as data.  An
 * over-long line is reported with ev_error and skipped.  0 with *out set,
 * or a uv error.  Callbacks fire from the loop only. */
int line_in_open(peer_ctx *ctx, line_in_cb on_line, line_in_eof_cb on_eof, line_in **out);

/* Stops reading; in is freed once its handle (or pending file read) is
 * done.  No callbacks fire after this.  NULL is a no-op. */
void line_in_close(line_in *in);

#endif
