/* inbound: chat links the other side starts.  Four kinds arrive: a
 * connection accepted on the chat port, our dial back answering someone's
 * connect_request (a reverse connection), a hole punch it timed through
 * the tracker, and a relay session another
 * user set up for us.  Each runs the chat handshake here; once it is up it
 * goes to the owner (chat.c, wired in main.c) through inbound_handler, and
 * one that fails is forgotten.  Strangers may connect and then say
 * nothing, so accepted links still in their handshake are bounded per
 * host and in all. */
#ifndef PARLEY_INBOUND_H
#define PARLEY_INBOUND_H

#include "control.h"
#include "link.h"
#include "peer.h"

#include <uv.h>

typedef struct inbound inbound;

#define INBOUND_MAX_ACCEPTING 64         /* accepted links in their handshake, in all */
#define INBOUND_MAX_ACCEPTING_PER_HOST 8 /* ... from one IPv4 address or IPv6 /64 */

/* Both fire from the loop (a link or dial callback). */
typedef struct inbound_handler {
    /* An incoming link is up; the callee takes it over at once
     * (link_set_handler) or closes it. */
    void (*up)(void *data, chatlink *l);
    /* 1 when a link to the user whose folded name is fold is up already:
     * their connect_request then needs no dial back (their dial finds the
     * link). */
    int (*linked)(void *data, const char *fold);
} inbound_handler;

/* 0 with *out set, or UV_ENOMEM.  h is borrowed for in's life. */
int inbound_open(peer_ctx *ctx, const inbound_handler *h, void *data, inbound **out);

/* Takes one pending connection from the chat port (port_accept_cb). */
void inbound_accept(inbound *in, uv_stream_t *server);

/* u asked the tracker to have us dial it (ctl_handler.connect_request):
 * dial u's endpoints; if that fails, say so through the tracker
 * (ctl_connect_failed, with the request's tag) so its dial relays at
 * once. */
void inbound_connect_request(inbound *in, const ctl_user *u, uint64_t tag);

/* u asked the tracker for a hole punch with us (ctl_handler.punch):
 * connect to addr from the chat port after delay_ms, repeatedly for a
 * moment (punch.h); a link that comes up is incoming like the others. */
void inbound_punch(inbound *in, const ctl_user *u, const char *addr, unsigned delay_ms);

/* from set up a relay session for us (ctl_handler.relay_offer): join it
 * and run the handshake over it as the acceptor. */
void inbound_relay_offer(inbound *in, const char *from, const unsigned char token[IDENT_SESSION]);

/* Drops every link, dial and relay join still in progress (no callbacks)
 * and frees in.  NULL is a no-op. */
void inbound_close(inbound *in);

#endif
