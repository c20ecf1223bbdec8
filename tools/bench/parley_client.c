/* parley_client: the tracker's control protocol as the load generator speaks
 * it (docs/PROTOCOL.md): hello, register under s->name with the process's
 * key, then lookup or list requests, one in flight.  Frames come out of the
 * slot's frame_reader and dispatch through a table, like the tracker's. */
#include "loadgen.h"

#include "msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The endpoint every bench user advertises; nobody dials it. */
#define BENCH_ENDPOINT "127.0.0.1:40000"

static int send_msg(slot *s, msg_out *m) {
    const char *p;
    size_t len;
    int r = msg_out_view(m, FRAME_MAX_DEFAULT, &p, &len);
    if (r == 0)
        r = slot_send_copy(s, p, len);
    msg_out_discard(m);
    return r;
}

static void parley_connected(slot *s) {
    msg_out m;
    msg_out_init(&m, "hello", 2);
    msg_put_uint(&m, "v", PROTO_VERSION);
    msg_put_str(&m, "role", "peer");
    int r = send_msg(s, &m);
    if (r)
        lg_fail(s, "cannot send hello: %s", uv_strerror(r));
}

typedef void (*handler_fn)(slot *s, const msg_in *m);

static void on_welcome(slot *s, const msg_in *m) {
    const unsigned char *nonce;
    uint64_t ttl;
    if (s->state != SL_HANDSHAKE || msg_bin(m, "nonce", &nonce, IDENT_NONCE) ||
        msg_uint(m, "ttl", &ttl)) {
        lg_fail(s, "unexpected or malformed welcome from the tracker");
        return;
    }
    memcpy(s->nonce, nonce, IDENT_NONCE);
    s->ctx->ttl = (unsigned)ttl;
    unsigned char sig[IDENT_SIG];
    size_t nlen = strlen(s->name);
    ident_sign_register(&s->ctx->id, s->nonce, s->name, nlen, sig);
    msg_out out;
    msg_out_init(&out, "register", 4);
    msg_put_strn(&out, "name", s->name, nlen);
    msg_put_bin(&out, "key", s->ctx->id.pk, IDENT_PK);
    msg_put_bin(&out, "sig", sig, IDENT_SIG);
    msg_put_key(&out, "endpoints");
    msgpack_pack_array(&out.pk, 1);
    msg_pack_str(&out, BENCH_ENDPOINT, strlen(BENCH_ENDPOINT));
    int r = send_msg(s, &out);
    if (r)
        lg_fail(s, "cannot send register: %s", uv_strerror(r));
}

static void on_registered(slot *s, const msg_in *m) {
    if (s->state != SL_HANDSHAKE) {
        lg_fail(s, "unexpected registered from the tracker");
        return;
    }
    lg_ready(s);
}

/* lookup_result and list_result: the answer to the request in flight. */
static void on_result(slot *s, const msg_in *m) {
    uint64_t id;
    if (s->state != SL_BUSY || msg_uint(m, "id", &id) || id != s->req_id) {
        lg_fail(s, "the tracker sent %s that answers no request in flight", m->type);
        return;
    }
    lg_reply(s, 1);
}

static void on_error(slot *s, const msg_in *m) {
    char code[32], text[200];
    uint64_t id = 0;
    msg_error_fields(m, code, sizeof code, text, sizeof text);
    msg_uint(m, "id", &id);
    if (id && s->state == SL_BUSY && id == s->req_id) {
        log_debug(&s->ctx->lg, "request %" PRIu64 " failed: %s (%s)", id, text, code);
        lg_reply(s, 0);
        return;
    }
    lg_fail(s, "the tracker closed connection %s: %s (%s)", s->name, text, code);
}

static void on_ignored(slot *s, const msg_in *m) {
    /* presence pushes and pongs need no answer */
}

static const struct {
    const char *type;
    handler_fn fn;
} handlers[] = {
    {"welcome", on_welcome},    {"registered", on_registered}, {"lookup_result", on_result},
    {"list_result", on_result}, {"error", on_error},           {"presence", on_ignored},
    {"pong", on_ignored},
};

static void parley_readable(slot *s) {
    while (s->state != SL_CLOSING && s->state != SL_IDLE) {
        const char *p;
        size_t n;
        int r = frame_reader_next(&s->rd, &p, &n);
        if (r == 0)
            return;
        if (r < 0) {
            lg_fail(s, "the tracker sent a bad frame (%s)", uv_strerror(r));
            return;
        }
        msg_in m;
        if (msg_parse(&m, p, n)) {
            lg_fail(s, "the tracker sent a frame that is not a msgpack map");
            return;
        }
        handler_fn fn = NULL;
        for (size_t i = 0; i < sizeof handlers / sizeof *handlers && !fn; i++)
            if (strcmp(handlers[i].type, m.type) == 0)
                fn = handlers[i].fn;
        if (fn)
            fn(s, &m);
        else
            lg_fail(s, "the tracker sent an unexpected message type");
        msg_in_free(&m);
    }
}

static int parley_request(slot *s, int preload) {
    lg_ctx *ctx = s->ctx;
    msg_out m;
    if (preload)
        return UV_EINVAL; /* parley preloads by registering, one connection each */
    s->req_id++;
    if (ctx->o.op == OP_LOOKUP) {
        char name[NAME_BUFLEN];
        int n = snprintf(name, sizeof name, "%s%" PRIu64, ctx->o.names,
                         lg_rand(ctx, ctx->o.name_count));
        msg_out_init(&m, "lookup", 2);
        msg_put_uint(&m, "id", s->req_id);
        msg_put_strn(&m, "name", name, (size_t)n);
    } else if (ctx->o.op == OP_LIST) {
        msg_out_init(&m, "list", 2);
        msg_put_uint(&m, "id", s->req_id);
        msg_put_uint(&m, "limit", ctx->o.list_limit);
    } else {
        return UV_EINVAL;
    }
    return send_msg(s, &m);
}

static int parley_ping(slot *s) {
    msg_out m;
    msg_out_init(&m, "ping", 0);
    return send_msg(s, &m);
}

const lg_proto parley_proto = {"parley", parley_connected, parley_readable, parley_request,
                               parley_ping};
