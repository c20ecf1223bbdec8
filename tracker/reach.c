/* reach: getting two users connected when a direct dial may not work.  A
 * reverse connection (connect_request: the tracker asks the target to dial
 * the sender, connect_failed: the target says it could not), a hole punch
 * (punch_request: both learn the other's public address and when to
 * connect, timed by their round trips to us), or a relay (relay_request
 * creates a session in relay.c, relay_join brings a relay connection into
 * it). */
#include "handlers.h"
#include "addr.h"
#include "relay.h"
#include "session.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define CONNECT_REASON_MAX 200 /* bytes of a connect_failed reason passed on */

void rch_request_unregistered(void *owner, const msg_in *m) {
    sess_request_unregistered(owner, m, "to", "register before asking to reach someone");
}

/* Reads a request's id and "to" and checks the target: a valid name, not
 * the sender, known and online.  Returns the target's session, or NULL
 * after answering the error; *id gets the request's id. */
static session *request_target(session *s, const msg_in *m, uint64_t *id) {
    const char *to;
    size_t tlen;
    char text[200], fold[NAME_BUFLEN];
    if (sess_request(s, m, "to", id, &to, &tlen))
        return NULL;
    if (name_fold(to, tlen, fold)) {
        sess_send_error(s, "bad_name", "invalid name in to", *id);
        return NULL;
    }
    if (strcmp(fold, s->folded) == 0) {
        sess_send_error(s, "bad_name", "that is your own name; name someone else", *id);
        return NULL;
    }
    session *o = namemap_get(s->ctx->online, fold);
    if (!o) {
        reg_user u;
        int r = reg_lookup(s->ctx->reg, fold, &u);
        if (r == 0)
            snprintf(text, sizeof text, "%s is offline", u.name);
        else
            snprintf(text, sizeof text, "no user named %.*s", (int)tlen, to);
        sess_send_error(s, r == 0 ? "offline" : "not_found", text, *id);
        return NULL;
    }
    return o;
}

/* Reverse connection: tell the target to dial the sender. */
void rch_connect_request(void *owner, const msg_in *m) {
    session *s = owner;
    uint64_t id;
    session *o = request_target(s, m, &id);
    if (!o)
        return;
    reg_user u;
    if (reg_lookup(s->ctx->reg, s->folded, &u)) {
        sess_send_error(s, "internal", "the tracker's database failed; try again later", id);
        return;
    }
    uint64_t tag = 0;
    if (msg_uint(m, "tag", &tag) == UV_EINVAL) {
        conn_fail(s->c, "bad_message", "connect_request field tag must be a uint", 0);
        return;
    }
    msg_out out;
    msg_out_init(&out, "connect_request", 4 + (tag != 0));
    msg_put_str(&out, "from", s->name);
    msg_put_bin(&out, "key", u.key, sizeof u.key);
    msg_put_key(&out, "endpoints");
    msgpack_pack_array(&out.pk, u.nendpoints);
    for (size_t i = 0; i < u.nendpoints; i++)
        msg_pack_str(&out, u.endpoints[i], strlen(u.endpoints[i]));
    msg_put_str(&out, "observed", s->observed);
    if (tag)
        msg_put_uint(&out, "tag", tag);
    sess_send_msg(o, &out);
    msg_out_init(&out, "connect_result", 1);
    msg_put_uint(&out, "id", id);
    sess_send_msg(s, &out);
}

/* 0, or UV_EPROTO after failing the connection with bad_message. */
static int connect_failed_fields(session *s, const msg_in *m, const char **to, size_t *tlen,
                                 const char **reason, size_t *rlen) {
    if (sess_str(s, m, "to", to, tlen) || sess_str(s, m, "reason", reason, rlen))
        return UV_EPROTO;
    return 0;
}

/* The answer to a connect_request push: the reverse dial failed.  Passed
 * to "to" (the user who asked) so its dial moves on to the relay at once
 * instead of waiting out --relay-after.  A hint, so nothing is answered:
 * "to" offline or unknown is dropped; only malformed fields are errors.
 * "from" is the sender's registered name: nobody can speak for another. */
void rch_connect_failed(void *owner, const msg_in *m) {
    session *s = owner;
    const char *to, *reason;
    size_t tlen, rlen;
    char fold[NAME_BUFLEN];
    if (connect_failed_fields(s, m, &to, &tlen, &reason, &rlen))
        return;
    session *o;
    if (name_fold(to, tlen, fold) || strcmp(fold, s->folded) == 0 ||
        !(o = namemap_get(s->ctx->online, fold)) || !o->hears_connect_failed)
        return; /* an older peer would close on a type it does not know */
    /* A hint for a log line, not a payload: printable UTF-8 only, cut on
     * a character boundary. */
    char clean[CONNECT_REASON_MAX + 1];
    size_t clen = utf8_clean(reason, rlen, clean, sizeof clean);
    uint64_t tag = 0;
    msg_uint(m, "tag", &tag); /* a hint: an odd tag is no tag */
    msg_out out;
    msg_out_init(&out, "connect_failed", 2 + (tag != 0));
    msg_put_str(&out, "from", s->name);
    msg_put_strn(&out, "reason", clean, clen);
    if (tag)
        msg_put_uint(&out, "tag", tag);
    sess_send_msg(o, &out);
}

/* A hint has no id to answer, so the refusal closes. */
void rch_connect_failed_unregistered(void *owner, const msg_in *m) {
    session *s = owner;
    const char *to, *reason;
    size_t tlen, rlen;
    if (connect_failed_fields(s, m, &to, &tlen, &reason, &rlen) == 0)
        conn_fail(s->c, "not_registered", "register before answering a connect_request", 0);
}

/* Relay: create the session, give the sender its token, offer it to the
 * target. */
void rch_relay_request(void *owner, const msg_in *m) {
    session *s = owner;
    uint64_t id;
    char why[300];
    unsigned char token[IDENT_SESSION];
    session *o = request_target(s, m, &id);
    if (!o)
        return;
    int r = rly_create(s->ctx, s->name, s->folded, o->name, o->folded, token, why, sizeof why);
    if (r) {
        sess_send_error(s, r == UV_ENOMEM ? "internal" : "limit", why, id);
        return;
    }
    msg_out out;
    msg_out_init(&out, "relay_offer", 2);
    msg_put_str(&out, "from", s->name);
    msg_put_bin(&out, "session", token, sizeof token);
    sess_send_msg(o, &out);
    msg_out_init(&out, "relay_result", 2);
    msg_put_uint(&out, "id", id);
    msg_put_bin(&out, "session", token, sizeof token);
    sess_send_msg(s, &out);
}

/* A relay connection proves who it is; relay.c then takes it over. */
void rch_relay_join(void *owner, const msg_in *m) {
    session *s = owner;
    const unsigned char *token, *key, *sig;
    const char *name;
    size_t nlen;
    char fold[NAME_BUFLEN], text[300];
    if (sess_bin(s, m, "session", &token, IDENT_SESSION) || sess_str(s, m, "name", &name, &nlen) ||
        sess_bin(s, m, "key", &key, IDENT_PK) || sess_bin(s, m, "sig", &sig, IDENT_SIG))
        return;
    if (name_fold(name, nlen, fold)) {
        conn_fail(s->c, "bad_name", "relay_join carries an invalid name", 0);
        return;
    }
    reg_user u;
    int r = reg_lookup(s->ctx->reg, fold, &u);
    if (r) {
        snprintf(text, sizeof text, "no user named %.*s", (int)nlen, name);
        conn_fail(s->c, r == UV_ENOENT ? "not_found" : "internal", text, 0);
        return;
    }
    if (sodium_memcmp(u.key, key, IDENT_PK) != 0 ||
        ident_verify_relay(key, s->nonce, token, name, nlen, sig)) {
        conn_fail(s->c, "bad_signature", "relay_join is not signed by the key registered for "
                  "that name", 0);
        return;
    }
    r = rly_join(s->ctx, s->c, token, fold);
    if (r == UV_ENOENT) {
        conn_fail(s->c, "not_found", "no relay session has this token (it expired, was "
                  "never created, or has started)", 0);
        return;
    }
    if (r) {
        snprintf(text, sizeof text, "this relay session is not for %s, or that user joined it "
                 "already", u.name);
        conn_fail(s->c, "forbidden", text, 0);
        return;
    }
    sess_handover(s);
}

/* ---- hole punching ---- */

void rch_ping(session *s) {
    if (!s->hears_punch || s->ping_sent || !s->c)
        return;
    msg_out out;
    msg_out_init(&out, "ping", 0);
    s->ping_sent = uv_hrtime();
    sess_send_msg(s, &out);
}

/* The answer to our ping (a pong without one in flight only shows the peer
 * alive: admit saw to that). */
void rch_pong(void *owner, const msg_in *m) {
    session *s = owner;
    if (!s->ping_sent)
        return;
    s->rtt_us = (uv_hrtime() - s->ping_sent) / 1000;
    if (s->rtt_us == 0)
        s->rtt_us = 1;
    s->ping_sent = 0;
}

/* Where s can be reached through its NAT: the IP it connects to us from
 * with the port it listens on (the first advertised endpoint of that
 * family).  A port-preserving NAT maps the chat port, from which the peer
 * punches, to the same number.  0, or UV_ENOENT (no such endpoint),
 * another error from the registry. */
static int public_addr(session *s, reg_user *u, char out[ADDR_STRLEN]) {
    struct sockaddr_storage obs, ep;
    int r = reg_lookup(s->ctx->reg, s->folded, u);
    if (r)
        return r;
    if (addr_parse_numeric(s->observed, &obs))
        return UV_ENOENT;
    for (size_t i = 0; i < u->nendpoints; i++) {
        if (addr_parse_numeric(u->endpoints[i], &ep) || ep.ss_family != obs.ss_family)
            continue;
        addr_set_port(&obs, &ep);
        return addr_format((struct sockaddr *)&obs, out, ADDR_STRLEN) ? UV_ENOENT : 0;
    }
    return UV_ENOENT;
}

/* How long s waits before its first try, so that both first SYNs leave
 * when the slower side gets its message: half the difference of the two
 * round trips (0 when either is unknown). */
static unsigned punch_delay(const session *s, const session *o) {
    if (!s->rtt_us || !o->rtt_us || s->rtt_us >= o->rtt_us)
        return 0;
    uint64_t ms = (o->rtt_us - s->rtt_us) / 2000;
    return ms > PUNCH_DELAY_MAX_MS ? PUNCH_DELAY_MAX_MS : (unsigned)ms;
}

/* Hole punch: tell the target where and when to connect to the sender,
 * and the sender the same about the target. */
void rch_punch_request(void *owner, const msg_in *m) {
    session *s = owner;
    uint64_t id;
    char text[400], s_addr[ADDR_STRLEN], o_addr[ADDR_STRLEN];
    reg_user su, ou;
    session *o = request_target(s, m, &id);
    if (!o)
        return;
    if (!o->hears_punch) {
        snprintf(text, sizeof text, "the peer of %s cannot punch (an older parley)", o->name);
        sess_send_error(s, "unsupported", text, id);
        return;
    }
    int r = public_addr(s, &su, s_addr);
    if (r == 0)
        r = public_addr(o, &ou, o_addr);
    if (r) {
        snprintf(text, sizeof text, r == UV_ENOENT
                 ? "no listening port of the address family %s or %s connect from"
                 : "the tracker's database failed; try again later", s->name, o->name);
        sess_send_error(s, r == UV_ENOENT ? "unsupported" : "internal", text, id);
        return;
    }
    msg_out out;
    msg_out_init(&out, "punch", 4);
    msg_put_str(&out, "from", s->name);
    msg_put_bin(&out, "key", su.key, sizeof su.key);
    msg_put_str(&out, "addr", s_addr);
    msg_put_uint(&out, "delay_ms", punch_delay(o, s));
    sess_send_msg(o, &out);
    msg_out_init(&out, "punch_result", 3);
    msg_put_uint(&out, "id", id);
    msg_put_str(&out, "addr", o_addr);
    msg_put_uint(&out, "delay_ms", punch_delay(s, o));
    sess_send_msg(s, &out);
    log_info(&s->ctx->lg, "punch: %s (%s) <-> %s (%s)", s->name, s_addr, o->name, o_addr);
    rch_ping(s); /* fresh round trips for the next one */
    rch_ping(o);
}
