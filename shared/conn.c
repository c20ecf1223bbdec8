/* conn: the thin-callback connection.  The read callback only appends to the
 * frame buffer and enforces the limit; conn_process hands each complete frame
 * to the owner.  Writes try uv_try_write first and queue only the rest; with
 * batching on they first gather in an output buffer that a prepare handle
 * writes once per loop pass (Redis's reply buffer, written before sleep). */
#include "conn.h"

#include "addr.h"
#include "frame.h"
#include "grow.h"

#include <stdlib.h>
#include <string.h>

enum { CONN_OPEN, CONN_DRAINING, CONN_CLOSING };

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_loop_t *loop;
    frame_reader rd;
    const logger *lg;
    conn_frame_cb on_frame;
    conn_close_cb on_close;
    conn_raw_cb on_raw;     /* non-NULL: raw mode */
    conn_drain_cb on_drain;
    size_t drain_low;
    void *data;
    size_t queued;
    uint64_t sent;  /* bytes handed to send_common: conn_sent */
    int state;
    int reason;
    int handles;   /* handles still open */
    int reading;
    int paused;
    int in_process; /* conn_process is on the stack */
    size_t read_want;  /* 0: CONN_READ; raw mode grows it (on_read) */
    size_t raw_read_max; /* conn_set_raw: how far */
    uint64_t deadline; /* loop time of the idle timeout; 0: none */
    uint64_t due;      /* loop time the timer is armed for */
    char peer[ADDR_STRLEN];
    struct sockaddr_storage peer_sa; /* family AF_UNSPEC (0) when unknown */
    /* conn_set_batching: frames sent during a pass, written by flush */
    uv_prepare_t flush;
    int flush_init; /* flush is initialised (it is closed with the conn) */
    int abort_idle; /* an idle timeout closes with RST (conn_set_abort_idle) */
    int batching;
    char *out;
    size_t out_len, out_cap;
};

/* The batch buffer is kept between passes up to this size (a burst of
 * resent messages may grow it far beyond; that is given back). */
#define OUT_KEEP (64 * 1024)

typedef struct wreq {
    uv_write_t req;
    char *buf;
    size_t len;
} wreq;

static void on_handle_closed(uv_handle_t *h) {
    conn *c = h->data;
    if (--c->handles > 0)
        return;
    c->on_close(c, c->reason);
    frame_reader_free(&c->rd);
    free(c->out);
    free(c);
}

static void close_handles(conn *c, int reason, int reset) {
    if (c->state == CONN_CLOSING)
        return;
    if (c->state == CONN_OPEN || reason)
        c->reason = reason;
    c->state = CONN_CLOSING;
    c->out_len = 0; /* pending writes are dropped */
    if (!reset || uv_tcp_close_reset(&c->tcp, on_handle_closed) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->flush_init)
        uv_close((uv_handle_t *)&c->flush, on_handle_closed);
}

void conn_close(conn *c, int reason) { close_handles(c, reason, 0); }

void conn_abort(conn *c, int reason) { close_handles(c, reason, 1); }

void conn_set_abort_idle(conn *c, int on) { c->abort_idle = on; }

static void on_timer(uv_timer_t *t) {
    conn *c = t->data;
    if (c->state == CONN_OPEN && c->deadline > uv_now(c->loop)) {
        /* conn_set_timeout moved the deadline on without re-arming */
        c->due = c->deadline;
        uv_timer_start(&c->timer, on_timer, c->deadline - uv_now(c->loop), 0);
        return;
    }
    int idle = c->state == CONN_OPEN;
    if (idle)
        log_info(c->lg, "%s: closing idle connection (timeout)", c->peer);
    close_handles(c, idle ? UV_ETIMEDOUT : c->reason, idle && c->abort_idle);
}

conn *conn_new(uv_loop_t *loop, size_t max_frame, const logger *lg, conn_frame_cb on_frame,
               conn_close_cb on_close, void *data) {
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (uv_tcp_init(loop, &c->tcp)) {
        free(c);
        return NULL;
    }
    uv_timer_init(loop, &c->timer); /* cannot fail once the loop exists */
    c->tcp.data = c->timer.data = c;
    c->loop = loop;
    c->lg = lg;
    c->on_frame = on_frame;
    c->on_close = on_close;
    c->data = data;
    c->handles = 2;
    strcpy(c->peer, "?");
    frame_reader_init(&c->rd, max_frame);
    return c;
}

uv_tcp_t *conn_tcp(conn *c) { return &c->tcp; }
int conn_closing(const conn *c) { return c->state != CONN_OPEN; }
uint64_t conn_sent(const conn *c) { return c->sent; }

size_t conn_queued(const conn *c) { return c->queued + c->out_len; }
void *conn_data(const conn *c) { return c->data; }
void conn_set_data(conn *c, void *data) { c->data = data; }
const struct sockaddr_storage *conn_peer_sa(const conn *c) {
    return &c->peer_sa;
}

const char *conn_peer(const conn *c) { return c->peer; }
uv_loop_t *conn_loop(const conn *c) { return c->loop; }

#define CONN_READ 16384

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    conn *c = h->data;
    char *base;
    size_t len;
    /* Frames are small and 16 KiB holds many.  Raw bytes (the relay) that
     * fill every read are a bulk stream: there reads grow (conn_set_raw), so
     * the system calls per byte stay near a plain forwarder's, while a
     * relayed chat keeps the small buffer (a session's memory grows only
     * with its traffic).  on_raw consumes everything each pass, so the
     * space is reused. */
    size_t want = c->read_want > CONN_READ ? c->read_want : CONN_READ;
    if (frame_reader_space(&c->rd, want, &base, &len)) {
        buf->base = NULL;
        buf->len = 0; /* libuv turns this into UV_ENOBUFS */
        return;
    }
    buf->base = base;
    /* Raw reads stop at want, the chunk conn_set_raw's caller allowed. */
    buf->len = c->on_raw && len > want ? want : len;
}

static void conn_process(conn *c) {
    c->in_process = 1;
    while (c->state == CONN_OPEN && !c->paused) {
        if (c->on_raw) {
            size_t n = frame_reader_pending(&c->rd);
            if (n == 0)
                break;
            const char *p = c->rd.buf + c->rd.start;
            c->rd.start = c->rd.end; /* consumed: the next read may reuse the space */
            c->on_raw(c, p, n);
            continue;
        }
        const char *p;
        size_t n;
        int r = frame_reader_next(&c->rd, &p, &n);
        if (r == 0)
            break;
        if (r == UV_E2BIG) {
            conn_fail(c, "too_big", "frame exceeds the size limit", 0);
            c->reason = UV_E2BIG;
            break;
        }
        if (r < 0) {
            conn_fail(c, "bad_frame", "zero-length frame", 0);
            break;
        }
        c->on_frame(c, p, n);
    }
    c->in_process = 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn *c = s->data;
    if (nread < 0) {
        if (nread != UV_EOF)
            log_debug(c->lg, "%s: read error: %s", c->peer, uv_strerror((int)nread));
        conn_close(c, (int)nread);
        return;
    }
    if (c->state != CONN_OPEN)
        return;
    frame_reader_commit(&c->rd, (size_t)nread);
    if (c->on_raw && (size_t)nread == buf->len) {
        size_t next = 2 * (c->read_want > CONN_READ ? c->read_want : CONN_READ);
        if (next <= c->raw_read_max)
            c->read_want = next;
    }
    conn_process(c);
}

int conn_start(conn *c) {
    int len = sizeof c->peer_sa;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer_sa, &len) == 0)
        addr_format((struct sockaddr *)&c->peer_sa, c->peer, sizeof c->peer);
    uv_tcp_nodelay(&c->tcp, 1);
    int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r == 0)
        c->reading = 1;
    return r;
}

void conn_pause(conn *c) {
    c->paused = 1;
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
}

void conn_resume(conn *c) {
    if (c->state != CONN_OPEN || !c->paused)
        return;
    c->paused = 0;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
    /* frames that arrived before the pause are still buffered */
    if (!c->in_process)
        conn_process(c);
}

void conn_set_handlers(conn *c, conn_frame_cb on_frame, conn_close_cb on_close, void *data) {
    c->on_frame = on_frame;
    c->on_close = on_close;
    c->data = data;
}

void conn_set_raw(conn *c, conn_raw_cb on_raw, size_t read_max) {
    c->on_raw = on_raw;
    c->raw_read_max = read_max;
}

void conn_set_drain(conn *c, conn_drain_cb cb, size_t low) {
    c->on_drain = cb;
    c->drain_low = low;
}

static void on_write(uv_write_t *req, int status) {
    wreq *w = (wreq *)req;
    conn *c = req->handle->data;
    size_t before = c->queued;
    c->queued -= w->len + sizeof *w;
    free(w->buf);
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        log_debug(c->lg, "%s: write error: %s", c->peer, uv_strerror(status));
        conn_close(c, status);
    } else if (c->state == CONN_DRAINING && c->queued == 0) {
        conn_close(c, c->reason);
    } else if (c->on_drain && c->state == CONN_OPEN && before > c->drain_low &&
               c->queued <= c->drain_low) {
        c->on_drain(c);
    }
}

/* Writes what the socket takes now, straight from p, and queues the rest:
 * from owned when the caller handed over its buffer (p == owned), else from
 * a copy.  owned is freed in every case. */
static int write_now(conn *c, const char *p, size_t len, char *owned) {
    if (c->state == CONN_CLOSING) {
        free(owned);
        return UV_ECANCELED;
    }
    size_t off = 0;
    if (c->queued == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n > 0)
            off = (size_t)n;
        else if (n < 0 && n != UV_EAGAIN) {
            free(owned);
            conn_close(c, n);
            return n;
        }
    }
    if (off == len) {
        free(owned);
        if (c->state == CONN_DRAINING)
            conn_close(c, c->reason);
        return 0;
    }
    char *buf = owned;
    if (!buf) {
        if (!(buf = malloc(len - off))) {
            conn_close(c, UV_ENOMEM);
            return UV_ENOMEM;
        }
        memcpy(buf, p + off, len - off);
        len -= off;
        off = 0;
    }
    wreq *w = malloc(sizeof *w);
    if (!w) {
        free(buf);
        conn_close(c, UV_ENOMEM);
        return UV_ENOMEM;
    }
    w->buf = buf;
    w->len = len - off;
    uv_buf_t b = uv_buf_init(buf + off, (unsigned)(len - off));
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r) {
        free(buf);
        free(w);
        conn_close(c, r);
        return r;
    }
    /* The bookkeeping counts too: for small frames it is most of the
     * memory a reader that never reads pins. */
    c->queued += w->len + sizeof *w;
    return 0;
}

/* Writes the batch gathered this pass, as one write. */
static void out_flush(conn *c) {
    size_t n = c->out_len;
    if (c->flush_init)
        uv_prepare_stop(&c->flush);
    if (n == 0)
        return;
    c->out_len = 0;
    write_now(c, c->out, n, NULL);
    if (c->out_cap > OUT_KEEP) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
}

static void on_flush(uv_prepare_t *h) { out_flush(h->data); }

/* Batched while open: appended to the pass's buffer (owned is freed), and
 * written by flush before the loop next waits.  Otherwise at once. */
static int send_common(conn *c, const char *p, size_t len, char *owned) {
    c->sent += len;
    if (!c->batching || c->state != CONN_OPEN)
        return write_now(c, p, len, owned);
    char *o = grow(c->out, &c->out_cap, c->out_len + len, 1, 4096);
    if (!o) {
        free(owned);
        conn_close(c, UV_ENOMEM);
        return UV_ENOMEM;
    }
    c->out = o;
    memcpy(c->out + c->out_len, p, len);
    if (c->out_len == 0)
        uv_prepare_start(&c->flush, on_flush);
    c->out_len += len;
    free(owned);
    return 0;
}

int conn_set_batching(conn *c, int on) {
    if (!on) {
        c->batching = 0;
        out_flush(c); /* the handle stays until the conn closes */
        return 0;
    }
    if (c->state == CONN_CLOSING)
        return UV_ECANCELED;
    if (!c->flush_init) {
        int r = uv_prepare_init(c->loop, &c->flush);
        if (r)
            return r;
        c->flush.data = c;
        c->flush_init = 1;
        c->handles++;
    }
    c->batching = 1;
    return 0;
}

int conn_send(conn *c, char *buf, size_t len) {
    return send_common(c, buf, len, buf);
}

int conn_send_copy(conn *c, const char *p, size_t len) {
    return send_common(c, p, len, NULL);
}

int conn_send_msg(conn *c, msg_out *m) {
    const char *p;
    size_t len;
    int r = msg_out_view(m, c->rd.max, &p, &len);
    if (r == 0)
        r = send_common(c, p, len, NULL);
    msg_out_discard(m);
    return r;
}

void conn_fail(conn *c, const char *code, const char *text, uint64_t id) {
    if (c->state != CONN_OPEN)
        return;
    log_info(c->lg, "%s: closing connection: %s (%s)", c->peer, text, code);
    out_flush(c); /* what was sent before the error goes out before it */
    if (c->state != CONN_OPEN)
        return; /* that write failed and closed the conn */
    char *buf;
    size_t len;
    c->reason = UV_EPROTO;
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    if (msg_error_frame(code, text, id, &buf, &len) == 0) {
        c->state = CONN_DRAINING;
        uv_timer_start(&c->timer, on_timer, 2000, 0);
        conn_send(c, buf, len); /* closes when written */
    } else {
        conn_close(c, UV_EPROTO);
    }
}

/* Called for every frame on a busy connection, so moving the deadline
 * later only records it; the timer, when it fires early, re-arms for the
 * rest (libuv's advice for idle timeouts: no timer heap update per read). */
void conn_set_timeout(conn *c, uint64_t ms) {
    if (c->state != CONN_OPEN)
        return;
    if (ms == 0) {
        c->deadline = 0;
        uv_timer_stop(&c->timer);
        return;
    }
    c->deadline = uv_now(c->loop) + ms;
    if (uv_is_active((uv_handle_t *)&c->timer) && c->due <= c->deadline)
        return;
    c->due = c->deadline;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}
