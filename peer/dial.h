/* dial: reaching a user by name, the connection ladder.  Looks the name up
 * at the tracker (or in the key cache while the tracker is down), then runs
 * three paths at once: direct (a happy-eyeballs race to every advertised
 * endpoint and to the tracker-observed address: IPv6 and IPv4 interleaved,
 * a new attempt every 250 ms while earlier ones are pending or at once when
 * one fails), reverse (the tracker asks the other side to dial us) and,
 * after ctx->relay_after_ms without a link or once the others failed, a
 * relay session through the tracker.  The first link to finish the
 * handshake wins; the rest are closed. */
#ifndef PARLEY_DIAL_H
#define PARLEY_DIAL_H

#include "link.h"
#include "peer.h"

typedef struct dialer dialer;

/* Fires once, from the loop.  Success: l is an up link whose handler the
 * callee must set (link_set_handler), status 0 and reason NULL.  Failure:
 * l is NULL, reason completes "cannot reach NAME: ..." (for example "bob
 * is offline") and status says which kind: UV_ENOENT no such user,
 * UV_EHOSTDOWN offline, UV_ENOTCONN the tracker is unreachable,
 * UV_EHOSTUNREACH no path answered in time, UV_EACCES a path answered
 * but authentication failed (a changed key), UV_EALREADY the other side
 * linked to us meanwhile, another error from the tracker's lookup.  The
 * dialer is freed after the callback returns. */
typedef void (*dial_cb)(void *data, chatlink *l, int status, const char *reason);

/* Starts dialing name.  0 with *out set, or UV_ENOMEM / UV_EINVAL (no
 * callback then). */
int dial_start(peer_ctx *ctx, const char *name, dial_cb cb, void *data, dialer **out);

/* A relayed chat looks for a direct path: dial_start's ladder without
 * the relay (a fresh lookup, direct attempts, hole punch, reverse),
 * failing with UV_EHOSTUNREACH once each of them failed or after 3 s.
 * Same contract as dial_start. */
int dial_upgrade(peer_ctx *ctx, const char *name, dial_cb cb, void *data, dialer **out);

/* Answers a connect_request: direct attempts only, to u's endpoints (u
 * comes from the tracker's push; its key is the tracker's).  Same
 * contract as dial_start. */
struct ctl_user;
int dial_reverse(peer_ctx *ctx, const struct ctl_user *u, dial_cb cb, void *data, dialer **out);

/* found(data) fires from the loop once the tracker said the user exists
 * (online or not), before the dial goes on; the dial's own callback still
 * fires later.  For /dial, which makes the user current only then. */
void dial_on_found(dialer *d, void (*found)(void *data));

/* 1 when the dial asked the tracker for a reverse connection. */
int dial_asked_reverse(const dialer *d);

/* 1 while the dial's hole punch aims at ss: a link accepted from there
 * came from the other side's punch. */
struct sockaddr_storage;
int dial_punches_to(const dialer *d, const struct sockaddr_storage *ss);

/* Abandons the dial; the callback will not fire.  NULL is a no-op. */
void dial_cancel(dialer *d);

/* Chat got a link from the other side (their dial, or our reverse request
 * answered): the dial starts no relay any more (one already asked for
 * goes on: the tie rule may keep it at both ends) and lets its direct
 * attempts finish (one may still win: see the tie rule in chat.c); if none
 * does, it reports a failure the caller can ignore.  NULL is a no-op. */
void dial_inbound(dialer *d);

/* The other side reports (through the tracker: connect_failed) that its
 * reverse dial to us failed: once the direct attempts are over too, the
 * relay starts now instead of after --relay-after.  tag: the one our
 * connect_request carried (0 from a peer too old to echo it); another
 * tag is the late answer to an earlier dial's request, and is ignored.
 * why is for the log.  NULL is a no-op; so is a dial that sent no
 * reverse request. */
void dial_reverse_failed(dialer *d, uint64_t tag, const char *why);

#endif
