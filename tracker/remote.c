/* remote: the messages between trackers (remote.h).  Encoding and decoding
 * the line, and the delivery of pushes; what a punch or relay request
 * means is reach.c's and what a mail kick means mail.c's, reached through
 * the caller's rmt_handlers (they sit above this file). */
#include "remote.h"

#include "frame.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RMT_VARIANT sodium_base64_VARIANT_ORIGINAL

static int send_frame(tracker_ctx *ctx, const char *home, const char *kind, const char *folded,
                      const char *buf, size_t len) {
    size_t head = strlen(kind) + strlen(folded) + strlen(reg_home(ctx->reg)) + 3;
    size_t b64 = sodium_base64_encoded_len(len, RMT_VARIANT);
    if (head + b64 >= 8000)
        return UV_E2BIG;
    char *line = malloc(head + b64);
    if (!line)
        return UV_ENOMEM;
    int n = snprintf(line, head + 1, "%s %s %s ", kind, folded, reg_home(ctx->reg));
    sodium_bin2base64(line + n, b64, (const unsigned char *)buf, len, RMT_VARIANT);
    int e = reg_forward(ctx->reg, home, folded, line);
    free(line);
    return e;
}

int rmt_send(tracker_ctx *ctx, const char *home, const char *kind, const char *folded,
             msg_out *m) {
    char *buf;
    size_t len;
    int e = msg_out_finish(m, FRAME_MAX_DEFAULT, &buf, &len);
    if (e)
        return e;
    e = send_frame(ctx, home, kind, folded, buf, len);
    free(buf);
    return e;
}

void rmt_send_error(tracker_ctx *ctx, const char *home, const char *folded, const char *code,
                    const char *text, uint64_t id) {
    char *buf;
    size_t len;
    int e = msg_error_frame(code, text, id, &buf, &len);
    if (e == 0) {
        e = send_frame(ctx, home, RMT_PUSH, folded, buf, len);
        free(buf);
    }
    if (e)
        log_warn(&ctx->lg, "cannot answer %s at tracker %s (%s): %s", folded, home, code,
                 uv_strerror(e));
}

void rmt_received(tracker_ctx *ctx, const char *payload, const rmt_handlers *h) {
    char kind[20], to[NAME_BUFLEN], home[REG_HOME_BUFLEN];
    int off = 0;
    if (ctx->stopping)
        return;
    if (sscanf(payload, "%19s %128s %32s %n", kind, to, home, &off) != 3 || !off) {
        log_warn(&ctx->lg, "ignoring a malformed message from another tracker: %.80s", payload);
        return;
    }
    const char *b64 = payload + off;
    size_t cap = strlen(b64) / 4 * 3 + 3, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return;
    if (sodium_base642bin((unsigned char *)buf, cap, b64, strlen(b64), NULL, &len, NULL,
                          RMT_VARIANT) != 0 || len < FRAME_HEADER) {
        log_warn(&ctx->lg, "ignoring a message from tracker %s with a bad frame", home);
        free(buf);
        return;
    }
    session *o = namemap_get(ctx->online, to);
    int push = strcmp(kind, RMT_PUSH) == 0, cf = strcmp(kind, RMT_CONNECT_FAILED) == 0;
    log_debug(&ctx->lg, "from tracker %s: %s for %s (%s)", home, kind, to,
              o ? "here" : "not here");
    if (strcmp(kind, RMT_MAIL) == 0) {
        if (o)
            h->mail(ctx, to);
        free(buf);
        return;
    }
    if (push || cf) {
        /* Gone meanwhile: a push is a hint, an answer its requester times out. */
        if (o && sess_listening(o) && (push || o->hears_connect_failed))
            sess_send_buf(o, buf, len); /* takes buf */
        else
            free(buf);
        return;
    }
    msg_in m;
    if (msg_parse(&m, buf + FRAME_HEADER, len - FRAME_HEADER) != 0) {
        log_warn(&ctx->lg, "ignoring a %s message from tracker %s that does not parse", kind,
                 home);
        free(buf);
        return;
    }
    if (strcmp(kind, RMT_PUNCH) == 0)
        h->punch(ctx, o && sess_listening(o) ? o : NULL, home, &m);
    else if (strcmp(kind, RMT_RELAY) == 0)
        h->relay(ctx, o && sess_listening(o) ? o : NULL, home, &m);
    else
        log_warn(&ctx->lg, "ignoring a message of unknown kind %s from tracker %s", kind, home);
    msg_in_free(&m);
    free(buf);
}
