/* relay: sessions that copy bytes between two relay connections.  One
 * session: two sides (0 = the requester, 1 = the user it asked for), one
 * timer (first the join deadline, then the rate limiter's wake-up).  rs_step
 * is the one transition function; connection callbacks only feed it.
 *
 * Forwarding never decodes: conn.c's raw mode hands over whatever arrived
 * and it is queued on the other side as is.  A side is raw from its
 * relay_join on, so nothing it sends after the join is taken for a frame;
 * the side that joins first is not read until the other is in, so what it
 * sent early waits and follows relay_ready, in order.  A side stops being
 * read while the other side has more than RELAY_HIGH_WATER bytes queued
 * (resumed from the drain notification at half that) or while the session
 * is over its byte rate (resumed from the timer), so memory per session
 * stays bounded whatever the peers do. */
#include "relay.h"

#include "grow.h"

#include "frame.h"
#include "msg.h"
#include "name.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum rs_state {
    RS_WAITING,    /* created; sides join */
    RS_FORWARDING, /* both joined, raw mode */
    RS_CLOSING,    /* handles closing; freed when all are */
};

enum rs_event {
    RS_JOINED,     /* a side joined (arg: side index) */
    RS_JOIN_TIMEOUT,
    RS_RATE_TIMER,
    RS_SIDE_CLOSED, /* a side's connection closed (arg: side index) */
    RS_STOP,
};

enum { PAUSE_BACKPRESSURE = 1, PAUSE_RATE = 2, PAUSE_HOLD = 4 };

/* What a joined side may send before the other side joins: held, and
 * forwarded after relay_ready.  Past this its reading stops until then. */
#define RELAY_HOLD_MAX (64 * 1024)

typedef struct rside {
    struct rsess *s;
    conn *c;                 /* NULL before joining and after the close */
    int joined;
    int paused;              /* PAUSE_* bits */
    char *held;              /* sent while the other side had not joined */
    size_t nheld, heldcap;
    char name[NAME_BUFLEN];
    char fold[NAME_BUFLEN];
} rside;

typedef struct rsess {
    struct rsess *prev, *next; /* ctx->relays */
    tracker_ctx *ctx;
    enum rs_state state;
    unsigned char token[IDENT_SESSION];
    rside side[2];
    uv_timer_t timer;
    int handles;               /* open conns + the timer */
    double tokens;             /* rate limiter: bytes that may pass now */
    uint64_t refilled;         /* uv_now of the last refill */
    uint64_t bytes;            /* forwarded, both ways, for the log */
} rsess;

static void rs_step(rsess *s, enum rs_event ev, int arg);

static void rs_release(rsess *s) {
    if (--s->handles > 0)
        return;
    tracker_ctx *ctx = s->ctx;
    if (s->prev)
        s->prev->next = s->next;
    else
        ctx->relays = s->next;
    if (s->next)
        s->next->prev = s->prev;
    ctx->nrelays--;
    free(s->side[0].held);
    free(s->side[1].held);
    free(s);
}

static void on_timer_closed(uv_handle_t *h) { rs_release(h->data); }

static void on_timer(uv_timer_t *t) {
    rsess *s = t->data;
    rs_step(s, s->state == RS_WAITING ? RS_JOIN_TIMEOUT : RS_RATE_TIMER, 0);
}

static int count_user(const tracker_ctx *ctx, const char *fold) {
    int n = 0;
    for (const rsess *s = ctx->relays; s; s = s->next)
        if (s->state != RS_CLOSING &&
            (strcmp(s->side[0].fold, fold) == 0 || strcmp(s->side[1].fold, fold) == 0))
            n++;
    return n;
}

int rly_create(tracker_ctx *ctx, const char *from_name, const char *from_fold,
               const char *to_name, const char *to_fold, unsigned char token[IDENT_SESSION],
               char *why, size_t whylen) {
    const tracker_config *cfg = &ctx->cfg;
    if (ctx->nrelays >= cfg->relay_max) {
        snprintf(why, whylen, "the tracker relays %zu sessions already, its limit; try again "
                 "later", ctx->nrelays);
        return UV_EAGAIN;
    }
    const char *busy = (unsigned)count_user(ctx, from_fold) >= cfg->relay_per_user ? from_name
                       : (unsigned)count_user(ctx, to_fold) >= cfg->relay_per_user ? to_name
                       : NULL;
    if (busy) {
        snprintf(why, whylen, "%s already has %u relay sessions, the limit per user; close a "
                 "relayed chat and try again", busy, cfg->relay_per_user);
        return UV_EBUSY;
    }
    rsess *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, whylen, "the tracker is out of memory; try again later");
        return UV_ENOMEM;
    }
    s->ctx = ctx;
    s->state = RS_WAITING;
    randombytes_buf(s->token, sizeof s->token);
    memcpy(token, s->token, IDENT_SESSION);
    snprintf(s->side[0].name, NAME_BUFLEN, "%s", from_name);
    snprintf(s->side[0].fold, NAME_BUFLEN, "%s", from_fold);
    snprintf(s->side[1].name, NAME_BUFLEN, "%s", to_name);
    snprintf(s->side[1].fold, NAME_BUFLEN, "%s", to_fold);
    s->side[0].s = s->side[1].s = s;
    uv_timer_init(ctx->loop, &s->timer);
    s->timer.data = s;
    s->handles = 1;
    uv_timer_start(&s->timer, on_timer, cfg->relay_join_ms, 0);
    s->next = ctx->relays;
    if (s->next)
        s->next->prev = s;
    ctx->relays = s;
    ctx->nrelays++;
    log_info(&ctx->lg, "relay session for %s and %s created (%zu relays)", from_name, to_name,
             ctx->nrelays);
    return 0;
}

/* ---- connection callbacks ---- */

static int side_index(const rside *sd) { return sd == &sd->s->side[0] ? 0 : 1; }

static void on_side_closed(conn *c, int reason) {
    rside *sd = conn_data(c);
    sd->c = NULL;
    rsess *s = sd->s;
    rs_step(s, RS_SIDE_CLOSED, side_index(sd));
    rs_release(s);
}

static void set_paused(rside *sd, int bit, int on) {
    int was = sd->paused;
    sd->paused = on ? was | bit : was & ~bit;
    if (!sd->c)
        return;
    if (!was && sd->paused)
        conn_pause(sd->c);
    else if (was && !sd->paused)
        conn_resume(sd->c);
}

static void refill(rsess *s) {
    uint64_t now = uv_now(s->ctx->loop);
    double rate = (double)s->ctx->cfg.relay_rate;
    s->tokens += (double)(now - s->refilled) * rate / 1000.0;
    if (s->tokens > rate) /* at most one second's worth of burst */
        s->tokens = rate;
    s->refilled = now;
}

/* Before the other side joins, bytes are held (read, so that a side that
 * leaves meanwhile is noticed and the session ends at once). */
static void hold(rside *sd, const char *data, size_t len) {
    char *nb = grow(sd->held, &sd->heldcap, sd->nheld + len, 1, 1024);
    if (!nb) {
        conn_close(sd->c, UV_ENOMEM); /* its close ends the session */
        return;
    }
    memcpy(nb + sd->nheld, data, len);
    sd->held = nb;
    sd->nheld += len;
    if (sd->nheld >= RELAY_HOLD_MAX)
        set_paused(sd, PAUSE_HOLD, 1);
}

/* Copies len bytes from sd to `to`, charging them to the session's rate
 * budget and bounding what waits for `to`: past either, sd is not read
 * until there is room again.  data stays the caller's. */
static void forward(rside *sd, rside *to, const char *data, size_t len) {
    rsess *s = sd->s;
    s->bytes += len;
    s->ctx->stats.relay_bytes += len;
    uint64_t idle = (uint64_t)s->ctx->cfg.relay_idle * 1000;
    conn_set_timeout(sd->c, idle);
    conn_set_timeout(to->c, idle);
    /* conn_send_copy writes from data and copies only what the socket does
     * not take at once (usually nothing while the far reader keeps up). */
    if (conn_send_copy(to->c, data, len))
        return; /* to is closing (also when out of memory); its close ends the session */
    if (conn_queued(to->c) > RELAY_HIGH_WATER)
        set_paused(sd, PAUSE_BACKPRESSURE, 1);
    refill(s);
    s->tokens -= (double)len;
    if (s->tokens < 0) {
        set_paused(sd, PAUSE_RATE, 1);
        uint64_t wait = (uint64_t)(-s->tokens * 1000.0 / (double)s->ctx->cfg.relay_rate) + 1;
        if (!uv_is_active((uv_handle_t *)&s->timer) || uv_timer_get_due_in(&s->timer) < wait)
            uv_timer_start(&s->timer, on_timer, wait, 0);
    }
}

/* data is conn's read buffer, valid only during this call. */
static void on_raw(conn *c, const char *data, size_t len) {
    rside *sd = conn_data(c);
    rsess *s = sd->s;
    rside *to = &s->side[1 - side_index(sd)];
    if (s->state == RS_WAITING)
        hold(sd, data, len);
    else if (s->state == RS_FORWARDING && to->c)
        forward(sd, to, data, len);
}

/* The other side's queue went down: read this one again. */
static void on_drain(conn *c) {
    rside *sd = conn_data(c);
    rside *from = &sd->s->side[1 - side_index(sd)];
    set_paused(from, PAUSE_BACKPRESSURE, 0);
}

/* ---- the session's state machine ---- */

static void send_ready(rside *sd) {
    msg_out m;
    msg_out_init(&m, "relay_ready", 0);
    conn_send_msg(sd->c, &m);
}

static void close_all(rsess *s) {
    if (s->state == RS_CLOSING)
        return;
    s->state = RS_CLOSING;
    for (int i = 0; i < 2; i++)
        if (s->side[i].c)
            conn_close(s->side[i].c, 0);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    log_info(&s->ctx->lg, "relay session for %s and %s closed (%llu bytes relayed)",
             s->side[0].name, s->side[1].name, (unsigned long long)s->bytes);
}

static void rs_step(rsess *s, enum rs_event ev, int arg) {
    if (s->state == RS_CLOSING)
        return;
    switch (ev) {
    case RS_JOINED:
        if (!s->side[0].joined || !s->side[1].joined)
            return;
        s->state = RS_FORWARDING;
        uv_timer_stop(&s->timer);
        s->tokens = (double)s->ctx->cfg.relay_rate;
        s->refilled = uv_now(s->ctx->loop);
        for (int i = 0; i < 2; i++) {
            rside *sd = &s->side[i];
            send_ready(sd); /* both, before any relayed byte */
            conn_set_drain(sd->c, on_drain, RELAY_HIGH_WATER / 2);
            conn_set_timeout(sd->c, (uint64_t)s->ctx->cfg.relay_idle * 1000);
        }
        for (int i = 0; i < 2; i++) { /* what the first to join held follows now */
            rside *sd = &s->side[i], *to = &s->side[1 - i];
            if (sd->nheld)
                forward(sd, to, sd->held, sd->nheld); /* rated like any other byte */
            free(sd->held);
            sd->held = NULL;
            sd->nheld = sd->heldcap = 0;
            set_paused(sd, PAUSE_HOLD, 0);
        }
        log_info(&s->ctx->lg, "relay session for %s and %s is forwarding", s->side[0].name,
                 s->side[1].name);
        return;
    case RS_JOIN_TIMEOUT: {
        char text[200];
        for (int i = 0; i < 2; i++) {
            rside *sd = &s->side[i];
            if (!sd->c)
                continue;
            snprintf(text, sizeof text, "%s did not join the relay within %u ms; try again later",
                     s->side[1 - i].name, s->ctx->cfg.relay_join_ms);
            conn_fail(sd->c, "timeout", text, 0); /* its close ends the session */
        }
        if (!s->side[0].c && !s->side[1].c)
            close_all(s);
        return;
    }
    case RS_RATE_TIMER:
        refill(s);
        for (int i = 0; i < 2; i++)
            set_paused(&s->side[i], PAUSE_RATE, 0);
        return;
    case RS_SIDE_CLOSED:
        /* Waiting, the other side has not joined (both joined is
         * forwarding): the session ends, and a late join finds no session. */
        close_all(s);
        return;
    case RS_STOP:
        close_all(s);
        return;
    }
}

int rly_join(tracker_ctx *ctx, conn *c, const unsigned char token[IDENT_SESSION],
             const char *folded) {
    rsess *s;
    for (s = ctx->relays; s; s = s->next)
        if (sodium_memcmp(s->token, token, IDENT_SESSION) == 0)
            break;
    if (!s || s->state != RS_WAITING)
        return UV_ENOENT;
    int i = strcmp(s->side[0].fold, folded) == 0 ? 0 : strcmp(s->side[1].fold, folded) == 0 ? 1 : -1;
    if (i < 0 || s->side[i].joined)
        return UV_EPERM;
    rside *sd = &s->side[i];
    sd->joined = 1;
    sd->c = c;
    s->handles++;
    /* Raw from here on, so no frame callback: conn_set_raw, called from
     * the frame callback that carried relay_join, takes the bytes after it
     * too. */
    conn_set_handlers(c, NULL, on_side_closed, sd);
    /* Bulk reads up to RELAY_READ_MAX, but never more than a sixteenth of
     * a second's budget at once: the limiter charges a read after it
     * passed, so one read is what it can overshoot by. */
    uint64_t slice = ctx->cfg.relay_rate / 16;
    conn_set_raw(c, on_raw, slice < RELAY_READ_MAX ? (size_t)slice : RELAY_READ_MAX);
    conn_set_timeout(c, 0); /* the session's join deadline covers it now */
    log_info(&ctx->lg, "%s joined the relay session with %s", sd->name, s->side[1 - i].name);
    if (!s->side[1 - i].joined)
        return 0; /* what it sends now is held (on_raw) until RS_JOINED */
    rs_step(s, RS_JOINED, i);
    return 0;
}

void rly_stop(tracker_ctx *ctx) {
    for (rsess *s = ctx->relays; s; s = s->next)
        rs_step(s, RS_STOP, 0);
}
