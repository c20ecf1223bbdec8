/* slot: the load generator's connections, one per slot, each a shared/conn
 * (the transport of the tracker and the peer), so the bench writes and
 * reads as parley does.  The protocol picks how bytes come back: whole
 * frames for parley, conn's raw mode for RESP.  What is left here is the
 * slot's state and the connect step that conn leaves to its owner. */
#include "loadgen.h"

static const char *const state_names[] = {"idle", "connecting", "handshake", "ready", "busy",
                                          "closing"};

void slot_set(slot *s, slot_state to) {
    log_debug(&s->ctx->lg, "slot %zu: %s -> %s", s->idx, state_names[s->state], state_names[to]);
    s->state = to;
}

static void on_closed(conn *c, int reason) {
    slot *s = conn_data(c);
    s->c = NULL; /* conn frees itself once this returns */
    s->tail.start = s->tail.end = 0; /* keep the buffer for the next connection */
    slot_set(s, SL_IDLE);
    lg_closed(s, reason);
}

void slot_close(slot *s) {
    if (s->state == SL_IDLE || s->state == SL_CLOSING)
        return;
    slot_set(s, SL_CLOSING);
    conn_close(s->c, 0);
}

static void on_connect(uv_connect_t *req, int status) {
    slot *s = req->data;
    if (s->state == SL_CLOSING)
        return; /* closed while connecting: on_closed follows */
    if (status == 0)
        status = conn_start(s->c);
    if (status) {
        conn_close(s->c, status);
        return;
    }
    slot_set(s, SL_HANDSHAKE);
    s->ctx->proto->connected(s);
}

int slot_connect(slot *s) {
    lg_ctx *ctx = s->ctx;
    const lg_proto *p = ctx->proto;
    s->c = conn_new(ctx->loop, FRAME_MAX_DEFAULT, &ctx->lg, p->on_frame, on_closed, s);
    if (!s->c)
        return UV_ENOMEM;
    /* Before conn_start nothing is buffered, so raw mode holds from the
     * first byte. */
    if (p->on_raw)
        conn_set_raw(s->c, p->on_raw, 16384);
    s->creq.data = s;
    slot_set(s, SL_CONNECTING);
    int r = uv_tcp_connect(&s->creq, conn_tcp(s->c), (const struct sockaddr *)&ctx->target,
                           on_connect);
    if (r)
        conn_close(s->c, r); /* reported through lg_closed, from the loop */
    return 0;
}
