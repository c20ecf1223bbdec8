/* reach: getting two users connected when a direct dial may not work.  A
 * reverse connection (connect_request: the tracker asks the target to dial
 * the sender, connect_failed: the target says it could not), a hole punch
 * (punch_request: both learn the other's public address and when to
 * connect, timed by their round trips to us), or a relay (relay_request
 * creates a session in relay.c, relay_join brings a relay connection into
 * it).  With a shared registry the target may be online at another
 * tracker: the request then goes there (remote.h), and a punch or relay
 * is set up at the target's home, which answers the requester. */
#include "handlers.h"
#include "addr.h"
#include "relay.h"
#include "remote.h"
#include "session.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define CONNECT_REASON_MAX 200 /* bytes of a connect_failed reason passed on */

void rch_request_unregistered(void *owner, const msg_in *m) {
    sess_request_unregistered(owner, m, "to", "register before asking to reach someone");
}

/* Whom a request is for: a session here, or a user online at another
 * tracker (o NULL; u read from the shared registry, u.home its tracker). */
typedef struct target {
    session *o;
    reg_user u;
    char folded[NAME_BUFLEN];
} target;

/* A request between its field checks and the moment its target is found:
 * what the rest of it needs, copied out of its frame (which may be freed
 * by then).  On the stack while the answer is at hand; a copy on the heap
 * while a shared registry is asked where the target is (find_target). */
typedef struct reach_req reach_req;
typedef void (*reach_go)(session *s, const reach_req *q, const target *t);
struct reach_req {
    session *s;
    reach_go go;
    uint64_t id;                /* the request's (0 is an id too) */
    int hint;                   /* connect_failed: nothing is answered */
    uint64_t tag;               /* connect_request, connect_failed: 0 none */
    char asked[NAME_BUFLEN];    /* "to" as sent */
    char reason[CONNECT_REASON_MAX + 1]; /* connect_failed's, cleaned */
    size_t rlen;
    target t;
};

/* Reads a request's id and "to" and checks the name: valid, not the
 * sender's own.  0 with q's id, asked and t.folded filled, or -1 after
 * answering the error. */
static int request_fields(session *s, const msg_in *m, reach_req *q) {
    const char *to;
    size_t tlen;
    if (sess_request(s, m, "to", &q->id, &to, &tlen))
        return -1;
    if (name_fold(to, tlen, q->t.folded)) {
        sess_send_error(s, "bad_name", "invalid name in to", q->id);
        return -1;
    }
    if (strcmp(q->t.folded, s->folded) == 0) {
        sess_send_error(s, "bad_name", "that is your own name; name someone else", q->id);
        return -1;
    }
    snprintf(q->asked, sizeof q->asked, "%.*s", (int)tlen, to); /* a valid name fits */
    return 0;
}

/* The registry said r about q's target, which has no session here: go on
 * when it is online at another tracker, else answer why not (a hint is
 * dropped). */
static void settle(session *s, const reach_req *q, int r) {
    char text[200];
    if (r == 0 && reg_elsewhere(s->ctx->reg, &q->t.u)) {
        q->go(s, q, &q->t);
        return;
    }
    if (q->hint)
        return;
    if (r && r != UV_ENOENT) {
        sess_send_db_error(s, r, q->id);
        return;
    }
    if (r == 0)
        snprintf(text, sizeof text, "%s is offline", q->t.u.name);
    else
        snprintf(text, sizeof text, "no user named %s", q->asked);
    sess_send_error(s, r == 0 ? "offline" : "not_found", text, q->id);
}

static void on_target(int status, void *arg) {
    reach_req *q = arg;
    session *s = q->s;
    if (sess_listening(s)) {
        /* It may have come online here while the registry was asked. */
        if ((q->t.o = namemap_get(s->ctx->online, q->t.folded)) != NULL)
            q->go(s, q, &q->t);
        else
            settle(s, q, status);
    }
    sess_release(s);
    free(q);
}

/* Runs go(s, q, target) when q's target (t.folded) is online here or at
 * another tracker: now, or for a target a shared registry must be asked
 * about, once it answered (the read joins the next batch; the loop does
 * not wait, and the answer may come after those of later requests: the
 * protocol matches answers by id).  Otherwise answers the error. */
static void find_target(session *s, reach_req *q, reach_go go) {
    tracker_ctx *ctx = s->ctx;
    q->s = s;
    q->go = go;
    if ((q->t.o = namemap_get(ctx->online, q->t.folded)) != NULL) {
        go(s, q, &q->t);
        return;
    }
    if (!reg_shared(ctx->reg)) { /* then nobody is online but here */
        if (!q->hint)
            settle(s, q, reg_lookup(ctx->reg, q->t.folded, &q->t.u));
        return;
    }
    reach_req *c = malloc(sizeof *c);
    if (!c) {
        if (!q->hint)
            sess_send_error(s, "internal", "the tracker is out of memory; try again later", q->id);
        return;
    }
    *c = *q;
    int r = reg_lookup_start(ctx->reg, c->t.folded, &c->t.u, on_target, c);
    if (r == REG_PENDING) {
        sess_hold(s);
        return;
    }
    settle(s, c, r);
    free(c);
}

/* Sends m to t: its session here, or through its home tracker (kind as in
 * remote.h).  0, or -1 after answering request id with the error. */
static int deliver(session *s, const target *t, const char *kind, msg_out *m, uint64_t id) {
    if (t->o) {
        sess_send_msg(t->o, m);
        return 0;
    }
    int e = rmt_send(s->ctx, t->u.home, kind, t->folded, m);
    if (e == 0)
        return 0;
    log_warn(&s->ctx->lg, "cannot pass %s's request on to the tracker of %s: %s", s->name,
             t->u.name, uv_strerror(e));
    sess_send_db_error(s, e, id);
    return -1;
}

/* Reverse connection: tell the target to dial the sender. */
static void connect_go(session *s, const reach_req *q, const target *t) {
    reg_user u;
    int e = sess_self_user(s, &u);
    if (e) {
        sess_send_db_error(s, e, q->id);
        return;
    }
    msg_out out;
    msg_out_init(&out, "connect_request", 4 + (q->tag != 0));
    msg_put_str(&out, "from", s->name);
    msg_put_bin(&out, "key", u.key, sizeof u.key);
    msg_put_key(&out, "endpoints");
    msgpack_pack_array(&out.pk, u.nendpoints);
    for (size_t i = 0; i < u.nendpoints; i++)
        msg_pack_str(&out, u.endpoints[i], strlen(u.endpoints[i]));
    msg_put_str(&out, "observed", s->observed);
    if (q->tag)
        msg_put_uint(&out, "tag", q->tag);
    if (deliver(s, t, RMT_PUSH, &out, q->id))
        return;
    msg_out_init(&out, "connect_result", 1);
    msg_put_uint(&out, "id", q->id);
    sess_send_msg(s, &out);
}

void rch_connect_request(void *owner, const msg_in *m) {
    session *s = owner;
    reach_req q = {0};
    if (request_fields(s, m, &q))
        return;
    if (msg_uint(m, "tag", &q.tag) == UV_EINVAL) {
        conn_fail(s->c, "bad_message", "connect_request field tag must be a uint", 0);
        return;
    }
    find_target(s, &q, connect_go);
}

/* 0, or UV_EPROTO after failing the connection with bad_message. */
static int connect_failed_fields(session *s, const msg_in *m, const char **to, size_t *tlen,
                                 const char **reason, size_t *rlen) {
    if (sess_str(s, m, "to", to, tlen) || sess_str(s, m, "reason", reason, rlen))
        return UV_EPROTO;
    return 0;
}

static void connect_failed_go(session *s, const reach_req *q, const target *t) {
    if (t->o && !t->o->hears_connect_failed)
        return; /* an older peer would close on a type it does not know (its home checks that too) */
    msg_out out;
    msg_out_init(&out, "connect_failed", 2 + (q->tag != 0));
    msg_put_str(&out, "from", s->name);
    msg_put_strn(&out, "reason", q->reason, q->rlen);
    if (q->tag)
        msg_put_uint(&out, "tag", q->tag);
    if (t->o)
        sess_send_msg(t->o, &out);
    else
        rmt_send(s->ctx, t->u.home, RMT_CONNECT_FAILED, t->folded, &out); /* a hint: lost is lost */
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
    reach_req q = {0};
    if (connect_failed_fields(s, m, &to, &tlen, &reason, &rlen))
        return;
    if (name_fold(to, tlen, q.t.folded) || strcmp(q.t.folded, s->folded) == 0)
        return;
    /* A hint for a log line, not a payload: printable UTF-8 only, cut on
     * a character boundary. */
    q.hint = 1;
    q.rlen = utf8_clean(reason, rlen, q.reason, sizeof q.reason);
    msg_uint(m, "tag", &q.tag); /* a hint: an odd tag is no tag */
    find_target(s, &q, connect_failed_go);
}

/* A hint has no id to answer, so the refusal closes. */
void rch_connect_failed_unregistered(void *owner, const msg_in *m) {
    session *s = owner;
    const char *to, *reason;
    size_t tlen, rlen;
    if (connect_failed_fields(s, m, &to, &tlen, &reason, &rlen) == 0)
        conn_fail(s->c, "not_registered", "register before answering a connect_request", 0);
}

/* Where the requester of a relay at another tracker joins it: --relay-addr,
 * or the address o's own control connection reached us at.  0 or an error. */
static int relay_addr(tracker_ctx *ctx, session *o, char out[ADDR_STRLEN]) {
    if (ctx->cfg.relay_addr) {
        snprintf(out, ADDR_STRLEN, "%s", ctx->cfg.relay_addr);
        return 0;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int e = uv_tcp_getsockname(conn_tcp(o->c), (struct sockaddr *)&ss, &len);
    return e ? e : addr_format((struct sockaddr *)&ss, out, ADDR_STRLEN);
}

/* Creates the session between from (at home, or here when home is NULL)
 * and o, and offers it to o.  0 with the token, or an error sent to the
 * requester (r: what rly_create said). */
static int relay_create(tracker_ctx *ctx, const char *from, const char *from_fold, session *o,
                        unsigned char token[IDENT_SESSION], char *why, size_t whylen) {
    int r = rly_create(ctx, from, from_fold, o->name, o->folded, token, why, whylen);
    if (r)
        return r;
    msg_out out;
    msg_out_init(&out, "relay_offer", 2);
    msg_put_str(&out, "from", from);
    msg_put_bin(&out, "session", token, IDENT_SESSION);
    sess_send_msg(o, &out);
    return 0;
}

/* The relay_result for request id; at: where to join, or NULL (here). */
static void relay_result(msg_out *out, uint64_t id, const unsigned char *token, const char *at) {
    msg_out_init(out, "relay_result", 2 + (at != NULL));
    msg_put_uint(out, "id", id);
    msg_put_bin(out, "session", token, IDENT_SESSION);
    if (at)
        msg_put_str(out, "relay", at);
}

/* Relay: create the session, give the sender its token, offer it to the
 * target; a target of another tracker gets it there (the relay meets at
 * the callee's home, which answers with where to join). */
static void relay_go(session *s, const reach_req *q, const target *t) {
    char why[300];
    unsigned char token[IDENT_SESSION];
    msg_out out;
    if (!t->o) {
        msg_out_init(&out, "relay_request", 2);
        msg_put_uint(&out, "id", q->id);
        msg_put_str(&out, "from", s->name);
        deliver(s, t, RMT_RELAY, &out, q->id);
        return;
    }
    int r = relay_create(s->ctx, s->name, s->folded, t->o, token, why, sizeof why);
    if (r) {
        sess_send_error(s, r == UV_ENOMEM ? "internal" : "limit", why, q->id);
        return;
    }
    relay_result(&out, q->id, token, NULL);
    sess_send_msg(s, &out);
}

void rch_relay_request(void *owner, const msg_in *m) {
    session *s = owner;
    reach_req q = {0};
    if (request_fields(s, m, &q) == 0)
        find_target(s, &q, relay_go);
}

void rch_relay_remote(tracker_ctx *ctx, session *o, const char *home, const msg_in *m) {
    uint64_t id;
    const char *from;
    size_t flen;
    char fold[NAME_BUFLEN], from_name[NAME_BUFLEN], why[300], at[ADDR_STRLEN];
    unsigned char token[IDENT_SESSION];
    if (msg_uint(m, "id", &id) || msg_str(m, "from", &from, &flen) || flen >= NAME_BUFLEN ||
        name_fold(from, flen, fold)) {
        log_warn(&ctx->lg, "ignoring a malformed relay_request from tracker %s", home);
        return;
    }
    memcpy(from_name, from, flen);
    from_name[flen] = '\0';
    if (!o) {
        snprintf(why, sizeof why, "the user went offline");
        rmt_send_error(ctx, home, fold, "offline", why, id);
        return;
    }
    int r = relay_addr(ctx, o, at);
    if (r == 0)
        r = relay_create(ctx, from_name, fold, o, token, why, sizeof why);
    else
        snprintf(why, sizeof why, "the tracker of %s cannot tell its own address", o->name);
    if (r) {
        rmt_send_error(ctx, home, fold, r == UV_EBUSY || r == UV_EAGAIN ? "limit" : "internal",
                       why, id);
        return;
    }
    msg_out out;
    relay_result(&out, id, token, at);
    if (rmt_send(ctx, home, RMT_PUSH, fold, &out))
        log_warn(&ctx->lg, "cannot answer %s's relay_request at tracker %s", from_name, home);
    log_info(&ctx->lg, "relay: %s (tracker %s) <-> %s, joining at %s", from_name, home, o->name,
             at);
}

/* A relay_join between its field checks and the key of its name: copied
 * out of the frame while a shared registry is asked for the key. */
typedef struct join_req {
    session *s;
    unsigned char token[IDENT_SESSION], key[IDENT_PK], sig[IDENT_SIG];
    char name[NAME_BUFLEN], fold[NAME_BUFLEN];
    size_t nlen;
    reg_user u;
} join_req;

/* The registry said r about j's name, whose record is j->u: checks the
 * signature and hands the connection to the relay.  0 once relay.c took
 * it over (s is freed), else -1 after failing the connection. */
static int join_checked(session *s, join_req *j, int r) {
    char text[300];
    if (r) {
        if (r == UV_ENOENT)
            snprintf(text, sizeof text, "no user named %s", j->name);
        else
            snprintf(text, sizeof text, "the tracker cannot check the key of %s now; try "
                     "again later", j->name);
        conn_fail(s->c, r == UV_ENOENT ? "not_found" : "internal", text, 0);
        return -1;
    }
    if (sodium_memcmp(j->u.key, j->key, IDENT_PK) != 0 ||
        ident_verify_relay(j->key, s->nonce, j->token, j->name, j->nlen, j->sig)) {
        conn_fail(s->c, "bad_signature", "relay_join is not signed by the key registered for "
                  "that name", 0);
        return -1;
    }
    r = rly_join(s->ctx, s->c, j->token, j->fold);
    if (r == UV_ENOENT) {
        conn_fail(s->c, "not_found", "no relay session has this token (it expired, was "
                  "never created, or has started)", 0);
        return -1;
    }
    if (r) {
        snprintf(text, sizeof text, "this relay session is not for %s, or that user joined it "
                 "already", j->u.name);
        conn_fail(s->c, "forbidden", text, 0);
        return -1;
    }
    sess_handover(s);
    return 0;
}

static void on_join_key(int status, void *arg) {
    join_req *j = arg;
    session *s = j->s;
    conn *c = s->c;
    if (c && !conn_closing(c)) {
        s->holds--; /* the close callback frees s from here on */
        if (join_checked(s, j, status) == 0)
            conn_resume(c); /* the relay's now: it takes what came after relay_join */
    } else {
        sess_release(s);
    }
    free(j);
}

/* A relay connection proves who it is; relay.c then takes it over.  The
 * key of a user online here is its session's; another's is read from the
 * registry (a shared one answers later: the connection is not read
 * meanwhile, so what follows relay_join waits for the relay). */
void rch_relay_join(void *owner, const msg_in *m) {
    session *s = owner;
    tracker_ctx *ctx = s->ctx;
    const unsigned char *token, *key, *sig;
    const char *name;
    size_t nlen;
    join_req j;
    if (sess_bin(s, m, "session", &token, IDENT_SESSION) || sess_str(s, m, "name", &name, &nlen) ||
        sess_bin(s, m, "key", &key, IDENT_PK) || sess_bin(s, m, "sig", &sig, IDENT_SIG))
        return;
    if (name_fold(name, nlen, j.fold)) {
        conn_fail(s->c, "bad_name", "relay_join carries an invalid name", 0);
        return;
    }
    j.s = s;
    memcpy(j.token, token, IDENT_SESSION);
    memcpy(j.key, key, IDENT_PK);
    memcpy(j.sig, sig, IDENT_SIG);
    memcpy(j.name, name, nlen); /* name_fold bounds it */
    j.name[nlen] = '\0';
    j.nlen = nlen;
    session *o = namemap_get(ctx->online, j.fold);
    if (o || !reg_shared(ctx->reg)) {
        join_checked(s, &j, o ? sess_self_user(o, &j.u) : reg_lookup(ctx->reg, j.fold, &j.u));
        return;
    }
    join_req *c = malloc(sizeof *c);
    if (!c) {
        conn_fail(s->c, "internal", "the tracker is out of memory; try again later", 0);
        return;
    }
    *c = j;
    int r = reg_lookup_start(ctx->reg, c->fold, &c->u, on_join_key, c);
    if (r == REG_PENDING) {
        sess_hold(s);
        conn_pause(s->c);
        return;
    }
    join_checked(s, c, r);
    free(c);
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
    int r = sess_self_user(s, u); /* s is online here: no registry read */
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

/* How long the side with round trip mine waits before its first try, so
 * that both first SYNs leave when the slower side (theirs) gets its
 * message: half the difference of the two round trips (0 when either is
 * unknown). */
static unsigned punch_delay(uint64_t mine, uint64_t theirs) {
    if (!mine || !theirs || mine >= theirs)
        return 0;
    uint64_t ms = (theirs - mine) / 2000;
    return ms > PUNCH_DELAY_MAX_MS ? PUNCH_DELAY_MAX_MS : (unsigned)ms;
}

/* The two messages of a punch: to o about from (its key, address and
 * round trip), and the answer to from's request id about o. */
static void punch_to(session *o, const char *from, const unsigned char *key, const char *addr,
                     uint64_t from_rtt) {
    msg_out out;
    msg_out_init(&out, "punch", 4);
    msg_put_str(&out, "from", from);
    msg_put_bin(&out, "key", key, IDENT_PK);
    msg_put_str(&out, "addr", addr);
    msg_put_uint(&out, "delay_ms", punch_delay(o->rtt_us, from_rtt));
    sess_send_msg(o, &out);
}

static void punch_result(msg_out *out, uint64_t id, const char *addr, unsigned delay_ms) {
    msg_out_init(out, "punch_result", 3);
    msg_put_uint(out, "id", id);
    msg_put_str(out, "addr", addr);
    msg_put_uint(out, "delay_ms", delay_ms);
}

static const char *punch_error_text(int r) {
    return r == UV_ENOENT ? "no listening port of the address family %s or %s connect from"
                          : "the tracker's database failed; try again later";
}

static void punch_go(session *s, const reach_req *q, const target *t) {
    char text[400], s_addr[ADDR_STRLEN], o_addr[ADDR_STRLEN];
    reg_user su, ou;
    session *o = t->o;
    msg_out out;
    if (!o) { /* its home checks that it punches and answers */
        int r = public_addr(s, &su, s_addr);
        if (r) {
            snprintf(text, sizeof text, punch_error_text(r), s->name, t->u.name);
            sess_send_error(s, r == UV_ENOENT ? "unsupported" : "internal", text, q->id);
            return;
        }
        msg_out_init(&out, "punch_request", 5);
        msg_put_uint(&out, "id", q->id);
        msg_put_str(&out, "from", s->name);
        msg_put_bin(&out, "key", su.key, sizeof su.key);
        msg_put_str(&out, "addr", s_addr);
        msg_put_uint(&out, "rtt_us", s->rtt_us);
        if (deliver(s, t, RMT_PUNCH, &out, q->id) == 0)
            rch_ping(s);
        return;
    }
    if (!o->hears_punch) {
        snprintf(text, sizeof text, "the peer of %s cannot punch (an older parley)", o->name);
        sess_send_error(s, "unsupported", text, q->id);
        return;
    }
    int r = public_addr(s, &su, s_addr);
    if (r == 0)
        r = public_addr(o, &ou, o_addr);
    if (r) {
        snprintf(text, sizeof text, punch_error_text(r), s->name, o->name);
        sess_send_error(s, r == UV_ENOENT ? "unsupported" : "internal", text, q->id);
        return;
    }
    punch_to(o, s->name, su.key, s_addr, s->rtt_us);
    punch_result(&out, q->id, o_addr, punch_delay(s->rtt_us, o->rtt_us));
    sess_send_msg(s, &out);
    log_info(&s->ctx->lg, "punch: %s (%s) <-> %s (%s)", s->name, s_addr, o->name, o_addr);
    rch_ping(s); /* fresh round trips for the next one */
    rch_ping(o);
}

/* Hole punch: tell the target where and when to connect to the sender,
 * and the sender the same about the target. */
void rch_punch_request(void *owner, const msg_in *m) {
    session *s = owner;
    reach_req q = {0};
    if (request_fields(s, m, &q) == 0)
        find_target(s, &q, punch_go);
}

/* The punch_request of a user of tracker home for o: o gets its punch
 * here, the requester its punch_result (or error) back at home.  The
 * requester hears later than o by the hop through PostgreSQL; the punch
 * retries cover that. */
void rch_punch_remote(tracker_ctx *ctx, session *o, const char *home, const msg_in *m) {
    uint64_t id, rtt = 0;
    const char *from, *addr;
    const unsigned char *key;
    size_t flen, alen;
    char fold[NAME_BUFLEN], from_name[NAME_BUFLEN], s_addr[ADDR_STRLEN], o_addr[ADDR_STRLEN];
    char text[400];
    reg_user ou;
    if (msg_uint(m, "id", &id) || msg_str(m, "from", &from, &flen) || flen >= NAME_BUFLEN ||
        name_fold(from, flen, fold) || msg_bin(m, "key", &key, IDENT_PK) ||
        msg_str(m, "addr", &addr, &alen) || alen >= ADDR_STRLEN) {
        log_warn(&ctx->lg, "ignoring a malformed punch_request from tracker %s", home);
        return;
    }
    msg_uint(m, "rtt_us", &rtt); /* unknown: 0 */
    memcpy(from_name, from, flen);
    from_name[flen] = '\0';
    memcpy(s_addr, addr, alen);
    s_addr[alen] = '\0';
    if (!o) {
        rmt_send_error(ctx, home, fold, "offline", "the user went offline", id);
        return;
    }
    if (!o->hears_punch) {
        snprintf(text, sizeof text, "the peer of %s cannot punch (an older parley)", o->name);
        rmt_send_error(ctx, home, fold, "unsupported", text, id);
        return;
    }
    int r = public_addr(o, &ou, o_addr);
    if (r) {
        snprintf(text, sizeof text, punch_error_text(r), from_name, o->name);
        rmt_send_error(ctx, home, fold, r == UV_ENOENT ? "unsupported" : "internal", text, id);
        return;
    }
    punch_to(o, from_name, key, s_addr, rtt);
    msg_out out;
    punch_result(&out, id, o_addr, punch_delay(rtt, o->rtt_us));
    if (rmt_send(ctx, home, RMT_PUSH, fold, &out))
        log_warn(&ctx->lg, "cannot answer %s's punch_request at tracker %s", from_name, home);
    log_info(&ctx->lg, "punch: %s (%s, tracker %s) <-> %s (%s)", from_name, s_addr, home,
             o->name, o_addr);
    rch_ping(o);
}
