/* punch: one side of a hole punch (punch.h).  One try at a time, since
 * every try uses the same 4-tuple (chat port to their public address).  A
 * try whose SYN their NAT silently drops stays in flight, and their SYN,
 * once ours has opened our NAT, completes it.  A NAT that answers RST
 * instead lets their SYN in only while ours is on its way (between our
 * SYN leaving and their RST coming back: one round trip), so the next
 * try follows a refused one on the next loop pass: the two sides' tries
 * drift against each other until two of them cross (in the lab, where a
 * round trip is far shorter than a try, that takes up to a few hundred
 * tries).  A tuple our own direct attempt holds is waited for instead.
 * punch_step is the one transition function. */
#include "punch.h"

#include "addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum punch_state {
    PUNCH_WAIT,   /* the tracker's delay, so both first SYNs leave together */
    PUNCH_TRYING, /* a try in flight (connecting or in its handshake) */
    PUNCH_GAP,    /* the last try was refused; the next starts soon */
    PUNCH_DONE,   /* reported or cancelled; the timer is closing */
};

enum punch_event {
    PUNCH_EV_TIMER,  /* the delay or a gap is over */
    PUNCH_EV_UP,     /* the try's link is up */
    PUNCH_EV_CLOSED, /* the try's link closed (why: an authentication failure) */
    PUNCH_EV_CANCEL,
};

struct puncher {
    peer_ctx *ctx;
    enum punch_state state;
    struct sockaddr_storage sa;
    int dialer;
    char name[NAME_BUFLEN];
    unsigned char key[IDENT_PK];
    punch_cb cb;
    void *data;
    uv_timer_t timer;
    uint64_t first;  /* uv_now at the first try */
    int tries;
    int last_error;  /* of the last refused try, for the log */
    chatlink *link;  /* the try in flight */
};

static void punch_step(puncher *p, enum punch_event ev, chatlink *l, int reason,
                       const char *why);

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

static void finish(puncher *p, chatlink *l, const char *why) {
    p->state = PUNCH_DONE;
    uv_timer_stop(&p->timer);
    if (p->link && p->link != l) {
        link_set_handler(p->link, NULL, NULL);
        link_close(p->link);
    }
    p->link = NULL;
    if (p->cb)
        p->cb(p->data, l, why);
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

static void at_up(chatlink *l, void *data) { punch_step(data, PUNCH_EV_UP, l, 0, NULL); }
static void at_closed(chatlink *l, int reason, const char *why, void *data) {
    punch_step(data, PUNCH_EV_CLOSED, l, reason, why);
}
static const link_handler try_handler = {.up = at_up, .closed = at_closed};
static void on_timer(uv_timer_t *t) { punch_step(t->data, PUNCH_EV_TIMER, NULL, 0, NULL); }

static void try_once(puncher *p) {
    if (p->tries++ == 0)
        p->first = uv_now(p->ctx->loop);
    p->state = PUNCH_TRYING;
    if (link_punch(p->ctx, (struct sockaddr *)&p->sa, p->dialer, p->name, p->key, &try_handler, p,
                   &p->link)) {
        p->link = NULL;
        finish(p, NULL, NULL); /* out of memory: the other paths go on */
    }
}

/* The one transition function of a puncher. */
static void punch_step(puncher *p, enum punch_event ev, chatlink *l, int reason,
                       const char *why) {
    if (p->state == PUNCH_DONE)
        return;
    switch (ev) {
    case PUNCH_EV_TIMER:
        if (p->state == PUNCH_WAIT || p->state == PUNCH_GAP)
            try_once(p);
        return;
    case PUNCH_EV_UP:
        link_set_handler(l, NULL, NULL); /* the callee takes it over */
        p->link = NULL;
        log_info(&p->ctx->lg, "punch %s: link up after %d tr%s, %llu ms", p->name, p->tries,
                 p->tries == 1 ? "y" : "ies",
                 (unsigned long long)(uv_now(p->ctx->loop) - p->first));
        finish(p, l, NULL);
        return;
    case PUNCH_EV_CLOSED:
        p->link = NULL;
        p->last_error = reason;
        if (why) { /* we reached someone, and it is not who it should be */
            finish(p, NULL, why);
            return;
        }
        if (uv_now(p->ctx->loop) - p->first >= PUNCH_WINDOW_MS || p->tries >= PUNCH_MAX_TRIES) {
            log_debug(&p->ctx->lg, "punch %s: nothing after %d tries (the last: %s)", p->name,
                      p->tries, p->last_error ? uv_strerror(p->last_error) : "closed");
            finish(p, NULL, NULL);
            return;
        }
        p->state = PUNCH_GAP;
        uv_timer_start(&p->timer, on_timer,
                       reason == UV_EADDRNOTAVAIL || reason == UV_EADDRINUSE ? PUNCH_BUSY_MS : 0,
                       0);
        return;
    case PUNCH_EV_CANCEL:
        p->cb = NULL;
        finish(p, NULL, NULL);
        return;
    }
}

int punch_start(peer_ctx *ctx, const struct sockaddr *sa, uint64_t delay_ms, int dialer,
                const char *name, const unsigned char key[IDENT_PK], punch_cb cb, void *data,
                puncher **out) {
    puncher *p = calloc(1, sizeof *p);
    if (!p)
        return UV_ENOMEM;
    p->ctx = ctx;
    p->state = PUNCH_WAIT;
    memcpy(&p->sa, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in));
    p->dialer = dialer;
    snprintf(p->name, sizeof p->name, "%s", name);
    memcpy(p->key, key, IDENT_PK);
    p->cb = cb;
    p->data = data;
    uv_timer_init(ctx->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_timer, delay_ms, 0); /* 0: the next loop pass */
    char text[ADDR_STRLEN];
    addr_format(sa, text, sizeof text);
    log_debug(&ctx->lg, "punch %s: to %s in %llu ms", name, text, (unsigned long long)delay_ms);
    *out = p;
    return 0;
}

void punch_cancel(puncher *p) {
    if (p)
        punch_step(p, PUNCH_EV_CANCEL, NULL, 0, NULL);
}
