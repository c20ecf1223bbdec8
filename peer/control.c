/* control: the tracker connection as one state machine (ctl_step):
 * resolve, connect to each address in turn, hello, register, ping every
 * ttl/3, and after a loss back off with jitter and start again, or stop
 * when the tracker refused us for good.  What the tracker sends is read by
 * control_frames.c, the requests live in control_requests.c. */
#include "control_impl.h"

#include "chatport.h"
#include "events.h"
#include "frame.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 500
/* Capped low: once the tracker is back a peer should not wait much longer
 * than the outage itself (a refused connect costs the tracker next to
 * nothing; the +-20% jitter spreads the returning crowd). */
#define BACKOFF_MAX_MS 5000
#define HANDSHAKE_MS 10000

static void maybe_free(ctl *t) {
    if (t->state != CTL_CLOSED || t->pending > 0)
        return;
    ctl_reqs_free(t);
    ctl_subs_free(t);
    kc_close(t->keys);
    if (t->ai)
        uv_freeaddrinfo(t->ai);
    free(t);
}

static void on_handle_closed(uv_handle_t *h) {
    ctl *t = h->data;
    t->pending--;
    maybe_free(t);
}

static void on_conn_closed(conn *c, int reason) {
    ctl *t = conn_data(c);
    t->c = NULL;
    t->pending--;
    if (t->state == CTL_CLOSED) {
        maybe_free(t);
        return;
    }
    ctl_step(t, CTL_EV_LOST, reason);
}

static void on_connect(uv_connect_t *req, int status) {
    ctl *t = req->data;
    if (status == UV_ECANCELED || !t->c)
        return; /* closing: on_conn_closed reports */
    if (status == 0)
        status = conn_start(t->c);
    if (status) {
        conn_close(t->c, status);
        return;
    }
    ctl_step(t, CTL_EV_CONNECTED, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    ctl *t = req->data;
    t->gai_pending = 0;
    t->pending--;
    if (t->state == CTL_CLOSED) {
        if (res)
            uv_freeaddrinfo(res);
        maybe_free(t);
        return;
    }
    if (t->ai)
        uv_freeaddrinfo(t->ai);
    t->ai = status ? NULL : res;
    t->ai_next = t->ai;
    ctl_step(t, CTL_EV_RESOLVED, status);
}

static void on_retry(uv_timer_t *h) { ctl_step(h->data, CTL_EV_START, 0); }

/* Uses tracker i of the --tracker list from now on.  0, or UV_EINVAL for
 * a spec main.c let through (it checks them all). */
static int use_tracker(ctl *t, int i) {
    peer_ctx *ctx = t->ctx;
    if (addr_split(ctx->trackers[i], "5960", t->host, sizeof t->host, t->port, sizeof t->port))
        return UV_EINVAL;
    t->cur = i;
    ctx->tracker = ctx->trackers[i];
    snprintf(t->trying, sizeof t->trying, "%s", ctx->tracker);
    return 0;
}

static void on_ping(uv_timer_t *h) {
    ctl *t = h->data;
    if (!ctl_ready(t))
        return;
    msg_out m;
    msg_out_init(&m, "ping", 0);
    conn_send_msg(t->c, &m);
}

/* Starts a connection to the next resolved address.  0, or UV_EOF when
 * none is left. */
static int connect_next(ctl *t) {
    while (t->ai_next) {
        struct addrinfo *ai = t->ai_next;
        t->ai_next = ai->ai_next;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        addr_format(ai->ai_addr, t->trying, sizeof t->trying);
        conn *c = conn_new(t->ctx->loop, FRAME_MAX_DEFAULT, t->lg, ctl_on_frame, on_conn_closed, t);
        if (!c)
            return UV_ENOMEM;
        t->c = c;
        t->pending++;
        t->creq.data = t;
        conn_set_timeout(c, HANDSHAKE_MS);
        int r = uv_tcp_connect(&t->creq, conn_tcp(c), ai->ai_addr, on_connect);
        if (r)
            conn_close(c, r); /* reported from on_conn_closed */
        return 0;
    }
    return UV_EOF;
}

static int send_register(ctl *t) {
    peer_ctx *ctx = t->ctx;
    char eps[PEER_MAX_ENDPOINTS][ADDR_STRLEN];
    int n = port_endpoints(ctx->port, eps, PEER_MAX_ENDPOINTS);
    unsigned char sig[IDENT_SIG];
    ident_sign_register(&ctx->id, t->nonce, ctx->user, strlen(ctx->user), sig);
    msg_out m;
    msg_out_init(&m, "register", 5);
    msg_put_key(&m, "features"); /* pushes newer than protocol 1 we understand */
    msgpack_pack_array(&m.pk, 2 + (ctx->hist != NULL) + (t->tracker_subscribe != 0));
    msg_pack_str(&m, "connect_failed", 14);
    msg_pack_str(&m, "punch", 5);
    if (t->tracker_subscribe) /* presence of the names we subscribe to (control_subs.c) */
        msg_pack_str(&m, "subscribe", 9);
    if (ctx->hist) /* letters need a history to land in before they are acknowledged */
        msg_pack_str(&m, "mailbox", 7);
    msg_put_str(&m, "name", ctx->user);
    msg_put_bin(&m, "key", ctx->id.pk, IDENT_PK);
    msg_put_bin(&m, "sig", sig, IDENT_SIG);
    msg_put_key(&m, "endpoints");
    msgpack_pack_array(&m.pk, (size_t)n);
    for (int i = 0; i < n; i++)
        msg_pack_str(&m, eps[i], strlen(eps[i]));
    log_debug(t->lg, "registering as %s with %d endpoint(s)", ctx->user, n);
    return conn_send_msg(t->c, &m);
}

/* Why the last attempt ended, for "tracker lost: REASON". */
static void describe_loss(ctl *t, int was, int status, char *out, size_t outlen) {
    if (t->why[0])
        snprintf(out, outlen, "%s", t->why);
    else if (was == CTL_RESOLVING)
        snprintf(out, outlen, "cannot resolve %s: %s", t->host, uv_strerror(status));
    else if (was == CTL_CONNECTING)
        snprintf(out, outlen, "cannot connect to %s: %s", t->trying, uv_strerror(status));
    else if (was == CTL_HELLO && (status == UV_E2BIG || status == UV_EPROTO))
        /* before welcome: whatever listens there does not speak parley */
        snprintf(out, outlen, "%s answered with something that is not the parley protocol (is it "
                 "a parley tracker?)", t->trying);
    else if (status == UV_E2BIG)
        snprintf(out, outlen, "the tracker at %s sent a frame over the size limit", t->trying);
    else if (status == UV_EOF)
        snprintf(out, outlen, "the tracker at %s closed the connection", t->trying);
    else if (status == UV_ETIMEDOUT)
        snprintf(out, outlen, "no answer from the tracker at %s for %u s", t->trying,
                 was == CTL_READY ? t->ttl : HANDSHAKE_MS / 1000);
    else
        snprintf(out, outlen, "connection to %s failed: %s", t->trying, uv_strerror(status));
}

/* The name is bound to another key.  Said once, in our words (the
 * tracker's text says the same); when the default home is in use and `make
 * run` keeps a key for this name under the current directory
 * (build/run/home-NAME, tools/run.sh), that is most likely the home meant. */
static void name_taken(ctl *t) {
    peer_ctx *ctx = t->ctx;
    const char *home = ctx->home ? ctx->home : "--home";
    char demo[64 + NAME_BUFLEN];
    snprintf(demo, sizeof demo, "build/run/home-%s/identity.key", ctx->user);
    if (!ctx->home_given && access(demo, F_OK) == 0) {
        demo[strlen(demo) - strlen("/identity.key")] = '\0';
        ev_error(ctx, "name_taken", "the name %s is taken by another key (not the one in %s); "
                 "make run keeps %s's key in %s: add --home %s, or pick another --user", ctx->user,
                 home, ctx->user, demo, demo);
    } else {
        ev_error(ctx, "name_taken", "the name %s is taken by another key (not the one in %s); pick "
                 "another --user, or use the --home that holds %s's key", ctx->user, home, ctx->user);
    }
}

static void refused(ctl *t) {
    peer_ctx *ctx = t->ctx;
    const char *code = t->refusal;
    if (strcmp(code, "name_taken") == 0)
        name_taken(t);
    else if (strcmp(code, "bad_name") == 0 || strcmp(code, "name_confusable") == 0)
        ev_error(ctx, "name_refused", "the tracker refused the name %s (%s); pick another --user",
                 ctx->user, t->refusal_text);
    else if (strcmp(code, "bad_signature") == 0)
        ev_error(ctx, "bad_signature", "the tracker rejected our signature (%s); check the key in --home",
                 t->refusal_text);
    else if (strcmp(code, "version") == 0)
        ev_error(ctx, "version_mismatch", "the tracker speaks another protocol version (%s); use matching "
                 "parley versions", t->refusal_text[0] ? t->refusal_text : t->why);
    else
        ev_error(ctx, "replaced", "%s registered again from another place, so this peer is no "
                 "longer registered (%s); chats already open keep working", ctx->user,
                 t->refusal_text);
    if (strcmp(code, "replaced") != 0 && t->h->refused)
        t->h->refused(t->hdata, code);
}

void ctl_step(ctl *t, enum ctl_event ev, int status) {
    enum ctl_state was = t->state;
    if (was == CTL_CLOSED)
        return;
    switch (ev) {
    case CTL_EV_START: {
        if (was != CTL_IDLE && was != CTL_BACKOFF)
            return;
        t->why[0] = '\0';
        t->refusal_text[0] = '\0';
        t->refusal = NULL;
        struct addrinfo hints = {0};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG;
        t->gai.data = t;
        t->state = CTL_RESOLVING;
        int r = uv_getaddrinfo(t->ctx->loop, &t->gai, on_resolved, t->host, t->port, &hints);
        if (r) {
            ctl_step(t, CTL_EV_LOST, r);
            return;
        }
        t->gai_pending = 1;
        t->pending++;
        return;
    }
    case CTL_EV_RESOLVED:
        if (status) {
            ctl_step(t, CTL_EV_LOST, status);
            return;
        }
        t->state = CTL_CONNECTING;
        if (connect_next(t))
            ctl_step(t, CTL_EV_LOST, UV_EADDRNOTAVAIL);
        return;
    case CTL_EV_CONNECTED: {
        log_debug(t->lg, "connected to tracker %s", t->trying);
        t->state = CTL_HELLO;
        msg_out m;
        msg_tracker_hello(&m, "peer");
        conn_send_msg(t->c, &m);
        return;
    }
    case CTL_EV_WELCOME:
        t->state = CTL_REGISTER;
        conn_set_timeout(t->c, HANDSHAKE_MS);
        send_register(t);
        return;
    case CTL_EV_REGISTERED: {
        t->state = CTL_READY;
        t->ever_registered = 1;
        t->lost[0] = '\0'; /* the next loss is news again */
        t->backoff_ms = BACKOFF_MIN_MS;
        uint64_t every = (uint64_t)t->ttl * 1000 / 3;
        if (every < 1000)
            every = 1000;
        uv_timer_start(&t->ping, on_ping, every, every);
        conn_set_timeout(t->c, (uint64_t)t->ttl * 1000);
        ctl_subs_registered(t); /* before anything the user sees may ask for more */
        ev_registered(t->ctx, t->registered_name, t->ctx->tracker, t->observed);
        ctl_reqs_send_waiting(t);
        if (t->h->registered)
            t->h->registered(t->hdata);
        return;
    }
    case CTL_EV_LOST: {
        uv_timer_stop(&t->ping);
        ctl_reqs_lost(t, was == CTL_CONNECTING && !t->why[0] && t->ai_next);
        if (t->state == CTL_CLOSED)
            return;
        if (t->refusal) {
            t->state = CTL_STOPPED;
            refused(t);
            return;
        }
        if (was == CTL_CONNECTING && !t->why[0] && connect_next(t) == 0) {
            log_debug(t->lg, "tracker: %s: %s; trying the next address", t->trying,
                      uv_strerror(status));
            return;
        }
        char why[700];
        describe_loss(t, was, status, why, sizeof why);
        unsigned base = t->backoff_ms;
        /* +-20% jitter so peers that lost the same tracker do not return in step */
        unsigned delay = base - base / 5 + randombytes_uniform(base * 2 / 5 + 1);
        t->backoff_ms = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
        t->state = CTL_BACKOFF;
        uv_timer_start(&t->retry, on_retry, delay, 0);
        int repeat = strcmp(why, t->lost) == 0;
        if (repeat)
            log_info(t->lg, "tracker still unreachable (%s); retrying in %.1fs", why, delay / 1000.0);
        else
            snprintf(t->lost, sizeof t->lost, "%s", why);
        ev_tracker_lost(t->ctx, why, delay, repeat, t->ever_registered);
        /* Several trackers on one registry: the next one in the list, after
         * the same backoff (a whole round of them failing doubles it). */
        if (t->ctx->n_trackers > 1 &&
            use_tracker(t, (t->cur + 1) % t->ctx->n_trackers) == 0)
            log_info(t->lg, "trying the next tracker, %s, in %.1fs", t->ctx->tracker,
                     delay / 1000.0);
        return;
    }
    case CTL_EV_CLOSE:
        t->state = CTL_CLOSED;
        if (t->gai_pending)
            uv_cancel((uv_req_t *)&t->gai);
        if (t->c)
            conn_close(t->c, 0);
        uv_close((uv_handle_t *)&t->retry, on_handle_closed);
        uv_close((uv_handle_t *)&t->ping, on_handle_closed);
        uv_close((uv_handle_t *)&t->defer, on_handle_closed);
        return;
    }
}

int ctl_open(peer_ctx *ctx, const ctl_handler *h, void *data, ctl **out) {
    ctl *t = calloc(1, sizeof *t);
    if (!t)
        return UV_ENOMEM;
    t->ctx = ctx;
    t->h = h;
    t->hdata = data;
    t->lg = &ctx->lg;
    t->state = CTL_IDLE;
    t->backoff_ms = BACKOFF_MIN_MS;
    t->ttl = 60;
    if (ctx->n_trackers < 1 || use_tracker(t, 0)) {
        free(t);
        return UV_EINVAL;
    }
    if (kc_open(&t->keys)) {
        free(t);
        return UV_ENOMEM;
    }
    uv_timer_init(ctx->loop, &t->retry);
    uv_timer_init(ctx->loop, &t->ping);
    uv_timer_init(ctx->loop, &t->defer);
    t->retry.data = t->ping.data = t->defer.data = t;
    t->pending = 3;
    uv_timer_start(&t->retry, on_retry, 0, 0);
    *out = t;
    return 0;
}

void ctl_close(ctl *t) {
    if (!t)
        return;
    ctl_step(t, CTL_EV_CLOSE, 0);
}

int ctl_connect_failed(ctl *t, const char *to, uint64_t tag, const char *why) {
    if (!ctl_ready(t))
        return UV_ENOTCONN;
    if (!t->tracker_connect_failed)
        return UV_ENOTSUP; /* an older tracker would close on the unknown type */
    msg_out m;
    msg_out_init(&m, "connect_failed", 2 + (tag != 0));
    msg_put_str(&m, "to", to);
    msg_put_str(&m, "reason", why);
    if (tag)
        msg_put_uint(&m, "tag", tag);
    return conn_send_msg(t->c, &m);
}

int ctl_tracker_addr(const ctl *t, struct sockaddr_storage *ss) {
    if (!ctl_ready(t))
        return UV_ENOTCONN;
    int len = sizeof *ss;
    return uv_tcp_getpeername(conn_tcp(t->c), (struct sockaddr *)ss, &len);
}

/* The state says registered until ctl_step hears of the loss; the
 * connection is gone already while the lost requests are called back. */
int ctl_ready(const ctl *t) { return t && t->state == CTL_READY && t->c; }
