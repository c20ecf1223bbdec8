/* command: the commands every front end shares (/list, /dial, /msg, /bye,
 * /whois, /trust, /quit, /help and plain lines), parsed and handed to
 * chat_, ctl_ and pins_. */
#ifndef PARLEY_COMMAND_H
#define PARLEY_COMMAND_H

#include "peer.h"

#include <stddef.h>

/* Runs one input line (NUL-terminated, no newline).  Problems are reported
 * as "error: ..." events. */
void cmd_line(peer_ctx *ctx, const char *line, size_t len);

/* /dial NAME and /msg NAME TEXT for a front end that has the name apart
 * (a click, the open conversation). */
void cmd_dial(peer_ctx *ctx, const char *name);
void cmd_send_to(peer_ctx *ctx, const char *name, const char *text, size_t len);

/* Prints the help lines, each starting with "  /". */
void cmd_help(peer_ctx *ctx);

#endif
