/* metrics: the --metrics responder (metrics.h says what it answers).  Not a
 * general HTTP server: it reads one request head of at most
 * MET_REQUEST_MAX bytes, looks only at the request line, writes one
 * response with Connection: close and closes.  Every client has a socket
 * and an idle timer; it is freed when both have closed. */
#include "metrics.h"

#include "addr.h"
#include "mailbox.h"
#include "server.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mclient {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct metrics *m;
    struct mclient *next, *prev;
    int open_handles;
    int closing;
    size_t len;
    char req[MET_REQUEST_MAX];
} mclient;

struct metrics {
    tracker_ctx *ctx;
    uv_tcp_t listener;
    mclient *clients;
    int stopping;
};

/* Upper bounds of the commit latency buckets, in seconds (the last is +Inf). */
static const double commit_le[STAT_COMMIT_BUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                          0.025,  0.05,  0.1,    0.25,  0.5, 1};

void met_commit_time(void *arg, uint64_t ns) {
    tracker_stats *st = &((tracker_ctx *)arg)->stats;
    size_t i = 0;
    while (i < STAT_COMMIT_BUCKETS - 1 && ns > commit_le[i] * 1e9)
        i++;
    st->commit_bucket[i]++;
    st->commits++;
    st->commit_ns += ns;
}

/* ---- the body */

typedef struct body {
    char *p;
    size_t len, cap;
    int failed;
} body;

static void bprintf(body *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(body *b, const char *fmt, ...) {
    for (int tries = 0; tries < 2 && !b->failed; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
        } else if (b->p && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        } else {
            size_t cap = (b->cap ? b->cap : 4096);
            while (cap < b->len + (size_t)n + 1)
                cap *= 2;
            char *p = realloc(b->p, cap);
            if (!p)
                b->failed = 1;
            else
                b->p = p, b->cap = cap;
        }
    }
}

static void metric(body *b, const char *name, const char *type, const char *help) {
    bprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render(tracker_ctx *ctx, body *b) {
    const tracker_stats *st = &ctx->stats;
    static const char *refused[STAT_REFUSED_N] = {"max_conns", "max_conns_per_addr"};
    static const char *rejected[STAT_REJ_N] = {"bad_frame", "bad_message", "unknown_type",
                                               "rate_limited", "too_big"};
    metric(b, "parley_users_online", "gauge", "Users registered and connected now.");
    bprintf(b, "parley_users_online %zu\n", namemap_count(ctx->online));
    metric(b, "parley_connections_open", "gauge", "Control and relay connections open now.");
    bprintf(b, "parley_connections_open %zu\n", ctx->nsessions);
    uint64_t sent = srv_control_bytes_sent(ctx);
    metric(b, "parley_control_bytes_sent_total", "counter",
           "Bytes the tracker sent on control connections (pushes included).");
    bprintf(b, "parley_control_bytes_sent_total %" PRIu64 "\n", sent);
    size_t nsubs = 0, nall = 0, nnames = 0;
    srv_presence_counts(ctx, &nsubs, &nnames, &nall);
    metric(b, "parley_presence_subscriptions", "gauge",
           "Presence subscriptions held now (one per connection and name).");
    bprintf(b, "parley_presence_subscriptions %zu\n", nsubs);
    metric(b, "parley_presence_subscribed_names", "gauge", "Names with at least one subscriber.");
    bprintf(b, "parley_presence_subscribed_names %zu\n", nnames);
    metric(b, "parley_presence_all_sessions", "gauge",
           "Registered connections told of everyone (older peers, subscribe all).");
    bprintf(b, "parley_presence_all_sessions %zu\n", nall);
    metric(b, "parley_registrations_total", "counter", "Successful registrations.");
    bprintf(b, "parley_registrations_total %" PRIu64 "\n", st->registrations);
    metric(b, "parley_lookups_total", "counter", "Lookups answered.");
    bprintf(b, "parley_lookups_total %" PRIu64 "\n", st->lookups);
    reg_cache_stats cs;
    reg_get_cache_stats(ctx->reg, &cs);
    metric(b, "parley_lookup_cache_records", "gauge", "User records held in memory for lookups.");
    bprintf(b, "parley_lookup_cache_records %zu\n", cs.records);
    metric(b, "parley_lookup_cache_hits_total", "counter",
           "Lookups of known names answered from memory.");
    bprintf(b, "parley_lookup_cache_hits_total %" PRIu64 "\n", cs.hits);
    metric(b, "parley_lookup_cache_misses_total", "counter",
           "Lookups of known names read from the database.");
    bprintf(b, "parley_lookup_cache_misses_total %" PRIu64 "\n", cs.misses);
    metric(b, "parley_lists_total", "counter", "List pages served.");
    bprintf(b, "parley_lists_total %" PRIu64 "\n", st->lists);
    metric(b, "parley_relay_sessions_open", "gauge", "Relay sessions open now.");
    bprintf(b, "parley_relay_sessions_open %zu\n", ctx->nrelays);
    metric(b, "parley_relay_bytes_total", "counter", "Bytes copied by relay sessions.");
    bprintf(b, "parley_relay_bytes_total %" PRIu64 "\n", st->relay_bytes);
    metric(b, "parley_connections_refused_total", "counter",
           "Connections closed at once by a connection limit.");
    for (int i = 0; i < STAT_REFUSED_N; i++)
        bprintf(b, "parley_connections_refused_total{reason=\"%s\"} %" PRIu64 "\n", refused[i],
                st->refused[i]);
    metric(b, "parley_frames_rejected_total", "counter", "Frames refused, by reason.");
    for (int i = 0; i < STAT_REJ_N; i++)
        bprintf(b, "parley_frames_rejected_total{reason=\"%s\"} %" PRIu64 "\n", rejected[i],
                st->rejected[i]);
    metric(b, "parley_mail_stored_total", "counter", "Messages stored for offline users.");
    bprintf(b, "parley_mail_stored_total %" PRIu64 "\n", st->mail_stored);
    metric(b, "parley_mail_delivered_total", "counter",
           "Stored messages their recipient acknowledged.");
    bprintf(b, "parley_mail_delivered_total %" PRIu64 "\n", st->mail_delivered);
    metric(b, "parley_mail_rejected_total", "counter",
           "Stored messages their recipient refused (forged or unreadable).");
    bprintf(b, "parley_mail_rejected_total %" PRIu64 "\n", st->mail_rejected);
    metric(b, "parley_mail_expired_total", "counter", "Stored messages that expired unread.");
    bprintf(b, "parley_mail_expired_total %" PRIu64 "\n", st->mail_expired);
    metric(b, "parley_mail_refused_limit_total", "counter",
           "Messages refused by a mailbox limit, by reason.");
    static const char *mail_refused[STAT_MAIL_REFUSED_N] = {"full", "rate"};
    for (int i = 0; i < STAT_MAIL_REFUSED_N; i++)
        bprintf(b, "parley_mail_refused_limit_total{reason=\"%s\"} %" PRIu64 "\n",
                mail_refused[i], st->mail_refused_limit[i]);
    mbox_totals mt = {0, 0};
    if (ctx->mbox)
        mbox_get_totals(ctx->mbox, &mt);
    metric(b, "parley_mail_waiting", "gauge", "Messages waiting for their recipient now.");
    bprintf(b, "parley_mail_waiting %" PRIu64 "\n", mt.msgs);
    metric(b, "parley_mail_waiting_bytes", "gauge", "Bytes of messages waiting now.");
    bprintf(b, "parley_mail_waiting_bytes %" PRIu64 "\n", mt.bytes);
    metric(b, "parley_db_commit_seconds", "histogram", "Time to commit a database batch.");
    uint64_t cum = 0;
    for (int i = 0; i < STAT_COMMIT_BUCKETS; i++) {
        cum += st->commit_bucket[i];
        if (i < STAT_COMMIT_BUCKETS - 1)
            bprintf(b, "parley_db_commit_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", commit_le[i], cum);
        else
            bprintf(b, "parley_db_commit_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    }
    bprintf(b, "parley_db_commit_seconds_sum %.9f\n", st->commit_ns / 1e9);
    bprintf(b, "parley_db_commit_seconds_count %" PRIu64 "\n", st->commits);
}

/* ---- clients */

static void on_client_closed(uv_handle_t *h) {
    mclient *c = h->data;
    if (--c->open_handles == 0)
        free(c);
}

static void client_close(mclient *c) {
    if (c->closing)
        return;
    c->closing = 1;
    struct metrics *m = c->m;
    if (c->prev)
        c->prev->next = c->next;
    else
        m->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->timer, on_client_closed);
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

typedef struct mwrite {
    uv_write_t req;
    mclient *c;
    char *buf;
} mwrite;

static void on_written(uv_write_t *req, int status) {
    mwrite *w = (mwrite *)req;
    free(w->buf);
    client_close(w->c); /* one request per connection */
    free(w);
}

/* Sends the whole response, then closes. */
static void respond(mclient *c, const char *status, const char *ctype, const char *data,
                    size_t n) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    mwrite *w = malloc(sizeof *w);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      status, ctype, n);
    char *buf = w ? malloc((size_t)hn + n) : NULL;
    if (!buf) {
        free(w);
        client_close(c);
        return;
    }
    memcpy(buf, head, (size_t)hn);
    memcpy(buf + hn, data, n);
    w->c = c;
    w->buf = buf;
    uv_buf_t b = uv_buf_init(buf, (unsigned)((size_t)hn + n));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
        free(buf);
        free(w);
        client_close(c);
    }
}

static void answer(mclient *c) {
    static const char text[] = "text/plain; charset=utf-8";
    char *eol = memchr(c->req, '\n', c->len);
    size_t n = (size_t)(eol - c->req);
    if (n && c->req[n - 1] == '\r')
        n--;
    char line[MET_REQUEST_MAX + 1];
    memcpy(line, c->req, n);
    line[n] = '\0';
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        static const char msg[] = "bad request: send GET /metrics HTTP/1.1\n";
        respond(c, "400 Bad Request", text, msg, sizeof msg - 1);
        return;
    }
    *sp1 = *sp2 = '\0';
    const char *path = sp1 + 1;
    if (strcmp(line, "GET") != 0) {
        static const char msg[] = "only GET /metrics is served here\n";
        respond(c, "405 Method Not Allowed", text, msg, sizeof msg - 1);
        return;
    }
    if (strcmp(path, "/metrics") != 0 && strncmp(path, "/metrics?", 9) != 0) {
        static const char msg[] = "not found: the metrics are at /metrics\n";
        respond(c, "404 Not Found", text, msg, sizeof msg - 1);
        return;
    }
    body b = {0};
    render(c->m->ctx, &b);
    if (b.failed) {
        static const char msg[] = "the tracker is out of memory\n";
        respond(c, "500 Internal Server Error", text, msg, sizeof msg - 1);
    } else {
        respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    }
    free(b.p);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    mclient *c = h->data;
    (void)suggested;
    /* on_read answers once the buffer is full, so it is never offered empty. */
    *buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof c->req - c->len));
}

static int head_complete(const mclient *c) {
    for (size_t i = 0; i + 1 < c->len; i++)
        if (c->req[i] == '\n' && (c->req[i + 1] == '\n' ||
                                  (c->req[i + 1] == '\r' && i + 2 < c->len && c->req[i + 2] == '\n')))
            return 1;
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    mclient *c = s->data;
    (void)buf;
    if (n < 0) {
        client_close(c);
        return;
    }
    c->len += (size_t)n;
    if (head_complete(c)) {
        answer(c);
    } else if (c->len == sizeof c->req) {
        static const char msg[] = "request too large\n";
        respond(c, "431 Request Header Fields Too Large", "text/plain; charset=utf-8", msg,
                sizeof msg - 1);
    }
}

static void on_idle(uv_timer_t *t) { client_close(t->data); }

static void on_connection(uv_stream_t *l, int status) {
    struct metrics *m = l->data;
    if (status < 0) {
        log_warn(&m->ctx->lg, "metrics listener: %s", uv_strerror(status));
        return;
    }
    if (m->stopping)
        return;
    mclient *c = calloc(1, sizeof *c);
    if (!c) { /* the backlog keeps it; retried on the next connection */
        log_warn(&m->ctx->lg, "out of memory accepting a metrics connection");
        return;
    }
    c->m = m;
    uv_tcp_init(m->ctx->loop, &c->tcp);
    uv_timer_init(m->ctx->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = m->clients;
    if (m->clients)
        m->clients->prev = c;
    m->clients = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
        client_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_idle, MET_IDLE_MS, 0);
}

/* ---- start and stop */

static void on_listener_closed(uv_handle_t *h) { free(h->data); }

int met_start(tracker_ctx *ctx) {
    struct sockaddr_storage ss;
    if (addr_parse_numeric(ctx->cfg.metrics, &ss)) {
        log_error(&ctx->lg, "--metrics %s is not a numeric HOST:PORT (like %s)", ctx->cfg.metrics,
                  MET_DEFAULT);
        return UV_EINVAL;
    }
    struct metrics *m = calloc(1, sizeof *m);
    if (!m) {
        log_error(&ctx->lg, "out of memory starting the metrics listener");
        return UV_ENOMEM;
    }
    m->ctx = ctx;
    uv_tcp_init(ctx->loop, &m->listener);
    m->listener.data = m;
    ctx->metrics = m;
    int r = uv_tcp_bind(&m->listener, (const struct sockaddr *)&ss,
                        ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (!r)
        r = uv_listen((uv_stream_t *)&m->listener, 64, on_connection);
    if (r) {
        log_error(&ctx->lg, "cannot serve metrics on %s: %s; pick another --metrics address",
                  ctx->cfg.metrics, uv_strerror(r));
        met_stop(ctx);
        return r;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    char shown[ADDR_STRLEN + 8] = "?";
    if (uv_tcp_getsockname(&m->listener, (struct sockaddr *)&bound, &len) == 0)
        addr_format((struct sockaddr *)&bound, shown, sizeof shown);
    log_info(&ctx->lg, "metrics on %s (GET /metrics)", shown);
    return 0;
}

void met_stop(tracker_ctx *ctx) {
    struct metrics *m = ctx->metrics;
    if (!m)
        return;
    ctx->metrics = NULL;
    m->stopping = 1;
    while (m->clients)
        client_close(m->clients);
    uv_close((uv_handle_t *)&m->listener, on_listener_closed);
}
