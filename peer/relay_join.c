/* relay_join: joining a relay session.  rjoin_step is the one transition
 * function; the connect and close callbacks and the handlers of the
 * dispatch table only feed it. */
#include "relay_join.h"

#include "control.h"
#include "dispatch.h"
#include "frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELAY_SETUP_MS 15000 /* connect + hello + join + the other side joining */

/* Below 32: the dispatch table names them with DISP_IN. */
enum rjoin_state {
    RJ_CONNECTING, /* TCP connect to the tracker */
    RJ_HELLO,      /* hello sent, waiting for welcome */
    RJ_JOIN,       /* relay_join sent, waiting for relay_ready */
    RJ_DONE,       /* handed over, failed or cancelled */
};

enum rjoin_event {
    RJ_EV_CONNECTED, /* status: connect result */
    RJ_EV_WELCOME,   /* arg: the nonce */
    RJ_EV_READY,
    RJ_EV_CANCEL,
};

struct rjoin {
    peer_ctx *ctx;
    conn *c;
    uv_connect_t creq;
    enum rjoin_state state;
    rjoin_ready_cb cb;
    void *data;
    unsigned char token[IDENT_SESSION];
    char why[400];
};

static void rjoin_step(rjoin *r, enum rjoin_event ev, int status, const void *arg);

static void report(rjoin *r, conn *c, const char *why) {
    rjoin_ready_cb cb = r->cb;
    r->cb = NULL;
    r->state = RJ_DONE;
    if (cb)
        cb(r->data, c, why);
}

static void on_welcome(void *owner, const msg_in *m) {
    rjoin *r = owner;
    const unsigned char *nonce;
    if (msg_bin(m, "nonce", &nonce, IDENT_NONCE)) {
        conn_fail(r->c, "bad_message", "malformed welcome", 0);
        return;
    }
    rjoin_step(r, RJ_EV_WELCOME, 0, nonce);
}

static void on_relay_ready(void *owner, const msg_in *m) {
    rjoin_step(owner, RJ_EV_READY, 0, NULL);
}

static void on_error(void *owner, const msg_in *m) {
    rjoin *r = owner;
    char code[32], text[300];
    msg_error_fields(m, code, sizeof code, text, sizeof text);
    snprintf(r->why, sizeof r->why, "the relay said: %s (%s)", text[0] ? text : "no reason", code);
    conn_close(r->c, UV_EPROTO);
}

/* The tracker sends nothing but these three on a relay connection before
 * relay_ready, so a type we do not know is a message out of place
 * (bad_message), like a known one in the wrong state. */
static void refuse(void *owner, const disp_refusal *f) {
    rjoin *r = owner;
    conn_fail(r->c, f->why == DISP_UNKNOWN_TYPE ? "bad_message" : f->code, f->text, 0);
}

/* Frames arrive only between hello and relay_ready. */
#define LINKED (DISP_IN(RJ_HELLO) | DISP_IN(RJ_JOIN))

static const disp_entry entries[] = {
    {"welcome",     DISP_IN(RJ_HELLO), 0, on_welcome},
    {"relay_ready", DISP_IN(RJ_JOIN),  0, on_relay_ready},
    {"error",       LINKED,            0, on_error},
};

static const disp_table frames = DISP_TABLE(entries, "while joining a relay", NULL, refuse);

static void on_frame(conn *c, const char *payload, size_t len) {
    rjoin *r = conn_data(c);
    disp_frame(&frames, r, r->state, 0, payload, len); /* r may be gone after this */
}

static void on_closed(conn *c, int reason) {
    rjoin *r = conn_data(c);
    r->c = NULL;
    if (r->state != RJ_DONE) {
        if (!r->why[0])
            snprintf(r->why, sizeof r->why, "the relay connection %s", reason == UV_ETIMEDOUT
                     ? "timed out" : reason == UV_EOF ? "was closed by the tracker"
                     : uv_strerror(reason));
        report(r, NULL, r->why);
    }
    free(r);
}

static void on_connect(uv_connect_t *req, int status) {
    if (status == UV_ECANCELED)
        return;
    rjoin_step(req->data, RJ_EV_CONNECTED, status, NULL);
}

static void rjoin_step(rjoin *r, enum rjoin_event ev, int status, const void *arg) {
    if (r->state == RJ_DONE)
        return;
    peer_ctx *ctx = r->ctx;
    switch (ev) {
    case RJ_EV_CONNECTED: {
        if (status == 0)
            status = conn_start(r->c);
        if (status) {
            conn_close(r->c, status);
            return;
        }
        r->state = RJ_HELLO;
        msg_out m;
        msg_tracker_hello(&m, "relay");
        conn_send_msg(r->c, &m);
        return;
    }
    case RJ_EV_WELCOME: {
        unsigned char sig[IDENT_SIG];
        ident_sign_relay(&ctx->id, arg, r->token, ctx->user, strlen(ctx->user), sig);
        msg_out m;
        msg_out_init(&m, "relay_join", 4);
        msg_put_bin(&m, "session", r->token, IDENT_SESSION);
        msg_put_str(&m, "name", ctx->user);
        msg_put_bin(&m, "key", ctx->id.pk, IDENT_PK);
        msg_put_bin(&m, "sig", sig, IDENT_SIG);
        r->state = RJ_JOIN;
        conn_send_msg(r->c, &m);
        return;
    }
    case RJ_EV_READY: {
        conn *c = r->c;
        conn_set_timeout(c, 0);
        /* From here the conn belongs to the callee (it replaces the
         * handlers); r lives on only as far as this function. */
        r->c = NULL;
        report(r, c, NULL);
        free(r);
        return;
    }
    case RJ_EV_CANCEL:
        r->cb = NULL;
        r->state = RJ_DONE;
        if (r->c)
            conn_close(r->c, 0);
        return;
    }
}

int rjoin_open(peer_ctx *ctx, const unsigned char token[IDENT_SESSION], const char *at,
               rjoin_ready_cb cb, void *data, rjoin **out) {
    struct sockaddr_storage ss;
    int err = ctl_tracker_addr(ctx->ctl, &ss); /* registered, wherever the relay is */
    if (!err && at && addr_parse_numeric(at, &ss))
        err = UV_EINVAL;
    if (err)
        return err;
    rjoin *r = calloc(1, sizeof *r);
    if (!r)
        return UV_ENOMEM;
    r->ctx = ctx;
    r->cb = cb;
    r->data = data;
    r->state = RJ_CONNECTING;
    memcpy(r->token, token, IDENT_SESSION);
    r->c = conn_new(ctx->loop, FRAME_MAX_DEFAULT, &ctx->lg, on_frame, on_closed, r);
    if (!r->c) {
        free(r);
        return UV_ENOMEM;
    }
    conn_set_timeout(r->c, RELAY_SETUP_MS);
    r->creq.data = r;
    err = uv_tcp_connect(&r->creq, conn_tcp(r->c), (struct sockaddr *)&ss, on_connect);
    if (err)
        conn_close(r->c, err); /* reported from on_closed, from the loop */
    *out = r;
    return 0;
}

void rjoin_cancel(rjoin *r) {
    if (r)
        rjoin_step(r, RJ_EV_CANCEL, 0, NULL);
}
