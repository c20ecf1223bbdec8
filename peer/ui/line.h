/* line: line mode's output, one plain-text line per event on stdout.  main.c
 * makes it ctx->fe_base unless --ui json is given, so it also shows what
 * comes before and after the terminal UI (--help, the last error, bye). */
#ifndef PARLEY_UI_LINE_H
#define PARLEY_UI_LINE_H

#include "events.h"

extern const ev_frontend line_frontend;

/* The flush entry of both stdout front ends (line and JSON). */
void line_flush(void *fe);

#endif
