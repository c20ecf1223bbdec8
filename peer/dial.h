/* dial: reaching a user by name.  Looks the name up at the tracker (or in
 * the key cache while the tracker is down), then races connections to every
 * advertised endpoint, happy-eyeballs style: IPv6 and IPv4 interleaved, a
 * new attempt every 250 ms while earlier ones are pending or at once when
 * one fails.  The first link to finish the handshake wins; the rest are
 * closed. */
#ifndef PARLEY_DIAL_H
#define PARLEY_DIAL_H

#include "link.h"
#include "peer.h"

typedef struct dialer dialer;

/* Fires once, from the loop.  Success: l is an up link whose handler the
 * callee must set (link_set_handler) and reason is NULL.  Failure: l is NULL
 * and reason completes "cannot reach NAME: ..." (for example "bob is
 * offline").  The dialer is freed after the callback returns. */
typedef void (*dial_cb)(void *data, chatlink *l, const char *reason);

/* Starts dialing name.  0 with *out set, or UV_ENOMEM / UV_EINVAL (no
 * callback then). */
int dial_start(peer_ctx *ctx, const char *name, dial_cb cb, void *data, dialer **out);

/* Abandons the dial; the callback will not fire.  NULL is a no-op. */
void dial_cancel(dialer *d);

#endif
