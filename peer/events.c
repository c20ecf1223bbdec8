/* events: the dispatch from typed events to the active front end.  The
 * modules never format user-facing text for a particular front end; they
 * call ev_* and the front end decides how it looks. */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>

/* fe_base outlives ctx->fe: it shows what comes before a front end opens
 * and after it closed on the way out (the last error, "bye"). */
#define FE(ctx) ((ctx)->fe ? (ctx)->fe : (ctx)->fe_base)
#define CALL(ctx, fn, ...)                                                                         \
    do {                                                                                           \
        const ev_frontend *fe_ = FE(ctx);                                                          \
        if (fe_ && fe_->fn)                                                                        \
            fe_->fn((ctx)->fe_data, __VA_ARGS__);                                                  \
    } while (0)

void ev_set_frontend(peer_ctx *ctx, const ev_frontend *fe, void *data) {
    ctx->fe = fe;
    ctx->fe_data = fe ? data : NULL;
}

void ev_close_frontend(peer_ctx *ctx) {
    const ev_frontend *fe = ctx->fe;
    void *data = ctx->fe_data;
    ctx->fe = NULL; /* from here on, fe_base */
    ctx->fe_data = NULL;
    if (fe && fe->close)
        fe->close(data);
}

void ev_registered(peer_ctx *ctx, const char *name, const char *tracker, const char *observed) {
    CALL(ctx, registered, name, tracker, observed);
}

void ev_tracker_lost(peer_ctx *ctx, const char *why, unsigned delay_ms, int repeat,
                     int was_registered) {
    CALL(ctx, tracker_lost, ctx->tracker, why, delay_ms, repeat, was_registered);
}

void ev_presence(peer_ctx *ctx, const char *name, int online) { CALL(ctx, presence, name, online); }

void ev_users(peer_ctx *ctx, char **names, size_t n) { CALL(ctx, users, names, n); }

void ev_connected(peer_ctx *ctx, const char *name, ev_path path, const char *how) {
    CALL(ctx, connected, name, path, how);
}

void ev_current(peer_ctx *ctx, const char *name) { CALL(ctx, current, name); }

void ev_msg(peer_ctx *ctx, const char *name, uint64_t id, int64_t ts, const char *text,
            size_t len) {
    CALL(ctx, msg, name, id, ts, text, len);
}

void ev_sent(peer_ctx *ctx, const char *name, uint64_t seq, int64_t ts, const char *text,
             size_t len) {
    CALL(ctx, sent, name, seq, ts, text, len);
}

void ev_delivered(peer_ctx *ctx, const char *name, uint64_t seq) {
    CALL(ctx, delivered, name, seq);
}

void ev_stored(peer_ctx *ctx, const char *name, uint64_t seq) { CALL(ctx, stored, name, seq); }

void ev_history(peer_ctx *ctx, const char *name, const ev_hist_row *rows, size_t n) {
    CALL(ctx, history, name, rows, n);
}

void ev_closed(peer_ctx *ctx, const char *name, ev_close_why why) { CALL(ctx, closed, name, why); }

void ev_unreachable(peer_ctx *ctx, const char *name, const char *reason) {
    CALL(ctx, unreachable, name, reason);
}

void ev_error(peer_ctx *ctx, const char *code, const char *fmt, ...) {
    /* Usually short; an echoed input line can be long, and line mode must
     * show it whole. */
    char small[1024], *text = small;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof small && (text = malloc((size_t)n + 1)) != NULL)
        vsnprintf(text, (size_t)n + 1, fmt, ap2);
    else if (!text)
        text = small; /* out of memory: show it truncated */
    va_end(ap2);
    if (n < 0)
        snprintf(small, sizeof small, "(unprintable error message)");
    CALL(ctx, error, code, text);
    if (text != small)
        free(text);
}

void ev_help(peer_ctx *ctx, const char *const *lines, size_t n) { CALL(ctx, help, lines, n); }

void ev_trusted(peer_ctx *ctx, const char *name, const char *fp, const char *was) {
    CALL(ctx, trusted, name, fp, was);
}

void ev_whois(peer_ctx *ctx, const char *name, const char *pinned, const char *tracker) {
    CALL(ctx, whois, name, pinned, tracker);
}

void ev_flush(peer_ctx *ctx) {
    const ev_frontend *fe = FE(ctx);
    if (fe && fe->flush)
        fe->flush(ctx->fe_data);
}

void ev_bye(peer_ctx *ctx) {
    const ev_frontend *fe = FE(ctx);
    if (fe && fe->bye)
        fe->bye(ctx->fe_data);
}
