/* resp_client: just enough RESP2 to drive redis-server as the reference: SET,
 * GET, RPUSH, LRANGE and LTRIM as arrays of bulk strings, and the reply kinds
 * they can get (an array of bulk strings for LRANGE).
 * It reads through the same conn as the parley client, in raw mode, and
 * parses replies where conn hands them over; only a reply that a read cut
 * short is copied, into the slot's tail, to be finished by the next read. */
#include "loadgen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void resp_connected(slot *s) {
    lg_ready(s);
}

static ssize_t reply_len(const char *p, size_t n, int *ok, uint64_t *elems);

/* The elements of an array reply whose header line is line bytes long:
 * its whole length, 0 when incomplete, or UV_EPROTO.  Only bulk strings
 * (LRANGE's) are taken as elements. */
static ssize_t array_len(const char *p, size_t n, size_t line, long count, int *ok,
                         uint64_t *elems) {
    size_t off = line;
    for (long i = 0; i < count; i++) {
        int eok = 0;
        uint64_t sub = 0;
        if (off >= n)
            return 0;
        if (p[off] != '$')
            return UV_EPROTO;
        ssize_t r = reply_len(p + off, n - off, &eok, &sub);
        if (r <= 0)
            return r;
        off += (size_t)r;
    }
    *ok = 1;
    *elems = (uint64_t)count;
    return (ssize_t)off;
}

/* One reply at p[0..n): its length when complete, 0 when more bytes are
 * needed, UV_EPROTO when it is no RESP reply.  *ok is 0 for an error reply
 * or a nil bulk (a GET of a key that was never set); *elems gets an
 * array's element count (else 0). */
static ssize_t reply_len(const char *p, size_t n, int *ok, uint64_t *elems) {
    const char *eol = n > 1 ? memchr(p, '\n', n) : NULL;
    if (!eol)
        return 0;
    size_t line = (size_t)(eol - p) + 1;
    if (line < 3 || p[line - 2] != '\r')
        return UV_EPROTO;
    *elems = 0;
    switch (p[0]) {
    case '*': {
        char *end;
        long count = strtol(p + 1, &end, 10);
        if (end != p + line - 2)
            return UV_EPROTO;
        if (count <= 0) { /* empty (or nil) array: an empty list */
            *ok = 1;
            return (ssize_t)line;
        }
        return array_len(p, n, line, count, ok, elems);
    }
    case '+':
    case ':':
        *ok = 1;
        return (ssize_t)line;
    case '-':
        *ok = 0;
        return (ssize_t)line;
    case '$': {
        char *end;
        long len = strtol(p + 1, &end, 10);
        if (end != p + line - 2)
            return UV_EPROTO;
        if (len < 0) {
            *ok = 0;
            return (ssize_t)line;
        }
        if (n < line + (size_t)len + 2)
            return 0;
        *ok = 1;
        return (ssize_t)(line + (size_t)len + 2);
    }
    default:
        return UV_EPROTO;
    }
}

static int drain_send(slot *s);

/* The drain's reply: an LRANGE page, or the LTRIM that acknowledges it. */
static void drain_reply(slot *s, int ok, uint64_t elems) {
    lg_ctx *ctx = s->ctx;
    if (!ok) {
        lg_fail(s, "redis-server answered %s with an error", s->trimming ? "LTRIM" : "LRANGE");
        return;
    }
    if (s->trimming) {
        s->trimming = 0;
        if (ctx->ops >= ctx->o.count)
            lg_finish(ctx); /* the last LTRIM is through */
        else if (drain_send(s))
            lg_fail(s, "cannot send LRANGE");
        return;
    }
    if (elems == 0) {
        lg_fail(s, "the list held only %" PRIu64 " elements, fewer than --count", ctx->ops);
        return;
    }
    s->page = elems;
    s->trimming = 1;
    if (drain_send(s)) {
        lg_fail(s, "cannot send LTRIM");
        return;
    }
    lg_drained(s, elems); /* the clock stops with the last LTRIM sent */
}

/* Takes every complete reply in p[0..n): the bytes taken, or UV_EPROTO
 * once it has failed the run. */
static ssize_t take_replies(slot *s, const char *p, size_t n) {
    size_t off = 0;
    while (off < n && s->state != SL_CLOSING && s->state != SL_IDLE) {
        int ok = 0;
        uint64_t elems = 0;
        ssize_t r = reply_len(p + off, n - off, &ok, &elems);
        if (r == 0)
            break;
        if (r < 0) {
            lg_fail(s, "redis-server sent something that is not a RESP reply");
            return UV_EPROTO;
        }
        if (s->state != SL_BUSY) {
            lg_fail(s, "redis-server sent a reply to no request");
            return UV_EPROTO;
        }
        off += (size_t)r;
        if (s->ctx->o.op == OP_LDRAIN)
            drain_reply(s, ok, elems);
        else
            lg_reply(s, ok);
    }
    return (ssize_t)off;
}

static void resp_raw(conn *c, const char *data, size_t len) {
    slot *s = conn_data(c);
    frame_reader *t = &s->tail;
    int in_tail = t->end > t->start;
    if (in_tail) {
        if (frame_reader_append(t, data, len)) {
            lg_fail(s, "out of memory reading from redis-server");
            return;
        }
        data = t->buf + t->start;
        len = t->end - t->start;
    }
    ssize_t used = take_replies(s, data, len);
    if (used < 0)
        return;
    if (in_tail)
        t->start += (size_t)used;
    else if ((size_t)used < len && s->state != SL_CLOSING &&
             frame_reader_append(t, data + used, len - (size_t)used))
        lg_fail(s, "out of memory reading from redis-server");
}

/* Appends one RESP bulk string. */
static size_t put_bulk(char *out, const char *s, size_t n) {
    int h = sprintf(out, "$%zu\r\n", n);
    memcpy(out + h, s, n);
    memcpy(out + h + n, "\r\n", 2);
    return (size_t)h + n + 2;
}

/* A command of argc bulk strings, built on the stack like the parley
 * client's frames, sent with conn_send_copy. */
static int send_cmd(slot *s, int argc, const char *const *argv, const size_t *lens) {
    char buf[512];
    size_t len = (size_t)sprintf(buf, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        if (len + lens[i] + 32 > sizeof buf)
            return UV_E2BIG;
        len += put_bulk(buf + len, argv[i], lens[i]);
    }
    return conn_send_copy(s->c, buf, len);
}

/* The drain's next command: LRANGE of a page, or LTRIM past the page read. */
static int drain_send(slot *s) {
    lg_ctx *ctx = s->ctx;
    char key[NAME_BUFLEN + 24], a[24], b[24];
    int kn = snprintf(key, sizeof key, "%s0", ctx->o.names);
    if (s->trimming) {
        int an = snprintf(a, sizeof a, "%" PRIu64, s->page);
        const char *argv[] = {"LTRIM", key, a, "-1"};
        const size_t lens[] = {5, (size_t)kn, (size_t)an, 2};
        return send_cmd(s, 4, argv, lens);
    }
    int bn = snprintf(b, sizeof b, "%u", ctx->o.page - 1);
    const char *argv[] = {"LRANGE", key, "0", b};
    const size_t lens[] = {6, (size_t)kn, 1, (size_t)bn};
    return send_cmd(s, 4, argv, lens);
}

static int resp_request(slot *s, int preload) {
    lg_ctx *ctx = s->ctx;
    char key[NAME_BUFLEN + 24];
    int kn;
    if (!preload && ctx->o.op == OP_LDRAIN)
        return drain_send(s);
    int push = !preload && ctx->o.op == OP_RPUSH;
    int set = preload || ctx->o.op == OP_SET || push;
    if (preload)
        kn = snprintf(key, sizeof key, "%s%" PRIu64, ctx->o.names, s->key);
    else if (ctx->o.op == OP_GET || push)
        kn = snprintf(key, sizeof key, "%s%" PRIu64, ctx->o.names, lg_rand(ctx, ctx->o.name_count));
    else if (ctx->o.op == OP_SET)
        kn = snprintf(key, sizeof key, "%s%" PRIu64, ctx->o.self, ctx->next_key++);
    else
        return UV_EINVAL;
    size_t vn = set ? ctx->o.value_size : 0;
    /* Built on the stack unless the value is large, as the parley client
     * builds its frames: both pay the same to send. */
    char stack[1024];
    size_t need = 64 + (size_t)kn + vn;
    char *buf = need <= sizeof stack ? stack : malloc(need);
    if (!buf)
        return UV_ENOMEM;
    size_t len = 0;
    if (set) {
        memcpy(buf, "*3\r\n", 4);
        len = 4 + (push ? put_bulk(buf + 4, "RPUSH", 5) : put_bulk(buf + 4, "SET", 3));
    } else {
        memcpy(buf, "*2\r\n", 4);
        len = 4 + put_bulk(buf + 4, "GET", 3);
    }
    len += put_bulk(buf + len, key, (size_t)kn);
    if (set)
        len += put_bulk(buf + len, ctx->value, vn);
    return buf == stack ? conn_send_copy(s->c, buf, len) : conn_send(s->c, buf, len);
}

const lg_proto resp_proto = {"resp", resp_connected, NULL, resp_raw, resp_request, NULL};
