/* streamer: the measuring client of figures 4 and 5 (tools/bench/bench.py).
 * bench.py sets up the path under test (a relay session, a forwarder, socat,
 * an IRC pair, a peer's line mode, or a bare loopback pair) and hands this
 * program the already connected file descriptors, so every path is measured
 * by the same few lines of plain blocking C and pays the same client cost.
 *
 *   streamer --mode bytes|lines|window --a FD [--a-read FD] [--b FD] ...
 *
 * bytes:  a thread writes 64 KiB chunks to --a; count bytes read on --b.
 * lines:  a thread writes --size byte lines (one write each, or --batch N
 *         lines per write) to --a; count lines read on --b.  With --window
 *         W the writer stops while W lines are written but not yet read on
 *         --b and goes on once half of them arrived: a one-way stream that
 *         never has more than W lines inside the path (an IRC server drops
 *         a client whose buffer it cannot empty; see fig4() in bench.py).
 * window: keep --window lines in flight on --a, timing each until its echo
 *         comes back on --a-read (default --a); with --b a thread echoes
 *         every line read on --b back to --b (the far end of the path).
 * Prints one line: ops_per_s=.. mb_per_s=.. p50_us=.. p99_us=.. count=..
 * Plain POSIX on purpose: libuv is not needed for one stream. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lineio.h"

typedef struct opts {
    const char *mode, *prefix, *echo_prefix, *match;
    int a, a_read, b, window, size, crlf, echo_irc, batch;
    double duration, warmup;
} opts;

/* window 0: unset (1 in window mode, unbounded in lines mode). */
static opts o = {"window", "", "", NULL, -1, -1, -1, 0, 100, 0, 0, 1, 2.0, 0.5};

/* Lines mode with --window: lines written and lines read (counted by the
 * reader as they arrive), and whether the writer sleeps on fl_cv.  The
 * writer publishes fl_waiting before it re-reads fl_read and the reader
 * publishes fl_read before it reads fl_waiting (both seq_cst), so one of
 * them always sees the other and no wake-up is lost. */
static atomic_uint_fast64_t fl_written, fl_read;
static atomic_int fl_waiting;
static pthread_mutex_t fl_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fl_cv = PTHREAD_COND_INITIALIZER;

static uint_fast64_t in_flight(void) {
    return atomic_load(&fl_written) - atomic_load(&fl_read);
}

/* Writer side: once the window is full, sleeps until half of it drained,
 * so the reader wakes the writer once per half window, not once per line.
 * Returns how many lines may be written now. */
static uint_fast64_t window_room(void) {
    uint_fast64_t w = (uint_fast64_t)o.window;
    if (in_flight() >= w) {
        pthread_mutex_lock(&fl_mu);
        atomic_store(&fl_waiting, 1);
        while (in_flight() > w / 2)
            pthread_cond_wait(&fl_cv, &fl_mu);
        atomic_store(&fl_waiting, 0);
        pthread_mutex_unlock(&fl_mu);
    }
    return w - in_flight();
}

/* Reader side: one line arrived. */
static void window_arrived(void) {
    atomic_fetch_add(&fl_read, 1);
    if (atomic_load(&fl_waiting) && in_flight() <= (uint_fast64_t)o.window / 2) {
        pthread_mutex_lock(&fl_mu);
        pthread_cond_signal(&fl_cv);
        pthread_mutex_unlock(&fl_mu);
    }
}

/* The next line (NUL-terminated, end of line stripped); the stream ending
 * ends the program: every path under test stays open for the whole run. */
static char *read_line(rd *r) {
    char *line;
    while (!(line = rd_line(r))) {
        ssize_t n = rd_fill(r);
        if (n <= 0) {
            fprintf(stderr, "streamer: the stream ended (%s)\n", n ? strerror(errno) : "EOF");
            exit(1);
        }
        /* Windowed lines: acknowledge at once, or a sender that leaves
         * Nagle on (ngircd does) holds its last partial segment for our
         * delayed ACK (40 ms) each time the window drains.  Not a socket
         * (a pipe): the call fails and changes nothing. */
        if (o.window && strcmp(o.mode, "lines") == 0) {
            int one = 1;
            setsockopt(r->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
        }
    }
    return line;
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
    /* --batch: N lines back to back in one buffer, so the writer's
     * per-write() cost (on loopback it includes the far socket's receive
     * processing) is paid once per N lines and the path is the limit. */
    size_t n = line_len * (size_t)o.batch;
    char *buf = malloc(n);
    if (!buf)
        die("malloc");
    for (int i = 0; i < o.batch; i++)
        memcpy(buf + (size_t)i * line_len, line_out, line_len);
    for (;;) {
        size_t k = (size_t)o.batch;
        if (o.window) {
            uint_fast64_t room = window_room();
            if (k > room)
                k = (size_t)room;
            atomic_fetch_add(&fl_written, k);
        }
        write_all(o.a, buf, k * line_len);
    }
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
        else if (!strcmp(k, "--batch")) o.batch = atoi(v);
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
    if (o.a < 0 || o.window < 0 || o.window > 4096 || o.batch < 1 || o.batch > 65536) {
        fprintf(stderr, "streamer: needs --a FD, a --window from 1 to 4096 and a --batch "
                "from 1 to 65536\n");
        return 2;
    }
    if (o.a_read < 0)
        o.a_read = o.a;
    make_line();
    pthread_t t;
    int window = strcmp(o.mode, "window") == 0;
    if (window && o.window == 0)
        o.window = 1;
    if (!window && strcmp(o.mode, "lines") != 0)
        o.window = 0; /* bytes: always unbounded */
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
            if (!window && o.window)
                window_arrived();
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
