/* link: the chat link handshake and message pump.  link_step is the one
 * transition function; frame handlers only parse, check and call it or the
 * handler.  A frame that breaks the protocol fails the link with an error
 * frame and never disturbs the rest of the peer.  The crypto is seal.c's;
 * this file decides when each step happens, and checks known_peers
 * (pins.c) before it authenticates itself to anyone. */
#include "link.h"

#include "chatport.h"
#include "conn.h"
#include "control.h"
#include "events.h"
#include "dispatch.h"
#include "frame.h"
#include "name.h"
#include "pins.h"
#include "seal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HANDSHAKE_MS 10000
#define BYE_LINGER_MS 2000
/* An ack waits up to ACK_DELAY_MS for another frame to ride with, as TCP's
 * delayed ack does: in a conversation the answer (or the next message)
 * carries it in the same write, and the other side wakes once, not twice.
 * At most ACK_HOLD wait; the one that fills the hold sends them all. */
#define ACK_DELAY_MS 5
#define ACK_HOLD 64
/* The most acks one msg may carry (docs/PROTOCOL.md, "msg"). */
#define MSG_ACKS_MAX 1024

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
    LINK_EV_CONNECTED, /* status: connect result */
    LINK_EV_HELLO,     /* their hello passed the checks */
    LINK_EV_KEY,       /* status: result of the acceptor's key check */
    LINK_EV_AUTH,      /* their auth verified */
    LINK_EV_BYE_SENT,
    LINK_EV_CLOSE,
};

struct chatlink {
    peer_ctx *ctx;
    conn *c;
    uv_connect_t creq;
    enum link_state state;
    int dialer;
    int undecided;   /* punched: the role follows the other side's hello */
    int acks_in_msg; /* their hello listed "acks": held acks ride inside our next msg */
    int relayed;     /* runs over a relay connection through the tracker */
    enum link_how how;
    const link_handler *h;
    void *data;
    char name[NAME_BUFLEN];
    char fold[NAME_BUFLEN];
    unsigned char expect_key[IDENT_PK]; /* dialer: the tracker's key for name */
    unsigned char their_key[IDENT_PK];
    unsigned char my_nonce[IDENT_NONCE];
    unsigned char their_nonce[IDENT_NONCE];
    unsigned char their_ekey[SEAL_EKEY];
    seal *sl;        /* session crypto; every frame after auth goes through it */
    char why[1200]; /* authentication failure, for the dialer's report */
    int key_retry;  /* the acceptor's fresh lookup was lost; asked the key cache */
    /* Keepalive of an up link: TCP alone notices a vanished partner (no
     * FIN: power, network or NAT state gone) only after many minutes, so
     * a link quiet for a third of --link-timeout sends a sealed ping, and
     * one that received nothing for all of it is closed (conn's timer). */
    uv_timer_t keep;
    int keep_init;    /* keep is initialised */
    uint64_t last_rx; /* loop time of the last frame received */
    uv_timer_t ack_due;  /* ACK_DELAY_MS after the first held ack */
    int ack_due_init;
    int timers;          /* initialised timers: l is freed once all closed */
    uint64_t acks[ACK_HOLD]; /* held acks, oldest first */
    size_t nacks;
};

static void link_step(chatlink *l, enum link_event ev, int status);

/* ---- sending ---- */

static int send_hello(chatlink *l) {
    peer_ctx *ctx = l->ctx;
    msg_out m;
    msg_out_init(&m, "hello", 7 + l->dialer);
    msg_put_uint(&m, "v", LINK_VERSION);
    msg_put_str(&m, "role", "chat");
    msg_put_str(&m, "name", ctx->user);
    msg_put_bin(&m, "key", ctx->id.pk, IDENT_PK);
    msg_put_bin(&m, "nonce", l->my_nonce, IDENT_NONCE);
    msg_put_bin(&m, "ekey", seal_ekey(l->sl), SEAL_EKEY);
    msg_put_key(&m, "features");
    msgpack_pack_array(&m.pk, 1);
    msg_pack_str(&m, "acks", 4);
    if (l->dialer)
        msg_put_str(&m, "to", l->name);
    return conn_send_msg(l->c, &m);
}

/* Both hellos are known: derive the session keys and send our auth. */
static int send_auth(chatlink *l) {
    peer_ctx *ctx = l->ctx;
    seal_party me = {ctx->user, strlen(ctx->user), ctx->id.pk, l->my_nonce, seal_ekey(l->sl)};
    seal_party them = {l->name, strlen(l->name), l->their_key, l->their_nonce, l->their_ekey};
    if (seal_derive(l->sl, l->dialer, l->dialer ? &me : &them, l->dialer ? &them : &me)) {
        conn_fail(l->c, "bad_message", "hello ekey is not a usable X25519 public key", 0);
        return UV_EPROTO;
    }
    unsigned char sig[IDENT_SIG];
    seal_sign(l->sl, &ctx->id, l->dialer, sig);
    msg_out m;
    msg_out_init(&m, "auth", 2);
    msg_put_bin(&m, "sig", sig, IDENT_SIG);
    msg_put_bin(&m, "header", seal_header(l->sl), SEAL_HEADER);
    return conn_send_msg(l->c, &m);
}

/* The largest inner map: a msg with its text and ACK_HOLD acks (9 bytes
 * each at most). */
#define INNER_MAX (CHAT_TEXT_MAX + 256 + 9 * ACK_HOLD)

/* Every message after auth: the inner msgpack map m (a msg_out, built in
 * its inline buffer for all but long texts), sealed into a stack buffer and
 * sent as the c of a {t:"sealed"} frame; an up link batches, so what one
 * loop pass sends (an echo's ack and its answer, a burst of acks) is one
 * write.  Takes m; the plaintext is erased. */
static int seal_send(chatlink *l, msg_out *m) {
    unsigned char *plain;
    size_t n;
    int r = msg_out_payload(m, INNER_MAX, &plain, &n);
    if (r) { /* cannot happen: texts are checked against CHAT_TEXT_MAX */
        msg_out_discard(m);
        return r;
    }
    unsigned char cipher[INNER_MAX + SEAL_ABYTES];
    r = seal_encrypt(l->sl, plain, n, cipher);
    msg_out_wipe(m);
    if (r)
        return r;
    msg_out out;
    msg_out_init(&out, "sealed", 1);
    msg_put_bin(&out, "c", cipher, n + SEAL_ABYTES);
    return conn_send_msg(l->c, &out);
}

/* The held acks, in the order their messages came, ahead of whatever is
 * sent next. */
static int flush_acks(chatlink *l) {
    size_t n = l->nacks;
    int r = 0;
    l->nacks = 0;
    if (l->ack_due_init)
        uv_timer_stop(&l->ack_due);
    for (size_t i = 0; i < n && r == 0; i++) {
        msg_out m;
        msg_out_init(&m, "ack", 1);
        msg_put_uint(&m, "id", l->acks[i]);
        r = seal_send(l, &m);
    }
    return r;
}

static void drop_acks(chatlink *l) {
    l->nacks = 0;
    if (l->ack_due_init)
        uv_timer_stop(&l->ack_due);
}

/* Every sealed frame but an ack: the held acks go first, in the same write. */
static int send_sealed(chatlink *l, msg_out *m) {
    if (l->nacks)
        flush_acks(l);
    return seal_send(l, m);
}

static void on_ack_due(uv_timer_t *t) {
    chatlink *l = t->data;
    if (l->state == LINK_UP)
        flush_acks(l);
}

int link_send_msg(chatlink *l, uint64_t id, int64_t ts, const char *text, size_t len) {
    if (l->state != LINK_UP)
        return UV_ENOTCONN;
    int carry = l->acks_in_msg && l->nacks > 0;
    msg_out m;
    msg_out_init(&m, "msg", 3 + carry);
    msg_put_uint(&m, "id", id);
    msg_put_int(&m, "ts", ts);
    msg_put_strn(&m, "text", text, len);
    if (!carry)
        return send_sealed(l, &m);
    /* The held acks inside it: one sealed frame, one AEAD, for both. */
    msg_put_key(&m, "acks");
    msgpack_pack_array(&m.pk, (uint32_t)l->nacks);
    for (size_t i = 0; i < l->nacks; i++)
        msgpack_pack_uint64(&m.pk, l->acks[i]);
    drop_acks(l);
    return seal_send(l, &m);
}

int link_send_ack(chatlink *l, uint64_t id) {
    if (l->state != LINK_UP)
        return UV_ENOTCONN;
    if (!l->ack_due_init) {
        int r = uv_timer_init(l->ctx->loop, &l->ack_due);
        if (r)
            return r;
        l->ack_due.data = l;
        l->ack_due_init = 1;
        l->timers++;
    }
    l->acks[l->nacks++] = id;
    if (l->nacks == ACK_HOLD)
        return flush_acks(l);
    if (l->nacks == 1)
        uv_timer_start(&l->ack_due, on_ack_due, ACK_DELAY_MS, 0);
    return 0;
}

int link_send_bye(chatlink *l) {
    if (l->state != LINK_UP)
        return UV_ENOTCONN;
    msg_out m;
    msg_out_init(&m, "bye", 0);
    int r = send_sealed(l, &m);
    link_step(l, LINK_EV_BYE_SENT, 0);
    return r;
}

static void send_simple(chatlink *l, const char *type) {
    msg_out m;
    msg_out_init(&m, type, 0);
    send_sealed(l, &m);
}

/* ---- accessors ---- */

void link_set_handler(chatlink *l, const link_handler *h, void *data) {
    l->h = h;
    l->data = data;
}
const char *link_name(const chatlink *l) { return l->name; }
const unsigned char *link_key(const chatlink *l) { return l->their_key; }
const char *link_fold(const chatlink *l) { return l->fold; }
int link_dialed(const chatlink *l) { return l->dialer; }
int link_relayed(const chatlink *l) { return l->relayed; }
enum link_how link_how(const chatlink *l) { return l->how; }
void link_set_how(chatlink *l, enum link_how how) { l->how = how; }
int link_is_up(const chatlink *l) { return l->state == LINK_UP; }
const char *link_addr(const chatlink *l) { return conn_peer(l->c); }
const struct sockaddr_storage *link_peer_sa(const chatlink *l) { return conn_peer_sa(l->c); }
void link_refuse(chatlink *l, const char *text) { conn_fail(l->c, "limit", text, 0); }

void link_close(chatlink *l) { link_step(l, LINK_EV_CLOSE, 0); }

void link_retire(chatlink *l, uint64_t linger_ms) {
    l->h = NULL;
    l->data = NULL;
    if (l->state != LINK_UP) {
        link_close(l);
        return;
    }
    /* As after our bye, without one: what still arrives is not acked (the
     * sender resends it on the link that replaces this one), and the
     * link closes when the other side closes it or after linger_ms. */
    l->state = LINK_BYE;
    drop_acks(l);
    if (l->keep_init)
        uv_timer_stop(&l->keep);
    conn_set_abort_idle(l->c, 0);
    conn_set_timeout(l->c, linger_ms);
}

/* ---- frames ---- */

static void auth_fail(chatlink *l, const char *code, const char *fmt, const char *arg) {
    snprintf(l->why, sizeof l->why, fmt, arg);
    conn_fail(l->c, code, l->why, 0);
}

/* known_peers: the key of l->name must be the pinned one, if any.  0 when
 * it may go on; else the link is failing and the user was told, loudly,
 * with both fingerprints and the way out. */
static int check_pin(chatlink *l) {
    unsigned char pinned[IDENT_PK];
    if (pins_get(l->ctx->pins, l->fold, pinned) != 0 ||
        sodium_memcmp(pinned, l->their_key, IDENT_PK) == 0)
        return 0;
    char was[32], now[32];
    ident_fingerprint(pinned, was);
    ident_fingerprint(l->their_key, now);
    snprintf(l->why, sizeof l->why,
             "the key of %s changed: known_peers pins %s, the link presents %s (the tracker "
             "vouches for it); refused. If %s really has a new key (compare /whois %s with "
             "them), accept it with /trust %s", l->name, was, now, l->name, l->name, l->name);
    if (pins_warn_due(l->ctx->pins, l->fold, uv_now(l->ctx->loop)))
        ev_error(l->ctx, "key_changed", "%s", l->why);
    log_warn(&l->ctx->lg, "chat link %s: %s", conn_peer(l->c), l->why);
    conn_fail(l->c, "key_changed", "your key is not the one this peer pinned for your name", 0);
    return -1;
}

/* The link is up: a first meeting pins the key. */
static void pin_first(chatlink *l) {
    unsigned char pinned[IDENT_PK];
    char err[300];
    if (!l->ctx->pins || pins_get(l->ctx->pins, l->fold, pinned) == 0)
        return;
    if (pins_set(l->ctx->pins, l->fold, l->their_key, err, sizeof err))
        ev_error(l->ctx, "pin_failed", "cannot pin the key of %s: %s; it stays pinned until you quit", l->name,
                 err);
}

static void on_key(void *data, int status, const ctl_user *u) {
    chatlink *l = data;
    if (l->state != LINK_VERIFY)
        return;
    if (status == UV_ECONNRESET && !l->key_retry) {
        /* The tracker went away with the question: the key last learned
         * answers it, as it would have had the tracker been down already. */
        l->key_retry = 1;
        if (ctl_lookup(l->ctx->ctl, l->name, 0, on_key, l) == 0)
            return;
    }
    if (status == UV_ENOENT || status == UV_EINVAL)
        return auth_fail(l, "not_found", "the tracker knows no user named %s", l->name);
    if (status)
        return auth_fail(l, "internal", "cannot verify the key of %s now: the tracker is "
                         "unreachable; try again later", l->name);
    if (sodium_memcmp(u->key, l->their_key, IDENT_PK) != 0)
        return auth_fail(l, "bad_signature", "the key sent for %s is not the one the tracker has",
                         l->name);
    if (check_pin(l) == 0)
        link_step(l, LINK_EV_KEY, 0);
}

static void h_hello(void *owner, const msg_in *m) {
    chatlink *l = owner;
    uint64_t v;
    const char *name, *to;
    size_t nlen, tlen;
    const unsigned char *key, *nonce, *ekey;
    const char *why;
    if (msg_uint(m, "v", &v))
        return conn_fail(l->c, "bad_message", "hello needs a uint v", 0);
    if (v != LINK_VERSION) {
        char text[160];
        snprintf(text, sizeof text, "chat link protocol version %llu is not supported; this peer "
                 "speaks %d (end-to-end encrypted); both sides need a current parley",
                 (unsigned long long)v, LINK_VERSION);
        snprintf(l->why, sizeof l->why, "%s", text);
        return conn_fail(l->c, "version", text, 0);
    }
    if (msg_str(m, "role", &to, &tlen) || tlen != 4 || memcmp(to, "chat", 4) != 0)
        return conn_fail(l->c, "bad_message", "hello on a chat link needs role \"chat\"", 0);
    if (msg_str(m, "name", &name, &nlen) || msg_bin(m, "key", &key, IDENT_PK) ||
        msg_bin(m, "nonce", &nonce, IDENT_NONCE) || msg_bin(m, "ekey", &ekey, SEAL_EKEY))
        return conn_fail(l->c, "bad_message", "hello needs name, key, nonce and ekey", 0);
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
    l->acks_in_msg = msg_has_feature(m, "acks");
    if (l->undecided) {
        /* Both sides connect()ed (a simultaneous open), or ours reached
         * their listener: a hello with "to" is a dialer's, so we accept;
         * one without is an acceptor's, so we are the dialer.  Either
         * way the hello must come from the user the tracker paired us
         * with. */
        if (strcmp(fold, l->fold) != 0)
            return auth_fail(l, "bad_signature", "the other side is not %s", l->name);
        l->undecided = 0;
        l->dialer = r != 0;
        if (send_hello(l))
            return;
    }
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
    memcpy(l->their_ekey, ekey, SEAL_EKEY);
    link_step(l, LINK_EV_HELLO, 0);
}

static void h_auth(void *owner, const msg_in *m) {
    chatlink *l = owner;
    const unsigned char *sig, *header;
    if (msg_bin(m, "sig", &sig, IDENT_SIG) || msg_bin(m, "header", &header, SEAL_HEADER))
        return conn_fail(l->c, "bad_message", "auth needs a 64-byte bin sig and a 24-byte bin "
                         "header", 0);
    if (seal_accept(l->sl, l->their_key, !l->dialer, sig, header))
        return auth_fail(l, "bad_signature", "the signature of %s does not verify", l->name);
    link_step(l, LINK_EV_AUTH, 0);
}

static void h_msg(void *owner, const msg_in *m) {
    chatlink *l = owner;
    uint64_t id;
    int64_t ts;
    const char *text;
    size_t n;
    const msgpack_object_array *acks = NULL;
    if (msg_uint(m, "id", &id) || msg_int(m, "ts", &ts) || msg_str(m, "text", &text, &n))
        return conn_fail(l->c, "bad_message", "msg needs id (uint), ts (int) and text (str)", 0);
    if (n > CHAT_TEXT_MAX)
        return conn_fail(l->c, "bad_message", "msg text is longer than 4000 bytes", 0);
    const msgpack_object *o;
    if (msg_get(m, "acks", &o) == 0) {
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > MSG_ACKS_MAX)
            return conn_fail(l->c, "bad_message", "msg acks must be an array of at most 1024 "
                             "uints", 0);
        acks = &o->via.array;
        for (uint32_t i = 0; i < acks->size; i++)
            if (acks->ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return conn_fail(l->c, "bad_message", "msg acks must be an array of at most "
                                 "1024 uints", 0);
    }
    /* Its acks first: they answer messages sent before it. */
    for (uint32_t i = 0; acks && i < acks->size && l->h && l->h->ack; i++)
        l->h->ack(l, acks->ptr[i].via.u64, l->data);
    if (l->state == LINK_BYE)
        return; /* not acked: the sender keeps it for a later conversation */
    if (l->h && l->h->msg)
        l->h->msg(l, id, ts, text, n, l->data);
}

static void h_ack(void *owner, const msg_in *m) {
    chatlink *l = owner;
    uint64_t id;
    if (msg_uint(m, "id", &id))
        return conn_fail(l->c, "bad_message", "ack needs a uint id", 0);
    if (l->h && l->h->ack)
        l->h->ack(l, id, l->data);
}

static void h_bye(void *owner, const msg_in *m) {
    chatlink *l = owner;
    if (l->state == LINK_BYE) { /* both said bye */
        conn_set_batching(l->c, 0); /* writes the acks of this pass */
        /* We close first, so a FIN would leave this 4-tuple in TIME_WAIT
         * for a minute, and a hole punch to the same peer needs exactly
         * it again.  Nothing is left to say; an ack lost to the reset
         * only means a resend that the other side drops. */
        conn_abort(l->c, 0);
        return;
    }
    if (l->h && l->h->bye)
        l->h->bye(l, l->data);
}

static void h_ping(void *owner, const msg_in *m) { send_simple(owner, "pong"); }
static void h_pong(void *owner, const msg_in *m) {}

static void h_error(void *owner, const msg_in *m) {
    chatlink *l = owner;
    char code[32], text[300];
    msg_error_fields(m, code, sizeof code, text, sizeof text);
    log_info(&l->ctx->lg, "chat link %s (%s): the other side said: %s (%s)", conn_peer(l->c),
             l->name[0] ? l->name : "?", text, code);
    if (l->state < LINK_UP)
        snprintf(l->why, sizeof l->why, "%s said: %s (%s)", l->name[0] ? l->name : "the other side",
                 text[0] ? text : "no reason given", code);
    conn_close(l->c, UV_EPROTO);
}

static const disp_table frames;

/* A sealed frame: open it and handle what it holds.  One that does not
 * authenticate (altered, replayed, reordered, dropped before it) ends the
 * link; nothing of it reaches the user but the warning.  The plaintext
 * goes to the stack (a chat message always fits) and is erased after. */
static void h_sealed(void *owner, const msg_in *m) {
    chatlink *l = owner;
    const msgpack_object *o;
    if (msg_get(m, "c", &o) || o->type != MSGPACK_OBJECT_BIN || o->via.bin.size < SEAL_ABYTES)
        return conn_fail(l->c, "bad_message", "sealed needs a bin c", 0);
    size_t n = o->via.bin.size, pn = 0;
    unsigned char small[INNER_MAX + SEAL_ABYTES];
    unsigned char *plain = n <= sizeof small ? small : malloc(n);
    if (!plain)
        return conn_fail(l->c, "internal", "out of memory", 0);
    if (seal_decrypt(l->sl, (const unsigned char *)o->via.bin.ptr, n, plain, &pn)) {
        if (plain != small)
            free(plain);
        ev_error(l->ctx, "link_tampered", "the link with %s failed authentication: a frame was altered, replayed "
                 "or reordered on the way; it was dropped unread and the link is closed (it is "
                 "set up again when you next send)", l->name);
        return conn_fail(l->c, "bad_seal", "a sealed frame did not authenticate", 0);
    }
    disp_frame(&frames, l, l->state, DISP_SEALED, (const char *)plain, pn);
    sodium_memzero(plain, pn);
    if (plain != small)
        free(plain);
}

static void refuse(void *owner, const disp_refusal *r) {
    chatlink *l = owner;
    conn_fail(l->c, r->code, r->text, 0);
}

/* Which frames each state accepts.  Inside a sealed frame only the chat
 * itself; hello, auth and error travel in the clear (error carries no
 * chat content). */
#define HANDSHAKE_STATES (DISP_IN(LINK_HELLO) | DISP_IN(LINK_AUTH) | DISP_IN(LINK_VERIFY))
#define CHAT_STATES (DISP_IN(LINK_UP) | DISP_IN(LINK_BYE))
static const disp_entry entries[] = {
    {"hello", DISP_IN(LINK_HELLO), 0, h_hello},
    {"auth", DISP_IN(LINK_AUTH), 0, h_auth},
    {"sealed", CHAT_STATES, 0, h_sealed},
    {"msg", CHAT_STATES, DISP_SEALED, h_msg},
    {"ack", CHAT_STATES, DISP_SEALED, h_ack},
    {"bye", CHAT_STATES, DISP_SEALED, h_bye},
    {"ping", CHAT_STATES, DISP_SEALED, h_ping},
    {"pong", CHAT_STATES, DISP_SEALED, h_pong},
    {"error", HANDSHAKE_STATES | CHAT_STATES, 0, h_error},
};
static const disp_table frames = DISP_TABLE(entries, "at this point of the chat link", NULL, refuse);

static void on_frame(conn *c, const char *payload, size_t len) {
    chatlink *l = conn_data(c);
    if (l->state == LINK_UP && l->keep_init) {
        l->last_rx = uv_now(l->ctx->loop);
        conn_set_timeout(l->c, l->ctx->link_timeout_ms); /* lazy: cheap per frame */
    }
    disp_frame(&frames, l, l->state, 0, payload, len);
}

/* ---- lifecycle ---- */

static void on_timer_closed(uv_handle_t *h) {
    chatlink *l = h->data;
    if (--l->timers == 0)
        free(l);
}

static void on_conn_closed(conn *c, int reason) {
    chatlink *l = conn_data(c);
    if (l->state == LINK_VERIFY)
        ctl_cancel(l->ctx->ctl, l);
    l->state = LINK_CLOSED;
    if (l->h && l->h->closed)
        l->h->closed(l, reason, l->why[0] ? l->why : NULL, l->data);
    seal_free(l->sl);
    l->sl = NULL;
    l->nacks = 0;
    if (l->timers == 0) {
        free(l);
        return;
    }
    if (l->keep_init) /* the last timer closed frees l */
        uv_close((uv_handle_t *)&l->keep, on_timer_closed);
    if (l->ack_due_init)
        uv_close((uv_handle_t *)&l->ack_due, on_timer_closed);
}

/* Every third of --link-timeout while up: a ping when nothing arrived for
 * that long (the answer, or any frame, moves conn's deadline on). */
static void on_keep(uv_timer_t *h) {
    chatlink *l = h->data;
    uint64_t period = l->ctx->link_timeout_ms / 3;
    if (l->state == LINK_UP && uv_now(l->ctx->loop) - l->last_rx >= period) {
        log_debug(&l->ctx->lg, "link quiet for %.1fs: keepalive ping to %s",
                  (double)(uv_now(l->ctx->loop) - l->last_rx) / 1000, l->name);
        send_simple(l, "ping");
    }
}

/* The link came up: arm the keepalive (nothing when --link-timeout is 0,
 * as in the fuzz harness). */
static void keep_start(chatlink *l) {
    uint64_t ms = l->ctx->link_timeout_ms;
    conn_set_timeout(l->c, ms);
    if (ms == 0 || uv_timer_init(l->ctx->loop, &l->keep))
        return;
    l->keep.data = l;
    l->keep_init = 1;
    l->timers++;
    l->last_rx = uv_now(l->ctx->loop);
    uv_timer_start(&l->keep, on_keep, ms / 3, ms / 3);
}

static void on_connect(uv_connect_t *req, int status) {
    chatlink *l = req->data;
    if (status == UV_ECANCELED)
        return; /* closing: on_conn_closed reports */
    link_step(l, LINK_EV_CONNECTED, status);
}

/* The one transition function of a chat link. */
static void link_step(chatlink *l, enum link_event ev, int status) {
    if (l->state == LINK_CLOSED)
        return;
    switch (ev) {
    case LINK_EV_CONNECTED:
        if (l->state != LINK_CONNECTING)
            return;
        if (status == 0)
            status = conn_start(l->c);
        if (status) {
            conn_close(l->c, status);
            return;
        }
        l->state = LINK_HELLO;
        if (!l->undecided) /* else ours answers theirs (h_hello) */
            send_hello(l);
        return;
    case LINK_EV_HELLO:
        if (l->dialer) {
            if (check_pin(l))
                return;
            l->state = LINK_AUTH;
            send_auth(l);
            return;
        }
        /* Hold further frames (their auth) until the key is checked.  The
         * tracker's current record decides (a fresh lookup; the key last
         * learned only while the tracker is unreachable), so a peer that
         * has run for days answers as one started a minute ago would. */
        l->state = LINK_VERIFY;
        conn_pause(l->c);
        if (ctl_lookup(l->ctx->ctl, l->name, 1, on_key, l)) {
            l->state = LINK_HELLO;
            conn_fail(l->c, "internal", "cannot look the key up", 0);
        }
        return;
    case LINK_EV_KEY:
        l->state = LINK_AUTH;
        if (send_auth(l) == 0)
            conn_resume(l->c); /* may deliver their auth right away */
        return;
    case LINK_EV_AUTH:
        l->state = LINK_UP;
        conn_set_batching(l->c, 1); /* fails only out of memory: then unbatched */
        keep_start(l);
        uv_tcp_keepalive(conn_tcp(l->c), 1, 30);
        pin_first(l);
        log_info(&l->ctx->lg, "chat link with %s (%s) is up", l->name, conn_peer(l->c));
        if (l->h && l->h->up)
            l->h->up(l, l->data);
        return;
    case LINK_EV_BYE_SENT:
        l->state = LINK_BYE;
        if (l->keep_init)
            uv_timer_stop(&l->keep);
        conn_set_abort_idle(l->c, 0); /* they may be alive, just not answering: FIN */
        conn_set_timeout(l->c, BYE_LINGER_MS);
        return;
    case LINK_EV_CLOSE:
        if (l->state == LINK_UP)
            flush_acks(l);
        conn_set_batching(l->c, 0); /* writes bye and acks of this pass first */
        conn_close(l->c, 0);
        return;
    }
}

static void orphan_frame(conn *c, const char *payload, size_t len) {}
static void orphan_closed(conn *c, int reason) {}

static chatlink *link_new(peer_ctx *ctx, const link_handler *h, void *data) {
    chatlink *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->ctx = ctx;
    l->h = h;
    l->data = data;
    randombytes_buf(l->my_nonce, IDENT_NONCE);
    l->sl = seal_new();
    l->c = l->sl ? conn_new(ctx->loop, FRAME_MAX_DEFAULT, &ctx->lg, on_frame, on_conn_closed, l)
                 : NULL;
    if (!l->c) {
        seal_free(l->sl);
        free(l);
        return NULL;
    }
    conn_set_timeout(l->c, HANDSHAKE_MS); /* covers connect and handshake */
    conn_set_abort_idle(l->c, 1);
    return l;
}

/* Connects to sa from the chat port (port_dial_socket).  fallback: when
 * that 4-tuple is busy (TIME_WAIT from an earlier link), start over from an
 * ephemeral port; a punch wants the chat port or nothing, since the NAT
 * maps only that one the way the tracker saw. */
static int dial_from_port(peer_ctx *ctx, const struct sockaddr *sa, const char *name,
                          const unsigned char key[IDENT_PK], const link_handler *h, void *data,
                          int fallback, chatlink **out) {
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
    int r = UV_EINVAL;
    uv_os_sock_t fd = port_dial_socket(ctx->port, sa->sa_family);
    if (fd >= 0 && uv_tcp_open(conn_tcp(l->c), fd) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0) {
        r = uv_tcp_connect(&l->creq, conn_tcp(l->c), sa, on_connect);
        /* The handle already holds the bound socket, so start over unbound. */
        if (fallback && (r == UV_EADDRNOTAVAIL || r == UV_EADDRINUSE)) {
            conn *fresh = conn_new(ctx->loop, FRAME_MAX_DEFAULT, &ctx->lg, on_frame,
                                   on_conn_closed, l);
            if (fresh) {
                conn_set_handlers(l->c, orphan_frame, orphan_closed, NULL);
                conn_close(l->c, r);
                l->c = fresh;
                conn_set_timeout(l->c, HANDSHAKE_MS);
                conn_set_abort_idle(l->c, 1);
                fd = -1;
            }
        }
    } else if (!fallback) {
        r = UV_EADDRNOTAVAIL; /* no chat port to leave from */
    }
    if (fd < 0 && fallback)
        r = uv_tcp_connect(&l->creq, conn_tcp(l->c), sa, on_connect);
    if (r)
        conn_close(l->c, r); /* reported through closed, from the loop */
    *out = l;
    return 0;
}

int link_dial(peer_ctx *ctx, const struct sockaddr *sa, const char *name,
              const unsigned char key[IDENT_PK], const link_handler *h, void *data,
              chatlink **out) {
    int r = dial_from_port(ctx, sa, name, key, h, data, 1, out);
    if (r == 0)
        (*out)->how = LINK_HOW_DIALED;
    return r;
}

int link_punch(peer_ctx *ctx, const struct sockaddr *sa, int dialer, const char *name,
               const unsigned char key[IDENT_PK], const link_handler *h, void *data,
               chatlink **out) {
    int r = dial_from_port(ctx, sa, name, key, h, data, 0, out);
    if (r == 0) {
        (*out)->how = LINK_HOW_PUNCHED;
        (*out)->undecided = !dialer;
    }
    return r;
}

int link_adopt(peer_ctx *ctx, conn *c, int dialer, const char *name,
               const unsigned char key[IDENT_PK], const link_handler *h, void *data,
               chatlink **out) {
    chatlink *l = calloc(1, sizeof *l);
    if (l && !(l->sl = seal_new())) {
        free(l);
        l = NULL;
    }
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
    l->how = LINK_HOW_RELAYED;
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
    l->how = LINK_HOW_ACCEPTED;
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
