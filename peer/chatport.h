/* chatport: where other peers reach us.  The chat port is the listening
 * socket (--listen) for chat links, plus the endpoints advertised in
 * register: every interface address with the listening port (never a
 * wildcard, never IPv6 link-local, non-loopback first) and each
 * --advertise HOST:PORT.  A pending connection goes to the accept callback
 * its owner gave. */
#ifndef PARLEY_CHATPORT_H
#define PARLEY_CHATPORT_H

#include "addr.h"
#include "peer.h"

typedef struct chatport chatport;

/* Fires from the loop for each pending connection on server; the callee
 * takes it with uv_accept (link_accept). */
typedef void (*port_accept_cb)(void *data, uv_stream_t *server);

/* Binds and listens (blocking DNS for a --listen hostname is fine here:
 * it runs before the loop does), logs "listening on HOST:PORT".  0 with
 * *out set, or a uv error with a message for the user in err. */
int port_open(peer_ctx *ctx, port_accept_cb on_accept, void *data, chatport **out, char *err,
              size_t errlen);

/* Fills out with up to max endpoints, computed now (interfaces may have
 * changed since the last call).  Returns how many. */
int port_endpoints(chatport *l, char out[][ADDR_STRLEN], int max);

/* A socket for an outgoing chat connection to an address of family, bound
 * to the listening address and port (SO_REUSEADDR, SO_REUSEPORT), so a
 * port-preserving NAT shows the peers we dial the same public port it shows
 * for our listener: the port hole punching aims at.  The caller owns it
 * (uv_tcp_open, or close).  -1 when the listener cannot match that family
 * or the bind fails; the caller then dials from an ephemeral port. */
uv_os_sock_t port_dial_socket(chatport *l, int family);

/* Stops listening; freed once the handle is closed.  NULL is a no-op. */
void port_close(chatport *l);

#endif
