/* ui_line: stdin in, one line at a time (line mode's output is
 * ui_line_events.c).  Input arrives through a uv_tty_t, a uv_pipe_t or
 * chunked uv_fs_read calls, whichever uv_guess_handle says stdin is; all
 * three feed the same line splitter. */
#include "line_input.h"

#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SRC_STREAM, SRC_FILE };

struct ui {
    peer_ctx *ctx;
    uv_loop_t *loop;
    const logger *lg;
    ui_line_cb on_line;
    ui_eof_cb on_eof;
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
    char line[UI_LINE_MAX + 1];
    char chunk[65536];     /* file reads and stream reads land here */
};

static void emit_line(ui *u) {
    size_t n = u->len;
    if (n && u->line[n - 1] == '\r')
        n--;
    u->line[n] = '\0';
    u->len = 0;
    u->on_line(u->data, u->line, n);
}

/* Splits a chunk into lines; stops as soon as a callback closed the ui.
 * Copies each piece up to the next newline at once (memchr). */
static void feed(ui *u, const char *p, size_t n) {
    size_t i = 0;
    while (i < n && !u->closing) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n; /* the piece is p[i, end) */
        if (!u->skipping) {
            size_t take = end - i, room = UI_LINE_MAX - u->len;
            if (take > room) {
                /* the byte after a full line starts the skip, as before */
                ev_error(u->ctx, "too_long", "input line longer than %d bytes ignored; messages may be at most 4000 bytes",
                         UI_LINE_MAX);
                u->skipping = 1;
                u->len = 0;
            } else {
                memcpy(u->line + u->len, p + i, take);
                u->len += take;
            }
        }
        if (!nl)
            return;
        if (u->skipping)
            u->skipping = 0, u->len = 0;
        else
            emit_line(u);
        i = end + 1;
    }
}

static void finish(ui *u, int status) {
    if (u->closing)
        return;
    if (u->len && !u->skipping)
        emit_line(u); /* a last line without its newline still counts */
    if (!u->closing)
        u->on_eof(u->data, status);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    ui *u = h->data;
    buf->base = u->chunk;
    buf->len = sizeof u->chunk;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    ui *u = s->data;
    if (u->closing)
        return;
    if (n < 0) {
        uv_read_stop(s);
        if (n != UV_EOF)
            log_warn(u->lg, "reading stdin: %s", uv_strerror((int)n));
        finish(u, n == UV_EOF ? 0 : (int)n);
        return;
    }
    feed(u, buf->base, (size_t)n);
}

static void free_if_done(ui *u) {
    if (u->closing && !u->handle_open && !u->fs_pending)
        free(u);
}

static void start_file_read(ui *u);

static void on_fs_read(uv_fs_t *req) {
    ui *u = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    u->fs_pending = 0;
    if (u->closing) {
        free_if_done(u);
        return;
    }
    if (n <= 0) {
        if (n < 0)
            log_warn(u->lg, "reading stdin: %s", uv_strerror((int)n));
        finish(u, (int)n);
        return;
    }
    feed(u, u->chunk, (size_t)n);
    if (!u->closing)
        start_file_read(u);
}

static void start_file_read(ui *u) {
    uv_buf_t b = uv_buf_init(u->chunk, sizeof u->chunk);
    u->fs.data = u;
    int r = uv_fs_read(u->loop, &u->fs, 0, &b, 1, -1, on_fs_read);
    if (r) {
        log_warn(u->lg, "reading stdin: %s", uv_strerror(r));
        finish(u, r); /* from a loop callback or ui_open's deferred start */
        return;
    }
    u->fs_pending = 1;
}

static void on_start_timer(uv_timer_t *t);
static void on_closed(uv_handle_t *h);

int ui_open(peer_ctx *ctx, ui_line_cb on_line, ui_eof_cb on_eof, ui **out) {
    ui *u = calloc(1, sizeof *u);
    if (!u)
        return UV_ENOMEM;
    uv_loop_t *loop = ctx->loop;
    u->ctx = ctx;
    u->loop = loop;
    u->lg = &ctx->lg;
    u->on_line = on_line;
    u->on_eof = on_eof;
    u->data = ctx;
    uv_handle_type t = uv_guess_handle(0);
    int r;
    if (t == UV_TTY) {
        u->src = SRC_STREAM;
        r = uv_tty_init(loop, &u->h.tty, 0, 1);
    } else if (t == UV_NAMED_PIPE) {
        u->src = SRC_STREAM;
        r = uv_pipe_init(loop, &u->h.pipe, 0);
        if (r == 0) {
            r = uv_pipe_open(&u->h.pipe, 0);
            if (r) {
                u->h.pipe.data = u;
                u->handle_open = 1;
                ui_close(u); /* frees u from the close callback */
                return r;
            }
        }
    } else if (t == UV_FILE) {
        u->src = SRC_FILE;
        r = 0;
    } else {
        free(u);
        return UV_EINVAL; /* a TCP or UDP socket as stdin: not supported */
    }
    if (r) {
        free(u);
        return r;
    }
    if (u->src == SRC_STREAM) {
        u->h.tty.data = u;
        u->handle_open = 1;
        r = uv_read_start((uv_stream_t *)&u->h.tty, on_alloc, on_read);
        if (r) {
            ui_close(u);
            return r;
        }
    } else {
        /* A file read may complete at once; start it from the loop so
         * no callback fires inside ui_open. */
        r = uv_timer_init(loop, &u->h.timer);
        if (r) {
            free(u);
            return r;
        }
        u->h.timer.data = u;
        u->handle_open = 1;
        uv_timer_start(&u->h.timer, on_start_timer, 0, 0);
    }
    *out = u;
    return 0;
}

static void on_start_timer(uv_timer_t *t) {
    ui *u = t->data;
    if (!u->closing)
        start_file_read(u);
}

static void on_closed(uv_handle_t *h) {
    ui *u = h->data;
    u->handle_open = 0;
    free_if_done(u);
}

void ui_close(ui *u) {
    if (!u || u->closing)
        return;
    u->closing = 1;
    if (u->handle_open)
        uv_close((uv_handle_t *)&u->h, on_closed);
    else
        free_if_done(u);
}
