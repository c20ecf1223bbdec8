/* listener: the peer's chat listener (--listen) and the endpoints it
 * advertises in register: every interface address with the listening port
 * (never a wildcard, never IPv6 link-local, non-loopback first) plus each
 * --advertise HOST:PORT.  Accepted connections go to chat_accept. */
#ifndef PARLEY_LISTENER_H
#define PARLEY_LISTENER_H

#include "addr.h"
#include "peer.h"

typedef struct lst lst;

/* Binds and listens (blocking DNS for a --listen hostname is fine here:
 * it runs before the loop does), logs "listening on HOST:PORT".  0 with
 * *out set, or a uv error with a message for the user in err. */
int lst_open(peer_ctx *ctx, lst **out, char *err, size_t errlen);

/* Fills out with up to max endpoints, computed now (interfaces may have
 * changed since the last call).  Returns how many. */
int lst_endpoints(lst *l, char out[][ADDR_STRLEN], int max);

/* Stops listening; freed once the handle is closed.  NULL is a no-op. */
void lst_close(lst *l);

#endif
