/* registration: hello and register.  A register's signature is checked
 * on a verify thread (verifier.h; --verify-threads 0: in the loop), then
 * the binding goes through the registry's group commit and is answered
 * only from its callback, once the batch is on disk; then what waits in
 * the mailbox follows (mail.c).  A session that closes while its
 * registration is in flight (its signature or its batch) is kept in
 * SS_REGISTERING until that callback, which then frees it.  A name not
 * bound yet is held to the look-alike rules first (confusable.h): its
 * skeleton against the names of other keys, then its scripts. */
#include "confusable.h"
#include "handlers.h"
#include "mail.h"
#include "presence.h"
#include "session.h"
#include "verifier.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rgn_hello(void *owner, const msg_in *m) {
    session *s = owner;
    uint64_t v;
    if (sess_uint(s, m, "v", &v))
        return;
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
    if (sess_str(s, m, "role", &role, &rn))
        return;
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
    msgpack_pack_array(&out.pk, 4);
    msg_pack_str(&out, "connect_failed", 14);
    msg_pack_str(&out, "mailbox", 7);
    msg_pack_str(&out, "punch", 5);
    msg_pack_str(&out, "subscribe", 9);
    sess_send_msg(s, &out);
    sess_set(s, relay ? SS_RELAY : SS_READY);
    if (relay) /* relay_join must follow as promptly as hello did */
        conn_set_timeout(s->c, TRACKER_HELLO_MS);
}

/* reg_bind marked the name online in the same write; a bind whose session
 * is gone clears that again, unless a live session holds the name. */
static void unbind(session *s, int status) {
    tracker_ctx *ctx = s->ctx;
    if (status == 0 && !namemap_get(ctx->online, s->folded) &&
        reg_presence(ctx->reg, s->folded, 0, (int64_t)time(NULL)))
        log_warn(&ctx->lg, "could not record %s as offline in the database", s->name);
}

/* A register of the shared registry between its claim and the answer
 * (reg_claim), and what it needs for a refusal. */
typedef struct claim {
    session *s;
    char name[NAME_BUFLEN];   /* as asked for */
    char stored[NAME_BUFLEN]; /* as bound, or the look-alike */
} claim;

static void refuse_new_name(session *s, const char *name, int verdict, const char *other);

/* The registration's batch committed (or failed): now it may be answered.
 * c is the shared registry's claim (NULL on SQLite). */
static void bound(session *s, int status, const claim *c) {
    tracker_ctx *ctx = s->ctx;
    if (!s->c) { /* closed while the batch was committing */
        unbind(s, status);
        sess_free(s);
        return;
    }
    sess_set(s, SS_READY);
    if (conn_closing(s->c)) {
        unbind(s, status);
        return; /* failed meanwhile; the close callback frees it */
    }
    if (c && (status == REG_ECONFUSABLE || status == REG_EBADNAME)) {
        refuse_new_name(s, c->name, status, c->stored);
        return;
    }
    if (status == UV_EEXIST) { /* another tracker on the shared registry bound it first */
        char text[512];
        snprintf(text, sizeof text, "the name %s is taken by another key; pick another name",
                 s->name);
        conn_fail(s->c, "name_taken", text, 0);
        return;
    }
    if (status == REG_EUNAVAIL) {
        conn_fail(s->c, "db_unavailable", DB_UNAVAILABLE_TEXT, 0);
        return;
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
    pres_registered(s);
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
    sess_send_msg(s, &out);
    if (!old)
        pres_push(ctx, s, s->name, true);
    log_info(&ctx->lg, "%s registered from %s%s (%zu online)", s->name, s->observed,
             old ? ", replacing its older connection" : "", namemap_count(ctx->online));
    mail_registered(s); /* what waited for it, after its registered */
    rch_ping(s);        /* a round trip to time its punches by */
}

static void on_bound(int status, void *arg) { bound(arg, status, NULL); }

static void on_claimed(int status, void *arg) {
    claim *c = arg;
    if (status == 0)
        snprintf(c->s->name, sizeof c->s->name, "%s", c->stored);
    bound(c->s, status, c);
    free(c);
}

/* The endpoints of a register, each a numeric HOST:PORT, copied into ep.
 * 0, or UV_EPROTO after failing the connection. */
static int read_endpoints(session *s, const msgpack_object_array *eps,
                          char ep[REG_MAX_ENDPOINTS][ADDR_STRLEN], const char *epv[]) {
    if (eps->size > REG_MAX_ENDPOINTS) {
        char text[120];
        snprintf(text, sizeof text, "register carries %u endpoints; at most %d are allowed",
                 (unsigned)eps->size, REG_MAX_ENDPOINTS);
        conn_fail(s->c, "bad_message", text, 0);
        return UV_EPROTO;
    }
    for (uint32_t i = 0; i < eps->size; i++) {
        struct sockaddr_storage ss;
        if (msg_obj_cstr(&eps->ptr[i], ep[i], sizeof ep[i]) || addr_parse_numeric(ep[i], &ss)) {
            char text[160];
            snprintf(text, sizeof text,
                     "register endpoint %u is not a numeric address HOST:PORT (like "
                     "192.0.2.1:4000 or [2001:db8::1]:4000)", (unsigned)i + 1);
            conn_fail(s->c, "bad_message", text, 0);
            return UV_EPROTO;
        }
        epv[i] = ep[i];
    }
    return 0;
}

/* Fails the connection of a register whose new name the rules refuse:
 * verdict REG_ECONFUSABLE (it looks like other, a name of another key),
 * REG_EBADNAME (its scripts: the reason is conf_check's), REG_EUNAVAIL, or
 * another error. */
static void refuse_new_name(session *s, const char *name, int verdict, const char *other) {
    char text[640];
    const char *why;
    if (verdict == REG_EBADNAME && conf_check(name, strlen(name), &why) != UV_EINVAL)
        verdict = UV_EIO; /* the check itself failed */
    if (verdict == REG_ECONFUSABLE) {
        snprintf(text, sizeof text,
                 "the name %s looks like %s, a name another key holds; pick a name that "
                 "does not look like an existing one", name, other);
        conn_fail(s->c, "name_confusable", text, 0);
    } else if (verdict == REG_EBADNAME) {
        snprintf(text, sizeof text, "invalid name %s: %s; pick another name", name, why);
        conn_fail(s->c, "bad_name", text, 0);
    } else if (verdict == REG_EUNAVAIL) {
        conn_fail(s->c, "db_unavailable", DB_UNAVAILABLE_TEXT, 0);
    } else {
        conn_fail(s->c, "internal", "the tracker could not check the name; try again later", 0);
    }
}

/* A name nobody holds yet in SQLite (names bound before these rules keep
 * working for their key): whether it looks like a name of another key
 * (name_confusable, which says which: the likelier mistake, so it comes
 * first), then its scripts (bad_name).  1 after failing the connection,
 * else 0.  A shared registry makes the same checks in its claim. */
static int new_name_refused(session *s, const char *name, size_t len, const char *folded,
                            const unsigned char key[IDENT_PK]) {
    const char *why;
    char other[NAME_BUFLEN];
    int r = reg_lookalike(s->ctx->reg, folded, key, other);
    if (r == 0)
        r = REG_ECONFUSABLE;
    else if (r == UV_ENOENT && (r = conf_check(name, len, &why)) == UV_EINVAL)
        r = REG_EBADNAME;
    if (r && r != UV_ENOENT) {
        refuse_new_name(s, name, r, other);
        return 1;
    }
    return 0;
}

/* A register between its field checks and its signature's verdict: what
 * the rest of it needs, copied out of the frame (freed by then). */
typedef struct pending {
    vfy_job job; /* key, nonce, sig and name */
    session *s;
    char ep[REG_MAX_ENDPOINTS][ADDR_STRLEN];
    uint32_t neps;
} pending;

/* bind_signed on the shared registry: one statement decides, answered in
 * on_claimed. */
static void claim_name(session *s, const pending *p, const char *cname, size_t nlen,
                       const char *folded, const char *const *epv) {
    const char *why;
    claim *c = malloc(sizeof *c);
    if (!c) {
        conn_fail(s->c, "internal", "the tracker is out of memory; try again later", 0);
        return;
    }
    c->s = s;
    snprintf(c->name, sizeof c->name, "%s", cname);
    int ok = conf_check(cname, nlen, &why) == 0; /* only a new name is held to it */
    int r = reg_claim(s->ctx->reg, cname, folded, p->job.pk, epv, p->neps, (int64_t)time(NULL),
                      ok, c->stored, on_claimed, c);
    if (r) {
        free(c);
        conn_fail(s->c, r == REG_EUNAVAIL ? "db_unavailable" : "internal",
                  r == REG_EUNAVAIL ? DB_UNAVAILABLE_TEXT
                                    : "the tracker's database failed; try again later", 0);
        return;
    }
    snprintf(s->name, sizeof s->name, "%s", cname);
    snprintf(s->folded, sizeof s->folded, "%s", folded);
    sess_set(s, SS_REGISTERING);
}

/* The signature is checked (verified 0 when it holds): the name's rules,
 * then the binding. */
static void bind_signed(session *s, const pending *p, int verified) {
    tracker_ctx *ctx = s->ctx;
    char text[640];
    if (verified == UV_ECANCELED) {
        conn_fail(s->c, "shutdown", "the tracker is shutting down; reconnect later", 0);
        return;
    }
    if (verified) {
        conn_fail(s->c, "bad_signature",
                  "the signature does not verify with the given key over this connection's "
                  "nonce and the name", 0);
        return;
    }
    const char *cname = p->job.name, *epv[REG_MAX_ENDPOINTS];
    const unsigned char *key = p->job.pk;
    size_t nlen = p->job.nlen;
    for (uint32_t i = 0; i < p->neps; i++)
        epv[i] = p->ep[i];
    /* Kept from here: once bound, this is the record of a user online here. */
    if (sess_set_self(s, key, epv, p->neps)) {
        conn_fail(s->c, "internal", "the tracker is out of memory; try again later", 0);
        return;
    }
    char folded[NAME_BUFLEN], stored[NAME_BUFLEN];
    name_fold(cname, nlen, folded);
    if (reg_shared(ctx->reg)) {
        claim_name(s, p, cname, nlen, folded, epv);
        return;
    }
    reg_user u;
    int r = reg_lookup(ctx->reg, folded, &u);
    if (r == 0 && memcmp(u.key, key, IDENT_PK) != 0)
        r = UV_EEXIST;
    else if (r == UV_ENOENT && new_name_refused(s, cname, nlen, folded, key))
        return;
    else if (r == UV_ENOENT)
        r = 0;
    if (r == 0)
        r = reg_bind(ctx->reg, cname, folded, key, epv, p->neps, (int64_t)time(NULL),
                     stored, on_bound, s);
    if (r == UV_EEXIST) {
        snprintf(text, sizeof text,
                 "the name %s is taken by another key; pick another name", cname);
        conn_fail(s->c, "name_taken", text, 0);
        return;
    }
    if (r) {
        if (r == REG_EUNAVAIL)
            conn_fail(s->c, "db_unavailable", DB_UNAVAILABLE_TEXT, 0);
        else
            conn_fail(s->c, "internal", "the tracker's database failed; try again later", 0);
        return;
    }
    snprintf(s->name, sizeof s->name, "%s", stored);
    snprintf(s->folded, sizeof s->folded, "%s", folded);
    sess_set(s, SS_REGISTERING);
}

/* Back from the verify thread, on the loop.  The session waited in
 * SS_REGISTERING, which kept its close callback from freeing it. */
static void on_verified(vfy_job *job, int result) {
    pending *p = (pending *)job;
    session *s = p->s;
    sess_set(s, SS_READY);
    s->name[0] = '\0'; /* named only for refuse_register meanwhile; bound below, or not */
    if (!s->c) { /* closed while it was verified: nobody else will free it */
        log_debug(&s->ctx->lg, "%s: closed while its register's signature was checked; "
                  "dropped", s->observed);
        if (!sess_held(s))
            sess_free(s);
    } else if (!conn_closing(s->c)) {
        bind_signed(s, p, result);
    }
    free(p);
}

void rgn_register(void *owner, const msg_in *m) {
    session *s = owner;
    tracker_ctx *ctx = s->ctx;
    const char *name;
    size_t nlen;
    const unsigned char *key, *sig;
    const msgpack_object_array *eps;
    if (sess_str(s, m, "name", &name, &nlen) || sess_bin(s, m, "key", &key, IDENT_PK) ||
        sess_bin(s, m, "sig", &sig, IDENT_SIG) ||
        sess_array(s, m, "endpoints", &eps, "[addr]"))
        return;
    s->hears_connect_failed = msg_has_feature(m, "connect_failed");
    s->hears_mailbox = msg_has_feature(m, "mailbox");
    s->hears_punch = msg_has_feature(m, "punch");
    s->pres_subscribes = msg_has_feature(m, "subscribe");
    s->pres_all = !s->pres_subscribes; /* an older peer hears of everyone, as it always did */
    pending *p = malloc(sizeof *p);
    if (!p) {
        conn_fail(s->c, "internal", "the tracker is out of memory; try again later", 0);
        return;
    }
    const char *epv[REG_MAX_ENDPOINTS];
    if (read_endpoints(s, eps, p->ep, epv)) {
        free(p);
        return;
    }
    const char *why;
    if (name_check(name, nlen, &why)) {
        char text[640];
        snprintf(text, sizeof text,
                 "invalid name: %s; a name is 1 to 32 characters without spaces, control "
                 "characters or invisible ones", why);
        conn_fail(s->c, "bad_name", text, 0);
        free(p);
        return;
    }
    p->s = s;
    p->neps = eps->size;
    memcpy(p->job.pk, key, IDENT_PK);
    memcpy(p->job.nonce, s->nonce, IDENT_NONCE);
    memcpy(p->job.sig, sig, IDENT_SIG);
    memcpy(p->job.name, name, nlen); /* name_check bounds nlen and excludes NUL */
    p->job.name[nlen] = '\0';
    p->job.nlen = nlen;
    if (!ctx->verifier) { /* --verify-threads 0 */
        bind_signed(s, p, ident_verify_register(key, s->nonce, name, nlen, sig));
        free(p);
        return;
    }
    snprintf(s->name, sizeof s->name, "%s", p->job.name);
    sess_set(s, SS_REGISTERING);
    vfy_submit(ctx->verifier, &p->job, on_verified);
}
