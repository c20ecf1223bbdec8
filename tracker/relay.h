/* relay: the tracker's relay sessions (PROTOCOL.md, "Relay").  A session
 * joins exactly the two users one relay_request named: the requester and
 * the user it asked for.  Each side opens its own relay connection, proves
 * its name with relay_join (checked in reach.c); from then on the tracker
 * reads no more frames on it.  Once both are in, each gets relay_ready and
 * the tracker only copies bytes between them, with back-pressure, a rate
 * limit and an idle timeout; what the first side sent while it waited is
 * held and copied after its relay_ready. */
#ifndef PARLEY_RELAY_H
#define PARLEY_RELAY_H

#include "conn.h"
#include "identity.h"
#include "tracker.h"

/* Creates a session between from and to (folded names and names as
 * stored) and fills token.  0; UV_EBUSY when one of them already has
 * cfg.relay_per_user sessions, UV_EAGAIN when the tracker has
 * cfg.relay_max; UV_ENOMEM.  why gets a sentence for the error frame. */
int rly_create(tracker_ctx *ctx, const char *from_name, const char *from_fold,
               const char *to_name, const char *to_fold, unsigned char token[IDENT_SESSION],
               char *why, size_t whylen);

/* Joins c, whose owner proved the name folded (key and signature checked),
 * to the session token.  0: the relay owns c from now on (its callbacks and
 * data are replaced, and it is raw: the bytes after relay_join are relay
 * data; the caller forgets it).  Otherwise c is untouched and the result
 * names the error frame to send: UV_ENOENT (no such session: "not_found"),
 * UV_EPERM (folded is not one of the session's two users, or that side
 * joined already: "forbidden").  Call from c's frame callback. */
int rly_join(tracker_ctx *ctx, conn *c, const unsigned char token[IDENT_SESSION],
             const char *folded);

/* Closes every session (shutdown).  Sessions free themselves once their
 * handles closed. */
void rly_stop(tracker_ctx *ctx);

#endif
