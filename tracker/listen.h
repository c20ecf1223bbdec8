/* listen: from the --listen specs to listening sockets.  Every spec, numeric
 * or a hostname, goes through uv_getaddrinfo (never blocking the loop); once
 * all are resolved the sockets are bound in order and each logs
 * "listening on HOST:PORT" with the port actually bound. */
#ifndef PARLEY_LISTEN_H
#define PARLEY_LISTEN_H

#include "tracker.h"

/* Fires once, from the loop: status 0 when every listener is up, or a
 * negative error after a message saying which address failed and why. */
typedef void (*lsn_done_cb)(tracker_ctx *ctx, int status);

/* Starts resolving ctx->cfg.listen.  New connections go to
 * srv_on_connection.  0, or a negative error (done will not fire). */
int lsn_start(tracker_ctx *ctx, lsn_done_cb done);

/* Cancels resolution and closes every listener (freed by their close
 * callbacks).  Idempotent. */
void lsn_stop(tracker_ctx *ctx);

#endif
