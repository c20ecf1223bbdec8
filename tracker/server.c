/* server: what a control connection may send when.  Every frame goes
 * through srv_table (shared/dispatch.h): admit sees it first (liveness and
 * the rate limit), then its entry says in which session states the type is
 * legal and which handler takes it.  A frame that is not legal where it
 * came is refused here, in the words the protocol has always used for that
 * state and type. */
#include "server.h"

#include "handlers.h"
#include "mail.h"
#include "presence.h"
#include "ratelimit.h"
#include "relay.h"
#include "remote.h"
#include "session.h"
#include "verifier.h"

#include <stdio.h>
#include <time.h>

static void on_ping(void *owner, const msg_in *m) {
    msg_out out;
    msg_out_init(&out, "pong", 0);
    sess_send_msg(owner, &out);
}

/* The client gave up on us; an error without id means it is closing. */
static void on_error(void *owner, const msg_in *m) {
    session *s = owner;
    char code[32], text[200];
    uint64_t id = 0;
    msg_error_fields(m, code, sizeof code, text, sizeof text);
    msg_uint(m, "id", &id);
    log_info(&s->ctx->lg, "%s: client reported error %s: %s", s->observed, code, text);
    if (!id)
        conn_close(s->c, UV_EPROTO);
}

#define HELLO DISP_IN(SS_HELLO)
#define READY DISP_IN(SS_READY)
#define REGISTERING DISP_IN(SS_REGISTERING)
#define REGISTERED DISP_IN(SS_REGISTERED)
#define RELAY DISP_IN(SS_RELAY)
#define UNREGISTERED (READY | REGISTERING)
#define CONTROL (UNREGISTERED | REGISTERED) /* a control connection after its hello */

static const disp_entry entries[] = {
    /* type             legal in              flags handler */
    {"hello",           HELLO,                0,    rgn_hello},
    {"register",        READY,                0,    rgn_register},
    {"list",            REGISTERED,           0,    qry_list},
    {"lookup",          REGISTERED,           0,    qry_lookup},
    {"connect_request", REGISTERED,           0,    rch_connect_request},
    {"connect_failed",  REGISTERED,           0,    rch_connect_failed},
    {"relay_request",   REGISTERED,           0,    rch_relay_request},
    {"punch_request",   REGISTERED,           0,    rch_punch_request},
    {"relay_join",      RELAY,                0,    rch_relay_join},
    {"mail_put",        REGISTERED,           0,    mail_put},
    {"mail_ack",        REGISTERED,           0,    mail_ack},
    {"receipt_ack",     REGISTERED,           0,    mail_receipt_ack},
    {"subscribe",       REGISTERED,           0,    pres_subscribe},
    {"unsubscribe",     REGISTERED,           0,    pres_unsubscribe},
    {"ping",            CONTROL,              0,    on_ping},
    {"pong",            CONTROL,              0,    rch_pong},
    {"error",           CONTROL | RELAY,      0,    on_error},
};

static void refuse_hello(void *owner, const msg_in *m) {
    session *s = owner;
    conn_fail(s->c, "bad_message", "hello was already sent on this connection", 0);
}

static void refuse_register(void *owner, const msg_in *m) {
    session *s = owner;
    char text[512];
    snprintf(text, sizeof text,
             "this connection already registered %s; open a new connection to register "
             "another name", s->name);
    conn_fail(s->c, "already_registered", text, 0);
}

static void refuse_relay_join(void *owner, const msg_in *m) {
    session *s = owner;
    conn_fail(s->c, "bad_message", "relay_join belongs on a relay connection (hello role "
              "\"relay\")", 0);
}

/* What a type gets on a control connection, after hello, in a state where
 * srv_table does not take it.  Only looked up (disp_find), never
 * dispatched through. */
static const disp_entry misplaced_entries[] = {
    /* type             refused in                flags handler */
    {"hello",           CONTROL,                  0,    refuse_hello},
    {"register",        REGISTERING | REGISTERED, 0,    refuse_register},
    {"relay_join",      CONTROL,                  0,    refuse_relay_join},
    {"list",            UNREGISTERED,             0,    qry_list_unregistered},
    {"lookup",          UNREGISTERED,             0,    qry_lookup_unregistered},
    {"connect_request", UNREGISTERED,             0,    rch_request_unregistered},
    {"connect_failed",  UNREGISTERED,             0,    rch_connect_failed_unregistered},
    {"relay_request",   UNREGISTERED,             0,    rch_request_unregistered},
    {"punch_request",   UNREGISTERED,             0,    rch_request_unregistered},
    {"mail_put",        UNREGISTERED,             0,    mail_put_unregistered},
    {"mail_ack",        UNREGISTERED,             0,    mail_ack_unregistered},
    {"receipt_ack",     UNREGISTERED,             0,    mail_receipt_ack_unregistered},
    {"subscribe",       UNREGISTERED,             0,    pres_subscribe_unregistered},
    {"unsubscribe",     UNREGISTERED,             0,    pres_subscribe_unregistered},
};

static const disp_table misplaced = DISP_TABLE(misplaced_entries, "", NULL, NULL);

/* Every decoded frame shows the client alive, and costs a token whatever
 * its type. */
static int admit(void *owner, const msg_in *m) {
    session *s = owner;
    s->last_frame = (int64_t)time(NULL);
    conn_set_timeout(s->c, (uint64_t)s->ctx->cfg.ttl * 1000);
    return rate_admit(s, m);
}

static void refuse(void *owner, const disp_refusal *r) {
    session *s = owner;
    if (r->why == DISP_BAD_FRAME)
        s->ctx->stats.rejected[STAT_REJ_BAD_FRAME]++;
    else if (r->why == DISP_UNKNOWN_TYPE)
        s->ctx->stats.rejected[STAT_REJ_UNKNOWN_TYPE]++;
    if (r->why == DISP_WRONG_STATE) {
        if (r->state == SS_HELLO) {
            conn_fail(s->c, "bad_message", "the first frame must be hello", 0);
            return;
        }
        if (r->state == SS_RELAY) {
            conn_fail(s->c, "bad_message", "a relay connection sends relay_join after hello", 0);
            return;
        }
        const disp_entry *e = disp_find(&misplaced, r->m->type);
        if (e && (e->states & DISP_IN(r->state))) {
            e->fn(s, r->m);
            return;
        }
    }
    conn_fail(s->c, r->code, r->text, 0);
}

static const disp_table srv_table =
    DISP_TABLE(entries, "at this point of the control connection", admit, refuse);

/* ---- the connection's callbacks (accept.c gives them to sess_new) ---- */

void srv_on_frame(conn *c, const char *payload, size_t len) {
    session *s = conn_data(c);
    disp_frame(&srv_table, s, s->state, 0, payload, len);
}

static const char *close_reason(int reason) {
    switch (reason) {
    case 0: return "closed";
    case UV_EOF: return "disconnected";
    case UV_ETIMEDOUT: return "silent for too long";
    case UV_EPROTO: return "closed with an error";
    case UV_E2BIG: return "frame too big";
    case UV_ENOBUFS: return "not reading";
    default: return uv_strerror(reason);
    }
}

void srv_on_closed(conn *c, int reason) {
    session *s = conn_data(c);
    tracker_ctx *ctx = s->ctx;
    if (reason == UV_E2BIG)
        ctx->stats.rejected[STAT_REJ_TOO_BIG]++;
    ctx->stats.control_sent_closed += conn_sent(c);
    sess_unlink(s);
    s->c = NULL;
    pres_drop(s); /* before the push below: it is told nothing more */
    if (s->state == SS_REGISTERED && namemap_del(ctx->online, s->folded, s)) {
        if (reg_presence(ctx->reg, s->folded, 0, s->last_frame))
            log_warn(&ctx->lg, "could not record %s as offline in the database", s->name);
        if (!ctx->stopping)
            pres_push(ctx, s, s->name, false);
        log_info(&ctx->lg, "%s went offline (%s; %zu online)", s->name,
                 ctx->stopping ? "tracker shutting down" : close_reason(reason),
                 namemap_count(ctx->online));
    } else {
        log_debug(&ctx->lg, "%s: connection closed (%s)", s->observed, close_reason(reason));
    }
    if (sess_held(s))
        return; /* a commit's callback still needs it, and frees it */
    sess_free(s);
}

/* The pass's commits are on disk: what they made due goes out. */
static void on_batch_end(void *arg) {
    pres_flush(arg);
    mail_flush(arg);
}

static void reassert_one(void *sess, void *arg) {
    session *s = sess;
    tracker_ctx *ctx = arg;
    if (reg_presence(ctx->reg, s->folded, 1, s->last_frame))
        log_warn(&ctx->lg, "could not record %s as online in the database", s->name);
}

/* Back on the shared registry after an outage: the other trackers may have
 * marked our users offline meanwhile (our lease ran out). */
static void on_reconnected(void *arg) {
    tracker_ctx *ctx = arg;
    namemap_each(ctx->online, reassert_one, ctx);
}

/* A message from another tracker on the shared registry (remote.h). */
static const rmt_handlers remote_handlers = {rch_punch_remote, rch_relay_remote, mail_kick};

static void on_forward(void *arg, const char *payload) {
    rmt_received(arg, payload, &remote_handlers);
}

int srv_open(tracker_ctx *ctx) {
    int e = pres_open(ctx);
    if (e || (e = mail_open(ctx)) != 0)
        return e;
    if (ctx->cfg.verify_threads &&
        (e = vfy_open(ctx->loop, ctx->cfg.verify_threads, &ctx->verifier)) != 0)
        return e;
    reg_on_batch_end(ctx->reg, on_batch_end, ctx);
    reg_on_remote_presence(ctx->reg, pres_push_remote, ctx);
    reg_on_forward(ctx->reg, on_forward, ctx);
    reg_on_reconnected(ctx->reg, on_reconnected, ctx);
    return 0;
}

uint64_t srv_control_bytes_sent(const tracker_ctx *ctx) {
    uint64_t sent = ctx->stats.control_sent_closed;
    for (const session *s = ctx->sessions; s; s = s->next)
        if (s->c)
            sent += conn_sent(s->c);
    return sent;
}

void srv_presence_counts(const tracker_ctx *ctx, size_t *subs, size_t *names, size_t *all) {
    pres_counts(ctx, subs, names, all);
}

void srv_stop(tracker_ctx *ctx) {
    rly_stop(ctx);
    mail_stop(ctx);
    /* Not conn_fail: that logs a line per client and may wait 2 s on each
     * slow one.  The error goes out now if the socket has room, and the
     * close drops whatever does not fit. */
    for (session *s = ctx->sessions; s; s = s->next) {
        if (!s->c || conn_closing(s->c))
            continue;
        sess_send_error(s, "shutdown", "the tracker is shutting down; reconnect later", 0);
        if (s->c)
            conn_close(s->c, 0);
    }
}

void srv_close(tracker_ctx *ctx) {
    vfy_close(ctx->verifier); /* idle by now: the loop waited for its jobs */
    ctx->verifier = NULL;
    if (ctx->reg) {
        reg_on_batch_end(ctx->reg, NULL, NULL);
        reg_on_remote_presence(ctx->reg, NULL, NULL);
        reg_on_forward(ctx->reg, NULL, NULL);
        reg_on_reconnected(ctx->reg, NULL, NULL);
    }
    pres_close(ctx);
    namemap_free(ctx->hosts);
    ctx->hosts = NULL;
}
