/* streamer: the measuring client of figures 4 and 5 (tools/bench/bench.py).
 * bench.py sets up the path under test (a relay session, a forwarder, socat,
 * an IRC pair, a peer's line mode, or a bare loopback pair) and hands this
 * program the already connected file descriptors, so every path is measured
 * by the same few lines of plain blocking C and pays the same client cost.
 *
 *   streamer --mode bytes|lines|window --a FD [--a-read FD] [--b FD] ...
 *
 * bytes:  a thread writes 64 KiB chunks to --a; count bytes read on --b.
 * lines:  a thread writes --size byte lines (one write each) to --a; count
 *         lines read on --b.
 * window: keep --window lines in flight on --a, timing each until its echo
 *         comes back on --a-read (default --a); with --b a thread echoes
 *         every line read on --b back to --b (the far end of the path).
 * Prints one line: ops_per_s=.. mb_per_s=.. p50_us=.. p99_us=.. count=..
 * Plain POSIX on purpose: libuv is not needed for one stream. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct opts {
    const char *mode, *prefix, *echo_prefix, *match;
    int a, a_read, b, window, size, crlf, echo_irc;
    double duration, warmup;
} opts;

static opts o = {"window", "", "", NULL, -1, -1, -1, 1, 100, 0, 0, 2.0, 0.5};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "streamer: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

/* Line reader over one fd. */
typedef struct rd {
    int fd;
    char buf[1 << 16];
    size_t off, len;
} rd;

/* Returns the next line (NUL-terminated, end of line stripped). */
static char *read_line(rd *r) {
    for (;;) {
        char *nl = memchr(r->buf + r->off, '\n', r->len - r->off);
        if (nl) {
            char *line = r->buf + r->off;
            r->off = (size_t)(nl - r->buf) + 1;
            *nl = '\0';
            if (nl > line && nl[-1] == '\r')
                nl[-1] = '\0';
            return line;
        }
        if (r->off) {
            memmove(r->buf, r->buf + r->off, r->len - r->off);
            r->len -= r->off;
            r->off = 0;
        }
        if (r->len == sizeof r->buf)
            r->len = 0; /* an overlong line: drop it */
        ssize_t n = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "streamer: the stream ended (%s)\n", n ? strerror(errno) : "EOF");
            exit(1);
        }
        r->len += (size_t)n;
    }
}

static char line_out[4096];
static size_t line_len;

static void make_line(void) {
    const char *eol = o.crlf ? "\r\n" : "\n";
    size_t pl = strlen(o.prefix), el = strlen(eol);
    size_t body = (size_t)o.size > pl + el ? (size_t)o.size - pl - el : 1;
    if (pl + body + el > sizeof line_out)
        body = sizeof line_out - pl - el;
    memcpy(line_out, o.prefix, pl);
    memset(line_out + pl, 'x', body);
    memcpy(line_out + pl + body, eol, el);
    line_len = pl + body + el;
}

static void *writer(void *arg) {
    (void)arg;
    if (strcmp(o.mode, "bytes") == 0) {
        static char chunk[1 << 16];
        memset(chunk, 'x', sizeof chunk);
        for (;;)
            write_all(o.a, chunk, sizeof chunk);
    }
    for (;;)
        write_all(o.a, line_out, line_len);
    return NULL;
}

static void *echoer(void *arg) {
    (void)arg;
    static rd r;
    static char out[sizeof r.buf + 256];
    r.fd = o.b;
    const char *eol = o.crlf ? "\r\n" : "\n";
    for (;;) {
        char *line = read_line(&r);
        if (o.echo_irc) { /* ":nick!user@host PRIVMSG me :text" -> text */
            char *t = strstr(line + 1, " :");
            if (!t || !strstr(line, " PRIVMSG "))
                continue;
            line = t + 2;
        }
        int n = snprintf(out, sizeof out, "%s%s%s", o.echo_prefix, line, eol);
        write_all(o.b, out, (size_t)n);
    }
    return NULL;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static int matches(const char *line) {
    return !o.match || strstr(line, o.match) != NULL;
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--mode")) o.mode = v;
        else if (!strcmp(k, "--a")) o.a = atoi(v);
        else if (!strcmp(k, "--a-read")) o.a_read = atoi(v);
        else if (!strcmp(k, "--b")) o.b = atoi(v);
        else if (!strcmp(k, "--window")) o.window = atoi(v);
        else if (!strcmp(k, "--size")) o.size = atoi(v);
        else if (!strcmp(k, "--prefix")) o.prefix = v;
        else if (!strcmp(k, "--echo-prefix")) o.echo_prefix = v;
        else if (!strcmp(k, "--echo-irc")) o.echo_irc = atoi(v);
        else if (!strcmp(k, "--crlf")) o.crlf = atoi(v);
        else if (!strcmp(k, "--match")) o.match = v;
        else if (!strcmp(k, "--duration")) o.duration = atof(v);
        else if (!strcmp(k, "--warmup")) o.warmup = atof(v);
        else {
            fprintf(stderr, "streamer: unknown option %s; see the comment atop tools/bench/streamer.c\n", k);
            return 2;
        }
    }
    if (o.a < 0 || o.window < 1 || o.window > 4096) {
        fprintf(stderr, "streamer: needs --a FD and a --window from 1 to 4096\n");
        return 2;
    }
    if (o.a_read < 0)
        o.a_read = o.a;
    make_line();
    pthread_t t;
    int window = strcmp(o.mode, "window") == 0;
    if (!window && o.b < 0) {
        fprintf(stderr, "streamer: --mode %s needs --b FD\n", o.mode);
        return 2;
    }
    if (window && o.b >= 0 && pthread_create(&t, NULL, echoer, NULL))
        die("pthread_create");
    if (!window && pthread_create(&t, NULL, writer, NULL))
        die("pthread_create");
    static rd r;
    r.fd = window ? o.a_read : o.b;
    double start = now(), t0 = start + o.warmup, t1 = t0 + o.duration;
    size_t cap = 1 << 20, nlat = 0;
    double *lat = malloc(cap * sizeof *lat);
    double sent[4096];
    size_t head = 0, inflight = 0;
    uint64_t count = 0, bytes = 0;
    if (!lat)
        die("malloc");
    if (window) {
        for (; inflight < (size_t)o.window; inflight++) {
            sent[(head + inflight) % 4096] = now();
            write_all(o.a, line_out, line_len);
        }
    }
    for (;;) {
        double tn;
        if (!strcmp(o.mode, "bytes")) {
            ssize_t n = read(r.fd, r.buf, sizeof r.buf);
            if (n <= 0)
                die("read");
            tn = now();
            if (tn >= t0)
                bytes += (uint64_t)n;
        } else {
            char *line = read_line(&r);
            if (!matches(line))
                continue;
            tn = now();
            if (window) {
                double rtt = tn - sent[head];
                head = (head + 1) % 4096;
                if (tn >= t0 && tn < t1) {
                    if (nlat == cap && !(lat = realloc(lat, (cap *= 2) * sizeof *lat)))
                        die("realloc");
                    lat[nlat++] = rtt;
                }
                sent[(head + inflight - 1) % 4096] = now();
                write_all(o.a, line_out, line_len);
            }
            if (tn >= t0) {
                count++;
                bytes += line_len;
            }
        }
        if (tn >= t1)
            break;
    }
    double secs = now() - t0;
    double p50 = 0, p99 = 0;
    if (nlat) {
        qsort(lat, nlat, sizeof *lat, cmp_double);
        p50 = lat[nlat / 2] * 1e6;
        p99 = lat[(size_t)((double)(nlat - 1) * 0.99)] * 1e6;
    }
    printf("ops_per_s=%.0f mb_per_s=%.1f p50_us=%.1f p99_us=%.1f count=%llu\n", (double)count / secs,
           (double)bytes / secs / 1e6, p50, p99, (unsigned long long)count);
    fflush(stdout);
    _exit(0); /* the helper threads may be blocked in a read or write */
}
