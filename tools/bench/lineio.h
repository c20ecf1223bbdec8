/* lineio: the blocking I/O the bench's stream tools share (streamer.c for
 * figure 4, chatrtt.c for figure 5): a monotonic clock in seconds, a write
 * that writes everything, and a line reader over one descriptor.  Header
 * only: each tool is a single file program. */
#ifndef PARLEY_LINEIO_H
#define PARLEY_LINEIO_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Says what failed, with errno's text, and exits 1. */
static inline void die(const char *what) {
    fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what,
            errno ? strerror(errno) : "failed");
    exit(1);
}

static inline void write_all(int fd, const char *p, size_t n) {
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

typedef struct rd {
    int fd;
    char buf[1 << 16];
    size_t off, len;
} rd;

/* The next whole line in r's buffer (NUL-terminated, "\n" or "\r\n"
 * stripped), or NULL when the buffer holds none: then call rd_fill. */
static inline char *rd_line(rd *r) {
    char *nl = memchr(r->buf + r->off, '\n', r->len - r->off);
    if (!nl)
        return NULL;
    char *line = r->buf + r->off;
    r->off = (size_t)(nl - r->buf) + 1;
    *nl = '\0';
    if (nl > line && nl[-1] == '\r')
        nl[-1] = '\0';
    return line;
}

/* Reads more into r (an overlong line is dropped); what read() returned:
 * > 0 bytes, 0 at end of stream, < 0 an error (errno says). */
static inline ssize_t rd_fill(rd *r) {
    if (r->off) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    if (r->len == sizeof r->buf)
        r->len = 0;
    ssize_t n;
    do
        n = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        r->len += (size_t)n;
    return n;
}

#endif
