/* remote: the requests that cross from one tracker to another on a shared
 * registry (PROTOCOL.md, "Across trackers").  A request whose target is
 * online at another tracker (reach.c: connect_request, connect_failed,
 * punch_request, relay_request) goes to that tracker, the target's home,
 * as a message in PostgreSQL (reg_forward: a NOTIFY on the home's own
 * channel, sent with the pass's batch); the home answers the requester the
 * same way.  Each message is one line of text:
 *
 *     KIND SP TO SP HOME SP BASE64
 *
 * KIND says what to do with it, TO is the folded name of the user it is
 * for (at the receiving tracker), HOME the id of the sending tracker (where
 * answers go) and BASE64 (RFC 4648, padded) one whole frame as the wire
 * carries it, length prefix included.  Nothing here is stored: a message
 * for a tracker that is gone is lost, and the peer's request times out. */
#ifndef PARLEY_REMOTE_H
#define PARLEY_REMOTE_H

#include "session.h"

/* The kinds.  RMT_PUSH: the frame goes to TO's session as it is (a
 * connect_request push, or the answer to a request TO made: a
 * punch_result, relay_result or error).  RMT_CONNECT_FAILED: the same, but
 * only to a session that listed the connect_failed feature.  RMT_PUNCH and
 * RMT_RELAY: a punch_request or relay_request from a user of HOME for TO,
 * handled at TO's home (reach.c: rch_punch_remote, rch_relay_remote). */
#define RMT_PUSH "push"
#define RMT_CONNECT_FAILED "connect_failed"
#define RMT_PUNCH "punch"
#define RMT_RELAY "relay"
/* RMT_MAIL: mail or a receipt for TO committed in the shared mailbox (the
 * frame, {t:"mail_kick"}, says nothing more): its windows are refilled
 * (mail.h, mail_kick). */
#define RMT_MAIL "mail"

/* Sends the frame m (finished here, whatever the result) to the tracker
 * whose id is home, for its user folded.  0; REG_EUNAVAIL, UV_E2BIG,
 * UV_ENOMEM (the caller answers its requester). */
int rmt_send(tracker_ctx *ctx, const char *home, const char *kind, const char *folded,
             msg_out *m);

/* An error frame (code, text, id) for folded at home: the answer to a
 * request that came from there.  Lost on failure (logged). */
void rmt_send_error(tracker_ctx *ctx, const char *home, const char *folded, const char *code,
                    const char *text, uint64_t id);

/* What the kinds that are requests mean, above this file: server.c fills
 * it with reach.c's and mail.c's (news goes up through the table).  o is
 * TO's session when it is online here, else NULL; m the decoded frame. */
typedef struct rmt_handlers {
    void (*punch)(tracker_ctx *ctx, session *o, const char *home, const msg_in *m);
    void (*relay)(tracker_ctx *ctx, session *o, const char *home, const msg_in *m);
    void (*mail)(tracker_ctx *ctx, const char *folded); /* only when TO is online here */
} rmt_handlers;

/* One message from another tracker (reg_on_forward's payload): pushes go
 * to their session here, requests to h. */
void rmt_received(tracker_ctx *ctx, const char *payload, const rmt_handlers *h);

#endif
