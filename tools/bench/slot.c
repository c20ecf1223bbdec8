/* slot: the load generator's client transport, one TCP connection per slot,
 * the same for parley and RESP.  Reads land in the slot's frame_reader (the
 * parley client takes frames from it, the RESP client parses the bytes);
 * writes go out with uv_try_write and queue only a remainder, as the
 * tracker's conn.c does. */
#include "loadgen.h"

#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {"idle", "connecting", "handshake", "ready", "busy",
                                          "closing"};

typedef struct wreq {
    uv_write_t req;
    char *buf;
} wreq;

void slot_set(slot *s, slot_state to) {
    log_debug(&s->ctx->lg, "slot %zu: %s -> %s", s->idx, state_names[s->state], state_names[to]);
    s->state = to;
}

static void on_closed(uv_handle_t *h) {
    slot *s = h->data;
    s->rd.start = s->rd.end = 0; /* keep the buffer for the next connection */
    slot_set(s, SL_IDLE);
    lg_closed(s, s->reason);
}

void slot_close(slot *s) {
    if (s->state == SL_IDLE || s->state == SL_CLOSING)
        return;
    slot_set(s, SL_CLOSING);
    uv_close((uv_handle_t *)&s->tcp, on_closed);
}

static void close_with(slot *s, int reason) {
    if (s->state != SL_CLOSING && s->state != SL_IDLE)
        s->reason = reason;
    slot_close(s);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    slot *s = h->data;
    char *base;
    size_t len;
    if (frame_reader_space(&s->rd, 16384, &base, &len)) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(base, (unsigned)len);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    slot *s = st->data;
    if (nread == 0 || s->state == SL_CLOSING)
        return;
    if (nread < 0) {
        close_with(s, (int)nread);
        return;
    }
    frame_reader_commit(&s->rd, (size_t)nread);
    s->ctx->proto->readable(s);
}

static void on_connect(uv_connect_t *req, int status) {
    slot *s = req->data;
    if (s->state == SL_CLOSING)
        return;
    if (status < 0) {
        close_with(s, status);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    int r = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (r) {
        close_with(s, r);
        return;
    }
    slot_set(s, SL_HANDSHAKE);
    s->ctx->proto->connected(s);
}

int slot_connect(slot *s) {
    int r = uv_tcp_init(s->ctx->loop, &s->tcp);
    if (r)
        return r;
    s->tcp.data = s;
    s->creq.data = s;
    s->reason = 0;
    slot_set(s, SL_CONNECTING);
    r = uv_tcp_connect(&s->creq, &s->tcp, (const struct sockaddr *)&s->ctx->target, on_connect);
    if (r)
        close_with(s, r);
    return 0; /* a failed connect reports through lg_closed */
}

static void on_write(uv_write_t *req, int status) {
    wreq *w = (wreq *)req;
    slot *s = req->handle->data;
    free(w->buf);
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        close_with(s, status);
}

/* Writes what the socket takes now straight from p; the rest is queued
 * from owned (the caller's malloc'd p) or from a copy.  owned is freed. */
static int send_common(slot *s, const char *p, size_t len, char *owned) {
    if (s->state == SL_CLOSING || s->state == SL_IDLE) {
        free(owned);
        return UV_ECANCELED;
    }
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (n == (int)len) {
        free(owned);
        return 0;
    }
    if (n < 0 && n != UV_EAGAIN) {
        free(owned);
        close_with(s, n);
        return n;
    }
    size_t off = n > 0 ? (size_t)n : 0;
    char *buf = owned;
    if (!buf) {
        if (!(buf = malloc(len - off))) {
            close_with(s, UV_ENOMEM);
            return UV_ENOMEM;
        }
        memcpy(buf, p + off, len - off);
        len -= off;
        off = 0;
    }
    wreq *w = malloc(sizeof *w);
    if (!w) {
        free(buf);
        close_with(s, UV_ENOMEM);
        return UV_ENOMEM;
    }
    w->buf = buf;
    b = uv_buf_init(buf + off, (unsigned)(len - off));
    int r = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_write);
    if (r) {
        free(buf);
        free(w);
        close_with(s, r);
    }
    return r;
}

int slot_send(slot *s, char *buf, size_t len) {
    return send_common(s, buf, len, buf);
}

int slot_send_copy(slot *s, const char *p, size_t len) {
    return send_common(s, p, len, NULL);
}
