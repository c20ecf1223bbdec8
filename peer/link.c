/* link: the chat link handshake and message pump.  link_step is the one
 * transition function; frame handlers only parse, check and call it or the
 * handler.  A frame that breaks the protocol fails the link with an error
 * frame and never disturbs the rest of the peer. */
#include "link.h"

#include "conn.h"
#include "control.h"
#include "frame.h"
#include "name.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HANDSHAKE_MS 10000
#define BYE_LINGER_MS 2000

enum link_state {
    LINK_CONNECTING, /* dialer: TCP connect in flight */
    LINK_HELLO,      /* hello sent, waiting for theirs */
    LINK_VERIFY,     /* acceptor: asking the tracker for the dialer's key (reading paused) */
    LINK_AUTH,       /* auth sent, waiting for theirs */
    LINK_UP,
    LINK_BYE,        /* we said bye; waiting for the other side to close */
    LINK_CLOSED,
};

enum link_event {
    EV_CONNECTED, /* status: connect result */
    EV_HELLO,     /* their hello passed the checks */
    EV_KEY,       /* status: result of the acceptor's key check */
    EV_AUTH,      /* their auth verified */
    EV_BYE_SENT,
    EV_CLOSE,
};

struct chatlink {
    peer_ctx *ctx;
    conn *c;
    uv_connect_t creq;
    enum link_state state;
    int dialer;
    int relayed;     /* runs over a relay connection through the tracker */
    const link_handler *h;
    void *data;
    char name[NAME_BUFLEN];
    char fold[NAME_BUFLEN];
    unsigned char expect_key[IDENT_PK]; /* dialer: the tracker's key for name */
    unsigned char their_key[IDENT_PK];
    unsigned char my_nonce[IDENT_NONCE];
    unsigned char their_nonce[IDENT_NONCE];
    char why[600]; /* authentication failure, for the dialer's report */
};

static void link_step(chatlink *l, enum link_event ev, int status);

/* ---- sending ---- */

static int send_hello(chatlink *l) {
    peer_ctx *ctx = l->ctx;
    msg_out m;
    msg_out_init(&m, "hello", 5 + l->dialer);
    msg_put_uint(&m, "v", PROTO_VERSION);
    msg_put_str(&m, "role", "chat");
    msg_put_str(&m, "name", ctx->user);
    msg_put_bin(&m, "key", ctx->id.pk, IDENT_PK);
    msg_put_bin(&m, "nonce", l->my_nonce, IDENT_NONCE);
    if (l->dialer)
        msg_put_str(&m, "to", l->name);
    return conn_send_msg(l->c, &m);
}

static int send_auth(chatlink *l) {
    unsigned char sig[IDENT_SIG];
    ident_sign_chat(&l->ctx->id, l->their_nonce, l->ctx->user, strlen(l->ctx->user), sig);
    msg_out m;
    msg_out_init(&m, "auth", 1);
    msg_put_bin(&m, "sig", sig, IDENT_SIG);
    return conn_send_msg(l->c, &m);
}

int link_send_msg(chatlink *l, uint64_t id, int64_t ts, const char *text, size_t len) {
    if (l->state != LINK_UP)
        return UV_ENOTCONN;
    msg_out m;
    msg_out_init(&m, "msg", 3);
    msg_put_uint(&m, "id", id);
    msg_put_int(&m, "ts", ts);
    msg_put_strn(&m, "text", text, len);
    return conn_send_msg(l->c, &m);
}

int link_send_ack(chatlink *l, uint64_t id) {
    if (l->state != LINK_UP)
        return UV_ENOTCONN;
    msg_out m;
    msg_out_init(&m, "ack", 1);
    msg_put_uint(&m, "id", id);
    return conn_send_msg(l->c, &m);
}

int link_send_bye(chatlink *l) {
    if (l->state != LINK_UP)
        return UV_ENOTCONN;
    msg_out m;
    msg_out_init(&m, "bye", 0);
    int r = conn_send_msg(l->c, &m);
    link_step(l, EV_BYE_SENT, 0);
    return r;
}

static void send_simple(chatlink *l, const char *type) {
    msg_out m;
    msg_out_init(&m, type, 0);
    conn_send_msg(l->c, &m);
}

/* ---- accessors ---- */

void link_set_handler(chatlink *l, const link_handler *h, void *data) {
    l->h = h;
    l->data = data;
}
const char *link_name(const chatlink *l) { return l->name; }
const char *link_fold(const chatlink *l) { return l->fold; }
int link_dialed(const chatlink *l) { return l->dialer; }
int link_relayed(const chatlink *l) { return l->relayed; }
int link_is_up(const chatlink *l) { return l->state == LINK_UP; }
const char *link_addr(const chatlink *l) { return conn_peer(l->c); }

void link_close(chatlink *l) { link_step(l, EV_CLOSE, 0); }

/* ---- frames ---- */

static void auth_fail(chatlink *l, const char *code, const char *fmt, const char *arg) {
    snprintf(l->why, sizeof l->why, fmt, arg);
    conn_fail(l->c, code, l->why, 0);
}

static void on_key(void *data, int status, const ctl_user *u) {
    chatlink *l = data;
    if (l->state != LINK_VERIFY)
        return;
    if (status == UV_ENOENT || status == UV_EINVAL)
        return auth_fail(l, "not_found", "the tracker knows no user named %s", l->name);
    if (status)
        return auth_fail(l, "internal", "cannot verify the key of %s now: the tracker is "
                         "unreachable; try again later", l->name);
    if (sodium_memcmp(u->key, l->their_key, IDENT_PK) != 0)
        return auth_fail(l, "bad_signature", "the key sent for %s is not the one the tracker has",
                         l->name);
    link_step(l, EV_KEY, 0);
}

static void h_hello(chatlink *l, const msg_in *m) {
    uint64_t v;
    const char *name, *to;
    size_t nlen, tlen;
    const unsigned char *key, *nonce;
    const char *why;
    if (msg_uint(m, "v", &v))
        return conn_fail(l->c, "bad_message", "hello needs a uint v", 0);
    if (v != PROTO_VERSION) {
        char text[120];
        snprintf(text, sizeof text, "protocol version %llu is not supported; this peer speaks %d",
                 (unsigned long long)v, PROTO_VERSION);
        snprintf(l->why, sizeof l->why, "%s", text);
        return conn_fail(l->c, "version", text, 0);
    }
    if (msg_str(m, "role", &to, &tlen) || tlen != 4 || memcmp(to, "chat", 4) != 0)
        return conn_fail(l->c, "bad_message", "hello on a chat link needs role \"chat\"", 0);
    if (msg_str(m, "name", &name, &nlen) || msg_bin(m, "key", &key, IDENT_PK) ||
        msg_bin(m, "nonce", &nonce, IDENT_NONCE))
        return conn_fail(l->c, "bad_message", "hello needs name, key and nonce", 0);
    if (name_check(name, nlen, &why))
        return conn_fail(l->c, "bad_name", why, 0);
    int r = msg_str(m, "to", &to, &tlen);
    if (r == UV_EINVAL)
        return conn_fail(l->c, "bad_message", "hello field to must be a string", 0);
    if (r == 0) {
        char fold[NAME_BUFLEN];
        if (name_fold(to, tlen, fold) || strcmp(fold, l->ctx->user_fold) != 0)
            return auth_fail(l, "not_found", "this is %s, not the user you dialed", l->ctx->user);
    }
    char fold[NAME_BUFLEN];
    name_fold(name, nlen, fold);
    if (l->dialer) {
        if (strcmp(fold, l->fold) != 0)
            return auth_fail(l, "bad_signature", "the other side is not %s", l->name);
        if (sodium_memcmp(key, l->expect_key, IDENT_PK) != 0)
            return auth_fail(l, "bad_signature", "the key of %s is not the one the tracker has",
                             l->name);
    }
    memcpy(l->name, name, nlen);
    l->name[nlen] = '\0';
    strcpy(l->fold, fold);
    memcpy(l->their_key, key, IDENT_PK);
    memcpy(l->their_nonce, nonce, IDENT_NONCE);
    link_step(l, EV_HELLO, 0);
}

static void h_auth(chatlink *l, const msg_in *m) {
    const unsigned char *sig;
    if (msg_bin(m, "sig", &sig, IDENT_SIG))
        return conn_fail(l->c, "bad_message", "auth needs a 64-byte bin sig", 0);
    if (ident_verify_chat(l->their_key, l->my_nonce, l->name, strlen(l->name), sig))
        return auth_fail(l, "bad_signature", "the signature of %s does not verify", l->name);
    link_step(l, EV_AUTH, 0);
}

static void h_msg(chatlink *l, const msg_in *m) {
    uint64_t id;
    int64_t ts;
    const char *text;
    size_t n;
    if (msg_uint(m, "id", &id) || msg_int(m, "ts", &ts) || msg_str(m, "text", &text, &n))
        return conn_fail(l->c, "bad_message", "msg needs id (uint), ts (int) and text (str)", 0);
    if (n > CHAT_TEXT_MAX)
        return conn_fail(l->c, "bad_message", "msg text is longer than 4000 bytes", 0);
    if (l->state == LINK_BYE)
        return; /* not acked: the sender keeps it for a later conversation */
    if (l->h)
        l->h->msg(l, id, ts, text, n, l->data);
}

static void h_ack(chatlink *l, const msg_in *m) {
    uint64_t id;
    if (msg_uint(m, "id", &id))
        return conn_fail(l->c, "bad_message", "ack needs a uint id", 0);
    if (l->h)
        l->h->ack(l, id, l->data);
}

static void h_bye(chatlink *l, const msg_in *m) {
    if (l->state == LINK_BYE) { /* both said bye */
        conn_close(l->c, 0);
        return;
    }
    if (l->h)
        l->h->bye(l, l->data);
}

static void h_ping(chatlink *l, const msg_in *m) { send_simple(l, "pong"); }
static void h_pong(chatlink *l, const msg_in *m) {}

static void h_error(chatlink *l, const msg_in *m) {
    char code[32], text[300];
    msg_error_fields(m, code, sizeof code, text, sizeof text);
    log_info(&l->ctx->lg, "chat link %s (%s): the other side said: %s (%s)", conn_peer(l->c),
             l->name[0] ? l->name : "?", text, code);
    if (l->state < LINK_UP)
        snprintf(l->why, sizeof l->why, "%s said: %s (%s)", l->name[0] ? l->name : "the other side",
                 text[0] ? text : "no reason given", code);
    conn_close(l->c, UV_EPROTO);
}

/* Which frames each state accepts (bit per state). */
#define S(x) (1u << (x))
#define HANDSHAKE_STATES (S(LINK_HELLO) | S(LINK_AUTH) | S(LINK_VERIFY))
#define ANY_STATE (HANDSHAKE_STATES | S(LINK_UP) | S(LINK_BYE))
static const struct {
    const char *type;
    unsigned states;
    void (*fn)(chatlink *l, const msg_in *m);
} handlers[] = {
    {"hello", S(LINK_HELLO), h_hello},
    {"auth", S(LINK_AUTH), h_auth},
    {"msg", S(LINK_UP) | S(LINK_BYE), h_msg},
    {"ack", S(LINK_UP) | S(LINK_BYE), h_ack},
    {"bye", S(LINK_UP) | S(LINK_BYE), h_bye},
    {"ping", S(LINK_UP) | S(LINK_BYE), h_ping},
    {"pong", S(LINK_UP) | S(LINK_BYE), h_pong},
    {"error", ANY_STATE, h_error},
};

static void on_frame(conn *c, const char *payload, size_t len) {
    chatlink *l = conn_data(c);
    msg_in m;
    if (msg_parse(&m, payload, len)) {
        conn_fail(c, "bad_frame", "not a msgpack map with a string t", 0);
        return;
    }
    size_t i, n = sizeof handlers / sizeof *handlers;
    for (i = 0; i < n && strcmp(handlers[i].type, m.type) != 0; i++)
        ;
    if (i == n) {
        char text[64];
        snprintf(text, sizeof text, "unknown message type %s", m.type);
        conn_fail(c, "unknown_type", text, 0);
    } else if (!(handlers[i].states & S(l->state))) {
        char text[80];
        snprintf(text, sizeof text, "unexpected %s at this point of the chat link", m.type);
        conn_fail(c, "bad_message", text, 0);
    } else {
        handlers[i].fn(l, &m);
    }
    msg_in_free(&m);
}

/* ---- lifecycle ---- */

static void on_conn_closed(conn *c, int reason) {
    chatlink *l = conn_data(c);
    if (l->state == LINK_VERIFY)
        ctl_cancel(l->ctx->ctl, l);
    l->state = LINK_CLOSED;
    if (l->h)
        l->h->closed(l, reason, l->why[0] ? l->why : NULL, l->data);
    free(l);
}

static void on_connect(uv_connect_t *req, int status) {
    chatlink *l = req->data;
    if (status == UV_ECANCELED)
        return; /* closing: on_conn_closed reports */
    link_step(l, EV_CONNECTED, status);
}

/* The one transition function of a chat link. */
static void link_step(chatlink *l, enum link_event ev, int status) {
    if (l->state == LINK_CLOSED)
        return;
    switch (ev) {
    case EV_CONNECTED:
        if (l->state != LINK_CONNECTING)
            return;
        if (status == 0)
            status = conn_start(l->c);
        if (status) {
            conn_close(l->c, status);
            return;
        }
        l->state = LINK_HELLO;
        send_hello(l);
        return;
    case EV_HELLO:
        if (l->dialer) {
            l->state = LINK_AUTH;
            send_auth(l);
            return;
        }
        /* Hold further frames (their auth) until the key is checked. */
        l->state = LINK_VERIFY;
        conn_pause(l->c);
        if (ctl_lookup(l->ctx->ctl, l->name, 0, on_key, l)) {
            l->state = LINK_HELLO;
            conn_fail(l->c, "internal", "cannot look the key up", 0);
        }
        return;
    case EV_KEY:
        l->state = LINK_AUTH;
        send_auth(l);
        conn_resume(l->c); /* may deliver their auth right away */
        return;
    case EV_AUTH:
        l->state = LINK_UP;
        conn_set_timeout(l->c, 0);
        uv_tcp_keepalive(conn_tcp(l->c), 1, 30);
        log_info(&l->ctx->lg, "chat link with %s (%s) is up", l->name, conn_peer(l->c));
        if (l->h)
            l->h->up(l, l->data);
        return;
    case EV_BYE_SENT:
        l->state = LINK_BYE;
        conn_set_timeout(l->c, BYE_LINGER_MS);
        return;
    case EV_CLOSE:
        conn_close(l->c, 0);
        return;
    }
}

static chatlink *link_new(peer_ctx *ctx, const link_handler *h, void *data) {
    chatlink *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->ctx = ctx;
    l->h = h;
    l->data = data;
    randombytes_buf(l->my_nonce, IDENT_NONCE);
    l->c = conn_new(ctx->loop, FRAME_MAX_DEFAULT, &ctx->lg, on_frame, on_conn_closed, l);
    if (!l->c) {
        free(l);
        return NULL;
    }
    conn_set_timeout(l->c, HANDSHAKE_MS); /* covers connect and handshake */
    return l;
}

int link_dial(peer_ctx *ctx, const struct sockaddr *sa, const char *name,
              const unsigned char key[IDENT_PK], const link_handler *h, void *data,
              chatlink **out) {
    chatlink *l = link_new(ctx, h, data);
    if (!l)
        return UV_ENOMEM;
    l->dialer = 1;
    l->state = LINK_CONNECTING;
    snprintf(l->name, sizeof l->name, "%s", name);
    if (name_fold(name, strlen(name), l->fold))
        strcpy(l->fold, name);
    memcpy(l->expect_key, key, IDENT_PK);
    l->creq.data = l;
    int r = uv_tcp_connect(&l->creq, conn_tcp(l->c), sa, on_connect);
    if (r)
        conn_close(l->c, r); /* reported through closed, from the loop */
    *out = l;
    return 0;
}

static void orphan_frame(conn *c, const char *payload, size_t len) {}
static void orphan_closed(conn *c, int reason) {}

int link_adopt(peer_ctx *ctx, conn *c, int dialer, const char *name,
               const unsigned char key[IDENT_PK], const link_handler *h, void *data,
               chatlink **out) {
    chatlink *l = calloc(1, sizeof *l);
    if (!l) {
        conn_set_handlers(c, orphan_frame, orphan_closed, NULL);
        conn_close(c, UV_ENOMEM);
        return UV_ENOMEM;
    }
    l->ctx = ctx;
    l->h = h;
    l->data = data;
    l->c = c;
    l->relayed = 1;
    l->dialer = dialer;
    l->state = LINK_HELLO;
    randombytes_buf(l->my_nonce, IDENT_NONCE);
    if (dialer) {
        snprintf(l->name, sizeof l->name, "%s", name);
        if (name_fold(name, strlen(name), l->fold))
            strcpy(l->fold, name);
        memcpy(l->expect_key, key, IDENT_PK);
    }
    conn_set_handlers(c, on_frame, on_conn_closed, l);
    conn_set_timeout(c, HANDSHAKE_MS);
    send_hello(l);
    *out = l;
    return 0;
}

int link_accept(peer_ctx *ctx, uv_stream_t *server, const link_handler *h, void *data,
                chatlink **out) {
    chatlink *l = link_new(ctx, h, data);
    if (!l)
        return UV_ENOMEM;
    l->state = LINK_HELLO;
    int r = uv_accept(server, (uv_stream_t *)conn_tcp(l->c));
    if (r == 0)
        r = conn_start(l->c);
    if (r) {
        l->h = NULL;
        conn_close(l->c, r);
        return r;
    }
    send_hello(l);
    *out = l;
    return 0;
}
