/* parley_client: the tracker's control protocol as the load generator speaks
 * it (docs/PROTOCOL.md): hello, register under s->name with the process's
 * key, then lookup, list or mail_put requests, one in flight; or (drain)
 * register with the "mailbox" feature and acknowledge each mail pushed;
 * or (--subscribe) register with "subscribe" and subscribe to a few names
 * before the peer counts as online.
 * Frames arrive through the slot's conn and go through shared/dispatch,
 * parley's one dispatcher, with the slot's state as the dispatcher's state. */
#include "loadgen.h"

#include "dispatch.h"
#include "msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The endpoint every bench user advertises; nobody dials it. */
#define BENCH_ENDPOINT "127.0.0.1:40000"

static void parley_connected(slot *s) {
    msg_out m;
    msg_tracker_hello(&m, "peer");
    int r = conn_send_msg(s->c, &m);
    if (r)
        lg_fail(s, "cannot send hello: %s", uv_strerror(r));
}

static void on_welcome(void *owner, const msg_in *m) {
    slot *s = owner;
    const unsigned char *nonce;
    uint64_t ttl;
    if (msg_bin(m, "nonce", &nonce, IDENT_NONCE) || msg_uint(m, "ttl", &ttl)) {
        lg_fail(s, "malformed welcome from the tracker");
        return;
    }
    memcpy(s->nonce, nonce, IDENT_NONCE);
    s->ctx->ttl = (unsigned)ttl;
    unsigned char sig[IDENT_SIG];
    size_t nlen = strlen(s->name);
    ident_sign_register(&s->ctx->id, s->nonce, s->name, nlen, sig);
    /* the drain's own login, not a preload registration */
    int drain = s->ctx->o.op == OP_DRAIN && s->job == JOB_SESSION;
    int subs = s->ctx->o.subscribe > 0 && s->ctx->phase != PH_PRELOAD;
    msg_out out;
    msg_out_init(&out, "register", drain || subs ? 5 : 4);
    msg_put_strn(&out, "name", s->name, nlen);
    msg_put_bin(&out, "key", s->ctx->id.pk, IDENT_PK);
    msg_put_bin(&out, "sig", sig, IDENT_SIG);
    msg_put_key(&out, "endpoints");
    msgpack_pack_array(&out.pk, 1);
    msg_pack_str(&out, BENCH_ENDPOINT, strlen(BENCH_ENDPOINT));
    if (drain) { /* the tracker pushes mail only to a peer that lists it */
        msg_put_key(&out, "features");
        msgpack_pack_array(&out.pk, 1);
        msg_pack_str(&out, "mailbox", 7);
        lg_drain_clock(s->ctx); /* the login starts here */
    } else if (subs) { /* presence of the --subscribe names only */
        msg_put_key(&out, "features");
        msgpack_pack_array(&out.pk, 1);
        msg_pack_str(&out, "subscribe", 9);
    }
    int r = conn_send_msg(s->c, &out);
    if (r)
        lg_fail(s, "cannot send register: %s", uv_strerror(r));
}

/* --subscribe: K names of the population, one frame; `subscribed`
 * completes the login. */
static void send_subscribe(slot *s) {
    const lg_opts *o = &s->ctx->o;
    uint64_t g = o->sub_offset + (s->job == JOB_CYCLE ? s->key : s->idx);
    msg_out out;
    msg_out_init(&out, "subscribe", 2);
    msg_put_uint(&out, "id", ++s->req_id);
    msg_put_key(&out, "names");
    msgpack_pack_array(&out.pk, o->subscribe);
    for (unsigned j = 0; j < o->subscribe; j++) {
        char name[NAME_BUFLEN];
        int n = snprintf(name, sizeof name, "%s%" PRIu64, o->sub_names,
                         (g * o->subscribe + j) % o->sub_count);
        msg_pack_str(&out, name, (size_t)n);
    }
    int r = conn_send_msg(s->c, &out);
    if (r)
        lg_fail(s, "cannot send subscribe: %s", uv_strerror(r));
}

static void on_registered(void *owner, const msg_in *m) {
    slot *s = owner;
    if (s->ctx->o.subscribe && s->ctx->phase != PH_PRELOAD)
        send_subscribe(s);
    else
        lg_ready(s);
}

static void on_subscribed(void *owner, const msg_in *m) {
    lg_ready(owner);
}

/* A mail pushed to the draining recipient: acknowledged at once. */
static void on_mail(void *owner, const msg_in *m) {
    slot *s = owner;
    uint64_t mid;
    const msgpack_object *box;
    if (msg_uint(m, "mid", &mid) || msg_get(m, "box", &box) || box->type != MSGPACK_OBJECT_BIN ||
        box->via.bin.size != s->ctx->o.value_size) {
        lg_fail(s, "a malformed mail push (or a box of another size than --value-size)");
        return;
    }
    if (mid <= s->last_mid) {
        lg_fail(s, "the tracker pushed mail %" PRIu64 " after %" PRIu64 ": twice or out of order",
                mid, s->last_mid);
        return;
    }
    s->last_mid = mid;
    msg_out out;
    msg_out_init(&out, "mail_ack", 1);
    msg_put_uint(&out, "mid", mid);
    int r = conn_send_msg(s->c, &out);
    if (r) {
        lg_fail(s, "cannot send mail_ack: %s", uv_strerror(r));
        return;
    }
    if (lg_drained(s, 1))
        lg_finish(s->ctx);
}

/* lookup_result, list_result and mail_stored: the answer to the request in flight. */
static void on_result(void *owner, const msg_in *m) {
    slot *s = owner;
    uint64_t id;
    if (msg_uint(m, "id", &id) || id != s->req_id) {
        lg_fail(s, "the tracker sent %s that answers no request in flight", m->type);
        return;
    }
    lg_reply(s, 1);
}

static void on_error(void *owner, const msg_in *m) {
    slot *s = owner;
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

static void on_ignored(void *owner, const msg_in *m) {
    /* presence pushes and pongs need no answer */
}

static void refuse(void *owner, const disp_refusal *r) {
    lg_fail(owner, "the tracker sent what the load generator cannot take: %s (%s)", r->text,
            r->code);
}

/* Frames arrive only while the slot is in one of these (conn stops
 * delivering once the slot closes it). */
#define LIVE (DISP_IN(SL_HANDSHAKE) | DISP_IN(SL_READY) | DISP_IN(SL_BUSY))

/* The answers to measured requests come first: disp_find scans in order. */
static const disp_entry entries[] = {
    {"lookup_result", DISP_IN(SL_BUSY), 0, on_result},
    {"list_result", DISP_IN(SL_BUSY), 0, on_result},
    {"mail_stored", DISP_IN(SL_BUSY), 0, on_result},
    {"mail", DISP_IN(SL_READY) | DISP_IN(SL_BUSY), 0, on_mail},
    {"welcome", DISP_IN(SL_HANDSHAKE), 0, on_welcome},
    {"registered", DISP_IN(SL_HANDSHAKE), 0, on_registered},
    {"subscribed", DISP_IN(SL_HANDSHAKE), 0, on_subscribed},
    {"error", LIVE, 0, on_error},
    {"presence", LIVE, 0, on_ignored},
    {"pong", LIVE, 0, on_ignored},
    {"receipt", LIVE, 0, on_ignored}, /* a sender's, if it registered with the feature */
};

static const disp_table table =
    DISP_TABLE(entries, "at this point of a load-generator connection", NULL, refuse);

static void parley_frame(conn *c, const char *payload, size_t len) {
    slot *s = conn_data(c);
    disp_frame(&table, s, s->state, 0, payload, len);
}

static int parley_request(slot *s, int preload) {
    lg_ctx *ctx = s->ctx;
    msg_out m;
    if (preload)
        return UV_EINVAL; /* parley preloads by registering, one connection each */
    s->req_id++;
    /* lookup and mail_put name one of the preloaded users */
    char name[NAME_BUFLEN];
    int n = 0;
    if (ctx->o.op == OP_LOOKUP || ctx->o.op == OP_PUT)
        n = snprintf(name, sizeof name, "%s%" PRIu64, ctx->o.names,
                     lg_rand(ctx, ctx->o.name_count));
    if (ctx->o.op == OP_LOOKUP) {
        msg_out_init(&m, "lookup", 2);
        msg_put_uint(&m, "id", s->req_id);
        msg_put_strn(&m, "name", name, (size_t)n);
    } else if (ctx->o.op == OP_LIST) {
        msg_out_init(&m, "list", 2);
        msg_put_uint(&m, "id", s->req_id);
        msg_put_uint(&m, "limit", ctx->o.list_limit);
    } else if (ctx->o.op == OP_PUT) {
        /* req_id is this connection's message id: new for every put, so
         * none is taken for a resend (each connection is its own sender) */
        msg_out_init(&m, "mail_put", 3);
        msg_put_uint(&m, "id", s->req_id);
        msg_put_strn(&m, "to", name, (size_t)n);
        msg_put_bin(&m, "box", ctx->value, ctx->o.value_size);
    } else {
        return UV_EINVAL;
    }
    return conn_send_msg(s->c, &m);
}

static int parley_ping(slot *s) {
    msg_out m;
    msg_out_init(&m, "ping", 0);
    return conn_send_msg(s->c, &m);
}

const lg_proto parley_proto = {"parley", parley_connected, parley_frame, NULL, parley_request,
                               parley_ping};
