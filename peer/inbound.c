/* inbound: a list of what may still become an incoming link.  Each entry
 * holds one of an accepted link in its handshake, a reverse dial, a hole
 * punch or a relay join; it leaves the list when that is up (handed to the owner) or
 * has failed. */
#include "inbound.h"

#include "addr.h"
#include "dial.h"
#include "name.h"
#include "punch.h"
#include "relay_join.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pending {
    struct pending *next;
    inbound *in;
    chatlink *link;         /* an accepted or relayed link in its handshake */
    dialer *dial;           /* a reverse dial */
    rjoin *relay;           /* a relay session being joined */
    puncher *punch;         /* a hole punch the other side asked for */
    uint64_t tag;           /* a reverse dial: its connect_request's, for connect_failed */
    char name[NAME_BUFLEN]; /* a reverse dial or punch: who asked for it */
} pending;

struct inbound {
    peer_ctx *ctx;
    const inbound_handler *h;
    void *data;
    pending *list;
};

static const link_handler handshake_handler;

static pending *add_pending(inbound *in) {
    pending *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->in = in;
    p->next = in->list;
    in->list = p;
    return p;
}

static void forget(inbound *in, pending *p) {
    for (pending **pp = &in->list; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            free(p);
            return;
        }
    }
}

static pending *find_link(inbound *in, const chatlink *l) {
    for (pending *p = in->list; p; p = p->next)
        if (p->link == l)
            return p;
    return NULL;
}

/* ---- the handshake of an accepted or relayed link ---- */

static void on_link_up(chatlink *l, void *data) {
    inbound *in = data;
    pending *p = find_link(in, l);
    if (p)
        forget(in, p);
    link_set_handler(l, NULL, NULL); /* the owner sets its own */
    in->h->up(in->data, l);
}

static void on_link_closed(chatlink *l, int reason, const char *why, void *data) {
    inbound *in = data;
    pending *p = find_link(in, l);
    if (p)
        forget(in, p);
}

/* Nothing but up and closed reaches a link before its handshake is over. */
static const link_handler handshake_handler = {.up = on_link_up, .closed = on_link_closed};

/* ---- accepted connections ---- */

/* Refuses l when too many accepted links are still in their handshake, from
 * its host or in all (a real handshake takes milliseconds, so the bounds
 * cost nobody).  1 when it was refused. */
static int over_limits(inbound *in, chatlink *l) {
    const struct sockaddr_storage *sa = link_peer_sa(l);
    unsigned total = 0, same = 0;
    for (pending *o = in->list; o; o = o->next) {
        if (o->link && o->link != l && !link_dialed(o->link) && !link_relayed(o->link)) {
            total++;
            same += (unsigned)addr_same_host(link_peer_sa(o->link), sa);
        }
    }
    int host = same >= INBOUND_MAX_ACCEPTING_PER_HOST;
    if (!host && total < INBOUND_MAX_ACCEPTING)
        return 0;
    char text[160];
    snprintf(text, sizeof text, "too many connections %s (at most %d); try again later",
             host ? "from your address in their handshake" : "in their handshake",
             host ? INBOUND_MAX_ACCEPTING_PER_HOST : INBOUND_MAX_ACCEPTING);
    log_warn(&in->ctx->lg, "refusing a chat connection from %s: %s", link_addr(l), text);
    link_set_handler(l, NULL, NULL); /* untracked from here: no callback may reach in */
    link_refuse(l, text);
    return 1;
}

void inbound_accept(inbound *in, uv_stream_t *server) {
    pending *p = add_pending(in);
    if (!p) {
        log_warn(&in->ctx->lg, "out of memory accepting a chat connection");
        return;
    }
    int r = link_accept(in->ctx, server, &handshake_handler, in, &p->link);
    if (r) {
        log_warn(&in->ctx->lg, "accepting a chat connection: %s", uv_strerror(r));
        forget(in, p);
        return;
    }
    if (over_limits(in, p->link))
        forget(in, p);
}

/* ---- reverse connections and hole punches ---- */

/* A dial back or punch p is over: l (up) goes to the owner; name gets
 * who it was for.  1 when l was handed on. */
static int settled(pending *p, chatlink *l, char name[NAME_BUFLEN]) {
    inbound *in = p->in;
    snprintf(name, NAME_BUFLEN, "%s", p->name);
    forget(in, p);
    if (l)
        in->h->up(in->data, l);
    return l != NULL;
}

static void on_reverse_dialed(void *data, chatlink *l, int status, const char *reason) {
    pending *p = data;
    inbound *in = p->in;
    char name[NAME_BUFLEN];
    uint64_t tag = p->tag;
    if (l)
        link_set_how(l, LINK_HOW_REVERSE);
    if (settled(p, l, name))
        return;
    log_info(&in->ctx->lg, "reverse connection to %s failed: %s", name,
             reason ? reason : "cancelled");
    /* Tell them, so their dial relays now rather than after --relay-after
     * (a cancelled dial -- we are quitting, or they reached us -- says
     * nothing). */
    if (reason)
        ctl_connect_failed(in->ctx->ctl, name, tag, reason);
}

void inbound_connect_request(inbound *in, const ctl_user *u, uint64_t tag) {
    char fold[NAME_BUFLEN];
    if (!in || name_fold(u->name, strlen(u->name), fold) || strcmp(fold, in->ctx->user_fold) == 0)
        return;
    if (in->h->linked(in->data, fold))
        return; /* a link is up already; their dial will find it */
    pending *p = add_pending(in);
    if (p) {
        snprintf(p->name, sizeof p->name, "%s", u->name);
        p->tag = tag;
    }
    if (!p || dial_reverse(in->ctx, u, on_reverse_dialed, p, &p->dial)) {
        log_warn(&in->ctx->lg, "cannot dial %s back (out of memory)", u->name);
        if (p)
            forget(in, p);
        return;
    }
    log_info(&in->ctx->lg, "%s asked us to dial back", u->name);
}

static void on_punched(void *data, chatlink *l, const char *why) {
    pending *p = data;
    inbound *in = p->in;
    char name[NAME_BUFLEN];
    if (settled(p, l, name))
        return;
    log_info(&in->ctx->lg, "hole punch with %s: %s", name, why ? why : "no connection");
}

void inbound_punch(inbound *in, const ctl_user *u, const char *addr, unsigned delay_ms) {
    char fold[NAME_BUFLEN];
    struct sockaddr_storage ss;
    if (!in || name_fold(u->name, strlen(u->name), fold) || strcmp(fold, in->ctx->user_fold) == 0)
        return;
    if (in->h->linked(in->data, fold))
        return; /* a link is up already; their dial will find it */
    if (addr_parse_numeric(addr, &ss)) {
        log_info(&in->ctx->lg, "hole punch with %s: the tracker gave no usable address (%s)",
                 u->name, addr);
        return;
    }
    pending *p = add_pending(in);
    if (p)
        snprintf(p->name, sizeof p->name, "%s", u->name);
    if (!p || punch_start(in->ctx, (struct sockaddr *)&ss, delay_ms, 0, u->name, u->key,
                          on_punched, p, &p->punch)) {
        log_warn(&in->ctx->lg, "cannot punch to %s (out of memory)", u->name);
        if (p)
            forget(in, p);
        return;
    }
    log_info(&in->ctx->lg, "%s asked for a hole punch to %s", u->name, addr);
}

/* ---- relay offers ---- */

static void on_offer_ready(void *data, conn *c, const char *why) {
    pending *p = data;
    inbound *in = p->in;
    p->relay = NULL;
    if (!c) {
        log_info(&in->ctx->lg, "joining a relay failed: %s", why ? why : "?");
        forget(in, p);
        return;
    }
    /* Now a link in its handshake, as the acceptor, like an accepted one. */
    if (link_adopt(in->ctx, c, 0, NULL, NULL, &handshake_handler, in, &p->link))
        forget(in, p);
}

void inbound_relay_offer(inbound *in, const char *from, const unsigned char token[IDENT_SESSION]) {
    if (!in)
        return;
    pending *p = add_pending(in);
    int r = p ? rjoin_open(in->ctx, token, NULL, on_offer_ready, p, &p->relay) : UV_ENOMEM;
    if (r) {
        log_warn(&in->ctx->lg, "cannot join the relay %s offered: %s", from, uv_strerror(r));
        if (p)
            forget(in, p);
        return;
    }
    log_info(&in->ctx->lg, "joining the relay %s set up", from);
}

int inbound_open(peer_ctx *ctx, const inbound_handler *h, void *data, inbound **out) {
    inbound *in = calloc(1, sizeof *in);
    if (!in)
        return UV_ENOMEM;
    in->ctx = ctx;
    in->h = h;
    in->data = data;
    *out = in;
    return 0;
}

void inbound_close(inbound *in) {
    if (!in)
        return;
    while (in->list) {
        pending *p = in->list;
        in->list = p->next;
        if (p->link) {
            link_set_handler(p->link, NULL, NULL);
            link_close(p->link);
        }
        dial_cancel(p->dial);
        punch_cancel(p->punch);
        rjoin_cancel(p->relay);
        free(p);
    }
    free(in);
}
