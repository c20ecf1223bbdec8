/* server: the tracker's side of the control connection (docs/PROTOCOL.md).
 * One session per accepted connection, a dispatch table from message type to
 * handler, presence pushes, and the first-frame and ttl timeouts. */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include "tracker.h"

/* The listeners' connection callback; the listening handle's data is the
 * tracker_ctx.  Accepts, starts a session and arms the 10 s first-frame
 * timeout. */
void srv_on_connection(uv_stream_t *listener, int status);

/* Tells every client the tracker is shutting down and closes each
 * connection (their sessions are freed by the close callbacks; registered
 * users are marked offline in the registry).  Idempotent. */
void srv_stop(tracker_ctx *ctx);

#endif
