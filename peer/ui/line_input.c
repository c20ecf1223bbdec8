/* line_input: stdin in, one line at a time (what line mode prints is
 * line.c, what --ui json prints json.c).  Input arrives through a
 * uv_tty_t, a uv_pipe_t or chunked uv_fs_read calls, whichever
 * uv_guess_handle says stdin is; all three feed the same line splitter. */
#include "line_input.h"

#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SRC_STREAM, SRC_FILE };

struct line_in {
    peer_ctx *ctx;
    uv_loop_t *loop;
    const logger *lg;
    line_in_cb on_line;
    line_in_eof_cb on_eof;
    void *data;
    int src;
    union {
        uv_tty_t tty;
        uv_pipe_t pipe;
        uv_timer_t timer; /* regular file: starts the first read */
    } h;
    uv_fs_t fs;
    int fs_pending;
    int closing;
    int handle_open;
    int skipping;          /* discarding the rest of an over-long line */
    size_t len;
    char line[LINE_IN_MAX + 1];
    char chunk[65536];     /* file reads and stream reads land here */
};

static void emit_line(line_in *in) {
    size_t n = in->len;
    if (n && in->line[n - 1] == '\r')
        n--;
    in->line[n] = '\0';
    in->len = 0;
    in->on_line(in->data, in->line, n);
}

/* Splits a chunk into lines; stops as soon as a callback closed the reader.
 * Copies each piece up to the next newline at once (memchr). */
static void feed(line_in *in, const char *p, size_t n) {
    size_t i = 0;
    while (i < n && !in->closing) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n; /* the piece is p[i, end) */
        if (!in->skipping) {
            size_t take = end - i, room = LINE_IN_MAX - in->len;
            if (take > room) {
                /* the byte after a full line starts the skip, as before */
                ev_error(in->ctx, "too_long", "input line longer than %d bytes ignored; messages may be at most 4000 bytes",
                         LINE_IN_MAX);
                in->skipping = 1;
                in->len = 0;
            } else {
                memcpy(in->line + in->len, p + i, take);
                in->len += take;
            }
        }
        if (!nl)
            return;
        if (in->skipping)
            in->skipping = 0, in->len = 0;
        else
            emit_line(in);
        i = end + 1;
    }
}

static void finish(line_in *in, int status) {
    if (in->closing)
        return;
    if (in->len && !in->skipping)
        emit_line(in); /* a last line without its newline still counts */
    if (!in->closing)
        in->on_eof(in->data, status);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    line_in *in = h->data;
    buf->base = in->chunk;
    buf->len = sizeof in->chunk;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    line_in *in = s->data;
    if (in->closing)
        return;
    if (n < 0) {
        uv_read_stop(s);
        if (n != UV_EOF)
            log_warn(in->lg, "reading stdin: %s", uv_strerror((int)n));
        finish(in, n == UV_EOF ? 0 : (int)n);
        return;
    }
    feed(in, buf->base, (size_t)n);
}

static void free_if_done(line_in *in) {
    if (in->closing && !in->handle_open && !in->fs_pending)
        free(in);
}

static void start_file_read(line_in *in);

static void on_fs_read(uv_fs_t *req) {
    line_in *in = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    in->fs_pending = 0;
    if (in->closing) {
        free_if_done(in);
        return;
    }
    if (n <= 0) {
        if (n < 0)
            log_warn(in->lg, "reading stdin: %s", uv_strerror((int)n));
        finish(in, (int)n);
        return;
    }
    feed(in, in->chunk, (size_t)n);
    if (!in->closing)
        start_file_read(in);
}

static void start_file_read(line_in *in) {
    uv_buf_t b = uv_buf_init(in->chunk, sizeof in->chunk);
    in->fs.data = in;
    int r = uv_fs_read(in->loop, &in->fs, 0, &b, 1, -1, on_fs_read);
    if (r) {
        log_warn(in->lg, "reading stdin: %s", uv_strerror(r));
        finish(in, r); /* from a loop callback or line_in_open's deferred start */
        return;
    }
    in->fs_pending = 1;
}

static void on_start_timer(uv_timer_t *t);
static void on_closed(uv_handle_t *h);

int line_in_open(peer_ctx *ctx, line_in_cb on_line, line_in_eof_cb on_eof, line_in **out) {
    line_in *in = calloc(1, sizeof *in);
    if (!in)
        return UV_ENOMEM;
    uv_loop_t *loop = ctx->loop;
    in->ctx = ctx;
    in->loop = loop;
    in->lg = &ctx->lg;
    in->on_line = on_line;
    in->on_eof = on_eof;
    in->data = ctx;
    uv_handle_type t = uv_guess_handle(0);
    int r;
    if (t == UV_TTY) {
        in->src = SRC_STREAM;
        r = uv_tty_init(loop, &in->h.tty, 0, 1);
    } else if (t == UV_NAMED_PIPE) {
        in->src = SRC_STREAM;
        r = uv_pipe_init(loop, &in->h.pipe, 0);
        if (r == 0) {
            r = uv_pipe_open(&in->h.pipe, 0);
            if (r) {
                in->h.pipe.data = in;
                in->handle_open = 1;
                line_in_close(in); /* frees in from the close callback */
                return r;
            }
        }
    } else if (t == UV_FILE) {
        in->src = SRC_FILE;
        r = 0;
    } else {
        free(in);
        return UV_EINVAL; /* a TCP or UDP socket as stdin: not supported */
    }
    if (r) {
        free(in);
        return r;
    }
    if (in->src == SRC_STREAM) {
        in->h.tty.data = in;
        in->handle_open = 1;
        r = uv_read_start((uv_stream_t *)&in->h.tty, on_alloc, on_read);
        if (r) {
            line_in_close(in);
            return r;
        }
    } else {
        /* A file read may complete at once; start it from the loop so
         * no callback fires inside line_in_open. */
        r = uv_timer_init(loop, &in->h.timer);
        if (r) {
            free(in);
            return r;
        }
        in->h.timer.data = in;
        in->handle_open = 1;
        uv_timer_start(&in->h.timer, on_start_timer, 0, 0);
    }
    *out = in;
    return 0;
}

static void on_start_timer(uv_timer_t *t) {
    line_in *in = t->data;
    if (!in->closing)
        start_file_read(in);
}

static void on_closed(uv_handle_t *h) {
    line_in *in = h->data;
    in->handle_open = 0;
    free_if_done(in);
}

void line_in_close(line_in *in) {
    if (!in || in->closing)
        return;
    in->closing = 1;
    if (in->handle_open)
        uv_close((uv_handle_t *)&in->h, on_closed);
    else
        free_if_done(in);
}
