/* handlers: the message handlers of the control connection, which the
 * dispatch table in server.c names, grouped by the file that holds them.
 * Each is a disp_fn: owner is the session, and the table already checked
 * that the type is legal in the session's state.
 *
 * A request a registered user may send (list, lookup, connect_request,
 * relay_request, connect_failed, the mail frames) has a second handler for a connection
 * that has not registered: it checks the fields as the first would (a
 * malformed request is bad_message either way) and then refuses with
 * not_registered. */
#ifndef PARLEY_HANDLERS_H
#define PARLEY_HANDLERS_H

#include "dispatch.h"

struct session;

/* registration.c: hello and register (answered once the registry has
 * committed the binding). */
void rgn_hello(void *owner, const msg_in *m);
void rgn_register(void *owner, const msg_in *m);

/* queries.c: reading the directory. */
void qry_list(void *owner, const msg_in *m);
void qry_lookup(void *owner, const msg_in *m);
void qry_list_unregistered(void *owner, const msg_in *m);
void qry_lookup_unregistered(void *owner, const msg_in *m);

/* reach.c: getting two users connected (reverse dial, relay). */
void rch_connect_request(void *owner, const msg_in *m);
void rch_connect_failed(void *owner, const msg_in *m);
void rch_relay_request(void *owner, const msg_in *m);
void rch_punch_request(void *owner, const msg_in *m);
/* Times a round trip to a session whose peer takes our pings (it listed
 * "punch"): a ping now, the answer measured by rch_pong.  No-op for
 * others, or while one is in flight. */
void rch_ping(struct session *s);
void rch_pong(void *owner, const msg_in *m);
void rch_relay_join(void *owner, const msg_in *m);
void rch_request_unregistered(void *owner, const msg_in *m); /* connect_request, relay_request */
/* A punch_request or relay_request that a user of the tracker home made
 * for o, our user (remote.h; NULL: not online here now, answered
 * offline): handled as the local one is, the requester's answer sent back
 * to home. */
struct tracker_ctx;
void rch_punch_remote(struct tracker_ctx *ctx, struct session *o, const char *home,
                      const msg_in *m);
void rch_relay_remote(struct tracker_ctx *ctx, struct session *o, const char *home,
                      const msg_in *m);
void rch_connect_failed_unregistered(void *owner, const msg_in *m);

/* mail.c: the offline mailbox (mail_put answered once committed; the
 * acknowledgements have no answer). */
void mail_put(void *owner, const msg_in *m);
void mail_ack(void *owner, const msg_in *m);
void mail_receipt_ack(void *owner, const msg_in *m);
void mail_put_unregistered(void *owner, const msg_in *m);
void mail_ack_unregistered(void *owner, const msg_in *m);
void mail_receipt_ack_unregistered(void *owner, const msg_in *m);

#endif
