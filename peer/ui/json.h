/* json: --ui json's output, one JSON object per event and line on stdout,
 * for scripts and bots.  It keeps no state, so main.c makes it ctx->fe_base
 * and it stays the format while the peer shuts down. */
#ifndef PARLEY_UI_JSON_H
#define PARLEY_UI_JSON_H

#include "events.h"

extern const ev_frontend json_frontend;

#endif
