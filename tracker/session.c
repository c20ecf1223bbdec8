/* session: the state of one control connection and the ways to answer it.
 * What the tracker answers goes out through the send helpers here, which
 * bound what a client that does not read can make the tracker hold; the
 * field readers answer a malformed field with bad_message.  The
 * connection's callbacks are server.c's (they dispatch, and take a
 * registered user offline on close), so nothing here calls up. */
#include "session.h"

#include "frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const state_names[] = {"hello", "ready", "registering", "registered", "relay"};

void sess_set(session *s, sess_state to) {
    log_debug(&s->ctx->lg, "%s: %s -> %s", s->observed, state_names[s->state], state_names[to]);
    s->state = to;
}

/* ---- sending ---- */

static void check_queue(session *s) {
    if (!conn_closing(s->c) && conn_queued(s->c) > TRACKER_MAX_QUEUED) {
        log_warn(&s->ctx->lg, "%s: dropping client %s: %zu bytes unread (it is not reading)",
                 s->observed, s->name[0] ? s->name : "(unregistered)", conn_queued(s->c));
        conn_close(s->c, UV_ENOBUFS);
    }
}

void sess_send_buf(session *s, char *buf, size_t len) {
    if (!s->c || conn_closing(s->c)) {
        free(buf);
        return;
    }
    conn_send(s->c, buf, len);
    check_queue(s);
}

void sess_send_msg(session *s, msg_out *m) {
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

void sess_send_error(session *s, const char *code, const char *text, uint64_t id) {
    char *buf;
    size_t len;
    if (msg_error_frame(code, text, id, &buf, &len) == 0)
        sess_send_buf(s, buf, len);
}

void sess_send_db_error(session *s, int e, uint64_t id) {
    if (e == REG_EUNAVAIL)
        sess_send_error(s, "db_unavailable", DB_UNAVAILABLE_TEXT, id);
    else
        sess_send_error(s, "internal", "the tracker's database failed; try again later", id);
}

/* ---- reading fields ---- */

/* r: what the msg_* accessor returned for field. */
static int checked(session *s, const msg_in *m, const char *field, const char *want, int r,
                   int optional) {
    if (r == 0 || (optional && r == UV_ENOENT))
        return 0;
    char text[160];
    snprintf(text, sizeof text, "%s needs field %s of type %s", m->type, field, want);
    s->ctx->stats.rejected[STAT_REJ_BAD_MESSAGE]++;
    conn_fail(s->c, "bad_message", text, 0);
    return UV_EPROTO;
}

int sess_str(session *s, const msg_in *m, const char *field, const char **v, size_t *n) {
    return checked(s, m, field, "str", msg_str(m, field, v, n), 0);
}

int sess_opt_str(session *s, const msg_in *m, const char *field, const char **v, size_t *n) {
    return checked(s, m, field, "str", msg_str(m, field, v, n), 1);
}

int sess_uint(session *s, const msg_in *m, const char *field, uint64_t *v) {
    return checked(s, m, field, "uint", msg_uint(m, field, v), 0);
}

int sess_opt_uint(session *s, const msg_in *m, const char *field, uint64_t *v) {
    return checked(s, m, field, "uint", msg_uint(m, field, v), 1);
}

int sess_bin(session *s, const msg_in *m, const char *field, const unsigned char **v, size_t n) {
    char want[32];
    snprintf(want, sizeof want, "bin (%zu bytes)", n);
    return checked(s, m, field, want, msg_bin(m, field, v, n), 0);
}

int sess_bin_range(session *s, const msg_in *m, const char *field, const unsigned char **v,
                   size_t *n, size_t min, size_t max) {
    const msgpack_object *o;
    int r = msg_get(m, field, &o);
    if (r == 0 && (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size < min || o->via.bin.size > max))
        r = UV_EINVAL;
    if (r == 0) {
        *v = (const unsigned char *)o->via.bin.ptr;
        *n = o->via.bin.size;
    }
    char want[48];
    snprintf(want, sizeof want, "bin (%zu to %zu bytes)", min, max);
    return checked(s, m, field, want, r, 0);
}

int sess_opt_bool(session *s, const msg_in *m, const char *field, bool *v) {
    return checked(s, m, field, "bool", msg_bool(m, field, v), 1);
}

int sess_array(session *s, const msg_in *m, const char *field, const msgpack_object_array **v,
               const char *want) {
    return checked(s, m, field, want, msg_array(m, field, v), 0);
}

int sess_request(session *s, const msg_in *m, const char *field, uint64_t *id, const char **v,
                 size_t *n) {
    int r = sess_uint(s, m, "id", id);
    return r ? r : sess_str(s, m, field, v, n);
}

void sess_request_unregistered(session *s, const msg_in *m, const char *field, const char *text) {
    uint64_t id;
    const char *v;
    size_t n;
    if (sess_request(s, m, field, &id, &v, &n) == 0)
        sess_send_error(s, "not_registered", text, id);
}

void sess_hold(session *s) { s->holds++; }

int sess_held(const session *s) { return s->holds || s->state == SS_REGISTERING; }

void sess_release(session *s) {
    if (--s->holds == 0 && !s->c && !sess_held(s))
        sess_free(s);
}

int sess_listening(const session *s) {
    return s->state == SS_REGISTERED && s->c && !conn_closing(s->c);
}

/* ctx->hosts maps a host key to its number of connections, stored as the
 * value pointer itself (namemap holds pointers; a count needs no memory of
 * its own).  A table instead of a walk of every session, so that taking a
 * connection stays O(1) with 100,000 online. */
int sess_count_host(session *s, unsigned *others) {
    tracker_ctx *ctx = s->ctx;
    *others = 0;
    if (s->host_key[0])
        return 0;
    if (!ctx->hosts && !(ctx->hosts = namemap_new()))
        return UV_ENOMEM;
    char key[ADDR_HOSTKEY_LEN];
    addr_host_key(&s->addr, key);
    if (!key[0])
        return 0;
    uintptr_t n = (uintptr_t)namemap_get(ctx->hosts, key);
    if (namemap_put(ctx->hosts, key, (void *)(n + 1)))
        return UV_ENOMEM;
    memcpy(s->host_key, key, sizeof key);
    *others = (unsigned)n;
    return 0;
}

static void uncount_host(session *s) {
    tracker_ctx *ctx = s->ctx;
    if (!s->host_key[0] || !ctx->hosts)
        return;
    uintptr_t n = (uintptr_t)namemap_get(ctx->hosts, s->host_key);
    if (n <= 1)
        namemap_del(ctx->hosts, s->host_key, (void *)n);
    else
        namemap_put(ctx->hosts, s->host_key, (void *)(n - 1)); /* a replace: no allocation */
    s->host_key[0] = '\0';
}

void sess_unlink(session *s) {
    tracker_ctx *ctx = s->ctx;
    uncount_host(s);
    if (s->prev)
        s->prev->next = s->next;
    else
        ctx->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    ctx->nsessions--;
}

session *sess_new(tracker_ctx *ctx, conn_frame_cb on_frame, conn_close_cb on_closed) {
    session *s = calloc(1, sizeof *s);
    conn *c = s ? conn_new(ctx->loop, FRAME_MAX_DEFAULT, &ctx->lg, on_frame, on_closed, s) : NULL;
    if (!c) {
        free(s);
        return NULL;
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
    return s;
}

void sess_handover(session *s) {
    s->ctx->stats.control_sent_closed += conn_sent(s->c); /* the relay counts its own from here */
    sess_unlink(s);
    sess_free(s);
}

void sess_free(session *s) {
    if (!s)
        return;
    free(s->self);
    free(s);
}

int sess_set_self(session *s, const unsigned char key[IDENT_PK], const char *const *eps,
                  uint32_t n) {
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++)
        len += strlen(eps[i]) + 1;
    sess_self *me = malloc(sizeof *me + len);
    if (!me)
        return UV_ENOMEM;
    memcpy(me->key, key, IDENT_PK);
    me->n = n;
    char *p = me->eps;
    for (uint32_t i = 0; i < n; i++) {
        size_t l = strlen(eps[i]) + 1;
        memcpy(p, eps[i], l);
        p += l;
    }
    free(s->self);
    s->self = me;
    return 0;
}

int sess_self_user(const session *s, reg_user *u) {
    const sess_self *me = s->self;
    if (!me)
        return UV_ENOENT;
    snprintf(u->name, sizeof u->name, "%s", s->name);
    memcpy(u->key, me->key, IDENT_PK);
    const char *p = me->eps;
    u->nendpoints = 0;
    for (uint32_t i = 0; i < me->n && i < REG_MAX_ENDPOINTS; i++) {
        size_t l = strlen(p) + 1; /* each was an ADDR_STRLEN buffer's string */
        memcpy(u->endpoints[u->nendpoints++], p, l);
        p += l;
    }
    u->last_seen = s->last_frame;
    u->online = 1;
    u->home[0] = '\0';
    return 0;
}
