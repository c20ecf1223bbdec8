/* dial: lookup, then a staggered race of chat links.  dial_step is the one
 * transition function; lookups, timers and link callbacks only feed it
 * events. */
#include "dial.h"

#include "addr.h"
#include "control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STAGGER_MS 250

enum dial_state {
    DIAL_LOOKUP,  /* waiting for the tracker's answer */
    DIAL_RACING,  /* attempts in flight */
    DIAL_DONE,    /* result delivered or cancelled; waiting for the timer to close */
};

enum dial_event {
    EV_LOOKUP,   /* the lookup answered (status, user) */
    EV_TICK,     /* stagger timer: start the next attempt */
    EV_FAILED,   /* an attempt's link closed (why: auth failure text or NULL) */
    EV_UP,       /* an attempt's link finished the handshake */
    EV_CANCEL,
};

struct dialer {
    peer_ctx *ctx;
    enum dial_state state;
    dial_cb cb;
    void *data;
    char name[NAME_BUFLEN];
    unsigned char key[IDENT_PK];
    uv_timer_t timer;
    struct sockaddr_storage addrs[PEER_MAX_ENDPOINTS];
    int n_addrs;
    int next;          /* next address to try */
    chatlink *attempts[PEER_MAX_ENDPOINTS];
    int active;        /* attempts still in flight */
    char auth_why[400];
};

static void dial_step(dialer *d, enum dial_event ev, int status, const void *arg);

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

static void finish(dialer *d, chatlink *winner, const char *reason) {
    d->state = DIAL_DONE;
    uv_timer_stop(&d->timer);
    for (int i = 0; i < d->next; i++) {
        if (d->attempts[i] && d->attempts[i] != winner) {
            link_set_handler(d->attempts[i], NULL, NULL);
            link_close(d->attempts[i]);
        }
        d->attempts[i] = NULL;
    }
    if (d->cb)
        d->cb(d->data, winner, reason);
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

static void at_up(chatlink *l, void *data) { dial_step(data, EV_UP, 0, l); }
static void at_msg(chatlink *l, uint64_t id, int64_t ts, const char *t, size_t n, void *data) {}
static void at_ack(chatlink *l, uint64_t id, void *data) {}
static void at_bye(chatlink *l, void *data) {}
static void at_closed(chatlink *l, int reason, const char *why, void *data) {
    dialer *d = data;
    for (int i = 0; i < d->next; i++)
        if (d->attempts[i] == l)
            d->attempts[i] = NULL;
    dial_step(d, EV_FAILED, reason, why);
}
/* Nothing but up and closed can happen before the link is handed over. */
static const link_handler attempt_handler = {at_up, at_msg, at_ack, at_bye, at_closed};

static void on_lookup(void *data, int status, const ctl_user *u) {
    dial_step(data, EV_LOOKUP, status, u);
}

static void on_tick(uv_timer_t *t) { dial_step(t->data, EV_TICK, 0, NULL); }

/* Orders the endpoints IPv6, IPv4, IPv6, ... (RFC 8305), skipping any that
 * are not numeric addresses. */
static void order_endpoints(dialer *d, const ctl_user *u) {
    struct sockaddr_storage v6[PEER_MAX_ENDPOINTS], v4[PEER_MAX_ENDPOINTS];
    int n6 = 0, n4 = 0;
    for (int i = 0; i < u->n_endpoints; i++) {
        struct sockaddr_storage ss;
        if (addr_parse_numeric(u->endpoints[i], &ss)) {
            log_debug(&d->ctx->lg, "dial %s: skipping endpoint %s (not a numeric HOST:PORT)",
                      d->name, u->endpoints[i]);
            continue;
        }
        if (ss.ss_family == AF_INET6)
            v6[n6++] = ss;
        else
            v4[n4++] = ss;
    }
    d->n_addrs = 0;
    for (int i = 0; i < n6 || i < n4; i++) {
        if (i < n6)
            d->addrs[d->n_addrs++] = v6[i];
        if (i < n4)
            d->addrs[d->n_addrs++] = v4[i];
    }
}

static void start_attempt(dialer *d) {
    int i = d->next++;
    char text[ADDR_STRLEN];
    addr_format((struct sockaddr *)&d->addrs[i], text, sizeof text);
    log_debug(&d->ctx->lg, "dial %s: trying %s", d->name, text);
    if (link_dial(d->ctx, (struct sockaddr *)&d->addrs[i], d->name, d->key, &attempt_handler, d,
                  &d->attempts[i]) == 0)
        d->active++;
    if (d->next < d->n_addrs)
        uv_timer_start(&d->timer, on_tick, STAGGER_MS, 0);
}

static void lookup_failed(dialer *d, int status, const ctl_user *u) {
    char reason[300];
    if (status == UV_ENOENT || status == UV_EINVAL)
        snprintf(reason, sizeof reason, "no user named %s", d->name);
    else if (status == UV_ENOTCONN || status == UV_ECONNRESET)
        snprintf(reason, sizeof reason, "the tracker is unreachable, so the address of %s is "
                 "unknown; try again once it is registered", d->name);
    else if (status)
        snprintf(reason, sizeof reason, "the tracker could not look %s up (%s)", d->name,
                 uv_strerror(status));
    else if (!u->online)
        snprintf(reason, sizeof reason, "%s is offline", d->name);
    else
        snprintf(reason, sizeof reason, "no endpoint answered (tried 0)");
    finish(d, NULL, reason);
}

/* The one transition function of a dial. */
static void dial_step(dialer *d, enum dial_event ev, int status, const void *arg) {
    if (d->state == DIAL_DONE)
        return;
    switch (ev) {
    case EV_LOOKUP: {
        const ctl_user *u = arg;
        if (status || !u->online)
            return lookup_failed(d, status, u);
        snprintf(d->name, sizeof d->name, "%s", u->name);
        memcpy(d->key, u->key, IDENT_PK);
        order_endpoints(d, u);
        if (d->n_addrs == 0)
            return lookup_failed(d, 0, u);
        d->state = DIAL_RACING;
        start_attempt(d);
        return;
    }
    case EV_TICK:
        if (d->next < d->n_addrs)
            start_attempt(d);
        return;
    case EV_FAILED: {
        const char *why = arg;
        d->active--;
        if (why && !d->auth_why[0])
            snprintf(d->auth_why, sizeof d->auth_why, "%s", why);
        if (d->next < d->n_addrs) {
            uv_timer_stop(&d->timer);
            start_attempt(d); /* do not wait for the stagger: this one is over */
            return;
        }
        if (d->active > 0)
            return;
        char reason[500];
        if (d->auth_why[0])
            snprintf(reason, sizeof reason, "authentication failed: %s", d->auth_why);
        else
            snprintf(reason, sizeof reason, "no endpoint answered (tried %d)", d->n_addrs);
        finish(d, NULL, reason);
        return;
    }
    case EV_UP: {
        chatlink *l = (chatlink *)arg;
        d->active--;
        link_set_handler(l, NULL, NULL); /* the callee takes it over */
        finish(d, l, NULL);
        return;
    }
    case EV_CANCEL:
        if (d->state == DIAL_LOOKUP)
            ctl_cancel(d->ctx->ctl, d);
        d->cb = NULL;
        finish(d, NULL, NULL);
        return;
    }
}

int dial_start(peer_ctx *ctx, const char *name, dial_cb cb, void *data, dialer **out) {
    dialer *d = calloc(1, sizeof *d);
    if (!d)
        return UV_ENOMEM;
    d->ctx = ctx;
    d->cb = cb;
    d->data = data;
    d->state = DIAL_LOOKUP;
    snprintf(d->name, sizeof d->name, "%s", name);
    int r = ctl_lookup(ctx->ctl, name, 1, on_lookup, d);
    if (r) {
        free(d);
        return r;
    }
    uv_timer_init(ctx->loop, &d->timer);
    d->timer.data = d;
    *out = d;
    return 0;
}

void dial_cancel(dialer *d) {
    if (d)
        dial_step(d, EV_CANCEL, 0, NULL);
}
