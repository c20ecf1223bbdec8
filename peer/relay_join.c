/* relay_join: joining a relay session.  rjoin_step is the one transition
 * function; the connect, frame and close callbacks only feed it. */
#include "relay_join.h"

#include "control.h"
#include "frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELAY_SETUP_MS 15000 /* connect + hello + join + the other side joining */

enum relay_state {
    R_CONNECTING, /* TCP connect to the tracker */
    R_HELLO,      /* hello sent, waiting for welcome */
    R_JOIN,       /* relay_join sent, waiting for relay_ready */
    R_DONE,       /* handed over, failed or cancelled */
};

enum relay_event {
    RE_CONNECTED, /* status: connect result */
    RE_WELCOME,   /* arg: the nonce */
    RE_READY,
    RE_CANCEL,
};

struct rjoin {
    peer_ctx *ctx;
    conn *c;
    uv_connect_t creq;
    enum relay_state state;
    rjoin_ready_cb cb;
    void *data;
    unsigned char token[IDENT_SESSION];
    char why[400];
};

static void rjoin_step(rjoin *r, enum relay_event ev, int status, const void *arg);

static void report(rjoin *r, conn *c, const char *why) {
    rjoin_ready_cb cb = r->cb;
    r->cb = NULL;
    r->state = R_DONE;
    if (cb)
        cb(r->data, c, why);
}

static void on_frame(conn *c, const char *payload, size_t len) {
    rjoin *r = conn_data(c);
    msg_in m;
    if (msg_parse(&m, payload, len)) {
        conn_fail(c, "bad_frame", "not a msgpack map with a string t", 0);
        return;
    }
    const unsigned char *nonce;
    if (strcmp(m.type, "welcome") == 0 && r->state == R_HELLO &&
        msg_bin(&m, "nonce", &nonce, IDENT_NONCE) == 0) {
        rjoin_step(r, RE_WELCOME, 0, nonce);
    } else if (strcmp(m.type, "relay_ready") == 0 && r->state == R_JOIN) {
        rjoin_step(r, RE_READY, 0, NULL);
    } else if (strcmp(m.type, "error") == 0) {
        char code[32], text[300];
        msg_error_fields(&m, code, sizeof code, text, sizeof text);
        snprintf(r->why, sizeof r->why, "the relay said: %s (%s)", text[0] ? text : "no reason",
                 code);
        conn_close(c, UV_EPROTO);
    } else {
        char text[80];
        snprintf(text, sizeof text, "unexpected %s while joining a relay", m.type);
        conn_fail(c, "bad_message", text, 0);
    }
    msg_in_free(&m);
}

static void on_closed(conn *c, int reason) {
    rjoin *r = conn_data(c);
    r->c = NULL;
    if (r->state != R_DONE) {
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
    rjoin_step(req->data, RE_CONNECTED, status, NULL);
}

static void rjoin_step(rjoin *r, enum relay_event ev, int status, const void *arg) {
    if (r->state == R_DONE)
        return;
    peer_ctx *ctx = r->ctx;
    switch (ev) {
    case RE_CONNECTED: {
        if (status == 0)
            status = conn_start(r->c);
        if (status) {
            conn_close(r->c, status);
            return;
        }
        r->state = R_HELLO;
        msg_out m;
        msg_out_init(&m, "hello", 2);
        msg_put_uint(&m, "v", PROTO_VERSION);
        msg_put_str(&m, "role", "relay");
        conn_send_msg(r->c, &m);
        return;
    }
    case RE_WELCOME: {
        unsigned char sig[IDENT_SIG];
        ident_sign_relay(&ctx->id, arg, r->token, ctx->user, strlen(ctx->user), sig);
        msg_out m;
        msg_out_init(&m, "relay_join", 4);
        msg_put_bin(&m, "session", r->token, IDENT_SESSION);
        msg_put_str(&m, "name", ctx->user);
        msg_put_bin(&m, "key", ctx->id.pk, IDENT_PK);
        msg_put_bin(&m, "sig", sig, IDENT_SIG);
        r->state = R_JOIN;
        conn_send_msg(r->c, &m);
        return;
    }
    case RE_READY: {
        conn *c = r->c;
        conn_set_timeout(c, 0);
        /* From here the conn belongs to the callee (it replaces the
         * handlers); r lives on only as far as this function. */
        r->c = NULL;
        report(r, c, NULL);
        free(r);
        return;
    }
    case RE_CANCEL:
        r->cb = NULL;
        r->state = R_DONE;
        if (r->c)
            conn_close(r->c, 0);
        return;
    }
}

int rjoin_open(peer_ctx *ctx, const unsigned char token[IDENT_SESSION], rjoin_ready_cb cb,
               void *data, rjoin **out) {
    struct sockaddr_storage ss;
    int err = ctl_tracker_addr(ctx->ctl, &ss);
    if (err)
        return err;
    rjoin *r = calloc(1, sizeof *r);
    if (!r)
        return UV_ENOMEM;
    r->ctx = ctx;
    r->cb = cb;
    r->data = data;
    r->state = R_CONNECTING;
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
        rjoin_step(r, RE_CANCEL, 0, NULL);
}
