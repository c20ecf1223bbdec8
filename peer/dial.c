/* dial: the connection ladder (PROTOCOL.md, "Reaching a peer").  After the
 * lookup, four paths run side by side:
 *   direct  -- a staggered race to the advertised endpoints and to the
 *              tracker-observed address with each advertised port;
 *   punch   -- when the other side is behind NAT (its observed address is
 *              none of its endpoints): punch_request at once, and on the
 *              tracker's answer repeated connects from our chat port to
 *              its public address, timed to cross its own (punch.c);
 *   reverse -- connect_request: the tracker asks the other side to dial us
 *              (sent after REVERSE_DELAY_MS, or at once when every direct
 *              attempt failed); its link arrives through our chat port and
 *              chat tells us with dial_inbound;
 *   relay   -- after --relay-after ms without a link, or once direct and
 *              reverse both failed: relay_request, join the session, run
 *              the chat handshake over it.
 * The first link to authenticate wins and the others are closed.  An
 * upgrade (dial_upgrade: a relayed chat looking for a direct path) runs
 * the same ladder without the relay, and gives up after UPGRADE_MS.
 * dial_step is the one transition function; lookups, timers, relay and link
 * callbacks only feed it events. */
#include "dial.h"

#include "addr.h"
#include "control.h"
#include "punch.h"
#include "relay_join.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STAGGER_MS 250
#define REVERSE_DELAY_MS 250 /* direct attempts get this head start */
#define MAX_CANDIDATES (2 * PEER_MAX_ENDPOINTS)
#define UPGRADE_MS 3000 /* an upgrade that found no direct path by then failed */

enum dial_state {
    DIAL_LOOKUP,  /* waiting for the tracker's answer */
    DIAL_DIRECT,  /* direct attempts (and the reverse request) in flight */
    DIAL_RELAY,   /* the relay is being set up; direct attempts may still win */
    DIAL_INBOUND, /* the other side reached us: no relay, direct attempts finish */
    DIAL_DONE,    /* result delivered or cancelled; waiting for the timers to close */
};

enum dial_event {
    DIAL_EV_LOOKUP,      /* the lookup answered (status, user) */
    DIAL_EV_TICK,        /* stagger timer: start the next attempt */
    DIAL_EV_LADDER,      /* ladder timer: send the reverse request / start the relay */
    DIAL_EV_FAILED,      /* a direct attempt's link closed (why: auth failure text or NULL) */
    DIAL_EV_UP,          /* a link (direct or relayed) finished the handshake */
    DIAL_EV_REVERSE,     /* the tracker answered connect_request (status) */
    DIAL_EV_RELAY_TOKEN, /* the tracker answered relay_request (status, token) */
    DIAL_EV_RELAY_READY, /* the relay connection is ready (conn) or failed (NULL, why) */
    DIAL_EV_RELAY_LOST,  /* the relayed link closed before it was up (why) */
    DIAL_EV_INBOUND,     /* chat: a link from the other side came up */
    DIAL_EV_PUNCH,       /* the tracker answered punch_request (status, addr) */
    DIAL_EV_PUNCHED,     /* the punch is over: its link (up) or NULL */
    DIAL_EV_CANCEL,
};

struct dialer {
    peer_ctx *ctx;
    enum dial_state state;
    int reverse_mode;   /* answering a connect_request: direct attempts only */
    int no_relay;       /* an upgrade: every path but the relay */
    dial_cb cb;
    void (*found)(void *data); /* dial_on_found */
    void *data;
    char name[NAME_BUFLEN];
    unsigned char key[IDENT_PK];
    uv_timer_t timer;   /* stagger */
    uv_timer_t ladder;  /* reverse delay, then relay-after */
    int timers;         /* timer handles still open */
    uint64_t started;   /* uv_now at the lookup answer */
    struct sockaddr_storage addrs[MAX_CANDIDATES];
    int n_addrs;
    int next;           /* next address to try */
    chatlink *attempts[MAX_CANDIDATES];
    int active;         /* attempts still in flight */
    int reverse;        /* 0 not sent, 1 sent, 2 failed */
    uint64_t reverse_tag; /* of our connect_request; a connect_failed must carry it */
    int punching;       /* 1 from punch_request until the puncher is over */
    unsigned punch_delay;
    struct sockaddr_storage punch_sa; /* the other side's public address */
    puncher *punch;
    int relay_failed;
    int relay_status;   /* the relay_request error, for the report */
    rjoin *relay;   /* joining the session */
    chatlink *relay_link;
    char auth_why[400];
    char relay_why[400];
    ctl_user *reverse_user; /* dial_reverse: the answer to deliver */
};

static void dial_step(dialer *d, enum dial_event ev, int status, const void *arg);

static void on_timer_closed(uv_handle_t *h) {
    dialer *d = h->data;
    if (--d->timers == 0)
        free(d);
}

static void drop(chatlink *l) {
    link_set_handler(l, NULL, NULL);
    link_close(l);
}

static void finish(dialer *d, chatlink *winner, int status, const char *reason) {
    d->state = DIAL_DONE;
    uv_timer_stop(&d->timer);
    uv_timer_stop(&d->ladder);
    for (int i = 0; i < d->next; i++) {
        if (d->attempts[i] && d->attempts[i] != winner)
            drop(d->attempts[i]);
        d->attempts[i] = NULL;
    }
    if (d->relay_link && d->relay_link != winner)
        drop(d->relay_link);
    d->relay_link = NULL;
    rjoin_cancel(d->relay);
    d->relay = NULL;
    punch_cancel(d->punch);
    d->punch = NULL;
    d->punching = 0;
    ctl_cancel(d->ctx->ctl, d);
    free(d->reverse_user);
    d->reverse_user = NULL;
    if (d->cb)
        d->cb(d->data, winner, status, reason);
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
    uv_close((uv_handle_t *)&d->ladder, on_timer_closed);
}

/* ---- callbacks: each only feeds dial_step ---- */

static void at_up(chatlink *l, void *data) { dial_step(data, DIAL_EV_UP, 0, l); }
static void at_closed(chatlink *l, int reason, const char *why, void *data) {
    dialer *d = data;
    if (l == d->relay_link) {
        d->relay_link = NULL;
        dial_step(d, DIAL_EV_RELAY_LOST, reason, why);
        return;
    }
    for (int i = 0; i < d->next; i++)
        if (d->attempts[i] == l)
            d->attempts[i] = NULL;
    dial_step(d, DIAL_EV_FAILED, reason, why);
}
/* Nothing but up and closed can happen before the link is handed over. */
static const link_handler attempt_handler = {.up = at_up, .closed = at_closed};

static void on_lookup(void *data, int status, const ctl_user *u) {
    dial_step(data, DIAL_EV_LOOKUP, status, u);
}
static void on_tick(uv_timer_t *t) { dial_step(t->data, DIAL_EV_TICK, 0, NULL); }
static void on_ladder(uv_timer_t *t) { dial_step(t->data, DIAL_EV_LADDER, 0, NULL); }
static void on_reverse(void *data, int status, const ctl_relay *relay, const char *why) {
    dial_step(data, DIAL_EV_REVERSE, status, why);
}
static void on_relay_token(void *data, int status, const ctl_relay *relay, const char *why) {
    dialer *d = data;
    if (status && why)
        snprintf(d->relay_why, sizeof d->relay_why, "%s", why);
    dial_step(d, DIAL_EV_RELAY_TOKEN, status, relay);
}
static void on_punch_answer(void *data, int status, const char *addr, unsigned delay_ms,
                            const char *why) {
    dialer *d = data;
    d->punch_delay = delay_ms;
    if (status)
        log_info(&d->ctx->lg, "dial %s: no hole punch: %s", d->name,
                 why ? why : uv_strerror(status));
    dial_step(d, DIAL_EV_PUNCH, status, addr);
}
static void on_punched(void *data, chatlink *l, const char *why) {
    dialer *d = data;
    d->punch = NULL;
    if (why && !d->auth_why[0])
        snprintf(d->auth_why, sizeof d->auth_why, "%s", why);
    dial_step(d, DIAL_EV_PUNCHED, 0, l);
}
static void on_relay_ready(void *data, conn *c, const char *why) {
    dialer *d = data;
    d->relay = NULL;
    if (!c && why)
        snprintf(d->relay_why, sizeof d->relay_why, "%s", why);
    dial_step(d, DIAL_EV_RELAY_READY, 0, c);
}

/* ---- candidates ---- */

static void add_candidate(dialer *d, const struct sockaddr_storage *ss) {
    for (int i = 0; i < d->n_addrs; i++) {
        if (d->addrs[i].ss_family != ss->ss_family)
            continue;
        size_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                               : sizeof(struct sockaddr_in);
        if (memcmp(&d->addrs[i], ss, len) == 0)
            return;
    }
    if (d->n_addrs < MAX_CANDIDATES)
        d->addrs[d->n_addrs++] = *ss;
}

/* The advertised endpoints, IPv6 and IPv4 interleaved (RFC 8305), then the
 * observed address's IP with each advertised port: a peer behind NAT is
 * seen as its router, which may forward the port (or, with a full-cone
 * NAT, keep the mapping).  Non-numeric endpoints are skipped. */
static void order_endpoints(dialer *d, const ctl_user *u) {
    struct sockaddr_storage v6[PEER_MAX_ENDPOINTS], v4[PEER_MAX_ENDPOINTS], obs;
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
            add_candidate(d, &v6[i]);
        if (i < n4)
            add_candidate(d, &v4[i]);
    }
    if (!u->observed[0] || addr_parse_numeric(u->observed, &obs))
        return;
    int n = d->n_addrs;
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage ss = obs;
        if (obs.ss_family != d->addrs[i].ss_family)
            continue;
        addr_set_port(&ss, &d->addrs[i]);
        add_candidate(d, &ss);
    }
}

/* Behind NAT: the tracker sees it from an address none of its endpoints
 * has.  Only then can a punch help (and is worth the tracker's time). */
static int behind_nat(const ctl_user *u) {
    struct sockaddr_storage obs, ep;
    if (!u->observed[0] || addr_parse_numeric(u->observed, &obs))
        return 0;
    for (int i = 0; i < u->n_endpoints; i++)
        if (addr_parse_numeric(u->endpoints[i], &ep) == 0 && addr_same_host(&obs, &ep))
            return 0;
    return 1;
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

/* ---- the ladder ---- */

static int direct_over(const dialer *d) {
    return d->next >= d->n_addrs && d->active == 0 && !d->punching;
}

static void fail_final(dialer *d) {
    char reason[900];
    if (d->relay_why[0])
        log_info(&d->ctx->lg, "dial %s: the relay failed: %s", d->name, d->relay_why);
    if (d->auth_why[0])
        snprintf(reason, sizeof reason, "authentication failed: %s", d->auth_why);
    else if (d->relay_status == UV_EBUSY && d->relay_why[0])
        snprintf(reason, sizeof reason, "no endpoint answered (tried %d); the relay refused: %s",
                 d->n_addrs, d->relay_why);
    else
        snprintf(reason, sizeof reason, "no endpoint answered (tried %d)", d->n_addrs);
    finish(d, NULL, d->auth_why[0] ? UV_EACCES : UV_EHOSTUNREACH, reason);
}

static void send_reverse(dialer *d) {
    if (d->reverse_mode || d->reverse)
        return;
    d->reverse = 1;
    randombytes_buf(&d->reverse_tag, sizeof d->reverse_tag);
    d->reverse_tag = (d->reverse_tag >> 11) | 1; /* nonzero, exact as a JSON number too */
    log_debug(&d->ctx->lg, "dial %s: asking for a reverse connection", d->name);
    if (ctl_connect_request(d->ctx->ctl, d->name, d->reverse_tag, on_reverse, d))
        d->reverse = 2;
}

static void start_relay(dialer *d) {
    d->state = DIAL_RELAY;
    uv_timer_stop(&d->ladder);
    log_info(&d->ctx->lg, "dial %s: no direct link after %llu ms; asking the tracker to relay",
             d->name, (unsigned long long)(uv_now(d->ctx->loop) - d->started));
    int r = ctl_relay_request(d->ctx->ctl, d->name, on_relay_token, d);
    if (r) {
        d->relay_failed = 1;
        snprintf(d->relay_why, sizeof d->relay_why, "%s", uv_strerror(r));
    }
}

/* Whatever just ended, is anything left that could still connect? */
static void settle(dialer *d) {
    if (d->state == DIAL_DONE || !direct_over(d))
        return;
    if (d->reverse_mode) {
        fail_final(d);
        return;
    }
    switch (d->state) {
    case DIAL_DIRECT:
        if (!d->reverse)
            send_reverse(d); /* every direct attempt failed: no point waiting */
        if (d->reverse == 2 && d->no_relay) {
            fail_final(d);
            return;
        }
        if (d->reverse == 2)
            start_relay(d); /* reverse impossible too: relay now */
        if (d->state == DIAL_RELAY && d->relay_failed)
            fail_final(d);
        return;
    case DIAL_RELAY:
        if (d->relay_failed)
            fail_final(d);
        return;
    case DIAL_INBOUND:
        finish(d, NULL, UV_EALREADY, "the other side connected to us"); /* chat ignores it */
        return;
    default:
        return;
    }
}

static void link_up(dialer *d, chatlink *l) {
    static const char *how[] = {"direct", "accepted", "reverse", "punched", "relayed"};
    link_set_handler(l, NULL, NULL); /* the callee takes it over */
    log_info(&d->ctx->lg, "dial %s: %s link up after %llu ms", d->name, how[link_how(l)],
             (unsigned long long)(uv_now(d->ctx->loop) - d->started));
    finish(d, l, 0, NULL);
}

/* The one transition function of a dial. */
static void dial_step(dialer *d, enum dial_event ev, int status, const void *arg) {
    if (d->state == DIAL_DONE)
        return;
    switch (ev) {
    case DIAL_EV_LOOKUP: {
        const ctl_user *u = arg;
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
        if (status == 0 && d->found)
            d->found(d->data);
        if (status || !u->online)
            return finish(d, NULL,
                          status == UV_EINVAL ? UV_ENOENT
                          : status == UV_ECONNRESET ? UV_ENOTCONN
                          : status ? status : UV_EHOSTDOWN,
                          reason);
        snprintf(d->name, sizeof d->name, "%s", u->name);
        memcpy(d->key, u->key, IDENT_PK);
        order_endpoints(d, u);
        d->state = DIAL_DIRECT;
        d->started = uv_now(d->ctx->loop);
        if (!d->reverse_mode) {
            uint64_t after = d->no_relay ? UPGRADE_MS : d->ctx->relay_after_ms;
            uv_timer_start(&d->ladder, on_ladder, after < REVERSE_DELAY_MS ? after : REVERSE_DELAY_MS,
                           0);
        }
        if (!d->reverse_mode && behind_nat(u) &&
            ctl_punch_request(d->ctx->ctl, d->name, on_punch_answer, d) == 0)
            d->punching = 1;
        if (d->n_addrs > 0)
            start_attempt(d);
        settle(d);
        return;
    }
    case DIAL_EV_PUNCH: {
        struct sockaddr_storage ss;
        const char *addr = arg;
        if (status == 0 && addr_parse_numeric(addr, &ss) == 0 &&
            punch_start(d->ctx, (struct sockaddr *)&ss, d->punch_delay, 1, d->name, d->key,
                        on_punched, d, &d->punch) == 0) {
            d->punch_sa = ss;
            return;
        }
        d->punching = 0;
        settle(d);
        return;
    }
    case DIAL_EV_PUNCHED:
        d->punching = 0;
        if (arg) {
            link_up(d, (chatlink *)arg);
            return;
        }
        settle(d);
        return;
    case DIAL_EV_TICK:
        if (d->state != DIAL_LOOKUP && d->next < d->n_addrs)
            start_attempt(d);
        return;
    case DIAL_EV_LADDER: {
        if (d->state != DIAL_DIRECT)
            return;
        send_reverse(d);
        uint64_t spent = uv_now(d->ctx->loop) - d->started;
        if (d->no_relay && spent + 1 >= UPGRADE_MS) {
            fail_final(d);
            return;
        }
        if (d->no_relay) {
            uv_timer_start(&d->ladder, on_ladder, UPGRADE_MS - spent, 0);
            return;
        }
        if (spent + 1 >= d->ctx->relay_after_ms) {
            start_relay(d);
            if (d->relay_failed)
                settle(d);
        } else {
            uv_timer_start(&d->ladder, on_ladder, d->ctx->relay_after_ms - spent, 0);
        }
        return;
    }
    case DIAL_EV_FAILED: {
        const char *why = arg;
        d->active--;
        if (why && !d->auth_why[0])
            snprintf(d->auth_why, sizeof d->auth_why, "%s", why);
        if (d->next < d->n_addrs) {
            uv_timer_stop(&d->timer);
            start_attempt(d); /* do not wait for the stagger: this one is over */
            return;
        }
        settle(d);
        return;
    }
    case DIAL_EV_UP: {
        chatlink *l = (chatlink *)arg;
        if (l != d->relay_link)
            d->active--;
        /* A direct attempt to the address we punch at, its SYN dropped by
         * their NAT until their punch opened it: a punched link too. */
        if (d->punch && !link_relayed(l) &&
            addr_same_endpoint(link_peer_sa(l), &d->punch_sa))
            link_set_how(l, LINK_HOW_PUNCHED);
        link_up(d, l);
        return;
    }
    case DIAL_EV_REVERSE:
        if (status) {
            log_info(&d->ctx->lg, "dial %s: no reverse connection: %s", d->name,
                     arg ? (const char *)arg : uv_strerror(status));
            d->reverse = 2;
            settle(d);
        }
        return;
    case DIAL_EV_RELAY_TOKEN:
        if (d->state != DIAL_RELAY)
            return;
        if (status == 0) {
            const ctl_relay *rl = arg;
            status = rjoin_open(d->ctx, rl->token, rl->at[0] ? rl->at : NULL, on_relay_ready, d,
                                &d->relay);
        }
        if (status) {
            d->relay_failed = 1;
            d->relay_status = status;
            if (!d->relay_why[0])
                snprintf(d->relay_why, sizeof d->relay_why, "%s", uv_strerror(status));
            settle(d);
        }
        return;
    case DIAL_EV_RELAY_READY: {
        conn *c = (conn *)arg;
        if (!c || link_adopt(d->ctx, c, 1, d->name, d->key, &attempt_handler, d,
                             &d->relay_link)) {
            d->relay_failed = 1;
            settle(d);
        }
        return;
    }
    case DIAL_EV_RELAY_LOST: {
        const char *why = arg;
        if (why)
            snprintf(d->relay_why, sizeof d->relay_why, "%s", why);
        d->relay_failed = 1;
        settle(d);
        return;
    }
    case DIAL_EV_INBOUND:
        if (d->state == DIAL_LOOKUP) {
            d->cb = NULL;
            finish(d, NULL, UV_ECANCELED, NULL);
            return;
        }
        if (d->state == DIAL_RELAY)
            return; /* asked for already: the other side may be keeping ours
                     * (chat.c's tie rule), so it must come up */
        d->state = DIAL_INBOUND;
        uv_timer_stop(&d->ladder);
        rjoin_cancel(d->relay);
        d->relay = NULL;
        if (d->relay_link)
            drop(d->relay_link);
        d->relay_link = NULL;
        ctl_cancel(d->ctx->ctl, d);
        settle(d);
        return;
    case DIAL_EV_CANCEL:
        d->cb = NULL;
        finish(d, NULL, UV_ECANCELED, NULL);
        return;
    }
}

static int dial_new(peer_ctx *ctx, const char *name, dial_cb cb, void *data, dialer **out) {
    dialer *d = calloc(1, sizeof *d);
    if (!d)
        return UV_ENOMEM;
    d->ctx = ctx;
    d->cb = cb;
    d->data = data;
    d->state = DIAL_LOOKUP;
    snprintf(d->name, sizeof d->name, "%s", name);
    uv_timer_init(ctx->loop, &d->timer);
    uv_timer_init(ctx->loop, &d->ladder);
    d->timer.data = d->ladder.data = d;
    d->timers = 2;
    *out = d;
    return 0;
}

static int dial_lookup(peer_ctx *ctx, const char *name, int no_relay, dial_cb cb, void *data,
                       dialer **out) {
    dialer *d;
    int r = dial_new(ctx, name, cb, data, &d);
    if (r)
        return r;
    d->no_relay = no_relay;
    r = ctl_lookup(ctx->ctl, name, 1, on_lookup, d);
    if (r) {
        d->cb = NULL;
        finish(d, NULL, UV_ECANCELED, NULL);
        return r;
    }
    *out = d;
    return 0;
}

int dial_start(peer_ctx *ctx, const char *name, dial_cb cb, void *data, dialer **out) {
    return dial_lookup(ctx, name, 0, cb, data, out);
}

int dial_upgrade(peer_ctx *ctx, const char *name, dial_cb cb, void *data, dialer **out) {
    return dial_lookup(ctx, name, 1, cb, data, out);
}

/* The connect_request carried what a lookup would; it is delivered from
 * the loop, as a lookup answer would be. */
static void on_reverse_start(uv_timer_t *t) {
    dialer *d = t->data;
    ctl_user *u = d->reverse_user;
    d->reverse_user = NULL;
    dial_step(d, DIAL_EV_LOOKUP, 0, u);
    free(u);
}

int dial_reverse(peer_ctx *ctx, const ctl_user *u, dial_cb cb, void *data, dialer **out) {
    ctl_user *copy = malloc(sizeof *copy);
    if (!copy)
        return UV_ENOMEM;
    *copy = *u;
    copy->online = true;
    dialer *d;
    int r = dial_new(ctx, u->name, cb, data, &d);
    if (r) {
        free(copy);
        return r;
    }
    d->reverse_mode = 1;
    d->reverse_user = copy;
    uv_timer_start(&d->timer, on_reverse_start, 0, 0);
    *out = d;
    return 0;
}

void dial_on_found(dialer *d, void (*found)(void *data)) { d->found = found; }

int dial_asked_reverse(const dialer *d) { return d->reverse != 0; }

int dial_punches_to(const dialer *d, const struct sockaddr_storage *ss) {
    return d->punch && addr_same_endpoint(ss, &d->punch_sa);
}

void dial_cancel(dialer *d) {
    if (d)
        dial_step(d, DIAL_EV_CANCEL, 0, NULL);
}

void dial_inbound(dialer *d) {
    if (d)
        dial_step(d, DIAL_EV_INBOUND, 0, NULL);
}

void dial_reverse_failed(dialer *d, uint64_t tag, const char *why) {
    if (!d || d->reverse != 1)
        return;
    if (tag && tag != d->reverse_tag) {
        log_debug(&d->ctx->lg, "dial %s: ignoring a connect_failed for an earlier dial", d->name);
        return;
    }
    dial_step(d, DIAL_EV_REVERSE, UV_ECONNREFUSED, why);
}
