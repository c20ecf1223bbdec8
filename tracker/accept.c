/* accept: new control connections.  Each gets a session and the first
 * frame timeout, unless a connection limit (--max-conns,
 * --max-conns-per-addr) turns it away with error limit before its hello. */
#include "ratelimit.h"
#include "server.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_rejected(uv_handle_t *h) {
    free(h);
}

/* Takes a connection we cannot serve off the backlog, so the listener keeps
 * accepting once memory is back. */
static void reject(uv_stream_t *listener, tracker_ctx *ctx) {
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t)
        return;
    uv_tcp_init(ctx->loop, t);
    uv_accept(listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_rejected);
}

/* The connection limits; 0 when s may stay, else it was failed with
 * "limit".  The per-address count is session.c's table. */
static int over_limits(tracker_ctx *ctx, session *s) {
    char text[200];
    if (ctx->cfg.max_conns && ctx->nsessions > ctx->cfg.max_conns) {
        snprintf(text, sizeof text,
                 "the tracker is full (%u connections); try again later", ctx->cfg.max_conns);
        ctx->stats.refused[STAT_REFUSED_MAX_CONNS]++;
        conn_fail(s->c, "limit", text, 0);
        return 1;
    }
    if (!ctx->cfg.max_per_addr)
        return 0;
    unsigned n = 0;
    if (sess_count_host(s, &n))
        return 0; /* out of memory: uncounted, so not limited */
    if (n < ctx->cfg.max_per_addr)
        return 0;
    snprintf(text, sizeof text,
             "too many connections from your address (at most %u); close some and retry",
             ctx->cfg.max_per_addr);
    ctx->stats.refused[STAT_REFUSED_PER_ADDR]++;
    conn_fail(s->c, "limit", text, 0);
    return 1;
}

void srv_on_connection(uv_stream_t *listener, int status) {
    tracker_ctx *ctx = listener->data;
    if (status < 0) {
        log_warn(&ctx->lg, "accepting a connection failed: %s", uv_strerror(status));
        return;
    }
    session *s = sess_new(ctx, srv_on_frame, srv_on_closed);
    if (!s) {
        log_error(&ctx->lg, "out of memory: refusing a connection");
        reject(listener, ctx);
        return;
    }
    int r = uv_accept(listener, (uv_stream_t *)conn_tcp(s->c));
    if (r == 0)
        r = conn_start(s->c);
    if (r) {
        log_warn(&ctx->lg, "accepting a connection failed: %s", uv_strerror(r));
        conn_close(s->c, r);
        return;
    }
    snprintf(s->observed, sizeof s->observed, "%s", conn_peer(s->c));
    memcpy(&s->addr, conn_peer_sa(s->c), sizeof s->addr);
    rate_start(s);
    if (over_limits(ctx, s))
        return;
    conn_set_timeout(s->c, TRACKER_HELLO_MS);
    log_debug(&ctx->lg, "%s: connected (%zu connections)", s->observed, ctx->nsessions);
}
