/* command: the line-mode commands (/list, /dial, /msg, /bye, /quit, /help
 * and plain lines), parsed and handed to chat_ and ctl_. */
#ifndef PARLEY_COMMAND_H
#define PARLEY_COMMAND_H

#include "peer.h"

#include <stddef.h>

/* Runs one input line (NUL-terminated, no newline).  Problems are reported
 * as "error: ..." events. */
void cmd_line(peer_ctx *ctx, const char *line, size_t len);

/* Prints the help lines, each starting with "  /". */
void cmd_help(peer_ctx *ctx);

#endif
