/* server: one session per control connection.  conn.c hands over whole
 * frames; on_frame parses them and dispatches through the handler table.
 * Registration goes through the registry's group commit and is answered
 * only from its callback, once the batch is on disk.  A session that closes
 * while its registration is in flight is kept until that callback, which
 * then frees it. */
#include "server.h"

#include "addr.h"
#include "conn.h"
#include "frame.h"
#include "grow.h"
#include "identity.h"
#include "msg.h"
#include "name.h"
#include "relay.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* hello -> ready -> registering -> registered, or hello -> relay (a relay
 * connection, handed to relay.c by relay_join); only sess_set moves it. */
typedef enum { SS_HELLO, SS_READY, SS_REGISTERING, SS_REGISTERED, SS_RELAY } sess_state;

static const char *const state_names[] = {"hello", "ready", "registering", "registered", "relay"};

typedef struct session {
    struct session *prev, *next; /* ctx->sessions */
    tracker_ctx *ctx;
    conn *c;                     /* NULL once the connection closed */
    sess_state state;
    unsigned char nonce[IDENT_NONCE];
    int hears_connect_failed;    /* its register listed the feature: it takes the push */
    char observed[ADDR_STRLEN];
    char name[NAME_BUFLEN];      /* as stored (first registered spelling) */
    char folded[NAME_BUFLEN];
    int64_t last_frame;          /* unix seconds */
    struct sockaddr_storage addr; /* the remote end, for the per-address limit */
    uint64_t tokens;             /* rate limit bucket, in thousandths of a frame */
    uint64_t refilled;           /* uv_now of the last refill */
    unsigned refused;            /* requests refused in a row */
} session;

typedef void (*handler_fn)(session *s, const msg_in *m);

static void sess_set(session *s, sess_state to) {
    log_debug(&s->ctx->lg, "%s: %s -> %s", s->observed, state_names[s->state], state_names[to]);
    s->state = to;
}

/* ---- sending ---- */

/* Queues buf (taken) and drops a client that stopped reading, so one slow
 * peer cannot make the tracker buffer without bound. */
/* A client that stops reading must not make the tracker hold its replies
 * forever: past the bound it is dropped. */
static void check_queue(session *s) {
    if (!conn_closing(s->c) && conn_queued(s->c) > TRACKER_MAX_QUEUED) {
        log_warn(&s->ctx->lg, "%s: dropping client %s: %zu bytes unread (it is not reading)",
                 s->observed, s->name[0] ? s->name : "(unregistered)", conn_queued(s->c));
        conn_close(s->c, UV_ENOBUFS);
    }
}

static void send_buf(session *s, char *buf, size_t len) {
    if (!s->c || conn_closing(s->c)) {
        free(buf);
        return;
    }
    conn_send(s->c, buf, len);
    check_queue(s);
}

static void send_msg(session *s, msg_out *m) {
    if (!s->c || conn_closing(s->c)) {
        msg_out_discard(m);
        return;
    }
    int r = conn_send_msg(s->c, m);
    if (r == UV_E2BIG || r == UV_ENOMEM) {
        log_error(&s->ctx->lg, "%s: cannot build a reply (%s)", s->observed, uv_strerror(r));
        conn_fail(s->c, "internal", "the tracker could not build its reply", 0);
        return;
    }
    check_queue(s);
}

/* An error that answers request id and leaves the connection open. */
static void send_error(session *s, const char *code, const char *text, uint64_t id) {
    char *buf;
    size_t len;
    if (msg_error_frame(code, text, id, &buf, &len) == 0)
        send_buf(s, buf, len);
}

static void bad_field(session *s, const char *type, const char *field, const char *want) {
    char text[160];
    snprintf(text, sizeof text, "%s needs field %s of type %s", type, field, want);
    s->ctx->stats.rejected[STAT_REJ_BAD_MESSAGE]++;
    conn_fail(s->c, "bad_message", text, 0);
}

typedef struct bcast {
    const session *except;
    const char *buf;
    size_t len;
} bcast;

static void bcast_one(void *sess, void *arg) {
    session *s = sess;
    const bcast *b = arg;
    if (s == b->except || s->state != SS_REGISTERED || !s->c || conn_closing(s->c))
        return;
    char *copy = malloc(b->len);
    if (!copy) {
        log_error(&s->ctx->lg, "out of memory pushing presence to %s", s->name);
        return;
    }
    memcpy(copy, b->buf, b->len);
    send_buf(s, copy, b->len);
}

/* Presence pushes wait for the end of the loop pass (the registry's batch
 * end): each registered session then gets the pass's pushes in one buffer
 * and one write, instead of one allocation and one syscall per push.  With
 * many registrations per batch that is the difference between seconds and
 * minutes to bring 10,000 users online (every push still reaches everyone:
 * O(online) frames per event, as the protocol has no subscriptions). */
typedef struct pres_ev {
    char folded[NAME_BUFLEN]; /* whom it is about: not sent to that user */
    size_t off, len;          /* the frame in pres_q.buf */
} pres_ev;

typedef struct pres_q {
    char *buf;
    size_t len, cap;
    pres_ev *ev;
    size_t n, evcap;
} pres_q;

static void pres_free(tracker_ctx *ctx) {
    if (!ctx->presence)
        return;
    free(ctx->presence->buf);
    free(ctx->presence->ev);
    free(ctx->presence);
    ctx->presence = NULL;
}

static void pres_send_one(void *sess, void *arg) {
    session *s = sess;
    const pres_q *q = arg;
    if (s->state != SS_REGISTERED || !s->c || conn_closing(s->c))
        return;
    size_t total = 0;
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->ev[i].folded, s->folded) != 0)
            total += q->ev[i].len;
    if (!total)
        return;
    char *out = malloc(total);
    if (!out) {
        log_error(&s->ctx->lg, "out of memory pushing presence to %s", s->name);
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->ev[i].folded, s->folded) != 0) {
            memcpy(out + o, q->buf + q->ev[i].off, q->ev[i].len);
            o += q->ev[i].len;
        }
    }
    send_buf(s, out, total);
}

/* The registry's batch-end hook: sends and empties the pass's pushes. */
static void pres_flush(void *arg) {
    tracker_ctx *ctx = arg;
    if (ctx->presence && ctx->presence->n && !ctx->stopping)
        namemap_each(ctx->online, pres_send_one, ctx->presence);
    pres_free(ctx);
}

/* Queues one framed push; 0, or UV_ENOMEM (the caller then sends at once). */
static int pres_queue(tracker_ctx *ctx, const char *folded, const char *buf, size_t len) {
    pres_q *q = ctx->presence;
    if (!q && !(q = ctx->presence = calloc(1, sizeof *q)))
        return UV_ENOMEM;
    char *nb = grow(q->buf, &q->cap, q->len + len, 1, 4096);
    if (!nb)
        return UV_ENOMEM;
    q->buf = nb;
    pres_ev *ne = grow(q->ev, &q->evcap, q->n + 1, sizeof *ne, 64);
    if (!ne)
        return UV_ENOMEM;
    q->ev = ne;
    pres_ev *e = &q->ev[q->n++];
    snprintf(e->folded, sizeof e->folded, "%s", folded);
    e->off = q->len;
    e->len = len;
    memcpy(q->buf + q->len, buf, len);
    q->len += len;
    return 0;
}

/* Tells every registered session but `except` that name came or went. */
static void push_presence(tracker_ctx *ctx, const session *except, const char *name, bool is_online) {
    msg_out m;
    msg_out_init(&m, "presence", 2);
    msg_put_str(&m, "name", name);
    msg_put_bool(&m, "online", is_online);
    char *buf;
    size_t len;
    if (msg_out_finish(&m, FRAME_MAX_DEFAULT, &buf, &len))
        return;
    if (pres_queue(ctx, except->folded, buf, len) == 0) {
        free(buf);
        return;
    }
    bcast b = {except, buf, len};
    namemap_each(ctx->online, bcast_one, &b);
    free(buf);
}

/* ---- handlers ---- */

static void on_hello(session *s, const msg_in *m) {
    if (s->state != SS_HELLO) {
        conn_fail(s->c, "bad_message", "hello was already sent on this connection", 0);
        return;
    }
    uint64_t v;
    if (msg_uint(m, "v", &v)) {
        bad_field(s, "hello", "v", "uint");
        return;
    }
    if (v != PROTO_VERSION) {
        char text[160];
        snprintf(text, sizeof text,
                 "protocol version %" PRIu64 " is not supported; this tracker speaks version %d, "
                 "use a matching client",
                 v, PROTO_VERSION);
        conn_fail(s->c, "version", text, 0);
        return;
    }
    const char *role;
    size_t rn;
    if (msg_str(m, "role", &role, &rn)) {
        bad_field(s, "hello", "role", "str");
        return;
    }
    int relay = rn == 5 && memcmp(role, "relay", 5) == 0;
    if (!relay && (rn != 4 || memcmp(role, "peer", 4) != 0)) {
        conn_fail(s->c, "bad_message", "hello role must be \"peer\" or \"relay\"", 0);
        return;
    }
    randombytes_buf(s->nonce, sizeof s->nonce);
    msg_out out;
    msg_out_init(&out, "welcome", 5);
    msg_put_uint(&out, "v", PROTO_VERSION);
    msg_put_bin(&out, "nonce", s->nonce, sizeof s->nonce);
    msg_put_str(&out, "observed", s->observed);
    msg_put_uint(&out, "ttl", s->ctx->cfg.ttl);
    msg_put_key(&out, "features"); /* messages newer than protocol 1 that we take */
    msgpack_pack_array(&out.pk, 1);
    msg_pack_str(&out, "connect_failed", 14);
    send_msg(s, &out);
    sess_set(s, relay ? SS_RELAY : SS_READY);
    if (relay) /* relay_join must follow as promptly as hello did */
        conn_set_timeout(s->c, TRACKER_HELLO_MS);
}

static void on_bound(int status, void *arg);

static void on_register(session *s, const msg_in *m) {
    tracker_ctx *ctx = s->ctx;
    if (s->state != SS_READY) {
        char text[512];
        snprintf(text, sizeof text,
                 "this connection already registered %s; open a new connection to register "
                 "another name", s->name);
        conn_fail(s->c, "already_registered", text, 0);
        return;
    }
    const char *name;
    size_t nlen;
    const unsigned char *key, *sig;
    const msgpack_object_array *eps;
    if (msg_str(m, "name", &name, &nlen)) {
        bad_field(s, "register", "name", "str");
        return;
    }
    if (msg_bin(m, "key", &key, IDENT_PK)) {
        bad_field(s, "register", "key", "bin (32 bytes)");
        return;
    }
    if (msg_bin(m, "sig", &sig, IDENT_SIG)) {
        bad_field(s, "register", "sig", "bin (64 bytes)");
        return;
    }
    s->hears_connect_failed = msg_has_feature(m, "connect_failed");
    if (msg_array(m, "endpoints", &eps)) {
        bad_field(s, "register", "endpoints", "[addr]");
        return;
    }
    if (eps->size > REG_MAX_ENDPOINTS) {
        char text[120];
        snprintf(text, sizeof text, "register carries %u endpoints; at most %d are allowed",
                 (unsigned)eps->size, REG_MAX_ENDPOINTS);
        conn_fail(s->c, "bad_message", text, 0);
        return;
    }
    char ep[REG_MAX_ENDPOINTS][ADDR_STRLEN];
    const char *epv[REG_MAX_ENDPOINTS];
    for (uint32_t i = 0; i < eps->size; i++) {
        struct sockaddr_storage ss;
        if (msg_obj_cstr(&eps->ptr[i], ep[i], sizeof ep[i]) || addr_parse_numeric(ep[i], &ss)) {
            char text[160];
            snprintf(text, sizeof text,
                     "register endpoint %u is not a numeric address HOST:PORT (like "
                     "192.0.2.1:4000 or [2001:db8::1]:4000)", (unsigned)i + 1);
            conn_fail(s->c, "bad_message", text, 0);
            return;
        }
        epv[i] = ep[i];
    }
    const char *why;
    char text[256];
    if (name_check(name, nlen, &why)) {
        snprintf(text, sizeof text,
                 "invalid name: %s; a name is 1 to 32 characters without spaces or control "
                 "characters", why);
        conn_fail(s->c, "bad_name", text, 0);
        return;
    }
    if (ident_verify_register(key, s->nonce, name, nlen, sig)) {
        conn_fail(s->c, "bad_signature",
                  "the signature does not verify with the given key over this connection's "
                  "nonce and the name", 0);
        return;
    }
    char cname[NAME_BUFLEN], folded[NAME_BUFLEN], stored[NAME_BUFLEN];
    memcpy(cname, name, nlen); /* name_check bounds nlen and excludes NUL */
    cname[nlen] = '\0';
    name_fold(cname, nlen, folded);
    int r = reg_bind(ctx->reg, cname, folded, key, epv, eps->size, (int64_t)time(NULL), stored,
                     on_bound, s);
    if (r == UV_EEXIST) {
        snprintf(text, sizeof text,
                 "the name %s is taken by another key; pick another name", cname);
        conn_fail(s->c, "name_taken", text, 0);
        return;
    }
    if (r) {
        conn_fail(s->c, "internal", "the tracker's database failed; try again later", 0);
        return;
    }
    snprintf(s->name, sizeof s->name, "%s", stored);
    snprintf(s->folded, sizeof s->folded, "%s", folded);
    sess_set(s, SS_REGISTERING);
}

/* The registration's batch committed (or failed): now it may be answered. */
/* reg_bind marked the name online in the same write; a bind whose session
 * is gone clears that again, unless a live session holds the name. */
static void unbind(session *s, int status) {
    tracker_ctx *ctx = s->ctx;
    if (status == 0 && !namemap_get(ctx->online, s->folded) &&
        reg_presence(ctx->reg, s->folded, 0, (int64_t)time(NULL)))
        log_warn(&ctx->lg, "could not record %s as offline in the database", s->name);
}

static void on_bound(int status, void *arg) {
    session *s = arg;
    tracker_ctx *ctx = s->ctx;
    if (!s->c) { /* closed while the batch was committing */
        unbind(s, status);
        free(s);
        return;
    }
    sess_set(s, SS_READY);
    if (conn_closing(s->c)) {
        unbind(s, status);
        return; /* failed meanwhile; the close callback frees it */
    }
    if (status) {
        conn_fail(s->c, "internal", "the tracker could not save the registration; try again later", 0);
        return;
    }
    session *old = namemap_get(ctx->online, s->folded);
    if (namemap_put(ctx->online, s->folded, s)) {
        unbind(s, status);
        conn_fail(s->c, "internal", "the tracker is out of memory; try again later", 0);
        return;
    }
    sess_set(s, SS_REGISTERED);
    ctx->stats.registrations++;
    if (old && old != s && old->c) {
        /* Same name, same key (reg_bind checked): the newer connection wins.
         * old no longer owns the table entry, so its close stays quiet. */
        char text[512];
        snprintf(text, sizeof text, "%s registered again from %s; this connection is replaced",
                 s->name, s->observed);
        conn_fail(old->c, "replaced", text, 0);
    }
    msg_out out; /* online = 1 was written by reg_bind, in the batch just committed */
    msg_out_init(&out, "registered", 2);
    msg_put_str(&out, "name", s->name);
    msg_put_str(&out, "observed", s->observed);
    send_msg(s, &out);
    if (!old)
        push_presence(ctx, s, s->name, true);
    log_info(&ctx->lg, "%s registered from %s%s (%zu online)", s->name, s->observed,
             old ? ", replacing its older connection" : "", namemap_count(ctx->online));
}

/* One list page, gathered before encoding because msgpack wants counts first. */
typedef struct page {
    char (*names)[NAME_BUFLEN];
    size_t n, limit, bytes;
    char last[NAME_BUFLEN];
} page;

/* Room for the frame's other fields: type, id, the array header, next. */
#define PAGE_BUDGET (FRAME_MAX_DEFAULT - 512)
#define CONNECT_REASON_MAX 200 /* bytes of a connect_failed reason passed on */

static int page_add(const char *name, const char *folded, void *arg) {
    page *p = arg;
    size_t len = strlen(name);
    if (len >= NAME_BUFLEN || p->bytes + len + 5 > PAGE_BUDGET)
        return 1;
    memcpy(p->names[p->n++], name, len + 1);
    p->bytes += len + 5;
    snprintf(p->last, sizeof p->last, "%s", folded);
    return 0;
}

static int get_id(session *s, const msg_in *m, const char *type, uint64_t *id) {
    if (msg_uint(m, "id", id) == 0)
        return 0;
    bad_field(s, type, "id", "uint");
    return -1;
}

static void on_list(session *s, const msg_in *m) {
    uint64_t id, limit = REG_LIMIT_DEFAULT;
    const char *prefix = "", *cursor = "";
    size_t pn = 0, cn = 0;
    if (get_id(s, m, "list", &id))
        return;
    int r = msg_str(m, "prefix", &prefix, &pn);
    if (r && r != UV_ENOENT){
        bad_field(s, "list", "prefix", "str");
        return;
    }
    r = msg_uint(m, "limit", &limit);
    if (r && r != UV_ENOENT){
        bad_field(s, "list", "limit", "uint");
        return;
    }
    r = msg_str(m, "cursor", &cursor, &cn);
    if (r && r != UV_ENOENT){
        bad_field(s, "list", "cursor", "str");
        return;
    }
    if (s->state != SS_REGISTERED) {
        send_error(s, "not_registered", "register before asking for the list", id);
        return;
    }
    if (cn >= NAME_BUFLEN || memchr(cursor, 0, cn)) {
        conn_fail(s->c, "bad_message", "list cursor is not one this tracker handed out", 0);
        return;
    }
    if (limit == 0 || limit > REG_LIMIT_MAX)
        limit = limit ? REG_LIMIT_MAX : 1;
    char fprefix[NAME_BUFLEN] = "", fcursor[NAME_BUFLEN];
    memcpy(fcursor, cursor, cn);
    fcursor[cn] = '\0';
    /* A prefix that is no valid name start matches nobody. */
    int none = pn > 0 && name_fold(prefix, pn, fprefix) != 0;
    page p = {0};
    p.limit = limit;
    p.names = malloc(limit * sizeof *p.names);
    if (!p.names) {
        send_error(s, "internal", "the tracker is out of memory; try again later", id);
        return;
    }
    int more = 0;
    r = none ? 0 : reg_list(s->ctx->reg, fprefix, fcursor, limit, page_add, &p, &more);
    if (r) {
        free(p.names);
        send_error(s, "internal", "the tracker's database failed; try again later", id);
        return;
    }
    more = more && p.n > 0;
    msg_out out;
    s->ctx->stats.lists++;
    msg_out_init(&out, "list_result", more ? 3 : 2);
    msg_put_uint(&out, "id", id);
    msg_put_key(&out, "users");
    msgpack_pack_array(&out.pk, p.n);
    for (size_t i = 0; i < p.n; i++)
        msg_pack_str(&out, p.names[i], strlen(p.names[i]));
    if (more)
        msg_put_str(&out, "next", p.last);
    free(p.names);
    send_msg(s, &out);
}

static void on_lookup(session *s, const msg_in *m) {
    tracker_ctx *ctx = s->ctx;
    uint64_t id;
    const char *name;
    size_t nlen;
    if (get_id(s, m, "lookup", &id))
        return;
    if (msg_str(m, "name", &name, &nlen)) {
        bad_field(s, "lookup", "name", "str");
        return;
    }
    if (s->state != SS_REGISTERED) {
        send_error(s, "not_registered", "register before looking users up", id);
        return;
    }
    const char *why;
    char text[256], folded[NAME_BUFLEN];
    if (name_fold(name, nlen, folded)) {
        name_check(name, nlen, &why);
        snprintf(text, sizeof text, "invalid name: %s", why);
        send_error(s, "bad_name", text, id);
        return;
    }
    reg_user u;
    int r = reg_lookup(ctx->reg, folded, &u);
    if (r == UV_ENOENT) {
        snprintf(text, sizeof text, "no user named %.*s", (int)nlen, name);
        send_error(s, "not_found", text, id);
        return;
    }
    if (r) {
        send_error(s, "internal", "the tracker's database failed; try again later", id);
        return;
    }
    session *o = namemap_get(ctx->online, folded);
    msg_out out;
    ctx->stats.lookups++;
    msg_out_init(&out, "lookup_result", o ? 7 : 6);
    msg_put_uint(&out, "id", id);
    msg_put_str(&out, "name", u.name);
    msg_put_bin(&out, "key", u.key, sizeof u.key);
    msg_put_bool(&out, "online", o != NULL);
    msg_put_key(&out, "endpoints");
    msgpack_pack_array(&out.pk, u.nendpoints);
    for (size_t i = 0; i < u.nendpoints; i++)
        msg_pack_str(&out, u.endpoints[i], strlen(u.endpoints[i]));
    if (o)
        msg_put_str(&out, "observed", o->observed);
    msg_put_int(&out, "last_seen", o ? o->last_frame : u.last_seen);
    send_msg(s, &out);
}

/* Checks a request's "to": registered sender, valid name, not the sender,
 * known and online.  Returns the target's session or NULL after answering
 * the error; *fold gets the folded name. */
static session *request_target(session *s, const msg_in *m, const char *type, uint64_t id,
                               char fold[NAME_BUFLEN]) {
    const char *to;
    size_t tlen;
    char text[200];
    if (msg_str(m, "to", &to, &tlen)) {
        bad_field(s, type, "to", "str");
        return NULL;
    }
    if (s->state != SS_REGISTERED) {
        send_error(s, "not_registered", "register before asking to reach someone", id);
        return NULL;
    }
    if (name_fold(to, tlen, fold)) {
        send_error(s, "bad_name", "invalid name in to", id);
        return NULL;
    }
    if (strcmp(fold, s->folded) == 0) {
        send_error(s, "bad_name", "that is your own name; name someone else", id);
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
        send_error(s, r == 0 ? "offline" : "not_found", text, id);
        return NULL;
    }
    return o;
}

/* Reverse connection: tell the target to dial the sender. */
static void on_connect_request(session *s, const msg_in *m) {
    uint64_t id;
    char fold[NAME_BUFLEN];
    if (get_id(s, m, "connect_request", &id))
        return;
    session *o = request_target(s, m, "connect_request", id, fold);
    if (!o)
        return;
    reg_user u;
    if (reg_lookup(s->ctx->reg, s->folded, &u)) {
        send_error(s, "internal", "the tracker's database failed; try again later", id);
        return;
    }
    msg_out out;
    msg_out_init(&out, "connect_request", 4);
    msg_put_str(&out, "from", s->name);
    msg_put_bin(&out, "key", u.key, sizeof u.key);
    msg_put_key(&out, "endpoints");
    msgpack_pack_array(&out.pk, u.nendpoints);
    for (size_t i = 0; i < u.nendpoints; i++)
        msg_pack_str(&out, u.endpoints[i], strlen(u.endpoints[i]));
    msg_put_str(&out, "observed", s->observed);
    send_msg(o, &out);
    msg_out_init(&out, "connect_result", 1);
    msg_put_uint(&out, "id", id);
    send_msg(s, &out);
}

/* The answer to a connect_request push: the reverse dial failed.  Passed
 * to "to" (the user who asked) so its dial moves on to the relay at once
 * instead of waiting out --relay-after.  A hint, so nothing is answered:
 * "to" offline or unknown is dropped; only malformed fields are errors.
 * "from" is the sender's registered name: nobody can speak for another. */
static void on_connect_failed(session *s, const msg_in *m) {
    const char *to, *reason;
    size_t tlen, rlen;
    char fold[NAME_BUFLEN];
    if (msg_str(m, "to", &to, &tlen)) {
        bad_field(s, "connect_failed", "to", "str");
        return;
    }
    if (msg_str(m, "reason", &reason, &rlen)) {
        bad_field(s, "connect_failed", "reason", "str");
        return;
    }
    if (s->state != SS_REGISTERED) {
        conn_fail(s->c, "not_registered", "register before answering a connect_request", 0);
        return;
    }
    session *o;
    if (name_fold(to, tlen, fold) || strcmp(fold, s->folded) == 0 ||
        !(o = namemap_get(s->ctx->online, fold)) || !o->hears_connect_failed)
        return; /* an older peer would close on a type it does not know */
    /* A hint for a log line, not a payload: printable UTF-8 only, cut on
     * a character boundary. */
    char clean[CONNECT_REASON_MAX + 1];
    size_t clen = utf8_clean(reason, rlen, clean, sizeof clean);
    msg_out out;
    msg_out_init(&out, "connect_failed", 2);
    msg_put_str(&out, "from", s->name);
    msg_put_strn(&out, "reason", clean, clen);
    send_msg(o, &out);
}

/* Relay: create the session, give the sender its token, offer it to the
 * target. */
static void on_relay_request(session *s, const msg_in *m) {
    uint64_t id;
    char fold[NAME_BUFLEN], why[300];
    unsigned char token[IDENT_SESSION];
    if (get_id(s, m, "relay_request", &id))
        return;
    session *o = request_target(s, m, "relay_request", id, fold);
    if (!o)
        return;
    int r = rly_create(s->ctx, s->name, s->folded, o->name, o->folded, token, why, sizeof why);
    if (r) {
        send_error(s, r == UV_ENOMEM ? "internal" : "limit", why, id);
        return;
    }
    msg_out out;
    msg_out_init(&out, "relay_offer", 2);
    msg_put_str(&out, "from", s->name);
    msg_put_bin(&out, "session", token, sizeof token);
    send_msg(o, &out);
    msg_out_init(&out, "relay_result", 2);
    msg_put_uint(&out, "id", id);
    msg_put_bin(&out, "session", token, sizeof token);
    send_msg(s, &out);
}

static void sess_unlink(session *s) {
    tracker_ctx *ctx = s->ctx;
    if (s->prev)
        s->prev->next = s->next;
    else
        ctx->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    ctx->nsessions--;
}

/* A relay connection proves who it is; relay.c then takes it over. */
static void on_relay_join(session *s, const msg_in *m) {
    const unsigned char *token, *key, *sig;
    const char *name;
    size_t nlen;
    char fold[NAME_BUFLEN], text[300];
    if (s->state != SS_RELAY) {
        conn_fail(s->c, "bad_message", "relay_join belongs on a relay connection (hello role "
                  "\"relay\")", 0);
        return;
    }
    if (msg_bin(m, "session", &token, IDENT_SESSION))
        return bad_field(s, "relay_join", "session", "bin (16 bytes)");
    if (msg_str(m, "name", &name, &nlen))
        return bad_field(s, "relay_join", "name", "str");
    if (msg_bin(m, "key", &key, IDENT_PK))
        return bad_field(s, "relay_join", "key", "bin (32 bytes)");
    if (msg_bin(m, "sig", &sig, IDENT_SIG))
        return bad_field(s, "relay_join", "sig", "bin (64 bytes)");
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
    /* relay.c owns the connection now; this session is done. */
    sess_unlink(s);
    free(s);
}

static void on_ping(session *s, const msg_in *m) {
    msg_out out;
    msg_out_init(&out, "pong", 0);
    send_msg(s, &out);
}

static void on_pong(session *s, const msg_in *m) {
    /* Nothing to do: every frame already re-armed the ttl. */
}

/* The client gave up on us; an error without id means it is closing. */
static void on_error(session *s, const msg_in *m) {
    char code[32], text[200];
    uint64_t id = 0;
    msg_error_fields(m, code, sizeof code, text, sizeof text);
    msg_uint(m, "id", &id);
    log_info(&s->ctx->lg, "%s: client reported error %s: %s", s->observed, code, text);
    if (!id)
        conn_close(s->c, UV_EPROTO);
}

static const struct {
    const char *type;
    handler_fn fn;
} handlers[] = {
    {"hello", on_hello}, {"register", on_register}, {"list", on_list}, {"lookup", on_lookup},
    {"ping", on_ping},   {"pong", on_pong},         {"error", on_error},
    {"connect_request", on_connect_request}, {"relay_request", on_relay_request},
    {"connect_failed", on_connect_failed},
    {"relay_join", on_relay_join},
};

/* Token bucket: rate_limit frames per second, rate_burst at once.  1 when
 * this frame may go on. */
static int rate_take(session *s) {
    const tracker_config *cfg = &s->ctx->cfg;
    if (!cfg->rate_limit)
        return 1;
    uint64_t now = uv_now(s->ctx->loop), cap = (uint64_t)cfg->rate_burst * 1000;
    s->tokens += (now - s->refilled) * cfg->rate_limit;
    s->refilled = now;
    if (s->tokens > cap)
        s->tokens = cap;
    if (s->tokens < 1000)
        return 0;
    s->tokens -= 1000;
    s->refused = 0;
    return 1;
}

/* Over the rate: a request (it has an id) is refused and the connection
 * stays open; any other frame, or a client that goes on sending a burst's
 * worth of refused requests, is closed. */
static void rate_refuse(session *s, const msg_in *m) {
    char text[200];
    uint64_t id;
    snprintf(text, sizeof text, "more than %u requests per second (burst %u); slow down",
             s->ctx->cfg.rate_limit, s->ctx->cfg.rate_burst);
    if (msg_uint(m, "id", &id) || id == 0 || ++s->refused > s->ctx->cfg.rate_burst) {
        conn_fail(s->c, "rate_limited", text, 0);
        return;
    }
    send_error(s, "rate_limited", text, id);
}

static void on_frame(conn *c, const char *payload, size_t len) {
    session *s = conn_data(c);
    msg_in m;
    if (msg_parse(&m, payload, len)) {
        s->ctx->stats.rejected[STAT_REJ_BAD_FRAME]++;
        conn_fail(c, "bad_frame", "frame is not one msgpack map with a string field t", 0);
        return;
    }
    s->last_frame = (int64_t)time(NULL);
    conn_set_timeout(c, (uint64_t)s->ctx->cfg.ttl * 1000);
    if (!rate_take(s)) {
        s->ctx->stats.rejected[STAT_REJ_RATE_LIMITED]++;
        rate_refuse(s, &m);
        msg_in_free(&m);
        return;
    }
    handler_fn fn = NULL;
    for (size_t i = 0; i < sizeof handlers / sizeof *handlers && !fn; i++)
        if (strcmp(handlers[i].type, m.type) == 0)
            fn = handlers[i].fn;
    if (!fn) {
        char text[80];
        char type[sizeof m.type];
        for (size_t i = 0; i < sizeof type; i++) /* never echo control bytes */
            type[i] = m.type[i] && ((unsigned char)m.type[i] < 0x20 || m.type[i] == 0x7f) ? '?' : m.type[i];
        snprintf(text, sizeof text, "unknown message type \"%s\"", type);
        s->ctx->stats.rejected[STAT_REJ_UNKNOWN_TYPE]++;
        conn_fail(c, "unknown_type", text, 0);
    } else if (s->state == SS_HELLO && fn != on_hello) {
        conn_fail(c, "bad_message", "the first frame must be hello", 0);
    } else if (s->state == SS_RELAY && fn != on_relay_join && fn != on_error) {
        conn_fail(c, "bad_message", "a relay connection sends relay_join after hello", 0);
    } else {
        fn(s, &m);
    }
    msg_in_free(&m);
}

static const char *close_reason(int reason) {
    switch (reason) {
    case 0: return "closed";
    case UV_EOF: return "disconnected";
    case UV_ETIMEDOUT: return "silent for too long";
    case UV_EPROTO: return "closed with an error";
    case UV_E2BIG: return "frame too big";
    case UV_ENOBUFS: return "not reading";
    default: return uv_strerror(reason);
    }
}

static void on_closed(conn *c, int reason) {
    session *s = conn_data(c);
    tracker_ctx *ctx = s->ctx;
    if (reason == UV_E2BIG)
        ctx->stats.rejected[STAT_REJ_TOO_BIG]++;
    sess_unlink(s);
    s->c = NULL;
    if (s->state == SS_REGISTERED && namemap_del(ctx->online, s->folded, s)) {
        if (reg_presence(ctx->reg, s->folded, 0, s->last_frame))
            log_warn(&ctx->lg, "could not record %s as offline in the database", s->name);
        if (!ctx->stopping)
            push_presence(ctx, s, s->name, false);
        log_info(&ctx->lg, "%s went offline (%s; %zu online)", s->name,
                 ctx->stopping ? "tracker shutting down" : close_reason(reason),
                 namemap_count(ctx->online));
    } else {
        log_debug(&ctx->lg, "%s: connection closed (%s)", s->observed, close_reason(reason));
    }
    if (s->state == SS_REGISTERING)
        return; /* on_bound still holds it and frees it */
    free(s);
}

static void on_rejected(uv_handle_t *h) {
    free(h);
}

/* Takes a connection we cannot serve off the backlog, so the listener keeps
 * accepting once memory is back. */
static void reject(uv_stream_t *listener, tracker_ctx *ctx) {
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t)
        return;
    uv_tcp_init(ctx->loop, t);
    uv_accept(listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_rejected);
}

/* The connection limits; 0 when s may stay, else it was failed with
 * "limit".  A linear scan: the global cap bounds it. */
static int over_limits(tracker_ctx *ctx, session *s) {
    char text[200];
    if (ctx->cfg.max_conns && ctx->nsessions > ctx->cfg.max_conns) {
        snprintf(text, sizeof text,
                 "the tracker is full (%u connections); try again later", ctx->cfg.max_conns);
        ctx->stats.refused[STAT_REFUSED_MAX_CONNS]++;
        conn_fail(s->c, "limit", text, 0);
        return 1;
    }
    if (!ctx->cfg.max_per_addr)
        return 0;
    unsigned n = 0;
    for (session *o = ctx->sessions; o; o = o->next)
        if (o != s && o->c && !conn_closing(o->c) && addr_same_host(&o->addr, &s->addr))
            n++;
    if (n < ctx->cfg.max_per_addr)
        return 0;
    snprintf(text, sizeof text,
             "too many connections from your address (at most %u); close some and retry",
             ctx->cfg.max_per_addr);
    ctx->stats.refused[STAT_REFUSED_PER_ADDR]++;
    conn_fail(s->c, "limit", text, 0);
    return 1;
}

void srv_on_connection(uv_stream_t *listener, int status) {
    tracker_ctx *ctx = listener->data;
    if (status < 0) {
        log_warn(&ctx->lg, "accepting a connection failed: %s", uv_strerror(status));
        return;
    }
    reg_on_batch_end(ctx->reg, pres_flush, ctx); /* idempotent; here so no other file must */
    session *s = calloc(1, sizeof *s);
    conn *c = s ? conn_new(ctx->loop, FRAME_MAX_DEFAULT, &ctx->lg, on_frame, on_closed, s) : NULL;
    if (!c) {
        log_error(&ctx->lg, "out of memory: refusing a connection");
        free(s);
        reject(listener, ctx);
        return;
    }
    s->ctx = ctx;
    s->c = c;
    s->last_frame = (int64_t)time(NULL);
    snprintf(s->observed, sizeof s->observed, "?");
    s->next = ctx->sessions;
    if (s->next)
        s->next->prev = s;
    ctx->sessions = s;
    ctx->nsessions++;
    int r = uv_accept(listener, (uv_stream_t *)conn_tcp(c));
    if (r == 0)
        r = conn_start(c);
    if (r) {
        log_warn(&ctx->lg, "accepting a connection failed: %s", uv_strerror(r));
        conn_close(c, r);
        return;
    }
    snprintf(s->observed, sizeof s->observed, "%s", conn_peer(c));
    memcpy(&s->addr, conn_peer_sa(c), sizeof s->addr);
    s->tokens = (uint64_t)ctx->cfg.rate_burst * 1000;
    s->refilled = uv_now(ctx->loop);
    if (over_limits(ctx, s))
        return;
    conn_set_timeout(c, TRACKER_HELLO_MS);
    log_debug(&ctx->lg, "%s: connected (%zu connections)", s->observed, ctx->nsessions);
}

void srv_stop(tracker_ctx *ctx) {
    rly_stop(ctx);
    /* Not conn_fail: that logs a line per client and may wait 2 s on each
     * slow one.  The error goes out now if the socket has room, and the
     * close drops whatever does not fit. */
    for (session *s = ctx->sessions; s; s = s->next) {
        if (!s->c || conn_closing(s->c))
            continue;
        send_error(s, "shutdown", "the tracker is shutting down; reconnect later", 0);
        if (s->c)
            conn_close(s->c, 0);
    }
}
