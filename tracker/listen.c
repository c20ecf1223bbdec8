/* listen: resolution and binding of the tracker's listening sockets.  A
 * spec may name several addresses (a hostname with A and AAAA records); all
 * are bound, and with port 0 they share the port the first one got, so one
 * "HOST:PORT" keeps meaning one port. */
#include "listen.h"

#include "addr.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

/* At most ACCEPT_BURST connections are taken off one listener's backlog in
 * a row; the next waits one loop pass, so that the connections already up
 * are read in between.  A reconnect storm puts thousands in the backlog at
 * once: taken in one pass they held every lookup back (figure 8, a lookup's
 * p99 during 10,000 peers registering again: 19 ms with up to 4096 accepted
 * per pass, 6 ms with the backlog cut to 128, which would drop SYNs). */
#define ACCEPT_BURST 64

struct listener {
    uv_tcp_t tcp; /* first: srv_on_connection's stream is the listener */
    uv_idle_t resume; /* the pass after a full burst: take the one that waits */
    unsigned burst;   /* taken since the last pause */
    int waiting;      /* one connection accepted by libuv, not yet taken */
    int handles;      /* open handles: freed when both closed */
    struct listener *next;
};

typedef struct spec {
    uv_getaddrinfo_t req;
    struct lsn_job *job;
    const char *text;
    char host[ADDR_STRLEN];
    char port[8];
    struct addrinfo *ai;
    int status;
} spec;

struct lsn_job {
    tracker_ctx *ctx;
    lsn_done_cb done;
    spec *specs;
    size_t n;
    size_t pending; /* getaddrinfo requests in flight */
    int cancelled;
};

static void free_job(struct lsn_job *job) {
    for (size_t i = 0; i < job->n; i++)
        uv_freeaddrinfo(job->specs[i].ai);
    free(job->specs);
    free(job);
}

static void on_resume_cb(uv_idle_t *h);

static void on_tcp_closed(uv_handle_t *h) {
    struct listener *l = (struct listener *)h;
    if (--l->handles == 0)
        free(l);
}

static void on_resume_closed(uv_handle_t *h) {
    struct listener *l = h->data;
    if (--l->handles == 0)
        free(l);
}

static void close_listener(struct listener *l) {
    uv_close((uv_handle_t *)&l->tcp, on_tcp_closed);
    uv_close((uv_handle_t *)&l->resume, on_resume_closed);
}

/* The listening socket's callback: srv_on_connection, paced.  A
 * connection not taken here stays with libuv, which stops watching the
 * socket until uv_accept (srv_on_connection's, from on_resume). */
static void on_connection(uv_stream_t *s, int status) {
    struct listener *l = (struct listener *)s;
    if (status == 0 && l->burst >= ACCEPT_BURST) {
        l->waiting = 1;
        uv_idle_start(&l->resume, on_resume_cb);
        return;
    }
    l->burst++;
    srv_on_connection(s, status);
}

static void on_resume_cb(uv_idle_t *h) {
    struct listener *l = h->data;
    uv_idle_stop(h);
    l->burst = 0;
    if (l->waiting) {
        l->waiting = 0;
        l->burst++;
        srv_on_connection((uv_stream_t *)&l->tcp, 0);
    }
}

void lsn_stop(tracker_ctx *ctx) {
    if (ctx->resolving) {
        struct lsn_job *job = ctx->resolving;
        job->cancelled = 1;
        for (size_t i = 0; i < job->n; i++)
            uv_cancel((uv_req_t *)&job->specs[i].req); /* fails harmlessly once running */
    }
    while (ctx->listeners) {
        struct listener *l = ctx->listeners;
        ctx->listeners = l->next;
        close_listener(l);
    }
}

/* What to tell the user after a bind or listen failure. */
static const char *bind_hint(int r) {
    switch (r) {
    case UV_EADDRINUSE:
        return "; is another tracker running? use --listen to pick another port";
    case UV_EADDRNOTAVAIL:
        return "; that address is not on this machine, use --listen with one of its addresses";
    case UV_EACCES:
        return "; ports below 1024 need privileges, use --listen with a higher port";
    case UV_EAFNOSUPPORT:
        return "; this machine lacks that address family, use --listen to pick another address";
    default:
        return "; use --listen to pick another address";
    }
}

/* Binds and listens on sa; 0 or a uv error (the listener is then closed). */
static int bind_one(tracker_ctx *ctx, const struct sockaddr *sa, char *bound, size_t boundlen) {
    struct listener *l = calloc(1, sizeof *l);
    if (!l)
        return UV_ENOMEM;
    int r = uv_tcp_init(ctx->loop, &l->tcp);
    if (r) {
        free(l);
        return r;
    }
    uv_idle_init(ctx->loop, &l->resume); /* cannot fail */
    l->resume.data = l;
    l->handles = 2;
    l->tcp.data = ctx;
    /* IPv6 sockets stay IPv6-only so [::] and 0.0.0.0 can share a port. */
    r = uv_tcp_bind(&l->tcp, sa, sa->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp, TRACKER_BACKLOG, on_connection);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (r == 0)
        r = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
    if (r == 0)
        r = addr_format((struct sockaddr *)&ss, bound, boundlen);
    if (r) {
        close_listener(l);
        return r;
    }
    l->next = ctx->listeners;
    ctx->listeners = l;
    return 0;
}

static void set_port(struct sockaddr *sa, int port) {
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

static int get_port(const char *addr) {
    const char *c = strrchr(addr, ':');
    return c ? atoi(c + 1) : 0;
}

static int bind_spec(tracker_ctx *ctx, spec *sp, size_t *nbound) {
    int shared_port = 0;
    size_t first = 1;
    for (struct addrinfo *ai = sp->ai; ai; ai = ai->ai_next) {
        int dup = 0;
        for (struct addrinfo *p = sp->ai; p != ai; p = p->ai_next)
            dup |= p->ai_addrlen == ai->ai_addrlen && memcmp(p->ai_addr, ai->ai_addr, ai->ai_addrlen) == 0;
        if (dup || (ai->ai_family != AF_INET && ai->ai_family != AF_INET6))
            continue;
        struct sockaddr_storage ss;
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        if (shared_port)
            set_port((struct sockaddr *)&ss, shared_port);
        char bound[ADDR_STRLEN], want[ADDR_STRLEN];
        if (addr_format((struct sockaddr *)&ss, want, sizeof want))
            snprintf(want, sizeof want, "%s", sp->text);
        int r = bind_one(ctx, (struct sockaddr *)&ss, bound, sizeof bound);
        if (r) {
            /* Extra addresses of a name, or the default IPv6 listener, may be
             * missing on this host; that is not worth refusing to start. */
            int optional = (!first || ctx->cfg.default_listen) &&
                           (r == UV_EAFNOSUPPORT || r == UV_EADDRNOTAVAIL);
            if (optional) {
                log_warn(&ctx->lg, "not listening on %s: %s (continuing without it)", want,
                         uv_strerror(r));
                continue;
            }
            log_error(&ctx->lg, "cannot listen on %s (--listen %s): %s%s", want, sp->text,
                      uv_strerror(r), bind_hint(r));
            return r;
        }
        log_info(&ctx->lg, "listening on %s", bound);
        (*nbound)++;
        if (strcmp(sp->port, "0") == 0 && !shared_port)
            shared_port = get_port(bound);
        first = 0;
    }
    return 0;
}

static void finish(struct lsn_job *job) {
    tracker_ctx *ctx = job->ctx;
    ctx->resolving = NULL;
    if (job->cancelled) {
        free_job(job);
        return;
    }
    int status = 0;
    size_t nbound = 0;
    for (size_t i = 0; i < job->n && !status; i++) {
        spec *sp = &job->specs[i];
        if (sp->status) {
            log_error(&ctx->lg, "cannot resolve --listen %s: %s; check the host name or give a "
                      "numeric address", sp->text, uv_strerror(sp->status));
            status = sp->status;
        } else {
            status = bind_spec(ctx, sp, &nbound);
        }
    }
    if (!status && nbound == 0) {
        log_error(&ctx->lg, "no address to listen on; use --listen HOST:PORT");
        status = UV_EADDRNOTAVAIL;
    }
    lsn_done_cb done = job->done;
    free_job(job);
    done(ctx, status);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai) {
    spec *sp = req->data;
    struct lsn_job *job = sp->job;
    sp->status = status;
    sp->ai = status == 0 ? ai : NULL;
    if (status == 0 && !ai)
        sp->status = UV_EAI_NONAME;
    if (--job->pending == 0)
        finish(job);
}

int lsn_start(tracker_ctx *ctx, lsn_done_cb done) {
    struct lsn_job *job = calloc(1, sizeof *job);
    if (!job)
        return UV_ENOMEM;
    job->specs = calloc(ctx->cfg.nlisten ? ctx->cfg.nlisten : 1, sizeof *job->specs);
    if (!job->specs) {
        free(job);
        return UV_ENOMEM;
    }
    job->ctx = ctx;
    job->done = done;
    job->n = ctx->cfg.nlisten;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int err = 0;
    for (size_t i = 0; i < job->n; i++) {
        spec *sp = &job->specs[i];
        sp->job = job;
        sp->text = ctx->cfg.listen[i];
        sp->req.data = sp;
        if (addr_split(sp->text, TRACKER_PORT, sp->host, sizeof sp->host, sp->port,
                       sizeof sp->port)) {
            sp->status = err = UV_EINVAL; /* main checked the syntax; belt and braces */
            continue;
        }
        int r = uv_getaddrinfo(ctx->loop, &sp->req, on_resolved, sp->host, sp->port, &hints);
        if (r)
            sp->status = err = r;
        else
            job->pending++;
    }
    if (job->pending == 0) {
        free_job(job);
        return err ? err : UV_EINVAL;
    }
    ctx->resolving = job;
    return 0;
}
