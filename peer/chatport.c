/* chatport: where other peers reach us.  Binding happens once at start-up;
 * the endpoint list is rebuilt on every register because interfaces come
 * and go while a peer runs. */
#include "chatport.h"


#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

struct chatport {
    peer_ctx *ctx;
    port_accept_cb on_accept;
    void *data;
    uv_tcp_t tcp[2];   /* [0] the first try; [1] the IPv4 fallback */
    int active;        /* index of the listening handle */
    int open;          /* handles not yet closed */
    int closing;
    struct sockaddr_storage bound;
    int wildcard;      /* bound to 0.0.0.0 or :: */
    int dual;          /* an IPv6 wildcard that also accepts IPv4 */
    char adv[PEER_MAX_ENDPOINTS][ADDR_STRLEN];
    int n_adv;
};

static void on_connection(uv_stream_t *server, int status) {
    chatport *l = server->data;
    if (status < 0) {
        log_warn(&l->ctx->lg, "accepting a chat connection: %s", uv_strerror(status));
        return;
    }
    l->on_accept(l->data, server);
}

static int port_of(const struct sockaddr_storage *ss);

static void on_closed(uv_handle_t *h) {
    chatport *l = h->data;
    if (--l->open == 0 && l->closing)
        free(l);
}

static int is_wildcard(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* Binds and listens on handle i.  0 or a uv error (the handle stays open). */
static int try_listen(chatport *l, int i, const struct sockaddr *sa) {
    int r = uv_tcp_init(l->ctx->loop, &l->tcp[i]);
    if (r)
        return r;
    l->tcp[i].data = l;
    l->open++;
    r = uv_tcp_bind(&l->tcp[i], sa, 0); /* no IPV6ONLY: [::] takes IPv4 too */
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp[i], 128, on_connection);
    /* SO_REUSEPORT only after listen: our dials may then bind this port
     * (port_dial_socket), while a second listener, which binds without it,
     * still gets EADDRINUSE as before. */
    uv_os_fd_t fd;
    int on = 1;
    if (r == 0 && uv_fileno((uv_handle_t *)&l->tcp[i], &fd) == 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
    return r;
}

static int resolve_one(uv_loop_t *loop, const char *host, const char *port, int passive,
                       struct sockaddr_storage *ss, struct addrinfo **all) {
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    uv_getaddrinfo_t req;
    int r = uv_getaddrinfo(loop, &req, NULL, host, port, &hints); /* synchronous */
    if (r)
        return r;
    if (all) {
        *all = req.addrinfo;
        return 0;
    }
    memcpy(ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    uv_freeaddrinfo(req.addrinfo);
    return 0;
}

static void add_unique(char out[][ADDR_STRLEN], int *n, int max, const char *s) {
    for (int i = 0; i < *n; i++)
        if (strcmp(out[i], s) == 0)
            return;
    if (*n < max)
        snprintf(out[(*n)++], ADDR_STRLEN, "%s", s);
}

static int resolve_advertise(chatport *l, char *err, size_t errlen) {
    for (int i = 0; i < l->ctx->n_advertise; i++) {
        const char *spec = l->ctx->advertise[i];
        char host[ADDR_STRLEN], port[8], text[ADDR_STRLEN];
        struct sockaddr_storage ss;
        int bad = addr_split(spec, NULL, host, sizeof host, port, sizeof port);
        if (bad) {
            snprintf(err, errlen, "--advertise %s: %s", spec, addr_split_error(bad));
            return UV_EINVAL;
        }
        if (addr_parse_numeric(spec, &ss) == 0) {
            addr_format((struct sockaddr *)&ss, text, sizeof text);
            add_unique(l->adv, &l->n_adv, PEER_MAX_ENDPOINTS, text);
            continue;
        }
        struct addrinfo *ai;
        int r = resolve_one(l->ctx->loop, host, port, 0, NULL, &ai);
        if (r) {
            snprintf(err, errlen, "cannot resolve --advertise %s: %s", spec, uv_strerror(r));
            return r;
        }
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
            if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) &&
                addr_format(a->ai_addr, text, sizeof text) == 0)
                add_unique(l->adv, &l->n_adv, PEER_MAX_ENDPOINTS, text);
        }
        uv_freeaddrinfo(ai);
    }
    return 0;
}

int port_open(peer_ctx *ctx, port_accept_cb on_accept, void *data, chatport **out, char *err,
              size_t errlen) {
    err[0] = '\0';
    chatport *l = calloc(1, sizeof *l);
    if (!l)
        return UV_ENOMEM;
    l->ctx = ctx;
    l->on_accept = on_accept;
    l->data = data;
    int r = resolve_advertise(l, err, errlen);
    if (r) {
        free(l);
        return r;
    }
    struct sockaddr_storage ss;
    if (ctx->listen) {
        char host[ADDR_STRLEN], port[8];
        int bad = addr_split(ctx->listen, NULL, host, sizeof host, port, sizeof port);
        if (bad) {
            snprintf(err, errlen, "--listen %s: %s", ctx->listen, addr_split_error(bad));
            free(l);
            return UV_EINVAL;
        }
        if (addr_parse_numeric(ctx->listen, &ss) && (r = resolve_one(ctx->loop, host, port, 1, &ss, NULL))) {
            snprintf(err, errlen, "cannot resolve --listen %s: %s", ctx->listen, uv_strerror(r));
            free(l);
            return r;
        }
        r = try_listen(l, 0, (struct sockaddr *)&ss);
        if (r)
            snprintf(err, errlen, "cannot listen on %s: %s", ctx->listen, uv_strerror(r));
    } else {
        uv_ip6_addr("::", 0, (struct sockaddr_in6 *)&ss);
        r = try_listen(l, 0, (struct sockaddr *)&ss);
        if (r) {
            log_info(&ctx->lg, "cannot listen on [::]:0 (%s); using 0.0.0.0:0", uv_strerror(r));
            uv_ip4_addr("0.0.0.0", 0, (struct sockaddr_in *)&ss);
            l->active = 1;
            r = try_listen(l, 1, (struct sockaddr *)&ss);
            if (r)
                snprintf(err, errlen, "cannot listen on 0.0.0.0:0: %s", uv_strerror(r));
        }
    }
    int len = sizeof l->bound;
    if (r == 0)
        r = uv_tcp_getsockname(&l->tcp[l->active], (struct sockaddr *)&l->bound, &len);
    if (r) {
        if (!err[0])
            snprintf(err, errlen, "cannot listen: %s", uv_strerror(r));
        port_close(l); /* freed once its handles close */
        return r;
    }
    if (l->active == 1) /* the failed IPv6 attempt */
        uv_close((uv_handle_t *)&l->tcp[0], on_closed);
    l->wildcard = is_wildcard((struct sockaddr *)&l->bound);
    if (l->wildcard && l->bound.ss_family == AF_INET6) {
        uv_os_fd_t fd;
        int v6only = 0;
        socklen_t sl = sizeof v6only;
        if (uv_fileno((uv_handle_t *)&l->tcp[l->active], &fd) == 0 &&
            getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &sl) == 0)
            l->dual = !v6only;
    }
    char text[ADDR_STRLEN];
    addr_format((struct sockaddr *)&l->bound, text, sizeof text);
    log_info(&ctx->lg, "listening on %s", text);
    *out = l;
    return 0;
}

static int port_of(const struct sockaddr_storage *ss) {
    return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                          : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

static int link_local6(const struct sockaddr_in6 *in6) {
    return in6->sin6_addr.s6_addr[0] == 0xfe && (in6->sin6_addr.s6_addr[1] & 0xc0) == 0x80;
}

int port_endpoints(chatport *l, char out[][ADDR_STRLEN], int max) {
    int n = 0;
    for (int i = 0; i < l->n_adv; i++)
        add_unique(out, &n, max, l->adv[i]);
    char text[ADDR_STRLEN];
    if (!l->wildcard) {
        if (addr_format((struct sockaddr *)&l->bound, text, sizeof text) == 0)
            add_unique(out, &n, max, text);
        return n;
    }
    uv_interface_address_t *ifs;
    int count;
    if (uv_interface_addresses(&ifs, &count)) {
        log_warn(&l->ctx->lg, "cannot list network interfaces; advertising only --advertise endpoints");
        return n;
    }
    int port = port_of(&l->bound);
    int v6 = l->bound.ss_family == AF_INET6;
    for (int pass = 0; pass < 2; pass++) { /* non-loopback first */
        for (int i = 0; i < count; i++) {
            if (ifs[i].is_internal != pass)
                continue;
            struct sockaddr_storage ss;
            memset(&ss, 0, sizeof ss);
            if (ifs[i].address.address4.sin_family == AF_INET) {
                if (v6 && !l->dual)
                    continue;
                memcpy(&ss, &ifs[i].address.address4, sizeof ifs[i].address.address4);
                ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
            } else if (ifs[i].address.address6.sin6_family == AF_INET6) {
                if (!v6 || link_local6(&ifs[i].address.address6))
                    continue;
                memcpy(&ss, &ifs[i].address.address6, sizeof ifs[i].address.address6);
                ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
                ((struct sockaddr_in6 *)&ss)->sin6_scope_id = 0;
            } else {
                continue;
            }
            if (is_wildcard((struct sockaddr *)&ss))
                continue;
            if (addr_format((struct sockaddr *)&ss, text, sizeof text) == 0)
                add_unique(out, &n, max, text);
        }
    }
    uv_free_interface_addresses(ifs, count);
    return n;
}

uv_os_sock_t port_dial_socket(chatport *l, int family) {
    if (!l || (family != AF_INET && family != AF_INET6))
        return -1;
    struct sockaddr_storage local;
    memset(&local, 0, sizeof local);
    if (!l->wildcard && l->bound.ss_family == family) {
        local = l->bound; /* --listen gave an address: the same one */
    } else if (!l->wildcard || (l->bound.ss_family == AF_INET6 && family == AF_INET && !l->dual) ||
               (l->bound.ss_family == AF_INET && family == AF_INET6)) {
        return -1; /* the listener does not take this family: nothing to match */
    } else if (family == AF_INET) {
        uv_ip4_addr("0.0.0.0", port_of(&l->bound), (struct sockaddr_in *)&local);
    } else {
        uv_ip6_addr("::", port_of(&l->bound), (struct sockaddr_in6 *)&local);
    }
    uv_os_sock_t fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) ||
        bind(fd, (struct sockaddr *)&local, len)) {
        close(fd);
        return -1;
    }
    return fd;
}

void port_close(chatport *l) {
    if (!l || l->closing)
        return;
    l->closing = 1;
    for (int i = 0; i < 2; i++) {
        uv_handle_t *h = (uv_handle_t *)&l->tcp[i];
        if (h->loop && !uv_is_closing(h))
            uv_close(h, on_closed);
    }
    if (l->open == 0)
        free(l);
}
