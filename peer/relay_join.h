/* relay_join: one relay connection to the tracker (PROTOCOL.md,
 * "Relay").  It connects to the tracker we are registered with (or to the
 * one holding the session, when a relay_result named another), says hello
 * with role "relay", proves our name with relay_join for one session token
 * and waits for relay_ready.  Then it hands the connection over: the chat
 * link handshake (link_adopt) runs over it exactly as over a direct one,
 * and the tracker only forwards the bytes. */
#ifndef PARLEY_RELAY_JOIN_H
#define PARLEY_RELAY_JOIN_H

#include "conn.h"
#include "identity.h"
#include "peer.h"

typedef struct rjoin rjoin;

/* Fires once, from the loop (a frame or close callback).  Success: c is the
 * relay connection after relay_ready and why is NULL; the callee must take
 * it over at once (link_adopt) -- bytes after relay_ready follow as frames
 * to the new owner.  Failure: c is NULL and why says what went wrong.  The
 * rjoin is freed after the callback returns. */
typedef void (*rjoin_ready_cb)(void *data, conn *c, const char *why);

/* Starts joining session token at the tracker at (a numeric HOST:PORT:
 * another tracker on our tracker's shared registry, which holds the
 * session) or, at NULL, ours.  0 with *out set; UV_ENOTCONN when not
 * registered with a tracker; UV_EINVAL for a bad at; UV_ENOMEM (no
 * callback in any of these cases). */
int rjoin_open(peer_ctx *ctx, const unsigned char token[IDENT_SESSION], const char *at,
               rjoin_ready_cb cb, void *data, rjoin **out);

/* Abandons the join: the connection closes and the callback will not
 * fire.  NULL is a no-op. */
void rjoin_cancel(rjoin *r);

#endif
