/* fuzz_io: loopback sockets and hand-turned loops for the harnesses. */
#include "fuzz_io.h"

#include "frame.h"
#include "msg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_KEEP (256 * 1024)

void fio_die(const char *what, int err) {
    fprintf(stderr, "fuzz harness: %s: %s\n", what, err < 0 ? uv_strerror(err) : strerror(err));
    abort();
}

int fio_uv_listen(uv_loop_t *loop, uv_tcp_t *srv, uv_connection_cb cb, void *data) {
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    int r = uv_tcp_init(loop, srv);
    if (!r)
        r = uv_tcp_bind(srv, (struct sockaddr *)&sa, 0);
    srv->data = data;
    if (!r)
        r = uv_listen((uv_stream_t *)srv, 1024, cb);
    if (r)
        fio_die("uv listen", r);
    int len = sizeof sa;
    uv_tcp_getsockname(srv, (struct sockaddr *)&sa, &len);
    return ntohs(sa.sin_port);
}

int fio_plain_listen(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 1024) ||
        getsockname(fd, (struct sockaddr *)&sa, &len))
        fio_die("plain listen", errno);
    *port = ntohs(sa.sin_port);
    return fd;
}

int fio_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        fio_die("socket", errno);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) && errno != EINPROGRESS)
        fio_die("connect", errno);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* No TIME_WAIT pile-up over millions of runs: close with a reset. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    return fd;
}

int fio_accept(uv_loop_t *loop, int lfd, int turns) {
    for (int i = 0; i < turns; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            return fd;
        }
        uv_run(loop, UV_RUN_NOWAIT);
    }
    return -1;
}

void fio_pump(uv_loop_t *loop, int n) {
    for (int i = 0; i < n; i++)
        uv_run(loop, UV_RUN_NOWAIT);
}

static void count_one(uv_handle_t *h, void *arg) {
    (*(size_t *)arg)++;
}

size_t fio_handles(uv_loop_t *loop) {
    size_t n = 0;
    uv_walk(loop, count_one, &n);
    return n;
}

void fio_settle(uv_loop_t *loop, size_t want) {
    for (int i = 0; i < 64 && fio_handles(loop) > want; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    uint64_t start = uv_now(loop);
    while (fio_handles(loop) > want) {
        if (uv_now(loop) - start > 5000) {
            fprintf(stderr, "fuzz harness: %zu handles still open 5 s after the conversation "
                            "ended (want %zu)\n", fio_handles(loop), want);
            abort();
        }
        uv_run(loop, UV_RUN_ONCE); /* a close may wait on a timer (error drain) */
    }
}

size_t fio_read(int fd, fio_in *in) {
    size_t total = 0;
    for (;;) {
        char tmp[65536];
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            in->eof = 1;
            return total;
        }
        if (n < 0)
            return total;
        total += (size_t)n;
        size_t keep = in->len + (size_t)n > IN_KEEP ? IN_KEEP - in->len : (size_t)n;
        if (keep == 0)
            continue;
        if (in->len + keep > in->cap) {
            size_t cap = in->cap ? in->cap : 4096;
            while (cap < in->len + keep)
                cap *= 2;
            in->buf = realloc(in->buf, cap);
            if (!in->buf)
                fio_die("out of memory", ENOMEM);
            in->cap = cap;
        }
        memcpy(in->buf + in->len, tmp, keep);
        in->len += keep;
    }
}

void fio_in_free(fio_in *in) {
    free(in->buf);
    memset(in, 0, sizeof *in);
}

int fio_send(uv_loop_t *loop, int fd, const void *data, size_t len, size_t chunk, fio_in *in) {
    const char *p = data;
    size_t off = 0;
    int stalls = 0;
    if (chunk == 0)
        chunk = len ? len : 1;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        ssize_t w = send(fd, p + off, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (w > 0) {
            off += (size_t)w;
            stalls = 0;
        } else if (++stalls > 2000) {
            return -1; /* the other side stopped reading for good */
        }
        uv_run(loop, UV_RUN_NOWAIT);
        fio_read(fd, in);
        if (in->eof)
            return -1;
    }
    return 0;
}

int fio_wait_eof(uv_loop_t *loop, int fd, fio_in *in, int turns) {
    for (int i = 0; i < turns && !in->eof; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        fio_read(fd, in);
    }
    return in->eof;
}

long fio_wait_frame(uv_loop_t *loop, int fd, fio_in *in, const char *type, size_t *off,
                    size_t *len, int turns) {
    for (int i = 0; i < turns; i++) {
        fio_read(fd, in);
        while (in->len - *off >= FRAME_HEADER) {
            const unsigned char *h = in->buf + *off;
            size_t n = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
            if (in->len - *off - FRAME_HEADER < n)
                break;
            size_t at = *off + FRAME_HEADER;
            *off = at + n;
            msg_in m;
            if (msg_parse(&m, (const char *)in->buf + at, n) == 0) {
                int match = strcmp(m.type, type) == 0;
                msg_in_free(&m);
                if (match) {
                    *len = n;
                    return (long)at;
                }
            }
        }
        if (in->eof)
            return -1;
        uv_run(loop, UV_RUN_NOWAIT);
    }
    return -1;
}

uint8_t fio_byte(fio_src *s) {
    if (s->n == 0)
        return 0;
    s->n--;
    return *s->p++;
}
