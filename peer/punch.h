/* punch: TCP hole punching, one side of it (PROTOCOL.md, "Reaching a
 * peer").  The tracker gave both users each other's public address (the
 * observed IP with the advertised chat port) and a delay that makes their
 * first SYNs leave at the same moment.  Each side then connects to the
 * other from its chat port, again and again for PUNCH_WINDOW_MS: a
 * port-preserving NAT lets the other side's SYN in once our own SYN has
 * gone out through it, and the two connects meet (a TCP simultaneous
 * open) or one lands on the other's listener.  The first try that
 * connects runs the chat handshake; the puncher reports it once it is up.
 * Used by dial.c (the side that asked, as the dialer) and inbound.c (the
 * side asked, whose role follows the other's hello: see link_punch). */
#ifndef PARLEY_PUNCH_H
#define PARLEY_PUNCH_H

#include "link.h"
#include "peer.h"

#define PUNCH_WINDOW_MS 2000 /* tries start until this long after the first */
#define PUNCH_BUSY_MS 10     /* the 4-tuple is busy (our own dial to it): wait this long */
#define PUNCH_MAX_TRIES 4000 /* in the lab a try takes ~0.3 ms; across the internet an RTT */

typedef struct puncher puncher;

/* Fires once, from the loop.  l: an up link (punched; the callee sets its
 * handler), why NULL.  Or l NULL: the window passed with nothing up, or a
 * try reached someone who failed authentication (why says what). */
typedef void (*punch_cb)(void *data, chatlink *l, const char *why);

/* Starts punching to sa after delay_ms: dialer as for link_punch, name and
 * key the user the tracker paired us with.  0 with *out set, or UV_ENOMEM
 * (no callback then). */
int punch_start(peer_ctx *ctx, const struct sockaddr *sa, uint64_t delay_ms, int dialer,
                const char *name, const unsigned char key[IDENT_PK], punch_cb cb, void *data,
                puncher **out);

/* Stops: closes the try in flight; the callback does not fire.  NULL is a
 * no-op. */
void punch_cancel(puncher *p);

#endif
