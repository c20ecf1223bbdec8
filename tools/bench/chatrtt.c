/* chatrtt: the measuring tool of figure 5 (tools/bench/bench.py, fig5).
 * bench.py sets up the path (two peers linked directly, one with --echo;
 * or a bare loopback TCP pair) and hands this program already open file
 * descriptors.  Plain blocking C, one thread per process.
 *
 *   chatrtt drive --in FD --out FD [--window W] [--size N] [--duration S] [--warmup S]
 *       Drives a `parley --ui json`: writes N-byte lines (a 10-digit number,
 *       then x's, then a newline; one write() each) to its stdin (--in),
 *       keeping W in flight, and reads its events from its stdout (--out).
 *       For each echoed line (a "message" event carrying a number it
 *       sent) it records two round trips:
 *         chat: the message event's "ts" minus the "ts" of the "sent"
 *               event of the same text, both stamped by the peer itself:
 *               from just before it sealed the message and wrote the
 *               frame to the chat link's socket, to just after it read,
 *               opened and decoded the echo.  No pipe, no UI parsing.
 *         e2e:  its own clock from the write() to its stdin to reading
 *               the message event from its stdout (pipes, line parsing
 *               and JSON included; the figure of earlier rounds).
 *   chatrtt ping --fd FD [--window W] [--size N] [--duration S] [--warmup S]
 *       The reference: N-byte lines on a TCP socket, W in flight, each
 *       timed from its write() until its echo is read back.
 *   chatrtt echo --fd FD
 *       The far end of the reference: writes back whatever it reads
 *       (one write per read) until EOF.
 *
 * drive and ping print one line:
 *   ops_per_s=.. p50_us=.. p99_us=.. e2e_p50_us=.. e2e_p99_us=.. count=..
 * (ping: e2e_* equal p50/p99: the reference has no pipes.) */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lineio.h"

#define RING 8192 /* > the largest window */

static struct {
    const char *mode;
    int in, out, fd, window, size;
    double duration, warmup;
} o = {NULL, -1, -1, -1, 1, 100, 1.0, 0.3};

/* The next line, NUL-terminated, newline stripped; NULL at EOF. */
static char *read_line(rd *r) {
    char *line;
    while (!(line = rd_line(r)))
        if (rd_fill(r) <= 0)
            return NULL;
    return line;
}

/* Samples in microseconds. */
typedef struct samples {
    double *v;
    size_t n, cap;
} samples;

static void add(samples *s, double us) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1 << 16;
        if (!(s->v = realloc(s->v, s->cap * sizeof *s->v)))
            die("realloc");
    }
    s->v[s->n++] = us;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double pct(samples *s, double p) {
    if (!s->n)
        return 0;
    qsort(s->v, s->n, sizeof *s->v, cmp_double);
    return s->v[(size_t)((double)(s->n - 1) * p + 0.5)];
}

static char line[4096];
static size_t line_len;

/* The line for number k: 10 digits, x's, newline; o.size bytes. */
static void make_line(unsigned long long k) {
    size_t n = o.size < 12 ? 12 : (size_t)o.size > sizeof line ? sizeof line : (size_t)o.size;
    snprintf(line, sizeof line, "%010llu", k % 10000000000ULL);
    memset(line + 10, 'x', n - 11);
    line[n - 1] = '\n';
    line_len = n;
}

static int drive(void) {
    static rd r;
    static double wrote[RING];     /* our clock at write(), by number */
    static long long sent_ts[RING]; /* the peer's "sent" ts, by number */
    static unsigned char have_sent[RING];
    samples chat = {0}, e2e = {0};
    r.fd = o.out;
    unsigned long long next = 1, count = 0;
    double start = now(), t0 = start + o.warmup, t1 = t0 + o.duration;
    for (int i = 0; i < o.window; i++, next++) {
        make_line(next);
        have_sent[next % RING] = 0;
        wrote[next % RING] = now();
        write_all(o.in, line, line_len);
    }
    for (;;) {
        char *l = read_line(&r);
        if (!l) {
            fprintf(stderr, "chatrtt: the peer's output ended\n");
            return 1;
        }
        int is_sent = strncmp(l, "{\"type\":\"sent\"", 14) == 0;
        int is_msg = !is_sent && strncmp(l, "{\"type\":\"message\"", 17) == 0;
        if (!is_sent && !is_msg)
            continue;
        char *ts = strstr(l, ",\"ts\":"), *text = strstr(l, ",\"text\":\"");
        if (!ts || !text) {
            fprintf(stderr, "chatrtt: an event without ts or text: %s\n", l);
            return 1;
        }
        long long t = strtoll(ts + 6, NULL, 10);
        unsigned long long k = strtoull(text + 9, NULL, 10);
        if (k == 0 || k >= next || next - k > RING)
            continue; /* not one of ours (an earlier sample's) */
        if (is_sent) {
            sent_ts[k % RING] = t;
            have_sent[k % RING] = 1;
            continue;
        }
        double tn = now();
        if (tn >= t0 && tn < t1) {
            add(&e2e, (tn - wrote[k % RING]) * 1e6);
            if (have_sent[k % RING])
                add(&chat, (double)(t - sent_ts[k % RING]));
            count++;
        }
        if (tn >= t1)
            break;
        make_line(next);
        have_sent[next % RING] = 0;
        wrote[next % RING] = now();
        write_all(o.in, line, line_len);
        next++;
    }
    double secs = now() - t0;
    if (chat.n != e2e.n)
        fprintf(stderr, "chatrtt: %zu echoes without their sent event\n", e2e.n - chat.n);
    printf("ops_per_s=%.0f p50_us=%.1f p99_us=%.1f e2e_p50_us=%.1f e2e_p99_us=%.1f count=%llu\n",
           (double)count / secs, pct(&chat, 0.5), pct(&chat, 0.99), pct(&e2e, 0.5),
           pct(&e2e, 0.99), count);
    return 0;
}

static int ping(void) {
    static rd r;
    static double wrote[RING];
    samples rtt = {0};
    r.fd = o.fd;
    unsigned long long next = 1, count = 0;
    double start = now(), t0 = start + o.warmup, t1 = t0 + o.duration;
    for (int i = 0; i < o.window; i++, next++) {
        make_line(next);
        wrote[next % RING] = now();
        write_all(o.fd, line, line_len);
    }
    for (;;) {
        char *l = read_line(&r);
        if (!l) {
            fprintf(stderr, "chatrtt: the echo ended\n");
            return 1;
        }
        unsigned long long k = strtoull(l, NULL, 10);
        double tn = now();
        if (tn >= t0 && tn < t1) {
            add(&rtt, (tn - wrote[k % RING]) * 1e6);
            count++;
        }
        if (tn >= t1)
            break;
        make_line(next);
        wrote[next % RING] = now();
        write_all(o.fd, line, line_len);
        next++;
    }
    double secs = now() - t0;
    double p50 = pct(&rtt, 0.5), p99 = pct(&rtt, 0.99);
    printf("ops_per_s=%.0f p50_us=%.1f p99_us=%.1f e2e_p50_us=%.1f e2e_p99_us=%.1f count=%llu\n",
           (double)count / secs, p50, p99, p50, p99, count);
    return 0;
}

static int echo(void) {
    static char buf[1 << 16];
    for (;;) {
        ssize_t n = read(o.fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        write_all(o.fd, buf, (size_t)n);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: chatrtt drive|ping|echo ...; see the comment atop tools/bench/chatrtt.c\n");
        return 2;
    }
    o.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--in")) o.in = atoi(v);
        else if (!strcmp(k, "--out")) o.out = atoi(v);
        else if (!strcmp(k, "--fd")) o.fd = atoi(v);
        else if (!strcmp(k, "--window")) o.window = atoi(v);
        else if (!strcmp(k, "--size")) o.size = atoi(v);
        else if (!strcmp(k, "--duration")) o.duration = atof(v);
        else if (!strcmp(k, "--warmup")) o.warmup = atof(v);
        else {
            fprintf(stderr, "chatrtt: unknown option %s\n", k);
            return 2;
        }
    }
    if (o.window < 1 || o.window > RING / 2) {
        fprintf(stderr, "chatrtt: --window from 1 to %d\n", RING / 2);
        return 2;
    }
    if (!strcmp(o.mode, "drive") && o.in >= 0 && o.out >= 0)
        return drive();
    if (!strcmp(o.mode, "ping") && o.fd >= 0)
        return ping();
    if (!strcmp(o.mode, "echo") && o.fd >= 0)
        return echo();
    fprintf(stderr, "chatrtt: %s needs its descriptors (drive: --in and --out; ping, echo: --fd)\n",
            o.mode);
    return 2;
}
