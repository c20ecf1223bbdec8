/* server: the tracker's side of the control connection (docs/PROTOCOL.md),
 * as main.c, listen.c and the fuzz harness see it.  Behind it: accept.c
 * (new connections and their limits), session.c (one per connection),
 * server.c (the dispatch table: which message is legal in which state),
 * the handlers (registration.c, queries.c, reach.c, mail.c), presence.c and
 * ratelimit.c. */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include "tracker.h"

/* Once, after the registry and the mailbox are open and before the first
 * connection: hooks the presence and mail pushes to the registry's batch
 * end, starts the mailbox sweep and the --verify-threads.  0 or a negative
 * error (srv_close still follows). */
int srv_open(tracker_ctx *ctx);

/* The listeners' connection callback; the listening handle's data is the
 * tracker_ctx.  Accepts, starts a session and arms the 10 s first-frame
 * timeout. */
void srv_on_connection(uv_stream_t *listener, int status);

/* A session's connection callbacks (accept.c hands them to sess_new):
 * every frame goes through the dispatch table; a close takes a registered
 * user offline (registry and presence) and frees the session. */
struct conn;
void srv_on_frame(struct conn *c, const char *payload, size_t len);
void srv_on_closed(struct conn *c, int reason);

/* Tells every client the tracker is shutting down and closes each
 * connection (their sessions are freed by the close callbacks; registered
 * users are marked offline in the registry); stops the mailbox sweep.
 * Idempotent. */
void srv_stop(tracker_ctx *ctx);

/* For the metrics: bytes sent on control connections so far (closed ones
 * included), and the presence subscriptions (presence.h) held now,
 * the names they cover and the connections in all mode. */
uint64_t srv_control_bytes_sent(const tracker_ctx *ctx);
void srv_presence_counts(const tracker_ctx *ctx, size_t *subs, size_t *names, size_t *all);

/* After the loop ran out and before reg_close: stops the verify threads,
 * unhooks the registry and drops the presence pushes no pass sent.  A no-op when srv_open never
 * ran. */
void srv_close(tracker_ctx *ctx);

#endif
